//! Deterministic simulation of many peernet nodes.
//!
//! A [`Sim`] runs N real [`peernet_proto::Endpoint`]s over a simulated
//! network, all on one virtual clock and one seeded RNG ([`rng::SimRng`]):
//!
//! - [`net`]: TCP-like links (ordered, reliable while they live) that
//!   split and coalesce bytes at random, add random latency, honour a
//!   window (a reader that stalls makes its writer's core queue bytes and
//!   refuse calls with `WouldBlock`), and fail: reset, half-open,
//!   partition, refused dials;
//! - [`node`]: one endpoint plus the model the checks compare it with and
//!   the simulated application (answers calls with bodies that say which
//!   call they answer);
//! - [`workload`]: random calls, sends, cancels, exposes, pair/unpair,
//!   dials (also simultaneous ones), disconnects, shutdowns, and faults:
//!   crashes and restarts with the same identity, clock steps, trust
//!   changes during handshakes, revocation in the middle of calls;
//! - [`intruder`]: raw byte sources (garbage, truncated, replayed or
//!   untrusted handshakes, bad frame headers, the invalid envelope
//!   vectors, and a key-holding peer that floods or breaks the protocol);
//! - [`invariants`]: the named checks, run after every step; the first
//!   that fails stops the run with a [`Violation`] that prints the seed
//!   and the last lines of the [`trace::Trace`];
//! - [`scenario`]: what a seed means (how many nodes, how hostile).
//!
//! Nothing here reads a real clock or iterates a hash map, so a seed
//! replays exactly; [`Report::trace_hash`] proves it.

/// Writes a trace line at the current virtual time.
macro_rules! tr {
    ($sim:expr, $($arg:tt)*) => {
        $sim.trace.line($sim.now, format_args!($($arg)*))
    };
}

mod agenda;
pub mod intruder;
pub mod invariants;
pub mod keep;
pub mod net;
pub mod node;
pub mod reconnects;
pub mod rng;
pub mod scenario;
pub mod slots;
pub mod sources;
pub mod sweep;
pub mod trace;
pub mod v2checks;
pub mod workload;

use std::collections::BTreeMap;
use std::time::Duration;

use peernet_proto::{
    ConnId, DialFailure, Endpoint, Event, InboundCallId, Input, Output, PeerId, Response,
};

pub use intruder::{Attack, Byzantine};
pub use invariants::{Invariant, Violation};
pub use net::LinkId;
pub use node::{Exposed, HANDLES, NodeIx, NodeState, Role};
pub use peernet_proto::testkit::Fault;
pub use scenario::{AppPolicy, SimConfig, TightBudgets, Workload};
pub use v2checks::Tamper;

use agenda::Agenda;
use invariants::Model;
use net::Link;
use node::Node;
use rng::SimRng;
use trace::{Time, Trace};

/// Runs the mixed scenario of `seed` (see [`SimConfig::random`]) with
/// `fault` switched on in every endpoint, through its chaos phase and its
/// quiet phase, checking every invariant after every step.
pub fn run_seed(seed: u64, fault: Option<Fault>) -> Result<Report, Violation> {
    let config = SimConfig::random(seed, fault);
    let chaos = config.workload.chaos;
    let mut sim = Sim::new(config);
    sim.run_for(chaos)?;
    sim.finish()
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes with an endpoint (honest and untrusted).
    pub nodes: usize,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Events processed (each followed by the checks).
    pub steps: u64,
    /// The hash of the whole trace: equal for equal seeds.
    pub trace_hash: u64,
    /// Lines in the trace.
    pub trace_lines: u64,
    /// What happened, counted.
    pub counters: Counters,
    /// Whether the seed drew small byte budgets
    /// ([`SimConfig::budgets`]).
    pub budgets: bool,
    /// Whether its applications answered in bunches
    /// ([`SimConfig::bunch`]).
    pub bunch: bool,
}

impl Report {
    /// Nodes times virtual seconds.
    pub fn node_seconds(&self) -> f64 {
        self.nodes as f64 * self.virtual_time.as_secs_f64()
    }
}

