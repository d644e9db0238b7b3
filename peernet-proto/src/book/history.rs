//! What a saved book keeps of the dials to an address, and how a node
//! that starts from it takes that back.
//!
//! A saved book keeps no times: the core's clock starts again with every
//! node. It keeps whether the address worked, and whether a dial failed
//! since ([`AddrHistory`]). Restored, the entry is marked as worked (and
//! failed) at the instant of the restore, so it ranks and is kept as such
//! an entry is in the running node: a hint that worked and failed since
//! (a restart during a partition, or while the peer sleeps) is dialed in
//! every round among "failed last time, once worked", and the hints that
//! never worked cannot push it out while it is among those that worked
//! most recently (`room.rs`).
//!
//! Every restored entry worked at that one instant; which worked most
//! recently is then the order the file lists them in, best first, which
//! is the order they are added in: of two that worked at one instant the
//! one added first ranks first ([`AddrEntry::rank`]) and counts as the
//! one that worked more recently (`room.rs`). A file lists the addresses
//! whose last dial worked before those that failed since (the ranking's
//! classes), so restored, the former count as having worked more
//! recently: the file does not say which worked last across the two, and
//! the address whose last dial worked is the likelier to work again.

use core::net::SocketAddr;

use super::{AddrEntry, AddressBook, Class};
use crate::Instant;
use crate::identity::PeerId;

/// What the dials to an address have shown, as a saved book keeps it
/// (see [`AddrEntry::history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AddrHistory {
    /// No dial to it completed a handshake: never dialed, or failed (a
    /// failure alone is not saved: what failed once may work after the
    /// restart, and a hint that fails before it ever worked is forgotten).
    #[default]
    NeverWorked,
    /// Its last dial completed a handshake.
    Worked,
    /// A dial to it completed a handshake, and a later one failed (the
    /// peer moved, or a partition, or the peer asleep): not working, but
    /// ranked before the failed addresses that never worked, and a
    /// discovery hint among those that worked most recently is kept from
    /// hints that never worked.
    WorkedThenFailed,
}

impl AddrEntry {
    /// What its dials have shown, as a saved book keeps it: whether one
    /// completed a handshake, and whether the last one did.
    pub fn history(&self) -> AddrHistory {
        match (self.last_ok, self.class()) {
            (None, _) => AddrHistory::NeverWorked,
            (Some(_), Class::Worked) => AddrHistory::Worked,
            (Some(_), _) => AddrHistory::WorkedThenFailed,
        }
    }
}

impl AddressBook {
    /// Gives `peer`'s entry for `addr` the `history` a saved book kept
    /// of it, as of `now` (see the module docs), unless this run has
    /// recorded a dial to it already: what this run saw is newer. Nothing
    /// for an address the book does not hold.
    pub(crate) fn restore(
        &mut self,
        peer: &PeerId,
        addr: SocketAddr,
        history: AddrHistory,
        now: Instant,
    ) {
        let mut changed = false;
        self.update(peer, addr, |e| {
            if e.last_ok.is_some() || e.last_failed.is_some() {
                return;
            }
            let (ok, failed) = match history {
                AddrHistory::NeverWorked => (None, None),
                AddrHistory::Worked => (Some(now), None),
                AddrHistory::WorkedThenFailed => (Some(now), Some(now)),
            };
            (e.last_ok, e.last_failed) = (ok, failed);
            changed = ok.is_some();
        });
        if changed {
            self.revision += 1;
        }
    }
}
