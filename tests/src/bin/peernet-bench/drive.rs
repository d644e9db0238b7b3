//! Runtime-agnostic load drivers: the same loop drives every contender, so
//! the harness's own overhead is identical for all of them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use futures::future::{Either, Pending, pending};
use futures::stream::FuturesUnordered;

/// Whether [`pipelined`] holds one never-ready future beside the window
/// (`--harness-yield false`), which keeps `FuturesUnordered` from ever
/// polling every future it holds in one poll, so that its own yield
/// (wake the task, return `Pending`) never fires. See the README.
static NO_WINDOW_YIELD: AtomicBool = AtomicBool::new(false);

/// Sets what [`NO_WINDOW_YIELD`] says, for the whole run.
pub fn set_window_yield(yields: bool) {
    NO_WINDOW_YIELD.store(!yields, Ordering::Relaxed);
}

/// Sequential operations until `deadline`: returns (count, latencies ns).
pub async fn sequential<F, Fut>(deadline: Instant, mut op: F) -> (u64, Vec<u64>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut lat = Vec::with_capacity(1 << 16);
    loop {
        let t = Instant::now();
        if t >= deadline {
            break;
        }
        op().await;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    (lat.len() as u64, lat)
}

/// Sequential operations until `deadline` without latency recording.
pub async fn sequential_count<F, Fut>(deadline: Instant, mut op: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut n = 0;
    while Instant::now() < deadline {
        op().await;
        n += 1;
    }
    n
}

/// `window` operations in flight from one task until `deadline`, then the
/// outstanding ones complete. Returns the number completed.
pub async fn pipelined<F, Fut>(window: usize, deadline: Instant, mut op: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut inflight: FuturesUnordered<Either<Fut, Pending<()>>> = FuturesUnordered::new();
    let extra = usize::from(NO_WINDOW_YIELD.load(Ordering::Relaxed));
    if extra == 1 {
        inflight.push(Either::Right(pending()));
    }
    for _ in 0..window {
        inflight.push(Either::Left(op()));
    }
    let mut done = 0u64;
    let mut open = true;
    while inflight.len() > extra && inflight.next().await.is_some() {
        done += 1;
        if open && done.is_multiple_of(16) && Instant::now() >= deadline {
            open = false;
        }
        if open {
            inflight.push(Either::Left(op()));
        }
    }
    done
}
