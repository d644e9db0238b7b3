//! No waker is woken under the node's lock: a waker is the application's
//! (its executor's, or one of its own), and one that calls back into the
//! node (here `stats()` and `peers()`, as it wakes) took the lock its own
//! thread held, and the node froze for good (a `std` mutex is not
//! reentrant). Each test polls what waits on one kind of wake-up (a
//! dial's outcome, a failed dial's channel dropped, a `connect_peer`
//! answered or failed, an event, room for a call, a handler's
//! cancellation, a call waiting for a kept peer's reconnect) with wakers
//! that call back into the node whose lock made the wake-up; and two
//! drop a waker the node kept for a call, one that calls back into the
//! node as it goes (a waker's drop is the application's code too).
//!
//! Each scenario runs on a thread and a runtime of its own: a frozen node
//! cannot be dropped (its drop takes the lock that is held), so the test
//! fails once the scenario has not ended within 20 s, leaving it behind.

mod common;
#[path = "common/own_thread.rs"]
mod own_thread;

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::{AddrSource, ConnectError, Node, NodeConfig, NodeEvent, PeerId};
use tokio::sync::Notify;

/// What a [`CallsBack`] waker does as it wakes.
type Call = Arc<dyn Fn() + Send + Sync>;

/// A waker that makes its call as it wakes, then wakes the task it wraps.
struct CallsBack {
    call: Call,
    task: Waker,
}

impl Wake for CallsBack {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        (self.call)();
        self.task.wake_by_ref();
    }
}

/// `fut`, every poll of it given a waker that makes `call` as it wakes.
async fn waking_with<F: Future>(call: Call, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let waker = Waker::from(Arc::new(CallsBack {
            call: call.clone(),
            task: cx.waker().clone(),
        }));
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    })
    .await
}

/// `fut`, every poll of it given a waker that calls `node` back (reads
/// its stats and peers) as it wakes.
async fn calling_back<F: Future>(node: &Node, fut: F) -> F::Output {
    let node = node.clone();
    let call = move || {
        let _ = node.stats();
        let _ = node.peers();
    };
    waking_with(Arc::new(call), fut).await
}

/// [`own_thread::ends`], a waker run under the node's lock the likely
/// cause of a freeze.
fn ends<F>(what: &str, scenario: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    own_thread::ends(what, "a waker run under the node's lock?", scenario);
}

/// `node`'s call of `handle` on `peer`, in a task of its own.
fn call_in_task(
    node: &Node,
    peer: PeerId,
    handle: &'static str,
) -> tokio::task::JoinHandle<Result<Bytes, peernet_tokio::CallError>> {
    let node = node.clone();
    tokio::spawn(async move { node.call(&peer, handle, b"", Duration::from_secs(30)).await })
}

/// Alice and bob, trusting each other, not connected; bob's address.
async fn pair(tune: impl Fn(NodeConfig) -> NodeConfig) -> (Node, Node, SocketAddr) {
    let (alice, bob) = common::trusting_pair_with(71, 72, tune).await;
    let addr = bob.local_addr().unwrap();
    (alice, bob, addr)
}

#[test]
fn a_dials_outcome() {
    ends("connect", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        let connected = calling_back(&alice, alice.connect(bob.peer_id(), addr)).await;
        assert_eq!(connected.unwrap(), bob.peer_id());
    });
}

/// A port nothing listens on (a dial to it is refused).
fn nowhere() -> SocketAddr {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.local_addr().unwrap()
}

/// A dial whose transport never opens: the waiter's channel goes with
/// the connection the node forgets.
#[test]
fn a_failed_dial() {
    ends("a failed dial", || async {
        let (alice, bob, _) = pair(|c| c).await;
        let failed = calling_back(&alice, alice.connect(bob.peer_id(), nowhere())).await;
        assert!(
            matches!(failed, Err(ConnectError::Dial { .. })),
            "{failed:?}"
        );
    });
}

#[test]
fn a_connect_peer_answered() {
    ends("connect_peer", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        alice
            .add_address(bob.peer_id(), addr, AddrSource::Application)
            .unwrap();
        let connected = calling_back(&alice, alice.connect_peer(bob.peer_id(), None)).await;
        assert_eq!(connected.unwrap(), bob.peer_id());
    });
}

