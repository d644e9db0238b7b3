//! A wake-up flag for exactly one waiting task: a writer waiting for bytes,
//! a reader or accept loop waiting to be stopped (a reader also woken,
//! the flag left down, at its connection's close), the timer waiting for an
//! earlier deadline, a close deadline waiting for its writer's end (one
//! per connection: the core closes a connection once). A second task
//! waiting on the same flag would take the wake-up from the first. Unlike
//! an `event_listener::Event`, waiting allocates nothing, which matters on
//! the per-call path.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

#[derive(Default)]
pub(crate) struct WakeFlag {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl WakeFlag {
    /// Raises the flag and wakes the waiting task, if any.
    pub(crate) fn notify(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Wakes the waiting task without raising the flag: it looks again at
    /// the state that goes with the flag (a reader, at its connection's
    /// close: `ConnSignals::closed`, set before, under the node's lock).
    /// The waiting task reads that state after registering, as
    /// [`WakeFlag::poll_raised`] reads the flag, so no wake-up is missed.
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// Whether the flag is up (without lowering it).
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Ready once the flag is up; lowers it.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.set.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Ready once the flag is up; leaves it up (a stop request).
    pub(crate) fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_set() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits for the flag and lowers it.
    pub(crate) async fn take(&self) {
        poll_fn(|cx| self.poll_take(cx)).await
    }
}
