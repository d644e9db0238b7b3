//! A connection's send queue: the one place its frames enter the
//! transport's byte stream.
//!
//! Handshake messages go in through [`Transmit::push_handshake`], envelopes
//! through [`Transmit::push`] only, and everything leaves through
//! [`Transmit::take`]. That is the seam a record layer needs: version 2
//! (PROTOCOL.md Part B) will keep envelopes as plaintext frames here and
//! seal them into encrypted records when the driver takes them, without
//! any caller of `push` changing.

use bytes::{Bytes, BytesMut};

use crate::Instant;
use crate::envelope::{EnvelopeRef, EnvelopeTooLarge};
use crate::event::Output;
use crate::frame::encode_frame;
use crate::ids::ConnId;

use super::Ctx;

pub(super) struct Transmit {
    conn: ConnId,
    out: BytesMut,
    /// Whether `Output::Transmit` is out and not yet answered by `take`.
    signalled: bool,
    /// When a frame was last queued (liveness: PING after a quiet spell).
    pub(super) last_sent: Instant,
}

impl Transmit {
    pub(super) fn new(conn: ConnId, now: Instant) -> Transmit {
        Transmit {
            conn,
            out: BytesMut::new(),
            signalled: false,
            last_sent: now,
        }
    }

    /// Bytes queued and not yet taken.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// Queues a handshake message (always a plaintext frame).
    pub(super) fn push_handshake(&mut self, body: &[u8], ctx: &mut Ctx) {
        encode_frame(body, &mut self.out);
        self.wrote(ctx);
    }

    /// Queues an envelope. Fails only if it does not fit in a frame, and
    /// then queues nothing.
    pub(super) fn push(
        &mut self,
        envelope: EnvelopeRef<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), EnvelopeTooLarge> {
        envelope.encode_frame(&mut self.out, ctx.config.max_frame_len)?;
        self.wrote(ctx);
        Ok(())
    }

    /// Queues the envelope that ends the connection: no wake-up, its bytes
    /// leave with `Output::Close`.
    pub(super) fn out_for_farewell(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Drops everything queued (a peer that does not read gets no more).
    pub(super) fn discard(&mut self) {
        self.out.clear();
    }

    fn wrote(&mut self, ctx: &mut Ctx) {
        self.last_sent = ctx.now;
        if !self.signalled {
            self.signalled = true;
            ctx.outputs.push_back(Output::Transmit(self.conn));
        }
    }

    /// Everything queued, as one buffer: one write per wake-up.
    pub(super) fn take(&mut self) -> Option<Bytes> {
        self.signalled = false;
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Everything left, for the connection's last write.
    pub(super) fn take_last(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}
