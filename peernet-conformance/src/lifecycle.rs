//! Scenarios of a node's end and of what it leaves on disk: a shutdown
//! future dropped stops nothing, the handlers go with the node, a change
//! of the trust list whose caller stopped waiting still reaches both the
//! file and the node, and no write reaches the data directory after the
//! node let go of its lock.

use std::fs::OpenOptions;
use std::future::poll_fn;
use std::task::Poll;

use peernet_driver::{AddrSource, DataDir, LockError, StartError};
use peernet_proto::Access;

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// Nodes 1 and 2, connected (1 dialed), and 2's events.
async fn paired_and_linked<H: Harness>() -> (N<H>, N<H>, EventStream) {
    let a: N<H> = node(1, &[2], |c| c).await;
    let b: N<H> = node(2, &[1], |c| c).await;
    let events = b.events();
    linked(&a, &b).await;
    (a, b, events)
}

/// The first `shutdown()` future is dropped unpolled (a `select!` or a
/// timeout that gave up): the shutdown goes on anyway (the peer is told
/// goodbye), and a later `shutdown()` resolves once the node is closed.
pub async fn a_dropped_shutdown_future_stops_nothing<H: Harness>() {
    let (a, b, events) = paired_and_linked::<H>().await;
    let rt = a.runtime().clone();
    drop(a.shutdown());
    expect_event(
        &rt,
        &events,
        "the goodbye",
        |e| matches!(e, NodeEvent::Disconnected { peer, .. } if *peer == a.peer_id()),
    )
    .await;
    within(&rt, "the second shutdown", a.shutdown()).await;
    assert!(a.peers().is_empty());
    b.shutdown().await;
}

/// A call made after the caller's own `shutdown()` fails
/// `NotConnected`, as `Node::call`'s docs say (an application that
/// matches on `ShuttingDown` for it would wait for the callee's
/// answer): at once, with nothing sent, and never a wait for a
/// reconnect, even to a peer it kept connected.
pub async fn a_call_after_the_own_shutdown_is_not_connected<H: Harness>() {
    let (a, b, _events) = paired_and_linked::<H>().await;
    a.keep_connected(b.peer_id(), true).unwrap();
    a.shutdown().await;
    let peer = b.peer_id();
    let call = a.call(&peer, "echo", b"hi", Duration::from_secs(10));
    let result = within(a.runtime(), "the call after shutdown", call).await;
    assert_eq!(result, Err(CallError::NotConnected));
    b.shutdown().await;
}

/// A handler that holds a handle of its own node (to call on from a
/// handler) is dropped when the node closes, and with it the node's
/// state: no cycle keeps them alive after `shutdown`.
pub async fn the_handlers_go_with_the_node<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let own = a.clone();
    a.expose("x", move |_caller, args: Bytes| {
        let _held = (&own, &flag);
        async move { Ok(args) }
    })
    .expect("handle");
    a.shutdown().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler outlived its node"
    );
}

/// State of a handler's that drops slowly: it says on `dropping` that
/// its drop started, then blocks its thread until `go` says so (or is
/// gone), then raises `done`.
struct SlowDrop {
    dropping: async_channel::Sender<()>,
    go: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    done: Arc<AtomicBool>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        let _ = self.dropping.try_send(());
        if let Ok(go) = self.go.get_mut() {
            let _ = go.recv();
        }
        self.done.store(true, Ordering::SeqCst);
    }
}

/// `shutdown` resolves once the close is done, the handlers and access
/// rules dropped with the node, not as soon as the node is marked
/// closed: here a handler's state whose drop blocks until the test lets
/// it go. It used to resolve in between (the closing task marks the node
/// closed under the lock, then drops the handlers outside it), and
/// `the_handlers_go_with_the_node` and its rules' twin failed now and
/// then on smol, whose closing task runs on a thread of its own.
pub async fn shutdown_resolves_once_the_handlers_are_dropped<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let rt = a.runtime().clone();
    let (dropping, started) = async_channel::bounded(1);
    let (go, wait) = std::sync::mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let slow = SlowDrop {
        dropping,
        go: std::sync::Mutex::new(wait),
        done: done.clone(),
    };
    a.expose("x", move |_caller, args: Bytes| {
        let _held = &slow;
        async move { Ok(args) }
    })
    .expect("handle");
    let mut closing = Box::pin(a.shutdown());
    within(&rt, "the handlers' drop", started.recv())
        .await
        .expect("the drop started");
    let early = {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        closing.as_mut().poll(&mut cx).is_ready()
    };
    // (let the drop end either way: the runtime's thread is blocked in it)
    go.send(()).expect("the drop waits");
    assert!(
        !early,
        "shutdown resolved while the node's handlers were being dropped"
    );
    within(&rt, "the shutdown", closing).await;
    assert!(done.load(Ordering::SeqCst), "the handler outlived shutdown");
}

/// An access rule that holds a handle of its own node (to look something
/// up) is dropped when the node closes, and with it the node's state: it
/// used to stay in the core's exposures, keeping the closed node's whole
/// state alive for good.
pub async fn the_access_rules_go_with_the_node<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let own = a.clone();
    let rule = Access::rule(move |_caller| {
        let _held = (&own, &flag);
        true
    });
    a.expose_to("x", rule, |_caller, args: Bytes| async move { Ok(args) })
        .expect("handle");
    a.shutdown().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the access rule outlived its node"
    );
    // Exposed after the close, a rule and a handler holding the node go
    // at once: installed, they would keep it alive for good.
    let (rule_dropped, handler_dropped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (rule_flag, handler_flag) = (
        DropFlag(rule_dropped.clone()),
        DropFlag(handler_dropped.clone()),
    );
    let (own, own_too) = (a.clone(), a.clone());
    let rule = Access::rule(move |_caller| {
        let _held = (&own, &rule_flag);
        true
    });
    let handler = move |_caller, args: Bytes| {
        let _held = (&own_too, &handler_flag);
        async move { Ok(args) }
    };
    a.expose_to("y", rule, handler).expect("handle");
    assert!(
        rule_dropped.load(Ordering::SeqCst),
        "a rule exposed after the close was kept"
    );
    assert!(
        handler_dropped.load(Ordering::SeqCst),
        "a handler exposed after the close was kept"
    );
}

