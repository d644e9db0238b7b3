//! The address book: where each trusted peer may be dialed, where each
//! address came from, and when it last worked or failed.
//!
//! The book is a hint table, never a trust decision: every dial still runs
//! the handshake, which proves the peer's key. It is bounded twice (per
//! peer and in total, see [`Config::max_addresses_per_peer`] and
//! [`Config::max_addresses`]), and holds entries only for peers in the
//! trust list (the endpoint checks; `unpair` drops the peer's entries).
//!
//! Addresses are ranked best first ([`AddrEntry::rank`]):
//!
//! 1. those that worked, most recently first (and not failed since);
//! 2. those never tried, given by the application or a ticket;
//! 3. those never tried, learned from discovery, dialed after the
//!    addresses that worked (a hint that fails before it ever worked is
//!    forgotten: a false hint costs one failed dial each time it is
//!    heard);
//! 4. those that failed last time: those that once worked first (the most
//!    recently worked first), then the longest-failed first.
//!
//! Within a class, the better source first, then the address added first
//! (so untried addresses are dialed in the order a ticket or a saved book
//! lists them); but of the untried hints the latest heard first, and of
//! addresses that worked at one instant (a saved book's, restored when
//! the node starts: see `history.rs`) the one added first, whatever its
//! source, as the book lists them. A round
//! dials only a few of the hints that never worked
//! ([`AddressBook::round`]).
//!
//! A full peer makes room for a new address by dropping its worst entry
//! that the new one may push out: a LAN host announcing false hints
//! cannot push out what the application or a ticket gave, a hint that
//! works, nor the hints that worked most recently, though they failed
//! since (see `room.rs` for the rules, and why an attacker cannot hold
//! those places).
//!
//! [`Config::max_addresses_per_peer`]: crate::Config::max_addresses_per_peer
//! [`Config::max_addresses`]: crate::Config::max_addresses

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::net::SocketAddr;

use crate::Instant;
use crate::config::fault;
use crate::identity::PeerId;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AddrSource {
    /// Given by the application (or a user, e.g. `PEERID@IP:PORT`).
    Application,
    /// Read from a ticket the peer handed out.
    Ticket,
    /// Heard from discovery (e.g. a LAN announcement): a hint only.
    Discovery,
}

impl AddrSource {
    /// Its name, in lowercase, as files and logs write it:
    /// `application`, `ticket`, `discovery`.
    pub fn name(self) -> &'static str {
        match self {
            AddrSource::Application => "application",
            AddrSource::Ticket => "ticket",
            AddrSource::Discovery => "discovery",
        }
    }

    /// Every source (a test checks that none is missing).
    const ALL: [AddrSource; 3] = [
        AddrSource::Application,
        AddrSource::Ticket,
        AddrSource::Discovery,
    ];

    /// The source [`AddrSource::name`] gives `name`, if any.
    pub fn from_name(name: &str) -> Option<AddrSource> {
        AddrSource::ALL
            .into_iter()
            .find(|source| source.name() == name)
    }

    /// Higher is more trustworthy: an address heard from several sources
    /// keeps the best one.
    fn weight(self) -> u8 {
        match self {
            AddrSource::Application => 2,
            AddrSource::Ticket => 1,
            AddrSource::Discovery => 0,
        }
    }
}

/// One address of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrEntry {
    /// The address to dial.
    pub addr: SocketAddr,
    /// Where it came from (the most trustworthy source that gave it).
    pub source: AddrSource,
    /// When a dial to it last completed a handshake.
    pub last_ok: Option<Instant>,
    /// When a dial to it last failed (transport or handshake).
    pub last_failed: Option<Instant>,
    /// The order it was added in (the last tie-break: of two addresses
    /// alike in every other way, the one given first is dialed first,
    /// as a ticket or a saved book lists them).
    added: u64,
    /// When it last joined the line of hints waiting for a dial (the
    /// book's count of additions then): first heard, or its dial answered
    /// `busy` (heard again, it keeps its place). See
    /// [`AddressBook::round`].
    turn: u64,
}

/// The ranking class of an entry: lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Worked,
    Untried,
    UntriedHint,
    Failed,
}

impl AddrEntry {
    fn new(addr: SocketAddr, source: AddrSource, added: u64) -> AddrEntry {
        AddrEntry {
            addr,
            source,
            last_ok: None,
            last_failed: None,
            added,
            turn: added,
        }
    }

    fn class(&self) -> Class {
        match (self.last_ok, self.last_failed) {
            (Some(ok), Some(failed)) if failed >= ok => Class::Failed,
            (Some(_), _) => Class::Worked,
            (None, Some(_)) => Class::Failed,
            (None, None) if self.source == AddrSource::Discovery => Class::UntriedHint,
            (None, None) => Class::Untried,
        }
    }

