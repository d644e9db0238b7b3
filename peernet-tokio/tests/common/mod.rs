//! Setups the tokio test files share (each file is its own crate and
//! takes this module with `mod common;`).

use peernet_tokio::{Identity, Node, NodeConfig};

/// Two nodes on loopback, of the identities seeded `a` and `b`, each
/// trusting the other (not connected yet).
#[allow(dead_code)] // (a test file may take only `trusting_pair_with`)
pub(crate) async fn trusting_pair(a: u8, b: u8) -> (Node, Node) {
    trusting_pair_with(a, b, |config| config).await
}

/// [`trusting_pair`], each node's config changed by `tune` first.
pub(crate) async fn trusting_pair_with(
    a: u8,
    b: u8,
    tune: impl Fn(NodeConfig) -> NodeConfig,
) -> (Node, Node) {
    let (a_id, b_id) = (Identity::from_seed(&[a; 32]), Identity::from_seed(&[b; 32]));
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let any = "127.0.0.1:0".parse().unwrap();
    let a = Node::bind(tune(NodeConfig::new(a_id).trusting(b_peer)), any)
        .await
        .unwrap();
    let b = Node::bind(tune(NodeConfig::new(b_id).trusting(a_peer)), any)
        .await
        .unwrap();
    (a, b)
}
