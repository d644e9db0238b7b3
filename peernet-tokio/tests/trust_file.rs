//! What `pair` and `unpair` write to a data directory's trust file.

/// A peer trusted for one run (`trusting`, `serve --trust`) is not
/// written to the data directory's trust file by a later `pair` of
/// someone else, nor is a peer the run's `trust` list dropped: `pair`
/// and `unpair` save the file's own list with their change. It used to
/// save the node's whole list, so a one-run grant became permanent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_trusted_for_one_run_is_not_saved_by_pair() {
    let dir = tempfile::tempdir().unwrap();
    let id = |seed: u8| peernet_tokio::Identity::from_seed(&[seed; 32]).peer_id();
    let (kept, once, paired) = (id(2), id(3), id(4));
    {
        let node =
            peernet_tokio::Node::new(peernet_tokio::NodeConfig::from_data_dir(dir.path()).unwrap());
        node.pair(kept, None).await.unwrap();
        node.shutdown().await;
    }
    let config = peernet_tokio::NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trust(peernet_tokio::TrustList::new())
        .trusting(once);
    let node = peernet_tokio::Node::new(config);
    node.pair(paired, None).await.unwrap();
    assert!(node.trust().contains(&paired) && node.trust().contains(&once));
    node.shutdown().await;
    let trust = peernet_tokio::DataDir::open(dir.path())
        .unwrap()
        .load_trust()
        .unwrap();
    assert!(!trust.contains(&once), "the one-run peer was saved");
    assert!(trust.contains(&kept) && trust.contains(&paired));
}
