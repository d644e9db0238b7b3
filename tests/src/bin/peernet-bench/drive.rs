//! Runtime-agnostic load drivers: the same loop drives every contender, so
//! the harness's own overhead is identical for all of them.

use std::future::Future;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

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
    let mut inflight = FuturesUnordered::new();
    for _ in 0..window {
        inflight.push(op());
    }
    let mut done = 0u64;
    let mut open = true;
    while inflight.next().await.is_some() {
        done += 1;
        if open && done.is_multiple_of(16) && Instant::now() >= deadline {
            open = false;
        }
        if open {
            inflight.push(op());
        }
    }
    done
}
