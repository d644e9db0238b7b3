//! The calls a drain found to run and a CANCEL in the same read took
//! back before they started (`drain.rs`).

use std::collections::HashMap;
use std::hash::Hash;

use peernet_proto::InboundCallId;

use super::drain::Work;

/// What [`Unstarted`] needs of a work list's items: which are calls, by
/// id, and a hole to leave in a cancelled one's place. (A trait so that
/// the list can be checked against a plain model with items of the
/// test's making: an `InboundCallId` only comes from the core.)
pub(super) trait Item {
    /// What tells calls apart.
    type Id: Copy + Eq + Hash;
    /// The call's id, if this is a call not started.
    fn call(&self) -> Option<Self::Id>;
    /// A cancelled call's place.
    fn hole() -> Self;
    /// Whether this is [`Item::hole`].
    fn is_hole(&self) -> bool;
}

impl Item for Work {
    type Id = InboundCallId;
    fn call(&self) -> Option<InboundCallId> {
        match self {
            Work::Call(call, _) => Some(call.id),
            _ => None,
        }
    }
    fn hole() -> Work {
        Work::Cancelled
    }
    fn is_hole(&self) -> bool {
        matches!(self, Work::Cancelled)
    }
}

/// Where each `Work::Call` of a drain waits in the work list, so that a
/// CANCEL of a call not started yet finds it at once. The peer chooses
/// how many calls one read brings (up to
/// [`DRAIN_BATCH`](super::drain::DRAIN_BATCH) waiting in the list) and
/// which of them it cancels in the same read: a search of the whole list
/// per CANCEL (a `retain`, which also moved every item behind the one it
/// took out) made a thousand CALLs followed by their CANCELs cost the
/// node 7 to 12 times what the same envelopes cost in groups of ten
/// (50,000 of each: 200 to 237 ms against 17 to 34 ms), for handlers that
/// never ran (review s46). A short list is still searched (at most
/// [`SEARCHED_UP_TO`] items a CANCEL); a longer one is indexed, by a hash
/// map with random keys (the request ids in its keys are the peer's to
/// choose) built by one pass at the first CANCEL that needs it.
pub(super) struct Unstarted<Id = InboundCallId> {
    at: Option<HashMap<Id, usize>>,
    /// Calls cancelled while `at` was in use, left in the list as
    /// `Work::Cancelled` (removing one would move those behind it): once
    /// they are half of it, the list is closed up and `at` dropped, so a
    /// CANCEL costs O(1) on average and the list holds at most twice the
    /// items it otherwise would.
    dead: usize,
}

impl<Id> Default for Unstarted<Id> {
    fn default() -> Self {
        Unstarted { at: None, dead: 0 }
    }
}

/// The longest work list a CANCEL searches rather than indexes.
const SEARCHED_UP_TO: usize = 64;

impl<Id: Copy + Eq + Hash> Unstarted<Id> {
    /// `work`'s last item is a `Work::Call` for `id`, just pushed.
    pub(super) fn pushed<W: Item<Id = Id>>(&mut self, id: Id, work: &[W]) {
        if let Some(at) = &mut self.at {
            at.insert(id, work.len() - 1);
        }
    }

    /// Items of `work` that are not holes left by a cancelled call.
    pub(super) fn live<W>(&self, work: &[W]) -> usize {
        work.len() - self.dead
    }

