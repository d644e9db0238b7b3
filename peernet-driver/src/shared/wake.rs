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
//!
//! A waker that panics is contained ([`Shared::contain`]): the wake-ups
//! made with it in one batch (the other callers of a closed connection,
//! the other `connect_peer` waiters, the other subscribers of an event,
//! and whatever else the same pass through the lock found) are made all
//! the same, and the batch's bookkeeping (handlers started, replies
//! given) is done. Its panic is logged, not resumed: the task that ran
//! the batch is not the one whose waker panicked (often it is the node's
//! own reader, timer or writer), and would die for another's bug.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    /// A handler task stops: its future is dropped at once (or as its
    /// poll returns, if it is being polled), then its context's signal is
    /// raised ([`RunningTask::stop`]).
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
                    // (each its own: one waker's panic, the others answered)
                    shared.contain(|| {
                        let _ = tx.send(answer);
                    });
                }
            }
            Wake::Reconnect(event) => {
                event.notify(usize::MAX);
            }
            Wake::Events => shared.send_events(),
        }
    }
}

impl<R: Runtime> Shared<R> {
    /// Runs `wake` (a wake-up, with the lock dropped), containing a panic
    /// of the waker it runs: `None` then, and the panic is logged at
    /// `error` (at the 1st, 2nd, 4th, 8th... only: a waker that panics at
    /// every wake-up must not flood the log; the panic hook has printed
    /// each already). See the module docs for why it is not resumed.
    pub(crate) fn contain<T>(&self, wake: impl FnOnce() -> T) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(wake)) {
            Ok(out) => Some(out),
            Err(panic) => {
                let panics = self.waker_panics.fetch_add(1, Ordering::Relaxed) + 1;
                if panics.is_power_of_two() {
                    let note = panic
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("");
                    tracing::error!(
                        panics,
                        panic = note,
                        "a waker panicked as it was woken; the other wake-ups were made"
                    );
                }
                None
            }
        }
    }
}
