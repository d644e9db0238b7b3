//! The calls and sends the keep simulation's nodes make to their kept
//! peers throughout the run, and the shared invariants that check them
//! (named in [`peernet_testkit::Invariant`], reported as
//! [`KeepInvariant::Shared`]): `kept_calls_resolve_exactly_once`,
//! `no_result_after_failure`, `healthy_calls_answered`,
//! `disconnected_calls_refused_at_once` and `backed_up_writes_bounded`.
//!
//! Every node exposes [`HANDLE`], whose handler answers at once with the
//! call's arguments (each call's own). Every 2 to 10 s a node picks one
//! of its kept peers and calls it with a deadline of 1 to 8 s (one call in
//! eight with none), or one time in four sends to it, whether the pair is
//! connected or not: at the start, across redials, partitions, stalls,
//! crashes, supersedes and the unpair. A peer across a partition whose
//! connection the node still holds gets a burst of bulk sends instead,
//! until the core refuses one (`WouldBlock`): a partition carries at most
//! [`PARTITION_WINDOW`] bytes a direction (the sockets' buffers), and the
//! writer then takes nothing from its core until the network heals, so
//! that its writes back up there. The draws come from a stream of their
//! own: the rest of the run draws as before.
//!
//! What the core promises, and how it is checked (the core's side only:
//! a driver's `Node::call` that waits for a kept peer's reconnect builds
//! on `NotConnected` as checked here):
//! - a call the core takes resolves exactly once: with its callee's
//!   result, `Timeout` at its deadline (checked at every event after it),
//!   or `ConnectionClosed` before its connection's `Disconnected`;
//!   nothing but a call made resolves, nothing twice;
//! - no result follows a failure (a REPLY that comes late is dropped);
//! - a call made while its pair is connected and healthy (both ends on
//!   the same connection, no partition or stall between them,
//!   [`reconnect_bound`] after the plan's last step) and resolved before
//!   the plan's next step is answered with its arguments, unless a newer
//!   connection superseded its own;
//! - a call or send to a peer with no established connection (by the
//!   node's `Connected`/`Disconnected` events) is refused at once with
//!   `NotConnected`, and one the core takes goes on that connection;
//! - a call or send is taken only while the connection's send queue holds
//!   less than `send_buffer` bytes, and the queue never passes the cap
//!   the test kit derives from the configuration ([`queue_cap`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, ConnId, Event, GoodbyeCode, InboundCallId, PeerId, Response,
};
use peernet_testkit::Invariant;
use peernet_testkit::model::queue_cap;

use super::super::rng::SimRng;
use super::{Chunk, Ev, KeepInvariant, KeepSim, NodeIx, reconnect_bound};

/// The handle every node exposes: it answers with the call's arguments.
pub const HANDLE: &str = "echo";

/// The bytes a partition carries a direction before the writer on its
/// side takes nothing more (they wait, with what follows them, for the
/// network to heal).
pub const PARTITION_WINDOW: usize = 16 << 10;

/// The size of a bulk send, and the most a burst makes.
const BULK: usize = 8 << 10;
const BURST: usize = 16;

/// The share of calls with a deadline whose handler is slow: it answers
/// within [`SLOW_SPREAD_MS`] of when the caller gives up, so that some
/// answers cross their call's CANCEL and come late.
const SLOW: f64 = 1.0 / 8.0;
const SLOW_SPREAD_MS: u64 = 100;

/// A call of ours in flight.
struct Pending {
    made: u64,
    deadline: Option<u64>,
    /// Made while its pair was connected and healthy.
    healthy: bool,
    /// Its arguments: what its callee answers.
    args: Bytes,
}

/// A call by node, life and id.
type Key = (NodeIx, u32, CallId);

/// The calls of a run.
pub(super) struct Calls {
    rng: SimRng,
    pending: BTreeMap<Key, Pending>,
    /// The deadlines of the calls in flight, earliest first.
    deadlines: BTreeSet<(u64, Key)>,
    /// Calls resolved: whether with their callee's result.
    done: BTreeMap<Key, bool>,
    /// The established connections, by the events: (node, life, peer).
    established: BTreeMap<(NodeIx, u32, PeerId), ConnId>,
    /// Writers that wait for the partition to heal: (node, life, conn).
    blocked: BTreeSet<(NodeIx, u32, ConnId)>,
    next: u64,
    stats: CallStats,
}

