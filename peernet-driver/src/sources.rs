//! Which accepted connections a source address may have: the local policy
//! at accept (PROTOCOL.md section 6.1 leaves it to each node), checked
//! before the core sees a connection. Two limits per source:
//!
//! - **handshakes in progress**, so that one address holding idle sockets
//!   cannot take every handshake slot. An accepted connection counts from
//!   accept until its handshake ends either way.
//! - **failed handshakes per second**, so that one address cannot keep the
//!   node doing handshake work that never gives a connection: an INIT from
//!   someone who knows the node's PeerId but is not trusted costs two
//!   X25519 operations before it is refused, and garbage after a valid
//!   `mac1` one, for next to nothing on the sender's side. Each accepted
//!   connection is charged to its source when it is admitted, and the
//!   charge is given back when its handshake succeeds (or fails by this
//!   node's doing); a source may owe `burst` charges at once, and they are
//!   paid off at `rate` per second (a generic cell rate algorithm: one
//!   instant per source). So the handshakes of a source that fail are at
//!   most `burst + rate × seconds`, however many connections it opens in
//!   parallel, while a source whose handshakes succeed is held back only
//!   by the handshakes it has in progress.
//!
//! A connection beyond either limit is closed at once (a bare close, no
//! REJECT, nothing read, no work). A source is an IPv4 address or an IPv6
//! /64 (one host or one subnet hands out a /64).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use peernet_proto::{ConnId, HandshakeError, Instant, RejectCode};
use rustc_hash::FxHashMap as FastMap;

/// Where a connection came from, as far as the per-source limit cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl Source {
    pub(crate) fn of(addr: SocketAddr) -> Source {
        match addr.ip() {
            IpAddr::V4(ip) => Source::V4(ip.octets()),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&ip.octets()[..8]);
                    Source::V6(prefix)
                }
            },
        }
    }
}

/// The limits, from [`crate::NodeConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceLimits {
    /// Handshakes in progress per source (at least 1).
    pub(crate) handshakes: usize,
    /// Failed handshakes per second per source, after the burst (at least 1).
    pub(crate) failures_per_second: u32,
    /// Failed handshakes a source may have at once (at least 1).
    pub(crate) failure_burst: u32,
}

/// Why [`Sources::admit`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `handshakes` of its source are in progress.
    Busy,
    /// Its source failed too many handshakes lately.
    Failing,
}

impl Refusal {
    /// The reason, for the log.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Busy => "too many handshakes from this source",
            Refusal::Failing => "too many failed handshakes from this source",
        }
    }
}

/// The counts, and which connection (`C`, a [`ConnId`] in the node)
/// counts against which source.
#[derive(Debug)]
pub(crate) struct Sources<C = ConnId> {
    limit: usize,
    counts: FastMap<Source, usize>,
    by_conn: FastMap<C, Source>,
    charges: Charges,
    /// Connections closed at accept, for either reason.
    pub(crate) refused: u64,
    /// Of those, closed because their source failed too many handshakes.
    pub(crate) throttled: u64,
}

impl<C: Copy + Eq + Hash> Sources<C> {
    pub(crate) fn new(limits: SourceLimits) -> Sources<C> {
        Sources {
            limit: limits.handshakes.max(1),
            counts: FastMap::default(),
            by_conn: FastMap::default(),
            charges: Charges::new(limits.failures_per_second, limits.failure_burst),
            refused: 0,
            throttled: 0,
        }
    }

    /// Whether one more connection from `source` may start a handshake
    /// at `now` (if so, it is charged to the source: [`Sources::track`]
    /// it); counts a refusal.
    pub(crate) fn admit(&mut self, source: Source, now: Instant) -> Result<(), Refusal> {
        let refusal = if self.counts.get(&source).copied().unwrap_or(0) >= self.limit {
            Refusal::Busy
        } else if !self.charges.charge(source, now) {
            self.throttled += 1;
            Refusal::Failing
        } else {
            return Ok(());
        };
        self.refused += 1;
        Err(refusal)
    }

    /// `conn`, accepted from `source`, counts until [`Sources::release`].
    pub(crate) fn track(&mut self, conn: C, source: Source) {
        *self.counts.entry(source).or_insert(0) += 1;
        self.by_conn.insert(conn, source);
    }

    /// `conn`'s handshake succeeded, or ended by this node's doing (or
    /// the connection did): it no longer counts, and its charge is given
    /// back. Harmless for a connection that never counted.
    pub(crate) fn release(&mut self, conn: C) {
        if let Some(source) = self.untrack(conn) {
            self.charges.refund(source);
        }
    }

    /// `conn`'s handshake failed with `error`: it no longer counts as in
    /// progress, and its charge stays with its source unless the failure
    /// was this node's doing ([`is_the_sources_doing`]).
    pub(crate) fn failed(&mut self, conn: C, error: &HandshakeError) {
        if is_the_sources_doing(error) {
            self.untrack(conn);
        } else {
            self.release(conn);
        }
    }

    fn untrack(&mut self, conn: C) -> Option<Source> {
        let source = self.by_conn.remove(&conn)?;
        if let Some(n) = self.counts.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&source);
            }
        }
        Some(source)
    }
}

