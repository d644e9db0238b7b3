//! Saves of the address book owed to its changes are bounded per
//! minute: a LAN host announcing ever new addresses for a trusted peer
//! changes the book at will (each hint new, each one pushed out), and
//! the 250 ms debounce alone let it make the node write the file (a
//! temporary file, two fsyncs, a rename) four times a second for as long
//! as it went on. Past 16 saves in a minute the next waits for the
//! minute; the shutdown still saves what is owed at once.

#[path = "common/until.rs"]
mod until;

use std::net::SocketAddr;
use std::time::Duration;

use peernet_tokio::{AddrSource, Identity, Node, NodeConfig};
use until::until;

/// Review s48: the 17th change-driven save within a minute waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_hints_is_not_a_flood_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Identity::from_seed(&[2; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir.path()).unwrap().trusting(b);
    let node = Node::new(config);
    let book = dir.path().join("book");
    let saved = |addr: SocketAddr| {
        std::fs::read_to_string(&book).is_ok_and(|text| text.contains(&addr.to_string()))
    };
    let hint = |i: u8| SocketAddr::from(([192, 0, 2, i], 4000));
    // (a hint each, as a LAN host's announcements bring them; each one
    // saved before the next comes)
    for i in 1..=16 {
        assert_eq!(
            node.add_address(b, hint(i), AddrSource::Discovery),
            Ok(true)
        );
        until("the hint saved", || saved(hint(i))).await;
    }
    assert_eq!(
        node.add_address(b, hint(17), AddrSource::Discovery),
        Ok(true)
    );
    // (no event says a save did not happen: a window of 2 s, eight
    // debounces, in which the old code wrote the file)
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !saved(hint(17)),
        "the 17th save within a minute was made at once"
    );
    // the shutdown saves what is owed
    node.shutdown().await;
    assert!(saved(hint(17)), "the shutdown saved the last hint");
}