#[test]
fn a_connect_peer_failed() {
    ends("connect_peer, unreachable", || async {
        let (alice, bob, _) = pair(|c| c).await;
        alice
            .add_address(bob.peer_id(), nowhere(), AddrSource::Application)
            .unwrap();
        let failed = calling_back(&alice, alice.connect_peer(bob.peer_id(), None)).await;
        assert!(
            matches!(failed, Err(ConnectError::Unreachable { .. })),
            "{failed:?}"
        );
    });
}

/// `alice` connects to `bob` at `addr` while `events` (alice's) is
/// waited on with a waker that runs `call`: its first event is the
/// `Connected`. (The stream is polled, and its waker given, before the
/// connect.)
async fn connected_seen_by(
    call: Call,
    events: &peernet_tokio::EventStream,
    alice: &Node,
    bob: &Node,
    addr: SocketAddr,
) {
    let (first, connected) = tokio::join!(
        waking_with(call, events.recv()),
        alice.connect(bob.peer_id(), addr)
    );
    connected.unwrap();
    assert!(
        matches!(first, Ok(NodeEvent::Connected { peer, .. }) if peer == bob.peer_id()),
        "{first:?}"
    );
}

#[test]
fn an_event() {
    ends("an event", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        let node = alice.clone();
        let call = move || {
            let _ = node.stats();
            let _ = node.peers();
        };
        connected_seen_by(Arc::new(call), &alice.events(), &alice, &bob, addr).await;
    });
}

/// A subscriber's waker that disconnects the peer whose `Connected` it
/// is woken for: the `Disconnected` is published as the `Connected` is
/// sent, and follows it.
#[test]
fn an_event_published_by_a_waker_follows() {
    ends("an event from a waker", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        let events = alice.events();
        let (node, peer) = (alice.clone(), bob.peer_id());
        let once = std::sync::atomic::AtomicBool::new(false);
        let disconnect = move || {
            if !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                node.disconnect(&peer);
            }
        };
        connected_seen_by(Arc::new(disconnect), &events, &alice, &bob, addr).await;
        let next = events.recv().await;
        assert!(
            matches!(next, Ok(NodeEvent::Disconnected { .. })),
            "{next:?}"
        );
    });
}

#[test]
fn room_for_a_call() {
    ends("room for a call", || async {
        let (alice, bob, addr) = pair(|c| c.max_outbound_calls(1)).await;
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (held, go) = (entered.clone(), release.clone());
        bob.expose("hold", move |_, _| {
            let (held, go) = (held.clone(), go.clone());
            async move {
                held.notify_one();
                go.notified().await;
                Ok(Bytes::new())
            }
        })
        .unwrap();
        bob.expose("echo", |_, args| async move { Ok(args) })
            .unwrap();
        alice.connect(bob.peer_id(), addr).await.unwrap();
        let peer = bob.peer_id();
        let first = call_in_task(&alice, peer, "hold");
        // alice's one call slot is taken
        entered.notified().await;
        let waiting = calling_back(
            &alice,
            alice.call(&peer, "echo", b"2", Duration::from_secs(30)),
        );
        // (polled first: it waits for room before the slot is freed)
        let (second, ()) = tokio::join!(waiting, async { release.notify_one() });
        assert_eq!(&second.unwrap()[..], b"2");
        first.await.unwrap().unwrap();
    });
}

/// Sends as it drops: the handler's state is gone.
struct OnDrop(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[test]
fn a_handlers_cancellation() {
    ends("a handler's cancellation", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        let entered = Arc::new(Notify::new());
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
        let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
        let (held, server) = (entered.clone(), bob.clone());
        bob.expose_ctx("wait", move |ctx, _| {
            let (held, server) = (held.clone(), server.clone());
            let guard = OnDrop(dropped_tx.lock().unwrap().take());
            async move {
                let _guard = guard;
                held.notify_one();
                // (bob's lock raises the signal: this waker calls bob)
                calling_back(&server, ctx.cancelled()).await;
                Ok(Bytes::new())
            }
        })
        .unwrap();
        alice.connect(bob.peer_id(), addr).await.unwrap();
        let peer = bob.peer_id();
        let call = call_in_task(&alice, peer, "wait");
        entered.notified().await;
        // the caller gives up: CANCEL stops the handler
        call.abort();
        dropped.await.unwrap();
        bob.unexpose("wait");
    });
}

