//! A transport's bytes handed to its connection, and the pause that keeps
//! the output queue bounded: decoding stops while
//! [`OUTPUTS_BEFORE_PAUSE`](crate::OUTPUTS_BEFORE_PAUSE) outputs wait for
//! the driver, the rest of the bytes stays with the connection, and
//! [`Endpoint::poll_output`] resumes it once the queue is empty. One
//! record may hold a megabyte of 7-byte SENDs; without the pause its
//! events (128 bytes each) were queued all at once.

use bytes::BytesMut;

use super::Endpoint;
use crate::connection::{Node, Transition};
use crate::ending::Ending;
use crate::ids::ConnId;

impl Endpoint {
    /// Hands `data` to `conn` (after what it kept from a pause), acting on
    /// each transition it asks for, until the bytes run out or the output
    /// queue is full.
    #[inline]
    pub(super) fn receive(&mut self, conn: ConnId, mut data: BytesMut) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if let Some(mut kept) = c.stash.take() {
                // (no copy when `data` is empty, as on a resume)
                kept.unsplit(data);
                data = kept;
            }
            // Section 6.1 judges `busy` when the first frame comes,
            // not at accept: a slot freed since is taken now.
            if !data.is_empty()
                && self.inbound_handshakes < self.ctx.config.max_handshakes
                && c.take_slot()
            {
                self.inbound_handshakes += 1;
                // (in accept order, oldest first: ids grow)
                let at = self.silent.partition_point(|c| *c < conn);
                self.silent.insert(at, conn);
            }
            match c.handle_data(&mut data, &mut node!(self), &mut self.ctx) {
                Some(Transition::Pause) => {
                    c.stash = Some(data);
                    self.paused.insert(conn);
                    return;
                }
                Some(transition) => self.on_transition(conn, transition),
                None => {
                    // everything handed in is handled: a transport end
                    // that came meanwhile takes effect now
                    if let Some(ending) = c.ended.take() {
                        self.end(conn, ending);
                    }
                    return;
                }
            }
        }
    }

    /// The transport of `conn` ended (`Closed`, `Stalled`): the
    /// connection ends, after the bytes handed in before, if a pause
    /// keeps some (a peer's GOODBYE among them is its reason).
    #[inline(never)]
    pub(super) fn transport_ended(&mut self, conn: ConnId, ending: Ending) {
        match self.conns.get_mut(&conn) {
            Some(c) if c.stash.is_some() => c.ended = Some(ending),
            _ => self.end(conn, ending),
        }
    }

    /// The output queue is empty: paused connections go on decoding, in
    /// `ConnId` order, until it holds something again.
    #[cold]
    #[inline(never)]
    pub(super) fn resume_paused(&mut self) {
        while self.ctx.outputs.is_empty() {
            let Some(conn) = self.paused.pop_first() else {
                return;
            };
            // (one that ended, or was handed more bytes, has no stash)
            if self.conns.get(&conn).is_some_and(|c| c.stash.is_some()) {
                self.receive(conn, BytesMut::new());
            }
        }
    }
}
