//! Kept connections in simulation: nodes that dial each other by PeerId
//! through their address books and keep each other connected, over a
//! network that partitions and heals, with nodes that crash and restart
//! on new ports (their peers learn the new address from a ticket), peers
//! that stay down, and pairs that unpair.
//!
//! The world routes every `Output::Dial` to the node listening at the
//! address when the dial's outcome arrives, a round trip later: refused
//! if nobody listens there then, timed out after [`CONNECT_TIMEOUT`]
//! across a partition. Links are ordered byte streams
//! with a fixed latency per link; across a partition their bytes are held
//! (as TCP would keep retransmitting) and delivered in order once it
//! heals, so connections die the protocol's way: by idle timeout. A
//! partition holds at most [`PARTITION_WINDOW`] bytes a direction; the
//! writer then takes nothing from its core until it heals.
//!
//! The nodes call and send to their kept peers throughout the run
//! (`calls.rs`), checked by the test kit's invariants of calls.
//!
//! The named invariants ([`KeepInvariant`]) are checked on every dial and
//! redial, on every connection and every loss of one, and at the check
//! points of the [`plan`]; the first failure stops the run. Between check
//! points: a pair with two connections open at both ends a handshake
//! timeout after the second came fails `OneConnectionPerPair`, and a kept
//! pair that loses its connection when nothing has kept it apart for the
//! reconnect bound (it flaps) fails `KeptPairConnectedWithinBound`.
//!
//! One node of a random run ([`KeepConfig::hinted`]) is reached only
//! through its own announcement: it announces its address to every node
//! that keeps it when it starts and every [`ANNOUNCE_EVERY`], as mDNS
//! would, and dials nobody. A LAN host tries to starve that true hint: it
//! announces 1 to 3 fresh false hints to a keeper as it starts, one more
//! right after each of the node's announcements (so the true hint is
//! never the latest heard when a round starts), and after each failed
//! dial of a false hint a fresh one, the true address, and another fresh
//! one (so that, heard again, the true hint would go to the back of the
//! line if hearing it again gave it a new turn). `TrueHintDialedInTime`
//! checks that a keeper dials it in time all the same, and in every round
//! once it worked: a partition may split the node from its keepers, and
//! the host's false hints must not push out the true one that failed.

mod calls;
mod check;
mod directory;
pub mod plan;
mod stall;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    AddrSource, BookError, Config, ConnId, DialFailure, Endpoint, Event, GoodbyeCode,
    HandshakeError, Identity, InboundCallId, Input, Instant, Output, PeerId, TrustList,
};

pub use calls::{CallStats, HANDLE, PARTITION_WINDOW};
pub use check::{
    KeepInvariant, KeepViolation, cap_floor, max_rounds_in, reconnect_bound, rounds_without_reset,
    stall_bound, true_hint_rounds,
};
pub use directory::DIRECTORY_DELAY;
pub use plan::{KeepConfig, PATIENT_IDLE, Step};

use super::Fault;
use super::agenda::Agenda;
use super::rng::SimRng;
use calls::Calls;
use check::Checker;
use directory::Out;

/// A node's index.
pub type NodeIx = usize;

/// How long a dial across a partition takes to fail (the driver's TCP
/// connect timeout, shorter than the core's `dial_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How many false discovery hints a LAN host announces for a kept peer
/// that is down, to each node that keeps it (the book holds 8 addresses a
/// peer, one of them the application's).
pub const FALSE_HINTS: u16 = 6;

/// The false hints announced for node `ix`: nobody listens there (the
/// nodes listen at `10.0.x.y`), so each dial of one is refused.
pub fn false_hints(ix: NodeIx) -> impl Iterator<Item = SocketAddr> {
    let ip = [10, 250, (ix >> 8) as u8, ix as u8];
    (0..FALSE_HINTS).map(move |k| SocketAddr::from((ip, 5000 + k)))
}

/// How often the node reached only through its announcement announces
/// its address.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// The share of dials to a reachable address whose transport opens only
/// after the core's `dial_timeout` (a lost SYN, retransmitted).
const LATE_OPEN: f64 = 1.0 / 4.0;

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct KeepReport {
    /// Nodes.
    pub nodes: usize,
    /// Kept pairs (unordered).
    pub pairs: usize,
    /// Per check point: its label, when its clock started (the heal, the
    /// restart), and the longest time a pair checked took to be connected
    /// again after that.
    pub reconnects: Vec<(String, Duration, Duration)>,
    /// `Reconnecting` events over the run.
    pub redials: u64,
    /// Dials over the run.
    pub dials: u64,
    /// Dials of the false hints a LAN host announced.
    pub hint_dials: u64,
    /// The most rounds a keeper started with the true hint of the node
    /// reached only through its announcement waiting in its book, without
    /// dialing it, before it did.
    pub true_hint_waited: u32,
    /// Dials of that true hint by a keeper whose dial of it had worked
    /// before (after a loss: the partition, most often).
    pub worked_true_dials: u64,
    /// Dials that worked through an address the book had dropped while
    /// they were out (`DialedAddressKept` checked it came back).
    pub dropped_worked: u64,
    /// Whether the run had the application's directory
    /// ([`KeepConfig::directory`]).
    pub directory: bool,
    /// The application's dials of kept peers: those that joined a round
    /// under way, those that started one.
    pub app_dials: (u64, u64),
    /// Handshakes that gave a connection.
    pub connections: u64,
    /// Connections that lost to another one to the same peer (both
    /// sides dialed at once).
    pub superseded: u64,
    /// The run's stall ([`Step::Stall`]): whether it stalled a connection
    /// (the pair had one), how many `Input::Stalled` its writer heard, and
    /// how long after the stall the pair was connected again on a new
    /// connection.
    pub stall: Option<StallReport>,
    /// The calls and sends the nodes made to their kept peers.
    pub calls: CallStats,
    /// Simulated time.
    pub duration: Duration,
}

