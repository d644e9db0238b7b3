//! A handler's state is never dropped under the node's lock: a handler
//! that holds a nested call in flight, cancelled while its first poll runs
//! outside the lock, used to be dropped inside the critical section, and
//! the nested call's guard, taking the lock again as it dropped, froze the
//! whole node.
//!
//! Each test runs its own runtime so that, if the node deadlocks, it can
//! leak the nodes and fail instead of hanging: a deadlocked node cannot be
//! dropped (its drop takes the very lock that is held).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::Node;

/// Whether `node`'s lock can still be taken: `stats()` from a plain thread,
/// within `wait` (the one bounded wait: a deadlock is the absence of an
/// answer).
fn node_answers(node: &Node, wait: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    let node = node.clone();
    std::thread::spawn(move || {
        let _ = node.stats();
        let _ = tx.send(());
    });
    rx.recv_timeout(wait).is_ok()
}

/// A runtime of the test's own (two workers), so that a frozen node can
/// be left behind by [`frozen`].
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Fails the test for a frozen node: the nodes are leaked (dropping one
/// would block on its lock) and the runtime left to the background.
fn frozen(rt: tokio::runtime::Runtime, nodes: [Node; 2], what: &str) -> ! {
    std::mem::forget(nodes);
    rt.shutdown_background();
    panic!("{what}");
}

/// Sends on drop: tells the test the handler's state is being dropped.
struct OnDrop(mpsc::Sender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Bob's handler starts a nested call to alice and, in the same first
/// poll, works 300 ms (a blocking stand-in for CPU work). While it works,
/// the application disconnects the caller: the served call is cancelled
/// while its first poll runs outside the lock, so the driver drops the
/// handler when the poll returns. That drop (the nested call's guard
/// included) must happen after the lock is let go.
#[test]
fn a_handler_cancelled_during_its_first_poll_does_not_freeze_the_node() {
    let rt = runtime();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let (alice, bob) = rt.block_on(async {
        let (alice, bob) = common::trusting_pair(81, 82).await;
        // alice answers slowly: the nested call stays in flight
        alice
            .expose("slow", |_, _| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Bytes::new())
            })
            .unwrap();
        let inner = bob.clone();
        bob.expose("nested", move |caller, args| {
            let node = inner.clone();
            let (started, dropped) = (started_tx.clone(), OnDrop(dropped_tx.clone()));
            async move {
                let _dropped = dropped;
                let nested = node.call(&caller, "slow", args, Duration::from_secs(30));
                let work = async {
                    let _ = started.send(());
                    std::thread::sleep(Duration::from_millis(300));
                };
                let (result, ()) = futures_util::future::join(nested, work).await;
                result.map_err(|_| Bytes::new())
            }
        })
        .unwrap();
        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await
            .unwrap();
        (alice, bob)
    });
    let (a, b) = (alice.clone(), bob.peer_id());
    rt.spawn(async move {
        let _ = a.call(&b, "nested", "x", Duration::from_secs(30)).await;
    });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the handler started");
    // while the handler's first poll runs: the served call goes away
    assert!(bob.disconnect(&alice.peer_id()));
    // The handler is dropped once its poll returns; with the bug, its drop
    // (or the nested guard's, just before) froze the node mid-drop.
    let dropped = dropped_rx.recv_timeout(Duration::from_secs(10)).is_ok();
    if !dropped || !node_answers(&bob, Duration::from_secs(5)) {
        let what = "bob's lock is held for good: dropping the handler froze the node";
        frozen(rt, [alice, bob], what);
    }
    rt.block_on(async {
        bob.shutdown().await;
        alice.shutdown().await;
    });
}

/// Takes the node's lock as it drops (`stats`), standing for application
/// state whose drop reaches into the node.
struct Probe(Node, mpsc::Sender<()>);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.stats();
        let _ = self.1.send(());
    }
}

/// A handler replaced by `expose`, or removed by `unexpose`, is dropped
/// after the node's lock is let go: a closure whose captured state takes
/// the lock as it drops does not freeze the node.
#[test]
fn a_replaced_or_removed_handler_is_dropped_outside_the_lock() {
    let rt = runtime();
    let (alice, bob) = rt.block_on(common::trusting_pair(83, 84));
    let (tx, rx) = mpsc::channel();
    let probe = Probe(alice.clone(), tx.clone());
    alice
        .expose("h", move |_, _| {
            let _ = &probe;
            async { Ok(Bytes::new()) }
        })
        .unwrap();
    let probe = Probe(alice.clone(), tx);
    // replacing: from a thread of its own, so that a freeze fails the test
    let a = alice.clone();
    std::thread::spawn(move || {
        a.expose("h", move |_, _| {
            let _ = &probe;
            async { Ok(Bytes::new()) }
        })
        .unwrap();
        assert!(a.unexpose("h"));
    });
    let both = rx.recv_timeout(Duration::from_secs(10)).is_ok()
        && rx.recv_timeout(Duration::from_secs(10)).is_ok();
    if !both || !node_answers(&alice, Duration::from_secs(5)) {
        frozen(
            rt,
            [alice, bob],
            "dropping a handler under the lock froze the node",
        );
    }
    rt.block_on(async {
        alice.shutdown().await;
        bob.shutdown().await;
    });
}
