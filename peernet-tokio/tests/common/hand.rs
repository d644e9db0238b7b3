//! The operator's hand on a data directory while its node runs: what a
//! test edits by hand, through a `DataDir` of its own (which saw nothing
//! of the node's, so it writes). Test files take it with
//! `#[path = "common/hand.rs"] mod hand;`.

use std::net::SocketAddr;
use std::path::Path;

use peernet_tokio::{AddrSource, DataDir, PeerId};

/// Moves `peer` to `addr` in the address book of `dir`, by hand: the
/// file read again, `peer`'s lines replaced by `addr` (an application's
/// address), and saved.
pub(crate) fn move_in_book(dir: &Path, peer: PeerId, addr: SocketAddr) {
    let hand = DataDir::open(dir).unwrap();
    let mut book = hand.load_book().unwrap();
    book.set(peer, [(addr, AddrSource::Application)]);
    hand.save_book(&book).unwrap();
}
