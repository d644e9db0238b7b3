//! A subscriber that never reads its events: the drops are counted, and
//! logged at `warn` only at the 1st, 2nd, 4th, 8th... (a line per event,
//! written under the node's lock, would let peers, who cause events, stall
//! the node on a slow log sink). A test binary of its own: it installs the
//! process's log subscriber.

#[path = "common/lines.rs"]
mod lines;

use lines::Lines;
use peernet_tokio::{Identity, Node, NodeConfig};

#[tokio::test]
async fn a_lagging_subscriber_costs_a_log_line_per_doubling() {
    let lines = Lines::capture(tracing::Level::WARN);
    let (a_id, b_id) = (Identity::from_seed(&[7; 32]), Identity::from_seed(&[8; 32]));
    let b_peer = b_id.peer_id();
    let any = "127.0.0.1:0".parse().unwrap();
    let config = NodeConfig::new(a_id).trusting(b_peer).events_capacity(1);
    let a = Node::bind(config, any).await.unwrap();
    let b = Node::bind(NodeConfig::new(b_id).trusting(a.peer_id()), any)
        .await
        .unwrap();
    // subscribed, never read: room for one event
    let _events = a.events();
    // (within the peer's reconnect burst, 64)
    for _ in 0..40 {
        a.connect(b_peer, b.local_addr().unwrap()).await.unwrap();
        assert!(a.disconnect(&b_peer));
    }
    // (each cycle: Connected and Disconnected, at least)
    let dropped = a.dropped_events();
    assert!(dropped >= 79, "{dropped} dropped");
    let text = lines.text();
    let logged = text.matches("an event subscriber lags").count() as u64;
    assert_eq!(
        logged,
        u64::from(dropped.ilog2()) + 1,
        "{dropped} dropped:\n{text}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
