//! Handlers and the shutdown: a handler's first poll runs on a reader's
//! task, outside the node's lock, before the handler is in the table of
//! running ones. The shutdown's grace waits for such a handler too, and
//! one whose first poll ends after the handlers were stopped is stopped at
//! once rather than run on, holding the closed node's state.

mod common;
#[path = "common/until.rs"]
mod until;
#[path = "common/wrapped.rs"]
mod wrapped;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::{Identity, Node, NodeConfig};
use until::until;
use wrapped::{Hooks, Wrapped};

/// Tokio as it is; every copy of the runtime holds the `Arc`, so its
/// count tells whether anything of a node (its state, a task) still
/// holds the node's runtime.
#[derive(Clone, Default)]
struct Counted(Arc<()>);

impl Hooks for Counted {}

/// Sends on drop: tells the test a handler's state was dropped.
struct OnDrop(mpsc::Sender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap()
}

/// Alice and bob (seeds `a`, `b`), trusting each other, alice dialed.
fn connected_pair(rt: &tokio::runtime::Runtime, a: u8, b: u8) -> (Node, Node) {
    rt.block_on(async {
        let (alice, bob) = common::trusting_pair(a, b).await;
        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await
            .unwrap();
        (alice, bob)
    })
}

/// A handler whose first poll blocks its thread until the test says go
/// (standing for synchronous work at the top of a handler), then waits
/// for good, holding an `OnDrop`.
fn blocking_first_poll(
    started: mpsc::Sender<()>,
    go: Arc<Mutex<mpsc::Receiver<()>>>,
    dropped: mpsc::Sender<()>,
) -> impl Fn(
    peernet_tokio::PeerId,
    Bytes,
) -> futures_util::future::BoxFuture<'static, Result<Bytes, Bytes>>
+ Send
+ Sync
+ 'static {
    move |_, _| {
        let (started, go, guard) = (started.clone(), go.clone(), OnDrop(dropped.clone()));
        Box::pin(async move {
            let _guard = guard;
            let _ = started.send(());
            let _ = go.lock().unwrap().recv_timeout(Duration::from_secs(30));
            std::future::pending::<()>().await;
            Ok(Bytes::new())
        })
    }
}

/// Alice (seed 91, tokio) dialed bob (seed 92, on the runtime
/// [`Counted`]: the returned `Arc` is its count of holders).
fn connected_to_counted(
    rt: &tokio::runtime::Runtime,
) -> (Node, peernet_driver::Node<Wrapped<Counted>>, Arc<()>) {
    rt.block_on(async {
        let (a_id, b_id) = (
            Identity::from_seed(&[91; 32]),
            Identity::from_seed(&[92; 32]),
        );
        let any = "127.0.0.1:0".parse().unwrap();
        let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
        let alice = Node::bind(NodeConfig::new(a_id).trusting(b_peer), any)
            .await
            .unwrap();
        let counted = Wrapped::<Counted>::default();
        let holders = counted.hooks.0.clone();
        let bob =
            peernet_driver::Node::bind_with(counted, NodeConfig::new(b_id).trusting(a_peer), any)
                .await
                .unwrap();
        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await
            .unwrap();
        (alice, bob, holders)
    })
}

/// Runs the race of a handler whose first poll is still running when the
/// node shuts down: `send` picks SEND (true) or CALL (false). Returns
/// whether the handler's state was dropped after the shutdown; then
/// waits until nothing of bob (its state, a task) holds its runtime once
/// both nodes are dropped.
fn handler_in_first_poll_at_shutdown(send: bool) -> bool {
    let rt = runtime();
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let go = Arc::new(Mutex::new(go_rx));
    let (alice, bob, holders) = connected_to_counted(&rt);
    bob.expose("h", blocking_first_poll(started_tx, go, dropped_tx))
        .unwrap();
    let (a, b) = (alice.clone(), bob.peer_id());
    rt.spawn(async move {
        if send {
            a.send(&b, "h", "x").await.unwrap();
        } else {
            let _ = a.call(&b, "h", "x", Duration::from_secs(60)).await;
        }
    });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the handler's first poll runs");
    // While that first poll runs (on bob's reader task), bob shuts down:
    // the grace (5 s) waits for it, ends with it still blocked, the
    // handlers are stopped, the connection closes and the node closes.
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), bob.shutdown())
            .await
            .expect("bob shuts down");
    });
    // Now the first poll returns Pending.
    go_tx.send(()).unwrap();
    let dropped = dropped_rx.recv_timeout(Duration::from_secs(5)).is_ok();
    drop((alice, bob));
    // Every task holding bob's state ends (the writers linger 2 s at
    // most). (Its event streams would end at the close whoever still held
    // the state: no test of it.)
    rt.block_on(until("nothing of bob holding its runtime", || {
        Arc::strong_count(&holders) == 1
    }));
    rt.shutdown_background();
    dropped
}

