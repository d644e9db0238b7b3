//! The `source_limits` target: one endpoint, R, accepts transports from a
//! handful of addresses (IPv4, an IPv4-mapped IPv6 address, two IPv6
//! addresses in one /64, one in another) with limits the input picks
//! (`SourceLimits`, the node-wide limit on or off, `max_handshakes`,
//! `max_handshake_bytes`, the version). The transports are a trusted
//! peer's real dials (H), an untrusted one's (S), and raw transports fed
//! the input's bytes; the clock moves by steps up to hours (a source stays
//! known for a week).
//!
//! On top of the kit's `Model` for every node, R's admissions are checked
//! against a reference of the rules (`sources/mod.rs`, `node_wide.rs`,
//! `rate.rs`) driven only by what R reports: every `accept_from` must be
//! admitted or refused (and why) exactly as the reference says; a refused
//! transport has no ConnId, so no event of R may name a connection R did
//! not accept; the counters (`refused_at_accept`, `throttled_at_accept`,
//! `refused_node_wide`, inbound handshakes by outcome) equal the
//! reference's; the handshakes' split-frame bytes stay within
//! `max_handshake_bytes`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Config, ConnId, ConnectError, Direction, Event, HandshakeError, Instant, KNOWN_FOR,
    NodeFailureLimit, ProtocolVersion, RejectCode, Source, SourceRefusal,
};

use crate::ops::{Decode, Driven, Reader, Writer, play, pump_three, wind_down};
use crate::{Link, Net, Node, STRANGER_SEED, fuzz_config, new_node, peer};

/// The addresses transports come from, and the source each is (by hand:
/// the reference does not use `Source::from`).
pub const ADDRS: [(&str, usize); 7] = [
    ("192.0.2.1:1000", 0),
    ("192.0.2.1:1001", 0),
    ("[::ffff:192.0.2.1]:7", 0),
    ("192.0.2.2:5", 1),
    ("[2001:db8:1:2::1]:9", 2),
    ("[2001:db8:1:2:ff::9]:9", 2),
    ("[2001:db8:1:3::1]:9", 3),
];
const GROUPS: usize = 4;
const MAX_OPS: usize = 300;
const R: usize = 0;
const H: usize = 1;
const S: usize = 2;

/// The header: what the input configures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Bit 0: version 2; bit 1: the node-wide limit on; bit 2: raw
    /// transports never read what R sends.
    pub flags: u8,
    /// `SourceLimits::handshakes` (modulo 5).
    pub handshakes: u8,
    /// `SourceLimits::failures_per_second`.
    pub per_second: u8,
    /// `SourceLimits::failure_burst` (modulo 8).
    pub burst: u8,
    /// The node-wide limit's `per_second`.
    pub node_per_second: u8,
    /// Its `burst` (modulo 8).
    pub node_burst: u8,
    /// `max_handshakes` (modulo 6).
    pub max_handshakes: u8,
    /// `max_handshake_bytes` over `Config::MIN_FRAME_LEN`, in 64 bytes.
    pub handshake_bytes: u8,
}

/// What happens next.
#[derive(Debug, Clone)]
pub enum Op {
    /// H (trusted) dials R from address `addr % 7`.
    Honest { addr: u8 },
    /// S (untrusted) dials R from `addr`.
    Stranger { addr: u8 },
    /// A raw transport from `addr`, which sends `bytes` at once.
    Raw { addr: u8, bytes: Vec<u8> },
    /// More bytes on raw transport `pick`.
    Feed { pick: u8, bytes: Vec<u8> },
    /// Raw transport `pick` closes.
    Close { pick: u8 },
    /// Up to `n` bytes towards end `to % 2` of link `link`.
    Deliver { link: u8, to: u8, n: u16 },
    /// Every link delivers until nothing moves.
    Flush,
    /// The clock moves `ms`.
    Advance { ms: u16 },
    /// The clock moves `hours` hours at once (a week is 168).
    Jump { hours: u8 },
    /// The transport of end `side % 2` of link `link` fails.
    Cut { link: u8, side: u8 },
    /// R shuts down.
    Shutdown,
}

impl Header {
    fn read(r: &mut Reader<'_>) -> Header {
        Header {
            flags: r.u8(),
            handshakes: r.u8(),
            per_second: r.u8(),
            burst: r.u8(),
            node_per_second: r.u8(),
            node_burst: r.u8(),
            max_handshakes: r.u8(),
            handshake_bytes: r.u8(),
        }
    }