#[test]
fn a_call_waiting_for_a_reconnect() {
    ends("a reconnect", || async {
        let (alice, bob, addr) = pair(|c| c).await;
        let peer = bob.peer_id();
        bob.expose("echo", |_, args| async move { Ok(args) })
            .unwrap();
        alice
            .add_address(peer, addr, AddrSource::Application)
            .unwrap();
        let events = alice.events();
        alice.keep_connected(peer, true).unwrap();
        alice.connect_peer(peer, None).await.unwrap();
        // the connection drops (a loss like any other for a kept peer:
        // alice redials after her backoff, at least 0.1 s), and a call
        // meanwhile waits for the reconnect
        assert!(alice.disconnect(&peer));
        loop {
            if let NodeEvent::Disconnected { .. } = events.recv().await.unwrap() {
                break;
            }
        }
        let answered = calling_back(
            &alice,
            alice.call(&peer, "echo", b"r", Duration::from_secs(30)),
        )
        .await;
        assert_eq!(&answered.unwrap()[..], b"r");
    });
}

/// A waker that calls `node` as its last clone is dropped.
struct DropsBack {
    node: Node,
    task: Waker,
}

impl Wake for DropsBack {
    fn wake(self: Arc<Self>) {
        self.task.wake_by_ref();
    }
}

impl Drop for DropsBack {
    fn drop(&mut self) {
        let _ = self.node.stats();
    }
}

/// Alice's call to bob, in flight (bob's handler holds it until
/// `release`), polled once with a [`DropsBack`] waker, which the node
/// keeps (its last clone), then given to `then`.
async fn a_call_keeping_a_waker_that_drops_back<F>(then: impl FnOnce(Node, Arc<Notify>) -> F)
where
    F: Future<Output = ()>,
{
    let (alice, bob, addr) = pair(|c| c).await;
    let release = Arc::new(Notify::new());
    let go = release.clone();
    bob.expose("hold", move |_, _| {
        let go = go.clone();
        async move {
            go.notified().await;
            Ok(Bytes::new())
        }
    })
    .unwrap();
    alice.connect(bob.peer_id(), addr).await.unwrap();
    then(alice, release).await;
}

/// Polls `call` once, pending, with a waker that calls `alice` back as
/// it drops ([`DropsBack`]): the call keeps it.
async fn poll_with_a_waker_that_drops_back<F: Future>(alice: &Node, mut call: Pin<&mut F>) {
    poll_fn(|cx| {
        let task = cx.waker().clone();
        let node = alice.clone();
        let waker = Waker::from(Arc::new(DropsBack { node, task }));
        let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        std::task::Poll::Ready(())
    })
    .await;
}

/// The call is polled from another task: the waker kept is replaced.
#[test]
fn a_waker_replaced() {
    ends("a waker replaced", || async {
        a_call_keeping_a_waker_that_drops_back(|alice, release| async move {
            let peer = alice.peers()[0];
            let mut call = pin!(alice.call(&peer, "hold", b"", Duration::from_secs(30)));
            poll_with_a_waker_that_drops_back(&alice, call.as_mut()).await;
            // (this task's own waker now: the one kept goes)
            poll_fn(|cx| {
                assert!(call.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            release.notify_one();
            call.await.unwrap();
        })
        .await;
    });
}

/// The caller gives the call up: the waker kept goes with it.
#[test]
fn a_waker_given_up() {
    ends("a waker given up", || async {
        a_call_keeping_a_waker_that_drops_back(|alice, release| async move {
            let peer = alice.peers()[0];
            let mut call = Box::pin(alice.call(&peer, "hold", b"", Duration::from_secs(30)));
            poll_with_a_waker_that_drops_back(&alice, call.as_mut()).await;
            drop(call);
            release.notify_one();
            // (the node still answers)
            let _ = alice.stats();
        })
        .await;
    });
}
