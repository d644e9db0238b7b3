//! A node bound to a free port on the loopback, for the test files that
//! set up each node's config themselves.

use peernet_tokio::{Node, NodeConfig};

/// A node of `config`, bound to `127.0.0.1:0` (panics if it cannot bind).
pub async fn bound(config: NodeConfig) -> Node {
    Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}
