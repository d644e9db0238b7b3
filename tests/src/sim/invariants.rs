//! The invariants, each a named check run after every step of the
//! simulation (or at the one event that can break it). The first check
//! that fails stops the run with a [`Violation`], which prints the seed
//! and the latest trace lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use peernet_proto::GoodbyeCode;
use peernet_proto::testkit::registry::{self, Established, Survivor};
use peernet_proto::{CallError, CallId, CloseReason, ConnId, Event, HandshakeError, PeerId, Side};
use peernet_testkit::model::{
    Expected, check_replies_wait, check_reply_budgets, check_revoked_by_peer, check_tables,
    check_unpaired, fails_cleanly_across_versions, is_goodbye, local_protocol_error, max_per_conn,
};

use super::intruder::{Attack, MARK};

use super::net::LinkId;
use super::node::{self, NodeIx, NodeState, Role};
use super::trace::Time;
use super::{Fault, Owner, Sim};

pub use peernet_testkit::Invariant;

/// A failed invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// The run's seed.
    pub seed: u64,
    /// The deliberate fault switched on, if any.
    pub fault: Option<Fault>,
    /// Virtual time of the failure.
    pub at: Duration,
    /// What exactly was wrong.
    pub detail: String,
    /// The latest trace lines, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant `{}` violated at t={}s, seed {}{}",
            self.invariant,
            Time(self.at.as_nanos() as u64),
            self.seed,
            match self.fault {
                Some(fault) => format!(", deliberate fault {fault:?}"),
                None => String::new(),
            }
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(
            f,
            "replay: PEERNET_SIM_SEED={} cargo test -p peernet-tests --test simulation -- --nocapture replay",
            self.seed
        )?;
        writeln!(f, "last {} trace lines:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Deadlines a node must meet, checked when they pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Obligation {
    /// The connection's handshake must have ended.
    HandshakeEnds,
    /// The connection's peer vanished: it must be closed.
    NoticeDeadPeer,
    /// The peer only trickles bytes of a frame it never finishes: it must
    /// be closed.
    CloseTrickler,
}

/// A CANCEL on its way: by `at` (global ns) the callee `node` (in life
/// `inc`) must no longer serve request `id` on `conn`, unless `link` was
/// disturbed after `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CancelDue {
    /// The deadline.
    pub at: u64,
    /// The callee.
    pub node: NodeIx,
    /// Its life.
    pub inc: u32,
    /// The callee's connection.
    pub conn: ConnId,
    /// The request id.
    pub id: u64,
    /// The transport.
    pub link: LinkId,
    /// When the caller cancelled.
    pub since: u64,
}

/// One side's choice between two connections to the same peer.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    node: NodeIx,
    /// The link it closed.
    loser: LinkId,
    /// The link section 4 closes, applied to what this side saw.
    rule_loser: LinkId,
}

/// What the checks remember between steps.
#[derive(Default)]
pub struct Model {
    /// (virtual deadline, node, life, connection, what).
    pub obligations: BTreeSet<(u64, NodeIx, u32, ConnId, Obligation)>,
    /// (virtual deadline, node, life, call): the call must be resolved.
    pub call_deadlines: BTreeSet<(u64, NodeIx, u32, CallId)>,
    /// CANCELs that must have freed the callee's slot by their deadline.
    pub cancels: BTreeSet<CancelDue>,
    verdicts: BTreeMap<(LinkId, LinkId), Verdict>,
}

