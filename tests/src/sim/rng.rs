//! The one seeded RNG behind every choice of a run.
//!
//! Everything random in a run (the scenario, the network, the workload,
//! the simulated applications and the endpoints' own RNGs) is drawn from
//! one [`SimRng`] seeded with the run's seed, in a fixed order, so a seed
//! replays exactly.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// ChaCha20 seeded from the run's seed, with the few draws the simulator
/// needs.
pub struct SimRng(ChaCha20Rng);

impl SimRng {
    /// The RNG of the run with this seed.
    pub fn new(seed: u64) -> SimRng {
        SimRng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// A uniformly random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (`n > 0`); multiply-shift, bias below 2^-32.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    /// An index into a collection of `len` items (`len > 0`).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }

    /// One of `items`, or `None` if empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.index(items.len())])
    }

    /// An index chosen with the given weights (at least one non-zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < u64::from(*w) {
                return i;
            }
            x -= u64::from(*w);
        }
        unreachable!("x < total")
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        self.0.fill_bytes(&mut out);
        out
    }

    /// 32 random bytes (identity seeds, nonces).
    pub fn array32(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        self.0.fill_bytes(&mut out);
        out
    }

    /// An independent ChaCha20 stream for an endpoint, derived from this
    /// one (so it too replays with the seed).
    pub fn fork(&mut self) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(self.u64())
    }
}