/// What became of a run's stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallReport {
    /// The pair had a connection to stall.
    pub stalled: bool,
    /// `Input::Stalled`s heard by writers (the stalled connection's).
    pub heard: u64,
    /// From the stall to the pair's first connection on a new link.
    pub reconnected: Option<Duration>,
    /// How the new connection superseded the stalled one at its reader,
    /// if it did before the run ended.
    pub superseded: Option<Supersede>,
}

/// The run's stall under way.
#[derive(Debug, Clone, Copy)]
struct Stall {
    reader: NodeIx,
    writer: NodeIx,
    /// When it began, ns.
    at: u64,
    /// The stalled link, if the pair had one.
    link: Option<u64>,
    /// When the pair was connected again on another link, ns.
    reconnected: Option<u64>,
    /// The rule of section 4 that superseded the stalled connection at its
    /// reader, if one did.
    superseded: Option<Supersede>,
}

/// How a new connection superseded the stalled one at its reader (the
/// rule of section 4 that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supersede {
    /// Both dialed by the same node (rule 1: a redial replaces the
    /// connection its dialer lost).
    SameInitiator,
    /// Dialed by different nodes, more than `handshake_timeout` apart
    /// (rule 2: the older is taken to be half-open).
    HalfOpen,
}

enum Chunk {
    Data(Bytes),
    Fin,
}

/// One direction of a link: chunks in order, delivered one per
/// `Deliver` event; `stalled` counts deliveries held by a partition.
#[derive(Default)]
struct Dir {
    queue: VecDeque<Chunk>,
    stalled: u32,
    done: bool,
    /// Its reader stopped reading, for good, with the window full
    /// ([`Step::Stall`]): its chunks are held, and its writer takes
    /// nothing more from its core.
    reader_stalled: bool,
    /// Since when its writer has waited for the window, ns (it reports
    /// `Input::Stalled` after its `idle_timeout` of it).
    blocked_since: Option<u64>,
}

struct Link {
    /// Per side: node, life, connection.
    ends: [(NodeIx, u32, ConnId); 2],
    latency: u64,
    /// `dirs[i]`: bytes toward side `i`.
    dirs: [Dir; 2],
}

struct Node {
    seed: [u8; 32],
    peer: PeerId,
    ep: Option<Endpoint>,
    inc: u32,
    port: u16,
    trusted: BTreeSet<NodeIx>,
    kept: BTreeSet<NodeIx>,
    /// Connection → (link, side).
    conns: BTreeMap<ConnId, (u64, usize)>,
    /// The connections this node dialed, until their end is reported,
    /// with what they dialed.
    dialed: BTreeMap<ConnId, Out>,
    /// Its dials whose outcome has not arrived yet, oldest first.
    out: Vec<Out>,
    timer_at: Option<u64>,
}

impl Node {
    /// Its first address (`ix` is its index): where its peers' books and
    /// its tickets point.
    fn addr(&self, ix: NodeIx) -> SocketAddr {
        self.addrs(ix, 1)[0]
    }

    /// The `count` addresses it listens at: its first, then others on
    /// other networks (`10.64.x.y`, `10.128.x.y`), on the same port.
    fn addrs(&self, ix: NodeIx, count: u8) -> Vec<SocketAddr> {
        let ix = ix as u32;
        (0..count)
            .map(|k| {
                let net = 64 * k + (ix >> 16) as u8;
                SocketAddr::from(([10, net, (ix >> 8) as u8, ix as u8], self.port))
            })
            .collect()
    }
}

enum Ev {
    Deliver {
        link: u64,
        to: usize,
    },
    Timer {
        node: NodeIx,
        inc: u32,
    },
    Dialed {
        node: NodeIx,
        inc: u32,
        peer: PeerId,
        addr: SocketAddr,
        open: bool,
    },
    Step(usize),
    /// The application asks node `node` to dial `peer` now
    /// (`Endpoint::dial`, a driver's `connect_peer`).
    AppDial {
        node: NodeIx,
        inc: u32,
        peer: PeerId,
    },
    /// The directory answers node `node`'s look-up of `peer`
    /// ([`KeepConfig::directory`]).
    Directory {
        node: NodeIx,
        inc: u32,
        peer: PeerId,
    },
    /// The node reached only through its announcement announces itself.
    Announce {
        node: NodeIx,
        inc: u32,
    },
    /// A connection of the pair came while another was open: by now one
    /// of them must be closed.
    Settled {
        a: NodeIx,
        b: NodeIx,
    },
    /// Side `side` of `link` has waited on a full window since `since`:
    /// if it still has, its node hears `Input::Stalled` (as a driver's
    /// writer that took nothing for the node's `idle_timeout` reports it).
    WriterStalled {
        link: u64,
        side: usize,
        since: u64,
    },
    /// Node `node` calls or sends to a kept peer (`calls.rs`).
    Work {
        node: NodeIx,
        inc: u32,
    },
    /// Node `node`'s slow handler answers a call it serves.
    Answer {
        node: NodeIx,
        inc: u32,
        id: InboundCallId,
        body: Bytes,
    },
}

