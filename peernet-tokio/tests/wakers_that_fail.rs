//! Wakers that fail: an application's waker that panics as it is woken,
//! or never returns. The node runs wake-ups in batches, after its lock
//! (`peernet-driver/src/shared/wake.rs`), and sends events from one
//! queue, one thread at a time (`outbox.rs`):
//! - a waker that panicked lost the rest of its batch: the other callers
//!   of a closed connection were never woken (they waited out their
//!   timeouts), and a subscriber's panic stopped every event for good
//!   (the other subscribers' first, and the queue's token, never let go);
//! - a subscriber's waker that never returns holds the queue's token, and
//!   every event after it waited in the queue, without bound.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::{Config, Node, NodeConfig, NodeEvent};

/// How long a test waits for what must come before it fails.
const BOUND: Duration = Duration::from_secs(10);

/// A waker that panics as it is first woken (later, it does nothing).
#[derive(Default)]
struct PanicsOnce(AtomicBool);

impl Wake for PanicsOnce {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.0.swap(true, Ordering::SeqCst) {
            panic!("an application's waker panics (as the test wants)");
        }
    }
}

/// Polls `fut` once with a [`PanicsOnce`] waker, which it keeps: it must
/// be pending.
fn poll_with_a_panicking_waker<F: Future>(fut: Pin<&mut F>) {
    let waker = Waker::from(Arc::new(PanicsOnce::default()));
    assert!(fut.poll(&mut Context::from_waker(&waker)).is_pending());
}

/// Alice and bob, trusting each other, connected; bob accepts alice's
/// connections as often as she likes.
async fn connected_pair() -> (Node, Node) {
    let mut protocol = Config::default();
    protocol.peer_connects.burst = u32::MAX;
    protocol.peer_connects.per_second = u32::MAX;
    let tune = move |config: NodeConfig| config.protocol(protocol.clone());
    let (alice, bob) = common::trusting_pair_with(91, 92, tune).await;
    alice
        .connect(bob.peer_id(), bob.local_addr().unwrap())
        .await
        .unwrap();
    (alice, bob)
}

/// Bob's `hold`, which tells `entered` of each call and never answers.
fn expose_hold(bob: &Node) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
    bob.expose("hold", move |_, _| {
        let _ = entered_tx.send(());
        async {
            std::future::pending::<()>().await;
            Ok(Bytes::new())
        }
    })
    .unwrap();
    entered
}

/// The first of five calls in flight on a connection has a waker that
/// panics: its close fails them all in one batch of wake-ups, and the
/// other four callers are woken all the same (they waited for good: the
/// panic dropped the rest of the batch). The panic stays with the waker:
/// the `disconnect` that ran the batch returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_waker_leaves_the_other_callers_woken() {
    let (alice, bob) = connected_pair().await;
    let mut entered = expose_hold(&bob);
    let peer = bob.peer_id();
    // (the lowest request id: its call fails first)
    let mut first = Box::pin(alice.call(&peer, "hold", b"", Duration::from_secs(60)));
    poll_with_a_panicking_waker(first.as_mut());
    entered.recv().await.unwrap();
    let others: Vec<_> = (0..4)
        .map(|_| {
            let alice = alice.clone();
            tokio::spawn(async move {
                alice
                    .call(&peer, "hold", b"", Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    for _ in 0..4 {
        entered.recv().await.unwrap();
    }
    // the close fails the five calls, the panicking waker's first
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| alice.disconnect(&peer)));
    for other in others {
        let failed = tokio::time::timeout(BOUND, other)
            .await
            .expect("another caller of the closed connection is woken")
            .unwrap();
        assert!(failed.is_err(), "{failed:?}");
    }
    assert!(closed.is_ok(), "the waker's panic reached the disconnect");
    drop(first);
    alice.shutdown().await;
    bob.shutdown().await;
}

/// The first of two subscribers has a waker that panics: the other gets
/// the `Connected` all the same, and the events after it (the token of
/// the queue was let go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_panicking_waker_leaves_the_others_their_events() {
    let (alice, bob) = common::trusting_pair(93, 94).await;
    let (panicking, other) = (alice.events(), alice.events());
    // (never dropped, even as a failed test unwinds: the panic unwinds
    // through the channel's `event_listener` notify, whose count of the
    // listeners notified, left one short, would underflow at its drop;
    // that channel is the panicking subscriber's own)
    let mut first = std::mem::ManuallyDrop::new(Box::pin(panicking.recv()));
    poll_with_a_panicking_waker(first.as_mut());
    let addr = bob.local_addr().unwrap();
    alice.connect(bob.peer_id(), addr).await.unwrap();
    let got = tokio::time::timeout(BOUND, other.recv()).await;
    let got = got.expect("the other subscriber gets the Connected");
    assert!(matches!(got, Ok(NodeEvent::Connected { .. })), "{got:?}");
    assert!(alice.disconnect(&bob.peer_id()));
    let next = tokio::time::timeout(BOUND, other.recv()).await;
    let next = next.expect("the events go on");
    assert!(
        matches!(next, Ok(NodeEvent::Disconnected { .. })),
        "{next:?}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A waker that, first woken, says so on `entered` and then blocks until
/// `release` says go (or is dropped).
struct Blocks {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Wake for Blocks {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(());
            let _ = self.release.lock().unwrap().recv();
        }
    }
}

/// The events the driver's queue holds at most
/// (`peernet_tokio::MAX_QUEUED_EVENTS`, written out so that this test
/// builds on the code it showed wrong).
const QUEUED_AT_MOST: u64 = 4096;

/// A subscriber's waker blocks in the send of a `Disconnected`, on a
/// thread of the test's, which holds the queue's token: the events after
/// it wait. Past the queue's bound they are dropped and counted (before,
/// they all waited, each with its copy of the subscriber list, and none
/// was counted). Released, the thread sends what the queue kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_waker_that_never_returns_costs_a_bounded_queue() {
    let (alice, bob) = connected_pair().await;
    let (peer, addr) = (bob.peer_id(), bob.local_addr().unwrap());
    let events = alice.events();
    // (before `release`, so dropped after it if the test fails: the
    // waker blocks under the channel's lock, which its drop takes)
    let mut recv = Box::pin(events.recv());
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let waker = Waker::from(Arc::new(Blocks {
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
    }));
    assert!(
        recv.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let bob_events = bob.events();
    let node = alice.clone();
    let stuck = std::thread::spawn(move || node.disconnect(&peer));
    entered
        .recv_timeout(BOUND)
        .expect("the subscriber's waker is woken");
    // Each cycle publishes a `Connected` and a `Disconnected`. (Bob lets
    // go of each connection before the next: one he still held could
    // supersede it.)
    let cycles = 2_200;
    let bob_let_go = || async {
        let disconnected = |e| matches!(e, Ok(NodeEvent::Disconnected { .. }));
        while !disconnected(bob_events.recv().await) {}
    };
    let cycling = async {
        bob_let_go().await;
        for _ in 0..cycles {
            alice.connect(peer, addr).await.unwrap();
            assert!(alice.disconnect(&peer));
            bob_let_go().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), cycling)
        .await
        .expect("the cycles are done");
    let dropped = alice.stats().dropped_events;
    let published = 2 * cycles;
    assert!(
        dropped >= published - QUEUED_AT_MOST,
        "{dropped} events dropped of {published} published behind a stuck send"
    );
    release.send(()).unwrap();
    assert!(stuck.join().unwrap());
    drop(recv);
    alice.shutdown().await;
    bob.shutdown().await;
}
