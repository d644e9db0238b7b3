//! Saves of the address book owed to its changes are bounded per
//! minute: a LAN host announcing ever new addresses for a trusted peer
//! changes the book at will (each hint new, each one pushed out), and
//! the 250 ms debounce alone let it make the node write the file (a
//! temporary file, two fsyncs, a rename) four times a second for as long
//! as it went on. Past 16 saves in a minute the next waits for the
//! minute; the shutdown still saves what is owed at once.
//!
//! On tokio's paused clock: the node's timers run on the runtime's clock
//! (`TokioRuntime::now`, `sleep_until`), which moves on only when every
//! task waits on a timer (never while a file is written on the blocking
//! pool), straight to the next one's deadline. So the time at which the
//! file holds a hint says when its save was due, to the debounce, on any
//! machine however slow: no wall-clock window stands for "not saved".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peernet_tokio::{AddrSource, Identity, Node, NodeConfig, PeerId};
use tokio::time::Instant;

/// `book_save.rs`'s window: at most 16 change-driven saves in one.
const SAVE_WINDOW: Duration = Duration::from_secs(60);

/// The hints of the tests, one a save.
fn hint(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i], 4000))
}

/// Whether the book file at `book` names `addr`.
fn saved(book: &Path, addr: SocketAddr) -> bool {
    std::fs::read_to_string(book).is_ok_and(|text| text.contains(&addr.to_string()))
}

/// Waits until the book at `book` names `addr`, looking every 20 ms of
/// the paused clock; the test fails once `within` of it has passed.
async fn until_saved(book: &Path, addr: SocketAddr, within: Duration) {
    let looking = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !saved(book, addr) {
            tick.tick().await;
        }
    };
    tokio::time::timeout(within, looking)
        .await
        .unwrap_or_else(|_| panic!("{addr} not saved within {within:?}"));
}

/// A node trusting b (seed 2) with a data directory in `dir`, and the
/// first 16 hints for b added, each saved before the next comes (as a
/// LAN host's announcements bring them): the node, b, the book's path,
/// and the clock's time before the first hint.
async fn sixteen_saved(dir: &Path) -> (Node, PeerId, PathBuf, Instant) {
    let b = Identity::from_seed(&[2; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir).unwrap().trusting(b);
    let node = Node::new(config);
    let book = dir.join("book");
    let start = Instant::now();
    for i in 1..=16 {
        assert_eq!(
            node.add_address(b, hint(i), AddrSource::Discovery),
            Ok(true)
        );
        until_saved(&book, hint(i), Duration::from_secs(1)).await;
    }
    (node, b, book, start)
}

/// Review s48: the 17th change-driven save within a minute waits until
/// the first is a minute old; then it is made.
#[tokio::test(start_paused = true)]
async fn a_flood_of_hints_is_not_a_flood_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (node, b, book, start) = sixteen_saved(dir.path()).await;
    assert!(start.elapsed() < SAVE_WINDOW);
    assert_eq!(
        node.add_address(b, hint(17), AddrSource::Discovery),
        Ok(true)
    );
    until_saved(&book, hint(17), 2 * SAVE_WINDOW).await;
    let at = start.elapsed();
    eprintln!("the 17th hint saved {at:?} after the first hint (paused clock)");
    // (the first save was due 250 ms after the start)
    assert!(
        at >= SAVE_WINDOW,
        "the 17th save within a minute was made after {at:?}"
    );
    assert!(
        at < SAVE_WINDOW + Duration::from_secs(1),
        "the 17th save waited past the window: {at:?}"
    );
    node.shutdown().await;
}

/// The shutdown saves at once what is owed, the 17th save's wait not
/// over: done before the window could have let its timer write it.
#[tokio::test(start_paused = true)]
async fn the_shutdown_saves_what_waits_for_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (node, b, book, start) = sixteen_saved(dir.path()).await;
    assert_eq!(
        node.add_address(b, hint(17), AddrSource::Discovery),
        Ok(true)
    );
    node.shutdown().await;
    let at = start.elapsed();
    assert!(
        at < SAVE_WINDOW,
        "the shutdown took {at:?}: the window's save may have written it"
    );
    assert!(saved(&book, hint(17)), "the shutdown saved the last hint");
}
