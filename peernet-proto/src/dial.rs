//! The dial schedule: per peer, what the endpoint is doing to reach it
//! through the address book, and the backoff of the peers it keeps
//! connected.
//!
//! A *round* dials the peer's addresses one at a time, best first, each
//! after the one before failed, until one gives a connection or none is
//! left. [`crate::Endpoint::dial`] is one round; a kept peer
//! ([`crate::Endpoint::keep_connected`]) gets a round at once, and after a
//! loss or a failed round another one after a backoff delay
//! ([`next_delay`]), announced with [`crate::Event::Reconnecting`] when
//! its first dial goes out (a round waiting for a dial slot is not); a
//! round that dialed and failed ends with [`crate::Event::Unreachable`],
//! for a kept peer as for a one-off dial.
//!
//! A round dials every address the application or a ticket gave and
//! every discovery hint that worked, but at most [`HINTS_PER_ROUND`]
//! hints that never worked: mDNS is not authenticated, and a LAN host
//! announcing a kept peer's PeerId with addresses of third parties must
//! not make every node that keeps the peer dial them all, round after
//! round. The others wait for later rounds, in turn
//! ([`crate::AddressBook::round`]).
//!
//! This module holds the state and the arithmetic; the endpoint
//! (`endpoint/dialing.rs`, and `endpoint/round.rs` for a round) acts on it, because acting needs the book, the
//! registry, the timers and the RNG together.

use alloc::collections::VecDeque;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use rand_core::Rng;

use crate::Instant;
use crate::book::AddrSource;
use crate::config::DialConfig;
use crate::error::DialFailure;
use crate::identity::PeerId;
use crate::ids::ConnId;

/// The most discovery hints that never worked
/// ([`crate::AddrEntry::unproven_hint`]) one round dials, whether the
/// round is a kept peer's redial or the application's
/// [`crate::Endpoint::dial`]; addresses the application or a ticket gave,
/// and hints that worked, are never held back. A LAN host announcing
/// false hints for a kept peer that is not connected so gets at most
/// this many dials out of each node that keeps it per round (in the
/// long run 2 per 22.5 to 30 s, the backoff at its cap), not
/// `max_addresses_per_peer` (8).
/// Two, not one: a peer's own announcement usually gives two addresses
/// (IPv4 and IPv6), and one place goes to the latest hint heard, the
/// other to the one that waited longest. A constant, not a setting:
/// what a LAN host may make a node do is not for each deployment to
/// widen.
pub const HINTS_PER_ROUND: usize = 2;

/// The jitter of a delay at the cap: the backoff's delay, once its growth
/// reaches `max_delay`, is drawn in `[max_delay - max_delay /
/// CAP_JITTER_DIVISOR, max_delay]` (22.5 to 30 s by default), so that
/// the rounds of peers waiting at the cap do not fall into step.
pub const CAP_JITTER_DIVISOR: u32 = 4;

