//! An address book file edited by hand while the node runs: the peers
//! whose lines the operator changed, and those lines, written by every
//! later save of this run in place of the running node's.
//!
//! The rule (documented for users at `NodeConfig::from_data_dir`): a
//! save that finds the file changed since the node last read or wrote it
//! reads it again. Each peer whose lines differ from what the node last
//! read or wrote (an address added, removed or moved, a source or a
//! `worked` or `worked failed` mark changed) is the
//! operator's from then on: its lines are written as the operator left
//! them, whatever the running node learns of it, until the next start
//! loads them. A deleted file is no edit of any peer: the operator threw
//! the file away (the obvious way to reset it), so the next save writes
//! a fresh one, every peer's lines the running node's, and the peers an
//! earlier edit made the operator's are the node's again ([`HandEdits::clear`]).
//! (It was a book with no lines: every peer the operator's, with no
//! address, and nothing the node learned was saved until a restart.) Every other peer's lines are the running node's. The
//! grain is the peer: a peer's lines are one list, best first, in the
//! order it is dialed, and the node does not mix what it learned into an
//! order the operator chose. An unpair forgets the operator's lines of
//! the peer with the rest of its addresses. Only peers the book keeps
//! (trusted by the run, or by the trust file as read again with the
//! book) are taken in: the lines of others are dropped by every save.

use std::collections::BTreeSet;

use peernet_proto::PeerId;

use crate::book_file::SavedBook;

/// The peers whose lines an operator changed in the book file during
/// this run, and their lines as the operator left them.
#[derive(Debug, Default)]
pub(crate) struct HandEdits {
    /// The peers the operator changed (with no line left, too).
    peers: BTreeSet<PeerId>,
    /// Their lines.
    lines: SavedBook,
}

impl HandEdits {
    /// Takes in the file as it is `now`, against `before`, what the node
    /// last read or wrote of it: each peer whose lines differ becomes (or
    /// stays) the operator's, with its lines in `now`, if `saved` says the
    /// book keeps the peer (trusted by the run or the trust file). The
    /// lines of any other peer are dropped by the save, as at every save,
    /// and are not held: held, they would come back as the operator's at
    /// a later `pair` (an unpair forgets only what was held then), and
    /// every edit could add a file's worth of peers to this run's memory.
    /// Returns how many peers are the operator's from this edit.
    pub(crate) fn take_in(
        &mut self,
        before: &SavedBook,
        now: &SavedBook,
        saved: impl Fn(&PeerId) -> bool,
    ) -> usize {
        let touched: BTreeSet<PeerId> = before
            .iter()
            .chain(now.iter())
            .map(|(peer, _)| *peer)
            .filter(|peer| saved(peer) && !before.same_peer(now, peer))
            .collect();
        for peer in &touched {
            self.lines.copy_peer(now, peer);
            self.peers.insert(*peer);
        }
        touched.len()
    }

    /// Whether the operator's lines stand for `peer`.
    pub(crate) fn covers(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    /// Sets `peer`'s lines in `book` to the operator's (call when
    /// [`HandEdits::covers`] it). Returns how many lines the operator
    /// left (`book` may hold fewer: its bound).
    pub(crate) fn write(&self, book: &mut SavedBook, peer: &PeerId) -> usize {
        book.copy_peer(&self.lines, peer);
        self.lines.get(peer).len()
    }

    /// The book file was deleted: no peer is the operator's any more, and
    /// the next save writes every peer's lines as the node holds them.
    /// Returns how many peers were the operator's.
    pub(crate) fn clear(&mut self) -> usize {
        let had = self.peers.len();
        *self = HandEdits::default();
        had
    }

    /// `peer` was unpaired: its lines go with its other addresses.
    pub(crate) fn forget(&mut self, peer: &PeerId) -> bool {
        self.lines.remove(peer);
        self.peers.remove(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::{AddrSource, Identity};
    use std::net::SocketAddr;

    fn peer(seed: u8) -> PeerId {
        Identity::from_seed(&[seed; 32]).peer_id()
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 4000))
    }

    /// Only the peers whose lines changed are the operator's: an address
    /// moved, a `worked` mark dropped, a peer taken out or added; a peer
    /// left as it was is not.
    #[test]
    fn the_peers_an_edit_changed_and_only_those() {
        let app = AddrSource::Application;
        let mut before = SavedBook::new();
        for seed in 1..=5 {
            before.set(peer(seed), [(addr(seed), app), (addr(seed + 10), app)]);
        }
        before.mark_worked(&peer(2), addr(2));
        let mut now = before.clone();
        // 1: reordered; 2: its mark dropped; 3: taken out; 6: added
        now.set(peer(1), [(addr(11), app), (addr(1), app)]);
        now.remove(&peer(2));
        now.set(peer(2), [(addr(2), app), (addr(12), app)]);
        now.remove(&peer(3));
        now.set(peer(6), [(addr(6), app)]);
        let mut edits = HandEdits::default();
        assert_eq!(edits.take_in(&before, &now, |_| true), 4);
        let covered: Vec<bool> = (1..=6).map(|s| edits.covers(&peer(s))).collect();
        assert_eq!(covered, [true, true, true, false, false, true]);
        // the node's book, with the operator's lines laid over it
        let mut node = before.clone();
        node.set(peer(3), [(addr(33), app)]);
        node.set(peer(4), [(addr(44), app)]);
        for seed in [1, 2, 3, 6] {
            let lines = edits.write(&mut node, &peer(seed));
            assert_eq!(lines, now.get(&peer(seed)).len());
        }
        assert_eq!(node.get(&peer(1)), now.get(&peer(1)));
        assert!(!node.worked(&peer(2), &addr(2)));
        assert!(node.get(&peer(3)).is_empty(), "a removal stands");
        assert_eq!(node.get(&peer(4)), [(addr(44), app)], "the node's own");
        assert_eq!(node.get(&peer(6)), [(addr(6), app)]);
        // a later edit of another peer leaves the earlier ones standing
        let mut later = now.clone();
        later.set(peer(5), [(addr(55), app)]);
        assert_eq!(edits.take_in(&now, &later, |_| true), 1);
        assert!(edits.covers(&peer(1)) && edits.covers(&peer(5)));
        assert!(edits.forget(&peer(1)));
        assert!(!edits.covers(&peer(1)));
        assert!(!edits.forget(&peer(4)));
    }

    /// An edit of a peer the book does not keep (trusted by neither the
    /// run nor the trust file) is not held: it would come back at a
    /// later `pair`.
    #[test]
    fn an_edit_of_a_peer_the_book_drops_is_not_held() {
        let app = AddrSource::Application;
        let mut before = SavedBook::new();
        before.set(peer(1), [(addr(1), app)]);
        let mut now = before.clone();
        now.set(peer(1), [(addr(2), app)]);
        now.set(peer(2), [(addr(3), app)]);
        let mut edits = HandEdits::default();
        assert_eq!(edits.take_in(&before, &now, |p| *p == peer(1)), 1);
        assert!(edits.covers(&peer(1)) && !edits.covers(&peer(2)));
        assert!(!edits.forget(&peer(2)));
    }
}