/// Counts of what a run exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Counters {
    pub calls: u64,
    pub replies_ok: u64,
    pub call_errors: u64,
    pub timeouts: u64,
    pub closed_under_call: u64,
    pub denied: u64,
    pub handler_failures: u64,
    pub overloaded: u64,
    pub sends: u64,
    pub handlers_run: u64,
    pub dials: u64,
    pub connected: u64,
    pub handshakes_failed: u64,
    pub superseded: u64,
    pub supersede_pairs_compared: u64,
    pub faults: u64,
    pub crashes: u64,
    pub attacks: u64,
    pub would_block: u64,
    /// Handshakes between a version-1 and a version-2 node that failed.
    pub versions_refused: u64,
    /// Version-2 replays of a first flight that reached their victim.
    pub replayed_inits: u64,
    /// Broken version-2 records read by their victim (which then had
    /// ended the connection).
    pub bad_records: u64,
    /// Floods from one source address started.
    pub floods: u64,
    /// Connections refused at accept for their source's limits.
    pub source_refusals: u64,
    /// Silent connections that gave their handshake slot to a newer one.
    pub evictions: u64,
    /// Reconnect loops of the byzantine peer started.
    pub reconnect_floods: u64,
    /// Handshakes refused because their peer connects too often.
    pub throttled: u64,
    /// Of those, handshakes of a node (not the byzantine peer).
    pub throttled_honest: u64,
    /// Connections a node's writer reported stalled (`Input::Stalled`).
    pub stalls: u64,
    /// Results refused for the byte budgets (`overloaded`: the core's
    /// `Counters::replies_refused`).
    pub replies_refused: u64,
}

impl std::ops::AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        self.calls += o.calls;
        self.replies_ok += o.replies_ok;
        self.call_errors += o.call_errors;
        self.timeouts += o.timeouts;
        self.closed_under_call += o.closed_under_call;
        self.denied += o.denied;
        self.handler_failures += o.handler_failures;
        self.overloaded += o.overloaded;
        self.sends += o.sends;
        self.handlers_run += o.handlers_run;
        self.dials += o.dials;
        self.connected += o.connected;
        self.handshakes_failed += o.handshakes_failed;
        self.superseded += o.superseded;
        self.supersede_pairs_compared += o.supersede_pairs_compared;
        self.faults += o.faults;
        self.crashes += o.crashes;
        self.attacks += o.attacks;
        self.would_block += o.would_block;
        self.versions_refused += o.versions_refused;
        self.replayed_inits += o.replayed_inits;
        self.bad_records += o.bad_records;
        self.floods += o.floods;
        self.source_refusals += o.source_refusals;
        self.evictions += o.evictions;
        self.reconnect_floods += o.reconnect_floods;
        self.throttled += o.throttled;
        self.throttled_honest += o.throttled_honest;
        self.stalls += o.stalls;
        self.replies_refused += o.replies_refused;
    }
}

/// Who holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A simulated node.
    Node(NodeIx),
    /// The byzantine intruder (a trusted key used by a hostile raw peer).
    Byzantine,
}

/// The phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The workload may dial, change trust and inject faults.
    Chaos,
    /// No faults, no dials, no trust or exposure changes: only calls and
    /// sends, so the network settles.
    Quiet,
}

