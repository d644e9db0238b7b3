//! A data directory's `trust` and `book` files edited by hand while the
//! node runs: the node never writes over the edit (it used to, at its
//! next save: a peer the operator removed from `trust` came back at the
//! next `pair`). The save fails with `ChangedOnDisk`; a restart takes the
//! edit in.

use std::net::SocketAddr;

use peernet_tokio::persist::ChangedOnDisk;
use peernet_tokio::{AddrSource, DataDir, Identity, Node, NodeConfig, PeerId, TrustList};

fn id(seed: u8) -> PeerId {
    Identity::from_seed(&[seed; 32]).peer_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_removed_from_the_trust_file_by_hand_does_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (revoked, other) = (id(2), id(3));
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    node.pair(revoked, None).await.unwrap();
    // the operator takes `revoked` out of the file while the node runs
    // (another `DataDir` of the same directory: it saw nothing, so it
    // writes)
    DataDir::open(dir.path())
        .unwrap()
        .save_trust(&TrustList::new())
        .unwrap();
    let err = node.pair(other, None).await.unwrap_err();
    assert!(ChangedOnDisk::is(&err), "{err}");
    assert!(err.to_string().contains("restart the node"), "{err}");
    assert!(!node.trust().contains(&other), "the core changed anyway");
    let err = node.unpair(&revoked).await.unwrap_err();
    assert!(ChangedOnDisk::is(&err), "{err}");
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(on_disk.is_empty(), "the edit was overwritten: {on_disk:?}");
    // the next run takes the edit in, and saves again
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    assert!(!node.trust().contains(&revoked));
    assert!(node.pair(other, None).await.unwrap());
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(on_disk.contains(&other) && !on_disk.contains(&revoked));
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
