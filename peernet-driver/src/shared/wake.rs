//! The wake-ups found under the node's lock and made after it
//! ([`Wake`]): every one that reaches a waker, and so code that is not
//! the driver's. A waker is the application's (its executor's, or one of
//! its own): it may run a task inline, block, or call back into the node,
//! which would take the lock again (a `std` mutex is not reentrant: the
//! thread deadlocks) or stall every connection of the node while it runs.
//!
//! Code under the lock records the wake-up instead (`Inner::wakes`, or
//! the drain's `work` where it must keep its place among a connection's
//! items); the drain moves the recorded ones into `work`, which
//! [`Shared::run`](super::Shared::run) runs once the lock is dropped. The
//! state a wake-up announces is changed under the lock, before the lock
//! is let go: a waiter that registers after the change sees the state
//! itself, one that registered before is woken later, never missed.

use std::sync::Arc;

use event_listener::Event as Broadcast;
use peernet_proto::PeerId;

use crate::dialing::Waiter;
use crate::error::ConnectError;
use crate::handlers::RunningTask;
use crate::runtime::Runtime;

use super::{ConnSignals, Shared};

/// One wake-up to make once the lock is let go.
pub(crate) enum Wake {
    /// An earlier deadline was armed: the timer task looks again.
    Timer,
    /// A closed connection's reader and writer stop where they are (its
    /// close was refused the linger: [`ConnSignals::stop`]).
    Stop(Arc<ConnSignals>),
    /// The callers waiting for room in a connection try again (their
    /// registration was taken under the lock:
    /// [`ConnSignals::take_room_waiters`]).
    Room(Arc<ConnSignals>),
    /// A handler task stops: its context's signal is raised, its future
    /// dropped at its next poll ([`RunningTask::stop`]).
    Handler(RunningTask),
    /// No handler runs any more: shutdown's wait for them ends.
    Quiet,
    /// A handshake ended: whoever waits on it (`connect`,
    /// `connect_stream`, `accept_stream`) gets its outcome.
    Handshake(
        oneshot::Sender<Result<PeerId, ConnectError>>,
        Result<PeerId, ConnectError>,
    ),
    /// `connect_peer` callers get their answers (taken from the waiters
    /// under the lock, with the change that answers them).
    Waiters(Vec<(Waiter, Result<(), ConnectError>)>),
    /// The calls waiting for a kept peer's reconnect look again (their
    /// entry was taken under the lock).
    Reconnect(Broadcast),
    /// Events were published: they go to the subscribers, in order
    /// (`outbox.rs`).
    Events,
}

impl Wake {
    /// Makes the wake-up (with the lock dropped).
    pub(crate) fn run<R: Runtime>(self, shared: &Shared<R>) {
        match self {
            Wake::Timer => shared.timer.notify(),
            Wake::Stop(signals) => signals.stop(),
            Wake::Room(signals) => {
                signals.room.notify(usize::MAX);
            }
            Wake::Handler(task) => task.stop(),
            Wake::Quiet => {
                shared.quiet.notify(usize::MAX);
            }
            Wake::Handshake(tx, result) => {
                let _ = tx.send(result);
            }
            Wake::Waiters(answers) => {
                for (tx, answer) in answers {
                    let _ = tx.send(answer);
                }
            }
            Wake::Reconnect(event) => {
                event.notify(usize::MAX);
            }
            Wake::Events => shared.send_events(),
        }
    }
}