/// Something due at a virtual instant.
#[derive(Debug)]
enum Ev {
    /// Bytes (or FIN) may be readable on `link` in direction `dir`.
    Deliver { link: LinkId, dir: usize },
    /// The dialed side of `link` accepts the transport.
    Accept { link: LinkId },
    /// A node's `poll_timeout` deadline.
    Timer { node: NodeIx, inc: u32 },
    /// The simulated handler finished.
    AppReply {
        node: NodeIx,
        inc: u32,
        call: InboundCallId,
        response: Response,
    },
    /// An application that answers in bunches releases the answers it
    /// held for this instant, all at once ([`SimConfig::bunch`]).
    AppBunch { node: NodeIx },
    /// The workload acts.
    Workload,
    /// A stopped node comes back with the same identity.
    Restart { node: NodeIx, inc: u32 },
    /// A node that called `shutdown` closes everything and stops.
    CloseAll { node: NodeIx, inc: u32 },
    /// A raw intruder's own timer (it closes).
    RawWake { link: LinkId },
    /// Side `side` of `link` has waited since `since` to write: if it is
    /// still waiting, its node hears `Input::Stalled`.
    Stalled {
        link: LinkId,
        side: usize,
        since: u64,
    },
    /// A raw intruder's own timer (it pings or trickles).
    RawTick { link: LinkId },
    /// An application call right after `Connected`.
    EagerCall { node: NodeIx, target: NodeIx },
    /// A dial scheduled by the workload.
    Dial { node: NodeIx, target: NodeIx },
    /// A trust change scheduled by the workload.
    Trust {
        node: NodeIx,
        peer: PeerId,
        trusted: bool,
    },
    /// The next handshake of a flood from one source.
    Flood {
        victim: NodeIx,
        /// Which flood (`sources::of_flood`).
        flood: u64,
        left: u32,
        every: u64,
    },
    /// The next reconnect of the byzantine peer's loop (`reconnects.rs`).
    Reconnect {
        victim: NodeIx,
        left: u32,
        every: u64,
    },
}

/// An answer an application that answers in bunches holds: its node's
/// life, the call, the answer.
type HeldAnswer = (u32, InboundCallId, Response);

/// The simulation.
pub struct Sim {
    cfg: SimConfig,
    rng: SimRng,
    /// Virtual time, ns.
    now: u64,
    agenda: Agenda<Ev>,
    nodes: Vec<Node>,
    owners: BTreeMap<PeerId, Owner>,
    byzantine: Option<[u8; 32]>,
    links: BTreeMap<LinkId, Link>,
    next_link: u64,
    /// Recorded first flights (HELLO + PROOF) of real dials, for replays.
    replays: Vec<(PeerId, Vec<u8>)>,
    trace: Trace,
    model: Model,
    violation: Option<Violation>,
    dirty: Vec<NodeIx>,
    /// Connections `unpair` is ending right now: (node, connection).
    unpairing: Vec<(NodeIx, ConnId)>,
    /// The workload rests until then (global ns): a quiet spell.
    lull_until: u64,
    /// Answers held for release together ([`SimConfig::bunch`]), by node
    /// and release instant: each with its node's life.
    bunches: BTreeMap<(NodeIx, u64), Vec<HeldAnswer>>,
    phase: Phase,
    steps: u64,
    counters: Counters,
    next_token: u64,
    /// Call results kept for a targeted scenario to look at.
    results: Option<Vec<CallOutcome>>,
}

/// A call's result, as kept by [`Sim::keep_results`].
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The caller.
    pub caller: NodeIx,
    /// The callee.
    pub callee: NodeIx,
    /// The token the call carried ([`Sim::call`] hands it out).
    pub token: u64,
    /// What it resolved with.
    pub result: Result<bytes::Bytes, peernet_proto::CallError>,
}

