//! The accept loop under connections that die in the listener's queue: an
//! error of one accepted connection costs nothing, so a source that resets
//! connections in a loop cannot slow everyone's accepts.

#[path = "common/wrapped.rs"]
mod wrapped;

use std::time::{Duration, Instant};

use peernet_tokio::{Identity, NodeConfig};
use wrapped::{Hooks, Wrapped};

/// Accepts as BSD and macOS do: a connection reset while it waited in the
/// queue is returned as `ECONNABORTED` (Linux accepts it; its
/// `getpeername` then fails, which stands in here).
#[derive(Clone, Default)]
struct BsdAccept;

impl Hooks for BsdAccept {
    fn aborted(&self, stream: &tokio::net::TcpStream) -> bool {
        stream.peer_addr().is_err()
    }
}

/// 80 connections reset before they are accepted, then an honest peer: it
/// connects at once. Each such error used to cost the accept loop its
/// 50 ms back-off (4 s here), with no per-source limit to stop it, since
/// the driver never gets a transport to charge.
#[tokio::test]
async fn connections_reset_before_accept_do_not_stall_the_accept_loop() {
    let (a_id, b_id) = (
        Identity::from_seed(&[85; 32]),
        Identity::from_seed(&[86; 32]),
    );
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let alice = peernet_tokio::Node::bind(
        NodeConfig::new(a_id).trusting(b_peer),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let bob =
        peernet_driver::Node::<Wrapped<BsdAccept>>::new(NodeConfig::new(b_id).trusting(a_peer));
    let addr = bob.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // (no await until all are reset: the accept loop has not run yet)
    for _ in 0..80 {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        // closed with a reset as it drops
        tokio::net::TcpStream::from_std(s)
            .unwrap()
            .set_zero_linger()
            .unwrap();
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), alice.connect(b_peer, addr))
        .await
        .expect("connected within 15 s")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "an honest peer waited {took:?} behind 80 resets"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