/// Whether a failed inbound handshake is held against its source: every
/// failure but those this node caused (`busy`: its own slots were full;
/// shutdown or an unpairing; a connection that lost to another one of the
/// same peer).
fn is_the_sources_doing(error: &HandshakeError) -> bool {
    !matches!(
        error,
        HandshakeError::Refused(RejectCode::Busy)
            | HandshakeError::Abandoned
            | HandshakeError::Superseded
    )
}

/// Sources tracked for failed handshakes at most: past this many, each
/// with a charge too recent to be forgotten, a new source is admitted
/// without a charge (a flood from that many addresses is beyond what a
/// per-source limit can stop; the table stays bounded in bytes, about
/// 40 bytes a source).
pub(crate) const MAX_FAILING_SOURCES: usize = 16 * 1024;

/// Charges per source, as a rate (a generic cell rate algorithm): each
/// admitted connection pushes its source's `clear_at` one `interval`
/// further into the future, and each refund pulls it back one; a source
/// is refused while its `clear_at` is more than `tolerance` ahead of now.
/// A source whose `clear_at` has passed owes nothing, as one never seen,
/// so it can be forgotten.
#[derive(Debug)]
struct Charges {
    /// What one charge costs: a second divided by the rate.
    interval: Duration,
    /// How far ahead `clear_at` may run: `burst - 1` intervals.
    tolerance: Duration,
    clear_at: FastMap<Source, Instant>,
    /// No sweep for forgotten sources before this: a full table costs a
    /// pass over it at most once per `tolerance + interval`.
    next_sweep: Instant,
}

impl Charges {
    fn new(per_second: u32, burst: u32) -> Charges {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Charges {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            clear_at: FastMap::default(),
            next_sweep: Instant::ZERO,
        }
    }

    /// Charges one connection from `source` at `now`, if the source has
    /// room for it; whether it had.
    fn charge(&mut self, source: Source, now: Instant) -> bool {
        if let Some(at) = self.clear_at.get_mut(&source) {
            if at.saturating_duration_since(now) > self.tolerance {
                return false;
            }
            *at = (*at).max(now) + self.interval;
            return true;
        }
        if self.clear_at.len() >= MAX_FAILING_SOURCES {
            if now < self.next_sweep {
                return true;
            }
            self.clear_at.retain(|_, at| *at > now);
            self.next_sweep = now + self.tolerance + self.interval;
            if self.clear_at.len() >= MAX_FAILING_SOURCES {
                return true;
            }
        }
        self.clear_at.insert(source, now + self.interval);
        true
    }