/// What a run's calls and sends came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls the core took.
    pub made: u64,
    /// Calls answered with their callee's result.
    pub answered: u64,
    /// Of them, made while the pair was healthy.
    pub healthy: u64,
    /// Calls that timed out.
    pub timed_out: u64,
    /// Calls failed by the end of their connection.
    pub closed: u64,
    /// Calls and sends refused at once with `NotConnected`.
    pub refused: u64,
    /// Calls and sends refused with `WouldBlock`.
    pub would_block: u64,
    /// Sends the core took.
    pub sends: u64,
    /// The most bytes a writer's core held queued for a connection whose
    /// transport took nothing (behind a partition).
    pub max_backed_up: usize,
}

impl Calls {
    pub(super) fn new(seed: u64) -> Calls {
        Calls {
            rng: SimRng::new(seed ^ 0x0063_616c_6c73),
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            done: BTreeMap::new(),
            established: BTreeMap::new(),
            blocked: BTreeSet::new(),
            next: 0,
            stats: CallStats::default(),
        }
    }

    pub(super) fn stats(&self) -> CallStats {
        self.stats
    }
}

impl KeepSim {
    fn fail_calls(&mut self, invariant: Invariant, detail: String) {
        self.check
            .fail(self.now, KeepInvariant::Shared(invariant), detail);
    }

