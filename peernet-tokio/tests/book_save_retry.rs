//! A save of the address book that fails (a full or read-only disk, here a
//! directory where the file should be) is tried again after a back-off,
//! whether or not the book changes again. It used to be retried only at
//! the next change or at shutdown: a node whose book then stayed the same
//! kept its changes off the disk until it stopped, and lost them in a
//! crash. A test binary of its own: it installs the process's log
//! subscriber.

#[path = "common/lines.rs"]
mod lines;

use std::time::Duration;

use lines::Lines;
use peernet_tokio::{AddrSource, Identity, Node, NodeConfig};

/// Waits (at most 20 s) until `done` holds, looking every 20 ms.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !done() {
            tick.tick().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("20 s without: {what}"));
}

#[tokio::test]
async fn a_failed_save_is_tried_again_without_another_change() {
    let lines = Lines::capture(tracing::Level::DEBUG);
    let dir = tempfile::tempdir().unwrap();
    let peer = Identity::from_seed(&[3; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trusting(peer);
    let node = Node::new(config);
    // A directory (not empty) where the book file goes: no save can
    // replace it.
    let book = dir.path().join("book");
    std::fs::create_dir(&book).unwrap();
    std::fs::write(book.join("in-the-way"), b"").unwrap();

    let addr = "192.0.2.7:4000".parse().unwrap();
    assert!(
        node.add_address(peer, addr, AddrSource::Application)
            .unwrap()
    );
    until("a failed save", || {
        lines.text().contains("address book not saved")
    })
    .await;
    let text = lines.text();
    assert!(text.contains("failures=1"), "{text}");
    assert!(text.contains("retry_in=1s"), "{text}");

    // The disk is back; nothing changes in the book, and no shutdown.
    std::fs::remove_dir_all(&book).unwrap();
    until("the book saved by a retry", || {
        std::fs::read_to_string(&book).is_ok_and(|saved| saved.contains("192.0.2.7:4000"))
    })
    .await;
    assert!(lines.text().contains("address book saved"));
    node.shutdown().await;
}