impl Sim {
    /// Checks one event of node `n` as it comes out of the endpoint.
    pub(super) fn check_event(&mut self, n: NodeIx, event: &Event) {
        let now = self.nodes[n].clock(self.now);
        match event {
            Event::Connected {
                conn,
                peer,
                direction,
            } => {
                tr!(
                    self,
                    "n{n} connected {conn} to {} ({direction:?})",
                    self.who(peer)
                );
                self.counters.connected += 1;
                self.source_handshake_ended(n, *conn, None);
                self.slot_handshake_ended(n, *conn, None);
                self.reconnect_ended(n, *conn, Some(*peer));
                let Some(cm) = self.nodes[n].conns.get(conn) else {
                    return self.fail(
                        Invariant::AuthenticatedPeerIdentity,
                        format!("n{n}: Connected on {conn}, a transport the driver never opened"),
                    );
                };
                let (link, side, expected) = (cm.link, cm.side, cm.expected);
                if self.raw_attack(link) == Some(Attack::ReplayedHandshake) {
                    return self.fail(
                        Invariant::ReplayedInitNeverConnects,
                        format!(
                            "n{n}: {conn} ({link}) established as {} from a replayed first flight",
                            self.who(peer)
                        ),
                    );
                }
                if let Some((a, b)) = self.node_versions(link)
                    && a != b
                {
                    return self.fail(
                        Invariant::VersionsNeverMix,
                        format!("n{n}: {conn} ({link}) established between {a:?} and {b:?}"),
                    );
                }
                if expected.is_some_and(|e| e != *peer) {
                    let named = expected.map(|p| self.who(&p));
                    return self.fail(
                        Invariant::DialReachesOnlyTheNamedPeer,
                        format!(
                            "n{n}: {conn} ({link}) dialed {named:?} but established with {}",
                            self.who(peer)
                        ),
                    );
                }
                let holder = self.holder(link, 1 - side).map(|(_, p)| p);
                if holder != Some(*peer) {
                    let holder = holder.map_or("a raw source with no key".into(), |p| self.who(&p));
                    return self.fail(
                        Invariant::AuthenticatedPeerIdentity,
                        format!(
                            "n{n}: {conn} ({link}) established as {}, but the other end is {holder}",
                            self.who(peer)
                        ),
                    );
                }
                if !self.nodes[n].trust.contains(peer) {
                    return self.fail(
                        Invariant::EstablishedOnlyWithTrustedPeers,
                        format!(
                            "n{n}: {conn} established with {}, which it does not trust",
                            self.who(peer)
                        ),
                    );
                }
                let other = self.nodes[n].established_to(peer).next().map(|(c, _)| *c);
                if let Some(other) = other {
                    return self.fail(
                        Invariant::AtMostOneConnectionPerPeer,
                        format!(
                            "n{n}: {conn} established to {} while {other} still is",
                            self.who(peer)
                        ),
                    );
                }
                if let Some(cm) = self.nodes[n].conns.get_mut(conn) {
                    cm.established = Some((*peer, now));
                }
            }
            Event::Disconnected { conn, peer, reason } => {
                tr!(
                    self,
                    "n{n} disconnected {conn} from {}: {reason}",
                    self.who(peer)
                );
                if let CloseReason::Goodbye {
                    by: Side::Local,
                    code: peernet_proto::GoodbyeCode::Superseded,
                    ..
                } = reason
                {
                    self.record_verdict(n, *conn, *peer);
                }
                self.check_revocation(n, *conn, peer, reason);
                self.check_idle_close(n, *conn, peer, reason);
                if let Some(error) = local_protocol_error(event, true)
                    && self.well_behaved(n, *conn, peer)
                {
                    self.fail(
                        Invariant::NoProtocolErrorBetweenHonestPeers,
                        format!(
                            "n{n}: honest {} made it see a protocol error on {conn}: {error}",
                            self.who(peer)
                        ),
                    );
                }
            }
            Event::HandshakeFailed { conn, peer, error } => {
                self.source_handshake_ended(n, *conn, Some(error));
                self.slot_handshake_ended(n, *conn, Some(error));
                self.reconnect_ended(n, *conn, None);
                if *error == HandshakeError::Throttled {
                    self.counters.throttled += 1;
                    if matches!(peer.and_then(|p| self.owners.get(&p)), Some(Owner::Node(_))) {
                        self.counters.throttled_honest += 1;
                    }
                }
                // Only what `unpair` ends as an established connection is
                // checked for its revocation.
                self.unpairing.retain(|c| *c != (n, *conn));
                let who = peer.map(|p| self.who(&p));
                tr!(self, "n{n} handshake {conn} with {who:?} failed: {error}");
                self.counters.handshakes_failed += 1;
                if *error == HandshakeError::Evicted {
                    self.counters.evictions += 1;
                }
                let link = self.nodes[n].conns.get(conn).map(|c| c.link);
                if let Some((a, b)) = link.and_then(|l| self.node_versions(l))
                    && a != b
                {
                    self.counters.versions_refused += 1;
                    if !fails_cleanly_across_versions(error) {
                        self.fail(
                            Invariant::VersionsNeverMix,
                            format!(
                                "n{n}: handshake {conn} between {a:?} and {b:?} failed with {error:?}"
                            ),
                        );
                    }
                }
                if let (HandshakeError::Superseded, Some(peer)) = (error, peer) {
                    self.record_verdict(n, *conn, *peer);
                }
            }
            Event::Call(call) => {
                let token = node::token_of(&call.args);
                tr!(
                    self,
                    "n{n} handler {} for {} on {}#{} (t{token})",
                    call.handle.as_str(),
                    self.who(&call.peer),
                    call.id.conn(),
                    call.id.request_id()
                );
                self.check_not_shutting_down(n, call.handle.as_str());
                self.check_handler(n, Some(call.id.conn()), &call.peer, call.handle.as_str());
                if !self.nodes[n].serving.insert(call.id) {
                    self.fail(
                        Invariant::CallsResolveExactlyOnce,
                        format!(
                            "n{n}: inbound call {}#{} handed out twice",
                            call.id.conn(),
                            call.id.request_id()
                        ),
                    );
                }
            }
            Event::Send(send) => {
                self.counters.sends += 1;
                tr!(
                    self,
                    "n{n} send handler {} for {}",
                    send.handle.as_str(),
                    self.who(&send.peer)
                );
                self.check_not_shutting_down(n, send.handle.as_str());
                self.check_handler(n, None, &send.peer, send.handle.as_str());
                if send.args.as_ref() == MARK {
                    self.check_marked_send(n, send.conn);
                }
            }
            Event::CallCancelled(id) => {
                tr!(
                    self,
                    "n{n} inbound {}#{} cancelled",
                    id.conn(),
                    id.request_id()
                );
                if !self.nodes[n].serving.remove(id) {
                    self.fail(
                        Invariant::CallsResolveExactlyOnce,
                        format!(
                            "n{n}: inbound call {}#{} cancelled but not in flight",
                            id.conn(),
                            id.request_id()
                        ),
                    );
                }
            }
            Event::CallResult { id, result } => self.check_call_result(n, *id, result),
            _ => {}
        }
    }

