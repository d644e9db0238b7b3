//! The calls in flight on one connection in one direction: request id →
//! deadline.
//!
//! A hash table rather than a `BTreeMap`: every call inserts and removes
//! once on each side, and the tree's node walks and rebalancing were ~900
//! instructions per call (callgrind, pipelined 64 × 64 B). Inbound ids are
//! chosen by the peer, so the hasher is seeded per session from the
//! endpoint's RNG (foldhash: seeded, `no_std`) and the table is capped by
//! `Config::max_inbound_calls` anyway; a peer cannot aim collisions it
//! cannot predict. Whatever leaves the table in bulk (timeouts, teardown)
//! comes out sorted, so the endpoint stays deterministic for a given seed
//! whatever the table's iteration order.

use alloc::vec::Vec;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashMap;

use crate::Instant;

pub(crate) struct InFlight {
    /// Id -> deadline, `NO_DEADLINE` for none: 16-byte entries rather than
    /// 24 with an `Option`, as every call touches one.
    calls: HashMap<u64, Instant, SeedableRandomState>,
}

/// A deadline that saturated to `Instant::MAX` never comes either, so it
/// is the same as none.
const NO_DEADLINE: Instant = Instant::MAX;

impl InFlight {
    pub(crate) fn new(seed: u64) -> InFlight {
        let hasher = SeedableRandomState::with_seed(seed, SharedSeed::global_fixed());
        InFlight {
            calls: HashMap::with_hasher(hasher),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.calls.contains_key(&id)
    }

    pub(crate) fn insert(&mut self, id: u64, deadline: Option<Instant>) {
        self.calls.insert(id, deadline.unwrap_or(NO_DEADLINE));
    }

    /// Whether `id` was in flight.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        self.calls.remove(&id).is_some()
    }

    /// Removes the calls whose deadline is at or before `now` and returns
    /// them earliest deadline first (then by id), with the earliest
    /// deadline left.
    pub(crate) fn take_due(&mut self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let mut due: Vec<(Instant, u64)> = Vec::new();
        let mut next: Option<Instant> = None;
        self.calls.retain(|&id, &mut at| {
            if at == NO_DEADLINE {
                true
            } else if at <= now {
                due.push((at, id));
                false
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
                true
            }
        });
        due.sort_unstable();
        (due.into_iter().map(|(_, id)| id).collect(), next)
    }

    /// Empties the table and returns its ids in ascending order.
    pub(crate) fn drain_sorted(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.calls.drain().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn take_due_is_ordered_and_leaves_the_rest() {
        let mut t = InFlight::new(7);
        for (id, deadline) in [
            (9, Some(at(5))),
            (3, Some(at(5))),
            (4, Some(at(1))),
            (5, None),
        ] {
            t.insert(id, deadline);
        }
        t.insert(8, Some(at(20)));
        t.insert(6, Some(Instant::MAX));
        let (due, next) = t.take_due(at(5));
        assert_eq!(due, [4, 3, 9]);
        assert_eq!(next, Some(at(20)));
        assert_eq!(t.len(), 3);
        assert!(t.contains(5) && t.contains(8) && t.contains(6) && !t.contains(3));
        assert_eq!(t.take_due(Instant::MAX).0, [8]);
    }

    #[test]
    fn drain_is_in_id_order_whatever_the_seed() {
        for seed in [0, 1, u64::MAX] {
            let mut t = InFlight::new(seed);
            for id in [u64::MAX, 17, 2, 1 << 40, 3] {
                t.insert(id, None);
            }
            assert!(t.remove(17));
            assert!(!t.remove(17));
            assert_eq!(t.drain_sorted(), [2, 3, 1 << 40, u64::MAX]);
            assert!(t.is_empty());
        }
    }
}