impl Sim {
    /// A simulation of `cfg`: nodes started, trust and exposures set,
    /// the workload's first tick queued (if it is enabled).
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = SimRng::new(cfg.seed);
        let mut nodes = Vec::new();
        let mut owners = BTreeMap::new();
        for ix in 0..cfg.nodes + cfg.untrusted_nodes {
            let role = if ix < cfg.nodes {
                Role::Honest
            } else {
                Role::Untrusted
            };
            let node = Node::new(ix, role, rng.array32());
            owners.insert(node.peer, Owner::Node(ix));
            nodes.push(node);
        }
        let byzantine = cfg.byzantine.then(|| rng.array32());
        let byzantine_peer = byzantine.map(|s| peernet_proto::Identity::from_seed(&s).peer_id());
        if let Some(peer) = byzantine_peer {
            owners.insert(peer, Owner::Byzantine);
        }
        let all: Vec<PeerId> = nodes.iter().map(|n| n.peer).collect();
        for node in nodes.iter_mut() {
            for (j, peer) in all.iter().enumerate() {
                if j == node.ix {
                    continue;
                }
                let trusted = match node.role {
                    // An intruder trusts everyone: it wants in.
                    Role::Untrusted => true,
                    Role::Honest => j < cfg.nodes && rng.chance(cfg.trust_density),
                };
                if trusted {
                    node.trust.insert(*peer);
                }
            }
            if node.role == Role::Honest {
                if let Some(peer) = byzantine_peer {
                    node.trust.insert(peer);
                }
                for handle in &node::HANDLES[..4] {
                    if rng.chance(0.85) {
                        let exposed = workload::random_exposure(&mut rng, &all[..cfg.nodes]);
                        node.exposure.insert(handle, exposed);
                    }
                }
            }
        }
        let mut sim = Sim {
            rng,
            now: 0,
            agenda: Agenda::new(),
            nodes,
            owners,
            byzantine,
            links: BTreeMap::new(),
            next_link: 0,
            replays: Vec::new(),
            trace: Trace::default(),
            model: Model::default(),
            violation: None,
            dirty: Vec::new(),
            unpairing: Vec::new(),
            lull_until: 0,
            bunches: BTreeMap::new(),
            phase: Phase::Chaos,
            steps: 0,
            counters: Counters::default(),
            next_token: 1,
            results: None,
            cfg,
        };
        tr!(
            sim,
            "start seed={} nodes={}+{} byzantine={} fault={:?} v1={:?}",
            sim.cfg.seed,
            sim.cfg.nodes,
            sim.cfg.untrusted_nodes,
            sim.cfg.byzantine,
            sim.cfg.fault,
            (0..sim.nodes.len())
                .filter(|&n| sim.cfg.version_of(n) == peernet_proto::ProtocolVersion::V1)
                .collect::<Vec<_>>()
        );
        for ix in 0..sim.nodes.len() {
            sim.start_node(ix);
        }
        if sim.cfg.workload.enabled {
            sim.bootstrap();
            let first = sim.rng.below(sim.cfg.workload.tick_mean.as_nanos() as u64);
            sim.schedule(first, Ev::Workload);
        }
        sim
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// How many nodes run an endpoint.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `n`'s endpoint, while it is up.
    pub fn endpoint(&self, n: NodeIx) -> Option<&Endpoint> {
        self.nodes[n].ep.as_ref()
    }

    /// Node `n`'s PeerId.
    pub fn peer_id(&self, n: NodeIx) -> PeerId {
        self.nodes[n].peer
    }

    /// Node `n`'s state.
    pub fn node_state(&self, n: NodeIx) -> NodeState {
        self.nodes[n].state
    }

    /// The link behind node `n`'s connection `conn`.
    pub fn link_of(&self, n: NodeIx, conn: ConnId) -> Option<LinkId> {
        self.nodes[n].conns.get(&conn).map(|c| c.link)
    }

    /// The link of node `n`'s established connection to node `m`.
    pub fn connection_link(&self, n: NodeIx, m: NodeIx) -> Option<LinkId> {
        let ep = self.nodes[n].ep.as_ref()?;
        let conn = ep.connection(&self.nodes[m].peer)?;
        self.link_of(n, conn)
    }

    /// What the run did so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// From now on, keep every call result for [`Sim::take_results`].
    pub fn keep_results(&mut self) {
        self.results.get_or_insert_with(Vec::new);
    }

