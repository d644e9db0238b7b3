//! Runtime-agnostic load drivers: the same loop drives every contender, so
//! the harness's own overhead is identical for all of them.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use futures::Stream;
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

/// Whether [`pipelined`] counts its loop's yields (`--count-yields`).
static COUNT_YIELDS: AtomicBool = AtomicBool::new(false);

/// Yields of [`pipelined`]'s loop so far, when counted: polls of the
/// window that returned `Pending` after waking the loop's own task (the
/// `FuturesUnordered` yield, or a future that woke itself, e.g. tokio's
/// cooperative budget running out).
static YIELDS: AtomicU64 = AtomicU64::new(0);

/// Polls of [`pipelined`]'s window so far, when yields are counted.
static POLLS: AtomicU64 = AtomicU64::new(0);

/// Turns the yield count on for the whole run.
pub fn count_yields() {
    COUNT_YIELDS.store(true, Ordering::Relaxed);
}

/// `Some((polls, yields))` of the pipelined loop so far, when counted.
pub fn yields() -> Option<(u64, u64)> {
    COUNT_YIELDS.load(Ordering::Relaxed).then(|| {
        (
            POLLS.load(Ordering::Relaxed),
            YIELDS.load(Ordering::Relaxed),
        )
    })
}

/// A waker that notes whether it was woken, then wakes the loop's task.
struct Probe {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.task.wake_by_ref();
    }
}

/// The window's next completion. When yields are counted, each poll of
/// the window goes through a [`Probe`] (one allocation per poll, alike
/// for every contender), and a `Pending` whose probe was woken during the
/// poll is counted.
async fn next_done<S: Stream + Unpin>(window: &mut S) -> Option<S::Item> {
    if !COUNT_YIELDS.load(Ordering::Relaxed) {
        return poll_fn(|cx| Pin::new(&mut *window).poll_next(cx)).await;
    }
    poll_fn(|cx| {
        let probe = Arc::new(Probe {
            woken: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(probe.clone());
        let polled = Pin::new(&mut *window).poll_next(&mut Context::from_waker(&waker));
        POLLS.fetch_add(1, Ordering::Relaxed);
        if polled.is_pending() && probe.woken.load(Ordering::Relaxed) {
            YIELDS.fetch_add(1, Ordering::Relaxed);
        }
        polled
    })
    .await
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
    while inflight.len() > extra && next_done(&mut inflight).await.is_some() {
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
