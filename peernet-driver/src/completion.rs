//! Our calls waiting for their results: one slot per call in flight, in
//! the table the node's lock already guards.
//!
//! A slot holds the waiting caller's waker until the core resolves the
//! call, then the result until the caller takes it. Compared with a
//! oneshot channel per call this costs no allocation and no atomic
//! handshake per call (the table is under the lock the call and its
//! resolution take anyway); the caller takes the lock once more to pick
//! its result up. Under callgrind (`peernet-bench --profile pipe-v2`, both
//! sides of a pipelined 64-byte call) it took 8,235 instructions per call
//! down to 8,097.
//!
//! Every call resolves exactly once (the core's promise); the slot goes
//! when its caller takes the result, or when the caller gives up (the
//! call's future dropped, `Node::call`'s guard), whichever comes first.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use peernet_proto::{CallError, CallId};
use rustc_hash::FxHashMap as FastMap;

/// A call's result, as its caller gets it.
pub(crate) type CallResult = Result<Bytes, CallError>;

enum Slot {
    /// In flight: who to wake.
    Waiting(Waker),
    /// Resolved, not yet picked up.
    Done(CallResult),
}

/// The calls this node made that its callers still wait on, keyed by the
/// core's call id (chosen by this node: no peer picks these keys).
pub(crate) struct Calls<K = CallId> {
    slots: FastMap<K, Slot>,
    /// The last call started was the only one waited on.
    last_alone: bool,
}

impl<K> Default for Calls<K> {
    fn default() -> Self {
        Calls {
            slots: FastMap::default(),
            last_alone: false,
        }
    }
}

impl<K: Hash + Eq> Calls<K> {
    /// The core accepted call `id`: wake `waker` when it resolves.
    /// Returns whether the calls are sequential: `id` is the only call
    /// waited on, and so was the call started before it. (The first call
    /// of a new window of pipelined calls can find itself alone, when the
    /// whole window before it was answered at once; the call before it was
    /// not, so the window's calls are never taken for sequential ones.)
    #[inline]
    pub(crate) fn start(&mut self, id: K, waker: Waker) -> bool {
        self.slots.insert(id, Slot::Waiting(waker));
        let alone = self.slots.len() == 1;
        let sequential = alone && self.last_alone;
        self.last_alone = alone;
        sequential
    }

    /// The core resolved call `id`: keeps the result for the caller and
    /// returns the waker to wake once the lock is dropped. `None` if the
    /// caller already gave up.
    pub(crate) fn complete(&mut self, id: K, result: CallResult) -> Option<Waker> {
        let slot = self.slots.get_mut(&id)?;
        match std::mem::replace(slot, Slot::Done(result)) {
            Slot::Waiting(waker) => Some(waker),
            // (a second resolution: never, the core resolves each call
            // once; the first result was replaced, nobody to wake)
            Slot::Done(_) => None,
        }
    }

    /// The caller's poll: the result if it is in (the slot goes), else
    /// `Pending` with `cx`'s waker kept. A slot that is gone (never: only
    /// the caller removes it) reads as cancelled.
    pub(crate) fn poll(&mut self, id: K, cx: &mut Context<'_>) -> Poll<CallResult> {
        match self.slots.entry(id) {
            Entry::Vacant(_) => Poll::Ready(Err(CallError::Cancelled)),
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Slot::Waiting(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                    Poll::Pending
                }
                Slot::Done(_) => match slot.remove() {
                    Slot::Done(result) => Poll::Ready(result),
                    Slot::Waiting(_) => Poll::Pending,
                },
            },
        }
    }

    /// The caller gave up on call `id` (its future was dropped).
    pub(crate) fn forget(&mut self, id: K) {
        self.slots.remove(&id);
    }

    /// Calls waited on (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn only_a_call_alone_after_a_call_alone_is_sequential() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let mut calls = Calls::default();
        let mut take = |calls: &mut Calls<u64>, id| {
            calls.complete(id, Ok(Bytes::new()));
            assert!(calls.poll(id, &mut cx).is_ready());
        };
        // one call after another: all but the first are sequential
        assert!(!calls.start(1, waker.clone()), "nothing before it");
        take(&mut calls, 1);
        assert!(calls.start(2, waker.clone()));
        take(&mut calls, 2);
        assert!(calls.start(3, waker.clone()));
        // a window of pipelined calls: none is
        assert!(!calls.start(4, waker.clone()));
        assert!(!calls.start(5, waker.clone()));
        for id in 3..=5 {
            take(&mut calls, id);
        }
        // the window answered whole: the next call finds itself alone, but
        // the call before it was not, so it is not taken for sequential
        assert!(!calls.start(6, waker.clone()));
        take(&mut calls, 6);
        assert!(calls.start(7, waker.clone()), "sequential again");
        // a caller that gave up counts as gone
        calls.forget(7);
        assert!(calls.start(8, waker.clone()));
    }

    #[test]
    fn a_result_is_kept_until_taken_and_wakes_the_latest_waker() {
        let (a, b) = (1u64, 2u64);
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut calls = Calls::default();
        calls.start(a, Waker::from(first.clone()));
        calls.start(b, Waker::from(first.clone()));
        // polled again from another task before the result: that one is woken
        let waker = Waker::from(second.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(calls.poll(a, &mut cx).is_pending());
        let woken = calls.complete(a, Ok(Bytes::from_static(b"r")));
        woken.expect("a waker").wake();
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        match calls.poll(a, &mut cx) {
            Poll::Ready(Ok(body)) => assert_eq!(&body[..], b"r"),
            other => panic!("expected the result, got {other:?}"),
        }
        assert_eq!(calls.len(), 1, "the slot went with its result");
        // a caller that gave up: its result has nobody to wake
        calls.forget(b);
        assert!(calls.complete(b, Err(CallError::Timeout)).is_none());
        assert_eq!(calls.len(), 0);
    }
}