    /// The call results kept since the last look.
    pub fn take_results(&mut self) -> Vec<CallOutcome> {
        self.results
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The token the next [`Sim::call`] will carry.
    pub fn next_token(&self) -> u64 {
        self.next_token
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The report of the run so far.
    pub fn report(&self) -> Report {
        Report {
            seed: self.cfg.seed,
            nodes: self.nodes.len(),
            virtual_time: self.now(),
            steps: self.steps,
            trace_hash: self.trace.hash(),
            trace_lines: self.trace.lines(),
            counters: self.counters.clone(),
            budgets: self.cfg.budgets.is_some(),
            bunch: self.cfg.bunch.is_some(),
        }
    }

    // ----- running -----

    /// Runs every event due in the next `d` of virtual time, checking the
    /// invariants after each.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        let end = self.now + d.as_nanos() as u64;
        self.run_until(end)
    }

    /// Ends the run: the quiet phase (no faults, no dials; stalled readers
    /// read again and stopped nodes restart) lasts long enough for every
    /// handshake to finish or time out and every dead connection to be
    /// found, then the quiet-network invariant is checked.
    pub fn finish(mut self) -> Result<Report, Violation> {
        self.begin_quiet();
        let c = self.cfg.endpoint.clone();
        let settle = c.handshake_timeout + c.idle_timeout + 2 * c.ping_interval;
        self.run_for(settle + Duration::from_secs(1))?;
        self.check_quiet_pairs();
        // A quiet spell: no calls, no sends, longer than the idle timeout
        // plus a ping. Only PINGs keep the connections alive now, and
        // every one of them must stay open.
        let lull = c.idle_timeout + 2 * c.ping_interval;
        self.lull(lull);
        self.run_for(lull)?;
        self.check_quiet_pairs();
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        tr!(self, "end hash={:016x}", self.trace.hash());
        Ok(self.report())
    }

    /// The workload rests for `d` from now: no action at all.
    pub fn lull(&mut self, d: Duration) {
        self.lull_until = self.now + d.as_nanos() as u64;
        tr!(self, "lull until {}", Time(self.lull_until));
    }

    /// Switches to the quiet phase now.
    pub fn begin_quiet(&mut self) {
        if self.phase == Phase::Quiet {
            return;
        }
        self.phase = Phase::Quiet;
        tr!(self, "quiet");
        self.unstall_all();
        for n in 0..self.nodes.len() {
            if self.nodes[n].state == NodeState::Down {
                self.start_node(n);
            }
        }
    }

    fn run_until(&mut self, end: u64) -> Result<(), Violation> {
        loop {
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
            let Some((t, ev)) = self.agenda.pop_until(end) else {
                break;
            };
            self.now = t;
            self.steps += 1;
            self.step(ev);
            self.check_step();
        }
        self.now = self.now.max(end);
        self.check_step();
        match self.violation.take() {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.agenda.push(at.max(self.now), ev);
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { link, dir } => self.deliver(link, dir),
            Ev::Stalled { link, side, since } => self.on_stalled(link, side, since),
            Ev::Accept { link } => self.accept(link),
            Ev::Timer { node, inc } => {
                let n = &mut self.nodes[node];
                if n.inc == inc && n.timer_at == Some(self.now) && n.ep.is_some() {
                    n.timer_at = None;
                    self.touch(node);
                }
            }
            Ev::AppReply {
                node,
                inc,
                call,
                response,
            } => self.app_reply(node, inc, call, response),
            Ev::AppBunch { node } => self.app_bunch(node),
            Ev::Workload if self.now < self.lull_until => {
                let at = self.lull_until;
                self.schedule(at, Ev::Workload);
            }
            Ev::Workload => {
                self.workload_tick();
                let mean = self.cfg.workload.tick_mean.as_nanos() as u64;
                let next = self.now + 1_000 + self.rng.below(2 * mean);
                self.schedule(next, Ev::Workload);
            }
            Ev::Restart { node, inc } => {
                if self.nodes[node].inc == inc && self.nodes[node].state == NodeState::Down {
                    self.start_node(node);
                    self.after_restart(node);
                }
            }
            Ev::CloseAll { node, inc } => {
                if self.nodes[node].inc == inc && self.nodes[node].ep.is_some() {
                    self.close_all(node);
                }
            }
            Ev::RawWake { link } => self.raw_wake(link),
            Ev::Flood {
                victim,
                flood,
                left,
                every,
            } => self.flood_step(victim, flood, left, every),
            Ev::Reconnect {
                victim,
                left,
                every,
            } => self.reconnect_step(victim, left, every),
            Ev::RawTick { link } => self.raw_tick(link),
            Ev::EagerCall { node, target } => {
                let pad = self.rng.below(1_500) as usize;
                let timeout = Some(Duration::from_millis(self.rng.range(100, 2_000)));
                let _ = self.call(node, target, "h0", timeout, pad);
            }
            Ev::Dial { node, target } => {
                if self.nodes[node].is_up() {
                    let peer = self.nodes[target].peer;
                    self.dial(node, target, Some(peer));
                }
            }
            Ev::Trust {
                node,
                peer,
                trusted,
            } => {
                if trusted {
                    self.pair(node, peer);
                } else {
                    self.unpair(node, peer);
                }
            }
        }
    }

    // ----- driving one node -----

    /// After any input or command on node `n`: fire its due timers, carry
    /// out everything it output, and queue its next wake-up.
    fn touch(&mut self, n: NodeIx) {
        let now = self.nodes[n].clock(self.now);
        let Some(ep) = self.nodes[n].ep.as_mut() else {
            return;
        };
        ep.handle_timeout(now);
        self.drain(n);
        self.reschedule_timer(n);
        if !self.dirty.contains(&n) {
            self.dirty.push(n);
        }
    }

    fn drain(&mut self, n: NodeIx) {
        while let Some(out) = self.nodes[n].ep.as_mut().and_then(Endpoint::poll_output) {
            match out {
                Output::Transmit(conn) => {
                    if let Some(c) = self.nodes[n].conns.get(&conn) {
                        let (link, side) = (c.link, c.side);
                        self.try_transmit(link, side);
                    }
                }
                Output::Close { conn, last } => self.on_close(n, conn, last),
                Output::Event(event) => self.on_event(n, event),
                // This world links nodes by hand, never by address (dialing
                // by PeerId has its own world, `keep`): refuse the dial.
                Output::Dial { peer, addr } => {
                    let now = self.nodes[n].clock(self.now);
                    if let Some(ep) = self.nodes[n].ep.as_mut() {
                        ep.dial_failed(now, peer, addr, DialFailure::transport("refused"));
                    }
                }
            }
        }
    }

    fn reschedule_timer(&mut self, n: NodeIx) {
        let node = &self.nodes[n];
        let Some(ep) = node.ep.as_ref() else { return };
        let next = ep.poll_timeout().map(|at| node.global(at).max(self.now));
        if next != node.timer_at {
            let inc = node.inc;
            self.nodes[n].timer_at = next;
            if let Some(at) = next {
                self.schedule(at, Ev::Timer { node: n, inc });
            }
        }
    }

    /// Feeds an input to node `n`'s endpoint and carries out the result.
    fn input(&mut self, n: NodeIx, input: Input) {
        let now = self.nodes[n].clock(self.now);
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.handle_input(now, input);
            self.touch(n);
        }
    }

