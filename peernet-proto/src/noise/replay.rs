//! The replay cache of section 6.1: the ephemeral keys of the INITs a
//! responder answered within the last `handshake_timeout`, in a bounded set.

use alloc::collections::VecDeque;
use core::time::Duration;

use hashbrown::HashSet;

use crate::time::Instant;

type Hasher = foldhash::fast::FixedState;

/// Remembers the ephemeral keys of answered INITs for `window` (the
/// `handshake_timeout`), at most `capacity` of them. When full, the oldest
/// is forgotten first: a replay of it then costs the responder a pending
/// slot until the handshake timeout, never a connection (the replayer
/// cannot send the first record).
#[derive(Debug, Clone)]
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    // Insertion order, for expiry and eviction.
    order: VecDeque<([u8; 32], Instant)>,
    keys: HashSet<[u8; 32], Hasher>,
}

impl ReplayCache {
    /// An empty cache for `capacity` keys (at least 1), each kept for
    /// `window`. `seed` (from the injected RNG) keys the hash table, so a
    /// peer cannot predict its collisions.
    pub fn new(capacity: usize, window: Duration, seed: u64) -> ReplayCache {
        let capacity = capacity.max(1);
        ReplayCache {
            window,
            capacity,
            order: VecDeque::new(),
            keys: HashSet::with_hasher(Hasher::with_seed(seed)),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.window {
                break;
            }
            self.keys.remove(key);
            self.order.pop_front();
        }
    }

    /// Whether `ephemeral` was answered within the window before `now`.
    pub fn contains(&mut self, ephemeral: &[u8; 32], now: Instant) -> bool {
        self.expire(now);
        self.keys.contains(ephemeral)
    }

    /// Records that an INIT with `ephemeral` was answered at `now`. `now`
    /// must not go backwards between calls (the endpoint's clock never does).
    pub fn insert(&mut self, ephemeral: [u8; 32], now: Instant) {
        self.expire(now);
        if !self.keys.insert(ephemeral) {
            return;
        }
        if self.order.len() == self.capacity {
            if let Some((oldest, _)) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        self.order.push_back((ephemeral, now));
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> [u8; 32] {
        [i; 32]
    }

    #[test]
    fn remembers_within_the_window_and_forgets_after() {
        let mut cache = ReplayCache::new(8, Duration::from_secs(10), 7);
        let t0 = Instant::from_millis(1_000);
        assert!(!cache.contains(&key(1), t0));
        cache.insert(key(1), t0);
        assert!(cache.contains(&key(1), t0 + Duration::from_millis(9_999)));
        assert!(!cache.contains(&key(2), t0));
        assert!(!cache.contains(&key(1), t0 + Duration::from_secs(10)));
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_bounded_and_evicts_the_oldest() {
        let mut cache = ReplayCache::new(3, Duration::from_secs(10), 7);
        let t = Instant::from_millis(5);
        for i in 0..5 {
            cache.insert(key(i), t + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(cache.len(), 3);
        let later = t + Duration::from_millis(10);
        assert!(!cache.contains(&key(0), later));
        assert!(!cache.contains(&key(1), later));
        assert!(cache.contains(&key(2), later));
        assert!(cache.contains(&key(4), later));
        // A repeated insert neither grows the set nor evicts anything.
        cache.insert(key(4), later);
        assert_eq!(cache.len(), 3);
        assert!(cache.contains(&key(2), later));
    }
}