/// The world.
pub struct KeepSim {
    config: Config,
    plan: Vec<(Duration, Step)>,
    /// Every link's latency, in ns, if fixed.
    latency: Option<u64>,
    rng: SimRng,
    now: u64,
    agenda: Agenda<Ev>,
    nodes: Vec<Node>,
    ix_of: BTreeMap<PeerId, NodeIx>,
    listeners: BTreeMap<SocketAddr, NodeIx>,
    links: BTreeMap<u64, Link>,
    next_link: u64,
    /// Side of every node while partitioned.
    sides: Option<Vec<bool>>,
    check: Checker,
    reconnects: Vec<(String, Duration, Duration)>,
    connections: u64,
    superseded: u64,
    /// When the plan last changed the world (every step but a check), ns.
    last_disruption: u64,
    /// Every false hint the LAN host announced (see [`false_hints`]).
    false_hints: BTreeSet<SocketAddr>,
    /// The node reached only through its announcement.
    hinted: Option<NodeIx>,
    /// Fresh false hints announced so far.
    fresh: u32,
    /// Whether the application dials kept peers now and then.
    app_dials: bool,
    /// The application's dial being made (node, peer): a dial output for
    /// it starts a round of its own.
    app_dial: Option<(NodeIx, PeerId)>,
    /// Application dials that joined a round under way, and that started
    /// one.
    joined: u64,
    started: u64,
    /// Addresses each node listens at.
    addresses: u8,
    /// Whether the application looks its kept peers up in a directory.
    directory: bool,
    /// The draws of the directory's runs: a stream of their own, so that
    /// the other runs draw as before.
    crowd: SimRng,
    /// The patient node and its `idle_timeout` ([`KeepConfig::patient`]).
    patient: Option<(NodeIx, Duration)>,
    /// The run's stall, once begun.
    stall: Option<Stall>,
    /// `Input::Stalled`s heard.
    stalls_heard: u64,
    /// Whether the nodes call and send to their kept peers.
    with_calls: bool,
    /// Their calls.
    calls: Calls,
}

impl KeepSim {
    /// A world as `cfg` describes it, not started.
    pub fn new(cfg: KeepConfig) -> KeepSim {
        let mut rng = SimRng::new(cfg.seed);
        let mut config = cfg.endpoint.clone();
        config.fault = cfg.fault;
        let nodes: Vec<Node> = (0..cfg.nodes)
            .map(|_| {
                let seed = rng.array32();
                Node {
                    seed,
                    peer: Identity::from_seed(&seed).peer_id(),
                    ep: None,
                    inc: 0,
                    port: 4000,
                    trusted: BTreeSet::new(),
                    kept: BTreeSet::new(),
                    conns: BTreeMap::new(),
                    dialed: BTreeMap::new(),
                    out: Vec::new(),
                    timer_at: None,
                }
            })
            .collect();
        let ix_of = nodes.iter().enumerate().map(|(i, n)| (n.peer, i)).collect();
        let mut sim = KeepSim {
            check: Checker::new(cfg.seed, cfg.fault, &config),
            config,
            plan: cfg.plan.clone(),
            latency: cfg.latency.map(|l| l.as_nanos() as u64),
            rng,
            now: 0,
            agenda: Agenda::new(),
            nodes,
            ix_of,
            listeners: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 0,
            sides: None,
            reconnects: Vec::new(),
            connections: 0,
            superseded: 0,
            last_disruption: 0,
            false_hints: (0..cfg.nodes).flat_map(false_hints).collect(),
            hinted: cfg.hinted,
            fresh: 0,
            app_dials: cfg.app_dials,
            app_dial: None,
            joined: 0,
            started: 0,
            addresses: cfg.addresses,
            directory: cfg.directory,
            crowd: SimRng::new(cfg.seed ^ 0x6469_7265_6374),
            patient: cfg.patient,
            stall: None,
            stalls_heard: 0,
            with_calls: cfg.calls,
            calls: Calls::new(cfg.seed),
        };
        for (a, b) in cfg.pairs() {
            for (x, y) in [(a, b), (b, a)] {
                sim.nodes[x].trusted.insert(y);
                sim.nodes[x].kept.insert(y);
            }
        }
        for (i, (at, _)) in cfg.plan.iter().enumerate() {
            sim.push(at.as_nanos() as u64, Ev::Step(i));
        }
        sim
    }

    /// Runs the plan to its end.
    pub fn run(mut self) -> Result<KeepReport, KeepViolation> {
        let mut events = 0u64;
        let debug = std::env::var_os("PEERNET_KEEP_DEBUG").is_some();
        // Pings keep the queue busy forever: the run ends with its plan.
        let end = self
            .plan
            .iter()
            .map(|(at, _)| *at)
            .max()
            .unwrap_or_default();
        let end = end.as_nanos() as u64;
        while let Some((at, ev)) = self.agenda.pop_until(end) {
            self.now = at;
            events += 1;
            if debug && events.is_multiple_of(100_000) {
                eprintln!(
                    "{events} events, t={:?}, queue {}, links {}, {}",
                    Duration::from_nanos(at),
                    self.agenda.len(),
                    self.links.len(),
                    match &ev {
                        Ev::Deliver { link, to } => format!("deliver {link} {to}"),
                        Ev::Timer { node, .. } => format!("timer {node}"),
                        Ev::Dialed { node, addr, .. } => format!("dialed {node} {addr}"),
                        Ev::Step(i) => format!("step {i}"),
                        Ev::Announce { node, .. } => format!("announce {node}"),
                        Ev::AppDial { node, .. } => format!("app dial {node}"),
                        Ev::Directory { node, .. } => format!("directory {node}"),
                        Ev::Settled { a, b } => format!("settled {a}-{b}"),
                        Ev::WriterStalled { link, side, .. } => format!("stalled {link} {side}"),
                        Ev::Work { node, .. } => format!("work {node}"),
                        Ev::Answer { node, .. } => format!("answer {node}"),
                    }
                );
            }
            self.handle(ev);
            self.check_deadlines();
            if let Some(v) = self.check.violation.take() {
                return Err(v);
            }
        }
        let pairs = self.pairs().len();
        Ok(KeepReport {
            nodes: self.nodes.len(),
            pairs,
            reconnects: self.reconnects,
            redials: self.check.reconnects,
            dials: self.check.dials,
            hint_dials: self.check.hint_dials,
            true_hint_waited: self.check.true_hint_waited,
            worked_true_dials: self.check.worked_true_dials,
            dropped_worked: self.check.dropped_worked,
            directory: self.directory,
            app_dials: (self.joined, self.started),
            connections: self.connections,
            superseded: self.superseded,
            stall: self.stall.map(|s| StallReport {
                stalled: s.link.is_some(),
                heard: self.stalls_heard,
                reconnected: s.reconnected.map(|at| Duration::from_nanos(at - s.at)),
                superseded: s.superseded,
            }),
            calls: self.calls.stats(),
            duration: Duration::from_nanos(self.now),
        })
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.agenda.push(at, ev);
    }

