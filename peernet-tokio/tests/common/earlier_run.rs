//! What an earlier run of a node left in its data directory, for the
//! tests of the next run. Test files take it with
//! `#[path = "common/earlier_run.rs"] mod earlier_run;`.

use std::net::SocketAddr;
use std::path::Path;

use peernet_tokio::{AddrSource, Node, NodeConfig, PeerId};

/// A node of the data directory `dir`, started, that pairs `peers`,
/// saves `addr` for the first (an application's address) and shuts down:
/// its trust file and book hold them.
pub(crate) async fn saved_book(dir: &Path, peers: &[PeerId], addr: SocketAddr) {
    let node = Node::new(NodeConfig::from_data_dir(dir).unwrap());
    for peer in peers {
        node.pair(*peer, None).await.unwrap();
    }
    node.add_address(peers[0], addr, AddrSource::Application)
        .unwrap();
    node.shutdown().await;
}
