//! How often a trusted peer establishes inbound connections, as the model
//! checks it (invariant `peer_connects_hold`), and the workload that
//! tries it: a byzantine peer holding a trusted key that reconnects in a
//! loop.
//!
//! Each node life keeps a [`Ledger`] per dialer identity it accepted
//! from (the simulation knows who dials on each link: a node, or the
//! byzantine key): the accept instants of the handshakes in progress, the
//! most in progress at once, and the accept instants of those that
//! established. The bound is restated from `Config::peer_connects`' docs
//! (each established inbound connection is charged, a handshake is
//! refused while the peer owes more than its burst allows), not taken
//! from the core: of the connections established by `e` and accepted
//! from `s` on, at most `burst + (e − s) × per_second`, plus the
//! handshakes that were in progress at once (admitted before the ones
//! before them were charged).

use std::collections::BTreeMap;

use peernet_proto::{ConnId, Instant, PeerConnectLimits, PeerId};

use super::intruder::{Attack, Byzantine};
use super::invariants::Invariant;
use super::node::NodeIx;
use super::sources::allowance;
use super::{Ev, Sim};

/// What one node life saw of each dialer identity's inbound handshakes.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Handshakes in progress: whose, accepted when.
    open: BTreeMap<ConnId, (PeerId, Instant)>,
    /// Per identity: in progress now, and the most at once.
    in_progress: BTreeMap<PeerId, (usize, usize)>,
    /// Per identity: the accept instants of its established connections,
    /// in the order they established.
    established: BTreeMap<PeerId, Vec<Instant>>,
}

impl Ledger {
    /// `conn` was accepted at `at` from a dialer holding `peer`'s key.
    pub fn accepted(&mut self, conn: ConnId, peer: PeerId, at: Instant) {
        self.open.insert(conn, (peer, at));
        let (now, most) = self.in_progress.entry(peer).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }

    /// `conn`'s handshake ended at `at`, established with `peer` if
    /// `Some`: what is wrong, if that breaks the bound.
    pub fn ended(
        &mut self,
        conn: ConnId,
        established: Option<PeerId>,
        at: Instant,
        limits: &PeerConnectLimits,
    ) -> Result<(), String> {
        let Some((dialer, accepted)) = self.open.remove(&conn) else {
            return Ok(());
        };
        let most = match self.in_progress.get_mut(&dialer) {
            Some((now, most)) => {
                *now -= 1;
                *most
            }
            None => 0,
        };
        let Some(peer) = established else {
            return Ok(());
        };
        let list = self.established.entry(peer).or_default();
        list.push(accepted);
        let burst = u64::from(limits.burst);
        for &from in list.iter() {
            let count = list.iter().filter(|s| **s >= from).count() as u64;
            let span = at.as_nanos().saturating_sub(from.as_nanos());
            let bound = allowance(limits.per_second, burst, span).saturating_add(most as u64);
            if count > bound {
                return Err(format!(
                    "{peer}: {count} inbound connections accepted from {:.3}s established by {:.3}s, at most {bound} allowed ({burst} + {} a second, {most} in progress at once)",
                    from.as_nanos() as f64 / 1e9,
                    at.as_nanos() as f64 / 1e9,
                    limits.per_second,
                ));
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Node `n` accepted `conn` on a link whose dialer holds `peer`'s key
    /// (a node, or the byzantine peer).
    pub(super) fn reconnect_accepted(&mut self, n: NodeIx, conn: ConnId, peer: Option<PeerId>) {
        if let Some(peer) = peer {
            let at = self.nodes[n].clock(self.now);
            self.nodes[n].reconnects.accepted(conn, peer, at);
        }
    }

    /// Node `n`'s handshake on `conn` ended, established with `peer` if
    /// `Some`: the peer's connections are checked.
    pub(super) fn reconnect_ended(&mut self, n: NodeIx, conn: ConnId, peer: Option<PeerId>) {
        let at = self.nodes[n].clock(self.now);
        let limits = self.cfg.endpoint.peer_connects;
        if let Err(detail) = self.nodes[n].reconnects.ended(conn, peer, at, &limits) {
            self.fail(Invariant::PeerConnectsHold, format!("n{n}: {detail}"));
        }
    }

    /// Starts the byzantine peer reconnecting to `victim` in a loop: `n`
    /// handshakes that each establish and then say nothing, one every
    /// `every` ns, from one intruder address.
    pub(super) fn reconnect_flood(&mut self, victim: NodeIx, n: u32, every: u64) {
        self.counters.reconnect_floods += 1;
        self.schedule(
            self.now,
            Ev::Reconnect {
                victim,
                left: n,
                every,
            },
        );
    }

    /// One reconnect of the byzantine peer, and the next one scheduled.
    pub(super) fn reconnect_step(&mut self, victim: NodeIx, left: u32, every: u64) {
        if left == 0 || !self.nodes[victim].is_up() {
            return;
        }
        let from = super::sources::of_intruder(0);
        self.attack_from(victim, Attack::Byzantine(Byzantine::Mute), Some(from));
        if left > 1 {
            self.schedule(
                self.now + every,
                Ev::Reconnect {
                    victim,
                    left: left - 1,
                    every,
                },
            );
        }
    }
}