    /// Whether it is a discovery hint that never worked: anyone on the
    /// LAN can announce one, so a round dials only a few
    /// ([`AddressBook::round`]).
    pub fn unproven_hint(&self) -> bool {
        self.source == AddrSource::Discovery && self.last_ok.is_none()
    }

    /// Whether the last dial to it completed a handshake (it worked, and
    /// has not failed since): [`AddrHistory::Worked`].
    pub fn worked_last(&self) -> bool {
        self.class() == Class::Worked
    }

    /// Orders two entries of one peer, best (to dial first) first.
    pub fn rank(&self, other: &AddrEntry) -> Ordering {
        let key = |e: &AddrEntry| {
            let class = e.class();
            // (untried hints: the latest heard first, see the module docs)
            let order = match class {
                Class::UntriedHint => u64::MAX - e.added,
                _ => e.added,
            };
            // (of two that worked at one instant, as a saved book's are
            // restored, the one added first: the file lists them best
            // first, whatever their source)
            let weight = match e.last_ok {
                Some(_) => 0,
                None => e.source.weight(),
            };
            (
                class,
                Reverse(e.last_ok),
                e.last_failed,
                Reverse(weight),
                order,
            )
        };
        key(self).cmp(&key(other))
    }
}

/// Why an address was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// Only trusted peers have addresses: pair it first.
    #[error("peer {0} is not trusted")]
    NotTrusted(PeerId),
    /// The peer already has its maximum of addresses, all better than the
    /// new one, or the book holds its total maximum.
    #[error("the address book is full")]
    Full,
    /// No connection can reach this address (see [`is_dialable`]).
    #[error(
        "{0} cannot be dialed: port 0, an unspecified, multicast or broadcast IP, \
         or a link-local IPv6 address without its interface"
    )]
    Undialable(SocketAddr),
}

/// Whether a connection can be opened to `addr`: not port 0, not an
/// unspecified (`0.0.0.0`, `::`), multicast or broadcast IP, and not a
/// link-local IPv6 address without a scope id (it names no link: the
/// connect fails at once). Such an address in a ticket, a saved book or a
/// discovery answer could only fail every dial (or, unspecified, reach
/// whatever listens on this very host), so the book and tickets refuse it.
pub fn is_dialable(addr: &SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let broadcast = matches!(ip, core::net::IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !broadcast
        && !is_unscoped_link_local(addr)
}

/// Whether `addr` is an IPv6 link-local address without its scope id:
/// it names no link, so no dial can reach it (one of the addresses
/// [`is_dialable`] refuses; older builds took them).
pub fn is_unscoped_link_local(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() && v6.scope_id() == 0)
}

/// `addr` as the book keeps it: an IPv4-mapped IPv6 address
/// (`[::ffff:192.0.2.1]:4000`) as its IPv4 form, and an IPv6 address
/// without its flow label (which no text form shows, and which does not
/// change where a dial goes), so the spellings of one address are one
/// entry, and a saved book reads back as it was.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        // (an IPv6 address keeps its scope id, which a link-local one
        // needs to be dialed)
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => core::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()).into(),
        },
        SocketAddr::V4(_) => addr,
    }
}

/// What [`AddressBook::insert`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new address.
    New,
    /// A known address, now from a better source.
    BetterSource,
    /// Nothing: known already, from as good a source.
    Known,
}

/// The addresses of every trusted peer, bounded per peer and in total.
#[derive(Debug, Clone, Default)]
pub struct AddressBook {
    /// Per peer, kept sorted best first.
    peers: BTreeMap<PeerId, Vec<AddrEntry>>,
    /// Addresses added so far, over the book's life: the next one's
    /// `added` (also the clock of [`AddrEntry`]'s `turn`: a hint heard
    /// again or answered `busy` counts as one more).
    added: u64,
    total: usize,
    per_peer: usize,
    max_total: usize,
    /// Bumped by every change worth saving ([`AddressBook::revision`]).
    revision: u64,
    /// The endpoint's deliberate faults (`HintTurnResets` and
    /// `WorkedHintEvictable` are the book's).
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<crate::fault::Fault>,
}

impl AddressBook {
    /// An empty book holding at most `per_peer` addresses per peer and
    /// `max_total` in all (each at least 1).
    pub fn new(per_peer: usize, max_total: usize) -> AddressBook {
        AddressBook {
            per_peer: per_peer.max(1),
            max_total: max_total.max(1),
            ..AddressBook::default()
        }
    }

