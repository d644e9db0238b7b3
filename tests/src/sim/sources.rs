//! Source addresses and the per-source limits at accept, as the model
//! checks them (invariant `source_limits_hold`).
//!
//! Every dialer has a source address: a node its own, a raw intruder one
//! of a few it shares with other intruders (by its link's number), and a
//! flood (`Sim::flood`) one of its own. Each node life keeps a
//! [`Ledger`] of what it admitted from each source: the handshakes in
//! progress, and the admission instants of those that failed by the
//! source's doing. The policy is restated here from `SourceLimits`'
//! documentation ([`held_against_source`]), not taken from the core.

use std::collections::BTreeMap;

use peernet_proto::{ConnId, HandshakeError, Instant, RejectCode, Source, SourceLimits};

use super::intruder::Attack;
use super::invariants::Invariant;
use super::node::NodeIx;
use super::{Ev, Sim};

/// Sources raw intruders share, by link number.
const INTRUDER_SOURCES: u64 = 3;

/// The source node `ix` dials from.
pub fn of_node(ix: NodeIx) -> Source {
    let [.., hi, lo] = (ix as u32).to_be_bytes();
    Source::V4([10, 0, hi, lo])
}

/// The source a raw intruder on link number `link` dials from.
pub fn of_intruder(link: u64) -> Source {
    Source::V4([203, 0, 113, (link % INTRUDER_SOURCES) as u8])
}

/// The source floods come from (no other dialer uses it).
pub fn of_flood() -> Source {
    Source::V4([198, 51, 100, 1])
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
    /// Admitted connections whose handshake has not ended: their source
    /// and when they were admitted (node clock).
    open: BTreeMap<ConnId, (Source, Instant)>,
    /// Per source, the admission instants of the handshakes that failed
    /// by its doing, in order.
    held: BTreeMap<Source, Vec<Instant>>,
}

impl Ledger {
    /// `conn` was admitted from `source` at `at`: what is wrong, if the
    /// source now has more handshakes in progress than the limit.
    pub fn admitted(
        &mut self,
        conn: ConnId,
        source: Source,
        at: Instant,
        limits: &SourceLimits,
    ) -> Result<(), String> {
        self.open.insert(conn, (source, at));
        let in_progress = self.open.values().filter(|(s, _)| *s == source).count();
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
        let Some((source, at)) = self.open.remove(&conn) else {
            return Ok(());
        };
        if !error.is_some_and(held_against_source) {
            return Ok(());
        }
        let held = self.held.entry(source).or_default();
        let pos = held.partition_point(|t| *t <= at);
        held.insert(pos, at);
        // every window that holds the new failure
        let burst = u64::from(limits.failure_burst.max(1));
        let interval = 1_000_000_000 / u64::from(limits.failures_per_second.max(1));
        for first in 0..=pos {
            for last in pos..held.len() {
                let span = held[last].saturating_duration_since(held[first]);
                let allowed = burst + span.as_nanos() as u64 / interval.max(1);
                let count = (last - first + 1) as u64;
                if count > allowed {
                    return Err(format!(
                        "{count} failed handshakes from {source:?} admitted within {span:?}, \
                         at most {allowed} allowed ({} a second after {burst})",
                        limits.failures_per_second
                    ));
                }
            }
        }
        Ok(())
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
    /// nobody trusts, one every `every` ns, all from [`of_flood`].
    pub(super) fn flood(&mut self, victim: NodeIx, n: u32, every: u64) {
        self.counters.floods += 1;
        self.schedule(
            self.now,
            Ev::Flood {
                victim,
                left: n,
                every,
            },
        );
    }

    /// One handshake of a flood, and the next one scheduled.
    pub(super) fn flood_step(&mut self, victim: NodeIx, left: u32, every: u64) {
        if left == 0 {
            return;
        }
        self.attack_from(victim, Attack::UntrustedHello, Some(of_flood()));
        let left = left - 1;
        if left > 0 {
            self.schedule(
                self.now + every,
                Ev::Flood {
                    victim,
                    left,
                    every,
                },
            );
        }
    }
}
