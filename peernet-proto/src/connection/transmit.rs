//! A connection's send queue: the one place its frames enter the
//! transport's byte stream.
//!
//! Handshake messages go in through [`Transmit::push_handshake`], envelopes
//! through [`Transmit::push`] only, and everything leaves through
//! [`Transmit::take`]. In version 1 an envelope is queued as its own
//! frame. In version 2 (PROTOCOL.md section 7), once the keys exist,
//! envelopes are queued as plaintext CBOR items inside an open record
//! whose frame header is reserved in front of them; a record is sealed in
//! place when the next envelope would not fit in it, or when the driver
//! takes the queue. So everything one `take` hands over costs one AEAD per
//! `max_frame_len` of envelopes, not one per envelope, and an envelope
//! never spans two records.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Instant;
use crate::codes::ReplyStatus;
use crate::config::fault;
use crate::counters::StatusCounts;
use crate::envelope::{EnvelopeRef, EnvelopeTooLarge};
use crate::event::Output;
use crate::frame::{FRAME_HEADER_LEN, encode_frame};
use crate::ids::ConnId;
use crate::noise::{CipherState, RecordError, TAG_LEN};

use super::Ctx;
use crate::event::LAST_COPIED;

/// The largest buffer a send queue keeps across takes
/// ([`Transmit::take`]): twice what it holds in use (a send buffer and a
/// record or frame; replies wait beyond, `replies.rs`), as a vector's
/// doubling may leave it. Only a burst of what does not wait (PONGs,
/// refused calls) grows it past this.
pub(super) fn room_kept(config: &crate::config::Config) -> usize {
    let frame = (config.max_frame_len as usize).saturating_add(FRAME_HEADER_LEN + TAG_LEN);
    config.send_buffer.saturating_add(frame).saturating_mul(2)
}

pub(super) struct Transmit {
    conn: ConnId,
    out: BytesMut,
    /// Whether `Output::Transmit` is out and not yet answered by `take`.
    signalled: bool,
    /// When a frame was last queued (liveness: PING after a quiet spell).
    pub(super) last_sent: Instant,
    /// Records sealed (version 2), or envelope frames queued (version 1).
    pub(super) records: u64,
    /// `records` at the last take: what [`Transmit::discard`] goes back
    /// to (what it drops never left, in either version).
    records_taken: u64,
    /// Version 2, once the handshake gave the keys: the record layer.
    sealer: Option<Sealer>,
    /// The REPLYs queued since the last take, by status: what
    /// [`Transmit::discard`] drops of the calls counted answered.
    replies: StatusCounts,
}

/// Seals what a version-2 connection sends.
struct Sealer {
    cipher: CipherState,
    /// Where the open record's reserved frame header starts in `out`; its
    /// plaintext runs from there + 4 to the end of `out`.
    open: Option<usize>,
    /// The largest plaintext a record holds: `max_frame_len - 16`.
    max_plain: usize,
    /// A record could not be sealed (nonces ran out): the connection ends.
    failed: Option<RecordError>,
    /// The nonce of the first record sealed since the last `take`: what
    /// the peer expects next. `discard` goes back to it.
    unsent_from: u64,
}

impl Sealer {
    /// Seals the open record, if any, in place at the end of `out`.
    /// Returns whether a record was sealed.
    fn close_record(&mut self, out: &mut BytesMut) -> bool {
        let Some(start) = self.open.take() else {
            return false;
        };
        let body = out.len() - start - FRAME_HEADER_LEN + TAG_LEN;
        let header = u32::try_from(body).unwrap_or(u32::MAX).to_be_bytes();
        out[start..start + FRAME_HEADER_LEN].copy_from_slice(&header);
        if let Err(e) = self.cipher.seal_record(out, start + FRAME_HEADER_LEN) {
            out.truncate(start);
            self.failed = Some(e);
            return false;
        }
        true
    }
}

impl Transmit {
    pub(super) fn new(conn: ConnId, now: Instant) -> Transmit {
        Transmit {
            conn,
            out: BytesMut::new(),
            signalled: false,
            last_sent: now,
            records: 0,
            records_taken: 0,
            sealer: None,
            replies: StatusCounts::default(),
        }
    }