    /// Whether `n` and `peer` are both honest nodes (not the byzantine
    /// key, not an untrusted intruder).
    fn honest_pair(&self, n: NodeIx, peer: &PeerId) -> bool {
        let honest = |m: NodeIx| self.nodes[m].role == Role::Honest;
        honest(n) && matches!(self.owners.get(peer), Some(Owner::Node(m)) if honest(*m))
    }

    /// Whether `peer`, on node `n`'s `conn`, is a peer that keeps the
    /// protocol: an honest node (and `n` is honest), or a raw intruder
    /// that only PINGs.
    fn well_behaved(&self, n: NodeIx, conn: ConnId, peer: &PeerId) -> bool {
        let Some(cm) = self.nodes[n].conns.get(&conn) else {
            return self.honest_pair(n, peer);
        };
        if self.honest_pair(n, peer) {
            // A record an on-path attacker broke ends the connection
            // with a local protocol error, as PROTOCOL.md section 7 says.
            return !self.tampered(cm.link);
        }
        self.links.get(&cm.link).is_some_and(|l| {
            matches!(&l.ends[1 - cm.side].kind, super::net::EndKind::Raw(raw) if raw.pings_only())
        })
    }

    /// `revoked_on_both_sides`: what `unpair` ended reports a revocation
    /// we sent; the honest peer of such a connection must hear it.
    fn check_revocation(&mut self, n: NodeIx, conn: ConnId, peer: &PeerId, reason: &CloseReason) {
        if let Some(i) = self.unpairing.iter().position(|c| *c == (n, conn)) {
            self.unpairing.swap_remove(i);
            if let Err(b) = check_unpaired(conn, reason) {
                return self.fail(b.invariant, format!("n{n}: {}", b.detail));
            }
        }
        let Some(cm) = self.nodes[n].conns.get(&conn) else {
            return;
        };
        let (link, side) = (cm.link, cm.side);
        if cm.peer_revoked {
            let dead = !self.healthy_since(link, side, 0);
            if let Err(b) = check_revoked_by_peer(conn, reason, dead) {
                return self.fail(
                    b.invariant,
                    format!("n{n}: {} unpaired it: {}", self.who(peer), b.detail),
                );
            }
        }
        if is_goodbye(reason, Side::Local, GoodbyeCode::Revoked)
            && self.honest_pair(n, peer)
            && self.healthy_since(link, side, 0)
            && let Some((m, _, mc)) = self.other_node_end(link, side)
            && let Some(c) = self.nodes[m].conns.get_mut(&mc)
        {
            c.peer_revoked = true;
        }
    }

