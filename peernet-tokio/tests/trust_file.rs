//! What `pair` and `unpair` write to a data directory's trust file, and
//! what a node takes from it at start.

#[path = "common/earlier_run.rs"]
mod earlier_run;
#[path = "common/hand.rs"]
mod hand;
#[path = "common/lines.rs"]
mod lines;
#[path = "common/until.rs"]
mod until;

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

/// A run that leaves some of the data directory's trusted peers out
/// (`NodeConfig::trust`) does not wipe their saved addresses: every save
/// writes them back, and they are given back to the core if the run
/// pairs one of them. (The addresses of the peers this run trusts are
/// saved as ever; a peer not trusted at the next start has its entries
/// ignored.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_leaves_peers_out_keeps_their_saved_addresses() {
    use peernet_tokio::{AddrSource, DataDir, Identity, Node, NodeConfig, TrustList};
    let dir = tempfile::tempdir().unwrap();
    let id = |seed: u8| Identity::from_seed(&[seed; 32]).peer_id();
    let (kept, once) = (id(2), id(3));
    let kept_addr: std::net::SocketAddr = "192.0.2.2:4000".parse().unwrap();
    let once_addr: std::net::SocketAddr = "192.0.2.3:4000".parse().unwrap();
    earlier_run::saved_book(dir.path(), &[kept], kept_addr).await;
    {
        let config = NodeConfig::from_data_dir(dir.path())
            .unwrap()
            .trust(TrustList::new())
            .trusting(once);
        let node = Node::new(config);
        node.add_address(once, once_addr, AddrSource::Application)
            .unwrap();
        node.shutdown().await;
    }
    let book = DataDir::open(dir.path()).unwrap().load_book().unwrap();
    assert_eq!(book.get(&once), [(once_addr, AddrSource::Application)]);
    assert_eq!(book.get(&kept), [(kept_addr, AddrSource::Application)]);
    // a run that leaves `kept` out and pairs it again gets its address back
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trust(TrustList::new());
    let node = Node::new(config);
    node.pair(kept, None).await.unwrap();
    let back: Vec<_> = node.addresses(&kept).iter().map(|e| e.addr).collect();
    assert_eq!(back, [kept_addr]);
    node.shutdown().await;
}

/// `unpair` of a peer the data directory trusts and this run left out
/// (`NodeConfig::trust`) says it changed something (it took the peer out
/// of the trust file) and forgets the peer's saved addresses, as an
/// unpair of a peer the run trusts does: they are not given back by a
/// later `pair`, nor left in the book file for a later run. It used to
/// return false, and keep the addresses aside and in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpair_of_a_peer_only_the_file_trusts_reports_it_and_forgets_its_addresses() {
    use peernet_tokio::{DataDir, Identity, Node, NodeConfig, TrustList};
    let dir = tempfile::tempdir().unwrap();
    let left_out = Identity::from_seed(&[2; 32]).peer_id();
    let addr: std::net::SocketAddr = "192.0.2.2:4000".parse().unwrap();
    earlier_run::saved_book(dir.path(), &[left_out], addr).await;
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trust(TrustList::new());
    let node = Node::new(config);
    assert!(node.unpair(&left_out).await.unwrap(), "the file trusted it");
    assert!(!node.unpair(&left_out).await.unwrap(), "nothing left to do");
    // paired again in this run: a new peer, without the old addresses
    node.pair(left_out, None).await.unwrap();
    assert!(node.addresses(&left_out).is_empty());
    assert!(node.unpair(&left_out).await.unwrap());
    node.shutdown().await;
    let data = DataDir::open(dir.path()).unwrap();
    assert!(!data.load_trust().unwrap().contains(&left_out));
    assert!(data.load_book().unwrap().get(&left_out).is_empty());
}

