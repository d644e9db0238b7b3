//! How a full book makes room for a new address: which entry of the
//! peer a new one may push out, and which hint of the book goes when its
//! total is full.
//!
//! A full peer makes room for a new address by dropping its worst entry
//! of a worse source, or of the same source ranked below the new one.
//! A discovery hint never pushes out an address the application or a
//! ticket gave, nor another hint whose last dial worked: a LAN host that
//! announces addresses for a peer cannot make the book forget the true
//! ones while they work. Nor does it push out the hints that worked most
//! recently, though they failed since ([`WORKED_HINTS_KEPT`] of them, at
//! most half the peer's places): a partition, or a peer asleep, leaves
//! the true address failed, and were it pushed out by false hints it
//! would come back, heard again, as a hint that never worked, dialed only
//! in its turn among them (up to `max_addresses_per_peer` - 1 rounds at
//! the backoff's cap, minutes). Kept, it is dialed in every round, as
//! every hint that worked is.
//!
//! An attacker cannot hold those places: a hint worked when a handshake
//! proved the peer's key at it, which a LAN host announcing addresses
//! cannot fake. A host that relays the peer's bytes can (it is on the
//! path, and could as well drop them): the hints it made work push the
//! true one out of the kept places, back to the rule for the others. A
//! hint that works later takes a kept place from the one that worked
//! longest ago, so the addresses a roaming peer leaves behind go in
//! turn; and since at most half the places are kept, the peer's own
//! announcement of a new address always gets in. Memory stays within
//! the peer's places: nothing is remembered of an address pushed out.
//!
//! Other hints whose last dial failed may go, and so may the untried hint
//! heard longest ago: heard again, a hint comes back, and is dialed next.
//! Hints that worked once and then died cannot fill the peer's places for
//! good, nor can a LAN host that announced false ones first: the peer's
//! own announcement still gets in. mDNS is not authenticated, so a host
//! that announces without pause can still crowd the hints that never
//! worked (each false one costs a failed dial); an address the
//! application or a ticket gave is never touched.
//!
//! When the book's total is what is full, an address from the
//! application or a ticket takes the place of the book's worst hint that
//! is not working (any hint, kept or not: what the application gives
//! comes first).

use core::cmp::{Ordering, Reverse};
use core::net::SocketAddr;

use super::{AddrEntry, AddrSource, AddressBook, Class};
use crate::identity::PeerId;

/// Of a peer's discovery hints that worked once, how many (those that
/// worked most recently) a hint that never worked cannot push out, even
/// once they failed: two, as a peer's own announcement usually gives
/// (IPv4 and IPv6). At most half of `max_addresses_per_peer`
/// ([`kept_worked`]).
pub(crate) const WORKED_HINTS_KEPT: usize = 2;

/// How many hints that worked a peer with `per_peer` places keeps from
/// hints that never worked: [`WORKED_HINTS_KEPT`], but at most half the
/// places (none with one place), so the others stay open to the peer's
/// announcement of a new address.
pub(crate) fn kept_worked(per_peer: usize) -> usize {
    WORKED_HINTS_KEPT.min(per_peer / 2)
}

impl AddrEntry {
    /// Whether it is one of the `kept` discovery hints of `entries` (its
    /// peer's) that worked most recently: those that a hint that never
    /// worked does not push out.
    fn worked_recently(&self, entries: &[AddrEntry], kept: usize) -> bool {
        // (`added` is unique: a tie-break, so that at most `kept` are;
        // of two that worked at one instant, as a saved book's are
        // restored, the one added first worked more recently: the file
        // lists them so, see `history.rs`)
        let key = |e: &AddrEntry| (e.last_ok, Reverse(e.added));
        let later = |e: &&AddrEntry| e.source == AddrSource::Discovery && key(e) > key(self);
        self.source == AddrSource::Discovery
            && self.last_ok.is_some()
            && entries.iter().filter(later).count() < kept
    }

    /// Whether this new entry may take `old`'s place among `entries` (its
    /// peer's) in a full book: a better source always may; the same
    /// source only if `old` ranks below it and, for discovery, `old` is
    /// neither working nor one of the `kept` hints that worked most
    /// recently; a worse source never. So a LAN host announcing addresses
    /// for a peer can push out only other hints that are not working and
    /// did not work lately, not what the application, a ticket or a
    /// connection gave.
    fn may_evict(&self, old: &AddrEntry, entries: &[AddrEntry], kept: usize) -> bool {
        match self.source.weight().cmp(&old.source.weight()) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                old.rank(self) == Ordering::Greater
                    && (self.source != AddrSource::Discovery
                        || !(old.worked_last() || old.worked_recently(entries, kept)))
            }
        }
    }
}

/// Makes room among a full peer's `entries` (sorted best first) for
/// `new`: drops the worst entry it may push out, keeping `kept` hints
/// that worked ([`kept_worked`]). False if none may go.
pub(super) fn make_room(
    entries: &mut alloc::vec::Vec<AddrEntry>,
    new: &AddrEntry,
    kept: usize,
) -> bool {
    let list: &[AddrEntry] = entries;
    match list.iter().rposition(|e| new.may_evict(e, list, kept)) {
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
    /// can announce one) before one that failed (the longest failed
    /// first, then one that never worked, then the one that worked
    /// longest ago, then the one ranked last). False if there is none.
    pub(super) fn drop_a_hint(&mut self, dialing: &dyn Fn(&PeerId, SocketAddr) -> bool) -> bool {
        let loose = |p: &PeerId, e: &AddrEntry| {
            e.source == AddrSource::Discovery && !e.worked_last() && !dialing(p, e.addr)
        };
        // (the last: of failed ones alike, the one ranked last, as a
        // saved book's restored at one instant; of untried ones, the one
        // heard longest ago)
        let badness = |only: bool, e: &AddrEntry| match e.class() {
            Class::Failed => (only, 1, e.last_failed, e.last_ok, u64::MAX - e.added),
            _ => (only, 0, None, None, e.added),
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
