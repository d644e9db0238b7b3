//! The accept loop under connections that die in the listener's queue: an
//! error of one accepted connection costs nothing, so a source that resets
//! connections in a loop cannot slow everyone's accepts.

#[path = "common/lines.rs"]
mod lines;
#[path = "common/wrapped.rs"]
mod wrapped;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lines::Lines;
use peernet_tokio::{Identity, NodeConfig};
use wrapped::{Hooks, Wrapped};

/// The accepts [`BsdAccept`] failed with `ECONNABORTED`.
static ABORTED: AtomicUsize = AtomicUsize::new(0);

/// Accepts as BSD and macOS do: a connection reset while it waited in the
/// queue is returned as `ECONNABORTED` (Linux accepts it; its
/// `getpeername` then fails, which stands in here).
#[derive(Clone, Default)]
struct BsdAccept;

impl Hooks for BsdAccept {
    fn aborted(&self, stream: &tokio::net::TcpStream) -> bool {
        let aborted = stream.peer_addr().is_err();
        ABORTED.fetch_add(usize::from(aborted), Ordering::SeqCst);
        aborted
    }
}

/// 80 connections reset before they are accepted, then an honest peer: it
/// connects, and no accept error cost the loop a back-off. Each such error
/// used to cost the accept loop its 50 ms back-off (4 s here), with no
/// per-source limit to stop it, since the driver never gets a transport
/// to charge.
///
/// The back-off is seen in the log (the loop warns `accept failed` as it
/// backs off; an error of one connection is a `debug` line), not in the
/// time the connect took: a wall-clock bound on it (it was 1 s) also
/// failed whenever a loaded machine held the test that long (forced with
/// 15 ms per accept: "an honest peer waited 1.23s behind 80 resets").
#[tokio::test]
async fn connections_reset_before_accept_do_not_stall_the_accept_loop() {
    let lines = Lines::capture(tracing::Level::DEBUG);
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
    tokio::time::timeout(Duration::from_secs(15), alice.connect(b_peer, addr))
        .await
        .expect("connected within 15 s")
        .unwrap();
    alice.shutdown().await;
    bob.shutdown().await;
    // (the reset connections were queued before the honest one: they were
    // accepted, and failed, before it)
    let aborted = ABORTED.load(Ordering::SeqCst);
    assert!(aborted > 0, "no accept failed: the test shows nothing");
    let text = lines.text();
    let per_connection = text.matches("accepted connection failed").count();
    let backed_off = text.matches("accept failed").count();
    assert_eq!(
        (per_connection, backed_off),
        (aborted, 0),
        "{aborted} accept errors of one connection each, none backed off:\n{text}"
    );
}