/// A trust file edited by hand to name the node's own PeerId does not
/// stop the start: the entry is left out of the node's trust list (it
/// would do nothing, a node never trusts itself), with a warning that
/// names the file, and the next trust change writes the file without it,
/// the other peers kept. It used to be taken into the node's list, and
/// written back by every `pair`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_file_naming_the_node_itself_is_read_without_it() {
    use peernet_tokio::{DataDir, Identity, Node, NodeConfig, TrustList};
    let logs = lines::Lines::capture(tracing::Level::WARN);
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let own = data.load_or_create_identity().unwrap().peer_id();
    let id = |seed: u8| Identity::from_seed(&[seed; 32]).peer_id();
    let (kept, paired) = (id(2), id(3));
    let mut trust = TrustList::new();
    trust.insert(own, None);
    trust.insert(kept, None);
    data.save_trust(&trust).unwrap();
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    assert!(!node.trust().contains(&own), "the node trusts itself");
    assert!(node.trust().contains(&kept));
    let file = dir.path().join("trust").display().to_string();
    let text = logs.text();
    // (this file's warnings only: the log is the process's, and the other
    // tests of this binary, running at the same time, may read trust
    // files that name their own node)
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("names this node itself") && l.contains(&file))
        .collect();
    assert_eq!(warned.len(), 1, "{file}: {text}");
    assert!(warned[0].contains("WARN"), "{text}");
    node.pair(paired, None).await.unwrap();
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(!on_disk.contains(&own), "written back: {on_disk:?}");
    assert!(on_disk.contains(&kept) && on_disk.contains(&paired));
}

/// A node never trusts itself, however it is asked: `pair` of its own
/// PeerId fails `TrustChangeError::OwnPeerId` and writes nothing, and a
/// list given at start (`trusting`) leaves it out. `pair` used to trust it and write it
/// to the trust file, which the next start then had to leave out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_pair_with_itself() {
    use peernet_tokio::{DataDir, Node, NodeConfig};
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let own = data.load_or_create_identity().unwrap().peer_id();
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    let err = node.pair(own, None).await.unwrap_err();
    assert!(
        matches!(err, peernet_tokio::TrustChangeError::OwnPeerId(peer) if peer == own),
        "{err:?}"
    );
    assert!(err.to_string().contains(&own.to_string()), "{err}");
    assert!(!node.trust().contains(&own));
    node.shutdown().await;
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(!on_disk.contains(&own), "written: {on_disk:?}");

    let identity = peernet_tokio::Identity::from_seed(&[7; 32]);
    let me = identity.peer_id();
    let node = Node::new(NodeConfig::new(identity).trusting(me));
    assert!(!node.trust().contains(&me), "trusting() of itself kept");
    node.shutdown().await;
}

/// The list a config says the node starts with
/// (`NodeConfig::trust_list`) is the one it starts with: the node's own
/// PeerId, given to `trusting` or in a list given to `trust`, is not in
/// it. It used to be shown there, though the node left it out.
#[test]
fn a_config_does_not_list_the_node_itself_as_trusted() {
    use peernet_tokio::{Identity, NodeConfig, TrustList};
    let identity = Identity::from_seed(&[7; 32]);
    let (me, other) = (identity.peer_id(), Identity::from_seed(&[8; 32]).peer_id());
    let config = NodeConfig::new(identity.clone())
        .trusting(me)
        .trusting(other);
    assert!(
        !config.trust_list().contains(&me),
        "trusting() of itself listed"
    );
    assert!(config.trust_list().contains(&other));
    let mut list = TrustList::new();
    list.insert(me, None);
    list.insert(other, None);
    let config = NodeConfig::new(identity).trust(list);
    assert!(
        !config.trust_list().contains(&me),
        "trust() with itself listed"
    );
    assert!(config.trust_list().contains(&other));
}

