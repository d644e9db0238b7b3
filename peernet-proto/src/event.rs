//! The endpoint's one way in and one way out: [`Input`] (a transport's
//! bytes or its end) and [`Output`] (bytes to write, a transport to close,
//! or an [`Event`] for the application).

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use core::net::SocketAddr;
use core::time::Duration;

use crate::Instant;
use crate::envelope::Handle;
use crate::error::{CallError, CloseReason, DialFailure, HandshakeError};
use crate::identity::PeerId;
use crate::ids::{CallId, ConnId, Direction, InboundCallId};

/// Bytes or news from a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// Bytes read from `conn`, in any split: framing alone decides
    /// message boundaries.
    Received {
        /// The transport they came from.
        conn: ConnId,
        /// The bytes, owned: a whole read chunk that the core may change
        /// in place. Version-2 records are decrypted where they lie and
        /// version-1 frames are sliced from it, so nothing is copied
        /// except a frame split across two chunks. A reader that splits
        /// each chunk off its read buffer (`BytesMut::split_to`) hands
        /// over bytes no one else can see, without a copy; `Bytes`
        /// converts with `into()` (copying only if it is shared).
        /// While the output bound keeps some of the connection's bytes
        /// ([`OUTPUTS_BEFORE_PAUSE`]) these wait behind them, counted in
        /// [`crate::Stats::paused_input`]: a driver that takes the outputs
        /// before it hands in more keeps at most one chunk there.
        data: BytesMut,
    },
    /// The transport ended (EOF, reset, or a failed write).
    Closed {
        /// The transport.
        conn: ConnId,
    },
    /// The transport accepted none of the bytes waiting to be written for
    /// [`crate::Config::idle_timeout`]: the peer does not read. The
    /// connection ends; its reason is a local GOODBYE `idle_timeout`, "peer
    /// read none of our bytes" (the driver need not try to write it).
    Stalled {
        /// The transport.
        conn: ConnId,
    },
}

/// A call for the application: run the handler, then feed its outcome to
/// [`crate::Endpoint::reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCall {
    /// Pass back to `reply`.
    pub id: InboundCallId,
    /// The caller, as proven by the handshake.
    pub peer: PeerId,
    /// The handle called (exposed to `peer`: the endpoint checked).
    pub handle: Handle,
    /// The arguments.
    pub args: Bytes,
    /// When the caller stops waiting, if it set a timeout: the budget a
    /// handler may hand on to nested calls.
    pub deadline: Option<Instant>,
}

/// A fire-and-forget message for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSend {
    /// The connection it came on. Its arguments count against that
    /// connection's byte budget until [`crate::Endpoint::send_done`].
    pub conn: ConnId,
    /// The sender, as proven by the handshake.
    pub peer: PeerId,
    /// The handle (exposed to `peer`: the endpoint checked).
    pub handle: Handle,
    /// The arguments.
    pub args: Bytes,
}

/// What the handler made of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Success, with the result (status `ok`).
    Ok(Bytes),
    /// The handler's own error bytes (status `handler_error`).
    Error(Bytes),
    /// The handler panicked; an optional short note (status
    /// `handler_panicked`). The connection lives on.
    Panicked(Bytes),
}

