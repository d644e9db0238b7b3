//! The linger budget: closed connections may hold at most four send
//! buffers of unwritten bytes node-wide while they linger.
//!
//! Its own test binary: it counts this process's open file descriptors.

#[path = "common/silent_peer.rs"]
mod silent_peer;

use std::time::Duration;

use peernet_tokio::{Config, Identity, NodeConfig};
use silent_peer::{bob_blocked_on_a_silent_peer, socket_released};

/// Closed connections may hold at most four send buffers of unwritten
/// bytes node-wide during their linger; one whose writer holds more stops
/// at once. (A peer that reads nothing and reconnects as fast as it may
/// used to pin a batch of up to a send buffer per closed connection, for
/// the whole linger of each: hundreds of MiB with the defaults.) Here the
/// send buffer is 64 KiB, so the budget is 256 KiB, and the blocked
/// writer's batch of a 1 MB call is over it: the socket goes well before
/// the 2 s linger would have let it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_over_the_linger_budget_stops_at_once() {
    let mut protocol = Config::default();
    protocol.max_send_buffer = 64 << 10;
    let config = NodeConfig::new(Identity::from_seed(&[62; 32])).protocol(protocol);
    let (bob, raw, raw_peer, connected) = bob_blocked_on_a_silent_peer(config).await;
    let closed_at = std::time::Instant::now();
    assert!(bob.unpair(&raw_peer).await.unwrap());
    let lingering = bob.stats().lingering_bytes;
    assert!(lingering <= 4 * (64 << 10), "{lingering} bytes lingering");
    // (the linger is 2 s: released in 1 s, it did not linger)
    if socket_released(connected, Duration::from_secs(1))
        .await
        .is_err()
    {
        panic!(
            "bob still holds the socket {:?} after closing it",
            closed_at.elapsed()
        );
    }
    drop(raw);
    bob.shutdown().await;
}
