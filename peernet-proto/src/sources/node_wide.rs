//! The node-wide limit on failed handshakes ([`NodeFailureLimit`], off by
//! default): the per-source limits bound what one address costs, not
//! what many cost together. An untrusted peer that knows the PeerId
//! makes a version-2 responder do about 300 µs of X25519 and AEAD work
//! before it is refused; some 700 addresses at the per-source default
//! keep a core busy, and one host with an IPv6 /48 has 65,536 sources.
//!
//! With the limit on, the handshakes admitted from **strangers** (sources
//! that have not completed a handshake lately) that fail by their
//! source's doing are charged to one generic cell rate algorithm for the
//! whole node (`rate.rs`, one key), each stranger's handshake in progress
//! counting as a charge it may yet owe, as a source's do. When it is
//! spent, a new transport from a stranger is refused at accept, before a
//! byte is read ([`SourceRefusal::NodeFailing`](super::SourceRefusal)),
//! while a source in the table of **known** sources is admitted as
//! before (its own per-source limits still apply). Only an inbound
//! handshake that completes, that is a trusted peer proven, puts its
//! source in that table: a flood of strangers cannot flush it. The
//! table is bounded ([`MAX_KNOWN_SOURCES`]); a source is known for
//! [`KNOWN_FOR`] after its last completed handshake; when it is full, a
//! new source pushes out the one whose last handshake is the oldest.
//!
//! What it costs: during a flood, a trusted peer dialing from an address
//! the node has not seen it complete a handshake from lately (its first
//! connection, a new address, a table that overflowed) is refused at
//! accept like the flood, until the flood's rate falls under the limit.

use core::time::Duration;

use foldhash::fast::SeedableRandomState;
use hashbrown::HashMap;

use super::Source;
use crate::Instant;
use crate::rate::{RateTable, seeded};

/// A node-wide limit on failed handshakes from sources that have not
/// completed a handshake lately (`SourceLimits::node_failures`): `burst`
/// at once, then `per_second`. 0 counts as 1 in either (the strictest
/// limit there is, not "off": `None` is off); a rate above a billion a
/// second is no limit.
///
/// A suggested value is [`NodeFailureLimit::SUGGESTED`]: 200 a second
/// after 400, about 60 ms of X25519 and AEAD work a second at the
/// ~300 µs a refused version-2 INIT costs (6 % of one core). The price:
/// while a flood keeps strangers' failures above that rate, a trusted
/// peer dialing from an address not known is refused at accept with it.
///
/// ```
/// use peernet_proto::{NodeFailureLimit, SourceLimits};
/// let mut limits = SourceLimits::default();
/// assert_eq!(limits.node_failures, None, "off by default");
/// limits.node_failures = Some(NodeFailureLimit::new(200, 400));
/// assert_eq!(limits.node_failures, Some(NodeFailureLimit::SUGGESTED));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeFailureLimit {
    /// Failed handshakes a second from strangers, node-wide, after the
    /// burst. 0 counts as 1.
    pub per_second: u32,
    /// Failed handshakes from strangers the node may owe at once; each
    /// stranger's handshake in progress counts against it until it ends.
    /// 0 counts as 1.
    pub burst: u32,
}

impl NodeFailureLimit {
    /// A suggested limit: 200 a second after a burst of 400.
    pub const SUGGESTED: NodeFailureLimit = NodeFailureLimit::new(200, 400);

    /// `per_second` after a burst of `burst` (0 counts as 1 in either).
    pub const fn new(per_second: u32, burst: u32) -> NodeFailureLimit {
        NodeFailureLimit { per_second, burst }
    }
}

/// Sources known at most (about 40 bytes each: 160 KiB in all).
pub const MAX_KNOWN_SOURCES: usize = 4 * 1024;

/// How long a source stays known after its last completed handshake:
/// a week.
pub const KNOWN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// The node-wide failure rate of strangers, and the known sources.
pub(super) struct NodeWide {
    failures: RateTable<()>,
    /// Handshakes admitted from strangers still in progress: each counts
    /// as a failure the node may yet owe.
    pending: usize,
    /// Each known source's last completed handshake.
    known: HashMap<Source, Instant, SeedableRandomState>,
}

impl NodeWide {
    pub(super) fn new(limit: NodeFailureLimit, seed: u64) -> NodeWide {
        NodeWide {
            failures: RateTable::new(limit.per_second, limit.burst, 1, seed),
            pending: 0,
            known: HashMap::with_hasher(seeded(seed.rotate_left(23))),
        }
    }