/// `unpair`, polled once (the peer revoked in the run, its file write
/// begun) and then dropped, as a timeout around it would: the change
/// still reaches the core (the peer's connection closes, `revoked`) and
/// the file alike; and a trust change asked for after it is made after
/// it. (The changes run as tasks of their own, and the `pair` after the
/// given-up `unpair` used to be made first about one time in five on
/// async-std's runtime under load: the file then still trusted the
/// unpaired peer when `pair` returned, and a `pair` of the same peer was
/// undone by the earlier `unpair`.)
pub async fn a_trust_change_given_up_still_lands_whole<H: Harness>() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NodeConfig::from_data_dir(dir.path()).expect("data dir");
    let a: N<H> = Node::bind(config.protocol_version(version()), loopback())
        .await
        .expect("bind");
    a.pair(peer(2), None).await.expect("pair");
    let b: N<H> = node(2, &[], |c| c.trusting(a.peer_id())).await;
    let events = a.events();
    a.connect(peer(2), b.local_addr().unwrap())
        .await
        .expect("connect");
    let rt = a.runtime().clone();
    let two = peer(2);
    let mut unpair = Box::pin(a.unpair(&two));
    let first = poll_fn(|cx| Poll::Ready(unpair.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the write was begun, not done");
    drop(unpair);
    expect_event(
        &rt,
        &events,
        "the revoked connection",
        |e| matches!(e, NodeEvent::Disconnected { peer, .. } if *peer == two),
    )
    .await;
    assert!(!a.trust().contains(&two), "the core still trusts the peer");
    // (the revocation comes before the file's write: a trust change
    // after it waits for that write, serialised with it)
    a.pair(peer(3), None).await.expect("pair");
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(!on_disk.contains(&two), "the file still trusts the peer");
    // An `unpair` given up, then a `pair` of the same peer: the `pair`,
    // asked for last, stands.
    let three = peer(3);
    let mut unpair = Box::pin(a.unpair(&three));
    let first = poll_fn(|cx| Poll::Ready(unpair.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the write was begun, not done");
    drop(unpair);
    a.pair(three, None).await.expect("pair again");
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(
        on_disk.contains(&three),
        "the earlier unpair undid the pair"
    );
    a.pair(peer(4), None).await.expect("pair");
    assert!(
        a.trust().contains(&three),
        "the earlier unpair undid the pair"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A node dropped without `shutdown` while an address-book save is
/// pending: the save is written, with the data directory's lock held
/// until it is done. The next holder of the lock finds the book whole
/// and is never overwritten by the old node (it once wrote 250 ms after
/// letting go of the lock).
pub async fn the_book_is_written_before_the_lock_goes<H: Harness>() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NodeConfig::from_data_dir(dir.path()).expect("data dir");
    let a: N<H> = Node::new(config.trusting(peer(2)).protocol_version(version()));
    let rt = a.runtime().clone();
    let addr: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    a.add_address(peer(2), addr, AddrSource::Application)
        .expect("add address");
    drop(a);
    let data = DataDir::open(dir.path()).unwrap();
    assert!(
        matches!(data.try_lock(), Err(LockError::InUse { .. })),
        "the lock went before the pending save was written"
    );
    // Wait for the lock as the next process would (the kernel's lock: a
    // blocking wait, off the runtime's threads).
    let path = dir.path().join("lock");
    let waited = rt.spawn_blocking(move || {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        fs4::FileExt::lock(&file)?;
        Ok::<_, std::io::Error>(file)
    });
    let _held = within(&rt, "the lock", waited).await.expect("lock");
    let book = data.load_book().expect("book");
    assert_eq!(book.get(&peer(2)), [(addr, AddrSource::Application)]);
}

/// A config from a data directory holds its lock for one node: built
/// from the config and a clone of it, the second node is refused as a
/// second process would be, instead of two nodes writing one directory.
pub async fn a_data_dir_config_and_its_clone_start_one_node<H: Harness>() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NodeConfig::from_data_dir(dir.path())
        .expect("data dir")
        .protocol_version(version());
    let first = Node::<H::Rt>::try_new(config.clone()).expect("the first node");
    let second = Node::<H::Rt>::try_new(config);
    assert!(
        matches!(second, Err(StartError::Lock(LockError::InUse { .. }))),
        "{:?}",
        second.map(|n| n.peer_id())
    );
    first.shutdown().await;
    drop(first);
    NodeConfig::from_data_dir(dir.path()).expect("free once the node is closed");
}

/// An event subscription dropped is let go at the next subscription, not
/// only at the next event: an application that subscribes per operation
/// on a quiet node used to pile up queues of `events_capacity` slots each.
pub async fn dropped_event_streams_do_not_pile_up<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    for _ in 0..1000 {
        drop(a.events());
    }
    let kept = a.events();
    assert_eq!(a.stats().event_streams, 1);
    drop(kept);
    a.shutdown().await;
}
