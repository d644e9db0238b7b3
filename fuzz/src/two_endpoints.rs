//! The `two_endpoints` target. Structured: two endpoints, A and B, driven through an arbitrary sequence
//! of operations (dials either way, calls, sends, replies, cancels,
//! exposure and trust changes, disconnects, shutdowns, transport failures,
//! clock steps) and byte deliveries in arbitrary chunk sizes over in-memory
//! links with a bounded capacity (a full link makes the driver hold back,
//! as a real one must). On top of `peernet_fuzz::Model`'s invariants for
//! each endpoint:
//!
//! - a call resolves with the reply its callee produced: `Ok(body)` only if
//!   the callee replied `Ok(body)`, `HandlerError`/`HandlerPanicked` only
//!   with the callee's bytes, a refusal (`no_such_handle`, `forbidden`,
//!   `overloaded`, `shutting_down`) only if no handler ran;
//! - a handler gets exactly the handle and arguments its caller sent;
//! - neither side ever detects a protocol error in the other (both are
//!   correct), except the send cap when a side's peer stops reading;
//! - at the end, after every connection closed, every call has resolved
//!   and every served call has ended.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{
    Net, Node, Rule, STRANGER_SEED, assert_no_protocol_error_but_send_cap, new_node, peer,
};
use arbitrary::Arbitrary;
use bytes::Bytes;
use peernet_proto::{
    CallId, CloseReason, Config, ConnId, Event, GoodbyeCode, HandshakeError, Identity, PeerId,
    Response, Side,
};
use peernet_testkit::model::{check_result, enforce};

const MAX_OPS: usize = 400;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    A,
    B,
}