    fn start_node(&mut self, n: NodeIx) {
        let mut config = self.endpoint_config();
        config.version = self.cfg.version_of(n);
        self.nodes[n].start(&config, &mut self.rng);
        tr!(self, "n{n} up (life {})", self.nodes[n].inc);
        self.touch(n);
    }

    fn endpoint_config(&self) -> peernet_proto::Config {
        let mut c = self.cfg.endpoint.clone();
        c.fault = self.cfg.fault;
        c
    }

    // ----- what the endpoint said -----

    fn on_event(&mut self, n: NodeIx, event: Event) {
        self.check_event(n, &event);
        match event {
            Event::Call(call) => self.app_on_call(n, call),
            // The application's send handler finishes at once.
            Event::Send(send) => {
                if let Some(ep) = self.nodes[n].ep.as_mut() {
                    ep.send_done(send.conn, send.args.len());
                }
            }
            Event::Connected {
                peer, direction, ..
            } => {
                // An eager application calls as soon as it is connected:
                // its CALL follows PROOF on the wire.
                let eager = direction == peernet_proto::Direction::Outbound
                    && self.phase == Phase::Chaos
                    && self.cfg.workload.enabled
                    && self.rng.chance(0.3);
                if let (true, Some(&Owner::Node(b))) = (eager, self.owners.get(&peer)) {
                    let at = self.now;
                    self.schedule(at, Ev::EagerCall { node: n, target: b });
                }
            }
            Event::Disconnected { conn, .. } | Event::HandshakeFailed { conn, .. } => {
                self.nodes[n].conns.remove(&conn);
            }
            // Sends, cancellations and results only feed the checks.
            _ => {}
        }
    }