    /// Node `n` started: it exposes [`HANDLE`] and starts its work.
    pub(super) fn start_calls(&mut self, n: NodeIx) {
        if !self.with_calls {
            return;
        }
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.expose(HANDLE, Access::Anyone).expect("a valid handle");
        }
        let inc = self.nodes[n].inc;
        let at = self.now + self.calls.rng.range(2_000_000_000, 10_000_000_000);
        self.push(at, Ev::Work { node: n, inc });
    }

    /// Node `n` (life `inc`) calls or sends to one of its kept peers.
    pub(super) fn work(&mut self, n: NodeIx, inc: u32) {
        if self.nodes[n].inc != inc || !self.up(n) {
            return;
        }
        let at = self.now + self.calls.rng.range(2_000_000_000, 10_000_000_000);
        self.push(at, Ev::Work { node: n, inc });
        let kept: Vec<NodeIx> = self.nodes[n].kept.iter().copied().collect();
        let Some(&m) = self.calls.rng.pick(&kept) else {
            return;
        };
        let conn = self.conn_to(n, m);
        if conn.is_some() && self.partitioned(n, m) {
            self.bulk(n, m);
        } else if self.calls.rng.chance(0.25) {
            self.send_one(n, m, &[7; 16]);
        } else {
            self.call_one(n, m);
        }
        self.after(n);
    }

    /// Node `n`'s established connection to `m`, by its events.
    fn conn_to(&self, n: NodeIx, m: NodeIx) -> Option<ConnId> {
        let key = (n, self.nodes[n].inc, self.nodes[m].peer);
        self.calls.established.get(&key).copied()
    }

    /// The bytes node `n`'s core holds queued for `conn`.
    fn queued(&self, n: NodeIx, conn: Option<ConnId>) -> usize {
        let ep = self.nodes[n].ep.as_ref().expect("up");
        conn.map_or(0, |c| ep.queued_bytes(c))
    }

    fn call_one(&mut self, n: NodeIx, m: NodeIx) {
        let (inc, peer) = (self.nodes[n].inc, self.nodes[m].peer);
        let conn = self.conn_to(n, m);
        let queued = self.queued(n, conn);
        self.calls.next += 1;
        let timeout = match self.calls.rng.chance(1.0 / 8.0) {
            true => None,
            false => Some(self.calls.rng.range(1_000_000_000, 8_000_000_000)),
        };
        // (a slow call's handler answers about when its caller gives up)
        let slow = timeout.filter(|_| self.calls.rng.chance(SLOW));
        let wait = slow.map_or(0, |t| {
            let ms = t / 1_000_000;
            self.calls
                .rng
                .range(ms - SLOW_SPREAD_MS, ms + SLOW_SPREAD_MS)
        });
        let args = Bytes::from(format!("{n}>{m} call {} wait {wait}", self.calls.next));
        let now = self.instant();
        let ep = self.nodes[n].ep.as_mut().expect("up");
        let wait = timeout.map(std::time::Duration::from_nanos);
        let result = ep.call(now, &peer, HANDLE, &args, wait);
        let on = result.as_ref().ok().map(CallId::conn);
        if !self.taken(n, m, "call", conn, queued, result.as_ref().map(|_| on)) {
            return;
        }
        let Ok(id) = result else { return };
        let healthy = slow.is_none() && self.healthy(n, m, id.conn());
        let deadline = timeout.map(|t| self.now + t);
        let key = (n, inc, id);
        if let Some(at) = deadline {
            self.calls.deadlines.insert((at, key));
        }
        let pending = Pending {
            made: self.now,
            deadline,
            healthy,
            args,
        };
        self.calls.pending.insert(key, pending);
        self.calls.stats.made += 1;
    }

    /// Sends `args` to `m`; whether the core took it.
    fn send_one(&mut self, n: NodeIx, m: NodeIx, args: &[u8]) -> bool {
        let peer = self.nodes[m].peer;
        let conn = self.conn_to(n, m);
        let queued = self.queued(n, conn);
        let now = self.instant();
        let ep = self.nodes[n].ep.as_mut().expect("up");
        let result = ep.send(now, &peer, HANDLE, args).map_err(CallError::from);
        // (a send names no connection: it goes on the peer's)
        let fine = self.taken(n, m, "send", conn, queued, result.as_ref().map(|()| conn));
        let took = fine && result.is_ok();
        self.calls.stats.sends += u64::from(took);
        took
    }

    /// A burst of bulk sends to `m`, across the partition, until the core
    /// refuses one; the queue it then holds is within its cap.
    fn bulk(&mut self, n: NodeIx, m: NodeIx) {
        let body = vec![0x42; BULK];
        for _ in 0..BURST {
            if !self.send_one(n, m, &body) {
                break;
            }
        }
        let conn = self.conn_to(n, m);
        let queued = self.queued(n, conn);
        let stats = &mut self.calls.stats;
        stats.max_backed_up = stats.max_backed_up.max(queued);
        let cap = queue_cap(&self.config);
        if queued > cap {
            let detail = format!(
                "node {n} holds {queued} bytes queued for {conn:?} to node {m} behind the \
                 partition (cap {cap})"
            );
            self.fail_calls(Invariant::BackedUpWritesBounded, detail);
        }
    }

    /// Checks how the core answered node `n`'s call or send (`what`) to
    /// `m`, made with `conn` established (by the events) and `queued`
    /// bytes in its send queue: taken (on the connection it names, if it
    /// names one), or refused at once. Returns whether all is well.
    fn taken(
        &mut self,
        n: NodeIx,
        m: NodeIx,
        what: &str,
        conn: Option<ConnId>,
        queued: usize,
        result: Result<Option<ConnId>, &CallError>,
    ) -> bool {
        let send_buffer = self.config.send_buffer;
        let (invariant, detail) = match (result, conn) {
            (Ok(on), Some(c)) if on.is_none_or(|on| on == c) && queued < send_buffer => {
                return true;
            }
            (Ok(_), Some(c)) if queued >= send_buffer => (
                Invariant::BackedUpWritesBounded,
                format!(
                    "node {n}'s {what} to node {m} taken with {queued} bytes queued for {c} \
                     (send_buffer {send_buffer})"
                ),
            ),
            (Ok(on), _) => (
                Invariant::DisconnectedCallsRefusedAtOnce,
                format!("node {n}'s {what} to node {m} taken on {on:?}, connected on {conn:?}"),
            ),
            (Err(CallError::NotConnected), None) => {
                self.calls.stats.refused += 1;
                return true;
            }
            (Err(CallError::WouldBlock), Some(_)) => {
                self.calls.stats.would_block += 1;
                return true;
            }
            (Err(e), _) => (
                Invariant::DisconnectedCallsRefusedAtOnce,
                format!("node {n}'s {what} to node {m} refused with {e:?}, connected on {conn:?}"),
            ),
        };
        self.fail_calls(invariant, detail);
        false
    }

    /// Whether node `n`'s call on `conn` to `m` is made while the pair is
    /// connected and healthy: both ends on the same connection, nothing
    /// between them, the plan's last step [`reconnect_bound`] ago.
    fn healthy(&self, n: NodeIx, m: NodeIx, conn: ConnId) -> bool {
        let settled = self.last_disruption + reconnect_bound(&self.config).as_nanos() as u64;
        if !self.up(m) || self.partitioned(n, m) || self.now < settled {
            return false;
        }
        let link = self.nodes[n].conns.get(&conn).map(|(l, _)| *l);
        let theirs = self.nodes[m]
            .ep
            .as_ref()
            .and_then(|ep| ep.connection(&self.nodes[n].peer))
            .and_then(|c| self.nodes[m].conns.get(&c))
            .map(|(l, _)| *l);
        let stalled = self.stall.is_some_and(|s| s.link == link);
        link.is_some() && link == theirs && !stalled
    }

    /// What node `n` (life `inc`) reports, for the calls: connections
    /// established and ended, calls to serve, sends to finish, results.
    pub(super) fn calls_event(&mut self, n: NodeIx, inc: u32, event: &Event) {
        if !self.with_calls {
            return;
        }
        match event {
            Event::Connected { conn, peer, .. } => {
                self.calls.established.insert((n, inc, *peer), *conn);
            }
            Event::Disconnected { conn, peer, reason } => {
                let key = (n, inc, *peer);
                if self.calls.established.get(&key) == Some(conn) {
                    self.calls.established.remove(&key);
                }
                let left = self
                    .calls
                    .pending
                    .keys()
                    .find(|k| (k.0, k.1) == (n, inc) && k.2.conn() == *conn);
                if let Some(&(_, _, id)) = left {
                    let detail = format!(
                        "node {n}'s {conn} ended ({reason}) with its call {id:?} unresolved"
                    );
                    self.fail_calls(Invariant::KeptCallsResolveExactlyOnce, detail);
                }
            }
            Event::Call(call) => {
                // (the arguments end with how long the handler takes, ms)
                let text = std::str::from_utf8(&call.args).expect("ours");
                let wait: u64 = text
                    .rsplit(' ')
                    .next()
                    .and_then(|w| w.parse().ok())
                    .expect("ours");
                let (id, body) = (call.id, call.args.clone());
                match wait {
                    0 => self.answer(n, inc, id, body),
                    _ => self.push(
                        self.now + wait * 1_000_000,
                        Ev::Answer {
                            node: n,
                            inc,
                            id,
                            body,
                        },
                    ),
                }
            }
            Event::Send(send) => {
                let ep = self.nodes[n].ep.as_mut().expect("up");
                ep.send_done(send.conn, send.args.len());
            }
            Event::CallResult { id, result } => self.resolved((n, inc, *id), result),
            _ => {}
        }
    }

    /// Node `n`'s handler answers the call `id` it serves with `body`
    /// (if the call is still in flight: not cancelled, its connection
    /// open).
    pub(super) fn answer(&mut self, n: NodeIx, inc: u32, id: InboundCallId, body: Bytes) {
        let now = self.instant();
        let node = &mut self.nodes[n];
        let Some(ep) = node.ep.as_mut().filter(|_| node.inc == inc) else {
            return;
        };
        ep.reply(now, id, Response::Ok(body));
    }

    fn resolved(&mut self, key: Key, result: &Result<Bytes, CallError>) {
        let (n, _, id) = key;
        let Some(call) = self.calls.pending.remove(&key) else {
            let (invariant, what) = match self.calls.done.get(&key) {
                Some(false) => (Invariant::NoResultAfterFailure, "after it failed"),
                Some(true) => (Invariant::KeptCallsResolveExactlyOnce, "twice"),
                None => (Invariant::KeptCallsResolveExactlyOnce, "never made"),
            };
            let detail = format!("node {n}'s call {id:?} resolved {what}: {result:?}");
            return self.fail_calls(invariant, detail);
        };
        if let Some(at) = call.deadline {
            self.calls.deadlines.remove(&(at, key));
        }
        let answered = matches!(result, Ok(body) if *body == call.args);
        self.calls.done.insert(key, answered);
        let stats = &mut self.calls.stats;
        let early = call.deadline.is_some_and(|at| self.now < at);
        let (invariant, detail) = match result {
            Ok(_) if answered => {
                stats.answered += 1;
                stats.healthy += u64::from(call.healthy);
                return;
            }
            Ok(body) => (
                Invariant::RepliesMatchTheirCalls,
                format!(
                    "node {n}'s call {id:?} answered {body:?}, not {:?}",
                    call.args
                ),
            ),
            Err(CallError::Timeout) if early => (
                Invariant::KeptCallsResolveExactlyOnce,
                format!("node {n}'s call {id:?} timed out before its deadline"),
            ),
            Err(CallError::Timeout | CallError::ConnectionClosed(_)) => {
                match result {
                    Err(CallError::Timeout) => stats.timed_out += 1,
                    _ => stats.closed += 1,
                }
                let superseded = matches!(result, Err(CallError::ConnectionClosed(r))
                    if r.goodbye_code() == Some(GoodbyeCode::Superseded));
                // (a step of the plan since it was made may stand in its
                // way: the run's partition, a crash, the unpair, the stall)
                if !call.healthy || superseded || self.last_disruption >= call.made {
                    return;
                }
                (
                    Invariant::HealthyCallsAnswered,
                    format!(
                        "node {n}'s call {id:?}, made {:?} before on a healthy connection, \
                         failed: {result:?}",
                        std::time::Duration::from_nanos(self.now - call.made)
                    ),
                )
            }
            Err(e) => (
                Invariant::KeptCallsResolveExactlyOnce,
                format!("node {n}'s call {id:?} resolved with {e:?}"),
            ),
        };
        self.fail_calls(invariant, detail);
    }

    /// Every call whose deadline has passed has resolved.
    pub(super) fn check_deadlines(&mut self) {
        let Some(&(at, (n, inc, id))) = self.calls.deadlines.first() else {
            return;
        };
        if at < self.now {
            let late = std::time::Duration::from_nanos(self.now - at);
            let detail = format!(
                "node {n}'s call {id:?} (life {inc}) unresolved {late:?} after its deadline"
            );
            self.fail_calls(Invariant::KeptCallsResolveExactlyOnce, detail);
        }
    }

    /// Node `n` crashes in life `inc`: its calls die with it.
    pub(super) fn calls_crashed(&mut self, n: NodeIx, inc: u32) {
        let mine = |k: &Key| (k.0, k.1) == (n, inc);
        self.calls.pending.retain(|k, _| !mine(k));
        self.calls.deadlines.retain(|(_, k)| !mine(k));
        self.calls.established.retain(|k, _| (k.0, k.1) != (n, inc));
    }

    /// Whether node `n`'s writer of `conn` must take nothing: the
    /// partition holds [`PARTITION_WINDOW`] bytes of it already. It is
    /// noted, to take its queue when the network heals.
    pub(super) fn partition_full(&mut self, n: NodeIx, conn: ConnId) -> bool {
        let Some(&(link, side)) = self.nodes[n].conns.get(&conn) else {
            return false;
        };
        let Some(l) = self.links.get(&link) else {
            return false;
        };
        if !self.partitioned(l.ends[0].0, l.ends[1].0) {
            return false;
        }
        let held: usize = l.dirs[1 - side]
            .queue
            .iter()
            .map(|c| match c {
                Chunk::Data(d) => d.len(),
                Chunk::Fin => 0,
            })
            .sum();
        if held < PARTITION_WINDOW {
            return false;
        }
        self.calls.blocked.insert((n, self.nodes[n].inc, conn));
        true
    }

    /// The network healed: the writers that waited take their queues.
    pub(super) fn release_writers(&mut self) {
        for (n, inc, conn) in std::mem::take(&mut self.calls.blocked) {
            if self.nodes[n].inc != inc {
                continue;
            }
            let Some(ep) = self.nodes[n].ep.as_mut() else {
                continue;
            };
            let data = ep.poll_transmit(conn);
            if let (Some(data), Some(&(link, side))) = (data, self.nodes[n].conns.get(&conn)) {
                self.send(link, 1 - side, Chunk::Data(data));
            }
            self.after(n);
        }
    }
}
