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
use std::task::{Poll, Waker};

use bytes::Bytes;
use peernet_proto::{CallError, CallId};
use rustc_hash::FxHashMap as FastMap;

/// A call's result, as its caller gets it.
pub(crate) type CallResult = Result<Bytes, CallError>;

/// What a caller's poll found ([`Calls::poll`]).
pub(crate) enum Polled {
    /// The call resolved: its result (the slot is gone).
    Done(CallResult),
    /// Still in flight; the slot keeps the polling task's waker.
    Waiting,
    /// Still in flight, and the slot keeps another task's waker: the
    /// poller clones its own with the lock let go (a waker's clone and
    /// drop are the application's code) and gives it with
    /// [`Calls::rewake`].
    OtherTask,
}

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

    /// The caller's poll, under the node's lock: the result if it is in
    /// (the slot goes), else whether the slot keeps `waker`'s task. A slot
    /// that is gone (never: only the caller removes it) reads as
    /// cancelled.
    pub(crate) fn poll(&mut self, id: K, waker: &Waker) -> Polled {
        match self.slots.entry(id) {
            Entry::Vacant(_) => Polled::Done(Err(CallError::Cancelled)),
            Entry::Occupied(slot) => match slot.get() {
                Slot::Waiting(kept) if kept.will_wake(waker) => Polled::Waiting,
                Slot::Waiting(_) => Polled::OtherTask,
                Slot::Done(_) => match slot.remove() {
                    Slot::Done(result) => Polled::Done(result),
                    Slot::Waiting(_) => Polled::Waiting,
                },
            },
        }
    }

    /// After [`Polled::OtherTask`]: `waker` (cloned with the lock let
    /// go) is kept instead. Returns the result if it came in meanwhile,
    /// and the waker replaced (or `waker`, unused), to drop once the lock
    /// is let go.
    pub(crate) fn rewake(&mut self, id: K, waker: Waker) -> (Poll<CallResult>, Waker) {
        match self.slots.get_mut(&id) {
            None => (Poll::Ready(Err(CallError::Cancelled)), waker),
            Some(Slot::Waiting(kept)) => (Poll::Pending, std::mem::replace(kept, waker)),
            Some(Slot::Done(_)) => match self.slots.remove(&id) {
                Some(Slot::Done(result)) => (Poll::Ready(result), waker),
                _ => (Poll::Pending, waker),
            },
        }
    }

    /// The caller gave up on call `id` (its future was dropped): returns
    /// the waker it left, to drop once the lock is let go.
    pub(crate) fn forget(&mut self, id: K) -> Option<Waker> {
        match self.slots.remove(&id)? {
            Slot::Waiting(waker) => Some(waker),
            Slot::Done(_) => None,
        }
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
        let mut calls = Calls::default();
        let take = |calls: &mut Calls<u64>, id| {
            calls.complete(id, Ok(Bytes::new()));
            assert!(matches!(calls.poll(id, &waker), Polled::Done(Ok(_))));
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
        // a caller that gave up counts as gone; its waker is given back
        assert!(calls.forget(7).is_some());
        assert!(calls.start(8, waker.clone()));
    }

    #[test]
    fn a_result_is_kept_until_taken_and_wakes_the_latest_waker() {
        let (a, b) = (1u64, 2u64);
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut calls = Calls::default();
        calls.start(a, Waker::from(first.clone()));
        calls.start(b, Waker::from(first.clone()));
        // polled again from another task before the result: its waker is
        // given (cloned outside the lock), and that one is woken
        let waker = Waker::from(second.clone());
        assert!(matches!(calls.poll(a, &waker), Polled::OtherTask));
        let (polled, replaced) = calls.rewake(a, waker.clone());
        assert!(polled.is_pending());
        assert!(replaced.will_wake(&Waker::from(first.clone())));
        assert!(matches!(calls.poll(a, &waker), Polled::Waiting));
        let woken = calls.complete(a, Ok(Bytes::from_static(b"r")));
        woken.expect("a waker").wake();
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        match calls.poll(a, &waker) {
            Polled::Done(Ok(body)) => assert_eq!(&body[..], b"r"),
            _ => panic!("expected the result"),
        }
        assert_eq!(calls.len(), 1, "the slot went with its result");
        // a result that came in between the poll and the new waker
        assert!(matches!(calls.poll(b, &waker), Polled::OtherTask));
        calls.complete(b, Ok(Bytes::from_static(b"s")));
        match calls.rewake(b, waker.clone()) {
            (Poll::Ready(Ok(body)), _) => assert_eq!(&body[..], b"s"),
            _ => panic!("expected the result"),
        }
        assert_eq!(calls.len(), 0);
        // a caller that gave up: its result has nobody to wake
        calls.start(3, waker.clone());
        assert!(calls.forget(3).is_some());
        assert!(calls.complete(3, Err(CallError::Timeout)).is_none());
        assert_eq!(calls.len(), 0);
    }
}