    /// Writes it (seeds).
    pub fn write(&self, w: &mut Writer) {
        for b in [
            self.flags,
            self.handshakes,
            self.per_second,
            self.burst,
            self.node_per_second,
            self.node_burst,
            self.max_handshakes,
            self.handshake_bytes,
        ] {
            w.u8(b);
        }
    }

    fn config(&self) -> Config {
        let mut c = fuzz_config();
        if self.flags & 1 != 0 {
            c.version = ProtocolVersion::V2;
        }
        let l = &mut c.source_limits;
        l.handshakes = usize::from(self.handshakes % 5);
        l.failures_per_second = u32::from(self.per_second);
        l.failure_burst = u32::from(self.burst % 8);
        l.node_failures = (self.flags & 2 != 0).then(|| {
            NodeFailureLimit::new(
                u32::from(self.node_per_second),
                u32::from(self.node_burst % 8),
            )
        });
        c.max_handshakes = usize::from(self.max_handshakes % 6);
        c.max_handshake_bytes =
            Config::MIN_FRAME_LEN as usize + 64 * usize::from(self.handshake_bytes);
        c
    }
}

impl Decode for Op {
    fn read(r: &mut Reader<'_>) -> Op {
        match r.u8() % 11 {
            0 => Op::Honest { addr: r.u8() },
            1 => Op::Stranger { addr: r.u8() },
            2 => Op::Raw {
                addr: r.u8(),
                bytes: r.bytes().to_vec(),
            },
            3 => Op::Feed {
                pick: r.u8(),
                bytes: r.bytes().to_vec(),
            },
            4 => Op::Close { pick: r.u8() },
            5 => Op::Deliver {
                link: r.u8(),
                to: r.u8(),
                n: r.u16(),
            },
            6 => Op::Flush,
            7 => Op::Advance { ms: r.u16() },
            8 => Op::Jump { hours: r.u8() },
            9 => Op::Cut {
                link: r.u8(),
                side: r.u8(),
            },
            _ => Op::Shutdown,
        }
    }
}

impl Op {
    /// Writes it (seeds).
    pub fn write(&self, w: &mut Writer) {
        match self {
            Op::Honest { addr } => w.u8(0).u8(*addr),
            Op::Stranger { addr } => w.u8(1).u8(*addr),
            Op::Raw { addr, bytes } => w.u8(2).u8(*addr).bytes(bytes),
            Op::Feed { pick, bytes } => w.u8(3).u8(*pick).bytes(bytes),
            Op::Close { pick } => w.u8(4).u8(*pick),
            Op::Deliver { link, to, n } => w.u8(5).u8(*link).u8(*to).u16(*n),
            Op::Flush => w.u8(6),
            Op::Advance { ms } => w.u8(7).u16(*ms),
            Op::Jump { hours } => w.u8(8).u8(*hours),
            Op::Cut { link, side } => w.u8(9).u8(*link).u8(*side),
            Op::Shutdown => w.u8(10),
        };
    }
}

/// An input for the target (seeds).
pub fn encode(header: &Header, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    header.write(&mut w);
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

/// What a run got to, for checking that seeds reach where they claim.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Inbound connections R announced.
    pub connected: usize,
    /// Refusals, by why: `Busy`, `Failing`, `NodeFailing`.
    pub busy: usize,
    /// See `busy`.
    pub failing: usize,
    /// See `busy`.
    pub node_failing: usize,
    /// Handshakes that failed by their source's doing.
    pub held: usize,
    /// Of `held`, those evicted from a handshake slot.
    pub evicted: usize,
    /// Transports from a known source admitted while the node-wide
    /// limit had no room for strangers.
    pub known_admitted_in_flood: usize,
    /// Transports from a source that had been known, refused node-wide
    /// after `KNOWN_FOR` ran out.
    pub forgotten_refused: usize,
}

/// One generic cell rate algorithm, as `rate.rs` documents it: each
/// charge clears `interval` later than the last, and there is room while
/// what is owed plus what may yet be owed is within the tolerance.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
}

impl Gcra {
    fn new(per_second: u32, burst: u32) -> Gcra {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Gcra {
            interval,
            tolerance: interval * (burst.max(1) - 1),
        }
    }

