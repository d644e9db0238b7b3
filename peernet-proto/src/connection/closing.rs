//! A connection carrying out its end (`Connection::close`, given the
//! [`Ending`] that says why: `ending.rs`): its farewell, its last write
//! (kept short enough to linger, [`LAST_COPIED`]), its calls resolved
//! once each, and what the driver and the application hear.

use alloc::vec::Vec;

use crate::config::fault;
use crate::ending::Ending;
use crate::envelope::EnvelopeRef;
use crate::error::{CallError, CloseReason};
use crate::event::{Event, LAST_COPIED, Output};
use crate::frame::FRAME_HEADER_LEN;
use crate::ids::CallId;
use crate::noise::TAG_LEN;
use crate::timers::Timer;

use super::{Connection, Ctx, State, handshakes};

impl Connection {
    /// Ends the connection (the endpoint already forgot it): queues the
    /// farewell `ending` calls for, disarms every timer, resolves every
    /// call still in flight exactly once, and tells the driver and the
    /// application.
    pub(crate) fn close(mut self, ending: Ending, ctx: &mut Ctx) {
        let conn = self.id;
        let peer = self.peer();
        let announced = self.is_announced();
        let established = matches!(self.state, State::Established(_));
        self.release_handshake_bytes(ctx);
        self.drop_waiting(ctx);
        self.bound_last_write(&ending, established, ctx);
        if self.tx.is_sealed() && established {
            if let Some((code, reason)) = ending.goodbye_envelope() {
                let goodbye = EnvelopeRef::Goodbye {
                    code,
                    reason: &reason,
                };
                self.tx.push_farewell(goodbye, ctx.config.max_frame_len);
            }
        } else if self.recv.is_none() {
            // (a version-2 responder waiting for the first record holds
            // record keys: its stream carries records only, and before
            // step 4 it sends none, so it closes without a word)
            let v2 = matches!(&self.state, State::Handshake(h) if h.is_v2());
            let before = self.tx.len();
            ending.write_farewell(
                established,
                v2,
                self.tx.out_for_farewell(),
                ctx.config.max_frame_len,
            );
            if established && self.tx.len() > before {
                // Version 1's GOODBYE: an envelope frame.
                self.tx.records += 1;
            }
        }
        if let Some(at) = self.handshake_deadline.take() {
            ctx.timers.disarm(at, Timer::Handshake(conn));
        }
        self.liveness.disarm(ctx);
        let last = self.tx.take_last();
        ctx.counters.bytes_out += last.len() as u64;
        ctx.counters.records_out += self.tx.records;
        let (outbound, inbound) = match &mut self.state {
            State::Established(s) => (
                s.outbound.drain_sorted(&mut ctx.timers),
                s.inbound.drain_sorted_with(&mut ctx.timers),
            ),
            State::Handshake(_) => (Vec::new(), Vec::new()),
        };
        self.release_calls_at_close(&inbound, ctx);
        ctx.counters.calls_out.connection_closed += outbound.len() as u64;
        ctx.counters.calls_in.connection_closed += inbound.len() as u64;
        let lost = matches!(ending, Ending::Superseded) && fault!(ctx.config, SupersededCallsLost);
        // (the REJECT a failed handshake step sent, for its count)
        let sent = match &ending {
            Ending::HandshakeFailed(failure) => failure.send,
            _ => None,
        };
        // A connection is announced as soon as its handshake wins the
        // registry, so one that was not has no call in flight.
        let outcome = match (announced, peer) {
            (true, Some(peer)) => Ok((peer, ending.close_reason())),
            _ => Err(ending.handshake_error()),
        };
        for id in outbound.into_iter().filter(|_| !lost) {
            let reason = match &outcome {
                Ok((_, reason)) => reason.clone(),
                Err(_) => CloseReason::TransportLost,
            };
            ctx.emit(Event::CallResult {
                id: CallId { conn, id },
                result: Err(CallError::ConnectionClosed(reason)),
            });
        }
        for (id, served) in inbound {
            ctx.emit(Event::CallCancelled(served.id(conn, id)));
        }
        ctx.outputs.push_back(Output::Close { conn, last });
        match outcome {
            Ok((peer, reason)) => {
                tracing::debug!(conn = %conn, peer = %peer, reason = %reason, "disconnected");
                ctx.emit(Event::Disconnected { conn, peer, reason });
            }
            Err(error) => {
                handshakes(ctx, self.direction).failed(&error, sent);
                tracing::debug!(conn = %conn, peer = ?peer, error = %error, direction = ?self.direction, "handshake failed");
                ctx.emit(Event::HandshakeFailed { conn, peer, error });
            }
        }
    }

    /// Keeps the connection's last write within [`LAST_COPIED`] bytes,
    /// unless the application asked for the close
    /// ([`Ending::flushes_queue`]: what it queued before goes first):
    /// what is queued goes out before the farewell only if both fit in
    /// that; otherwise the queue is dropped and the farewell goes alone.
    ///
    /// A driver may let a last write this short linger whatever else
    /// closes (it holds no memory but its own), while it bounds node-wide
    /// what longer ones hold and drops one whole when it would not fit,
    /// GOODBYE included (peernet-driver's linger budget). A queue this
    /// long at a close mostly belongs to a peer that is
    /// behind, whose last write used to carry up to a send buffer and a
    /// frame: on a shutdown with several such peers only some of them got
    /// their GOODBYE (review s40, r4: 2 of 4). What is dropped was never
    /// handed over, so none of it is on the wire (`Transmit::discard`):
    /// the calls of the replies in it fail on the caller's side with the
    /// close (PROTOCOL.md 3.1: no REPLY is owed once the connection
    /// ends), ours fail with it here, and SENDs are lost, as they may be.
    fn bound_last_write(&mut self, ending: &Ending, established: bool, ctx: &mut Ctx) {
        // (a handshake's queue and its REJECT are a few hundred bytes)
        let farewell = match ending.goodbye_envelope() {
            Some((code, reason)) if established => {
                let goodbye = EnvelopeRef::Goodbye {
                    code,
                    reason: &reason,
                };
                goodbye.body_len() + FRAME_HEADER_LEN + TAG_LEN
            }
            _ => 0,
        };
        if !ending.flushes_queue() && self.tx.last_len() + farewell > LAST_COPIED {
            self.drop_queue(ctx);
        }
    }

    /// Drops everything queued, unsent: the replies in it count as ended
    /// with the connection, not answered.
    pub(super) fn drop_queue(&mut self, ctx: &mut Ctx) {
        let replies = self.tx.discard();
        ctx.counters.calls_in.never_sent(&replies);
    }
}