    fn app_on_call(&mut self, n: NodeIx, call: peernet_proto::InboundCall) {
        self.counters.handlers_run += 1;
        let p = self.cfg.app.clone();
        let token = node::token_of(&call.args);
        let max = self.cfg.endpoint.max_frame_len as u64;
        let pad = if self.rng.chance(p.oversized) {
            // Around the frame limit: some fit, some answer `too_large`.
            self.rng.range(max - 80, max - 30) as usize
        } else {
            self.rng.below(48) as usize
        };
        // (seeds with small byte budgets: large results, often)
        let pad = match &self.cfg.budgets {
            Some(b) if self.rng.chance(b.large) => self.rng.range(max / 4, max - 200) as usize,
            _ => pad,
        };
        // (a call that asks for a large result gets one that fits a frame)
        let pad = match call.args.starts_with(intruder::LARGE) {
            true => max as usize - 200,
            false => pad,
        };
        let response = match self.rng.weighted(&[p.ok, p.error, p.panic, p.never]) {
            0 => Response::Ok(node::reply_body(token, n, &call.peer, pad)),
            1 => Response::Error(node::reply_body(token, n, &call.peer, pad)),
            2 => Response::Panicked(node::panic_note(token, n).into()),
            _ => {
                tr!(
                    self,
                    "n{n} handler for {}#{} never answers",
                    call.id.conn(),
                    call.id.request_id()
                );
                return;
            }
        };
        let delay = if self.rng.chance(p.slow) {
            self.rng.range(p.fast_max, p.slow_max)
        } else {
            self.rng.below(p.fast_max + 1)
        };
        let inc = self.nodes[n].inc;
        // (an application that answers in bunches holds the answer to the
        // next multiple of its period, and releases what it held then
        // together)
        if let Some(period) = self.cfg.bunch {
            let period = (period.as_nanos() as u64).max(1);
            let at = ((self.now + delay) / period + 1) * period;
            let held = self.bunches.entry((n, at)).or_default();
            if held.is_empty() {
                self.schedule(at, Ev::AppBunch { node: n });
            }
            let held = self.bunches.entry((n, at)).or_default();
            held.push((inc, call.id, response));
            return;
        }
        self.schedule(
            self.now + delay,
            Ev::AppReply {
                node: n,
                inc,
                call: call.id,
                response,
            },
        );
    }

    fn app_reply(&mut self, n: NodeIx, inc: u32, call: InboundCallId, response: Response) {
        self.reply_one(n, inc, call, response);
        self.touch(n);
    }

    /// Node `n` releases the answers it held for now, one after another
    /// before its driver takes any bytes: the results pile up in its send
    /// queue and wait for room, where the byte budgets bite.
    fn app_bunch(&mut self, n: NodeIx) {
        let held = self.bunches.remove(&(n, self.now)).unwrap_or_default();
        tr!(self, "n{n} releases {} held answers", held.len());
        for (inc, call, response) in held {
            self.reply_one(n, inc, call, response);
        }
        self.touch(n);
    }

    /// Node `n` (in life `inc`) hands `response` to the endpoint for
    /// `call`; its outputs are left for the caller to drain.
    fn reply_one(&mut self, n: NodeIx, inc: u32, call: InboundCallId, response: Response) {
        let now = self.nodes[n].clock(self.now);
        let node = &mut self.nodes[n];
        if node.inc != inc {
            return;
        }
        let Some(ep) = node.ep.as_mut() else { return };
        let in_flight = node.serving.remove(&call);
        let refused = ep.stats().counters.replies_refused;
        let taken = ep.reply(now, call, response);
        self.counters.replies_refused += ep.stats().counters.replies_refused - refused;
        tr!(
            self,
            "n{n} replies to {}#{}: taken={taken}",
            call.conn(),
            call.request_id()
        );
        if taken != in_flight {
            self.fail(
                Invariant::CallsResolveExactlyOnce,
                format!(
                    "n{n}: reply to inbound call {}#{} was {} by the endpoint, but the call was {} in flight",
                    call.conn(),
                    call.request_id(),
                    if taken { "taken" } else { "refused" },
                    if in_flight { "still" } else { "no longer" },
                ),
            );
        }
    }

