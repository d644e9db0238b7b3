//! A node and a raw peer it trusts that connects and then reads nothing:
//! the setup of the tests of callers that wait for room
//! (`room_after_cancel.rs`, `room_per_connection.rs`,
//! `room_waiters.rs`). Include `until.rs` beside it.

use peernet_conformance::RawPeer;
use peernet_tokio::{Identity, Node, NodeConfig, PeerId, TokioRuntime};

use super::until::until;

/// Node `bob` (seed 2), configured by `config`, trusting a raw peer
/// (seed 3) that is connected to it and reads nothing (keep the
/// `RawPeer`: dropping it closes the connection).
pub(crate) async fn bob_and_deaf_peer(
    config: impl FnOnce(NodeConfig) -> NodeConfig,
) -> (Node, RawPeer, PeerId) {
    let bob_id = Identity::from_seed(&[2; 32]);
    let raw_peer = Identity::from_seed(&[3; 32]).peer_id();
    let bob = Node::bind(
        config(NodeConfig::new(bob_id).trusting(raw_peer)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (raw, _) = deaf_peer(&bob, 3).await;
    (bob, raw, raw_peer)
}

/// A raw peer of identity seed `seed`, which `bob` trusts, connected to
/// `bob` and reading nothing.
pub(crate) async fn deaf_peer(bob: &Node, seed: u8) -> (RawPeer, PeerId) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let raw_peer = raw_id.peer_id();
    let rt = TokioRuntime::default();
    let raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), bob.local_addr().unwrap(), &[]).await;
    until("the raw peer is connected", || bob.is_connected(&raw_peer)).await;
    (raw, raw_peer)
}
