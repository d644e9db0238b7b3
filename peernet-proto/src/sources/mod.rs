//! Which accepted connections a source address may have: the local policy
//! at accept (PROTOCOL.md section 6.1 leaves it to each node), checked by
//! [`Endpoint::accept_from`](crate::Endpoint::accept_from) before a
//! connection exists. Two limits per source ([`SourceLimits`]):
//!
//! - **handshakes in progress**, so that one address holding idle sockets
//!   cannot take every handshake slot. An accepted connection counts from
//!   accept until its handshake ends either way.
//! - **failed handshakes per second**, so that one address cannot keep the
//!   node doing handshake work that never gives a connection: an INIT from
//!   someone who knows the node's PeerId but is not trusted costs two
//!   X25519 operations before it is refused, and garbage after a valid
//!   `mac1` one, for next to nothing on the sender's side. Each handshake
//!   that fails by its source's doing is charged to the source, and each
//!   handshake still in progress counts as a charge it may yet owe; a
//!   source may owe `burst` charges at once, and they are paid off at
//!   `rate` per second (a generic cell rate algorithm: one instant per
//!   source). So the handshakes of a source that fail, counted by when
//!   they were admitted, are at most `burst + rate × seconds`, however
//!   many connections it opens in parallel, while a source whose
//!   handshakes succeed is held back only by the handshakes it has in
//!   progress.
//!
//! And, off by default, one node-wide limit ([`SourceLimits::node_failures`],
//! `node_wide.rs`): the failed handshakes of sources that have not
//! completed one lately, all together, so that a flood from many
//! addresses is bounded too.
//!
//! A connection beyond any limit is refused before it exists (the
//! driver closes it: no REJECT, nothing read, no work). A source is an
//! IPv4 address or an IPv6 /64 (one host or one subnet hands out a /64).
//! Sources are chosen by whoever connects, so the tables hash them with a
//! seed from the endpoint's RNG: nobody can aim collisions at them.

use core::net::{IpAddr, SocketAddr};

use foldhash::fast::SeedableRandomState;
use hashbrown::HashMap;

use crate::rate::{RateTable, seeded};
use crate::{ConnId, Instant};

mod node_wide;

use node_wide::NodeWide;
pub use node_wide::{KNOWN_FOR, MAX_KNOWN_SOURCES, NodeFailureLimit};

/// Where a connection came from, as far as the per-source limits care:
/// an IPv4 address (an IPv4-mapped IPv6 address counts as one) or the
/// /64 prefix of an IPv6 address.
///
/// ```
/// use peernet_proto::Source;
/// let a: std::net::SocketAddr = "[2001:db8:1:2::1]:4000".parse().unwrap();
/// let b: std::net::SocketAddr = "[2001:db8:1:2:ff::9]:5000".parse().unwrap();
/// assert_eq!(Source::from(a), Source::from(b));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An IPv4 address.
    V4([u8; 4]),
    /// An IPv6 address's /64 prefix.
    V6([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
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

impl From<SocketAddr> for Source {
    fn from(addr: SocketAddr) -> Source {
        Source::from(addr.ip())
    }
}

/// The per-source limits ([`Config::source_limits`](crate::Config::source_limits)).
/// `#[non_exhaustive]`: start from [`SourceLimits::default`] and set fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceLimits {
    /// Handshakes in progress per source. Default 32; 0 counts as 1.
    pub handshakes: usize,
    /// Failed handshakes per second per source, after the burst. Default
    /// 8; 0 counts as 1, above a billion is no limit.
    pub failures_per_second: u32,
    /// Failed handshakes a source may owe at once. Default 32; 0 counts
    /// as 1. Each handshake in progress counts against it until it ends
    /// (it may yet fail), so to let one source have more in parallel,
    /// raise it with `handshakes`.
    pub failure_burst: u32,
    /// Failed handshakes node-wide from sources that have not completed
    /// a handshake lately ([`NodeFailureLimit`]; suggested:
    /// [`NodeFailureLimit::SUGGESTED`]). Default `None`: no node-wide
    /// limit, so a flood from many sources, each within its own limits,
    /// is bounded only by them. When set and spent, a connection from
    /// such a source is refused at accept
    /// ([`SourceRefusal::NodeFailing`]) while sources that completed a
    /// handshake within [`KNOWN_FOR`] are admitted: trusted peers dialing
    /// from known addresses keep connecting during a flood, one dialing
    /// from a new address waits until the flood's rate falls under the
    /// limit.
    pub node_failures: Option<NodeFailureLimit>,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            handshakes: 32,
            failures_per_second: 8,
            failure_burst: 32,
            node_failures: None,
        }
    }
}

