//! Bob, a node that trusts a raw peer (`peernet_conformance::RawPeer`)
//! connected to him over TCP, which does only what its test makes it do:
//! for the test files that play a peer misbehaving on an established
//! connection. Taken with `#[path = "common/raw_bob.rs"] mod raw_bob;`.

use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_tokio::{Config, EventStream, Identity, Node, NodeConfig, NodeEvent, TokioRuntime};

/// Bob (seed `seed + 1`) with `protocol`, connected over TCP to a raw
/// peer (seed `seed`, exposing `x`) that reads only when the test says so.
pub(crate) async fn bob_and_raw(seed: u8, protocol: Config) -> (Node, RawPeer, EventStream) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let bob = Node::bind(
        NodeConfig::new(Identity::from_seed(&[seed + 1; 32]))
            .trusting(raw_id.peer_id())
            .protocol(protocol),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let events = bob.events();
    let addr = bob.local_addr().unwrap();
    let rt = TokioRuntime::default();
    let raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &["x"]).await;
    let up =
        async { while !matches!(events.recv().await.unwrap(), NodeEvent::Connected { .. }) {} };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("bob connects");
    (bob, raw, events)
}
