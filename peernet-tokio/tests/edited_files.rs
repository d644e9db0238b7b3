//! A data directory's `trust` and `book` files edited by hand while the
//! node runs: the node never writes over the edit (it used to, at its
//! next save: a peer the operator removed from `trust` came back at the
//! next `pair`). A trust change is made to the file as it is then, read
//! again; a book save reads the book again and keeps the operator's lines
//! of the peers the edit changed, the node's of the others (it used to be
//! refused, `ChangedOnDisk`, at every retry until a restart). A file that
//! does not load is never written over. A restart takes the edit in.

#[path = "common/earlier_run.rs"]
mod earlier_run;
#[path = "common/hand.rs"]
mod hand;
#[path = "common/until.rs"]
mod until;

use std::net::SocketAddr;

use peernet_tokio::book_file::SavedBook;
use peernet_tokio::{
    AddrSource, DataDir, Identity, Node, NodeConfig, PeerId, TrustChangeError, TrustList,
};
use until::until;

fn id(seed: u8) -> PeerId {
    Identity::from_seed(&[seed; 32]).peer_id()
}

fn addr(last: u8) -> SocketAddr {
    format!("192.0.2.{last}:4000").parse().unwrap()
}

/// The book file of `dir` as it is now, read by a hand of its own.
fn book_on_disk(dir: &std::path::Path) -> SavedBook {
    DataDir::open(dir).unwrap().load_book().unwrap()
}

/// The addresses of `peer` in the book file of `dir`, sorted.
fn addrs_on_disk(dir: &std::path::Path, peer: &PeerId) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = book_on_disk(dir)
        .get(peer)
        .iter()
        .map(|(a, _)| *a)
        .collect();
    addrs.sort();
    addrs
}