    /// A number that changes whenever the book changes in a way worth
    /// saving: an address added, forgotten or given a better source, or
    /// one whose last dial now worked when it had not, or failed when it
    /// had worked ([`AddrEntry::worked_last`]). Not when an address fails
    /// again, nor when one that worked works again.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Adds `addr` for `peer` (or, if known, keeps the better of the two
    /// sources). A full peer makes room by dropping its worst entry that
    /// the new one may replace: one of a worse source, or of the same
    /// source ranked below it (for discovery, one neither working nor
    /// among the hints that worked most recently: see `room.rs`).
    /// When the book's total is what is full, an address from the
    /// application or a ticket takes the place of another peer's hint
    /// that is not working. Otherwise [`BookError::Full`]. Trust
    /// is the caller's to check. Returns true if the address is new;
    /// [`BookError::Undialable`] for an address no dial can reach.
    pub fn add(
        &mut self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
    ) -> Result<bool, BookError> {
        Ok(self.insert(peer, addr, source, None, &|_, _| false)? == Added::New)
    }

    /// [`AddressBook::add`], saying what changed. Another peer's hint
    /// that `dialing` names (a dial to it under way) is not dropped to make
    /// room: if the dial works, the book keeps the address that worked.
    /// A new entry that `worked` (a handshake proved the peer there at
    /// that instant) ranks, and makes room, as one that worked then: of
    /// its source it may push out any that worked longer ago. (A known
    /// one is the caller's to mark: [`AddressBook::mark_ok`].)
    pub(crate) fn insert(
        &mut self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
        worked: Option<Instant>,
        dialing: &dyn Fn(&PeerId, SocketAddr) -> bool,
    ) -> Result<Added, BookError> {
        if !is_dialable(&addr) {
            return Err(BookError::Undialable(addr));
        }
        let addr = canonical(addr);
        let at_total = self.total >= self.max_total;
        let per_peer = self.per_peer;
        let entries = self.peers.entry(peer).or_default();
        if let Some(e) = entries.iter_mut().find(|e| e.addr == addr) {
            if source.weight() <= e.source.weight() {
                if source == AddrSource::Discovery && e.class() == Class::UntriedHint {
                    // heard again: the latest heard (not saved: the
                    // order of untried hints is no change worth a write)
                    // Its `turn` stays: a hint's place in the line of
                    // those waiting for a round's dial is kept from when
                    // it was first heard, or anyone announcing it again
                    // (the peer, or a LAN host that names it on purpose)
                    // would send it to the back and keep it there.
                    e.added = self.added;
                    if fault!(self, HintTurnResets) {
                        e.turn = self.added;
                    }
                    self.added += 1;
                    entries.sort_by(AddrEntry::rank);
                }
                return Ok(Added::Known);
            }
            e.source = source;
            entries.sort_by(AddrEntry::rank);
            self.revision += 1;
            return Ok(Added::BetterSource);
        }
        let mut new = AddrEntry::new(addr, source, self.added);
        new.last_ok = worked;
        let own_room = entries.len() < per_peer;
        // The total is full, not the peer: the book's worst hint that is
        // not working makes room for what the application or a ticket
        // gives, so hints cannot take its place (nor does the peer lose
        // an address of its own while there are such hints).
        let hint_went =
            own_room && at_total && source != AddrSource::Discovery && self.drop_a_hint(dialing);
        let kept = match fault!(self, WorkedHintEvictable) {
            true => 0,
            false => room::kept_worked(per_peer),
        };
        let entries = self.peers.entry(peer).or_default();
        if !hint_went && (!own_room || at_total) {
            if !room::make_room(entries, &new, kept) {
                if entries.is_empty() {
                    self.peers.remove(&peer);
                }
                return Err(BookError::Full);
            }
            self.total -= 1;
        }
        entries.push(new);
        entries.sort_by(AddrEntry::rank);
        self.total += 1;
        self.added += 1;
        self.revision += 1;
        Ok(Added::New)
    }