    /// `healthy_idle_connections_stay_open`: a local idle timeout on a
    /// connection to a well-behaved peer is only excused by a transport
    /// that died or stalled, or a clock that stepped, within the last
    /// idle period.
    fn check_idle_close(&mut self, n: NodeIx, conn: ConnId, peer: &PeerId, reason: &CloseReason) {
        if !is_goodbye(reason, Side::Local, GoodbyeCode::IdleTimeout)
            || !self.well_behaved(n, conn, peer)
        {
            return;
        }
        let Some(cm) = self.nodes[n].conns.get(&conn) else {
            return;
        };
        let since = self.now.saturating_sub(self.idle_grace().as_nanos() as u64);
        let stepped = self.nodes[n].last_clock_step.is_some_and(|t| t >= since);
        if stepped || !self.healthy_since(cm.link, cm.side, since) {
            return;
        }
        let link = cm.link;
        self.fail(
            Invariant::HealthyIdleConnectionsStayOpen,
            format!(
                "n{n}: {conn} ({link}) to live, well-behaved {} closed by the idle timeout over a healthy transport",
                self.who(peer)
            ),
        );
    }

    /// How long an end has to notice that its peer went silent: the idle
    /// timeout plus one ping interval.
    pub(super) fn idle_grace(&self) -> Duration {
        let c = &self.cfg.endpoint;
        c.idle_timeout + c.ping_interval
    }

    /// Node `node` (in its life `inc`) must meet `obligation` on `conn`
    /// within the [idle grace](Sim::idle_grace) of now.
    pub(super) fn oblige_within_idle_grace(
        &mut self,
        node: NodeIx,
        inc: u32,
        conn: ConnId,
        obligation: Obligation,
    ) {
        let grace = self.idle_grace().as_nanos() as u64;
        self.model
            .obligations
            .insert((self.now + grace, node, inc, conn, obligation));
    }

    /// `cancel_frees_the_callee_slot`: node `n` gave up on its call `id`
    /// (cancel or timeout), so a CANCEL is on its way; the callee must
    /// have ended the call within the idle timeout.
    pub(super) fn expect_cancel(&mut self, n: NodeIx, id: CallId) {
        let Some(cm) = self.nodes[n].conns.get(&id.conn()) else {
            return;
        };
        let (link, side) = (cm.link, cm.side);
        let Some((node, inc, conn)) = self.other_node_end(link, side) else {
            return;
        };
        let at = self.now + self.cfg.endpoint.idle_timeout.as_nanos() as u64;
        self.model.cancels.insert(CancelDue {
            at,
            node,
            inc,
            conn,
            id: id.request_id(),
            link,
            since: self.now,
        });
    }

    /// `no_handlers_while_shutting_down`.
    fn check_not_shutting_down(&mut self, n: NodeIx, handle: &str) {
        if self.nodes[n].state == NodeState::ShuttingDown {
            self.fail(
                Invariant::NoHandlersWhileShuttingDown,
                format!("n{n}: handler {handle:?} runs after `shutdown`"),
            );
        }
    }

    fn check_handler(&mut self, n: NodeIx, conn: Option<ConnId>, peer: &PeerId, handle: &str) {
        let node = &self.nodes[n];
        let who = self.who(peer);
        let problem = if let Some(conn) = conn {
            match node.conns.get(&conn) {
                None => Some(format!("on {conn}, which the driver does not know")),
                Some(cm) if cm.established.map(|(p, _)| p) != Some(*peer) => Some(format!(
                    "on {conn}, which is not an established connection to {who}"
                )),
                Some(cm) if cm.revoked => Some(format!("on {conn}, after {who} was revoked")),
                Some(_) => None,
            }
        } else {
            None
        };
        let problem = problem.or_else(|| {
            if !node.trust.contains(peer) {
                Some(format!("for {who}, which is not trusted"))
            } else {
                match node.exposure.get(handle) {
                    None => Some(format!("for handle {handle}, which is not exposed")),
                    Some(e) if !e.allows(peer) => Some(format!(
                        "for handle {handle}, which is not exposed to {who}"
                    )),
                    Some(_) => None,
                }
            }
        });
        if let Some(problem) = problem {
            self.fail(
                Invariant::HandlersOnlyForTrustedExposedPeers,
                format!("n{n}: handler {handle} ran {problem}"),
            );
        }
    }