/// Why [`Endpoint::accept_from`](crate::Endpoint::accept_from) refused a
/// connection ([`ConnectError::SourceLimited`](crate::ConnectError::SourceLimited)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceRefusal {
    /// `handshakes` of its source are in progress.
    #[error("too many handshakes in progress from this source")]
    Busy,
    /// Its source failed too many handshakes lately.
    #[error("too many failed handshakes from this source")]
    Failing,
    /// Its source has not completed a handshake lately, and such sources
    /// failed too many handshakes lately, node-wide
    /// ([`SourceLimits::node_failures`]).
    #[error("too many failed handshakes node-wide from sources not known")]
    NodeFailing,
}

/// The counts, and which connection counts against which source.
pub(crate) struct Sources {
    limit: usize,
    counts: HashMap<Source, usize, SeedableRandomState>,
    /// Each tracked connection's source, and whether it was a stranger
    /// to the node-wide limit when admitted (always `false` without one).
    by_conn: HashMap<ConnId, (Source, bool), SeedableRandomState>,
    /// Each source's failures, as a rate (`rate.rs`): each handshake in
    /// progress counts as a failure it may yet owe.
    charges: RateTable<Source>,
    /// The node-wide limit, if any.
    node: Option<NodeWide>,
}

impl Sources {
    pub(crate) fn new(limits: SourceLimits, seed: u64) -> Sources {
        Sources {
            limit: limits.handshakes.max(1),
            counts: HashMap::with_hasher(seeded(seed)),
            by_conn: HashMap::with_hasher(seeded(seed.rotate_left(17))),
            charges: RateTable::new(
                limits.failures_per_second,
                limits.failure_burst,
                MAX_FAILING_SOURCES,
                seed.rotate_left(41),
            ),
            node: limits
                .node_failures
                .map(|limit| NodeWide::new(limit, seed.rotate_left(53))),
        }
    }

    /// Whether one more connection from `source` may start a handshake
    /// at `now` (if so, [`Sources::track`] it).
    pub(crate) fn admit(&self, source: Source, now: Instant) -> Result<(), SourceRefusal> {
        let in_progress = self.counts.get(&source).copied().unwrap_or(0);
        if in_progress >= self.limit {
            Err(SourceRefusal::Busy)
        } else if !self.charges.has_room(&source, in_progress, now) {
            Err(SourceRefusal::Failing)
        } else if self.node.as_ref().is_some_and(|n| !n.admits(source, now)) {
            Err(SourceRefusal::NodeFailing)
        } else {
            Ok(())
        }
    }

    /// `conn`, admitted from `source` at `now`, counts until its
    /// handshake ends (and against the node-wide limit, if `source` is a
    /// stranger to it).
    pub(crate) fn track(&mut self, conn: ConnId, source: Source, now: Instant) {
        *self.counts.entry(source).or_insert(0) += 1;
        let stranger = match &mut self.node {
            Some(node) if !node.is_known(source, now) => {
                node.stranger_admitted();
                true
            }
            _ => false,
        };
        self.by_conn.insert(conn, (source, stranger));
    }

    /// `conn`'s handshake completed at `now` (inbound, the peer proven):
    /// it no longer counts as in progress, and its source is known to the
    /// node-wide limit from now on. Harmless for a connection that never
    /// counted.
    pub(crate) fn completed(&mut self, conn: ConnId, now: Instant) {
        let source = self.by_conn.get(&conn).map(|(source, _)| *source);
        self.ended(conn, false, now);
        if let (Some(source), Some(node)) = (source, &mut self.node) {
            node.completed(source, now);
        }
    }

    /// `conn`'s handshake ended at `now`: it no longer counts as in
    /// progress, and if `held` (the failure was its source's doing:
    /// `Ending::held_against_source`) its source is charged for it.
    /// Harmless for a connection that never counted.
    pub(crate) fn ended(&mut self, conn: ConnId, held: bool, now: Instant) {
        let Some((source, stranger)) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(node) = self.node.as_mut().filter(|_| stranger) {
            node.stranger_ended(held, now);
        }
        if let Some(n) = self.counts.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&source);
            }
        }
        if held {
            self.charges.charge(source, now);
        }
    }

    /// Handshakes in progress from `source` (tests).
    #[cfg(test)]
    fn in_progress(&self, source: Source) -> usize {
        self.counts.get(&source).copied().unwrap_or(0)
    }
}