/// A trust file naming the node itself stays read without it when a
/// book save reads it again (the book edited by hand while the node
/// runs): the node's own saved addresses are not written back, as at
/// any other save. That reading used to take the file's list whole, the
/// node's own PeerId in it, as the directory's list: the next saves
/// wrote its addresses back as a peer's the run left out (and the next
/// trust change said the file had changed on disk when it had not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_read_again_leaves_the_node_itself_out() {
    use peernet_tokio::book_file::SavedBook;
    use peernet_tokio::{AddrSource, DataDir, Identity, Node, NodeConfig, TrustList};
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let own = data.load_or_create_identity().unwrap().peer_id();
    let id = |seed: u8| Identity::from_seed(&[seed; 32]).peer_id();
    let (edited, other) = (id(2), id(3));
    let addr =
        |last: u8| -> std::net::SocketAddr { format!("192.0.2.{last}:4000").parse().unwrap() };
    let app = AddrSource::Application;
    let mut trust = TrustList::new();
    for peer in [own, edited, other] {
        trust.insert(peer, None);
    }
    data.save_trust(&trust).unwrap();
    let mut book = SavedBook::new();
    book.set(own, [(addr(9), app)]);
    book.set(edited, [(addr(1), app)]);
    data.save_book(&book).unwrap();
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    // the operator moves `edited` while the node runs: the node's next
    // save reads the book, and the trust file, again
    hand::move_in_book(dir.path(), edited, addr(2));
    node.add_address(other, addr(3), app).unwrap();
    let on_disk = || DataDir::open(dir.path()).unwrap().load_book().unwrap();
    until::until("the other peer's address saved", || {
        !on_disk().get(&other).is_empty()
    })
    .await;
    // and one more save, made from what that reading left
    node.add_address(other, addr(4), app).unwrap();
    until::until("the other peer's second address saved", || {
        on_disk().get(&other).len() == 2
    })
    .await;
    node.shutdown().await;
    let saved = on_disk();
    assert_eq!(saved.get(&edited), [(addr(2), app)], "the edit was lost");
    assert!(
        saved.get(&own).is_empty(),
        "the node's own addresses: {:?}",
        saved.get(&own)
    );
}

/// A node that has shut down takes no trust or address change, with a
/// data directory or without one: `pair` and `unpair` fail and change
/// nothing, `add_address` records nothing (`Ok(false)`). Without a data
/// directory they used to return `Ok(true)` and change the closed
/// node's tables, which nothing reads any more, while a node with a data
/// directory refused the same trust change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_node_takes_no_trust_or_address_change() {
    use peernet_tokio::{AddrSource, Identity, Node, NodeConfig, TrustChangeError};
    let dir = tempfile::tempdir().unwrap();
    let id = |seed: u8| Identity::from_seed(&[seed; 32]).peer_id();
    let (paired, other) = (id(2), id(3));
    let addr = "192.0.2.7:4000".parse().unwrap();
    let configs = [
        (
            "no data directory",
            NodeConfig::new(Identity::from_seed(&[1; 32])),
        ),
        (
            "a data directory",
            NodeConfig::from_data_dir(dir.path()).unwrap(),
        ),
    ];
    for (what, config) in configs {
        let node = Node::new(config);
        node.pair(paired, None).await.unwrap();
        node.shutdown().await;
        let trust = node.trust();
        let err = node.pair(other, None).await.unwrap_err();
        assert!(matches!(err, TrustChangeError::Closed), "{what}: {err:?}");
        assert!(err.to_string().contains("closed"), "{what}: {err}");
        let err = node.unpair(&paired).await.unwrap_err();
        assert!(matches!(err, TrustChangeError::Closed), "{what}: {err:?}");
        assert_eq!(node.trust(), trust, "{what}: the trust list changed");
        let added = node.add_address(paired, addr, AddrSource::Application);
        assert_eq!(added, Ok(false), "{what}");
        assert!(node.addresses(&paired).is_empty(), "{what}: recorded");
    }
}

/// `trusting` a peer that the data directory's trust file names with a
/// label keeps the label in the running trust list (it used to insert
/// the peer again without one, so the run showed it unlabelled and
/// access rules keyed on the label stopped matching).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_a_labelled_peer_keeps_its_label() {
    use peernet_tokio::{Identity, Label, Node, NodeConfig};
    let dir = tempfile::tempdir().unwrap();
    let peer = Identity::from_seed(&[2; 32]).peer_id();
    let label = Label::new("alice").unwrap();
    {
        let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
        node.pair(peer, Some(label.clone())).await.unwrap();
        node.shutdown().await;
    }
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trusting(peer);
    assert_eq!(config.trust_list().label(&peer), Some(&label));
    let node = Node::new(config);
    assert_eq!(node.trust().label(&peer), Some(&label));
    node.shutdown().await;
}