    fn has_room(&self, clear_at: Option<Instant>, pending: usize, now: Instant) -> bool {
        let owed = clear_at.map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        owed + self.interval * pending as u32 <= self.tolerance
    }

    fn charge(&self, clear_at: &mut Option<Instant>, now: Instant) {
        let from = clear_at.map_or(now, |at| at.max(now));
        *clear_at = Some(from + self.interval);
    }
}

/// The reference: what R must decide at each accept.
#[derive(Debug)]
struct Reference {
    handshakes: usize,
    rate: Gcra,
    node: Option<Gcra>,
    in_progress: [usize; GROUPS],
    clear_at: [Option<Instant>; GROUPS],
    /// Each accepted connection still in its handshake: its source and
    /// whether it counted as a stranger node-wide.
    tracked: BTreeMap<ConnId, (usize, bool)>,
    node_clear_at: Option<Instant>,
    strangers: usize,
    known: [Option<Instant>; GROUPS],
    /// Groups known once (to tell when one is forgotten).
    ever_known: [bool; GROUPS],
    shutting_down: bool,
    refused: [u64; 3],
    established: u64,
    failed: u64,
}

impl Reference {
    fn is_known(&self, g: usize, now: Instant) -> bool {
        self.known[g].is_some_and(|at| now.saturating_duration_since(at) < KNOWN_FOR)
    }

    fn node_room(&self, now: Instant) -> bool {
        self.node
            .is_none_or(|n| n.has_room(self.node_clear_at, self.strangers, now))
    }

    fn admit(&self, g: usize, now: Instant) -> Result<(), ConnectError> {
        let refuse = |why| Err(ConnectError::SourceLimited(why));
        if self.shutting_down {
            Err(ConnectError::ShuttingDown)
        } else if self.in_progress[g] >= self.handshakes {
            refuse(SourceRefusal::Busy)
        } else if !self
            .rate
            .has_room(self.clear_at[g], self.in_progress[g], now)
        {
            refuse(SourceRefusal::Failing)
        } else if !self.is_known(g, now) && !self.node_room(now) {
            refuse(SourceRefusal::NodeFailing)
        } else {
            Ok(())
        }
    }

    fn track(&mut self, conn: ConnId, g: usize, now: Instant) {
        self.in_progress[g] += 1;
        let stranger = self.node.is_some() && !self.is_known(g, now);
        self.strangers += usize::from(stranger);
        self.tracked.insert(conn, (g, stranger));
    }

    /// `conn`'s handshake ended, `held` against its source or not.
    fn ended(&mut self, conn: ConnId, held: bool, now: Instant) -> Option<usize> {
        let (g, stranger) = self.tracked.remove(&conn)?;
        self.in_progress[g] -= 1;
        if stranger {
            self.strangers -= 1;
            if held && let Some(node) = self.node {
                node.charge(&mut self.node_clear_at, now);
            }
        }
        if held {
            self.rate.charge(&mut self.clear_at[g], now);
        }
        Some(g)
    }

    /// `conn`'s handshake completed (the peer proven): its source is
    /// known from now on.
    fn completed(&mut self, conn: ConnId, now: Instant) {
        if let Some(g) = self.ended(conn, false, now) {
            self.known[g] = Some(now);
            self.ever_known[g] = true;
        }
    }
}

/// Whether a handshake that ended with `error` is held against its source
/// (`Ending::held_against_source`): all but a loss to another connection,
/// an abandon by us, and our own `busy`.
fn held(error: &HandshakeError) -> bool {
    !matches!(
        error,
        HandshakeError::Superseded
            | HandshakeError::Abandoned
            | HandshakeError::Refused(RejectCode::Busy)
    )
}

/// The conn an event names, if any.
fn conn_of(event: &Event) -> Option<ConnId> {
    match event {
        Event::Connected { conn, .. }
        | Event::Disconnected { conn, .. }
        | Event::HandshakeFailed { conn, .. } => Some(*conn),
        Event::Call(call) => Some(call.id.conn()),
        Event::Send(send) => Some(send.conn),
        Event::CallCancelled(id) => Some(id.conn()),
        Event::CallResult { id, .. } => Some(id.conn()),
        _ => None,
    }
}

