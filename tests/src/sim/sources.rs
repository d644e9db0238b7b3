//! Source addresses and the per-source and node-wide limits at accept,
//! as the model checks them (invariant `source_limits_hold`).
//!
//! Every dialer has a source address: a node its own (IPv4 for even
//! nodes, IPv6 for odd ones), a raw intruder one of a few it shares with
//! other intruders (by its link's number; one of them also arrives in its
//! IPv4-mapped IPv6 form), and a flood (`Sim::flood`) its own: every other
//! flood one IPv4 address, the others a new IPv6 address of one /64 for
//! each handshake, or (in seeds with the node-wide limit) of a /64 of its
//! own for each. The endpoint is told `Source::from(address)`. Each node
//! life keeps a [`Ledger`] of what it admitted from each source: the
//! handshakes in progress, and the admission instants of those that failed
//! by the source's doing; with the node-wide limit
//! (`SourceLimits::node_failures`), also the sources known (an inbound
//! handshake from them completed) and the admission instants of the
//! failures of strangers, node-wide. The policy, and how addresses group into
//! sources ([`Group`]), are restated here from `SourceLimits`' and
//! `Source`'s documentation, not taken from the core. (The core forgets
//! known sources after a week or when 4,096 are known: never within a run,
//! and forgetting only makes it stricter than the ledger.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use peernet_proto::{ConnId, HandshakeError, Instant, RejectCode, SourceLimits};

use super::intruder::Attack;
use super::invariants::Invariant;
use super::node::NodeIx;
use super::{Ev, Sim};

/// Sources raw intruders share, by link number.
const INTRUDER_SOURCES: u64 = 3;

/// The address node `ix` dials from.
pub fn of_node(ix: NodeIx) -> IpAddr {
    let [.., hi, lo] = (ix as u32).to_be_bytes();
    if ix.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::new(10, 0, hi, lo))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, ix as u16, 0, 0, 0, 1))
    }
}

/// The address a raw intruder on link number `link` dials from: one of
/// three, the first of them in both its forms.
pub fn of_intruder(link: u64) -> IpAddr {
    let v4 = Ipv4Addr::new(203, 0, 113, (link % INTRUDER_SOURCES) as u8);
    match link % (2 * INTRUDER_SOURCES) {
        INTRUDER_SOURCES => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => IpAddr::V4(v4),
    }
}

/// The address handshake `left` of flood number `flood` comes from (no
/// other dialer uses these): odd floods one IPv4 address, even ones an
/// address of their own /64 that changes with every handshake, or if
/// `spread`, an address of a /64 of its own for each handshake (a /48:
/// 65,536 sources).
pub fn of_flood(flood: u64, left: u32, spread: bool) -> IpAddr {
    if !flood.is_multiple_of(2) {
        return IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    }
    let host = (u64::from(left) ^ flood).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let [a, b, c, d] = [host >> 48, host >> 32, host >> 16, host].map(|h| h as u16);
    let subnet = if spread { a ^ b ^ c ^ d ^ 1 } else { 0 };
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xf100, subnet, a, b, c, d))
}

/// How addresses count as one source, restated from `Source`'s docs: an
/// IPv4 address is a source, in either form; an IPv6 address counts by
/// its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 /64: the address with its last 64 bits zeroed.
    V6(Ipv6Addr),
}

impl From<IpAddr> for Group {
    fn from(ip: IpAddr) -> Group {
        match ip {
            IpAddr::V4(v4) => Group::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Group::V4(v4),
                None => Group::V6(Ipv6Addr::from(u128::from(v6) >> 64 << 64)),
            },
        }
    }
}

/// Whether a failed inbound handshake counts against its source: every
/// failure but those the node caused (`busy`, an abandoned handshake, a
/// connection superseded).
pub fn held_against_source(error: &HandshakeError) -> bool {
    !matches!(
        error,
        HandshakeError::Refused(RejectCode::Busy)
            | HandshakeError::Abandoned
            | HandshakeError::Superseded
    )
}

/// What one node life admitted from each source.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Admitted connections whose handshake has not ended: their source,
    /// when they were admitted (node clock), and whether their source was
    /// a stranger to the node-wide limit then (always `false` without one).
    open: BTreeMap<ConnId, (Group, Instant, bool)>,
    /// Per source, the admission instants of the handshakes that failed
    /// by its doing, in order.
    held: BTreeMap<Group, Vec<Instant>>,
    /// Sources an inbound handshake from completed (`Connected`, or a
    /// completed handshake that lost to another connection).
    known: BTreeSet<Group>,
    /// The admission instants of the strangers' handshakes that failed by
    /// their source's doing, node-wide, in order.
    strangers_held: Vec<Instant>,
}

impl Ledger {
    /// `conn` was admitted from `addr` at `at`: what is wrong, if its
    /// source now has more handshakes in progress than the limit.
    pub fn admitted(
        &mut self,
        conn: ConnId,
        addr: IpAddr,
        at: Instant,
        limits: &SourceLimits,
    ) -> Result<(), String> {
        let source = Group::from(addr);
        let stranger = limits.node_failures.is_some() && !self.known.contains(&source);
        self.open.insert(conn, (source, at, stranger));
        let in_progress = self.open.values().filter(|(s, ..)| *s == source).count();
        if in_progress > limits.handshakes.max(1) {
            return Err(format!(
                "{in_progress} handshakes in progress from {source:?}, limit {}",
                limits.handshakes
            ));
        }
        Ok(())
    }

