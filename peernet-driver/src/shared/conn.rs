//! What the driver keeps per connection: the signals its reader and
//! writer tasks listen to (and the write half they share), and its entry
//! in the node's table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use peernet_proto::Direction;

use crate::wake_flag::WakeFlag;
use crate::write_half::WriteHalf;

/// What a connection's two tasks listen to.
#[derive(Default)]
pub(crate) struct ConnSignals {
    /// Bytes are queued, or the connection is closing: writer, wake up.
    pub(crate) write: WakeFlag,
    /// The core is done with the connection: reader, let your buffer go
    /// and discard what comes (set under the node's lock; the reader is
    /// woken through `stop_reader` once the lock is let go, the flag left
    /// down: `WakeFlag::wake`).
    pub(crate) closed: AtomicBool,
    /// The connection was established (its handshake done, its peer
    /// trusted): only then does it linger for the whole
    /// [`NodeConfig::linger`](crate::NodeConfig::linger) once closed
    /// ([`Shared::linger_of`](super::Shared::linger_of)).
    pub(crate) established: AtomicBool,
    /// Reader, stop now. (Its waker also serves `closed`.)
    pub(crate) stop_reader: WakeFlag,
    /// Writer, stop now (a forced shutdown).
    pub(crate) stop_writer: WakeFlag,
    /// The reader has ended (so the writer need not linger).
    pub(crate) reader_done: WakeFlag,
    /// The writer has ended, telling the reader to stop: the close
    /// deadline (`tasks::close_deadline`) has nothing left to stop.
    pub(crate) writer_done: WakeFlag,
    /// The write half, for the writer and for the reader's inline writes.
    pub(crate) write_half: WriteHalf,
    /// Bytes taken from the core and not yet written: the batch of a
    /// write in progress, and what an inline write left in
    /// `WriteHalfState::left` until the writer wrote it; 0 otherwise. Only the
    /// write half's holder changes it (`ConnSignals::take_transmit`, `write_half.rs`).
    pub(crate) unwritten: AtomicUsize,
    /// What this connection adds to
    /// [`Shared::lingering`](super::Shared::lingering) since its close,
    /// given back as its writer ends.
    pub(crate) lingering: AtomicUsize,
    /// Room in this connection's send queue, or one of its calls resolved
    /// (a `max_outbound_calls` slot), or it closed: callers blocked on it,
    /// try again. Per connection: a peer that reads nothing keeps the
    /// callers to it blocked, and one wake-up for the whole node woke
    /// them all at every call that completed on any other connection.
    /// Only notified when someone waits (`room_wanted`, counted in the
    /// node's [`RoomWaiters`]).
    pub(crate) room: event_listener::Event,
    pub(crate) room_wanted: AtomicBool,
}

/// How many of the node's connections have callers waiting for room
/// (their `room_wanted` set): a completed call looks up its connection to
/// wake them only if any connection has (`drain.rs`), which is rare; the
/// lookup was most of what the per-connection wake-up cost a call.
///
/// Read under the node's lock, the count is never below the number of
/// connections that have waiters: it is raised only under that lock,
/// before `room_wanted` is set, and lowered after a waker cleared
/// `room_wanted` and so notifies its waiters itself (at once, or once
/// the lock is let go: `wake.rs`). Only a waker that
/// runs outside the lock (`take_transmit`) may leave it above for a
/// moment, which costs a lookup, never a wake-up.
#[derive(Default)]
pub(crate) struct RoomWaiters(AtomicUsize);

impl RoomWaiters {
    /// Whether any connection may have callers waiting for room (read
    /// under the node's lock).
    pub(crate) fn any(&self) -> bool {
        // (Relaxed: every raise was under the lock, which orders it
        // before this read; a lowering not yet seen costs a lookup)
        self.0.load(Ordering::Relaxed) > 0
    }
}

impl ConnSignals {
    /// Stops the connection's reader and writer wherever they are: the
    /// writer drops what it has not written.
    pub(crate) fn stop(&self) {
        self.stop_writer.notify();
        self.stop_reader.notify();
    }

    /// Registers for a wake-up when this connection has room again (call
    /// with the node's lock held, right after `WouldBlock`, so that no
    /// wake-up is missed); `waiters` is the node's.
    pub(crate) fn wait_for_room(&self, waiters: &RoomWaiters) -> event_listener::EventListener {
        let room = self.room.listen();
        // (only set under the lock, so nobody sets it between the load
        // and the store; a waker outside the lock may clear it, and then
        // notifies the listener made above)
        if !self.room_wanted.load(Ordering::Acquire) {
            waiters.0.fetch_add(1, Ordering::Relaxed);
            self.room_wanted.store(true, Ordering::Release);
        }
        room
    }

    /// Wakes the callers blocked on this connection, if there are any;
    /// `waiters` is the node's. Not under the node's lock (the callers'
    /// wakers are the application's): there, take them with
    /// [`ConnSignals::take_room_waiters`] and notify `room` after it.
    pub(crate) fn wake_room(&self, waiters: &RoomWaiters) {
        if self.take_room_waiters(waiters) {
            self.room.notify(usize::MAX);
        }
    }

    /// Takes the registration of the callers blocked on this connection:
    /// true if there were some, and then `room` is to be notified (a
    /// caller registering meanwhile listens to `room` before it looks for
    /// room again, so that notification reaches it too).
    pub(crate) fn take_room_waiters(&self, waiters: &RoomWaiters) -> bool {
        // A plain load first, so the common case (nobody waiting) costs no
        // locked read-modify-write.
        let taken = self.room_wanted.load(Ordering::Acquire)
            && self.room_wanted.swap(false, Ordering::AcqRel);
        if taken {
            // (after the swap: a count read meanwhile is high, not low)
            waiters.0.fetch_sub(1, Ordering::Relaxed);
        }
        taken
    }
}

pub(crate) struct ConnEntry {
    pub(crate) signals: Arc<ConnSignals>,
    pub(crate) direction: Direction,
    pub(crate) remote_addr: Option<SocketAddr>,
    /// Set by `Output::Close`: the final bytes; then the writer closes.
    pub(crate) closing: Option<Bytes>,
}
