//! The linger budget: closed connections may hold at most four send caps
//! of unwritten bytes node-wide while they linger; a farewell alone always
//! lingers.
//!
//! Its own test binary: it counts this process's open file descriptors
//! (and its tests run one at a time, so that the count is one test's).

#[path = "common/silent_peer.rs"]
mod silent_peer;

use std::time::Duration;

use peernet_tokio::{CloseReason, Config, Identity, Node, NodeConfig, NodeEvent};
use silent_peer::{open_fds, silent_peer, socket_released};
use tokio::sync::Mutex;

/// One test at a time: the other's sockets would move the count.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Closed connections may hold at most four send caps of unwritten bytes
/// node-wide during their linger; those whose bytes would not fit stop at
/// once. (A peer that reads nothing and reconnects as fast as it may used
/// to pin a batch of up to a send cap per closed connection, for the whole
/// linger of each: hundreds of MiB with the defaults.) Here the send cap
/// is about 68 KiB (a 4 KiB queue and 64 KiB frames), so the budget is
/// about 272 KiB, and eight connections whose writers are blocked with
/// calls of 60 kB (at least one in each batch) hold more than that when
/// they close: some of their sockets go at once. The node lingers an
/// hour, so a socket released at all (within the 30 s the test waits)
/// did not linger. (With a 64 KiB queue the last writes,
/// which carried the queue, filled the budget; they are now a GOODBYE
/// alone, and eight batches fit in four caps.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_over_the_linger_budget_stop_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut protocol = Config::default();
    protocol.send_buffer = 4 << 10;
    protocol.max_send_buffer = 64 << 10;
    protocol.max_frame_len = 64 << 10;
    let budget = 4 * protocol.hard_send_cap();
    let config = NodeConfig::new(Identity::from_seed(&[62; 32]))
        .protocol(protocol)
        .linger(Duration::from_secs(3600));
    let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut silent = Vec::new();
    for seed in 70..78 {
        silent.push(silent_peer(&bob, seed, 60_000).await);
    }
    let connected = open_fds();
    let closed_at = std::time::Instant::now();
    for (_, peer) in &silent {
        assert!(bob.unpair(peer).await.unwrap());
    }
    let lingering = bob.stats().lingering_bytes;
    assert!(
        lingering <= budget,
        "{lingering} bytes lingering, over {budget}"
    );
    // (the linger is an hour: released at all, they did not linger)
    if let Err(open) = socket_released(connected - 2, Duration::from_secs(30)).await {
        panic!(
            "{} of 8 sockets released {:?} after their close",
            connected - open,
            closed_at.elapsed()
        );
    }
    drop(silent);
    bob.shutdown().await;
}

/// A farewell alone always lingers, outside the budget: with a send cap
/// set as small as the configuration allows, a clean shutdown with one
/// idle peer still says GOODBYE. (A budget of four raw `max_send_buffer`s
/// once refused every close's GOODBYE at `max_send_buffer = 1`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farewell_alone_always_lingers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut protocol = Config::default();
    protocol.max_send_buffer = 1;
    protocol.validate().unwrap();
    let (alice_id, bob_id) = (
        Identity::from_seed(&[63; 32]),
        Identity::from_seed(&[64; 32]),
    );
    let (alice_peer, bob_peer) = (alice_id.peer_id(), bob_id.peer_id());
    let any = "127.0.0.1:0".parse().unwrap();
    let alice = Node::bind(NodeConfig::new(alice_id).trusting(bob_peer), any)
        .await
        .unwrap();
    let bob = Node::bind(
        NodeConfig::new(bob_id)
            .trusting(alice_peer)
            .protocol(protocol),
        any,
    )
    .await
    .unwrap();
    let events = alice.events();
    let bob_events = bob.events();
    alice
        .connect(bob_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    // (bob counts the connection at alice's first record: before that, a
    // shutdown closes a handshake, with no GOODBYE)
    while !matches!(
        bob_events.recv().await.unwrap(),
        NodeEvent::Connected { .. }
    ) {}
    bob.shutdown().await;
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let NodeEvent::Disconnected { reason, .. } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(reason, CloseReason::Goodbye { .. }), "{reason:?}");
    alice.shutdown().await;
}
