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
//!
//! Each entry may carry a small value `V` beside its deadline: the calls
//! we serve carry the size of their arguments (`u32`, for the byte
//! budgets: 24-byte entries), our own calls carry nothing (`()`, entries
//! stay 16 bytes).

use alloc::vec::Vec;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashMap;

use crate::Instant;
use crate::timers::{Timer, Timers};

/// The table and its one deadline timer, kept together so that every way a
/// call enters or leaves the table keeps the timer right: armed at or
/// before the earliest deadline while calls with deadlines are in flight,
/// disarmed once the table is empty. One timer per connection and
/// direction rather than one per call (see `Timer::Outbound`).
pub(crate) struct InFlight<V: Copy = ()> {
    /// Id -> deadline, `NO_DEADLINE` for none (16-byte entries rather than
    /// 24 with an `Option`, as every call touches one), and the value.
    calls: HashMap<u64, (Instant, V), SeedableRandomState>,
    /// `Timer::Outbound(conn)` or `Timer::Inbound(conn)`.
    timer: Timer,
    /// When `timer` is armed for, if it is.
    armed: Option<Instant>,
}

/// A deadline that saturated to `Instant::MAX` never comes either, so it
/// is the same as none.
const NO_DEADLINE: Instant = Instant::MAX;

impl InFlight<()> {
    /// Adds a call, arming the timer if its deadline is the earliest.
    pub(crate) fn insert(&mut self, id: u64, deadline: Option<Instant>, timers: &mut Timers) {
        self.insert_with(id, deadline, (), timers);
    }
}