    fn check_call_result(
        &mut self,
        n: NodeIx,
        id: CallId,
        result: &Result<bytes::Bytes, CallError>,
    ) {
        let now = self.nodes[n].clock(self.now);
        let Some(call) = self.nodes[n].calls.remove(&id) else {
            tr!(
                self,
                "n{n} call {}#{} resolved: {result:?}",
                id.conn(),
                id.request_id()
            );
            return self.fail(
                Invariant::CallsResolveExactlyOnce,
                format!(
                    "n{n}: call {}#{} resolved, but it is not in flight (resolved twice, or never made)",
                    id.conn(),
                    id.request_id()
                ),
            );
        };
        let summary = match result {
            Ok(b) => format!("ok {}B", b.len()),
            Err(e) => format!("{e}"),
        };
        tr!(
            self,
            "n{n} call {}#{} (t{}) to n{} resolved: {summary}",
            id.conn(),
            id.request_id(),
            call.token,
            call.callee
        );
        if let Some(results) = self.results.as_mut() {
            results.push(super::CallOutcome {
                caller: n,
                callee: call.callee,
                token: call.token,
                result: result.clone(),
            });
        }
        let c = &mut self.counters;
        match result {
            Ok(_) => c.replies_ok += 1,
            Err(e) => {
                c.call_errors += 1;
                match e {
                    CallError::Timeout => c.timeouts += 1,
                    CallError::ConnectionClosed(_) => c.closed_under_call += 1,
                    CallError::NoSuchHandle | CallError::Forbidden => c.denied += 1,
                    CallError::Overloaded => c.overloaded += 1,
                    _ => c.handler_failures += 1,
                }
            }
        }
        let caller = self.nodes[n].peer;
        let mismatch = match result {
            Ok(body) | Err(CallError::HandlerError(body)) => match node::read_reply(body) {
                Some((token, callee, seen))
                    if token == call.token
                        && callee == call.callee
                        && seen == *caller.as_bytes() =>
                {
                    None
                }
                Some((token, callee, seen)) => Some(format!(
                    "the body answers t{token} for {} at n{callee}",
                    PeerId::from_bytes(seen).map_or("?".into(), |p| self.who(&p))
                )),
                None => Some(format!("the body is not a reply ({} bytes)", body.len())),
            },
            Err(CallError::HandlerPanicked(note)) => {
                let expected = node::panic_note(call.token, call.callee);
                (note.as_ref() != expected.as_bytes())
                    .then(|| format!("the panic note is {:?}", String::from_utf8_lossy(note)))
            }
            Err(CallError::Timeout) => {
                self.expect_cancel(n, id);
                if call.deadline.is_none_or(|d| now < d) {
                    return self.fail(
                        Invariant::CallsResolveExactlyOnce,
                        format!(
                            "n{n}: call {}#{} timed out at {:?}, before its deadline {:?}",
                            id.conn(),
                            id.request_id(),
                            now,
                            call.deadline
                        ),
                    );
                }
                None
            }
            Err(CallError::Cancelled) if !call.cancelled => {
                return self.fail(
                    Invariant::CallsResolveExactlyOnce,
                    format!(
                        "n{n}: call {}#{} resolved as cancelled, but nobody cancelled it",
                        id.conn(),
                        id.request_id()
                    ),
                );
            }
            Err(_) => None,
        };
        if let Some(mismatch) = mismatch {
            self.fail(
                Invariant::RepliesMatchTheirCalls,
                format!(
                    "n{n}: call {}#{} (t{}, {} at n{}) got a reply that is not its own: {mismatch}",
                    id.conn(),
                    id.request_id(),
                    call.token,
                    call.handle,
                    call.callee
                ),
            );
        }
    }

