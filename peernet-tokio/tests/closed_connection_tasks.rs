//! A connection that closed cleanly, or a dial that never opened its
//! transport, leaves nothing running behind it.
//! Each closed connection starts a close deadline (the linger,
//! `NodeConfig::linger`, 2 s by default) that stops a writer still
//! blocked on a peer that does not read. It used to wait out the whole
//! linger even when both halves had already ended: a task and a timer
//! per closed connection, for 2 s, which a server with many short
//! connections paid for all the time.
//!
//! The nodes here linger an hour: whatever is still running when the
//! test gives up (after [`BOUND`]) waits for the linger, and nothing that
//! ends early can be mistaken for a linger that ran out.

mod common;
#[path = "common/wrapped.rs"]
mod wrapped;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peernet_tokio::{AddrSource, Config, DialConfig, Identity, Node, NodeConfig};
use tokio::sync::Notify;
use wrapped::{Hooks, Wrapped};

/// The nodes' linger: far beyond anything the tests wait for.
const LINGER: Duration = Duration::from_secs(3600);

/// How long a test waits for the tasks to end before it fails (they end
/// within milliseconds; the bound only ends a failing run).
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_leaves_no_task_for_the_linger() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (alice, bob) = common::trusting_pair_with(91, 92, |c| c.linger(LINGER)).await;
    let idle = metrics.num_alive_tasks();
    for _ in 0..4 {
        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await
            .unwrap();
        assert!(alice.disconnect(&bob.peer_id()));
    }
    // Both halves of each connection end within milliseconds of the close
    // (each side reads the other's GOODBYE and end of stream); then
    // nothing of them should be left, long before the linger.
    back_to(idle, "the closes").await;
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
}

/// A dial whose transport never opens (a listener whose backlog is
/// full drops our SYNs), given up by the core at its handshake timeout:
/// no writer ever ran, so nothing would end the close deadline early.
/// It used to wait out the linger anyway, with its task and its timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_that_never_opened_leaves_no_task_for_the_linger() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (alice, bob) = (
        Identity::from_seed(&[93; 32]),
        Identity::from_seed(&[94; 32]),
    );
    let bob = bob.peer_id();
    let config = NodeConfig::new(alice)
        .trusting(bob)
        .linger(LINGER)
        .handshake_timeout(Duration::from_millis(200));
    let alice = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A listener that never accepts, its queue full: a connect to it
    // hangs (the kernel drops the SYNs) until the dialer gives up.
    let full = tokio::net::TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(0).unwrap();
    let at = full.local_addr().unwrap();
    let _queued = tokio::net::TcpStream::connect(at).await.unwrap();
    let idle = metrics.num_alive_tasks();
    let refused = alice.connect(bob, at).await;
    assert!(refused.is_err(), "{refused:?}");
    back_to(idle, "the failed dial").await;
}

/// A runtime whose connects never complete; `dialing` is told of each.
#[derive(Clone, Default)]
struct Unanswered {
    dialing: Arc<Notify>,
}

impl Hooks for Unanswered {
    fn unanswered(&self, _addr: SocketAddr) -> bool {
        self.dialing.notify_one();
        true
    }
}

/// A background dial (a kept peer's) whose transport has not opened when
/// the node shuts down ends with the node. It used to wait out its own
/// `dial_timeout` (here an hour), holding the closed node's whole state,
/// for a connection the core would refuse anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_in_progress_ends_with_the_shutdown() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let idle = metrics.num_alive_tasks();
    let bob = Identity::from_seed(&[96; 32]).peer_id();
    let mut protocol = Config::default();
    let mut dial = DialConfig::default();
    dial.dial_timeout = LINGER;
    protocol.dial = dial;
    let config = NodeConfig::new(Identity::from_seed(&[95; 32]))
        .protocol(protocol)
        .trusting(bob)
        .linger(LINGER);
    let rt = Wrapped::<Unanswered>::default();
    let dialing = rt.hooks.dialing.clone();
    let alice = peernet_driver::Node::new_with(rt, config);
    let addr = "192.0.2.1:4000".parse().unwrap();
    alice
        .add_address(bob, addr, AddrSource::Application)
        .unwrap();
    alice.keep_connected(bob, true).unwrap();
    tokio::time::timeout(BOUND, dialing.notified())
        .await
        .expect("the kept peer is dialed");
    tokio::time::timeout(BOUND, alice.shutdown())
        .await
        .expect("shut down");
    back_to(idle, "the shutdown").await;
}

/// Waits until the runtime runs no more than the `idle` tasks it ran
/// before `what`, which must happen long before the linger (within
/// [`BOUND`]).
async fn back_to(idle: usize, what: &str) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let back = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while metrics.num_alive_tasks() > idle {
            tick.tick().await;
        }
    };
    if tokio::time::timeout(BOUND, back).await.is_err() {
        let alive = metrics.num_alive_tasks();
        panic!("{alive} tasks alive {BOUND:?} after {what}, {idle} before");
    }
}