struct World {
    nodes: [Node; 3],
    net: Net,
    reference: Reference,
    /// Every connection R accepted.
    accepted: BTreeSet<ConnId>,
    /// R's raw transports, in order.
    raw: Vec<ConnId>,
    raw_reads: bool,
    summary: Summary,
}

impl Driven for World {
    type Op = Op;

    fn nodes(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    fn pump(&mut self) {
        pump_three(&mut self.net, &mut self.nodes, R, &self.raw, self.raw_reads);
        self.events();
    }

    fn flush(&mut self) {
        for _ in 0..10_000 {
            let [r, h, s] = &mut self.nodes;
            let moved = self.net.deliver_all(&mut [r, h, s]);
            self.pump();
            if !moved {
                return;
            }
        }
        panic!("flush did not settle");
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Honest { addr } => self.dial(H, addr),
            Op::Stranger { addr } => self.dial(S, addr),
            Op::Raw { addr, bytes } => {
                if let Some(conn) = self.accept(addr) {
                    self.raw.push(conn);
                    self.feed(conn, &bytes);
                }
            }
            Op::Feed { pick, bytes } => {
                if let Some(conn) = self.raw(pick) {
                    self.feed(conn, &bytes);
                }
            }
            Op::Close { pick } => {
                if let Some(conn) = self.raw(pick) {
                    self.nodes[R].transport_closed(conn);
                }
            }
            Op::Deliver { link, to, n } => {
                if !self.net.links.is_empty() {
                    let l = usize::from(link) % self.net.links.len();
                    let [r, h, s] = &mut self.nodes;
                    self.net
                        .deliver(&mut [r, h, s], l, usize::from(to % 2), usize::from(n));
                }
            }
            Op::Flush => self.flush(),
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(ms))),
            Op::Jump { hours } => self.advance(Duration::from_secs(3600 * u64::from(hours))),
            Op::Cut { link, side } => {
                if !self.net.links.is_empty() {
                    let l = usize::from(link) % self.net.links.len();
                    let link = &self.net.links[l];
                    let e = usize::from(side % 2);
                    if let Some(conn) = link.conn[e] {
                        self.nodes[link.nodes[e]].transport_closed(conn);
                    }
                }
            }
            Op::Shutdown => {
                let r = &mut self.nodes[R];
                r.ep.shutdown(r.now);
                r.model_mut().shutting_down = true;
                self.reference.shutting_down = true;
            }
        }
        self.pump();
    }
}

impl World {
    fn now(&self) -> Instant {
        self.nodes[R].now
    }

    fn events(&mut self) {
        let now = self.now();
        for event in self.nodes[R].take_events() {
            if let Some(conn) = conn_of(&event) {
                assert!(
                    self.accepted.contains(&conn),
                    "an event for {conn}, which R never accepted: {event:?}"
                );
            }
            match event {
                Event::Connected {
                    conn, direction, ..
                } => {
                    assert_eq!(direction, Direction::Inbound, "R never dials");
                    self.reference.completed(conn, now);
                    self.reference.established += 1;
                    self.summary.connected += 1;
                }
                Event::HandshakeFailed { conn, error, .. } => {
                    self.reference.failed += 1;
                    if error == HandshakeError::Superseded {
                        self.reference.completed(conn, now);
                    } else {
                        let held = held(&error);
                        self.summary.held += usize::from(held);
                        self.summary.evicted += usize::from(error == HandshakeError::Evicted);
                        self.reference.ended(conn, held, now);
                    }
                }
                _ => {}
            }
        }
        for n in [H, S] {
            self.nodes[n].events.clear();
        }
        self.check_counters();
    }

    fn check_counters(&self) {
        let r = &self.nodes[R];
        let stats = r.ep.stats();
        let c = &stats.counters;
        let [busy, failing, node] = self.reference.refused;
        assert_eq!(
            c.refused_at_accept,
            busy + failing + node,
            "refused_at_accept"
        );
        assert_eq!(c.throttled_at_accept, failing + node, "throttled_at_accept");
        assert_eq!(c.refused_node_wide, node, "refused_node_wide");
        assert_eq!(
            c.handshakes_in.established, self.reference.established,
            "inbound handshakes established"
        );
        assert_eq!(
            c.handshakes_in.failures(),
            self.reference.failed,
            "inbound handshakes failed"
        );
        let config = &r.model().config;
        assert!(
            stats.handshake_bytes <= config.max_handshake_bytes,
            "handshake bytes {} over {}",
            stats.handshake_bytes,
            config.max_handshake_bytes
        );
    }