    /// The core is about to close `conn`: every call on it must have been
    /// resolved already.
    pub(super) fn check_close(&mut self, n: NodeIx, conn: ConnId) {
        let node = &self.nodes[n];
        if let Some(id) = node.calls.keys().find(|c| c.conn() == conn) {
            let detail = format!(
                "n{n}: {conn} closed with call #{} still unresolved",
                id.request_id()
            );
            return self.fail(Invariant::CallsResolveExactlyOnce, detail);
        }
        if let Some(id) = node.serving.iter().find(|c| c.conn() == conn) {
            let detail = format!(
                "n{n}: {conn} closed with inbound call #{} neither answered nor cancelled",
                id.request_id()
            );
            self.fail(Invariant::CallsResolveExactlyOnce, detail);
        }
    }

    /// Node `n` closed `loser` by the supersede rule: remember which of
    /// the two links it kept, and compare with the peer's choice.
    fn record_verdict(&mut self, n: NodeIx, loser: ConnId, peer: PeerId) {
        self.counters.superseded += 1;
        let node = &self.nodes[n];
        let now = node.clock(self.now);
        let Some(ep) = node.ep.as_ref() else { return };
        let Some(kept) = ep.connection(&peer) else {
            return;
        };
        let (Some(l), Some(k)) = (node.conns.get(&loser), node.conns.get(&kept)) else {
            return;
        };
        // Which was established first, on this node's clock.
        let ((older, older_at), newer) = match (l.established, k.established) {
            (Some((_, at)), _) => ((l.link, at), k.link),
            (None, Some((_, at))) => ((k.link, at), l.link),
            (None, None) => return,
        };
        let (Some(older_init), Some(newer_init)) =
            (self.initiator_of(older), self.initiator_of(newer))
        else {
            return;
        };
        let rule = registry::survivor(
            Established {
                initiator: older_init,
                at: older_at,
            },
            Established {
                initiator: newer_init,
                at: now,
            },
            self.cfg.endpoint.handshake_timeout,
        );
        let rule_loser = match rule {
            Survivor::Newer => older,
            Survivor::Older => newer,
        };
        let verdict = Verdict {
            node: n,
            loser: l.link,
            rule_loser,
        };
        let key = (older.min(newer), older.max(newer));
        tr!(
            self,
            "n{n} keeps {} over {} (section 4 says close {rule_loser})",
            if verdict.loser == older { newer } else { older },
            verdict.loser
        );
        match self.model.verdicts.get(&key) {
            Some(other) if other.node != n => {
                self.counters.supersede_pairs_compared += 1;
                let other = *other;
                if other.rule_loser == verdict.rule_loser && other.loser != verdict.loser {
                    self.fail(
                        Invariant::SupersedeVerdictsAgree,
                        format!(
                            "between {} and {}, n{} closed {} but n{n} closed {}: the two peers keep different connections",
                            key.0, key.1, other.node, other.loser, verdict.loser
                        ),
                    );
                }
            }
            _ => {
                self.model.verdicts.insert(key, verdict);
            }
        }
    }

