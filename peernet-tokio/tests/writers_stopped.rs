//! A writer blocked towards a peer that never reads is stopped where it
//! is, by a wake-up the node makes once its lock is let go
//! (`peernet-driver/src/shared/wake.rs`): when the linger budget refuses
//! its connection's close (`Wake::Stop`), and when a shutdown's goodbyes
//! are not written in time. Without the wake-up, the writer stays in its
//! write, holding the socket, until the peer reads or the linger ends;
//! here the node lingers an hour, and its idle timeout (the patience of a
//! stalled write) is an hour too, so a connection's socket released at
//! all (within the 20 s the test waits) was stopped.
//!
//! Its own test binary: it counts this process's open file descriptors
//! (and its tests run one at a time, so that the count is one test's).

#[path = "common/silent_peer.rs"]
mod silent_peer;

use std::time::Duration;

use peernet_tokio::{Config, Identity, Node, NodeConfig};
use silent_peer::{open_fds, silent_peer, socket_released};
use tokio::sync::Mutex;

/// One test at a time: the other's sockets would move the count.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How long a test waits for a socket to go before it fails.
const BOUND: Duration = Duration::from_secs(20);

/// An hour: no linger, stall or idle timeout ends a writer in a test.
const HOUR: Duration = Duration::from_secs(3600);

/// Bob (seed `seed`), lingering an hour, with `protocol`'s limits (its
/// idle timeout an hour).
async fn bob(seed: u8, mut protocol: Config, tune: impl FnOnce(NodeConfig) -> NodeConfig) -> Node {
    protocol.idle_timeout = HOUR;
    let config = NodeConfig::new(Identity::from_seed(&[seed; 32]))
        .protocol(protocol)
        .linger(HOUR);
    Node::bind(tune(config), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Closes the linger budget refuses: their writers stop at once. With a
/// send cap of about 68 KiB (a 4 KiB queue, 64 KiB frames) the budget is
/// about 272 KiB, and six connections whose writers are blocked on calls
/// of 60 kB (at least one in each batch) hold more: some are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_the_linger_budget_refuses_stops_its_writer() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut protocol = Config::default();
    protocol.send_buffer = 4 << 10;
    protocol.max_send_buffer = 64 << 10;
    protocol.max_frame_len = 64 << 10;
    let bob = bob(40, protocol, |config| config).await;
    let mut silent = Vec::new();
    for seed in 41..47 {
        silent.push(silent_peer(&bob, seed, 60_000).await);
    }
    let connected = open_fds();
    for (_, peer) in &silent {
        assert!(bob.unpair(peer).await.unwrap());
    }
    if let Err(open) = socket_released(connected, BOUND).await {
        panic!("no refused close let go of its socket ({open} fds, {connected} before)");
    }
    drop(silent);
    bob.shutdown().await;
}

/// A shutdown whose goodbye to a peer that never reads is not written in
/// time (a grace of 0.1 s: the goodbyes get 1 s) stops the writer, and
/// the socket goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_the_writers_that_did_not_say_goodbye() {
    let _one = ONE_AT_A_TIME.lock().await;
    let grace = |config: NodeConfig| config.shutdown_grace(Duration::from_millis(100));
    let bob = bob(48, Config::default(), grace).await;
    let (raw, _) = silent_peer(&bob, 49, 1_000_000).await;
    let connected = open_fds();
    bob.shutdown().await;
    // (the listener's socket goes too)
    if let Err(open) = socket_released(connected - 1, BOUND).await {
        panic!(
            "the shutdown left the blocked writer's socket open ({open} fds, {connected} before)"
        );
    }
    drop(raw);
}