    /// Gives one charge of `source` back. (Its `clear_at` may then lie in
    /// the past: a source earns no credit by waiting, as `charge` starts
    /// from now at the latest.)
    fn refund(&mut self, source: Source) {
        if let Some(at) = self.clear_at.get_mut(&source) {
            *at = *at - self.interval;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clear_at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn ipv4_by_address_ipv6_by_slash_64() {
        assert_eq!(source("127.0.0.1:1"), source("127.0.0.1:2"));
        assert_ne!(source("127.0.0.1:1"), source("127.0.0.2:1"));
        assert_eq!(
            source("[2001:db8:1:2::1]:1"),
            source("[2001:db8:1:2:ff::9]:7")
        );
        assert_ne!(source("[2001:db8:1:2::1]:1"), source("[2001:db8:1:3::1]:1"));
        assert_eq!(source("[::ffff:10.0.0.1]:1"), source("10.0.0.1:9"));
    }

    fn limits(handshakes: usize, per_second: u32, burst: u32) -> SourceLimits {
        SourceLimits {
            handshakes,
            failures_per_second: per_second,
            failure_burst: burst,
        }
    }

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    const UNTRUSTED: HandshakeError = HandshakeError::Refused(RejectCode::Untrusted);

    #[test]
    fn a_source_at_its_limit_is_refused_until_one_ends() {
        let mut s = Sources::<u64>::new(limits(2, 8, 32));
        let a = source("127.0.0.1:1");
        let b = source("127.0.0.2:1");
        let conns = [1u64, 2, 3];
        let now = at(0);
        assert_eq!(s.admit(a, now), Ok(()));
        s.track(conns[0], a);
        assert_eq!(s.admit(a, now), Ok(()));
        s.track(conns[1], a);
        assert_eq!(s.admit(a, now), Err(Refusal::Busy), "third from one source");
        assert_eq!(s.admit(b, now), Ok(()), "another source is not affected");
        s.release(conns[0]);
        s.release(conns[0]); // twice is harmless
        assert_eq!(s.admit(a, now), Ok(()));
        s.release(conns[2]); // never counted
        assert_eq!((s.refused, s.throttled), (1, 0));
    }

    /// Admits a connection `conn` from `source` at `now` and fails its
    /// handshake with `error`; whether it was admitted.
    fn attempt(
        s: &mut Sources<u64>,
        conn: u64,
        source: Source,
        error: &HandshakeError,
        now: Instant,
    ) -> bool {
        if s.admit(source, now).is_err() {
            return false;
        }
        s.track(conn, source);
        s.failed(conn, error);
        true
    }

    #[test]
    fn failed_handshakes_are_a_burst_then_a_rate() {
        // 10 per second (one per 100 ms) after a burst of 3
        let mut s = Sources::<u64>::new(limits(32, 10, 3));
        let a = source("10.0.0.1:1");
        let b = source("10.0.0.2:1");
        for conn in 0..3 {
            assert!(attempt(&mut s, conn, a, &UNTRUSTED, at(0)));
        }
        assert_eq!(
            s.admit(a, at(0)),
            Err(Refusal::Failing),
            "the burst is spent"
        );
        assert_eq!(s.admit(a, at(99)), Err(Refusal::Failing));
        assert_eq!(s.admit(b, at(0)), Ok(()), "another source is not affected");
        // one interval later there is room for exactly one more
        assert!(attempt(&mut s, 3, a, &UNTRUSTED, at(100)));
        assert_eq!(s.admit(a, at(100)), Err(Refusal::Failing));
        assert_eq!(s.admit(a, at(199)), Err(Refusal::Failing));
        // after burst / rate with no attempt the whole burst is back
        for conn in 10..13 {
            assert!(attempt(&mut s, conn, a, &UNTRUSTED, at(500)));
        }
        assert_eq!(s.admit(a, at(500)), Err(Refusal::Failing));
        assert_eq!((s.refused, s.throttled), (5, 5));
    }

    #[test]
    fn connections_in_parallel_get_no_more_than_the_burst() {
        // 32 connections at once, each admitted before any fails
        let mut s = Sources::<u64>::new(limits(32, 10, 3));
        let a = source("10.0.0.1:1");
        let admitted: Vec<u64> = (0..32).filter(|_| s.admit(a, at(0)).is_ok()).collect();
        assert_eq!(admitted.len(), 3);
        for conn in 0..3 {
            s.track(conn, a);
        }
        for conn in 0..3 {
            s.failed(conn, &UNTRUSTED);
        }
        // over one second of attempts as fast as they come: the burst and
        // then one per interval, no more
        let admitted = (1..=1_000)
            .filter(|&ms| attempt(&mut s, 100 + ms, a, &UNTRUSTED, at(ms)))
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn successes_and_this_nodes_own_refusals_give_the_charge_back() {
        // a burst of 1 at one per second: without the refunds, the second
        // attempt within the second would be refused
        let mut s = Sources::<u64>::new(limits(32, 1, 1));
        let a = source("10.0.0.1:1");
        for conn in 0..10 {
            assert_eq!(s.admit(a, at(conn)), Ok(()), "attempt {conn}");
            s.track(conn, a);
            s.release(conn); // handshake succeeded
        }
        let ours = [
            HandshakeError::Refused(RejectCode::Busy),
            HandshakeError::Abandoned,
            HandshakeError::Superseded,
        ];
        for (conn, error) in (10..).zip(&ours) {
            assert!(attempt(&mut s, conn, a, error, at(20)), "{error:?}");
        }
        let theirs = [
            UNTRUSTED,
            HandshakeError::Refused(RejectCode::BadSignature),
            HandshakeError::Timeout,
            HandshakeError::TransportLost,
            HandshakeError::Frame,
            HandshakeError::Replayed,
        ];
        for (conn, error) in (20..).zip(&theirs) {
            let mut t = Sources::<u64>::new(limits(32, 1, 1));
            assert!(attempt(&mut t, conn, a, error, at(0)));
            assert_eq!(t.admit(a, at(0)), Err(Refusal::Failing), "{error:?}");
        }
    }

    #[test]
    fn the_table_of_failing_sources_is_bounded_and_swept_at_most_once_a_window() {
        // one per second, burst 1: each source is remembered for a second
        let mut s = Sources::<u64>::new(limits(32, 1, 1));
        let v4 = |n: u32| Source::V4(n.to_be_bytes());
        for n in 0..MAX_FAILING_SOURCES as u32 {
            assert!(attempt(&mut s, u64::from(n), v4(n), &UNTRUSTED, at(0)));
        }
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        // full, and nothing is old enough to forget: a new source is
        // admitted without a charge, the table does not grow
        let new = v4(u32::MAX);
        assert!(attempt(&mut s, 1 << 40, new, &UNTRUSTED, at(500)));
        assert!(attempt(&mut s, (1 << 40) + 1, new, &UNTRUSTED, at(500)));
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        assert_eq!(s.admit(v4(7), at(500)), Err(Refusal::Failing));
        // the sweep just done (at 500 ms) waits one window: at 1.2 s every
        // entry has expired, but no sweep runs yet
        assert!(attempt(&mut s, (1 << 40) + 2, new, &UNTRUSTED, at(1_200)));
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        // at 1.5 s it runs, forgets them all, and charges the new source
        assert!(attempt(&mut s, (1 << 40) + 3, new, &UNTRUSTED, at(1_500)));
        assert_eq!(s.charges.len(), 1);
        assert_eq!(s.admit(new, at(1_500)), Err(Refusal::Failing));
        assert_eq!(s.admit(v4(7), at(1_500)), Ok(()));
    }
}
