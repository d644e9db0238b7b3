//! How a full book makes room for a new address: which entry of the
//! peer a new one may push out, and which hint of the book goes when its
//! total is full.
//!
//! A full peer makes room for a new address by dropping its worst entry
//! of a worse source, or of the same source ranked below the new one.
//! A discovery hint never pushes out an address the application or a
//! ticket gave, nor another hint whose last dial worked: a LAN host that
//! announces addresses for a peer cannot make the book forget the true
//! ones while they work. A hint whose last dial failed may go, and so may
//! the untried hint heard longest ago: heard again, a hint comes back,
//! and is dialed next. Hints that worked once and then died, as a roaming
//! peer leaves them, cannot fill the peer's places for good, nor can a
//! LAN host that announced false ones first: the peer's own announcement
//! still gets in. mDNS is not authenticated, so a host that announces
//! without pause can still crowd the hints (each false one costs a failed
//! dial); an address the application or a ticket gave is never touched.
//!
//! When the book's total is what is full, an address from the
//! application or a ticket takes the place of the book's worst hint that
//! is not working.

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::net::SocketAddr;

use super::{AddrEntry, AddrSource, AddressBook, Class};
use crate::identity::PeerId;

impl AddrEntry {
    /// Whether this new entry may take `old`'s place in a full book: a
    /// better source always may; the same source only if `old` ranks
    /// below it and, for discovery, its last dial did not work; a worse
    /// source never. So a LAN host announcing addresses for a peer can
    /// push out only other hints that are not working, not what the
    /// application, a ticket or a working connection gave.
    fn may_evict(&self, old: &AddrEntry) -> bool {
        match self.source.weight().cmp(&old.source.weight()) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                old.rank(self) == Ordering::Greater
                    && (self.source != AddrSource::Discovery || !old.worked_last())
            }
        }
    }
}

/// Makes room among a full peer's `entries` (sorted best first) for
/// `new`: drops the worst entry it may push out. False if none may go.
pub(super) fn make_room(entries: &mut Vec<AddrEntry>, new: &AddrEntry) -> bool {
    match entries.iter().rposition(|e| new.may_evict(e)) {
        Some(worst) => {
            entries.remove(worst);
            true
        }
        None => false,
    }
}

impl AddressBook {
    /// Forgets the book's worst discovery hint that is not working, a
    /// dial to which is not under way: first of a peer that has other
    /// addresses; the untried one heard longest ago (anyone on the LAN
    /// can announce one) before one that worked once and failed since
    /// (the longest failed first). False if there is none.
    pub(super) fn drop_a_hint(&mut self, dialing: &dyn Fn(&PeerId, SocketAddr) -> bool) -> bool {
        let loose = |p: &PeerId, e: &AddrEntry| {
            e.source == AddrSource::Discovery && !e.worked_last() && !dialing(p, e.addr)
        };
        let badness = |only: bool, e: &AddrEntry| match e.class() {
            Class::Failed => (only, 1, e.last_failed, e.added),
            _ => (only, 0, None, e.added),
        };
        let victim = self
            .peers
            .iter()
            .flat_map(|(p, entries)| {
                let only = entries.len() == 1;
                entries
                    .iter()
                    .filter(move |e| loose(p, e))
                    .map(move |e| (p, badness(only, e), e.addr))
            })
            .min_by_key(|(_, bad, _)| *bad)
            .map(|(p, _, addr)| (*p, addr));
        let Some((p, addr)) = victim else {
            return false;
        };
        self.remove(&p, addr)
    }
}

#[cfg(test)]
mod tests;