    /// After every step: deadlines that passed, and the tables of the
    /// nodes the step touched.
    pub(super) fn check_step(&mut self) {
        while let Some(&first) = self.model.obligations.first() {
            let (at, n, inc, conn, what) = first;
            if at >= self.now {
                break;
            }
            self.model.obligations.pop_first();
            let node = &self.nodes[n];
            if node.inc != inc || !node.ep.as_ref().is_some_and(|ep| ep.is_open(conn)) {
                continue;
            }
            match what {
                Obligation::HandshakeEnds => {
                    if node
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.established.is_none())
                    {
                        let h = self.cfg.endpoint.handshake_timeout;
                        self.fail(
                            Invariant::HandshakesFinishInTime,
                            format!("n{n}: {conn} still in its handshake {h:?} after it opened"),
                        );
                    }
                }
                Obligation::NoticeDeadPeer => {
                    let grace = self.idle_grace();
                    self.fail(
                        Invariant::DeadPeersDetectedInTime,
                        format!("n{n}: {conn} still open {grace:?} after its peer vanished"),
                    );
                }
                Obligation::CloseTrickler => {
                    let grace = self.idle_grace();
                    self.fail(
                        Invariant::IdleResetOnlyByCompleteFrames,
                        format!(
                            "n{n}: {conn} still open {grace:?} after its peer's last complete frame (it trickles a frame it never finishes)"
                        ),
                    );
                }
            }
        }
        while let Some(&due) = self.model.cancels.first() {
            if due.at >= self.now {
                break;
            }
            self.model.cancels.pop_first();
            let node = &self.nodes[due.node];
            let serving = node.inc == due.inc
                && node
                    .serving
                    .iter()
                    .any(|c| c.conn() == due.conn && c.request_id() == due.id);
            // The callee's side of the link is side 1 or 0; either way
            // the link must be alive and unstalled since the cancel.
            let healthy = self
                .links
                .get(&due.link)
                .is_some_and(|l| !l.dead && l.disturbed_until <= due.since);
            if serving && healthy {
                let waited = Duration::from_nanos(due.at - due.since);
                self.fail(
                    Invariant::CancelFreesTheCalleeSlot,
                    format!(
                        "n{}: inbound call {}#{} still in flight {waited:?} after its caller cancelled it ({})",
                        due.node, due.conn, due.id, due.link
                    ),
                );
            }
        }
        while let Some(&first) = self.model.call_deadlines.first() {
            let (at, n, inc, id) = first;
            if at >= self.now {
                break;
            }
            self.model.call_deadlines.pop_first();
            let node = &self.nodes[n];
            if node.inc == inc && node.calls.contains_key(&id) {
                self.fail(
                    Invariant::CallsResolveExactlyOnce,
                    format!(
                        "n{n}: call {}#{} still unresolved after its deadline",
                        id.conn(),
                        id.request_id()
                    ),
                );
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &n in &dirty {
            self.check_limits(n);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn check_limits(&mut self, n: NodeIx) {
        let node = &self.nodes[n];
        let Some(ep) = node.ep.as_ref() else { return };
        let expected = Expected {
            outbound_calls: node.calls.len(),
            max_outbound_per_conn: max_per_conn(node.calls.keys()),
            inbound_calls: node.serving.len(),
            connections: node.conns.values().filter(|c| !c.closed).count(),
        };
        let open = node
            .conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, _)| *id);
        let c = &self.cfg.endpoint;
        let checked = check_tables(c, &ep.stats(), &expected)
            .and_then(|()| check_replies_wait(c, ep, open.clone()))
            .and_then(|()| check_reply_budgets(c, ep, open));
        if let Err(b) = checked {
            self.fail(b.invariant, format!("n{n}: {}", b.detail));
        }
    }

    /// At the end of the quiet phase: every two honest nodes that are up
    /// and trust each other have at most one connection, and agree on it.
    pub(super) fn check_quiet_pairs(&mut self) {
        // Every handshake ended long ago: no slot may still be taken.
        for n in 0..self.nodes.len() {
            let taken = self.nodes[n]
                .ep
                .as_ref()
                .map_or(0, |ep| ep.stats().inbound_handshakes);
            if taken != 0 {
                return self.fail(
                    Invariant::TablesWithinLimits,
                    format!(
                        "n{n}: {taken} handshake slots still taken on a quiet network: they leak"
                    ),
                );
            }
        }
        let honest: Vec<NodeIx> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].role == Role::Honest && self.nodes[n].is_up())
            .collect();
        for (i, &a) in honest.iter().enumerate() {
            for &b in &honest[i + 1..] {
                let (pa, pb) = (self.nodes[a].peer, self.nodes[b].peer);
                if !self.nodes[a].trust.contains(&pb) || !self.nodes[b].trust.contains(&pa) {
                    continue;
                }
                for (x, y, p) in [(a, b, pb), (b, a, pa)] {
                    let count = self.nodes[x].established_to(&p).count();
                    if count > 1 {
                        return self.fail(
                            Invariant::PairsAgreeWhenQuiet,
                            format!("n{x} has {count} established connections to n{y}"),
                        );
                    }
                }
                let (la, lb) = (self.connection_link(a, b), self.connection_link(b, a));
                if la != lb {
                    return self.fail(
                        Invariant::PairsAgreeWhenQuiet,
                        format!("quiet network, but n{a} is connected to n{b} over {la:?} and n{b} to n{a} over {lb:?}"),
                    );
                }
            }
        }
    }
}
