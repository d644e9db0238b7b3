//! A data directory named through a symbolic link stays the directory
//! the link named when the node started (review s54). The path used to
//! be followed again at every open: re-pointing a link in it while the
//! node ran (a deploy's `current -> releases/vN`) sent the node's saves
//! to the new target, a directory whose lock it did not hold (a second
//! node could be running there), and left its own trust file trusting a
//! peer the node had revoked.

#![cfg(unix)]

use peernet_tokio::{DataDir, Identity, Node, NodeConfig, TrustList};

fn trust_in(dir: &std::path::Path) -> Option<TrustList> {
    let text = std::fs::read_to_string(dir.join("trust")).ok()?;
    Some(TrustList::from_text(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_re_pointed_while_the_node_runs_does_not_move_its_saves() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = (root.path().join("v1"), root.path().join("v2"));
    for release in [&v1, &v2] {
        std::fs::create_dir_all(release.join("node")).unwrap();
    }
    let current = root.path().join("current");
    std::os::unix::fs::symlink(&v1, &current).unwrap();
    let (bob, carol) = (
        Identity::from_seed(&[81; 32]).peer_id(),
        Identity::from_seed(&[82; 32]).peer_id(),
    );
    let config = NodeConfig::from_data_dir(current.join("node")).unwrap();
    let node = Node::try_new(config).unwrap();
    node.pair(bob, None).await.unwrap();
    // the deploy re-points the link to the next release
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&v2, &current).unwrap();
    node.pair(carol, None).await.unwrap();
    assert!(node.unpair(&bob).await.unwrap());
    node.shutdown().await;
    let kept = trust_in(&v1.join("node")).expect("the node's trust file");
    assert!(kept.contains(&carol), "carol was saved elsewhere: {kept:?}");
    assert!(!kept.contains(&bob), "bob's revocation was saved elsewhere");
    assert!(trust_in(&v2.join("node")).is_none(), "the node wrote in v2");
    // (what the directory says it is: the resolved path)
    let opened = DataDir::open(current.join("node")).unwrap();
    assert_eq!(opened.path(), v2.join("node").canonicalize().unwrap());
}