/// Sources tracked for failed handshakes at most: past this many, each
/// with a charge too recent to be forgotten, a new source's failure is
/// not charged (a flood from that many addresses is beyond what a
/// per-source limit can stop; the table stays bounded in bytes, about
/// 40 bytes a source).
pub(crate) const MAX_FAILING_SOURCES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;
    use core::time::Duration;

    use super::*;

    fn source(s: &str) -> Source {
        Source::from(s.parse::<SocketAddr>().unwrap())
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
            node_failures: None,
        }
    }

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    #[test]
    fn a_source_at_its_limit_is_refused_until_one_ends() {
        let mut s = Sources::new(limits(2, 8, 32), 7);
        let a = source("127.0.0.1:1");
        let b = source("127.0.0.2:1");
        let conns = [1u64, 2, 3];
        let now = at(0);
        for conn in &conns[..2] {
            assert!(s.admit(a, now).is_ok());
            s.track(ConnId(*conn), a, now);
        }
        assert_eq!(s.in_progress(a), 2);
        assert_eq!(
            s.admit(a, now).err(),
            Some(SourceRefusal::Busy),
            "third from one source"
        );
        assert!(s.admit(b, now).is_ok(), "another source is not affected");
        s.ended(ConnId(conns[0]), false, now);
        s.ended(ConnId(conns[0]), false, now); // twice is harmless
        assert!(s.admit(a, now).is_ok());
        s.ended(ConnId(conns[2]), true, now); // never counted
        assert_eq!(s.in_progress(a), 1);
    }

    /// Admits a connection `conn` from `source` at `now` and ends its
    /// handshake, `held` against the source or not; whether it was
    /// admitted.
    fn attempt(s: &mut Sources, conn: u64, source: Source, held: bool, now: Instant) -> bool {
        if s.admit(source, now).is_err() {
            return false;
        }
        s.track(ConnId(conn), source, now);
        s.ended(ConnId(conn), held, now);
        true
    }

    #[test]
    fn failed_handshakes_are_a_burst_then_a_rate() {
        // 10 per second (one per 100 ms) after a burst of 3
        let mut s = Sources::new(limits(32, 10, 3), 7);
        let a = source("10.0.0.1:1");
        let b = source("10.0.0.2:1");
        for conn in 0..3 {
            assert!(attempt(&mut s, conn, a, true, at(0)));
        }
        assert_eq!(
            s.admit(a, at(0)).err(),
            Some(SourceRefusal::Failing),
            "the burst is spent"
        );
        assert_eq!(s.admit(a, at(99)).err(), Some(SourceRefusal::Failing));
        assert!(s.admit(b, at(0)).is_ok(), "another source is not affected");
        // one interval later there is room for exactly one more
        assert!(attempt(&mut s, 3, a, true, at(100)));
        assert_eq!(s.admit(a, at(100)).err(), Some(SourceRefusal::Failing));
        assert_eq!(s.admit(a, at(199)).err(), Some(SourceRefusal::Failing));
        // after burst / rate with no attempt the whole burst is back
        for conn in 10..13 {
            assert!(attempt(&mut s, conn, a, true, at(500)));
        }
        assert_eq!(s.admit(a, at(500)).err(), Some(SourceRefusal::Failing));
    }

    #[test]
    fn connections_in_parallel_get_no_more_than_the_burst() {
        // 32 connections at once, each admitted before any fails
        let mut s = Sources::new(limits(32, 10, 3), 7);
        let a = source("10.0.0.1:1");
        let mut admitted = 0;
        for conn in 0..32 {
            if s.admit(a, at(0)).is_ok() {
                s.track(ConnId(conn), a, at(0));
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "those in progress count against the burst");
        for conn in 0..3 {
            s.ended(ConnId(conn), true, at(0));
        }
        // over one second of attempts as fast as they come: the burst and
        // then one per interval, no more
        let admitted = (1..=1_000)
            .filter(|&ms| attempt(&mut s, 100 + ms, a, true, at(ms)))
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn an_ending_not_held_against_the_source_charges_nothing() {
        // a burst of 1 at one per second: without the refunds, the second
        // attempt within the second would be refused
        let mut s = Sources::new(limits(32, 1, 1), 7);
        let a = source("10.0.0.1:1");
        for conn in 0..10 {
            assert!(s.admit(a, at(conn)).is_ok(), "attempt {conn}");
            s.track(ConnId(conn), a, at(conn));
            s.ended(ConnId(conn), false, at(conn));
        }
        assert!(attempt(&mut s, 10, a, true, at(20)));
        assert_eq!(s.admit(a, at(20)).err(), Some(SourceRefusal::Failing));
    }

    #[test]
    fn a_success_between_failures_pays_for_none_of_them() {
        // one per second, burst 2. A handshake admitted at 0 is still in
        // progress at 5 s, when one fails; it then succeeds, and a second
        // fails: the burst is spent, whatever the success.
        let mut s = Sources::new(limits(32, 1, 2), 7);
        let a = source("10.0.0.1:1");
        assert!(s.admit(a, at(0)).is_ok());
        s.track(ConnId(1), a, at(0));
        assert!(attempt(&mut s, 2, a, true, at(5_000)));
        s.ended(ConnId(1), false, at(5_000));
        assert!(attempt(&mut s, 3, a, true, at(5_000)));
        assert_eq!(s.admit(a, at(5_000)).err(), Some(SourceRefusal::Failing));
        assert!(s.admit(a, at(6_000)).is_ok());
    }

    #[test]
    fn the_table_of_failing_sources_is_bounded_and_swept_at_most_once_a_window() {
        // one per second, burst 1: each source is remembered for a second
        let mut s = Sources::new(limits(32, 1, 1), 7);
        let v4 = |n: u32| Source::V4(n.to_be_bytes());
        for n in 0..MAX_FAILING_SOURCES as u32 {
            assert!(attempt(&mut s, u64::from(n), v4(n), true, at(0)));
        }
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        // full, and nothing is old enough to forget: a new source's
        // failures are not charged, the table does not grow
        let new = v4(u32::MAX);
        assert!(attempt(&mut s, 1 << 40, new, true, at(500)));
        assert!(attempt(&mut s, (1 << 40) + 1, new, true, at(500)));
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        assert_eq!(s.admit(v4(7), at(500)).err(), Some(SourceRefusal::Failing));
        // the sweep just done (at 500 ms) waits one window: at 1.2 s every
        // entry has expired, but no sweep runs yet
        assert!(attempt(&mut s, (1 << 40) + 2, new, true, at(1_200)));
        assert_eq!(s.charges.len(), MAX_FAILING_SOURCES);
        // at 1.5 s it runs, forgets them all, and charges the new source
        assert!(attempt(&mut s, (1 << 40) + 3, new, true, at(1_500)));
        assert_eq!(s.charges.len(), 1);
        assert_eq!(s.admit(new, at(1_500)).err(), Some(SourceRefusal::Failing));
        assert!(s.admit(v4(7), at(1_500)).is_ok());
    }

    /// What one step of the property does.
    #[derive(Debug, Clone)]
    enum Op {
        /// `ms` later, a connection from source `source` asks in.
        Admit { ms: u16, source: u8 },
        /// `ms` later, handshake number `pick` (modulo those in
        /// progress) ends, held against its source or not.
        End { ms: u16, pick: u8, held: bool },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..300u16, 0..2u8).prop_map(|(ms, source)| Op::Admit { ms, source }),
            (0..300u16, any::<u8>(), any::<bool>()).prop_map(|(ms, pick, held)| Op::End {
                ms,
                pick,
                held
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]
        /// Whatever the order of admissions, successes and failures: never
        /// more in progress per source than the limit, and the failures
        /// held against a source admitted within any `T` are at most
        /// `burst + T / interval`.
        #[test]
        fn the_limits_hold_for_any_sequence(
            handshakes in 1..6usize,
            per_second in 1..40u32,
            burst in 1..8u32,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut s = Sources::new(limits(handshakes, per_second, burst), 7);
            let interval = (Duration::from_secs(1) / per_second).as_nanos();
            let mut now = 0u64;
            let mut open: Vec<(u64, Source, Instant)> = Vec::new();
            let mut held: [Vec<Instant>; 2] = Default::default();
            for (conn, op) in (0u64..).zip(ops) {
                match op {
                    Op::Admit { ms, source } => {
                        now += u64::from(ms);
                        let src = Source::V4([10, 0, 0, source]);
                        if s.admit(src, at(now)).is_ok() {
                            s.track(ConnId(conn), src, at(now));
                            open.push((conn, src, at(now)));
                        }
                        let in_progress = open.iter().filter(|(_, o, _)| *o == src).count();
                        proptest::prop_assert!(in_progress <= handshakes);
                    }
                    Op::End { ms, pick, held: kept } => {
                        now += u64::from(ms);
                        if open.is_empty() {
                            continue;
                        }
                        let (conn, src, admitted) = open.remove(usize::from(pick) % open.len());
                        s.ended(ConnId(conn), kept, at(now));
                        if kept {
                            let list = &mut held[usize::from(src == Source::V4([10, 0, 0, 1]))];
                            list.push(admitted);
                            list.sort();
                            for i in 0..list.len() {
                                for j in i..list.len() {
                                    let span = list[j].saturating_duration_since(list[i]).as_nanos();
                                    let allowed = u128::from(burst) + span / interval;
                                    proptest::prop_assert!(
                                        (j - i + 1) as u128 <= allowed,
                                        "{} failures within {span} ns, {allowed} allowed",
                                        j - i + 1
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
