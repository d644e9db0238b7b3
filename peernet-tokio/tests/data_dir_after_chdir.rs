//! A data directory named by a relative path stays the directory it
//! named when the node started, whatever the process's working directory
//! becomes (review s46, revo). The path used to be kept as given and
//! joined again at every save: after a `chdir` (a daemon going to `/`, a
//! tool working elsewhere), `pair` wrote a new trust list into whatever
//! `data` the new working directory held, and `unpair` found the peer
//! absent there and reported success, while the node's own trust file,
//! still locked by it, kept trusting the revoked peer for the next start.
//!
//! The working directory is the process's: this file holds one test.

use peernet_tokio::{Identity, Node, NodeConfig, TrustList};

fn trust_in(dir: &std::path::Path) -> Option<TrustList> {
    let text = std::fs::read_to_string(dir.join("trust")).ok()?;
    Some(TrustList::from_text(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_directory_is_the_one_named_at_the_start() {
    let (started, later) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for root in [&started, &later] {
        std::fs::create_dir(root.path().join("data")).unwrap();
    }
    let (bob, carol) = (
        Identity::from_seed(&[71; 32]).peer_id(),
        Identity::from_seed(&[72; 32]).peer_id(),
    );
    std::env::set_current_dir(started.path()).unwrap();
    let node = Node::try_new(NodeConfig::from_data_dir("data").unwrap()).unwrap();
    assert!(node.pair(bob, None).await.unwrap());
    // the process works elsewhere from now on, where a `data` is too
    std::env::set_current_dir(later.path()).unwrap();
    assert!(node.pair(carol, None).await.unwrap());
    assert!(node.unpair(&bob).await.unwrap());
    let own = started.path().join("data");
    let saved = trust_in(&own).expect("the node's trust file");
    assert!(
        !saved.contains(&bob),
        "the revocation is in the node's file"
    );
    assert!(saved.contains(&carol), "the pairing is in the node's file");
    assert_eq!(
        trust_in(&later.path().join("data")),
        None,
        "nothing written to the other directory"
    );
    node.shutdown().await;
}