/// Something that happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection finished its handshake and is now the one to `peer`.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The proven peer.
        peer: PeerId,
        /// Who dialed.
        direction: Direction,
    },
    /// A connection announced by `Connected` ended; its calls have
    /// already failed with `reason`.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: PeerId,
        /// Why it ended.
        reason: CloseReason,
    },
    /// A connection ended before `Connected`.
    HandshakeFailed {
        /// The connection.
        conn: ConnId,
        /// The peer, when known: the one dialed, or the trusted one an
        /// inbound handshake named (version 1's HELLO; version 2's INIT,
        /// whose static key proves nothing until the first record: a
        /// replayed INIT names the peer it was recorded from, so an
        /// inbound failure names whom the dialer claimed to be, not who
        /// it was), also when it was refused for that peer
        /// ([`HandshakeError::Throttled`]). `None` for an inbound
        /// handshake refused before its trust check passed (untrusted,
        /// malformed, `busy` for want of a slot) or that never named one.
        peer: Option<PeerId>,
        /// Why.
        error: HandshakeError,
    },
    /// A peer called an exposed handle.
    Call(InboundCall),
    /// A peer sent to an exposed handle.
    Send(InboundSend),
    /// A call we serve is no longer wanted (CANCEL, its timeout ran out,
    /// or its connection ended): stop the handler if you can; a later
    /// `reply` for it is ignored. Its slot and its arguments' bytes are
    /// free again: drop what the handler holds before you hand in more
    /// input, or a peer that cancels and calls again keeps more alive
    /// than `max_inbound_bytes_per_conn`.
    CallCancelled(InboundCallId),
    /// One of our calls resolved: exactly once per [`CallId`].
    CallResult {
        /// The call.
        id: CallId,
        /// The reply body, or why it failed.
        result: Result<Bytes, CallError>,
    },
    /// A kept peer ([`crate::Endpoint::keep_connected`]) is redialed after
    /// a loss: emitted right before the first [`Output::Dial`] of every
    /// redial (the first dial of `keep_connected` or `dial` is silent). A
    /// redial that waits in line for a dial slot
    /// ([`crate::config::DialConfig::max_dials_in_flight`]) is announced
    /// when it leaves the line, and one that ends before any dial (the
    /// peer connected meanwhile, its addresses were forgotten) is not.
    Reconnecting {
        /// The peer.
        peer: PeerId,
        /// The redial's number since the loss, from 1 (redials announced,
        /// so with no gaps); it starts again when the backoff resets (a
        /// connection that lived
        /// [`crate::config::DialConfig::reset_after`]).
        attempt: u32,
        /// The backoff delay waited before this redial (zero when the
        /// redial was prompted by an address added for a kept peer that
        /// had none); a wait in line for a slot comes on top of it.
        after: Duration,
    },
    /// A dial through the address book ([`crate::Endpoint::dial`]), or a
    /// round of a kept peer ([`crate::Endpoint::keep_connected`]: its
    /// first, silent round or a redial announced by
    /// [`Event::Reconnecting`]) that dialed at least one address, tried
    /// every address of its round and none gave a connection (every
    /// address of `peer`, but of the discovery hints that never worked at
    /// most [`crate::dial::HINTS_PER_ROUND`]: the others wait for a later
    /// round). So each failed redial of a kept peer says why, right as it
    /// fails; a one-off `dial` that joined a kept peer's round gets one
    /// report of it, not two.
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Each address the round tried, in the order tried, with why it
        /// failed (at most `Config::max_addresses_per_peer` entries).
        tried: Vec<(SocketAddr, DialFailure)>,
    },
}

/// How many outputs may wait for [`crate::Endpoint::poll_output`] before
/// the endpoint stops decoding what a transport handed in. The rest of
/// the bytes (and of a record's plaintext) stays with their connection
/// and is decoded, in order, as the queue empties: `poll_output` resumes
/// it when it finds the queue empty, so a driver that takes every output
/// gets every event, and no input makes the queue hold much more than
/// this (one envelope's outputs past it). Without the pause, one record
/// of `max_frame_len` bytes of 7-byte SENDs queued about 150,000 events
/// (19 MB) at once.
///
/// What happens before the kept bytes are handled happens before them:
/// a timer that fires, a command. A transport's end handed in meanwhile
/// ([`Input::Closed`], [`Input::Stalled`]) waits for them (a GOODBYE
/// among them is the connection's reason); a local end (`disconnect`,
/// `unpair`, `close_all`, a newer connection that supersedes) drops them,
/// as it would bytes that came a moment later.
pub const OUTPUTS_BEFORE_PAUSE: usize = 1024;

/// The longest [`Output::Close`] `last` of a close the application did
/// not ask for (an unpair, a newer connection, a timeout, a broken
/// protocol): a GOODBYE's record with its longest reason fits. What is
/// still queued at such a close goes before the farewell only if both
/// fit in this; otherwise it is dropped (never handed over, so none of it
/// is on the wire) and the farewell goes alone. A `last` this short is
/// copied out of the connection's queue rather than cut from its buffer,
/// so it holds no memory but its own, and a driver may keep it (for a
/// linger) at no cost to the queue's, however many connections close at
/// once. The closes the application asks for
/// ([`crate::Endpoint::disconnect`], [`crate::Endpoint::close_all`]) send
/// the whole queue first: the SENDs given before them, and the replies
/// in the queue (not those still waiting for room behind it).
pub const LAST_COPIED: usize = 4096;

/// What the driver must do next; see [`crate::Endpoint::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `conn` has bytes to write: take them with
    /// [`crate::Endpoint::poll_transmit`] when its transport can take more.
    Transmit(ConnId),
    /// The endpoint is done with `conn`: write `last` after anything
    /// already taken, then close the transport. The id is dead from here.
    Close {
        /// The connection.
        conn: ConnId,
        /// The final bytes: a GOODBYE or REJECT, after what was still
        /// queued (see [`LAST_COPIED`] for when it goes); possibly empty.
        last: Bytes,
    },
    /// Something for the application.
    Event(Event),
    /// Open a transport to `addr` for `peer`, then report the outcome:
    /// [`crate::Endpoint::connect_to`] once it is open,
    /// [`crate::Endpoint::dial_failed`] if it could not be (refused,
    /// unreachable, timed out). At most one is in flight per peer; a
    /// dial neither reported within
    /// [`crate::config::DialConfig::dial_timeout`] counts as failed.
    Dial {
        /// The peer to dial.
        peer: PeerId,
        /// Where, from the address book.
        addr: SocketAddr,
    },
}