impl<V: Copy> InFlight<V> {
    pub(crate) fn new(seed: u64, timer: Timer) -> InFlight<V> {
        let hasher = SeedableRandomState::with_seed(seed, SharedSeed::global_fixed());
        InFlight {
            calls: HashMap::with_hasher(hasher),
            timer,
            armed: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.calls.contains_key(&id)
    }

    /// The value of a call in flight.
    pub(crate) fn get(&self, id: u64) -> Option<V> {
        self.calls.get(&id).map(|&(_, value)| value)
    }

    /// Adds a call with its value, arming the timer if its deadline is
    /// the earliest.
    pub(crate) fn insert_with(
        &mut self,
        id: u64,
        deadline: Option<Instant>,
        value: V,
        timers: &mut Timers,
    ) {
        self.calls
            .insert(id, (deadline.unwrap_or(NO_DEADLINE), value));
        let Some(at) = deadline else { return };
        if self.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        if let Some(old) = self.armed.replace(at) {
            timers.disarm(old, self.timer);
        }
        timers.arm(at, self.timer);
    }

    /// Removes a call; whether it was in flight. A completing call leaves
    /// the timer armed unless it was the last one.
    pub(crate) fn remove(&mut self, id: u64, timers: &mut Timers) -> bool {
        self.take(id, timers).is_some()
    }

    /// [`InFlight::take`] only if `meant` says the call's value is the
    /// one meant (one lookup).
    pub(crate) fn take_if(
        &mut self,
        id: u64,
        meant: impl FnOnce(&V) -> bool,
        timers: &mut Timers,
    ) -> Option<V> {
        let hashbrown::hash_map::Entry::Occupied(entry) = self.calls.entry(id) else {
            return None;
        };
        if !meant(&entry.get().1) {
            return None;
        }
        let (_, value) = entry.remove();
        if self.calls.is_empty() {
            self.disarm(timers);
        }
        Some(value)
    }

    /// [`InFlight::remove`], returning the call's value if it was in
    /// flight.
    pub(crate) fn take(&mut self, id: u64, timers: &mut Timers) -> Option<V> {
        let (_, value) = self.calls.remove(&id)?;
        if self.calls.is_empty() {
            self.disarm(timers);
        }
        Some(value)
    }

    /// The timer fired (and so left `timers`): removes the calls whose
    /// deadline is at or before `now` and returns them earliest deadline
    /// first (then by id), re-arming the timer for the earliest deadline
    /// left.
    pub(crate) fn take_due(&mut self, now: Instant, timers: &mut Timers) -> Vec<u64> {
        let due = self.take_due_with(now, timers);
        due.into_iter().map(|(id, _)| id).collect()
    }

    /// [`InFlight::take_due`] with each call's value.
    pub(crate) fn take_due_with(&mut self, now: Instant, timers: &mut Timers) -> Vec<(u64, V)> {
        self.armed = None;
        let mut due: Vec<(Instant, u64, V)> = Vec::new();
        let mut next: Option<Instant> = None;
        self.calls.retain(|&id, &mut (at, value)| {
            if at == NO_DEADLINE {
                true
            } else if at <= now {
                due.push((at, id, value));
                false
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
                true
            }
        });
        if let Some(at) = next {
            self.armed = Some(at);
            timers.arm(at, self.timer);
        }
        due.sort_unstable_by_key(|&(at, id, _)| (at, id));
        due.into_iter().map(|(_, id, value)| (id, value)).collect()
    }

    /// Empties the table, disarms the timer, and returns the ids in
    /// ascending order.
    pub(crate) fn drain_sorted(&mut self, timers: &mut Timers) -> Vec<u64> {
        let calls = self.drain_sorted_with(timers);
        calls.into_iter().map(|(id, _)| id).collect()
    }

    /// [`InFlight::drain_sorted`] with each call's value.
    pub(crate) fn drain_sorted_with(&mut self, timers: &mut Timers) -> Vec<(u64, V)> {
        self.disarm(timers);
        let mut calls: Vec<(u64, V)> = self.calls.drain().map(|(id, (_, v))| (id, v)).collect();
        calls.sort_unstable_by_key(|&(id, _)| id);
        calls
    }

    fn disarm(&mut self, timers: &mut Timers) {
        if let Some(at) = self.armed.take() {
            timers.disarm(at, self.timer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnId;
    use core::time::Duration;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn table(seed: u64) -> (InFlight<()>, Timers) {
        (
            InFlight::new(seed, Timer::Outbound(ConnId(1))),
            Timers::default(),
        )
    }

    #[test]
    fn take_due_is_ordered_and_leaves_the_rest() {
        let (mut t, mut timers) = table(7);
        for (id, deadline) in [
            (9, Some(at(5))),
            (3, Some(at(5))),
            (4, Some(at(1))),
            (5, None),
        ] {
            t.insert(id, deadline, &mut timers);
        }
        t.insert(8, Some(at(20)), &mut timers);
        t.insert(6, Some(Instant::MAX), &mut timers);
        assert_eq!(timers.next(), Some(at(1)));
        let _ = timers.pop_due(at(5));
        let due = t.take_due(at(5), &mut timers);
        assert_eq!(due, [4, 3, 9]);
        assert_eq!(timers.next(), Some(at(20)));
        assert_eq!(t.len(), 3);
        assert!(t.contains(5) && t.contains(8) && t.contains(6) && !t.contains(3));
        let _ = timers.pop_due(Instant::MAX);
        assert_eq!(t.take_due(Instant::MAX, &mut timers), [8]);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn drain_is_in_id_order_whatever_the_seed() {
        for seed in [0, 1, u64::MAX] {
            let (mut t, mut timers) = table(seed);
            for id in [u64::MAX, 17, 2, 1 << 40, 3] {
                t.insert(id, Some(at(id % 1000)), &mut timers);
            }
            assert!(t.remove(17, &mut timers));
            assert!(!t.remove(17, &mut timers));
            assert_eq!(t.drain_sorted(&mut timers), [2, 3, 1 << 40, u64::MAX]);
            assert_eq!(t.len(), 0);
            assert_eq!(timers.len(), 0, "no timer left armed");
        }
    }

    #[test]
    fn the_timer_is_disarmed_with_the_last_call() {
        let (mut t, mut timers) = table(3);
        t.insert(1, Some(at(10)), &mut timers);
        t.insert(2, Some(at(5)), &mut timers);
        assert_eq!((timers.len(), timers.next()), (1, Some(at(5))));
        assert!(t.remove(2, &mut timers));
        assert_eq!(timers.len(), 1, "left armed while a call is in flight");
        assert!(t.remove(1, &mut timers));
        assert_eq!(timers.len(), 0);
    }
}