    /// R accepts a transport from `addr`, as the reference says it must;
    /// the new connection, if admitted.
    fn accept(&mut self, addr: u8) -> Option<ConnId> {
        let (text, g) = ADDRS[usize::from(addr) % ADDRS.len()];
        let source = Source::from(text.parse::<SocketAddr>().expect("address"));
        let now = self.now();
        let expected = self.reference.admit(g, now);
        let flooded = !self.reference.node_room(now);
        let got = self.nodes[R].accept_from(source);
        assert_eq!(
            got.as_ref().map(|_| ()),
            expected.as_ref().map(|_| ()),
            "accept_from {text} at {now:?}: {:?}",
            self.reference
        );
        match expected {
            Err(ConnectError::SourceLimited(why)) => {
                let i = match why {
                    SourceRefusal::Busy => 0,
                    SourceRefusal::Failing => 1,
                    _ => 2,
                };
                self.reference.refused[i] += 1;
                match why {
                    SourceRefusal::Busy => self.summary.busy += 1,
                    SourceRefusal::Failing => self.summary.failing += 1,
                    _ if self.reference.ever_known[g] => self.summary.forgotten_refused += 1,
                    _ => self.summary.node_failing += 1,
                }
            }
            Ok(()) if flooded && self.reference.node.is_some() => {
                self.summary.known_admitted_in_flood += 1;
            }
            _ => {}
        }
        let conn = got.ok()?;
        self.reference.track(conn, g, now);
        self.accepted.insert(conn);
        Some(conn)
    }

    /// `who` dials R from `addr`.
    fn dial(&mut self, who: usize, addr: u8) {
        let r = self.nodes[R].me();
        let Some(out) = self.nodes[who].connect(Some(r)) else {
            return;
        };
        let inn = self.accept(addr);
        self.net.links.push(Link::new(who, out, R, inn));
        if inn.is_none() {
            // (the driver closes a refused transport unread)
            self.nodes[who].transport_closed(out);
        }
    }

    fn raw(&mut self, pick: u8) -> Option<ConnId> {
        let open: Vec<ConnId> = (self.raw.iter())
            .copied()
            .filter(|c| self.nodes[R].is_open(*c))
            .collect();
        (!open.is_empty()).then(|| open[usize::from(pick) % open.len()])
    }

    fn feed(&mut self, conn: ConnId, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.nodes[R].receive(conn, Bytes::copy_from_slice(bytes));
        }
    }

    fn advance(&mut self, by: Duration) {
        for n in &mut self.nodes {
            n.advance(by);
        }
    }
}

/// Runs an input; panics on any broken invariant.
pub fn run(data: &[u8]) -> Summary {
    let mut r = Reader::new(data);
    let header = Header::read(&mut r);
    let config = header.config();
    let hid = peer(&[1; 32]);
    let rid = peer(&[2; 32]);
    let limits = config.source_limits;
    let reference = Reference {
        handshakes: limits.handshakes.max(1),
        rate: Gcra::new(limits.failures_per_second, limits.failure_burst),
        node: limits
            .node_failures
            .map(|n| Gcra::new(n.per_second, n.burst)),
        in_progress: [0; GROUPS],
        clear_at: [None; GROUPS],
        tracked: BTreeMap::new(),
        node_clear_at: None,
        strangers: 0,
        known: [None; GROUPS],
        ever_known: [false; GROUPS],
        shutting_down: false,
        refused: [0; 3],
        established: 0,
        failed: 0,
    };
    let mut dialer = config.clone();
    dialer.source_limits = Default::default();
    let mut world = World {
        nodes: [
            new_node(config, &[2; 32], &[hid], 2),
            new_node(dialer.clone(), &[1; 32], &[rid], 1),
            new_node(dialer, &STRANGER_SEED, &[rid], 3),
        ],
        net: Net::default(),
        reference,
        accepted: BTreeSet::new(),
        raw: Vec::new(),
        raw_reads: header.flags & 4 == 0,
        summary: Summary::default(),
    };
    play(&mut world, &mut r, MAX_OPS);
    let raw: Vec<_> = world.raw.iter().map(|&c| (R, c)).collect();
    wind_down(&mut world, &raw);
    world.summary
}
