//! The random workload: what the applications and the world do to the
//! nodes, one action per tick.

use std::collections::BTreeSet;
use std::time::Duration;

use peernet_proto::{CallError, CallId, PeerId};

use super::intruder;
use super::net::LinkId;
use super::node::{self, Exposed, HANDLES, NodeIx, NodeState, PendingCall, Role};
use super::rng::SimRng;
use super::{Ev, Owner, Phase, Sim};

/// A random exposure rule over `peers`.
pub fn random_exposure(rng: &mut SimRng, peers: &[PeerId]) -> Exposed {
    if rng.chance(0.7) {
        Exposed::Anyone
    } else {
        Exposed::Only(peers.iter().filter(|_| rng.chance(0.5)).copied().collect())
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Call,
    Burst,
    Send,
    Cancel,
    Expose,
    Unexpose,
    Pair,
    Unpair,
    Dial,
    SimultaneousDial,
    Disconnect,
    Shutdown,
    Crash,
    Reset,
    HalfOpen,
    Partition,
    Stall,
    ClockStep,
    RevokeMidCall,
    TrustChangeMidHandshake,
    Attack,
    TamperRecord,
}

impl Sim {
    /// One workload action, chosen by weight (only calls, sends and
    /// cancels in the quiet phase).
    pub(super) fn workload_tick(&mut self) {
        use Action::*;
        let f = self.cfg.workload.faults;
        let a = self.cfg.workload.attacks;
        let table: &[(Action, u32)] = if self.phase == Phase::Quiet {
            &[(Call, 30), (Burst, 2), (Send, 6), (Cancel, 3)]
        } else {
            &[
                (Call, 30),
                (Burst, 2),
                (Send, 6),
                (Cancel, 3),
                (Expose, 3),
                (Unexpose, 2),
                (Pair, 2),
                (Unpair, 2),
                (Dial, 8),
                (SimultaneousDial, 3),
                (Disconnect, 1),
                (Shutdown, 1),
                (Crash, f),
                (Reset, 2 * f),
                (HalfOpen, f),
                (Partition, f),
                (Stall, 3 * f),
                (ClockStep, f),
                (RevokeMidCall, 2 * f),
                (TrustChangeMidHandshake, f),
                (Attack, 4 * a),
                (TamperRecord, f),
            ]
        };
        let weights: Vec<u32> = table.iter().map(|(_, w)| *w).collect();
        let action = table[self.rng.weighted(&weights)].0;
        match action {
            Call => self.random_call(),
            Burst => self.burst(),
            Send => self.random_send(),
            Cancel => self.random_cancel(),
            Expose => {
                if let Some((n, handle)) = self.random_honest_handle() {
                    let peers = self.honest_peers();
                    let exposed = random_exposure(&mut self.rng, &peers);
                    self.expose(n, handle, exposed);
                }
            }
            Unexpose => {
                if let Some((n, handle)) = self.random_honest_handle() {
                    self.unexpose(n, handle);
                }
            }
            Pair => {
                if let Some((n, m)) = self.random_truster_and_peer() {
                    // Mostly honest peers; sometimes an intruder.
                    let peer = self.nodes[m].peer;
                    if self.nodes[m].role == Role::Honest || self.rng.chance(0.2) {
                        self.pair(n, peer);
                    }
                }
            }
            Unpair => {
                if let Some((n, m)) = self.random_truster_and_peer() {
                    let peer = self.nodes[m].peer;
                    self.unpair(n, peer);
                    self.maybe_repair(n, peer);
                }
            }
            Dial => self.random_dial(),
            SimultaneousDial => {
                if let Some((x, y)) = self.random_mutual_pair() {
                    let (px, py) = (self.nodes[x].peer, self.nodes[y].peer);
                    tr!(self, "simultaneous dial n{x} <-> n{y}");
                    self.dial(x, y, Some(py));
                    self.dial(y, x, Some(px));
                }
            }
            Disconnect => {
                if let Some(n) = self.random_node(None)
                    && let Some(peer) = self.random_peer_of(n)
                {
                    self.disconnect(n, peer);
                }
            }
            Shutdown => {
                if let Some(n) = self.random_node(None) {
                    let close = Duration::from_millis(self.rng.range(0, 500));
                    let back = Duration::from_millis(self.rng.range(300, 3_000));
                    self.shutdown(n, close, Some(back));
                }
            }
            Crash => {
                if let Some(n) = self.random_node(None) {
                    let back = Duration::from_millis(self.rng.range(100, 4_000));
                    self.crash(n, Some(back));
                }
            }
            Reset => {
                if let Some(l) = self.random_link() {
                    self.reset(l);
                }
            }
            HalfOpen => {
                if let Some((l, side)) = self.random_link_side() {
                    self.half_open(l, side);
                }
            }
            Partition => {
                if let Some(l) = self.random_link() {
                    self.partition(l);
                }
            }
            Stall => {
                if let Some((l, dir)) = self.random_link_side() {
                    let d = Duration::from_millis(self.rng.range(100, 4_000));
                    self.stall(l, dir, d);
                }
            }
            ClockStep => {
                if let Some(n) = self.random_node(None) {
                    let by = Duration::from_millis(self.rng.range(500, 20_000));
                    self.clock_step(n, by);
                }
            }
            RevokeMidCall => self.revoke_mid_call(),
            TamperRecord => {
                if let Some((l, dir)) = self.random_link_side() {
                    let how = [
                        super::Tamper::Forged,
                        super::Tamper::Replayed,
                        super::Tamper::Short,
                    ][self.rng.index(3)];
                    self.tamper(l, dir, how);
                }
            }
            TrustChangeMidHandshake => {
                if let Some((x, y)) = self.random_mutual_pair() {
                    let py = self.nodes[y].peer;
                    if self.dial(x, y, Some(py)).is_some() {
                        self.counters.faults += 1;
                        // One side stops trusting the other while the
                        // handshake runs (it takes about three latencies).
                        let (who, whom) = if self.rng.chance(0.5) { (x, y) } else { (y, x) };
                        let peer = self.nodes[whom].peer;
                        let at = self.now + self.rng.range(0, 80_000_000);
                        self.schedule(
                            at,
                            Ev::Trust {
                                node: who,
                                peer,
                                trusted: false,
                            },
                        );
                        tr!(self, "n{who} will unpair n{whom} during the handshake");
                        self.maybe_repair(who, peer);
                    }
                }
            }
            Attack => {
                if let Some(victim) = self.random_node(Some(Role::Honest)) {
                    if self.rng.chance(0.06) {
                        // A flood from one source address: well-formed
                        // handshakes under an untrusted key, one every
                        // 2-20 ms, more than the source's burst.
                        let n = self.rng.range(24, 48) as u32;
                        let every = self.rng.range(2_000_000, 20_000_000);
                        tr!(self, "flood of {n} untrusted handshakes at n{victim}");
                        self.flood(victim, n, every);
                    } else if self.rng.chance(0.15) {
                        // A swarm of stalled handshakes: fills the
                        // victim's handshake slots (a newer connection
                        // takes the slot of the oldest of them).
                        let n = self.rng.range(4, 12);
                        tr!(self, "swarm of {n} truncated handshakes at n{victim}");
                        for _ in 0..n {
                            self.attack(victim, intruder::Attack::TruncatedHello);
                        }
                    } else if self.byzantine.is_some() && self.rng.chance(0.08) {
                        // The byzantine peer reconnects in a loop: each
                        // handshake completes (its key is trusted), one
                        // every 2-10 ms, more than its burst.
                        let n = self.rng.range(40, 80) as u32;
                        let every = self.rng.range(2_000_000, 10_000_000);
                        tr!(self, "byzantine peer reconnects {n} times to n{victim}");
                        self.reconnect_flood(victim, n, every);
                    } else {
                        let attack =
                            intruder::Attack::random(&mut self.rng, self.byzantine.is_some());
                        self.attack(victim, attack);
                    }
                }
            }
        }
    }

    /// The first dials: each honest node dials one to three peers it
    /// trusts, within the first 100 ms (pairs that dial each other make
    /// simultaneous dials).
    pub fn bootstrap(&mut self) {
        for n in 0..self.nodes.len() {
            if self.nodes[n].role != Role::Honest {
                continue;
            }
            let trusted: Vec<NodeIx> = self.honest_trusted_by(n);
            for _ in 0..self.rng.range(1, 3) {
                if let Some(&m) = self.rng.pick(&trusted) {
                    let at = self.now + self.rng.below(100_000_000);
                    self.schedule(at, Ev::Dial { node: n, target: m });
                }
            }
        }
    }

    /// Back from a crash or a stop: redial a few peers (in the chaos
    /// phase only).
    pub(super) fn after_restart(&mut self, n: NodeIx) {
        if self.phase != Phase::Chaos || !self.cfg.workload.enabled {
            return;
        }
        let trusted = self.honest_trusted_by(n);
        for _ in 0..self.rng.range(0, 3) {
            if let Some(&m) = self.rng.pick(&trusted) {
                let peer = self.nodes[m].peer;
                self.dial(n, m, Some(peer));
            }
        }
    }

    fn honest_trusted_by(&self, n: NodeIx) -> Vec<NodeIx> {
        (0..self.nodes.len())
            .filter(|&m| {
                m != n
                    && self.nodes[m].role == Role::Honest
                    && self.nodes[n].trust.contains(&self.nodes[m].peer)
            })
            .collect()
    }

    fn honest_peers(&self) -> Vec<PeerId> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Honest)
            .map(|n| n.peer)
            .collect()
    }

    /// A random node that is up (of `role`, if given).
    fn random_node(&mut self, role: Option<Role>) -> Option<NodeIx> {
        let up: Vec<NodeIx> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].is_up() && role.is_none_or(|r| self.nodes[n].role == r))
            .collect();
        self.rng.pick(&up).copied()
    }

    fn random_mutual_pair(&mut self) -> Option<(NodeIx, NodeIx)> {
        let x = self.random_node(Some(Role::Honest))?;
        let candidates: Vec<NodeIx> = self
            .honest_trusted_by(x)
            .into_iter()
            .filter(|&y| self.nodes[y].is_up() && self.nodes[y].trust.contains(&self.nodes[x].peer))
            .collect();
        let y = *self.rng.pick(&candidates)?;
        Some((x, y))
    }

    fn random_link(&mut self) -> Option<LinkId> {
        let live: Vec<LinkId> = self
            .links
            .values()
            .filter(|l| l.accepted && !l.dead)
            .map(|l| l.id)
            .collect();
        self.rng.pick(&live).copied()
    }

    /// One of the peers node `n` is connected to (none while it is down).
    fn random_peer_of(&mut self, n: NodeIx) -> Option<PeerId> {
        let peers: Vec<PeerId> = self.nodes[n]
            .ep
            .as_ref()
            .map_or(Vec::new(), |ep| ep.peers().collect());
        self.rng.pick(&peers).copied()
    }

    /// A live link and one of its two sides (or directions), drawn in that
    /// order.
    fn random_link_side(&mut self) -> Option<(LinkId, usize)> {
        let l = self.random_link()?;
        Some((l, self.rng.index(2)))
    }

    /// An honest node and one of the first four handles, drawn in that
    /// order.
    fn random_honest_handle(&mut self) -> Option<(NodeIx, &'static str)> {
        let n = self.random_node(Some(Role::Honest))?;
        Some((n, HANDLES[self.rng.index(4)]))
    }

    /// An honest node and another node of any role, for a trust change of
    /// the first about the second. Both are always drawn, in that order,
    /// so the random stream does not depend on the first draw.
    fn random_truster_and_peer(&mut self) -> Option<(NodeIx, NodeIx)> {
        let n = self.random_node(Some(Role::Honest));
        let m = self.random_node(None);
        match (n, m) {
            (Some(n), Some(m)) if n != m => Some((n, m)),
            _ => None,
        }
    }

    fn maybe_repair(&mut self, n: NodeIx, peer: PeerId) {
        if self.rng.chance(0.7) {
            let at = self.now + self.rng.range(200_000_000, 3_000_000_000);
            self.schedule(
                at,
                Ev::Trust {
                    node: n,
                    peer,
                    trusted: true,
                },
            );
        }
    }

    fn random_dial(&mut self) {
        // Mostly honest dialers; intruder nodes try too.
        let role = if self.cfg.untrusted_nodes > 0 && self.rng.chance(0.2) {
            Role::Untrusted
        } else {
            Role::Honest
        };
        let Some(a) = self.random_node(Some(role)) else {
            return;
        };
        let others: Vec<NodeIx> = (0..self.nodes.len()).filter(|&m| m != a).collect();
        let Some(&b) = self.rng.pick(&others) else {
            return;
        };
        let expected = match self.rng.weighted(&[85, 8, 7]) {
            0 => Some(self.nodes[b].peer),
            1 => None,
            _ => {
                let c = others[self.rng.index(others.len())];
                Some(self.nodes[c].peer)
            }
        };
        self.dial(a, b, expected);
    }

    fn random_call(&mut self) {
        let Some(a) = self.random_node(None) else {
            return;
        };
        let connected: Vec<NodeIx> = self.nodes[a]
            .ep
            .as_ref()
            .map_or(Vec::new(), |ep| ep.peers().collect::<Vec<_>>())
            .iter()
            .filter_map(|p| match self.owners.get(p) {
                Some(Owner::Node(m)) if self.nodes[*m].role == Role::Honest => Some(*m),
                _ => None,
            })
            .collect();
        let b = if !connected.is_empty() && self.rng.chance(0.85) {
            connected[self.rng.index(connected.len())]
        } else {
            let others: Vec<NodeIx> = (0..self.cfg.nodes).filter(|&m| m != a).collect();
            match self.rng.pick(&others) {
                Some(&m) => m,
                None => return,
            }
        };
        let handle = if self.rng.chance(0.1) {
            "nope"
        } else {
            HANDLES[self.rng.index(4)]
        };
        let timeout = if self.rng.chance(0.3) {
            None
        } else {
            Some(Duration::from_micros(self.rng.range(5_000, 3_000_000)))
        };
        let max = self.cfg.endpoint.max_frame_len as u64;
        let pad = if self.rng.chance(0.04) {
            // Around the frame limit: some fit exactly, some by a byte
            // too many (MessageTooLarge, nothing sent).
            self.rng.range(max - 56, max - 6) as usize
        } else {
            self.rng.below(200) as usize
        };
        let _ = self.call(a, b, handle, timeout, pad);
    }

    /// Node `a` calls `handle` on node `b` (over its established
    /// connection); the ledger expects exactly one result for the id.
    pub fn call(
        &mut self,
        a: NodeIx,
        b: NodeIx,
        handle: &'static str,
        timeout: Option<Duration>,
        pad: usize,
    ) -> Result<CallId, CallError> {
        let now = self.nodes[a].clock(self.now);
        let token = self.next_token;
        self.next_token += 1;
        let peer = self.nodes[b].peer;
        let args = node::call_args(token, a, pad);
        let Some(ep) = self.nodes[a].ep.as_mut() else {
            return Err(CallError::NotConnected);
        };
        let result = ep.call(now, &peer, handle, &args, timeout);
        match &result {
            Ok(id) => {
                self.counters.calls += 1;
                let deadline = timeout.map(|t| now + t);
                tr!(
                    self,
                    "n{a} calls {handle} on n{b}: {}#{} (t{token}, timeout {timeout:?})",
                    id.conn(),
                    id.request_id()
                );
                let pending = PendingCall {
                    token,
                    callee: b,
                    handle,
                    deadline,
                    cancelled: false,
                };
                if self.nodes[a].calls.insert(*id, pending).is_some() {
                    self.fail(
                        super::Invariant::CallsResolveExactlyOnce,
                        format!(
                            "n{a}: call id {}#{} handed out while still in flight",
                            id.conn(),
                            id.request_id()
                        ),
                    );
                }
                if let Some(d) = deadline {
                    let at = self.nodes[a].global(d);
                    let inc = self.nodes[a].inc;
                    self.model.call_deadlines.insert((at, a, inc, *id));
                }
            }
            Err(e) => {
                if *e == CallError::WouldBlock {
                    self.counters.would_block += 1;
                }
                tr!(self, "n{a} calls {handle} on n{b}: refused: {e}");
            }
        }
        self.touch(a);
        result
    }

    /// Many calls at once from one node to one peer, some with large
    /// arguments: fills send queues (`WouldBlock` when the peer reads
    /// slowly) and the callee's inbound table (`overloaded`).
    fn burst(&mut self) {
        let Some(a) = self.random_node(Some(Role::Honest)) else {
            return;
        };
        let Some(peer) = self.random_peer_of(a) else {
            return;
        };
        let Some(&Owner::Node(b)) = self.owners.get(&peer) else {
            return;
        };
        let n = self.rng.range(5, 30);
        tr!(self, "n{a} bursts {n} calls at n{b}");
        for _ in 0..n {
            let handle = HANDLES[self.rng.index(4)];
            let timeout = self
                .rng
                .chance(0.5)
                .then(|| Duration::from_millis(self.rng.range(50, 3_000)));
            let pad = self.rng.below(600) as usize;
            let _ = self.call(a, b, handle, timeout, pad);
        }
    }

    fn random_send(&mut self) {
        let Some(a) = self.random_node(None) else {
            return;
        };
        let Some(peer) = self.random_peer_of(a) else {
            return;
        };
        let now = self.nodes[a].clock(self.now);
        let handle = HANDLES[self.rng.index(HANDLES.len())];
        let args = node::call_args(0, a, self.rng.below(64) as usize);
        let who = self.who(&peer);
        if let Some(ep) = self.nodes[a].ep.as_mut() {
            let r = ep.send(now, &peer, handle, &args);
            tr!(self, "n{a} sends {handle} to {who}: {r:?}");
        }
        self.touch(a);
    }

    fn random_cancel(&mut self) {
        let with_calls: Vec<NodeIx> = (0..self.nodes.len())
            .filter(|&n| !self.nodes[n].calls.is_empty() && self.nodes[n].ep.is_some())
            .collect();
        let Some(&n) = self.rng.pick(&with_calls) else {
            return;
        };
        let ids: Vec<CallId> = self.nodes[n].calls.keys().copied().collect();
        let id = ids[self.rng.index(ids.len())];
        self.cancel(n, id);
    }

    /// Node `n` gives up on its call `id`.
    pub fn cancel(&mut self, n: NodeIx, id: CallId) {
        let now = self.nodes[n].clock(self.now);
        let Some(call) = self.nodes[n].calls.get_mut(&id) else {
            return;
        };
        call.cancelled = true;
        let Some(ep) = self.nodes[n].ep.as_mut() else {
            return;
        };
        let done = ep.cancel(now, id);
        tr!(
            self,
            "n{n} cancels {}#{}: {done}",
            id.conn(),
            id.request_id()
        );
        if done {
            self.expect_cancel(n, id);
        } else {
            self.fail(
                super::Invariant::CallsResolveExactlyOnce,
                format!(
                    "n{n}: cancel of {}#{} refused, but the call was never resolved",
                    id.conn(),
                    id.request_id()
                ),
            );
        }
        self.touch(n);
    }

    /// Node `n` exposes `handle`.
    pub fn expose(&mut self, n: NodeIx, handle: &'static str, exposed: Exposed) {
        tr!(self, "n{n} exposes {handle} to {exposed:?}");
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.expose(handle, exposed.access()).expect("valid handle");
        }
        self.nodes[n].exposure.insert(handle, exposed);
    }

    /// Node `n` unexposes `handle`.
    pub fn unexpose(&mut self, n: NodeIx, handle: &'static str) {
        tr!(self, "n{n} unexposes {handle}");
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.unexpose(handle);
        }
        self.nodes[n].exposure.remove(handle);
    }

    /// Node `n` trusts `peer`.
    pub fn pair(&mut self, n: NodeIx, peer: PeerId) {
        tr!(self, "n{n} pairs {}", self.who(&peer));
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.pair(peer, None);
        }
        self.nodes[n].trust.insert(peer);
    }

    /// Node `n` stops trusting `peer`: its connections to it are revoked.
    pub fn unpair(&mut self, n: NodeIx, peer: PeerId) {
        tr!(self, "n{n} unpairs {}", self.who(&peer));
        let now = self.nodes[n].clock(self.now);
        let node = &mut self.nodes[n];
        node.trust.remove(&peer);
        for (id, c) in node.conns.iter_mut() {
            if !c.closed && c.established.is_some_and(|(p, _)| p == peer) {
                c.revoked = true;
                self.unpairing.push((n, *id));
            }
        }
        if let Some(ep) = node.ep.as_mut() {
            ep.unpair(now, &peer);
            self.touch(n);
        }
        // What `unpair` did not end (fault `KeepRevokedConnections`) is
        // for `handlers_only_for_trusted_exposed_peers` to catch.
        self.unpairing.clear();
    }

    /// Node `n` closes its connection to `peer` on purpose.
    pub fn disconnect(&mut self, n: NodeIx, peer: PeerId) {
        let now = self.nodes[n].clock(self.now);
        tr!(self, "n{n} disconnects {}", self.who(&peer));
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.disconnect(now, &peer);
            self.touch(n);
        }
    }

    /// A node with calls in flight, or its callee, revokes the other.
    fn revoke_mid_call(&mut self) {
        let busy: Vec<NodeIx> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].ep.is_some() && !self.nodes[n].calls.is_empty())
            .collect();
        let Some(&a) = self.rng.pick(&busy) else {
            return;
        };
        let callees: BTreeSet<NodeIx> = self.nodes[a].calls.values().map(|c| c.callee).collect();
        let callees: Vec<NodeIx> = callees.into_iter().collect();
        let b = callees[self.rng.index(callees.len())];
        self.counters.faults += 1;
        let (who, whom) = if self.rng.chance(0.5) { (a, b) } else { (b, a) };
        tr!(
            self,
            "revoke in the middle of calls: n{who} unpairs n{whom}"
        );
        let peer = self.nodes[whom].peer;
        self.unpair(who, peer);
        self.maybe_repair(who, peer);
    }

    /// Whether node `n` is down.
    pub fn is_down(&self, n: NodeIx) -> bool {
        self.nodes[n].state == NodeState::Down
    }
}
