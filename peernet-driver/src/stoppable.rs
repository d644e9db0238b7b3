//! A handler task's future, shared by the task that polls it and the
//! driver, which drops it at once when it stops the handler (CANCEL, the
//! served deadline, a closed connection, an unpaired peer, shutdown).
//!
//! The core gives a call's slot and the bytes of its arguments back at
//! its CANCEL; a handler's state keeps those arguments alive (it
//! captured them) until its future is dropped. An abort that dropped it
//! only at the task's next poll let a CANCEL storm keep 2 to 3 times
//! `max_inbound_bytes_per_conn` of arguments alive (review s57,
//! `peernet-tokio/tests/cancel_storm.rs`): the runtime polled the aborted
//! tasks long after their CANCEL had made room for the next CALLs. Here
//! the stop takes the future out of the slot and drops it before it
//! returns, so before the task that handled the CANCEL reads on.
//!
//! A future being polled at that moment is out of the slot (the poll runs
//! with the slot's lock let go: a handler may stop handlers, itself
//! included, from inside its poll); the stop leaves word, and the poller
//! drops it as that poll returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::FutureExt;

/// The future of one handler task, which [`Stoppable::stop`] drops.
pub(crate) struct Stoppable<F> {
    state: Mutex<State<F>>,
}

struct State<F> {
    /// The future; `None` while it is polled, and once done or stopped.
    fut: Option<F>,
    /// The task to wake when the future is stopped between polls (it then
    /// ends at its next poll).
    waker: Option<Waker>,
    /// Stopped: the future is (or, if it was being polled, will be, as
    /// that poll returns) dropped, and the task ends.
    stopped: bool,
}

impl<F: Future + Unpin> Stoppable<F> {
    /// A slot holding `fut`.
    pub(crate) fn new(fut: F) -> Arc<Stoppable<F>> {
        Arc::new(Stoppable {
            state: Mutex::new(State {
                fut: Some(fut),
                waker: None,
                stopped: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<F>> {
        // (no code but this file's runs under it: a poisoned lock still
        // holds a consistent state)
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the future now, or, if it is being polled, as that poll
    /// returns; the task ends at its next poll. Never waits for a poll
    /// (the one polled may be the caller's own).
    pub(crate) fn stop(&self) {
        let (fut, waker) = {
            let mut state = self.lock();
            state.stopped = true;
            (state.fut.take(), state.waker.take())
        };
        // (both with the lock let go: dropping a handler's state runs the
        // application's code, and so may a waker)
        drop(fut);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Polls the future: `Ready(None)` once it was stopped.
    pub(crate) fn poll_run(&self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let mut fut = {
            let mut state = self.lock();
            match state.fut.take() {
                Some(fut) => fut,
                None => return Poll::Ready(None),
            }
        };
        let poll = fut.poll_unpin(cx);
        if poll.is_ready() {
            drop(fut);
            return poll.map(Some);
        }
        let mut state = self.lock();
        if state.stopped {
            // (stopped while it was polled)
            drop(state);
            drop(fut);
            return Poll::Ready(None);
        }
        state.fut = Some(fut);
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The task's side of a [`Stoppable`]: runs its future to its end, or
/// to its stop (`None`).
pub(crate) struct Run<F>(pub(crate) Arc<Stoppable<F>>);

impl<F: Future + Unpin> Future for Run<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_run(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops; pending until `ready` is set.
    struct Probe {
        drops: Arc<AtomicUsize>,
        polls: usize,
        ready_after: usize,
    }

    impl Future for Probe {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            match self.polls > self.ready_after {
                true => Poll::Ready(self.polls),
                false => Poll::Pending,
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe(ready_after: usize) -> (Arc<AtomicUsize>, Probe) {
        let drops = Arc::new(AtomicUsize::new(0));
        let probe = Probe {
            drops: drops.clone(),
            polls: 0,
            ready_after,
        };
        (drops, probe)
    }

    #[test]
    fn a_stop_between_polls_drops_the_future_before_it_returns() {
        let (drops, fut) = probe(usize::MAX);
        let slot = Stoppable::new(fut);
        let mut run = Run(slot.clone());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        slot.stop();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped by the stop");
        assert_eq!(Pin::new(&mut run).poll(&mut cx), Poll::Ready(None));
        // a second stop does nothing
        slot.stop();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_future_runs_to_its_end_and_a_late_stop_does_nothing() {
        let (drops, fut) = probe(2);
        let slot = Stoppable::new(fut);
        let mut run = Run(slot.clone());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        assert_eq!(Pin::new(&mut run).poll(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        slot.stop();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    /// Stops its own slot from inside its poll (a handler that ends its
    /// caller's connection): no deadlock, dropped as the poll returns.
    struct SelfStop {
        slot: Arc<Mutex<Option<Arc<Stoppable<SelfStop>>>>>,
        drops: Arc<AtomicUsize>,
    }

    impl Future for SelfStop {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            let slot = self.slot.lock().unwrap().take().unwrap();
            slot.stop();
            assert_eq!(self.drops.load(Ordering::SeqCst), 0, "not while polled");
            Poll::Pending
        }
    }

    impl Drop for SelfStop {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_stop_during_the_poll_drops_the_future_as_the_poll_returns() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Mutex::new(None));
        let slot = Stoppable::new(SelfStop {
            slot: cell.clone(),
            drops: drops.clone(),
        });
        *cell.lock().unwrap() = Some(slot.clone());
        let mut run = Run(slot);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut run).poll(&mut cx), Poll::Ready(None));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
