//! The node's budget for the bytes of handshakes in progress
//! (`Config::max_handshake_bytes`). A frame split across reads is
//! buffered as its bytes come; during a handshake the frames are small
//! (at most an INIT's 150 bytes) but for one: the initiator's first
//! record, which a version-2 responder waits for after RESP, may be a
//! whole frame (1 MiB by default), from a peer that has proven nothing
//! yet. Over 1,024 handshakes in progress that was 1 GiB outside every
//! byte budget. Now the connections whose handshake is not finished may
//! hold, all together, at most the budget: each input of one may grow
//! its buffer only into what the others leave, the decoder refusing
//! before it allocates ([`FrameError::OverBudget`](crate::FrameError),
//! which ends the handshake as
//! [`HandshakeError::OverBudget`](crate::HandshakeError)), and what its
//! buffer holds after the input is its charge, given back once it is
//! established or closed. Established connections are never charged.
//!
//! Not charged either: a handshake's input that the output bound holds
//! back ([`OUTPUTS_BEFORE_PAUSE`](crate::OUTPUTS_BEFORE_PAUSE), kept
//! with the connection as it was handed in, `endpoint/input.rs`,
//! counted in [`Stats::paused_input`](crate::Stats)). The core cannot
//! bound it: it is what the driver handed in while the outputs waited.
//! A driver that takes every output before it hands in more (as
//! [`Input::Received`](crate::Input) asks) leaves one input there at
//! most, and the driver of this workspace does so with reads of 4 KiB
//! until the handshake is done: its reader hands in its next read only
//! once its drain has emptied the output queue, which resumes every
//! paused connection. So a handshake holds at most 4 KiB there, besides
//! its charge (4 MiB over 1,024 handshakes, as their read buffers):
//! `peernet-tokio/tests/paused_handshake_input.rs` pauses a handshake's
//! read and sees 4,096 bytes held (16,384 with a read buffer that grew
//! during the handshake, 8,192 with a reader that read on before its
//! drain was done). Charging them instead would close a peer's
//! handshake for a pause it did not cause.

use crate::config::fault;
use crate::ending::Ending;
use crate::frame::FrameError;

use super::{Connection, Ctx, State, Transition};

impl Connection {
    /// Before an input: how far the decoder's buffer may grow, what the
    /// budget leaves beside the other handshakes' charges (no limit once
    /// established).
    pub(super) fn room_for_input(&mut self, ctx: &Ctx) {
        let room = match self.state {
            State::Handshake(_) if !fault!(ctx.config, NoHandshakeBudget) => {
                let others = ctx.handshake_held - self.handshake_charge;
                ctx.config.max_handshake_bytes.saturating_sub(others)
            }
            State::Handshake(_) | State::Established(_) => usize::MAX,
        };
        self.decoder.set_max_room(room);
    }

    /// After an input: the charge becomes what the buffer holds now
    /// (nothing once established).
    pub(super) fn charge_handshake_bytes(&mut self, ctx: &mut Ctx) {
        let held = self.handshake_bytes();
        ctx.handshake_held = ctx.handshake_held - self.handshake_charge + held;
        self.handshake_charge = held;
    }

    /// At the close: the charge is given back.
    pub(super) fn release_handshake_bytes(&mut self, ctx: &mut Ctx) {
        ctx.handshake_held -= core::mem::take(&mut self.handshake_charge);
    }

    /// The decoder refused a frame: it ends the connection, and one over
    /// the budget says how far (its close says "handshake failed").
    pub(super) fn frame_failed(&self, error: FrameError) -> Transition {
        if let FrameError::OverBudget { need, room } = error {
            let conn = self.id;
            tracing::debug!(conn = %conn, need, room, "handshake bytes over the node's budget");
        }
        Transition::End(Ending::of_frame(error))
    }

    /// Bytes this connection's split frame holds while its handshake
    /// runs (its buffer's capacity); 0 once established.
    pub(crate) fn handshake_bytes(&self) -> usize {
        match self.state {
            State::Handshake(_) => self.decoder.held(),
            State::Established(_) => 0,
        }
    }
}