    // ----- lifecycle -----

    /// Node `n` crashes: its endpoint and every connection vanish without
    /// a word; its peers find out by idle timeout or by its redial. It
    /// restarts after `restart_after` (if given) with the same identity.
    pub fn crash(&mut self, n: NodeIx, restart_after: Option<Duration>) {
        if self.nodes[n].ep.is_none() {
            return;
        }
        self.counters.crashes += 1;
        tr!(self, "n{n} CRASH");
        let links: Vec<LinkId> = self.nodes[n].conns.values().map(|c| c.link).collect();
        for link in links {
            self.vanish_end(link, n);
        }
        self.nodes[n].stop();
        if let Some(after) = restart_after {
            let inc = self.nodes[n].inc;
            self.schedule(
                self.now + after.as_nanos() as u64,
                Ev::Restart { node: n, inc },
            );
        }
    }

    /// Restarts a stopped node now.
    pub fn restart(&mut self, n: NodeIx) {
        if self.nodes[n].state == NodeState::Down {
            self.start_node(n);
        }
    }

    /// Graceful stop: `shutdown` now, `close_all` after `close_after`,
    /// then the process exits and restarts after `restart_after`.
    pub fn shutdown(&mut self, n: NodeIx, close_after: Duration, restart_after: Option<Duration>) {
        let now = self.nodes[n].clock(self.now);
        let Some(ep) = self.nodes[n].ep.as_mut() else {
            return;
        };
        ep.shutdown(now);
        self.nodes[n].state = NodeState::ShuttingDown;
        tr!(self, "n{n} shutdown");
        self.touch(n);
        let inc = self.nodes[n].inc;
        self.schedule(
            self.now + close_after.as_nanos() as u64,
            Ev::CloseAll { node: n, inc },
        );
        if let Some(after) = restart_after {
            self.schedule(
                self.now + (close_after + after).as_nanos() as u64,
                Ev::Restart {
                    node: n,
                    inc: inc + 1,
                },
            );
        }
    }

    fn close_all(&mut self, n: NodeIx) {
        let now = self.nodes[n].clock(self.now);
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            ep.close_all(now);
        }
        tr!(self, "n{n} close_all, exits");
        self.touch(n);
        // The process exits: whatever the core still drives is gone.
        let links: Vec<LinkId> = self.nodes[n].conns.values().map(|c| c.link).collect();
        for link in links {
            self.vanish_end(link, n);
        }
        self.nodes[n].stop();
    }

    /// Moves node `n`'s clock forward by `by` (a suspended VM, an NTP
    /// step): its timers see the jump at once.
    pub fn clock_step(&mut self, n: NodeIx, by: Duration) {
        self.nodes[n].offset += by.as_nanos() as u64;
        self.nodes[n].last_clock_step = Some(self.now);
        tr!(self, "n{n} clock steps +{}", Time(by.as_nanos() as u64));
        self.counters.faults += 1;
        self.touch(n);
    }

    fn fail(&mut self, invariant: Invariant, detail: String) {
        if self.violation.is_some() {
            return;
        }
        tr!(self, "VIOLATION {}: {detail}", invariant.name());
        self.violation = Some(Violation {
            invariant,
            seed: self.cfg.seed,
            fault: self.cfg.fault,
            at: self.now(),
            detail,
            trace: self.trace.last(),
        });
    }

    /// Short name of a PeerId for the trace: `n3`, `byz`, or hex.
    fn who(&self, peer: &PeerId) -> String {
        match self.owners.get(peer) {
            Some(Owner::Node(n)) => format!("n{n}"),
            Some(Owner::Byzantine) => "byz".into(),
            None => format!("key:{}", &peer.to_string()[..8]),
        }
    }
}
