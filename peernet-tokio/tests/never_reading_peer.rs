//! Issue 13, fault 1: a peer that never reads must not keep its socket and
//! our queued bytes after the node closed the connection. The writer used
//! to stay blocked in its write for as long as the peer kept its end open
//! (the linger only started after that write), pinning the descriptor and
//! megabytes of unsent data per redial.
//!
//! Its own test binary: it counts this process's open file descriptors.

#[path = "common/silent_peer.rs"]
mod silent_peer;

use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_tokio::{Identity, NodeConfig};
use peernet_tokio::{Node, PeerId};
use silent_peer::{open_fds, silent_peer, socket_released};

/// Bob's linger.
const LINGER: Duration = Duration::from_millis(200);

/// How long the test waits for the socket to go before it fails.
const BOUND: Duration = Duration::from_secs(20);

/// Bob, with a writer blocked towards a raw peer that never reads, and
/// the descriptors open while connected.
pub(crate) async fn bob_blocked_on_a_silent_peer(
    config: NodeConfig,
) -> (Node, RawPeer, PeerId, usize) {
    let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (raw, raw_peer) = silent_peer(&bob, 61, 1_000_000).await;
    let connected = open_fds();
    (bob, raw, raw_peer, connected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_releases_its_socket_though_the_peer_never_reads() {
    // (a short linger, and a wait far beyond it that only ends a failing
    // run: the writer, stuck for as long as the peer keeps its end open,
    // is what must end)
    let config = NodeConfig::new(Identity::from_seed(&[62; 32])).linger(LINGER);
    let (bob, raw, raw_peer, connected) = bob_blocked_on_a_silent_peer(config).await;

    // The node ends the connection while its writer is stuck.
    assert!(bob.unpair(&raw_peer).await.unwrap());
    assert_eq!(bob.stats().core.connections, 0, "the core let go at once");

    // Once the linger is over, bob's socket is closed.
    if let Err(open) = socket_released(connected, BOUND).await {
        panic!(
            "bob still holds the socket {BOUND:?} after closing it, with a {LINGER:?} linger \
             ({open} fds, {connected} while connected)"
        );
    }
    drop(raw);
    bob.shutdown().await;
}