    fn instant(&self) -> Instant {
        Instant::from_nanos(self.now)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Step(i) => {
                let step = self.plan[i].1.clone();
                self.step(step);
            }
            Ev::Timer { node, inc } => {
                let now = self.instant();
                let n = &mut self.nodes[node];
                if n.inc != inc || n.timer_at != Some(self.now) {
                    return;
                }
                n.timer_at = None;
                if let Some(ep) = n.ep.as_mut() {
                    ep.handle_timeout(now);
                }
                self.after(node);
            }
            Ev::Deliver { link, to } => self.deliver(link, to),
            Ev::Directory { node, inc, peer } => self.directory_answer(node, inc, peer),
            Ev::AppDial { node, inc, peer } => {
                if self.nodes[node].inc != inc {
                    return;
                }
                let now = self.instant();
                let Some(ep) = self.nodes[node].ep.as_mut() else {
                    return;
                };
                if ep.dial(now, peer).is_ok() {
                    // (a dial output now means a round of its own: its
                    // hints are counted apart; none, that it joined the
                    // round under way, whose hints it shares)
                    self.app_dial = Some((node, peer));
                    self.joined += 1;
                    self.after(node);
                }
            }
            Ev::Announce { node, inc } => {
                if self.nodes[node].inc != inc || !self.up(node) {
                    return;
                }
                let keepers: Vec<NodeIx> = (0..self.nodes.len())
                    .filter(|k| self.nodes[*k].kept.contains(&node))
                    .filter(|k| !self.partitioned(*k, node))
                    .collect();
                let truth = self.nodes[node].addr(node);
                for k in keepers {
                    self.announce(k, node, truth);
                    // (the LAN host answers at once: the true hint is
                    // never the latest heard)
                    let fresh = self.fresh_hint();
                    self.announce(k, node, fresh);
                    self.after(k);
                }
                let at = self.now + ANNOUNCE_EVERY.as_nanos() as u64;
                self.push(at, Ev::Announce { node, inc });
            }
            Ev::Settled { a, b } => {
                let open = self.open_links(a, b);
                // (a partition may have held the loser's GOODBYE: the
                // window starts again from its heal)
                let settle = self.config.handshake_timeout.as_nanos() as u64;
                let since_disruption = self.now - self.last_disruption;
                if open > 1 && since_disruption < settle {
                    self.push(self.last_disruption + settle, Ev::Settled { a, b });
                } else if open > 1 && !self.partitioned(a, b) {
                    let detail = format!(
                        "pair {a}-{b} still has {open} connections open at both ends a \
                         handshake timeout after the last one connected"
                    );
                    self.check
                        .fail(self.now, KeepInvariant::OneConnectionPerPair, detail);
                }
            }
            Ev::Dialed {
                node,
                inc,
                peer,
                addr,
                open,
            } => self.dialed(node, inc, peer, addr, open),
            Ev::WriterStalled { link, side, since } => self.writer_stalled(link, side, since),
            Ev::Work { node, inc } => self.work(node, inc),
            Ev::Answer {
                node,
                inc,
                id,
                body,
            } => {
                self.answer(node, inc, id, body);
                self.after(node);
            }
        }
    }

    /// A new link's one-way latency, in ns.
    fn latency(&mut self) -> u64 {
        match self.latency {
            Some(fixed) => fixed,
            None => self.rng.range(1_000_000, 30_000_000),
        }
    }

    fn partitioned(&self, a: NodeIx, b: NodeIx) -> bool {
        self.sides.as_ref().is_some_and(|s| s[a] != s[b])
    }

    fn up(&self, n: NodeIx) -> bool {
        self.nodes[n].ep.is_some()
    }

    // ----- the plan -----

    fn step(&mut self, step: Step) {
        if !matches!(step, Step::Check { .. }) {
            self.last_disruption = self.now;
        }
        match step {
            Step::Start(n) => self.start(n),
            Step::Crash(n) => {
                self.crash(n);
                // A LAN host announces false addresses for it to every
                // node that keeps it (and re-announces each as it fails,
                // while it is down).
                let keepers: Vec<NodeIx> = (0..self.nodes.len())
                    .filter(|m| self.nodes[*m].kept.contains(&n))
                    .collect();
                for m in keepers {
                    self.announce_false_hints(m, n);
                    self.after(m);
                }
            }
            Step::Restart { node, new_port } => {
                if new_port {
                    self.nodes[node].port += 1;
                }
                self.start(node);
                // Its peers learn where it is now from its ticket.
                let addr = self.nodes[node].addr(node);
                let peer = self.nodes[node].peer;
                let now = self.instant();
                let peers: Vec<NodeIx> = self.nodes[node].trusted.iter().copied().collect();
                for m in peers {
                    // (the node reached only through its announcement
                    // reads no ticket)
                    if !self.nodes[m].trusted.contains(&node) || Some(m) == self.hinted {
                        continue;
                    }
                    if let Some(ep) = self.nodes[m].ep.as_mut() {
                        // (a list full of the application's addresses, as
                        // a directory's runs have, turns a ticket away)
                        match ep.add_address(now, peer, addr, AddrSource::Ticket) {
                            Ok(_) | Err(BookError::Full) => {}
                            Err(e) => panic!("a trusted peer's address: {e}"),
                        }
                    }
                    self.after(m);
                }
            }
            Step::Partition(sides) => self.sides = Some(sides),
            Step::Heal => {
                self.sides = None;
                let ids: Vec<u64> = self.links.keys().copied().collect();
                for id in ids {
                    for to in 0..2 {
                        let link = self.links.get_mut(&id).expect("listed");
                        let stalled = std::mem::take(&mut link.dirs[to].stalled);
                        let at = self.now + link.latency;
                        for _ in 0..stalled {
                            self.push(at, Ev::Deliver { link: id, to });
                        }
                    }
                }
                self.release_writers();
            }
            Step::Unpair(a, b) => {
                let peer = self.nodes[b].peer;
                self.check.unpaired.insert((a, peer));
                self.nodes[a].trusted.remove(&b);
                self.nodes[a].kept.remove(&b);
                let now = self.instant();
                if let Some(ep) = self.nodes[a].ep.as_mut() {
                    ep.unpair(now, &peer);
                }
                self.after(a);
            }
            Step::Check { label, since } => self.check_pairs(&label, since),
            Step::Stall { reader, writer } => self.stall_reader(reader, writer),
        }
    }

    /// Starts node `n` as a driver would from its data directory: the
    /// trust list, the addresses of its peers, and every trusted peer
    /// kept connected.
    fn start(&mut self, n: NodeIx) {
        let node = &self.nodes[n];
        let mut trust = TrustList::new();
        for m in &node.trusted {
            trust.insert(self.nodes[*m].peer, None);
        }
        let identity = Identity::from_seed(&node.seed);
        let mut config = self.config.clone();
        if let Some((_, idle)) = self.patient.filter(|(p, _)| *p == n) {
            config.idle_timeout = idle;
        }
        let mut ep = Endpoint::new(config, identity, trust, Box::new(self.rng.fork()));
        let now = self.instant();
        // (the node reached only through its announcement has no address
        // of its peers, and its keepers none of it)
        let hinted = self.hinted;
        for m in node
            .kept
            .iter()
            .filter(|m| Some(n) != hinted && Some(**m) != hinted)
        {
            let peer = self.nodes[*m].peer;
            let addr = self.nodes[*m].addr(*m);
            ep.add_address(now, peer, addr, AddrSource::Application)
                .expect("a trusted peer's address");
        }
        for m in &node.kept {
            ep.keep_connected(now, self.nodes[*m].peer, true)
                .expect("a trusted peer");
        }
        let down: Vec<NodeIx> = node.kept.iter().copied().filter(|m| !self.up(*m)).collect();
        for addr in node.addrs(n, self.addresses) {
            self.listeners.insert(addr, n);
        }
        let node = &mut self.nodes[n];
        node.ep = Some(ep);
        node.timer_at = None;
        // (kept peers that are down: the LAN host announces them here too)
        for m in down {
            self.announce_false_hints(n, m);
        }
        if let Some(h) = self.hinted.filter(|h| self.nodes[n].kept.contains(h)) {
            // the LAN host's hints come first
            for _ in 0..self.rng.range(1, 3) {
                let fresh = self.fresh_hint();
                self.announce(n, h, fresh);
            }
        }
        if Some(n) == self.hinted {
            let inc = self.nodes[n].inc;
            self.push(self.now, Ev::Announce { node: n, inc });
        }
        self.start_calls(n);
        self.after(n);
    }

    /// A fresh false hint of the LAN host that starves the true one.
    fn fresh_hint(&mut self) -> SocketAddr {
        let c = self.fresh;
        self.fresh += 1;
        let addr = SocketAddr::from(([10, 251, (c >> 8) as u8, c as u8], 5000 + (c >> 16) as u16));
        self.false_hints.insert(addr);
        addr
    }

    /// Node `n` hears `addr` announced for node `m` (from discovery).
    fn announce(&mut self, n: NodeIx, m: NodeIx, addr: SocketAddr) {
        let now = self.instant();
        let peer = self.nodes[m].peer;
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            let _ = ep.add_address(now, peer, addr, AddrSource::Discovery);
        }
        self.note_true_hint(n);
        self.app_dial = None;
    }

    /// For a node `n` that keeps the node reached only through its
    /// announcement: its PeerId, and if its true address waits in `n`'s
    /// book as a hint that never worked, how many other such hints of it
    /// the book holds.
    fn true_hint_waits(&self, n: NodeIx) -> Option<(PeerId, Option<u32>)> {
        let h = self.hinted.filter(|h| self.nodes[n].kept.contains(h))?;
        let (peer, truth) = (self.nodes[h].peer, self.nodes[h].addr(h));
        let ep = self.nodes[n].ep.as_ref()?;
        let hints = || ep.addresses(&peer).filter(|e| e.unproven_hint());
        let waits = hints().any(|e| e.addr == truth);
        Some((peer, waits.then(|| hints().count() as u32 - 1)))
    }

    /// Tells the checker if the true hint no longer waits in `n`'s book,
    /// and if its dial worked.
    fn note_true_hint(&mut self, n: NodeIx) {
        let inc = self.nodes[n].inc;
        if let Some((peer, None)) = self.true_hint_waits(n) {
            self.check.true_hint_gone(n, inc, peer);
        }
        if let Some(peer) = self.true_hint_worked(n) {
            self.check.true_hint_worked(n, inc, peer);
        }
    }

    /// For a node `n` whose book says its dial of the true address of the
    /// node reached only through its announcement worked: that node's
    /// PeerId.
    fn true_hint_worked(&self, n: NodeIx) -> Option<PeerId> {
        let h = self.hinted.filter(|h| self.nodes[n].kept.contains(h))?;
        let (peer, truth) = (self.nodes[h].peer, self.nodes[h].addr(h));
        let ep = self.nodes[n].ep.as_ref()?;
        let worked = ep
            .addresses(&peer)
            .any(|e| e.addr == truth && e.last_ok.is_some());
        worked.then_some(peer)
    }

    /// The LAN host announces node `m`'s false hints to node `n`, if `n`
    /// is up (a book full of better addresses turns some away).
    fn announce_false_hints(&mut self, n: NodeIx, m: NodeIx) {
        let now = self.instant();
        let peer = self.nodes[m].peer;
        if let Some(ep) = self.nodes[n].ep.as_mut() {
            for addr in false_hints(m) {
                let _ = ep.add_address(now, peer, addr, AddrSource::Discovery);
            }
        }
    }

    /// Node `n` crashes: its connections are reset, nothing listens at its
    /// address.
    fn crash(&mut self, n: NodeIx) {
        self.calls_crashed(n, self.nodes[n].inc);
        for addr in self.nodes[n].addrs(n, self.addresses) {
            self.listeners.remove(&addr);
        }
        let node = &mut self.nodes[n];
        node.ep = None;
        node.inc += 1;
        node.timer_at = None;
        let conns = std::mem::take(&mut node.conns);
        node.dialed.clear();
        node.out.clear();
        for (_, (link, side)) in conns {
            if let Some(l) = self.links.get_mut(&link) {
                l.dirs[side].done = true;
            }
            self.send(link, 1 - side, Chunk::Fin);
        }
    }

    // ----- the network -----

    /// Queues `chunk` toward side `to` of `link`.
    fn send(&mut self, link: u64, to: usize, chunk: Chunk) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.dirs[to].queue.push_back(chunk);
        let at = self.now + l.latency;
        self.push(at, Ev::Deliver { link, to });
    }

    fn deliver(&mut self, link: u64, to: usize) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let (a, b) = (l.ends[0].0, l.ends[1].0);
        if self.partitioned(a, b) {
            let l = self.links.get_mut(&link).expect("exists");
            l.dirs[to].stalled += 1;
            return;
        }
        if l.dirs[to].reader_stalled {
            // (its reader reads nothing more)
            return;
        }
        let l = self.links.get_mut(&link).expect("exists");
        let Some(chunk) = l.dirs[to].queue.pop_front() else {
            return;
        };
        let (node, inc, conn) = l.ends[to];
        let fin = matches!(chunk, Chunk::Fin);
        if fin {
            l.dirs[to].done = true;
        }
        if l.dirs.iter().all(|d| d.done && d.queue.is_empty()) {
            self.links.remove(&link);
        }
        let n = &mut self.nodes[node];
        if n.inc != inc {
            return;
        }
        let now = Instant::from_nanos(self.now);
        let Some(ep) = n.ep.as_mut() else { return };
        if !ep.is_open(conn) {
            return;
        }
        match chunk {
            Chunk::Data(data) => ep.handle_input(
                now,
                Input::Received {
                    conn,
                    data: data.into(),
                },
            ),
            Chunk::Fin => {
                n.conns.remove(&conn);
                ep.handle_input(now, Input::Closed { conn });
            }
        }
        self.after(node);
    }

    /// The outcome of node `n`'s dial reaches it.
    fn dialed(&mut self, n: NodeIx, inc: u32, peer: PeerId, addr: SocketAddr, open: bool) {
        if self.nodes[n].inc != inc || !self.up(n) {
            return;
        }
        let out = self
            .dial_done(n, peer, addr)
            .expect("a record of each dial");
        let now = self.instant();
        let target = self.listeners.get(&addr).copied();
        let reachable = target.filter(|t| open && self.up(*t) && !self.partitioned(n, *t));
        let Some(t) = reachable else {
            // (the LAN host announces a false hint again once it failed,
            // while its peer is down)
            let down = self.ix_of.get(&peer).is_some_and(|m| !self.up(*m));
            let again = self.false_hints.contains(&addr) && down;
            let ep = self.nodes[n].ep.as_mut().expect("up");
            ep.dial_failed(now, peer, addr, DialFailure::transport("refused"));
            if again {
                let _ = ep.add_address(now, peer, addr, AddrSource::Discovery);
            }
            // (the LAN host that starves the true hint of the node reached
            // only through its announcement: a fresh false hint, the true
            // address again, another fresh one)
            let h = self.hinted.filter(|h| self.nodes[*h].peer == peer);
            if let Some(h) = h.filter(|_| self.false_hints.contains(&addr)) {
                let fresh = self.fresh_hint();
                self.announce(n, h, fresh);
                if self.up(h) {
                    let truth = self.nodes[h].addr(h);
                    self.announce(n, h, truth);
                }
                let fresh = self.fresh_hint();
                self.announce(n, h, fresh);
            }
            self.after(n);
            return;
        };
        let ep = self.nodes[n].ep.as_mut().expect("up");
        let Ok(ca) = ep.connect_to(now, peer, addr) else {
            // Connected meanwhile, or unpaired: the transport is dropped.
            self.after(n);
            return;
        };
        let cb = self.nodes[t]
            .ep
            .as_mut()
            .expect("up")
            .accept(now)
            .expect("not shutting down");
        let id = self.next_link;
        self.next_link += 1;
        let latency = self.latency();
        self.links.insert(
            id,
            Link {
                ends: [(n, inc, ca), (t, self.nodes[t].inc, cb)],
                latency,
                dirs: Default::default(),
            },
        );
        self.nodes[n].conns.insert(ca, (id, 0));
        self.dial_opened(n, ca, out);
        self.nodes[t].conns.insert(cb, (id, 1));
        self.after(n);
        self.after(t);
    }

    // ----- a node's outputs -----

    /// Drains node `n`'s outputs and re-arms its timer.
    fn after(&mut self, n: NodeIx) {
        let now = self.now;
        let inc = self.nodes[n].inc;
        loop {
            let Some(out) = self.nodes[n].ep.as_mut().and_then(Endpoint::poll_output) else {
                break;
            };
            match out {
                Output::Transmit(conn)
                    if self.window_full(n, conn) || self.partition_full(n, conn) => {}
                Output::Transmit(conn) => {
                    let ep = self.nodes[n].ep.as_mut().expect("up");
                    let data = ep.poll_transmit(conn);
                    if let (Some(data), Some(&(link, side))) =
                        (data, self.nodes[n].conns.get(&conn))
                    {
                        self.send(link, 1 - side, Chunk::Data(data));
                    }
                }
                Output::Close { conn, last } => {
                    if let Some((link, side)) = self.nodes[n].conns.remove(&conn) {
                        if self.close_stalled(link, side) {
                            continue;
                        }
                        if !last.is_empty() {
                            self.send(link, 1 - side, Chunk::Data(last));
                        }
                        if let Some(l) = self.links.get_mut(&link) {
                            l.dirs[side].done = true;
                        }
                        self.send(link, 1 - side, Chunk::Fin);
                    }
                }
                Output::Event(event) => self.on_event(n, inc, event),
                Output::Dial { peer, addr } => {
                    if self.app_dial.take() == Some((n, peer)) {
                        self.joined -= 1;
                        self.started += 1;
                        self.check.on_app_round(n, inc, peer);
                    }
                    let hint = self.false_hints.contains(&addr);
                    self.check.on_dial(now, n, inc, peer, hint);
                    self.dial_out(n, inc, peer, addr);
                    let truth = self.hinted.map(|h| self.nodes[h].addr(h));
                    if truth == Some(addr) && self.ix_of.get(&peer) == self.hinted.as_ref() {
                        self.check.on_true_dial(n, inc, peer);
                    }
                    // (who listens is looked up again when the outcome
                    // arrives: a node that starts listening meanwhile, as
                    // the other of two started at once does, accepts)
                    let target = self.listeners.get(&addr).copied();
                    let (delay, open) = match target {
                        Some(t) if self.partitioned(n, t) => {
                            (CONNECT_TIMEOUT.as_nanos() as u64, false)
                        }
                        // (a false hint is refused a round trip later:
                        // the third party it names answers, with a reset)
                        None if hint => (2 * self.latency(), false),
                        // A connect whose SYN was lost opens after the
                        // core gave up on it: during the backoff or the
                        // next round (not in lockstep runs, whose counts
                        // are exact).
                        _ if self.latency.is_none() && self.rng.chance(LATE_OPEN) => {
                            let dial = &self.config.dial;
                            let waited = dial.dial_timeout.as_nanos() as u64;
                            let later = (dial.first_max.as_nanos() as u64).max(1);
                            (waited + self.rng.range(1, 2 * later), true)
                        }
                        _ => (2 * self.latency(), true),
                    };
                    let ev = Ev::Dialed {
                        node: n,
                        inc,
                        peer,
                        addr,
                        open,
                    };
                    self.push(now + delay, ev);
                }
            }
        }
        let next = self.nodes[n]
            .ep
            .as_ref()
            .and_then(Endpoint::poll_timeout)
            .map(|at| at.as_nanos().max(now));
        if next != self.nodes[n].timer_at {
            self.nodes[n].timer_at = next;
            if let Some(at) = next {
                self.push(at, Ev::Timer { node: n, inc });
            }
        }
        self.note_true_hint(n);
        self.note_dropped(n);
    }

    fn on_event(&mut self, n: NodeIx, inc: u32, event: Event) {
        self.calls_event(n, inc, &event);
        match event {
            Event::Connected { conn, peer, .. } => {
                self.stall_connected(n, conn, peer);
                self.dial_worked(n, conn);
                self.connections += 1;
                self.check.on_connected(n, inc, peer);
                if let Some(&m) = self.ix_of.get(&peer) {
                    self.check
                        .connected_at
                        .insert((n.min(m), n.max(m)), self.now);
                    // (after every connection, not only at the check
                    // points, so that two that coexist between them are
                    // caught too; a race of two dials leaves both open
                    // until the loser's GOODBYE arrives, a latency later)
                    if self.open_links(n, m) > 1 {
                        let settle = self.config.handshake_timeout.as_nanos() as u64;
                        self.push(self.now + settle, Ev::Settled { a: n, b: m });
                    }
                }
            }
            Event::Reconnecting {
                peer,
                attempt,
                after,
            } => {
                self.check
                    .on_reconnecting(self.now, (n, inc, peer), attempt, after);
                if let Some((p, ahead)) = self.true_hint_waits(n).filter(|(p, _)| *p == peer) {
                    self.check.on_true_round(self.now, (n, inc, p), ahead);
                }
                // Now and then the application dials the peer too: at
                // once (joining the round), or within 2 s (during the
                // backoff: a round of its own; or joining the next).
                if self.app_dials && self.rng.chance(1.0 / 4.0) {
                    let at = match self.rng.chance(0.5) {
                        true => self.now,
                        false => self.now + self.rng.range(1, 2_000_000_000),
                    };
                    self.push(at, Ev::AppDial { node: n, inc, peer });
                }
            }
            Event::HandshakeFailed {
                conn,
                error: HandshakeError::Superseded,
                ..
            } => {
                // (it lost to the peer's own connection: the address
                // worked)
                self.dial_worked(n, conn);
                self.nodes[n].dialed.remove(&conn);
                self.superseded += 1;
            }
            Event::HandshakeFailed { conn, .. } => {
                self.nodes[n].dialed.remove(&conn);
            }
            Event::Disconnected { conn, peer, reason }
                if reason.goodbye_code() == Some(GoodbyeCode::Superseded) =>
            {
                // Supersede settles races between the two ends; one end
                // never races itself (one dial in flight per peer).
                let node = &mut self.nodes[n];
                let ours = node.dialed.remove(&conn).is_some();
                let survivor = node.ep.as_ref().and_then(|ep| ep.connection(&peer));
                if ours && survivor.is_some_and(|c| node.dialed.contains_key(&c)) {
                    self.check.fail(
                        self.now,
                        KeepInvariant::OneDialInFlight,
                        format!(
                            "node {n}'s connection {conn} to {peer} was superseded by \
                             {survivor:?}, which it dialed as well"
                        ),
                    );
                }
                self.stall_superseded(n, inc, conn, survivor);
            }
            Event::Disconnected { conn, peer, reason } => {
                self.nodes[n].dialed.remove(&conn);
                self.check_settled(n, peer, &reason);
            }
            _ => {}
        }
    }

    /// A kept pair that nothing has kept apart for the reconnect bound
    /// stays connected: losing its connection then (the pair flaps) fails
    /// `KeptPairConnectedWithinBound` at once, even if it is connected
    /// again by the next check point.
    fn check_settled(&mut self, n: NodeIx, peer: PeerId, reason: &impl std::fmt::Debug) {
        let Some(&m) = self.ix_of.get(&peer) else {
            return;
        };
        let bound = reconnect_bound(&self.config).as_nanos() as u64;
        let kept = self.nodes[n].kept.contains(&m) && self.nodes[m].kept.contains(&n);
        if !kept
            || !self.up(m)
            || self.partitioned(n, m)
            || self.stall_settling(n, m)
            || self.now < self.last_disruption.saturating_add(bound)
            // (another connection of the pair is open at both ends: the
            // pair is still connected)
            || self.open_links(n, m) > 0
        {
            return;
        }
        let detail = format!(
            "kept pair {n}-{m} lost its connection ({reason:?}) {:?} after the plan's last \
             step, with nothing keeping it apart",
            Duration::from_nanos(self.now - self.last_disruption)
        );
        self.check.fail(
            self.now,
            KeepInvariant::KeptPairConnectedWithinBound,
            detail,
        );
    }

    /// The links between `a` and `b` whose connection is open at both
    /// ends (of the ends' current lives).
    fn open_links(&self, a: NodeIx, b: NodeIx) -> usize {
        self.links
            .values()
            .filter(|l| {
                let ends: BTreeSet<NodeIx> = l.ends.iter().map(|e| e.0).collect();
                ends == BTreeSet::from([a, b])
                    && l.ends.iter().all(|&(n, inc, c)| {
                        self.nodes[n].inc == inc
                            && self.nodes[n].ep.as_ref().is_some_and(|e| e.is_open(c))
                    })
            })
            .count()
    }

    // ----- the check points -----

    /// The kept pairs: both keep each other.
    fn pairs(&self) -> Vec<(NodeIx, NodeIx)> {
        let mut pairs = Vec::new();
        for (a, node) in self.nodes.iter().enumerate() {
            for &b in node.kept.range(a + 1..) {
                if self.nodes[b].kept.contains(&a) {
                    pairs.push((a, b));
                }
            }
        }
        pairs
    }

    /// Every kept pair that nothing keeps apart must be connected, on
    /// one connection open at both ends; records how long the slowest took
    /// since `since` (its clock's start).
    fn check_pairs(&mut self, label: &str, since: Duration) {
        let since_ns = since.as_nanos() as u64;
        let mut slowest = Duration::ZERO;
        for (a, b) in self.pairs() {
            if !self.up(a) || !self.up(b) || self.partitioned(a, b) {
                continue;
            }
            let (pa, pb) = (self.nodes[a].peer, self.nodes[b].peer);
            let ca = self.nodes[a].ep.as_ref().and_then(|e| e.connection(&pb));
            let cb = self.nodes[b].ep.as_ref().and_then(|e| e.connection(&pa));
            let link_of = |n: NodeIx, c: Option<ConnId>| {
                c.and_then(|c| self.nodes[n].conns.get(&c)).map(|(l, _)| *l)
            };
            let (la, lb) = (link_of(a, ca), link_of(b, cb));
            let stalled = self.stall.filter(|_| self.is_stalled_pair(a, b));
            if let Some(s) = stalled.filter(|s| s.link.is_some() && s.link == la) {
                let detail = format!(
                    "{label}: kept pair {a}-{b} still on its stalled connection (link {:?}) \
                     {:?} after the stall (connections {ca:?} / {cb:?})",
                    s.link,
                    Duration::from_nanos(self.now - s.at)
                );
                self.check
                    .fail(self.now, KeepInvariant::StalledPairRedialed, detail);
                return;
            }
            if la.is_none() || la != lb {
                let invariant = match stalled {
                    Some(_) => KeepInvariant::StalledPairRedialed,
                    None => KeepInvariant::KeptPairConnectedWithinBound,
                };
                let detail = format!(
                    "{label}: kept pair {a}-{b} not connected {:?} after {since:?} \
                     (connections {ca:?} / {cb:?}, links {la:?} / {lb:?})",
                    Duration::from_nanos(self.now - since_ns)
                );
                self.check.fail(self.now, invariant, detail);
                return;
            }
            let open_links = self.open_links(a, b);
            if open_links > 1 {
                let detail = format!("{label}: pair {a}-{b} has {open_links} open connections");
                self.check
                    .fail(self.now, KeepInvariant::OneConnectionPerPair, detail);
                return;
            }
            // (the stalled pair's reconnect counts from its stall, at the
            // check point the stall starts: a later one's clock started
            // before it)
            if stalled.is_some_and(|s| s.at > since_ns) {
                continue;
            }
            let at = self.check.connected_at.get(&(a, b)).copied().unwrap_or(0);
            slowest = slowest.max(Duration::from_nanos(at.saturating_sub(since_ns)));
        }
        self.reconnects.push((label.to_string(), since, slowest));
    }
}

/// Runs one seed of the small random scenario ([`plan::random`]).
pub fn run_keep_seed(seed: u64, fault: Option<Fault>) -> Result<KeepReport, KeepViolation> {
    KeepSim::new(plan::random(seed, fault)).run()
}

/// Runs one seed of the lockstep scenario ([`plan::lockstep`]).
pub fn run_lockstep_seed(seed: u64, fault: Option<Fault>) -> Result<KeepReport, KeepViolation> {
    KeepSim::new(plan::lockstep(seed, fault)).run()
}