impl Who {
    fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Target {
    Other,
    Anyone,
    Stranger,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum HandleChoice {
    Echo,
    Secret,
    Unicode,
    Longest,
    Empty,
    TooLong,
}

impl HandleChoice {
    fn name(self) -> String {
        match self {
            HandleChoice::Echo => "echo".into(),
            HandleChoice::Secret => "secret".into(),
            HandleChoice::Unicode => "ключ/κλειδί".into(),
            HandleChoice::Longest => "h".repeat(255),
            HandleChoice::Empty => String::new(),
            HandleChoice::TooLong => "h".repeat(256),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Args {
    Small(Vec<u8>),
    /// Zeros, up to 64 KiB: over a small frame limit, and fills queues.
    Big(u16),
}

impl Args {
    fn bytes(&self) -> Bytes {
        match self {
            Args::Small(v) => Bytes::copy_from_slice(&v[..v.len().min(64)]),
            Args::Big(n) => Bytes::from(vec![0u8; usize::from(*n)]),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Resp {
    Ok,
    Error,
    Panicked,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum RuleChoice {
    Anyone,
    OnlyOther,
    OnlyStranger,
    Never,
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Dial {
        from: Who,
        target: Target,
    },
    Deliver {
        link: u8,
        to: Who,
        bytes: u16,
    },
    Flush,
    Call {
        from: Who,
        handle: HandleChoice,
        args: Args,
        timeout_ms: Option<u16>,
    },
    Send {
        from: Who,
        handle: HandleChoice,
        args: Args,
    },
    Reply {
        who: Who,
        pick: u8,
        response: Resp,
        body: Args,
    },
    Cancel {
        who: Who,
        pick: u8,
    },
    Expose {
        who: Who,
        handle: HandleChoice,
        rule: RuleChoice,
    },
    Unexpose {
        who: Who,
        handle: HandleChoice,
    },
    Pair {
        who: Who,
        whom: Target,
    },
    Unpair {
        who: Who,
        whom: Target,
    },
    Disconnect {
        who: Who,
    },
    /// The transport of `side` fails (reset, failed write).
    Cut {
        link: u8,
        side: Who,
    },
    Advance {
        ms: u16,
    },
    Shutdown {
        who: Who,
    },
    CloseAll {
        who: Who,
    },
    /// `Advance { ms }`, `times` times (a long quiet stretch in one op:
    /// what accumulates per interval shows up).
    Tick {
        ms: u16,
        times: u8,
    },
}

/// One side's limits; the frame limit is shared (a peer configured with a
/// smaller one rightly calls a bigger frame a protocol error).
#[derive(Arbitrary, Debug)]
pub struct Limits {
    max_handshakes: u8,
    max_inbound_calls: u8,
    max_outbound_calls: u8,
    send_buffer: u16,
    max_send_buffer: u16,
    handshake_ms: u16,
    ping_ms: u16,
    idle_ms: u16,
}

impl Limits {
    fn config(&self, max_frame_len: u16) -> Config {
        let mut c = Config::default();
        c.max_frame_len = u32::from(max_frame_len);
        c.max_handshakes = usize::from(self.max_handshakes % 4);
        c.max_inbound_calls = usize::from(self.max_inbound_calls % 8);
        c.max_outbound_calls = usize::from(self.max_outbound_calls % 8);
        c.send_buffer = usize::from(self.send_buffer);
        c.max_send_buffer = usize::from(self.max_send_buffer);
        c.handshake_timeout = Duration::from_millis(u64::from(self.handshake_ms));
        c.ping_interval = Duration::from_millis(u64::from(self.ping_ms));
        c.idle_timeout = Duration::from_millis(u64::from(self.idle_ms));
        c
    }
}

#[derive(Arbitrary, Debug)]
pub struct Scenario {
    /// Both sides' frame limit.
    pub max_frame_len: u16,
    /// Bytes a link holds in flight per direction before the sender's
    /// driver stops taking from its endpoint (as a full socket buffer
    /// would): `1 + link_capacity % 32768`.
    pub link_capacity: u16,
    /// A's other limits.
    pub a: Limits,
    /// B's.
    pub b: Limits,
    /// What happens.
    pub ops: Vec<Op>,
}

/// What a run got to, for checking that seeds reach where they should.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// `Connected` events, both sides.
    pub connected: usize,
    /// Calls that resolved with `Ok`.
    pub ok_results: usize,
    /// Handler invocations (`Call` events).
    pub calls_served: usize,
    /// Times one side superseded a connection in favour of another.
    pub supersedes: usize,
    /// Races the sides resolved differently because their clocks put the
    /// two connections on different sides of `handshake_timeout` (rule 2
    /// of section 4 measured locally): not a bug, a known limit.
    pub rule2_splits: usize,
}

/// A call as its caller made it.
struct Made {
    handle: String,
    args: Bytes,
}

struct World {
    nodes: [Node; 2],
    /// The kit's links between A (node 0, end 0) and B (node 1, end 1).
    net: Net,
    stranger: PeerId,
    /// (caller, caller's conn, request id) -> what was sent.
    made: BTreeMap<(usize, ConnId, u64), Made>,
    /// (callee, callee's conn, request id) -> what its handler answered.
    produced: BTreeMap<(usize, ConnId, u64), Response>,
    summary: Summary,
    /// (side, link) -> when that side's connection on it became
    /// established (`Connected`, or superseded at once).
    established: BTreeMap<(usize, usize), peernet_proto::Instant>,
    /// A side just superseded the connection on this link; its survivor is
    /// the next `Connected` of that side.
    superseded: [Option<usize>; 2],
    /// Per side: (loser link, survivor link) of every supersede.
    decisions: [Vec<(usize, usize)>; 2],
}

impl World {
    fn node(&mut self, who: Who) -> &mut Node {
        &mut self.nodes[who.index()]
    }

    fn id(&self, who: Who) -> PeerId {
        self.nodes[who.index()].model().me
    }

    fn target(&self, from: Who, t: Target) -> Option<PeerId> {
        match t {
            Target::Other => Some(self.id(from.other())),
            Target::Anyone => None,
            Target::Stranger => Some(self.stranger),
        }
    }

    fn link_of(&self, who: Who, conn: ConnId) -> Option<usize> {
        self.net.link_of(who.index(), conn).map(|(l, _)| l)
    }

    /// The far end of `who`'s `conn`.
    fn peer_conn(&self, who: Who, conn: ConnId) -> Option<ConnId> {
        self.net.peer_conn(who.index(), conn)
    }

    fn set_now(&mut self, now: peernet_proto::Instant) {
        for n in &mut self.nodes {
            n.now = now;
        }
    }

    /// Checks the events the kit's net kept, `first`'s before the
    /// other's.
    fn events(&mut self, first: Who) {
        for who in [first, first.other()] {
            for event in self.node(who).take_events() {
                self.on_event(who, event);
            }
        }
    }

    /// Drains `who`'s outputs and routes them; returns whether anything
    /// moved.
    fn pump(&mut self, who: Who) -> bool {
        let [a, b] = &mut self.nodes;
        let moved = self.net.pump(&mut [a, b], who.index());
        self.events(who);
        moved
    }

    /// Delivers up to `n` bytes towards `to` on link `l` (or its FIN).
    fn deliver(&mut self, l: usize, to: Who, n: usize) -> bool {
        let [a, b] = &mut self.nodes;
        let moved = self.net.deliver(&mut [a, b], l, to.index(), n);
        self.events(to);
        moved
    }

    fn on_event(&mut self, who: Who, event: Event) {
        assert_no_protocol_error_but_send_cap(&event);
        let now = self.nodes[who.index()].now;
        match event {
            Event::Connected { conn, .. } => {
                self.summary.connected += 1;
                let link = self.link_of(who, conn).expect("unlinked conn");
                self.established.insert((who.index(), link), now);
                if let Some(loser) = self.superseded[who.index()].take() {
                    self.decide(who, loser, link);
                }
            }
            Event::Disconnected {
                conn,
                reason:
                    CloseReason::Goodbye {
                        by: Side::Local,
                        code: GoodbyeCode::Superseded,
                        ..
                    },
                ..
            } => {
                // The newer connection won; it is announced next.
                self.superseded[who.index()] = self.link_of(who, conn);
            }
            Event::HandshakeFailed {
                conn,
                error: HandshakeError::Superseded,
                ..
            } => {
                // The older connection won; this one never was announced.
                let link = self.link_of(who, conn).expect("unlinked conn");
                self.established.insert((who.index(), link), now);
                let older = self.nodes[who.index()]
                    .model()
                    .connection(&self.id(who.other()));
                if let Some(survivor) = older.and_then(|c| self.link_of(who, c)) {
                    self.decide(who, link, survivor);
                }
            }
            Event::Call(call) => {
                let conn = call.id.conn();
                let far = self.peer_conn(who, conn).expect("call on an unlinked conn");
                let made = self
                    .made
                    .get(&(who.other().index(), far, call.id.request_id()))
                    .expect("a call its caller never made");
                assert_eq!(
                    made.handle,
                    call.handle.as_str(),
                    "handle changed on the way"
                );
                assert_eq!(made.args, call.args, "args changed on the way");
                assert_eq!(call.peer, self.id(who.other()));
                self.summary.calls_served += 1;
            }
            Event::Send(send) => {
                assert_eq!(send.peer, self.id(who.other()));
                let node = &mut self.nodes[who.index()];
                node.ep.send_done(send.conn, send.args.len());
            }
            Event::CallResult { id, result } => {
                let far = self
                    .peer_conn(who, id.conn())
                    .expect("result on an unlinked conn");
                let produced = self
                    .produced
                    .get(&(who.other().index(), far, id.request_id()));
                enforce(check_result(id, &result, produced));
                if result.is_ok() {
                    self.summary.ok_results += 1;
                }
            }
            _ => {}
        }
    }

    /// `who` kept `survivor` over `loser`. Both peers apply the rule of
    /// section 4 to the same two connections, so the other side must not
    /// have kept `loser` over `survivor`, unless rule 2 (a local time
    /// difference over `handshake_timeout`) may have applied on a side.
    fn decide(&mut self, who: Who, loser: usize, survivor: usize) {
        self.summary.supersedes += 1;
        let (me, other) = (who.index(), who.other().index());
        self.decisions[me].push((loser, survivor));
        if !self.decisions[other].contains(&(survivor, loser)) {
            return;
        }
        let times: Vec<_> = [
            (me, loser),
            (me, survivor),
            (other, loser),
            (other, survivor),
        ]
        .iter()
        .filter_map(|k| self.established.get(k).copied())
        .collect();
        let (first, last) = (times.iter().min(), times.iter().max());
        let spread = match (first, last) {
            (Some(f), Some(l)) => l.saturating_duration_since(*f),
            _ => Duration::MAX,
        };
        let h = (self.nodes[0].model().config.handshake_timeout)
            .min(self.nodes[1].model().config.handshake_timeout);
        if times.len() == 4 && spread <= h {
            panic!(
                "{who:?} kept link {survivor} over {loser}, the other side the reverse, \
                 all established within {spread:?} (handshake_timeout {h:?})"
            );
        }
        self.summary.rule2_splits += 1;
    }

    /// Delivers everything, in whole buffers, until nothing moves.
    fn flush(&mut self) {
        for _ in 0..10_000 {
            let mut moved = self.pump(Who::A) | self.pump(Who::B);
            for l in 0..self.net.links.len() {
                for to in [Who::A, Who::B] {
                    while self.deliver(l, to, usize::MAX) {
                        moved = true;
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("flush did not settle");
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Dial { from, target } => {
                let expected = self.target(from, target);
                let [a, b] = &mut self.nodes;
                // Nobody accepting fails the dial at the transport.
                let (from, to) = (from.index(), from.other().index());
                self.net.dial(&mut [a, b], from, to, expected);
            }
            Op::Deliver { link, to, bytes } => {
                if !self.net.links.is_empty() {
                    let l = usize::from(link) % self.net.links.len();
                    self.deliver(l, to, usize::from(bytes));
                }
            }
            Op::Flush => self.flush(),
            Op::Call {
                from,
                handle,
                args,
                timeout_ms,
            } => {
                let to = self.id(from.other());
                let handle = handle.name();
                let args = args.bytes();
                let timeout = timeout_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                if let Ok(id) = self.node(from).call(&to, &handle, &args, timeout) {
                    let key = (from.index(), id.conn(), id.request_id());
                    assert!(self.made.insert(key, Made { handle, args }).is_none());
                }
            }
            Op::Send { from, handle, args } => {
                let to = self.id(from.other());
                let node = self.node(from);
                let _ = node.ep.send(node.now, &to, &handle.name(), &args.bytes());
            }
            Op::Reply {
                who,
                pick,
                response,
                body,
            } => {
                let inbound: Vec<_> = self.node(who).model().inbound.iter().copied().collect();
                if !inbound.is_empty() {
                    let id = inbound[usize::from(pick) % inbound.len()];
                    let body = body.bytes();
                    let response = match response {
                        Resp::Ok => Response::Ok(body),
                        Resp::Error => Response::Error(body),
                        Resp::Panicked => Response::Panicked(body),
                    };
                    if self.node(who).reply(id, response.clone()) {
                        let key = (who.index(), id.conn(), id.request_id());
                        assert!(self.produced.insert(key, response).is_none());
                    }
                }
            }
            Op::Cancel { who, pick } => {
                let outbound: Vec<CallId> =
                    self.node(who).model().outbound.iter().copied().collect();
                if !outbound.is_empty() {
                    let id = outbound[usize::from(pick) % outbound.len()];
                    self.node(who).cancel(id);
                }
            }
            Op::Expose { who, handle, rule } => {
                let rule = match rule {
                    RuleChoice::Anyone => Rule::Anyone,
                    RuleChoice::OnlyOther => Rule::Only([self.id(who.other())].into()),
                    RuleChoice::OnlyStranger => Rule::Only([self.stranger].into()),
                    RuleChoice::Never => Rule::Never,
                };
                self.node(who).expose(&handle.name(), rule);
            }
            Op::Unexpose { who, handle } => self.node(who).unexpose(&handle.name()),
            Op::Pair { who, whom } => {
                let p = self.target(who, whom).unwrap_or(self.id(who.other()));
                let node = self.node(who);
                let fresh = node.ep.pair(p, None);
                assert_eq!(fresh, node.model_mut().trusted.insert(p), "pair vs model");
            }
            Op::Unpair { who, whom } => {
                let p = self.target(who, whom).unwrap_or(self.id(who.other()));
                let node = self.node(who);
                // The model stops trusting first: nothing may run for `p`
                // from here on, even in the events `unpair` produces.
                let was = node.model_mut().trusted.remove(&p);
                assert_eq!(node.ep.unpair(node.now, &p), was, "unpair vs model");
                assert!(!node.ep.is_connected(&p), "connected after unpair");
            }
            Op::Disconnect { who } => {
                let p = self.id(who.other());
                let node = self.node(who);
                let had = node.model().connection(&p).is_some();
                assert_eq!(node.ep.disconnect(node.now, &p), had, "disconnect vs model");
            }
            Op::Cut { link, side } => {
                if !self.net.links.is_empty() {
                    let l = usize::from(link) % self.net.links.len();
                    if let Some(conn) = self.net.links[l].conn[side.index()]
                        && self.node(side).model().is_open(conn)
                    {
                        self.node(side).transport_closed(conn);
                    }
                }
            }
            Op::Advance { ms } => {
                let now = self.nodes[0].now + Duration::from_millis(u64::from(ms));
                self.set_now(now);
                for n in &mut self.nodes {
                    n.fire_timers();
                }
            }
            Op::Tick { ms, times } => {
                for _ in 0..times {
                    self.apply(Op::Advance { ms });
                }
            }
            Op::Shutdown { who } => {
                let node = self.node(who);
                node.ep.shutdown(node.now);
                node.model_mut().shutting_down = true;
            }
            Op::CloseAll { who } => {
                let node = self.node(who);
                node.ep.close_all(node.now);
            }
        }
        self.pump(Who::A);
        self.pump(Who::B);
    }

    /// After a flush, a pair connected both ways is connected over the
    /// same transport: both sides picked the same survivor (section 4).
    fn check_agreement(&self) {
        let a = self.nodes[0].model().connection(&self.id(Who::B));
        let b = self.nodes[1].model().connection(&self.id(Who::A));
        if let (Some(ca), Some(cb)) = (a, b) {
            let la = self.link_of(Who::A, ca);
            let lb = self.link_of(Who::B, cb);
            assert_eq!(la, lb, "A and B kept different connections to each other");
        }
    }
}

/// Runs a scenario; panics on any broken invariant.
pub fn run(scenario: Scenario) -> Summary {
    let stranger = peer(&STRANGER_SEED);
    let (ia, ib) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
    let (pa, pb) = (ia.peer_id(), ib.peer_id());
    let a = new_node(
        scenario.a.config(scenario.max_frame_len),
        &[1; 32],
        &[pb],
        1,
    );
    let b = new_node(
        scenario.b.config(scenario.max_frame_len),
        &[2; 32],
        &[pa],
        2,
    );
    let mut world = World {
        nodes: [a, b],
        net: Net::with_capacity(1 + usize::from(scenario.link_capacity % 32768)),
        stranger,
        made: BTreeMap::new(),
        produced: BTreeMap::new(),
        summary: Summary::default(),
        established: BTreeMap::new(),
        superseded: [None, None],
        decisions: [Vec::new(), Vec::new()],
    };
    for n in &mut world.nodes {
        n.auto_reply = false;
        n.expose("echo", Rule::Anyone);
    }
    for op in scenario.ops.into_iter().take(MAX_OPS) {
        world.apply(op);
    }
    world.flush();
    world.check_agreement();
    for who in [Who::A, Who::B] {
        let node = world.node(who);
        node.ep.close_all(node.now);
        world.flush();
    }
    for n in &world.nodes {
        n.model().check_all_done(&n.ep);
    }
    world.summary
}