    /// Bytes queued and not yet taken.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// What [`Transmit::take_last`] would hand over now: the bytes queued,
    /// and in version 2 the open record's tag.
    pub(super) fn last_len(&self) -> usize {
        let open = self.sealer.as_ref().is_some_and(|s| s.open.is_some());
        self.out.len() + if open { TAG_LEN } else { 0 }
    }

    /// Version 2: from now on envelopes are sealed into records with
    /// `cipher`, each at most `max_frame_len` long.
    pub(super) fn start_records(&mut self, cipher: CipherState, max_frame_len: u32) {
        self.sealer = Some(Sealer {
            open: None,
            max_plain: (max_frame_len as usize).saturating_sub(TAG_LEN),
            failed: None,
            unsent_from: cipher.nonce(),
            cipher,
        });
    }

    /// Version 2: moves the nonce of the next record sealed to `n`
    /// (tests of the end of the nonce space); `false` before the keys.
    #[cfg(feature = "testkit")]
    pub(super) fn set_send_nonce(&mut self, n: u64) -> bool {
        let Some(s) = &mut self.sealer else {
            return false;
        };
        s.cipher.set_nonce(n);
        s.unsent_from = n;
        true
    }

    /// Whether envelopes are sealed into records (version 2).
    pub(super) fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// Queues a handshake message (always a plaintext frame).
    pub(super) fn push_handshake(&mut self, body: &[u8], ctx: &mut Ctx) {
        encode_frame(body, &mut self.out);
        self.wrote(ctx);
    }

    /// Version 2: seals a record with what is queued, empty if nothing
    /// is, so one goes out at the next `take` (the initiator's first
    /// record, which confirms the keys, PROTOCOL.md 6.1 step 3). Sealed
    /// at once, not left open: what is queued later, before the driver
    /// takes the queue, goes in records of its own, so the first record
    /// stays one small frame the responder gets within its
    /// `first_frame_timeout`, whatever the application calls meanwhile.
    pub(super) fn push_empty_record(&mut self, ctx: &mut Ctx) {
        if let Some(s) = &mut self.sealer {
            if s.open.is_none() {
                s.open = Some(self.out.len());
                self.out.put_u32(0);
            }
            self.records += u64::from(s.close_record(&mut self.out));
            self.wrote(ctx);
        }
    }

    /// Queues an envelope. Fails only if it does not fit in a frame (or a
    /// record), and then queues nothing.
    pub(super) fn push(
        &mut self,
        envelope: EnvelopeRef<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), EnvelopeTooLarge> {
        let call = matches!(envelope, EnvelopeRef::Call { .. });
        self.queue(envelope, ctx.config.max_frame_len)?;
        if !(call && fault!(ctx.config, CallUnsignalled)) {
            self.wrote(ctx);
        }
        Ok(())
    }

    /// Queues a REPLY, as [`Transmit::push`] does; counted among those a
    /// [`Transmit::discard`] would drop until the queue is taken.
    pub(super) fn push_reply(
        &mut self,
        id: u64,
        status: ReplyStatus,
        body: &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), EnvelopeTooLarge> {
        let reply = EnvelopeRef::Reply {
            id,
            status: status.code(),
            body,
        };
        self.push(reply, ctx)?;
        self.replies.add(status);
        Ok(())
    }

    /// Queues the envelope that ends the connection: no wake-up, its bytes
    /// leave with `Output::Close`. A GOODBYE too large is left out.
    pub(super) fn push_farewell(&mut self, envelope: EnvelopeRef<'_>, max_frame_len: u32) {
        let _ = self.queue(envelope, max_frame_len);
    }

    /// The longest envelope body [`Transmit::push`] takes: a frame's, or
    /// in version 2 a record's plaintext.
    pub(super) fn max_body(&self, max_frame_len: u32) -> usize {
        match &self.sealer {
            Some(s) => s.max_plain,
            None => max_frame_len as usize,
        }
    }

