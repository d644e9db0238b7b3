//! A data directory's `trust` and `book` files edited by hand while the
//! node runs: the node never writes over the edit (it used to, at its
//! next save: a peer the operator removed from `trust` came back at the
//! next `pair`). A trust change is made to the file as it is then, read
//! again; a book save is refused (`ChangedOnDisk`) and retried. A restart
//! takes the edit in.

use std::net::SocketAddr;

use peernet_tokio::{AddrSource, DataDir, Identity, Node, NodeConfig, PeerId, TrustList};

fn id(seed: u8) -> PeerId {
    Identity::from_seed(&[seed; 32]).peer_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_removed_from_the_trust_file_by_hand_does_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (revoked, other, third) = (id(2), id(3), id(4));
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    node.pair(revoked, None).await.unwrap();
    // the operator takes `revoked` out of the file while the node runs
    // (another `DataDir` of the same directory: it saw nothing, so it
    // writes)
    DataDir::open(dir.path())
        .unwrap()
        .save_trust(&TrustList::new())
        .unwrap();
    // a pair is made to the file as it is now: `revoked` stays out
    assert!(node.pair(other, None).await.unwrap());
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(on_disk.contains(&other), "{on_disk:?}");
    assert!(!on_disk.contains(&revoked), "the edit was overwritten");
    // and an unpair is never held up by the edit: the running node
    // revokes at once
    assert!(node.unpair(&revoked).await.unwrap());
    assert!(!node.trust().contains(&revoked));
    // the operator edits again; the next change keeps that edit too
    let mut edited = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    edited.insert(third, None);
    DataDir::open(dir.path())
        .unwrap()
        .save_trust(&edited)
        .unwrap();
    assert!(node.unpair(&other).await.unwrap());
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(on_disk.contains(&third) && !on_disk.contains(&other) && !on_disk.contains(&revoked));
    // the next run takes the edits in
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    assert!(node.trust().contains(&third) && !node.trust().contains(&revoked));
    node.shutdown().await;
}

/// A trust file damaged by hand while the node runs is not written over:
/// the change fails and names what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_trust_file_is_not_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    node.pair(id(2), None).await.unwrap();
    std::fs::write(dir.path().join("trust"), "not a trust list\n").unwrap();
    let err = node.pair(id(3), None).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(!node.trust().contains(&id(3)), "the core changed anyway");
    let text = std::fs::read_to_string(dir.path().join("trust")).unwrap();
    assert_eq!(text, "not a trust list\n");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_book_edited_by_hand_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let peer = id(2);
    let addr = |last: u8| -> SocketAddr { format!("192.0.2.{last}:4000").parse().unwrap() };
    {
        let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
        node.pair(peer, None).await.unwrap();
        node.add_address(peer, addr(1), AddrSource::Application)
            .unwrap();
        node.shutdown().await;
    }
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    // the operator replaces the peer's address while the node runs
    let hand = DataDir::open(dir.path()).unwrap();
    let mut book = hand.load_book().unwrap();
    assert_eq!(book.get(&peer), [(addr(1), AddrSource::Application)]);
    book.set(peer, vec![(addr(2), AddrSource::Application)]);
    hand.save_book(&book).unwrap();
    // a change of the node's own book is not saved over it, at the
    // debounced save nor at shutdown
    node.add_address(peer, addr(3), AddrSource::Application)
        .unwrap();
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_book().unwrap();
    assert_eq!(on_disk.get(&peer), [(addr(2), AddrSource::Application)]);
}

/// A hand edit that leaves the trust file unparsable (a typo, a
/// half-saved file) made `unpair` fail and the running node go on
/// trusting, and serving, the peer being revoked (review s40, r4). The
/// file is still not written over, but the revocation takes effect, and
/// the error says the file still trusts the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpair_revokes_even_when_the_trust_file_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let compromised = id(2);
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    node.pair(compromised, None).await.unwrap();
    // the operator's edit of the file went wrong
    std::fs::write(dir.path().join("trust"), "peernet-trust-list v1\noops\n").unwrap();
    let unpaired = node.unpair(&compromised).await;
    let still = node.trust().contains(&compromised);
    let err = unpaired.as_ref().expect_err("the file was not updated");
    assert!(err.to_string().contains("revoked in this run"), "{err}");
    println!("unpair: {unpaired:?}; node still trusts the peer: {still}");
    node.shutdown().await;
    assert!(
        !still,
        "the revocation was held up by the damaged file (unpair: {unpaired:?})"
    );
}

/// The same with a trust file that is a FIFO (made by mistake, or by
/// whoever may write the directory) or a symbolic link to a good list (a
/// dotfile manager's, or a Kubernetes ConfigMap mount's): the peer is
/// revoked all the same, and the error names the file's trouble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpair_revokes_even_when_the_trust_file_is_a_fifo_or_a_link() {
    let mut held = Vec::new();
    for kind in ["fifo", "symlink"] {
        let dir = tempfile::tempdir().unwrap();
        let compromised = id(2);
        let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
        node.pair(compromised, None).await.unwrap();
        let trust = dir.path().join("trust");
        let good = std::fs::read(&trust).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_file(&trust).unwrap();
        match kind {
            "fifo" => {
                let ok = std::process::Command::new("mkfifo")
                    .arg(&trust)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
            _ => {
                let elsewhere = other.path().join("trust");
                std::fs::write(&elsewhere, &good).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &trust).unwrap();
            }
        }
        let unpaired = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            node.unpair(&compromised),
        )
        .await
        .expect("unpair does not hang");
        let still = node.trust().contains(&compromised);
        println!("{kind}: unpair: {unpaired:?}; node still trusts the peer: {still}");
        node.shutdown().await;
        if still {
            held.push(format!("{kind}: {unpaired:?}"));
        }
    }
    assert!(held.is_empty(), "the revocation was held up: {held:?}");
}
