//! A rate limit per key, as a generic cell rate algorithm (GCRA): each
//! charge pushes the key's `clear_at` one `interval` further into the
//! future, from now at the earliest. A key may be admitted while what it
//! owes, `clear_at − now` (plus one interval for each of its admissions
//! still pending, which may yet be charged), is at most `tolerance`. A key
//! whose `clear_at` has passed owes nothing, as one never seen, so it can
//! be forgotten: the table is bounded in keys and swept for forgotten ones
//! at most once per `tolerance + interval`.
//!
//! Why this bounds the charges by admission time: take the charged
//! admissions of a key from `a_i` to `a_k`. When the last of them was
//! admitted, each earlier one had either been charged (pushing `clear_at`
//! one interval past `a_i` at least, each on top of the last) or was
//! pending and counted as one interval owed, so what the key owed was at
//! least `a_i + (n − 1) × interval − a_k`, and the admission needed that
//! to be at most `(burst − 1) × interval`: `n ≤ burst + (a_k − a_i) /
//! interval`. An admission that ends uncharged gives nothing back,
//! because nothing was taken for it.
//!
//! Used for a source's failed handshakes and the node-wide limit on them
//! (`sources/`), and a trusted peer's established connections
//! (`reconnects.rs`).

use core::hash::Hash;
use core::time::Duration;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashMap;

use crate::Instant;

/// A hasher for tables keyed by what peers choose, seeded from the
/// endpoint's RNG so nobody can aim collisions at them.
pub(crate) fn seeded(seed: u64) -> SeedableRandomState {
    SeedableRandomState::with_seed(seed, SharedSeed::global_fixed())
}

/// Charges per key, at most `rate` a second after a burst of `burst`.
pub(crate) struct RateTable<K> {
    /// What one charge costs: a second divided by the rate.
    interval: Duration,
    /// How much a key may owe and still be admitted: `burst − 1`
    /// intervals.
    tolerance: Duration,
    /// Keys tracked at most: past this many, each with a charge too
    /// recent to be forgotten, a new key's charge is dropped (the table
    /// stays bounded in bytes).
    max_keys: usize,
    clear_at: HashMap<K, Instant, SeedableRandomState>,
    /// No sweep for forgotten keys before this: a full table costs a pass
    /// over it at most once per `tolerance + interval`.
    next_sweep: Instant,
}

impl<K: Hash + Eq> RateTable<K> {
    /// `per_second` and `burst` of 0 count as 1; a rate above a billion
    /// a second is no limit (its interval is zero).
    pub(crate) fn new(per_second: u32, burst: u32, max_keys: usize, seed: u64) -> RateTable<K> {
        let interval = Duration::from_secs(1) / per_second.max(1);
        RateTable {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            max_keys,
            clear_at: HashMap::with_hasher(seeded(seed)),
            next_sweep: Instant::ZERO,
        }
    }

    /// Whether `key`, with `pending` admissions not yet charged or
    /// settled, may be admitted once more at `now`.
    pub(crate) fn has_room(&self, key: &K, pending: usize, now: Instant) -> bool {
        let owed = self
            .clear_at
            .get(key)
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        let pending = u32::try_from(pending)
            .ok()
            .and_then(|n| self.interval.checked_mul(n))
            .unwrap_or(Duration::MAX);
        owed.saturating_add(pending) <= self.tolerance
    }

    /// Charges `key` once at `now`.
    pub(crate) fn charge(&mut self, key: K, now: Instant) {
        if let Some(at) = self.clear_at.get_mut(&key) {
            *at = (*at).max(now) + self.interval;
            return;
        }
        if self.clear_at.len() >= self.max_keys {
            if now < self.next_sweep {
                return;
            }
            self.clear_at.retain(|_, at| *at > now);
            self.next_sweep = now + self.tolerance + self.interval;
            if self.clear_at.len() >= self.max_keys {
                return;
            }
        }
        self.clear_at.insert(key, now + self.interval);
    }

    /// Keys tracked (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.clear_at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Instant {
        Instant::from_duration(Duration::from_millis(millis))
    }

    #[test]
    fn a_burst_then_a_rate() {
        // 4 a second (250 ms each) after a burst of 3
        let mut t: RateTable<u8> = RateTable::new(4, 3, 8, 1);
        for _ in 0..3 {
            assert!(t.has_room(&1, 0, at(0)));
            t.charge(1, at(0));
        }
        assert!(!t.has_room(&1, 0, at(0)));
        assert!(!t.has_room(&1, 0, at(249)));
        assert!(t.has_room(&1, 0, at(250)));
        // another key is not held back
        assert!(t.has_room(&2, 0, at(0)));
        // pending admissions count as owed
        assert!(!t.has_room(&2, 3, at(0)));
        assert!(t.has_room(&2, 2, at(0)));
    }

    #[test]
    fn a_rate_above_a_billion_is_no_limit() {
        for rate in [1_000_000_001, u32::MAX] {
            let mut t: RateTable<u8> = RateTable::new(rate, 1, 8, 1);
            for _ in 0..1000 {
                assert!(t.has_room(&1, 0, at(0)));
                t.charge(1, at(0));
            }
        }
        // a billion is one a nanosecond: a limit
        let mut t: RateTable<u8> = RateTable::new(1_000_000_000, 1, 8, 1);
        t.charge(1, at(0));
        assert!(!t.has_room(&1, 0, at(0)));
    }

    #[test]
    fn zero_counts_as_one() {
        let mut t: RateTable<u8> = RateTable::new(0, 0, 8, 1);
        assert!(t.has_room(&1, 0, at(0)));
        t.charge(1, at(0));
        assert!(!t.has_room(&1, 0, at(999)));
        assert!(t.has_room(&1, 0, at(1000)));
    }
}