    /// `conn`'s handshake ended, with `error` if it failed: what is wrong,
    /// if the failures held against its source now break the rate.
    pub fn ended(
        &mut self,
        conn: ConnId,
        error: Option<&HandshakeError>,
        limits: &SourceLimits,
    ) -> Result<(), String> {
        let Some((source, at, stranger)) = self.open.remove(&conn) else {
            return Ok(());
        };
        if matches!(error, None | Some(HandshakeError::Superseded)) {
            self.known.insert(source);
        }
        if !error.is_some_and(held_against_source) {
            return Ok(());
        }
        let held = self.held.entry(source).or_default();
        within_rate(held, at, limits.failures_per_second, limits.failure_burst)
            .map_err(|e| format!("{e} from {source:?}"))?;
        match limits.node_failures {
            Some(node) if stranger => {
                within_rate(&mut self.strangers_held, at, node.per_second, node.burst)
                    .map_err(|e| format!("{e} from sources not known, node-wide"))
            }
            _ => Ok(()),
        }
    }
}

/// Adds a failure admitted `at` to `held` (admission instants, in order)
/// and checks every window that holds it: what is wrong, if one holds
/// more than `per_second` after `burst` allow.
fn within_rate(
    held: &mut Vec<Instant>,
    at: Instant,
    per_second: u32,
    burst: u32,
) -> Result<(), String> {
    let pos = held.partition_point(|t| *t <= at);
    held.insert(pos, at);
    let burst = u64::from(burst.max(1));
    for first in 0..=pos {
        for last in pos..held.len() {
            let span = held[last].saturating_duration_since(held[first]);
            let allowed = allowance(per_second, burst, span.as_nanos() as u64);
            let count = (last - first + 1) as u64;
            if count > allowed {
                return Err(format!(
                    "{count} failed handshakes admitted within {span:?}, \
                     at most {allowed} allowed ({per_second} a second after {burst})"
                ));
            }
        }
    }
    Ok(())
}

/// The most a rate limit of `per_second` after a burst of `burst` admits
/// within `span` ns (a generic cell rate algorithm, as `SourceLimits` and
/// `PeerConnectLimits` document it): the burst and one more per
/// interval. A rate above a billion a second (a zero interval) is no
/// limit.
pub fn allowance(per_second: u32, burst: u64, span: u64) -> u64 {
    match 1_000_000_000 / u64::from(per_second.max(1)) {
        0 => u64::MAX,
        interval => burst.max(1) + span / interval,
    }
}

impl Sim {
    /// Node `n`'s handshake on `conn` ended, with `error` if it failed:
    /// its source's ledger is checked.
    pub(super) fn source_handshake_ended(
        &mut self,
        n: NodeIx,
        conn: ConnId,
        error: Option<&HandshakeError>,
    ) {
        let limits = self.cfg.endpoint.source_limits;
        if let Err(detail) = self.nodes[n].sources.ended(conn, error, &limits) {
            self.fail(Invariant::SourceLimitsHold, format!("n{n}: {detail}"));
        }
    }

    /// Starts a flood at `victim`: `n` well-formed handshakes under a key
    /// nobody trusts, one every `every` ns, from [`of_flood`].
    pub(super) fn flood(&mut self, victim: NodeIx, n: u32, every: u64) {
        self.counters.floods += 1;
        let flood = self.counters.floods;
        self.schedule(
            self.now,
            Ev::Flood {
                victim,
                flood,
                left: n,
                every,
            },
        );
    }

    /// One handshake of flood number `flood`, and the next one scheduled.
    pub(super) fn flood_step(&mut self, victim: NodeIx, flood: u64, left: u32, every: u64) {
        if left == 0 {
            return;
        }
        let spread = self.cfg.endpoint.source_limits.node_failures.is_some();
        let from = of_flood(flood, left, spread);
        self.attack_from(victim, Attack::UntrustedHello, Some(from));
        let left = left - 1;
        if left > 0 {
            self.schedule(
                self.now + every,
                Ev::Flood {
                    victim,
                    flood,
                    left,
                    every,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use peernet_proto::Source;

    use super::{Group, of_flood, of_intruder, of_node};

    /// The ledger's grouping and the core's agree on which addresses are
    /// one source, around every boundary they draw (the /64, the mapped
    /// form) and on every address the simulation uses.
    #[test]
    fn the_ledger_groups_as_the_core_does() {
        let v6 = |bits: u128| IpAddr::V6(Ipv6Addr::from(bits));
        let net: u128 = 0x2001_0db8_f100_0000 << 64;
        let mut addrs = vec![
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
            "::1".parse().unwrap(),
            v6(net),
            v6(net | 1),
            v6(net | (1 << 63)),
            v6(net | u128::from(u64::MAX)),
            v6(net | (1 << 64)),
            v6(net - 1),
        ];
        addrs.extend((0..8).map(of_node));
        addrs.extend((0..8).map(of_intruder));
        for spread in [false, true] {
            addrs.extend((0..4).flat_map(|f| (0..4).map(move |l| of_flood(f, l, spread))));
        }
        for a in &addrs {
            for b in &addrs {
                assert_eq!(
                    Group::from(*a) == Group::from(*b),
                    Source::from(*a) == Source::from(*b),
                    "{a} and {b}"
                );
            }
        }
        // the boundaries are where they should be
        assert_eq!(Group::from(v6(net)), Group::from(v6(net | (1 << 63))));
        assert_ne!(Group::from(v6(net)), Group::from(v6(net | (1 << 64))));
        assert_eq!(Group::from(of_intruder(0)), Group::from(of_intruder(3)));
        assert_ne!(of_intruder(0), of_intruder(3));
    }
}