/// Control: a CALL handler caught the same way is stopped as it starts
/// (`is_serving` is false after the close), and bob's state goes.
#[test]
fn a_call_handler_started_as_the_node_shuts_down_is_stopped() {
    let dropped = handler_in_first_poll_at_shutdown(false);
    assert!(dropped, "the call handler was not stopped");
}

/// A SEND handler caught the same way used to be spawned afterwards as a
/// task nobody tracks: the handlers had been stopped, the node was closed,
/// and the task (with the handler's state, and the node's whole state
/// through it) lived for good.
#[test]
fn a_send_handler_started_as_the_node_shuts_down_is_stopped() {
    let dropped = handler_in_first_poll_at_shutdown(true);
    assert!(
        dropped,
        "the send handler runs on after shutdown returned (never stopped)"
    );
}

/// `shutdown` lets a handler still in its first poll (synchronous work
/// before its first `.await`) finish within the grace period, as it does
/// the running ones: it used to close the connection at once, and the
/// caller lost the answer with the grace (5 s) far from over.
#[test]
fn shutdown_grace_covers_a_handler_in_its_first_poll() {
    let rt = runtime();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (alice, bob) = connected_pair(&rt, 99, 100);
    bob.expose("work", move |_, _| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(());
            // synchronous work at the top of the handler
            std::thread::sleep(Duration::from_millis(500));
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Bytes::from_static(b"done"))
        }
    })
    .unwrap();
    let (a, b) = (alice.clone(), bob.peer_id());
    let call = rt.spawn(async move { a.call(&b, "work", "x", Duration::from_secs(30)).await });
    started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let t = std::time::Instant::now();
    rt.block_on(bob.shutdown());
    let took = t.elapsed();
    let result = rt.block_on(call).unwrap();
    rt.block_on(alice.shutdown());
    assert_eq!(
        result.as_deref().ok(),
        Some(&b"done"[..]),
        "the handler was cut off {took:?} into a 5 s grace"
    );
}

/// A node whose graceful shutdown has begun, its last handle then
/// dropped (`let closing = node.shutdown(); drop(node); closing.await`,
/// or the shutdown future spawned): the shutdown goes on in its task,
/// with its grace, and a handler running then still answers. Dropping
/// the last handle used to close the node at once under the shutdown,
/// stopping the handler: its caller got the connection's close instead
/// of the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_node_during_its_shutdown_keeps_the_grace() {
    let (alice, bob) =
        common::trusting_pair_with(61, 62, |c| c.shutdown_grace(Duration::from_secs(60))).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (tell, wait) = (started.clone(), release.clone());
    bob.expose("wait", move |_caller, args| {
        let (tell, wait) = (tell.clone(), wait.clone());
        async move {
            tell.notify_one();
            wait.notified().await;
            Ok(args)
        }
    })
    .unwrap();
    let bob_peer = bob.peer_id();
    alice
        .connect(bob_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    let caller = alice.clone();
    let call = tokio::spawn(async move { caller.call(&bob_peer, "wait", "answered", None).await });
    started.notified().await;
    let closing = bob.shutdown();
    drop(bob);
    release.notify_one();
    let reply = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call resolves")
        .unwrap();
    assert_eq!(reply.as_deref().ok(), Some(&b"answered"[..]), "{reply:?}");
    tokio::time::timeout(Duration::from_secs(20), closing)
        .await
        .expect("the shutdown ends");
    alice.shutdown().await;
}

/// Review s54 (review): a `stop` handler that awaited its own node's
/// shutdown waited for itself until the grace ended (5 s by default),
/// and its caller got `ConnectionClosed`, never the reply. The docs of
/// `Node::shutdown` now say so, and give the way that works, which this
/// checks: call it, drop the future, return the reply; the reply comes,
/// and the node shuts down (its last event stream ends).
#[tokio::test]
async fn a_handler_that_starts_its_nodes_shutdown_replies() {
    let (alice, bob) = common::trusting_pair(231, 232).await;
    let inner = bob.clone();
    bob.expose("stop", move |_, _| {
        drop(inner.shutdown());
        async { Ok::<Bytes, Bytes>(Bytes::from_static(b"stopping")) }
    })
    .unwrap();
    let events = bob.events();
    alice
        .connect(bob.peer_id(), bob.local_addr().unwrap())
        .await
        .unwrap();
    let reply = alice
        .call(&bob.peer_id(), "stop", "", Duration::from_secs(30))
        .await;
    assert_eq!(reply.as_deref(), Ok(&b"stopping"[..]));
    // (well within the 5 s grace a handler awaiting it would take)
    tokio::time::timeout(Duration::from_secs(3), async {
        while events.recv().await.is_ok() {}
    })
    .await
    .expect("bob shut down");
}
