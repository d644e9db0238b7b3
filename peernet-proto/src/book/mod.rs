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
//! lists them).
//!
//! A full peer makes room for a new address by dropping its worst entry
//! of a worse source, or of the same source ranked below the new one.
//! A discovery hint never pushes out an address the application or a
//! ticket gave, nor another hint that once worked: a LAN host that
//! announces addresses for a peer cannot make the book forget the true
//! ones.
//!
//! [`Config::max_addresses_per_peer`]: crate::Config::max_addresses_per_peer
//! [`Config::max_addresses`]: crate::Config::max_addresses

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::net::SocketAddr;

use crate::Instant;
use crate::identity::PeerId;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrSource {
    /// Given by the application (or a user, e.g. `PEERID@IP:PORT`).
    Application,
    /// Read from a ticket the peer handed out.
    Ticket,
    /// Heard from discovery (e.g. a LAN announcement): a hint only.
    Discovery,
}

impl AddrSource {
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

    /// Whether this new entry may take `old`'s place in a full book: a
    /// better source always may; the same source only if `old` ranks
    /// below it and, for discovery, never worked; a worse source never.
    /// So a LAN host announcing addresses for a peer can push out only
    /// other hints that never worked, not what the application, a ticket
    /// or a working connection gave.
    fn may_evict(&self, old: &AddrEntry) -> bool {
        match self.source.weight().cmp(&old.source.weight()) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                old.rank(self) == Ordering::Greater
                    && (self.source != AddrSource::Discovery || old.last_ok.is_none())
            }
        }
    }

    /// Orders two entries of one peer, best (to dial first) first.
    pub fn rank(&self, other: &AddrEntry) -> Ordering {
        let key = |e: &AddrEntry| {
            (
                e.class(),
                Reverse(e.last_ok),
                e.last_failed,
                Reverse(e.source.weight()),
                e.added,
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
    #[error("{0} cannot be dialed: port 0, or an unspecified, multicast or broadcast IP")]
    Undialable(SocketAddr),
}

/// Whether a connection can be opened to `addr`: not port 0, and not an
/// unspecified (`0.0.0.0`, `::`), multicast or broadcast IP. Such an
/// address in a ticket, a saved book or a discovery answer could only
/// fail every dial (or, unspecified, reach whatever listens on this very
/// host), so the book and tickets refuse it.
pub fn is_dialable(addr: &SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let broadcast = matches!(ip, core::net::IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// `addr` as the book keeps it: an IPv4-mapped IPv6 address
/// (`[::ffff:192.0.2.1]:4000`) as its IPv4 form, so the two spellings of
/// one address are one entry.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        // (only a mapped address changes: any other IPv6 address keeps
        // its scope id, which a link-local one needs to be dialed)
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
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
    /// `added`.
    added: u64,
    total: usize,
    per_peer: usize,
    max_total: usize,
}

impl AddressBook {
    /// An empty book holding at most `per_peer` addresses per peer and
    /// `max_total` in all (each at least 1).
    pub fn new(per_peer: usize, max_total: usize) -> AddressBook {
        AddressBook {
            peers: BTreeMap::new(),
            added: 0,
            total: 0,
            per_peer: per_peer.max(1),
            max_total: max_total.max(1),
        }
    }

    /// Adds `addr` for `peer` (or, if known, keeps the better of the two
    /// sources). A full peer makes room by dropping its worst entry that
    /// the new one may replace: one of a worse source, or of the same
    /// source ranked below it (for discovery, one that never worked);
    /// otherwise [`BookError::Full`]. Trust
    /// is the caller's to check. Returns true if the address is new;
    /// [`BookError::Undialable`] for an address no dial can reach.
    pub fn add(
        &mut self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
    ) -> Result<bool, BookError> {
        Ok(self.insert(peer, addr, source)? == Added::New)
    }

    /// [`AddressBook::add`], saying what changed.
    pub(crate) fn insert(
        &mut self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
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
                return Ok(Added::Known);
            }
            e.source = source;
            entries.sort_by(AddrEntry::rank);
            return Ok(Added::BetterSource);
        }
        let new = AddrEntry::new(addr, source, self.added);
        let evict = entries.len() >= per_peer || at_total;
        if evict {
            // Entries are sorted: the worst that may make room goes.
            match entries.iter().rposition(|e| new.may_evict(e)) {
                Some(worst) => {
                    entries.remove(worst);
                    self.total -= 1;
                }
                None => {
                    if entries.is_empty() {
                        self.peers.remove(&peer);
                    }
                    return Err(BookError::Full);
                }
            }
        }
        entries.push(new);
        entries.sort_by(AddrEntry::rank);
        self.total += 1;
        self.added += 1;
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
        }
    }

    /// The addresses of `peer`, best first.
    pub fn get(&self, peer: &PeerId) -> impl Iterator<Item = &AddrEntry> + '_ {
        self.peers.get(peer).into_iter().flatten()
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
        self.update(peer, addr, |e| e.last_ok = Some(now));
    }

    /// A dial to `addr` failed at `now`. A discovery hint that never
    /// worked is forgotten: a false hint costs one failed dial (heard
    /// again, it is a new hint).
    pub fn mark_failed(&mut self, peer: &PeerId, addr: SocketAddr, now: Instant) {
        let addr = canonical(addr);
        let false_hint = self
            .get(peer)
            .any(|e| e.addr == addr && e.source == AddrSource::Discovery && e.last_ok.is_none());
        if false_hint {
            self.remove(peer, addr);
            return;
        }
        self.update(peer, addr, |e| e.last_failed = Some(now));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn peer(n: u8) -> PeerId {
        Identity::from_seed(&[n; 32]).peer_id()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ports(book: &AddressBook, p: &PeerId) -> Vec<u16> {
        book.get(p).map(|e| e.addr.port()).collect()
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn an_address_no_dial_can_reach_is_refused() {
        let p = peer(1);
        let mut book = AddressBook::new(8, 64);
        for text in [
            "127.0.0.1:0",
            "0.0.0.0:4000",
            "[::]:4000",
            "[::ffff:0.0.0.0]:4000",
            "224.0.0.251:5353",
            "[ff02::fb]:5353",
            "255.255.255.255:4000",
        ] {
            let bad: SocketAddr = text.parse().unwrap();
            assert!(!is_dialable(&bad), "{text}");
            assert_eq!(
                book.add(p, bad, AddrSource::Ticket),
                Err(BookError::Undialable(bad))
            );
        }
        assert_eq!(book.len(), 0);
        for text in [
            "127.0.0.1:1",
            "192.0.2.7:4000",
            "[::1]:4000",
            "[fe80::1%2]:9",
        ] {
            let good: SocketAddr = text.parse().unwrap();
            assert!(is_dialable(&good), "{text}");
            assert_eq!(book.add(p, good, AddrSource::Ticket), Ok(true));
        }
    }

    #[test]
    fn ranks_worked_then_untried_then_hints_then_failed() {
        let p = peer(1);
        let mut book = AddressBook::new(8, 64);
        book.add(p, addr(1), AddrSource::Discovery).unwrap();
        book.add(p, addr(2), AddrSource::Application).unwrap();
        book.add(p, addr(3), AddrSource::Ticket).unwrap();
        book.add(p, addr(4), AddrSource::Application).unwrap();
        book.add(p, addr(5), AddrSource::Application).unwrap();
        // Untried: application and ticket before the discovery hint.
        assert_eq!(ports(&book, &p), [2, 4, 5, 3, 1]);
        book.mark_ok(&p, addr(4), at(10));
        book.mark_ok(&p, addr(5), at(20));
        book.mark_failed(&p, addr(2), at(30));
        // 5 worked last, then 4; 2 failed: last.
        assert_eq!(ports(&book, &p), [5, 4, 3, 1, 2]);
        // 5 fails now: below the untried ones, but before 2, which
        // never worked.
        book.mark_failed(&p, addr(5), at(40));
        assert_eq!(ports(&book, &p), [4, 3, 1, 5, 2]);
        // A false hint fails once and is forgotten.
        book.mark_failed(&p, addr(1), at(50));
        assert_eq!(ports(&book, &p), [4, 3, 5, 2]);
        assert_eq!(book.len(), 4);
        // Working again after a failure puts it first.
        book.mark_ok(&p, addr(2), at(60));
        assert_eq!(ports(&book, &p), [2, 4, 3, 5]);
        // A hint that worked once is kept when it fails.
        book.add(p, addr(6), AddrSource::Discovery).unwrap();
        book.mark_ok(&p, addr(6), at(70));
        book.mark_failed(&p, addr(6), at(80));
        assert_eq!(ports(&book, &p), [2, 4, 3, 6, 5]);
    }

    #[test]
    fn hints_make_room_only_among_hints_that_never_worked() {
        let p = peer(1);
        let mut book = AddressBook::new(3, 64);
        book.add(p, addr(1), AddrSource::Application).unwrap();
        book.add(p, addr(2), AddrSource::Discovery).unwrap();
        book.add(p, addr(3), AddrSource::Discovery).unwrap();
        // addr(2) worked once, then every address failed.
        book.mark_ok(&p, addr(2), at(1));
        for (port, t) in [(1, 2), (2, 3), (3, 4)] {
            book.mark_failed(&p, addr(port), at(t));
        }
        // A new hint pushes out only the hint that never worked.
        assert_eq!(book.add(p, addr(4), AddrSource::Discovery), Ok(true));
        assert_eq!(ports(&book, &p), [4, 2, 1]);
        // A flood of hints, each failing, churns that one place only:
        // the book never forgets the others.
        for port in 5..50 {
            book.mark_failed(&p, addr(port - 1), at(u64::from(port)));
            assert_eq!(book.add(p, addr(port), AddrSource::Discovery), Ok(true));
            assert_eq!(ports(&book, &p), [port, 2, 1]);
        }
        // Untried, the last hint ranks above it: not replaced by another.
        assert_eq!(
            book.add(p, addr(50), AddrSource::Discovery),
            Err(BookError::Full)
        );
        // A ticket may replace a hint even if it worked (the worst
        // first); the application its own failed address.
        assert_eq!(book.add(p, addr(60), AddrSource::Ticket), Ok(true));
        assert_eq!(ports(&book, &p), [60, 49, 1]);
        assert_eq!(book.add(p, addr(61), AddrSource::Application), Ok(true));
        assert_eq!(ports(&book, &p), [61, 60, 49]);
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_form() {
        let p = peer(1);
        let mut book = AddressBook::new(8, 64);
        let v4: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().unwrap();
        assert_eq!(book.add(p, mapped, AddrSource::Discovery), Ok(true));
        assert_eq!(book.add(p, v4, AddrSource::Ticket), Ok(false));
        assert_eq!(book.len(), 1);
        let e = book.get(&p).next().unwrap();
        assert_eq!((e.addr, e.source), (v4, AddrSource::Ticket));
        book.mark_ok(&p, mapped, at(1));
        assert!(book.get(&p).next().unwrap().last_ok.is_some());
        assert!(book.remove(&p, mapped));
        assert!(book.is_empty());
        // any other IPv6 address is kept as it is, a link-local one's
        // scope id included
        let scoped: SocketAddr = "[fe80::1%2]:9".parse().unwrap();
        book.add(p, scoped, AddrSource::Discovery).unwrap();
        assert_eq!(book.get(&p).next().unwrap().addr, scoped);
        let SocketAddr::V6(kept) = book.get(&p).next().unwrap().addr else {
            panic!("an IPv6 address")
        };
        assert_eq!(kept.scope_id(), 2);
    }

    #[test]
    fn a_second_source_keeps_the_better_one() {
        let p = peer(1);
        let mut book = AddressBook::new(8, 64);
        assert_eq!(book.add(p, addr(1), AddrSource::Discovery), Ok(true));
        assert_eq!(book.add(p, addr(1), AddrSource::Ticket), Ok(false));
        assert_eq!(book.add(p, addr(1), AddrSource::Discovery), Ok(false));
        assert_eq!(book.get(&p).next().unwrap().source, AddrSource::Ticket);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn bounded_per_peer_and_in_total() {
        let (p, q) = (peer(1), peer(2));
        let mut book = AddressBook::new(2, 3);
        book.add(p, addr(1), AddrSource::Application).unwrap();
        book.add(p, addr(2), AddrSource::Application).unwrap();
        book.mark_ok(&p, addr(1), at(1));
        // A hint does not push out an application address, untried or
        // failed.
        assert_eq!(
            book.add(p, addr(3), AddrSource::Discovery),
            Err(BookError::Full)
        );
        book.mark_failed(&p, addr(2), at(2));
        assert_eq!(
            book.add(p, addr(3), AddrSource::Discovery),
            Err(BookError::Full)
        );
        // A failed one makes room for a new untried one of its source.
        assert_eq!(book.add(p, addr(3), AddrSource::Application), Ok(true));
        assert_eq!(ports(&book, &p), [1, 3]);
        book.add(q, addr(9), AddrSource::Ticket).unwrap();
        assert_eq!(book.len(), 3);
        // Total full: a new peer gets nothing, and no empty entry lingers.
        let r = peer(3);
        assert_eq!(
            book.add(r, addr(7), AddrSource::Application),
            Err(BookError::Full)
        );
        assert!(!book.has(&r));
        book.remove_peer(&p);
        assert_eq!(book.len(), 1);
        assert!(book.remove(&q, addr(9)));
        assert!(!book.remove(&q, addr(9)));
        assert!(book.is_empty());
        assert!(!book.has(&q));
    }
}
