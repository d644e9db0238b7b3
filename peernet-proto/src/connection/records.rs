//! Version 2's record layer on the receiving side (PROTOCOL.md section 7):
//! once the handshake gave the keys every frame is a record, opened in
//! place, and its plaintext is decoded one envelope after another (the
//! sending side is `transmit.rs`).

use alloc::format;

use bytes::BytesMut;

use crate::ending::Ending;
use crate::envelope::{Envelope, Slicing};
use crate::error::HandshakeError;
use crate::handshake::Failure;
use crate::ids::Direction;
use crate::noise::{TAG_LEN, Transport};

use super::pin::Pin;
use super::{Connection, Ctx, Node, State, Transition};

/// What a header from a peer that has proven nothing (a responder's,
/// before the first record) commits of our memory; the buffer grows with
/// the bytes that come.
const PENDING_FIRST_ROOM: usize = 4096;

impl Connection {
    /// Version 2: the handshake gave the keys; every frame from here on is
    /// a record, bounded by `max_frame_len`.
    pub(super) fn start_records(&mut self, keys: Transport, ctx: &mut Ctx) {
        let Transport { send, recv, .. } = keys;
        self.tx.start_records(send, ctx.config.max_frame_len);
        self.recv = Some(recv);
        self.decoder.set_max_frame_len(ctx.config.max_frame_len);
        if self.direction == Direction::Inbound {
            // A responder waiting for the first record: its peer may be
            // replaying an INIT and hold no key, so a header it sends
            // commits at most this much until the record opens.
            self.decoder.set_first_room(Some(PENDING_FIRST_ROOM));
            // The first record is due one round trip after RESP: it gets
            // `first_frame_timeout`, as INIT did, not what is left of the
            // handshake's budget, so a replayed INIT holds its handshake
            // slot no longer than a silent socket (local policy, which
            // PROTOCOL.md 6.1 leaves to the node).
            self.proof_due(ctx);
        }
    }

    /// Version 2: frames are records (PROTOCOL.md section 7). Each record
    /// is split off the chunk the driver handed over (its own bytes, so
    /// nothing is copied) and opened where it lies; its plaintext then
    /// lends the envelopes their bytes. What is left stays in `data` when
    /// a transition stops the loop.
    pub(super) fn handle_records(
        &mut self,
        data: &mut BytesMut,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        if let Some(t) = self.drain_plain(node, ctx) {
            return Some(t);
        }
        loop {
            if !data.is_empty() && ctx.outputs_full() {
                return Some(Transition::Pause);
            }
            // (whether the record has a buffer of its own, assembled from
            // several reads, or shares the chunk's: see `Pin`)
            let (record, own) = match self.decoder.decode_mut(data) {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(error) => return Some(self.frame_failed(error)),
            };
            if let Some(t) = self.on_record(record, own, node, ctx) {
                return Some(t);
            }
        }
    }

    /// One record: opened in place, then its envelopes one after another.
    /// The first one to open on a version-2 responder establishes the
    /// connection (step 4) before any of its envelopes is handled. `own`:
    /// the record is a buffer of its own (its payloads may be slices).
    pub(super) fn on_record(
        &mut self,
        mut record: BytesMut,
        own: bool,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        let recv = self.recv.as_mut()?;
        if matches!(self.state, State::Handshake(_)) {
            // Step 3 lets the initiator refuse RESP with a REJECT: said,
            // not a record that failed to open.
            if let Some(code) = crate::noise::reject_in(&record) {
                let error = HandshakeError::Rejected(code);
                return Some(Transition::End(Ending::HandshakeFailed(Failure {
                    send: None,
                    error,
                })));
            }
        }
        let plain_len = match recv.open_record(&mut record) {
            Ok(plain) => plain.len(),
            Err(_) if crate::config::fault!(ctx.config, IgnoreBadRecord) => return None,
            Err(e) => {
                self.drop_queue(ctx);
                return Some(Transition::End(Ending::RecordFailed(e)));
            }
        };
        self.liveness.last_recv = ctx.now;
        ctx.counters.records_in += 1;
        record.truncate(plain_len);
        if !record.is_empty() {
            self.plain = Some((record.freeze(), 0, own));
        }
        if let State::Handshake(h) = &self.state {
            let peer = h.peer()?;
            self.decoder.set_first_room(None);
            self.establish(peer, peer, node, ctx);
            return Some(Transition::Established);
        }
        self.drain_plain(node, ctx)
    }

    /// Decodes and handles the envelopes left in the current record's
    /// plaintext, until it ends or one asks the endpoint for something.
    pub(super) fn drain_plain(&mut self, node: &mut Node<'_>, ctx: &mut Ctx) -> Option<Transition> {
        while self.plain.is_some() {
            if !matches!(self.state, State::Established(_)) {
                return None;
            }
            if ctx.outputs_full() {
                return Some(Transition::Pause);
            }
            let Some((plain, pos, own)) = self.plain.take() else {
                break;
            };
            // (a record is its arena's whole scope: nothing follows it)
            let arena = Some((&mut self.arena, 0));
            let slices = Slicing::on_connection(own);
            let item = Envelope::decode_item(&plain, pos, plain.len(), arena, slices);
            let (envelope, end) = match item {
                Ok(item) => item,
                Err(error) => {
                    return Some(Transition::End(Ending::ProtocolError(format!("{error}"))));
                }
            };
            // (a record of its own is its frame: the plaintext and the tag)
            let pin = own.then(|| Pin::new(&plain, plain.len() + TAG_LEN));
            if end < plain.len() {
                self.plain = Some((plain, end, own));
            } else {
                // the record is done: its buffer is its payloads' alone
                self.arena.release();
            }
            if let Some(t) = self.on_decoded(envelope, pin, node, ctx) {
                return Some(t);
            }
        }
        None
    }
}
