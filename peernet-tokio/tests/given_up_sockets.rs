//! A socket the node gives up on leaves nothing behind in the kernel.
//!
//! A connection to a peer that reads nothing is stopped within the linger
//! (`never_reading_peer.rs`): the node drops both halves of its socket.
//! They used to close it with a FIN, queued behind every byte the socket
//! still held for the peer, and the kernel kept the socket (FIN_WAIT1,
//! orphaned) with those bytes for as long as the peer kept its end open
//! without reading: 3.7 MB still held 100 s after the node let go, for
//! each connection a hostile peer makes it give up on, outside every
//! limit of the node. Now a socket that did not end cleanly both ways
//! closes with a reset.
//!
//! Linux only (it reads the kernel's table of TCP sockets), and its own
//! test binary (`silent_peer` counts this process's descriptors).

#![cfg(target_os = "linux")]

#[path = "common/kernel_sockets.rs"]
mod kernel_sockets;
#[path = "common/silent_peer.rs"]
mod silent_peer;

use std::time::Duration;

use kernel_sockets::{gone_from, queued_on};
use peernet_tokio::{Identity, Node, NodeConfig};
use silent_peer::{open_fds, silent_peer, socket_released};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_given_up_leaves_no_bytes_queued_in_the_kernel() {
    let config = NodeConfig::new(Identity::from_seed(&[72; 32]));
    let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = bob.local_addr().unwrap().port();
    // Bob's writer is blocked: the socket holds megabytes for the peer.
    let (raw, raw_peer) = silent_peer(&bob, 71, 1_000_000).await;
    let queued = queued_on(port);
    assert!(queued > 100_000, "bob's socket queues {queued} bytes");
    let connected = open_fds();

    // The node ends the connection; its linger stops the blocked writer.
    assert!(bob.unpair(&raw_peer).await.unwrap());
    // Within the linger (2 s) plus slack, bob lets go of the descriptor
    // (`never_reading_peer.rs`)...
    if let Err(open) = socket_released(connected, Duration::from_secs(5)).await {
        panic!("bob still holds the socket 5 s after closing it ({open} fds, {connected} before)");
    }
    // ... and the kernel of the socket and its bytes. (The raw peer, still
    // open and reading nothing, would keep a socket closed with a FIN.)
    if let Err(left) = gone_from(port, Duration::from_secs(5)).await {
        panic!(
            "5 s after bob let go of its socket, the kernel still holds it (state, bytes queued): {left:?}"
        );
    }
    drop(raw);
    bob.shutdown().await;
}