    fn queue(
        &mut self,
        envelope: EnvelopeRef<'_>,
        max_frame_len: u32,
    ) -> Result<(), EnvelopeTooLarge> {
        let Some(s) = &mut self.sealer else {
            envelope.encode_frame(&mut self.out, max_frame_len)?;
            self.records += 1;
            return Ok(());
        };
        let len = envelope.body_len();
        if len > s.max_plain {
            return Err(EnvelopeTooLarge {
                len,
                max: u32::try_from(s.max_plain).unwrap_or(u32::MAX),
            });
        }
        if let Some(start) = s.open {
            if self.out.len() - start - FRAME_HEADER_LEN + len > s.max_plain {
                self.records += u64::from(s.close_record(&mut self.out));
            }
        }
        if s.open.is_none() {
            s.open = Some(self.out.len());
            self.out.reserve(FRAME_HEADER_LEN + len + TAG_LEN);
            self.out.put_u32(0);
        }
        envelope.encode_item(&mut self.out, len);
        Ok(())
    }

    /// The plaintext frames of a version-1 farewell (or a handshake's
    /// REJECT), written by [`crate::ending::Ending::write_farewell`].
    pub(super) fn out_for_farewell(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Drops everything queued (a peer that does not read gets no more;
    /// a record that failed to decrypt gets nothing more; a last write
    /// too long to linger, `closing.rs`). Nothing queued was handed over,
    /// so none of it is on the wire: in version 2 the records sealed and
    /// dropped give their nonces back, and the farewell that may follow
    /// is sealed under the nonce the peer expects next, or it could not
    /// open it. The records (version 2) or envelope frames (version 1)
    /// dropped are no longer counted sent. Returns the REPLYs dropped, by
    /// status.
    pub(super) fn discard(&mut self) -> StatusCounts {
        self.out.clear();
        self.records = self.records_taken;
        if let Some(s) = &mut self.sealer {
            s.open = None;
            s.cipher.rewind_unsent(s.unsent_from);
        }
        core::mem::take(&mut self.replies)
    }

    fn wrote(&mut self, ctx: &mut Ctx) {
        self.last_sent = ctx.now;
        if !self.signalled {
            self.signalled = true;
            ctx.outputs.push_back(Output::Transmit(self.conn));
        }
    }

    /// Everything queued, as one buffer: one write per wake-up. In version
    /// 2 the open record is sealed first. `Err` when a record could not be
    /// sealed: the connection must end.
    ///
    /// The queue keeps the rest of its buffer for what comes next, unless
    /// the buffer is over `keep` bytes ([`room_kept`]): split off, the
    /// taken bytes share its allocation, and once they are written the
    /// queue alone holds it and reclaims all of it at its next envelope.
    /// A burst (PONGs, refused calls, up to the hard send cap) would so
    /// stay allocated for the rest of the connection's life.
    pub(super) fn take(&mut self, keep: usize) -> Result<Option<Bytes>, RecordError> {
        self.signalled = false;
        if let Some(s) = &mut self.sealer {
            self.records += u64::from(s.close_record(&mut self.out));
            if let Some(e) = s.failed {
                return Err(e);
            }
            s.unsent_from = s.cipher.nonce();
        }
        self.records_taken = self.records;
        self.replies = StatusCounts::default();
        if self.out.is_empty() {
            return Ok(None);
        }
        let taken = self.out.split().freeze();
        if taken.len().saturating_add(self.out.capacity()) > keep {
            self.out = BytesMut::new();
        }
        Ok(Some(taken))
    }

    /// Everything left, for the connection's last write (sealed). A short
    /// one (a farewell alone, the queue dropped) is copied out: cut from
    /// the queue's buffer, a few bytes would keep the whole of it (up to
    /// a send buffer) alive for as long as the driver holds them.
    pub(super) fn take_last(&mut self) -> Bytes {
        if let Some(s) = &mut self.sealer {
            self.records += u64::from(s.close_record(&mut self.out));
            s.unsent_from = s.cipher.nonce();
        }
        if self.out.len() <= LAST_COPIED {
            let last = Bytes::copy_from_slice(&self.out);
            self.out = BytesMut::new();
            return last;
        }
        self.out.split().freeze()
    }
}