/// The backoff delay to wait after `prev` (or, with `None`, after a loss):
/// the first in `[first_min, first_max]`, each later one `prev` times a
/// factor drawn in `[growth_min_percent, growth_max_percent]` percent
/// (rounded up, so it is never below the minimum growth), never above
/// `max_delay`. A grown delay that reaches `max_delay` is drawn in its
/// top quarter instead ([`CAP_JITTER_DIVISOR`]): jitter at the cap too.
pub fn next_delay(
    prev: Option<Duration>,
    cfg: &DialConfig,
    rng: &mut (impl Rng + ?Sized),
) -> Duration {
    let delay = match prev {
        None => {
            let (lo, hi) = (
                nanos(cfg.first_min),
                nanos(cfg.first_max).max(nanos(cfg.first_min)),
            );
            Duration::from_nanos(lo + draw(rng, hi - lo))
        }
        Some(prev) => {
            let lo = u64::from(cfg.growth_min_percent);
            let hi = u64::from(cfg.growth_max_percent).max(lo);
            let percent = u128::from(lo + draw(rng, hi - lo));
            let grown = (prev.as_nanos() * percent).div_ceil(100);
            let grown = Duration::from_nanos(u64::try_from(grown).unwrap_or(u64::MAX));
            if grown >= cfg.max_delay {
                let jitter = nanos(cfg.max_delay / CAP_JITTER_DIVISOR);
                return cfg.max_delay - Duration::from_nanos(draw(rng, jitter));
            }
            grown
        }
    };
    delay.min(cfg.max_delay)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A number in `[0, span]`.
fn draw(rng: &mut (impl Rng + ?Sized), span: u64) -> u64 {
    match span.checked_add(1) {
        Some(n) => rng.next_u64() % n,
        None => rng.next_u64(),
    }
}

/// Where a peer's schedule stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing under way: a kept peer with no address yet.
    Idle,
    /// Connected (in either direction) since `since`.
    Connected {
        /// When the connection was registered.
        since: Instant,
    },
    /// Backing off: the next round starts at `at`, `delay` after the loss
    /// or the failed round.
    Waiting {
        /// When the timer fires.
        at: Instant,
        /// The delay waited.
        delay: Duration,
    },
    /// [`crate::Output::Dial`] went out; waiting for `connect_to` or
    /// `dial_failed` until `deadline`.
    Opening {
        /// The address dialed.
        addr: SocketAddr,
        /// When the dial counts as failed.
        deadline: Instant,
    },
    /// A round's next dial waits for one of the
    /// [`DialConfig::max_dials_in_flight`] to end.
    Queued,
    /// The transport opened (`connect_to`); its handshake runs on `conn`.
    Handshaking {
        /// The address dialed.
        addr: SocketAddr,
        /// The connection.
        conn: ConnId,
    },
}

/// One peer's schedule.
#[derive(Debug, Clone)]
pub(crate) struct PeerDial {
    /// Kept connected: redial after a loss or a failed round.
    pub(crate) kept: bool,
    /// A one-off `dial` waits for this round: emit `Unreachable` if it
    /// fails.
    pub(crate) report: bool,
    /// The connection was lost and not regained: redials are announced.
    pub(crate) lost: bool,
    /// Redials announced since the backoff last reset.
    pub(crate) attempt: u32,
    /// The round is a redial after the backoff delay it holds: announced
    /// (and counted in `attempt`) right before its first dial goes out,
    /// not while it waits in line for a slot ([`Phase::Queued`]).
    pub(crate) announce: Option<Duration>,
    /// The last backoff delay (`None`: the next is a first one).
    pub(crate) delay: Option<Duration>,
    /// The round's addresses not yet dialed, best first.
    pub(crate) rest: VecDeque<SocketAddr>,
    /// The round's addresses dialed and failed, with why: at most one
    /// per address of the round, for its [`crate::Event::Unreachable`].
    pub(crate) tried: Vec<(SocketAddr, DialFailure)>,
    /// The round's dials of discovery hints that never worked: at most
    /// [`HINTS_PER_ROUND`] (a late transport the round adopted, to such a
    /// hint or one the book forgot, counts too).
    pub(crate) hints: usize,
    pub(crate) phase: Phase,
    /// The number of its wait in line, while [`Phase::Queued`].
    pub(crate) wait: u64,
    /// The addresses of its latest dials, each with its source in the
    /// book when the dial went out, oldest first: one entry an address,
    /// at most the peer's places (`max_addresses_per_peer`). If the book
    /// drops the address while the dial is out, or before a transport
    /// given up on opens late (a lost SYN, retransmitted), and the
    /// handshake there proves the peer, it comes back from that source.
    sources: VecDeque<(SocketAddr, AddrSource)>,
}

impl PeerDial {
    pub(crate) fn new() -> PeerDial {
        PeerDial {
            kept: false,
            report: false,
            lost: false,
            attempt: 0,
            announce: None,
            delay: None,
            rest: VecDeque::new(),
            tried: Vec::new(),
            hints: 0,
            phase: Phase::Idle,
            wait: 0,
            sources: VecDeque::new(),
        }
    }