    /// Whether `source` completed a handshake within [`KNOWN_FOR`] of
    /// `now` (and is still in the table).
    pub(super) fn is_known(&self, source: Source, now: Instant) -> bool {
        self.known
            .get(&source)
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_FOR)
    }

    /// Whether a connection from `source` may be admitted at `now`: a
    /// known source always, a stranger while the node-wide rate has room.
    pub(super) fn admits(&self, source: Source, now: Instant) -> bool {
        self.is_known(source, now) || self.failures.has_room(&(), self.pending, now)
    }

    /// A stranger's handshake was admitted.
    pub(super) fn stranger_admitted(&mut self) {
        self.pending += 1;
    }

    /// A stranger's handshake ended at `now`, charged if `held`.
    pub(super) fn stranger_ended(&mut self, held: bool, now: Instant) {
        self.pending = self.pending.saturating_sub(1);
        if held {
            self.failures.charge((), now);
        }
    }

    /// `source` completed a handshake at `now`: it is known from now on.
    /// In a full table the source whose last handshake is the oldest
    /// makes room (a pass over at most [`MAX_KNOWN_SOURCES`], only when a
    /// trusted peer proves itself from a source not in the table).
    pub(super) fn completed(&mut self, source: Source, now: Instant) {
        if let Some(at) = self.known.get_mut(&source) {
            *at = now;
            return;
        }
        if self.known.len() >= MAX_KNOWN_SOURCES {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(s, _)| *s);
            if let Some(oldest) = oldest {
                self.known.remove(&oldest);
            }
        }
        self.known.insert(source, now);
    }

    /// Sources known (tests).
    #[cfg(test)]
    pub(super) fn known_len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SourceLimits, SourceRefusal, Sources};
    use super::*;
    use crate::ConnId;

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    fn v4(n: u32) -> Source {
        Source::V4(n.to_be_bytes())
    }

    /// Per-source limits that never bite here, and `per_second` after
    /// `burst` node-wide.
    fn sources(per_second: u32, burst: u32) -> Sources {
        let limits = SourceLimits {
            failures_per_second: u32::MAX,
            failure_burst: u32::MAX,
            node_failures: Some(NodeFailureLimit::new(per_second, burst)),
            ..SourceLimits::default()
        };
        Sources::new(limits, 7)
    }

    /// Admits `conn` from `source` at `now` and ends its handshake:
    /// failed by its source's doing, or completed. Whether it was
    /// admitted, or why not.
    fn attempt(
        s: &mut Sources,
        conn: u64,
        source: Source,
        ok: bool,
        now: Instant,
    ) -> Result<(), SourceRefusal> {
        s.admit(source, now)?;
        s.track(ConnId(conn), source, now);
        match ok {
            true => s.completed(ConnId(conn), now),
            false => s.ended(ConnId(conn), true, now),
        }
        Ok(())
    }

    #[test]
    fn strangers_in_parallel_get_no_more_than_the_burst() {
        let mut s = sources(10, 3);
        let admitted = (0..32)
            .filter(|&n| {
                let ok = s.admit(v4(n), at(0)).is_ok();
                if ok {
                    s.track(ConnId(u64::from(n)), v4(n), at(0));
                }
                ok
            })
            .count();
        assert_eq!(admitted, 3, "those in progress count against the burst");
        assert_eq!(s.admit(v4(99), at(0)), Err(SourceRefusal::NodeFailing));
        // one that ends unheld gives its place back; one held keeps it
        s.ended(ConnId(0), false, at(0));
        s.ended(ConnId(1), true, at(0));
        assert!(s.admit(v4(99), at(0)).is_ok());
    }

    #[test]
    fn a_known_source_is_admitted_and_its_failures_are_not_the_nodes() {
        let mut s = sources(1, 2);
        let known = v4(1);
        assert_eq!(attempt(&mut s, 0, known, true, at(0)), Ok(()));
        for n in 0..2 {
            assert_eq!(
                attempt(&mut s, 10 + n, v4(100 + n as u32), false, at(0)),
                Ok(())
            );
        }
        assert_eq!(
            attempt(&mut s, 20, v4(200), false, at(0)),
            Err(SourceRefusal::NodeFailing)
        );
        // the known source fails too: admitted, and the node's rate does
        // not pay for it (one second later a stranger has room again)
        for n in 0..5 {
            assert_eq!(attempt(&mut s, 30 + n, known, false, at(0)), Ok(()));
        }
        assert_eq!(attempt(&mut s, 40, v4(201), false, at(1_000)), Ok(()));
        // known for a week after its last completed handshake
        let week = KNOWN_FOR.as_millis() as u64;
        assert!(s.admit(known, at(999 + week - 1)).is_ok());
        // (two strangers in progress: the burst is taken)
        s.track(ConnId(50), v4(202), at(1_500));
        s.track(ConnId(51), v4(203), at(1_500));
        assert_eq!(s.admit(known, at(week)), Err(SourceRefusal::NodeFailing));
    }

    #[test]
    fn the_known_sources_are_bounded_and_the_least_recent_makes_room() {
        let mut s = sources(1, 1);
        for n in 0..MAX_KNOWN_SOURCES as u32 {
            let now = at(u64::from(n));
            assert_eq!(attempt(&mut s, u64::from(n), v4(n), true, now), Ok(()));
        }
        let node = |s: &Sources| s.node.as_ref().map_or(0, NodeWide::known_len);
        assert_eq!(node(&s), MAX_KNOWN_SOURCES);
        // source 0 completes again: the least recent is now source 1
        let later = at(1 << 20);
        assert_eq!(attempt(&mut s, 1 << 32, v4(0), true, later), Ok(()));
        let new = v4(u32::MAX);
        assert_eq!(attempt(&mut s, (1 << 32) + 1, new, true, later), Ok(()));
        assert_eq!(node(&s), MAX_KNOWN_SOURCES);
        // spend the node's allowance: who is still known is admitted
        assert_eq!(
            attempt(&mut s, (1 << 32) + 2, v4(1 << 30), false, later),
            Ok(())
        );
        assert_eq!(s.admit(v4(1), later), Err(SourceRefusal::NodeFailing));
        for known in [v4(0), v4(2), new] {
            assert!(s.admit(known, later).is_ok(), "{known:?}");
        }
    }

    #[test]
    fn without_the_limit_nothing_is_kept() {
        let mut s = Sources::new(SourceLimits::default(), 7);
        assert!(s.node.is_none());
        for n in 0..100 {
            assert_eq!(
                attempt(&mut s, u64::from(n), v4(n), n % 2 == 0, at(0)),
                Ok(())
            );
        }
    }
}