    /// Forgets `addr` for `peer`. Returns false if it was not there.
    pub fn remove(&mut self, peer: &PeerId, addr: SocketAddr) -> bool {
        let addr = canonical(addr);
        let Some(entries) = self.peers.get_mut(peer) else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| e.addr != addr);
        let removed = before != entries.len();
        if removed {
            self.total -= 1;
            self.revision += 1;
        }
        if entries.is_empty() {
            self.peers.remove(peer);
        }
        removed
    }

    /// Forgets every address of `peer` (it was unpaired).
    pub fn remove_peer(&mut self, peer: &PeerId) {
        if let Some(entries) = self.peers.remove(peer) {
            self.total -= entries.len();
            self.revision += 1;
        }
    }

    /// The addresses of `peer`, best first.
    pub fn get(&self, peer: &PeerId) -> impl Iterator<Item = &AddrEntry> + '_ {
        self.peers.get(peer).into_iter().flatten()
    }

    /// The addresses a dial round of `peer` tries, best first: all of
    /// them but the discovery hints that never worked
    /// ([`AddrEntry::unproven_hint`]), of which at most `room`: the best
    /// ranked (an untried hint, the latest heard), then those that have
    /// waited longest since they were first heard or their dial answered
    /// `busy`. A hint new to the book, or heard again, never overtakes one
    /// already waiting for the second places, so every hint the book keeps
    /// gets its turn
    /// within as many rounds as the peer has hints, however many a LAN
    /// host announces meanwhile (the first place goes to the latest
    /// heard, so a roaming peer's new announcement is tried at once).
    /// Addresses `skip` names are left out before the choice (a round
    /// under way leaves out those it dialed).
    pub fn round(
        &self,
        peer: &PeerId,
        room: usize,
        skip: impl Fn(SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        let entries: Vec<&AddrEntry> = self.get(peer).filter(|e| !skip(e.addr)).collect();
        let mut hints: Vec<&AddrEntry> = entries
            .iter()
            .copied()
            .filter(|e| e.unproven_hint())
            .collect();
        if hints.len() > room {
            // the best ranked first, then the longest waiting
            let mut waiting = hints.split_off(1.min(room));
            waiting.sort_by_key(|e| e.turn);
            hints.extend(waiting.into_iter().take(room.saturating_sub(1)));
        }
        let chosen = |e: &AddrEntry| hints.iter().any(|h| h.addr == e.addr);
        entries
            .into_iter()
            .filter(|e| !e.unproven_hint() || chosen(e))
            .map(|e| e.addr)
            .collect()
    }

    /// `peer`'s entry for `addr`, if the book holds it.
    pub(crate) fn entry(&self, peer: &PeerId, addr: SocketAddr) -> Option<&AddrEntry> {
        let addr = canonical(addr);
        self.get(peer).find(|e| e.addr == addr)
    }

    /// Whether `addr` is one of `peer`'s discovery hints that never
    /// worked ([`AddrEntry::unproven_hint`]).
    pub(crate) fn is_unproven_hint(&self, peer: &PeerId, addr: SocketAddr) -> bool {
        self.entry(peer, addr).is_some_and(AddrEntry::unproven_hint)
    }

    /// Whether `peer` has any address.
    pub fn has(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// How many addresses the book holds in all.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// A dial to `addr` completed a handshake at `now`.
    pub fn mark_ok(&mut self, peer: &PeerId, addr: SocketAddr, now: Instant) {
        let mut flipped = false;
        self.update(peer, addr, |e| {
            flipped = !e.worked_last();
            e.last_ok = Some(now);
            if e.last_failed >= e.last_ok {
                // (a failure at this very instant came before: a saved
                // book's failures are restored at the node's start)
                e.last_failed = None;
            }
        });
        if flipped {
            self.revision += 1;
        }
    }

    /// A dial to `addr` failed at `now`. A discovery hint that never
    /// worked is forgotten: a false hint costs one failed dial (heard
    /// again, it is a new hint).
    pub fn mark_failed(&mut self, peer: &PeerId, addr: SocketAddr, now: Instant) {
        if self.is_unproven_hint(peer, addr) {
            self.remove(peer, addr);
            return;
        }
        self.mark_busy(peer, addr, now);
    }

    /// A dial to `addr` reached a node that turned it away for now (a
    /// REJECT `busy`, which version 2 sends only to a dialer that named
    /// its PeerId, mac1; or version 2's `untrusted`, sent after mac1
    /// too): marked failed at `now`, as
    /// [`AddressBook::mark_failed`] does, but a discovery hint that never
    /// worked is kept, since the address answered as the peer. (mDNS
    /// reports an announcement again only when it changes: forgotten, the
    /// hint would not come back.) A REJECT is not authenticated, and
    /// version 1 sends `busy` to any HELLO once its handshake slots are
    /// full (or to a dialer it trusts that connects too often), whoever
    /// was meant: a false or stale hint that answers `busy` costs a failed
    /// dial a round, for as long as its peer is kept and not connected
    /// (and is saved with the book), within the book's bounds; the peer's
    /// own announcement, untried, is dialed first and may push it out.
    /// Such a hint joins the end of the line of hints waiting for a
    /// round's dial ([`AddressBook::round`]).
    pub fn mark_busy(&mut self, peer: &PeerId, addr: SocketAddr, now: Instant) {
        let mut flipped = false;
        let turn = self.added;
        self.added += 1;
        self.update(peer, addr, |e| {
            flipped = e.worked_last();
            e.last_failed = Some(now);
            e.turn = turn;
        });
        if flipped {
            self.revision += 1;
        }
    }

    fn update(&mut self, peer: &PeerId, addr: SocketAddr, f: impl FnOnce(&mut AddrEntry)) {
        let addr = canonical(addr);
        let Some(entries) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(e) = entries.iter_mut().find(|e| e.addr == addr) {
            f(e);
            entries.sort_by(AddrEntry::rank);
        }
    }
}

mod history;
mod room;

pub use history::AddrHistory;

#[cfg(test)]
mod tests;