    /// Its dial of `addr` goes out, `addr` being of `source` in the
    /// book: remembered among its latest dials' (at most `places`).
    pub(crate) fn remember(&mut self, addr: SocketAddr, source: AddrSource, places: usize) {
        self.sources.retain(|(a, _)| *a != addr);
        if self.sources.len() >= places.max(1) {
            self.sources.pop_front();
        }
        self.sources.push_back((addr, source));
    }

    /// The source `addr` had in the book when its latest dial went out,
    /// if that is among its latest dials.
    pub(crate) fn source_of(&self, addr: SocketAddr) -> Option<AddrSource> {
        let latest = self.sources.iter().rev().find(|(a, _)| *a == addr);
        latest.map(|(_, source)| *source)
    }

    /// The instant the peer's `Timer::Dial` is armed for, if it is.
    pub(crate) fn armed(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { at, .. } => Some(at),
            Phase::Opening { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Whether a round is under way (a dial out or its handshake).
    pub(crate) fn dialing(&self) -> bool {
        self.dialed_addr().is_some()
    }

    /// The address of the dial under way, if one is.
    pub(crate) fn dialed_addr(&self) -> Option<SocketAddr> {
        match self.phase {
            Phase::Opening { addr, .. } | Phase::Handshaking { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// A connection that lived `lived` was lost: resets the backoff if it
    /// lived long enough.
    pub(crate) fn reset_if_lived(&mut self, lived: Duration, cfg: &DialConfig) {
        if lived >= cfg.reset_after {
            self.attempt = 0;
            self.delay = None;
        }
    }
}

/// What a connection opened by `connect_to` dialed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialed {
    pub(crate) peer: PeerId,
    pub(crate) addr: SocketAddr,
    /// The address's source in the book when it was dialed (discovery
    /// if the book did not hold it, or the application removed it since):
    /// if the book dropped it meanwhile, a handshake that proves the peer
    /// there puts it back from that source, as one that worked.
    pub(crate) source: AddrSource,
}

/// Every peer the endpoint is dialing or keeps connected. Bounded by the
/// trust list: entries exist only for trusted peers.
#[derive(Debug, Default)]
pub(crate) struct DialSchedule {
    pub(crate) peers: BTreeMap<PeerId, PeerDial>,
    /// The connections opened by `connect_to`, with what they dialed,
    /// until they are registered or end: the book learns how it went.
    pub(crate) dialed: BTreeMap<ConnId, Dialed>,
    /// The peers whose dial was counted as under way, at most
    /// `max_dials_in_flight`; those whose dial since ended are dropped
    /// when a slot is looked for ([`DialSchedule::slot_free`]).
    pub(crate) in_flight: BTreeSet<PeerId>,
    /// Peers waiting ([`Phase::Queued`]) for a slot, first come first
    /// served, each with the number of its wait ([`PeerDial::wait`]): an
    /// entry whose peer stopped waiting, or waits again under a newer
    /// number, is skipped.
    pub(crate) queue: VecDeque<(PeerId, u64)>,
    /// The number the next wait gets.
    pub(crate) next_wait: u64,
    /// `start_queued` is running.
    pub(crate) starting: bool,
}

impl DialSchedule {
    /// The application removed `addr` of `peer`: a dial to it under way
    /// that works puts it back as a discovery hint (the handshake proved
    /// it), not as the application's.
    pub(crate) fn disown(&mut self, peer: &PeerId, addr: SocketAddr) {
        let hint = AddrSource::Discovery;
        for d in self.dialed.values_mut() {
            if d.peer == *peer && d.addr == addr {
                d.source = hint;
            }
        }
        if let Some(d) = self.peers.get_mut(peer) {
            for (a, source) in &mut d.sources {
                if *a == addr {
                    *source = hint;
                }
            }
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&PeerDial> {
        self.peers.get(peer)
    }

    pub(crate) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut PeerDial> {
        self.peers.get_mut(peer)
    }

    pub(crate) fn entry(&mut self, peer: PeerId) -> &mut PeerDial {
        self.peers.entry(peer).or_insert_with(PeerDial::new)
    }

    pub(crate) fn remove(&mut self, peer: &PeerId) -> Option<PeerDial> {
        self.peers.remove(peer)
    }

    /// Puts `peer` (just made [`Phase::Queued`]) at the end of the line.
    /// Entries of waits that ended are dropped once they are as many as
    /// the peers, so the line stays within twice the peers.
    pub(crate) fn enqueue(&mut self, peer: PeerId) {
        self.next_wait += 1;
        let wait = self.next_wait;
        if let Some(d) = self.peers.get_mut(&peer) {
            d.wait = wait;
        }
        if self.queue.len() >= 2 * self.peers.len() + 16 {
            let peers = &self.peers;
            self.queue.retain(|e| waiting(peers, e));
        }
        self.queue.push_back((peer, wait));
    }

    /// The first peer in line that still waits, taken out of the line.
    pub(crate) fn next_in_line(&mut self) -> Option<PeerId> {
        while let Some(entry) = self.queue.pop_front() {
            if waiting(&self.peers, &entry) {
                return Some(entry.0);
            }
        }
        None
    }

    /// Whether a dial may start now: fewer than `max` under way. Counts
    /// only the peers still dialing.
    pub(crate) fn slot_free(&mut self, max: usize) -> bool {
        let peers = &self.peers;
        self.in_flight
            .retain(|p| peers.get(p).is_some_and(PeerDial::dialing));
        self.in_flight.len() < max
    }
}

/// Whether a line entry's peer still waits under that number.
fn waiting(peers: &BTreeMap<PeerId, PeerDial>, (peer, wait): &(PeerId, u64)) -> bool {
    peers
        .get(peer)
        .is_some_and(|d| d.phase == Phase::Queued && d.wait == *wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Once grown to the cap, the delay is drawn in its top quarter, from
    /// the RNG it is given (a seed gives the same delays), never above
    /// it: peers at the cap do not redial in step. It used to be exactly
    /// `max_delay` from then on.
    #[test]
    fn the_delay_at_the_cap_is_jittered_below_it() {
        let cfg = DialConfig::default();
        let cap = cfg.max_delay;
        let draws = |seed: u64| -> Vec<Duration> {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut prev = Some(cap);
            (0..50)
                .map(|_| {
                    let d = next_delay(prev, &cfg, &mut rng);
                    prev = Some(d);
                    d
                })
                .collect()
        };
        let delays = draws(7);
        assert_eq!(delays, draws(7), "the same seed, the same delays");
        let floor = cap - cap / CAP_JITTER_DIVISOR;
        assert_eq!(floor, Duration::from_millis(22_500));
        assert!(
            delays.iter().all(|d| (floor..=cap).contains(d)),
            "{delays:?}"
        );
        let distinct: BTreeSet<Duration> = delays.iter().copied().collect();
        assert!(distinct.len() > 40, "{distinct:?}");
        // (just below the cap, a delay that grows past it is jittered too)
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let near = next_delay(Some(cap - Duration::from_secs(1)), &cfg, &mut rng);
        assert!((floor..=cap).contains(&near), "{near:?}");
    }

    /// A peer that stops waiting and waits again is served at its new
    /// place, and the entries of ended waits do not pile up.
    #[test]
    fn the_line_is_first_come_first_served_and_bounded() {
        let id = |n: u8| Identity::from_seed(&[n; 32]).peer_id();
        let mut s = DialSchedule::default();
        let wait = |s: &mut DialSchedule, p: PeerId| {
            s.entry(p).phase = Phase::Queued;
            s.enqueue(p);
        };
        wait(&mut s, id(1));
        wait(&mut s, id(2));
        for _ in 0..10_000 {
            s.remove(&id(1));
            wait(&mut s, id(1));
        }
        assert!(s.queue.len() <= 2 * s.peers.len() + 16, "{}", s.queue.len());
        assert_eq!(s.next_in_line(), Some(id(2)));
        assert_eq!(s.next_in_line(), Some(id(1)));
        assert_eq!(s.next_in_line(), None);
    }
}