    /// Takes the call `id` out of `work` if it waits there, not started;
    /// whether it did. (The handler clone it drops is never the last: the
    /// table holds one, and nothing can unexpose under this lock.)
    pub(super) fn cancel<W: Item<Id = Id>>(&mut self, id: Id, work: &mut Vec<W>) -> bool {
        let is_it = |w: &W| w.call() == Some(id);
        if self.at.is_none() && work.len() <= SEARCHED_UP_TO {
            return match work.iter().position(is_it) {
                Some(i) => {
                    work.remove(i);
                    true
                }
                None => false,
            };
        }
        let at = self.at.get_or_insert_with(|| {
            let calls = work.iter().enumerate();
            calls.filter_map(|(i, w)| Some((w.call()?, i))).collect()
        });
        let Some(i) = at.remove(&id) else {
            return false;
        };
        work[i] = W::hole();
        self.dead += 1;
        if 2 * self.dead > work.len() {
            work.retain(|w| !w.is_hole());
            self.dead = 0;
            self.at = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    #[derive(Debug, Clone, PartialEq)]
    enum T {
        Call(u32),
        Other,
        Hole,
    }

    impl Item for T {
        type Id = u32;
        fn call(&self) -> Option<u32> {
            match self {
                T::Call(id) => Some(*id),
                _ => None,
            }
        }
        fn hole() -> T {
            T::Hole
        }
        fn is_hole(&self) -> bool {
            *self == T::Hole
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Calls with new ids.
        Calls(usize),
        /// Work that is no call (a write, a dial...).
        Other,
        /// CANCELs of calls waiting in the list.
        CancelWaiting(Vec<Index>),
        /// A CANCEL of one of the ids pushed so far (perhaps cancelled
        /// already).
        CancelAny(Index),
        /// A CANCEL of an id never pushed (a call running, or unknown).
        Unknown,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1usize..150).prop_map(Op::Calls),
            1 => Just(Op::Other),
            3 => prop::collection::vec(any::<Index>(), 1..150).prop_map(Op::CancelWaiting),
            1 => any::<Index>().prop_map(Op::CancelAny),
            1 => Just(Op::Unknown),
        ]
    }

    /// Checks the list against `model` after each step.
    fn same(work: &[T], model: &[T], unstarted: &Unstarted<u32>) -> Result<(), TestCaseError> {
        let live: Vec<T> = work.iter().filter(|w| !w.is_hole()).cloned().collect();
        prop_assert_eq!(&live, model);
        prop_assert_eq!(unstarted.live(work), model.len());
        prop_assert!(
            work.len() <= 2 * model.len(),
            "{} for {}",
            work.len(),
            model.len()
        );
        Ok(())
    }

    std::thread_local! {
        /// Items looked at (`call`, `is_hole`) by this thread's list.
        static LOOKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// A work item that counts how often the list looks at it.
    #[derive(Debug)]
    struct Counted(Option<u32>);

    impl Item for Counted {
        type Id = u32;
        fn call(&self) -> Option<u32> {
            LOOKS.with(|n| n.set(n.get() + 1));
            self.0
        }
        fn hole() -> Counted {
            Counted(None)
        }
        fn is_hole(&self) -> bool {
            LOOKS.with(|n| n.set(n.get() + 1));
            self.0.is_none()
        }
    }

    /// Items looked at to push `n` calls and then cancel them all, in
    /// the order `order` gives.
    fn looks_to_cancel(n: u32, order: impl Fn(u32) -> u32) -> usize {
        let mut work = Vec::new();
        let mut unstarted = Unstarted::default();
        for id in 0..n {
            work.push(Counted(Some(id)));
            unstarted.pushed(id, &work);
        }
        LOOKS.with(|l| l.set(0));
        for i in 0..n {
            assert!(unstarted.cancel(order(i), &mut work));
        }
        assert_eq!(unstarted.live(&work), 0);
        LOOKS.with(std::cell::Cell::get)
    }

    /// The peer's worst cases cost a bounded number of looks per CANCEL,
    /// whatever the batch's size (a search per CANCEL, taken for any list
    /// length, made 524,800 looks for 1,024 calls cancelled last first).
    /// Deterministic, unlike the timing in `cancels_in_one_read.rs`.
    #[test]
    fn each_cancel_looks_at_a_bounded_number_of_items() {
        for n in [SEARCHED_UP_TO as u32, 1024, 8192] {
            let in_order = looks_to_cancel(n, |i| i);
            let reversed = looks_to_cancel(n, |i| n - 1 - i);
            let spread = looks_to_cancel(n, |i| (i * 7919) % n);
            for (how, looks) in [
                ("in order", in_order),
                ("reversed", reversed),
                ("spread", spread),
            ] {
                assert!(
                    looks <= 4 * n as usize + SEARCHED_UP_TO * SEARCHED_UP_TO,
                    "{n} calls cancelled {how}: {looks} looks"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against the list the drain kept before (a `retain` per
        /// CANCEL): the same items in the same order once the holes are
        /// left out, the same answer to each CANCEL, the live count the
        /// batch uses, and at most twice the live items held.
        #[test]
        fn the_work_list_is_the_one_a_retain_kept(ops in prop::collection::vec(op(), 0..40)) {
            let (mut work, mut model) = (Vec::new(), Vec::new());
            let mut unstarted = Unstarted::default();
            let mut next = 0u32;
            for op in ops {
                let cancels: Vec<u32> = match op {
                    Op::Calls(n) => {
                        for _ in 0..n {
                            work.push(T::Call(next));
                            unstarted.pushed(next, &work);
                            model.push(T::Call(next));
                            next += 1;
                            same(&work, &model, &unstarted)?;
                        }
                        continue;
                    }
                    Op::Other => {
                        work.push(T::Other);
                        model.push(T::Other);
                        continue;
                    }
                    Op::CancelWaiting(picks) => picks
                        .iter()
                        .map(|i| {
                            let waiting: Vec<u32> = model.iter().filter_map(T::call).collect();
                            if waiting.is_empty() { u32::MAX } else { *i.get(&waiting) }
                        })
                        .collect(),
                    Op::CancelAny(i) => vec![if next == 0 { u32::MAX } else { i.index(next as usize) as u32 }],
                    Op::Unknown => vec![u32::MAX],
                };
                for id in cancels {
                    let before = model.len();
                    model.retain(|w| *w != T::Call(id));
                    let took = unstarted.cancel(id, &mut work);
                    prop_assert_eq!(took, model.len() < before);
                    same(&work, &model, &unstarted)?;
                }
            }
        }
    }
}
