//! A socket the node gives up on leaves nothing behind in the kernel
//! (`peernet-tokio/tests/given_up_sockets.rs`, on smol; async-std runs
//! the same sockets). A connection to a peer that reads nothing is
//! stopped within the linger, and the node drops both halves of its
//! socket. They used to close it with a FIN queued behind every byte the
//! socket still held, and the kernel kept the socket (FIN_WAIT1,
//! orphaned) with those bytes for as long as the peer kept its end open
//! without reading. Now a socket that did not end cleanly both ways
//! closes with a reset.
//!
//! Linux only: it reads the kernel's table of TCP sockets.

#![cfg(target_os = "linux")]

use std::time::Duration;

use peernet_conformance::{RawPeer, expect_connected, within};
use peernet_smol::{Identity, Node, NodeConfig, SmolRuntime};

/// The sockets of this host on local port `port` other than a listener,
/// as (state, bytes queued to send), from `/proc/net/tcp`.
fn sockets_on(port: u16) -> Vec<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut found = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields[1].rsplit(':').next().unwrap();
        let (state, queues) = (fields[3], fields[4]);
        // (0A: listening)
        if u16::from_str_radix(local_port, 16) != Ok(port) || state == "0A" {
            continue;
        }
        let tx_queue = queues.split(':').next().unwrap();
        found.push((state.to_owned(), u64::from_str_radix(tx_queue, 16).unwrap()));
    }
    found
}

/// Bytes the kernel queues to send on the sockets of local port `port`.
fn queued_on(port: u16) -> u64 {
    sockets_on(port).iter().map(|(_, queued)| queued).sum()
}

/// Waits until `done` holds, looking every 10 ms.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_connection_given_up_leaves_no_bytes_queued_in_the_kernel() {
    smol::block_on(async {
        let rt = SmolRuntime::default();
        let config = NodeConfig::new(Identity::from_seed(&[72; 32]));
        let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = bob.local_addr().unwrap().port();
        let raw_id = Identity::from_seed(&[71; 32]);
        let raw_peer = raw_id.peer_id();
        bob.pair(raw_peer, None).await.unwrap();
        let events = bob.events();
        // Completes the handshake, then is never pumped again: it reads
        // nothing.
        let raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), bob.local_addr().unwrap(), &[]).await;
        expect_connected(&rt, &events, "the raw peer", raw_peer).await;
        // 40 MB of calls towards it: far more than loopback buffers hold.
        let args = vec![7u8; 1_000_000];
        for _ in 0..40 {
            let (bob, args) = (bob.clone(), args.clone());
            smol::spawn(async move {
                let _ = bob
                    .call(&raw_peer, "x", args, Duration::from_secs(120))
                    .await;
            })
            .detach();
        }
        within(
            &rt,
            "bob's socket filling",
            until(|| queued_on(port) > 1_000_000),
        )
        .await;

        // The node ends the connection; its linger stops the blocked
        // writer, and within it (2 s) plus slack the kernel has let go of
        // the socket and its bytes too. (The raw peer, still open and
        // reading nothing, would keep a socket closed with a FIN.)
        assert!(bob.unpair(&raw_peer).await.unwrap());
        let gone = async {
            until(|| sockets_on(port).is_empty()).await;
            true
        };
        let limit = async {
            smol::Timer::after(Duration::from_secs(5)).await;
            false
        };
        assert!(
            smol::future::or(gone, limit).await,
            "5 s after the close, the kernel still holds bob's socket (state, bytes queued): {:?}",
            sockets_on(port)
        );
        drop(raw);
        bob.shutdown().await;
    });
}

/// A peer that closes its sending side and reads nothing
/// (`peernet-tokio/tests/half_closed_peer.rs`): the node's writer is not
/// blocked (the socket took all 2.7 MB of the results called for), the
/// peer's end of stream ends the connection and the node closes its
/// socket cleanly, with a FIN queued behind those bytes. The kernel kept
/// the socket (LAST_ACK) and its bytes for as long as the peer kept its
/// end open; now it gives up once the peer takes nothing for 2 s.
#[test]
fn a_half_closed_peer_that_reads_nothing_leaves_no_bytes_in_the_kernel() {
    smol::block_on(async {
        let rt = SmolRuntime::default();
        let raw_id = Identity::from_seed(&[81; 32]);
        let config = NodeConfig::new(Identity::from_seed(&[80; 32])).trusting(raw_id.peer_id());
        let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = bob.local_addr().unwrap().port();
        let result = vec![7u8; 900_000];
        bob.expose("get", move |_, _| {
            let result = result.clone().into();
            async move { Ok(result) }
        })
        .unwrap();
        let addr = bob.local_addr().unwrap();
        let mut raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &[]).await;
        for _ in 0..3 {
            raw.call(&bob.peer_id(), "get", b"x", Duration::from_secs(600))
                .await;
        }
        within(
            &rt,
            "bob's socket filling",
            until(|| queued_on(port) > 2_000_000),
        )
        .await;

        raw.close_write().await;
        let gone = async {
            until(|| sockets_on(port).is_empty()).await;
            true
        };
        let limit = async {
            smol::Timer::after(Duration::from_secs(10)).await;
            false
        };
        assert!(
            smol::future::or(gone, limit).await,
            "10 s after the close, the kernel still holds bob's socket (state, bytes queued): {:?}",
            sockets_on(port)
        );
    });
}
