//! Runs many seeds on every core, for the sweeps of `tests/` (the mixed
//! simulation and the kept-connection one): one runner, so that both stop
//! the same way and report the same failing seed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Violation;
use super::keep::KeepViolation;

/// A violation that names the seed it was found at.
pub trait Seeded {
    /// The run's seed.
    fn seed(&self) -> u64;
}

impl Seeded for Violation {
    fn seed(&self) -> u64 {
        self.seed
    }
}

impl Seeded for KeepViolation {
    fn seed(&self) -> u64 {
        self.seed
    }
}

/// Runs `run` for every one of `seeds` on every core, stopping at the first
/// violation; returns every report, or the violation of the lowest failing
/// seed found (seeds already started finish first, so a lower failing seed
/// than the first one seen is still preferred).
pub fn run_seeds<R, V>(seeds: &[u64], run: impl Fn(u64) -> Result<R, V> + Sync) -> Result<Vec<R>, V>
where
    R: Send,
    V: Send + Seeded,
{
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let reports = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::<V>::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&seed) = seeds.get(i) else { break };
                    match run(seed) {
                        Ok(report) => reports.lock().unwrap().push(report),
                        Err(violation) => {
                            stop.store(true, Ordering::Relaxed);
                            failures.lock().unwrap().push(violation);
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(Seeded::seed);
    match failures.into_iter().next() {
        Some(v) => Err(v),
        None => Ok(reports.into_inner().unwrap()),
    }
}