/// A node whose data directory trusts `peers`, the first with `addr(1)`
/// saved: started, given that, and shut down.
async fn a_saved_book(dir: &std::path::Path, peers: &[PeerId]) {
    earlier_run::saved_book(dir, peers, addr(1)).await;
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
    match &err {
        TrustChangeError::File(e) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{err}"),
        _ => panic!("{err:?}"),
    }
    assert!(!node.trust().contains(&id(3)), "the core changed anyway");
    let text = std::fs::read_to_string(dir.path().join("trust")).unwrap();
    assert_eq!(text, "not a trust list\n");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_book_edited_by_hand_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let peer = id(2);
    a_saved_book(dir.path(), &[peer]).await;
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
/// the error says the file still trusts the peer, and whether the run
/// did (what `unpair` returns).
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
    assert!(
        matches!(err, TrustChangeError::RevokedNotSaved { changed: true, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoked in this run"), "{err}");
    println!("unpair: {unpaired:?}; node still trusts the peer: {still}");
    // again: the run no longer trusted the peer, and the error says so
    // (what `unpair` returns when it succeeds)
    let again = node.unpair(&compromised).await;
    assert!(
        matches!(
            again,
            Err(TrustChangeError::RevokedNotSaved { changed: false, .. })
        ),
        "{again:?}"
    );
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
                // (made here, not by a `mkfifo` process: a child holds a
                // copy of every descriptor of this process until it has
                // exec'd, the data directory locks of the other tests
                // among them, which then stay taken a moment after their
                // node let go; the next node of that directory failed
                // to start, `InUse`, in 5 of 40 runs)
                use std::os::unix::ffi::OsStrExt;
                let path = std::ffi::CString::new(trust.as_os_str().as_bytes()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
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

/// A hand edit of one peer's lines stopped every book save until a
/// restart: what the node learned of the other peers meanwhile was not
/// saved (a warning at each retry, up to every 5 minutes), and lost in a
/// crash. Now the save reads the file again and keeps the edit for the
/// peer it changed, and the node's lines for the others; later saves of
/// the run keep both, and the next start loads the edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_of_the_book_keeps_the_edit_and_the_nodes_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (edited, other) = (id(2), id(3));
    let app = AddrSource::Application;
    a_saved_book(dir.path(), &[edited, other]).await;
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    // the operator moves `edited` to another address while the node runs
    hand::move_in_book(dir.path(), edited, addr(2));
    // the node learns an address of the other peer: saved, next to the edit
    node.add_address(other, addr(3), app).unwrap();
    until("the other peer's new address saved", || {
        !book_on_disk(dir.path()).get(&other).is_empty()
    })
    .await;
    let on_disk = book_on_disk(dir.path());
    assert_eq!(on_disk.get(&edited), [(addr(2), app)], "the edit was lost");
    assert_eq!(on_disk.get(&other), [(addr(3), app)]);
    // later saves keep the edit: what the node learns of the edited peer
    // is not mixed into the operator's lines; of the other, it is saved
    node.add_address(edited, addr(4), app).unwrap();
    node.add_address(other, addr(5), app).unwrap();
    node.shutdown().await;
    let on_disk = book_on_disk(dir.path());
    assert_eq!(on_disk.get(&edited), [(addr(2), app)]);
    let mut others: Vec<SocketAddr> = on_disk.get(&other).iter().map(|(a, _)| *a).collect();
    others.sort();
    assert_eq!(others, [addr(3), addr(5)]);
    // the next run dials by the edit
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    let loaded: Vec<SocketAddr> = node.addresses(&edited).iter().map(|e| e.addr).collect();
    node.shutdown().await;
    assert_eq!(loaded, [addr(2)]);
}

/// A book file that no longer loads is never written over, however many
/// saves come; once the operator mends it, the next save keeps the mended
/// file's lines for the peers it changed and adds what the node learned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_book_is_never_written_over_and_a_mended_one_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (edited, other) = (id(2), id(3));
    let app = AddrSource::Application;
    a_saved_book(dir.path(), &[edited, other]).await;
    let path = dir.path().join("book");
    let good = std::fs::read_to_string(&path).unwrap();
    let damaged = "peernet-address-book v1\noops\n";
    // damaged while a node runs: its saves, the shutdown's too, leave it
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    std::fs::write(&path, damaged).unwrap();
    node.add_address(other, addr(3), app).unwrap();
    node.shutdown().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged);
    // damaged, then mended while a node runs
    std::fs::write(&path, good).unwrap();
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    std::fs::write(&path, damaged).unwrap();
    node.add_address(other, addr(3), app).unwrap();
    let mut mended = SavedBook::new();
    mended.set(edited, [(addr(7), app)]);
    DataDir::open(dir.path())
        .unwrap()
        .save_book(&mended)
        .unwrap();
    node.shutdown().await;
    let on_disk = book_on_disk(dir.path());
    assert_eq!(on_disk.get(&edited), [(addr(7), app)]);
    assert_eq!(on_disk.get(&other), [(addr(3), app)]);
}

/// An unpair drops the operator's lines of the peer: a later `pair`
/// starts it with what the node learns. A hand edit of the peer that the
/// node read only after the unpair (the unpair's own book save found the
/// file edited) used to be taken in all the same, kept out of sight while
/// the peer was untrusted, and written again as the operator's lines
/// once the peer was paired again: the new address was never saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_read_after_an_unpair_does_not_come_back_with_a_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, other) = (id(2), id(3));
    let app = AddrSource::Application;
    a_saved_book(dir.path(), &[peer, other]).await;
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    // the operator moves `peer` to another address, then unpairs it
    hand::move_in_book(dir.path(), peer, addr(2));
    assert!(node.unpair(&peer).await.unwrap());
    until("the unpaired peer's lines gone from the file", || {
        book_on_disk(dir.path()).get(&peer).is_empty()
    })
    .await;
    // paired again, with a new address
    node.pair(peer, None).await.unwrap();
    node.add_address(peer, addr(5), app).unwrap();
    node.shutdown().await;
    assert_eq!(book_on_disk(dir.path()).get(&peer), [(addr(5), app)]);
}

/// A peer the operator adds by hand to both files while the node runs,
/// for the next start, keeps its lines in the book. The book save read
/// the book again but counted only the trust list the node had read at
/// start: it dropped the new peer's lines as those of a peer nobody
/// trusts, and the next start trusted the peer with no address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_added_by_hand_to_both_files_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (known, added) = (id(2), id(3));
    let app = AddrSource::Application;
    a_saved_book(dir.path(), &[known]).await;
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    let hand = DataDir::open(dir.path()).unwrap();
    let mut trust = hand.load_trust().unwrap();
    trust.insert(added, None);
    hand.save_trust(&trust).unwrap();
    let mut book = hand.load_book().unwrap();
    book.set(added, [(addr(7), app)]);
    hand.save_book(&book).unwrap();
    // the node learns an address: its save reads the edit
    node.add_address(known, addr(3), app).unwrap();
    until("the node's new address saved", || {
        book_on_disk(dir.path()).get(&known).len() == 2
    })
    .await;
    assert_eq!(book_on_disk(dir.path()).get(&added), [(addr(7), app)]);
    // and later saves keep it too
    node.add_address(known, addr(4), app).unwrap();
    node.shutdown().await;
    assert_eq!(book_on_disk(dir.path()).get(&known).len(), 3);
    assert_eq!(book_on_disk(dir.path()).get(&added), [(addr(7), app)]);
    // the next start dials the added peer by its line
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    let loaded: Vec<SocketAddr> = node.addresses(&added).iter().map(|e| e.addr).collect();
    node.shutdown().await;
    assert_eq!(loaded, [addr(7)]);
}

/// Review s54: a book file deleted while the node ran was taken as an
/// edit that left every peer it held without an address: those peers
/// were the operator's, with no lines, for the rest of the run, and
/// nothing the node learned of them was saved until a restart. Deleting
/// the file is the obvious way to reset it: the next save writes a fresh
/// one, with the addresses the node holds, and what it learns after is
/// saved as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_deleted_while_the_node_runs_is_written_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, other) = (id(2), id(3));
    let app = AddrSource::Application;
    a_saved_book(dir.path(), &[kept, other]).await;
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    // an earlier edit of this run makes `other` the operator's
    hand::move_in_book(dir.path(), other, addr(6));
    node.add_address(kept, addr(2), app).unwrap();
    until("the edit read", || {
        book_on_disk(dir.path()).get(&kept).len() == 2
    })
    .await;
    std::fs::remove_file(dir.path().join("book")).unwrap();
    node.add_address(kept, addr(3), app).unwrap();
    node.add_address(other, addr(7), app).unwrap();
    until("a book written again", || dir.path().join("book").exists()).await;
    let on_disk = addrs_on_disk(dir.path(), &kept);
    assert_eq!(
        on_disk,
        [addr(1), addr(2), addr(3)],
        "the node's addresses were not saved"
    );
    // the earlier edit went with the file: `other`'s lines are the
    // node's again (`addr(6)` was the operator's, never the node's)
    node.add_address(other, addr(8), app).unwrap();
    node.shutdown().await;
    let others = addrs_on_disk(dir.path(), &other);
    assert_eq!(others, [addr(7), addr(8)]);
}
