//! A peer that closes its sending side and reads nothing leaves nothing
//! behind in the kernel either (see `given_up_sockets.rs`).
//!
//! Here nothing is given up: the node's writer is not blocked (the
//! socket took every byte of the results the peer called for), the
//! peer's end of stream ends the connection, and the node closes its
//! socket cleanly, with a FIN queued behind those bytes. The kernel kept
//! that socket (LAST_ACK, orphaned) and 2.5 MB for as long as the peer
//! kept its end open without reading, outside every limit of the node,
//! for each connection a peer made this way. Now a socket let go of
//! cleanly gives up once the peer takes none of its bytes for 2 s
//! (`TCP_USER_TIMEOUT`).
//!
//! Linux only: it reads the kernel's table of TCP sockets.

#![cfg(target_os = "linux")]

#[path = "common/kernel_sockets.rs"]
mod kernel_sockets;
#[path = "common/unread.rs"]
mod unread;

use std::time::Duration;

use bytes::Bytes;
use kernel_sockets::{gone_from, queued_on};
use peernet_proto::Config;
use unread::Unread;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_peer_that_reads_nothing_leaves_no_bytes_in_the_kernel() {
    let result = Bytes::from(vec![7u8; 900_000]);
    let mut unread = Unread::start(80, &[81], Config::default(), move || result.clone()).await;
    let port = unread.bob.local_addr().unwrap().port();
    // 2.7 MB of results, which loopback socket buffers hold: bob's writer
    // writes them all and waits for more.
    unread.call_from(0, 3).await;
    let written = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while queued_on(port) < 2_000_000 {
            tick.tick().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), written)
        .await
        .expect("bob's socket holds the results");

    // The peer closes its sending side: bob reads the end of stream, the
    // connection ends, and bob closes its socket, with nothing to linger
    // for. Within 2 s without progress plus slack, the kernel lets go.
    unread.raws[0].close_write().await;
    if let Err(left) = gone_from(port, Duration::from_secs(10)).await {
        panic!(
            "10 s after the close, the kernel still holds bob's socket (state, bytes queued): {left:?}"
        );
    }
}
