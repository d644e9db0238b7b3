//! Shared harness for the fuzz targets: fixed identities and configs, a
//! deterministic endpoint factory, the chunked byte feed, and [`Node`], an
//! endpoint paired with a model of what it may legally do. Every output the
//! endpoint produces goes through [`Model::observe`], which panics (so
//! libFuzzer reports a crash) on any broken invariant:
//!
//! - every call of ours resolves exactly once (and `Stats` agrees with the
//!   model's count of calls in flight, both ways);
//! - every call we serve ends exactly once (reply or `CallCancelled`);
//! - no `Call`/`Send` event for an untrusted peer, an unexposed handle, or a
//!   peer the handle's access rule refuses, nor while shutting down;
//! - `Connected` only for a trusted peer with no other connection, every
//!   connection ends exactly once (`Disconnected` if announced, else
//!   `HandshakeFailed`) and is closed exactly once;
//! - buffered input per connection `<= max_frame_len + 4`, inbound calls per
//!   connection `<= max_inbound_calls`, our calls per connection
//!   `<= max_outbound_calls`, inbound handshakes `<= max_handshakes`, and the
//!   send queue within its hard cap (plus a few CANCEL/PING frames, which
//!   are not refused).
//!
//! The setup is deterministic (seeded RNGs, fixed identities), so the corpus
//! generator (`src/bin/make-corpus.rs`) can compute WELCOME/PROOF frames
//! that the targets' endpoints will accept.

pub mod two_endpoints;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, CloseReason, Config, ConnId, Endpoint, Event, GoodbyeCode, Identity,
    InboundCall, InboundCallId, Input, Instant, Output, PeerId, Response, Side, TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The vectors' initiator seed (`handshake.json`).
pub const INITIATOR_SEED: [u8; 32] = [0x11; 32];
/// The vectors' responder seed.
pub const RESPONDER_SEED: [u8; 32] = [0x22; 32];
/// A third identity no endpoint runs as.
pub const STRANGER_SEED: [u8; 32] = [0x33; 32];

/// RNG seeds of the endpoints built by [`initiator`] and [`responder`].
pub const INITIATOR_RNG: u64 = 0xA;
/// See [`INITIATOR_RNG`].
pub const RESPONDER_RNG: u64 = 0xB;

/// The clock every target starts at.
pub const START: Instant = Instant::from_millis(1_000);

/// Handles the single-endpoint targets expose: `echo` to anyone, `secret`
/// only to the stranger (so a trusted caller gets `forbidden`), `never` to
/// nobody (a rule that always refuses).
pub const ECHO: &str = "echo";
/// See [`ECHO`].
pub const SECRET: &str = "secret";
/// See [`ECHO`].
pub const NEVER: &str = "never";

/// The deliberate bug named by `PEERNET_FUZZ_FAULT` (a `Fault` variant
/// name), read once. Only with the `fault-injection` feature: used to check
/// that the targets catch real bugs.
#[cfg(feature = "fault-injection")]
pub fn fault() -> Option<peernet_proto::testkit::Fault> {
    use peernet_proto::testkit::Fault;
    static FAULT: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| {
        let name = std::env::var("PEERNET_FUZZ_FAULT").ok()?;
        let fault = Fault::from_name(&name);
        Some(fault.unwrap_or_else(|| panic!("PEERNET_FUZZ_FAULT: no fault {name:?}")))
    })
}

/// Small limits, so that a fuzzer reaches every one of them.
pub fn fuzz_config() -> Config {
    let mut c = Config::default();
    c.max_frame_len = 4096;
    c.max_handshakes = 2;
    c.max_inbound_calls = 8;
    c.max_outbound_calls = 8;
    c.send_buffer = 2048;
    c.max_send_buffer = 4096;
    c.handshake_timeout = Duration::from_secs(5);
    c.ping_interval = Duration::from_secs(2);
    c.idle_timeout = Duration::from_secs(6);
    c
}

/// The PeerId of a seed.
pub fn peer(seed: &[u8; 32]) -> PeerId {
    Identity::from_seed(seed).peer_id()
}

/// The limit `enforce_send_cap` applies (mirrors `Config::hard_send_cap`).
pub fn hard_send_cap(c: &Config) -> usize {
    c.max_send_buffer
        .max(c.send_buffer.saturating_add(c.max_frame_len as usize + 4))
}

/// A CANCEL or PING frame is at most 4 + 2 + 9 bytes.
const SMALL_FRAME: usize = 15;

/// Who may call a handle, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `Access::Anyone`.
    Anyone,
    /// `Access::Only`.
    Only(BTreeSet<PeerId>),
    /// `Access::rule(|_| false)`.
    Never,
}

impl Rule {
    /// The endpoint's equivalent.
    pub fn access(&self) -> Access {
        match self {
            Rule::Anyone => Access::Anyone,
            Rule::Only(set) => Access::only(set.iter().copied()),
            Rule::Never => Access::rule(|_| false),
        }
    }

    fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Rule::Anyone => true,
            Rule::Only(set) => set.contains(peer),
            Rule::Never => false,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ConnModel {
    /// The peer of a `Connected` event.
    connected: Option<PeerId>,
    /// `Output::Close` seen.
    closed: bool,
    /// `Disconnected` or `HandshakeFailed` seen.
    ended: bool,
}

/// What an endpoint may legally do, tracked from the commands given to it
/// and the outputs it produced.
#[derive(Debug)]
pub struct Model {
    /// The endpoint's own id.
    pub me: PeerId,
    /// The configuration in force (as adjusted by `Endpoint::new`).
    pub config: Config,
    /// The trust list.
    pub trusted: BTreeSet<PeerId>,
    /// The exposed handles.
    pub exposed: BTreeMap<String, Rule>,
    /// `shutdown` was called.
    pub shutting_down: bool,
    conns: BTreeMap<ConnId, ConnModel>,
    peers: BTreeMap<PeerId, ConnId>,
    /// Our calls in flight.
    pub outbound: BTreeSet<CallId>,
    /// Calls we serve, in flight.
    pub inbound: BTreeSet<InboundCallId>,
}

impl Model {
    fn new(me: PeerId, config: Config, trusted: BTreeSet<PeerId>) -> Model {
        Model {
            me,
            config,
            trusted,
            exposed: BTreeMap::new(),
            shutting_down: false,
            conns: BTreeMap::new(),
            peers: BTreeMap::new(),
            outbound: BTreeSet::new(),
            inbound: BTreeSet::new(),
        }
    }

    /// A transport the endpoint now drives (`connect`/`accept` said Ok).
    pub fn opened(&mut self, conn: ConnId) {
        assert!(
            self.conns.insert(conn, ConnModel::default()).is_none(),
            "{conn} reused"
        );
    }

    /// Whether `conn` is open (not closed yet).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.closed)
    }

    /// The open connections.
    pub fn open_conns(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The established connection to `peer`, per the events seen.
    pub fn connection(&self, peer: &PeerId) -> Option<ConnId> {
        self.peers.get(peer).copied()
    }

    /// Checks one output against the model and updates it.
    pub fn observe(&mut self, output: &Output) {
        match output {
            Output::Transmit(_) => {}
            Output::Close { conn, .. } => {
                let c = self.conns.get_mut(conn).expect("Close for an unknown conn");
                assert!(!c.closed, "{conn} closed twice");
                c.closed = true;
            }
            Output::Event(event) => self.observe_event(event),
        }
    }

    fn observe_event(&mut self, event: &Event) {
        match event {
            Event::Connected { conn, peer, .. } => {
                assert!(self.trusted.contains(peer), "Connected to untrusted {peer}");
                assert_ne!(*peer, self.me, "Connected to myself");
                let c = self.conns.get_mut(conn).expect("Connected: unknown conn");
                assert!(
                    !c.closed && !c.ended && c.connected.is_none(),
                    "Connected for a dead or already connected {conn}"
                );
                c.connected = Some(*peer);
                if let Some(other) = self.peers.insert(*peer, *conn) {
                    panic!("two connections to {peer}: {other} and {conn}");
                }
            }
            Event::Disconnected { conn, peer, .. } => {
                let c = self
                    .conns
                    .get_mut(conn)
                    .expect("Disconnected: unknown conn");
                assert_eq!(c.connected, Some(*peer), "Disconnected without Connected");
                assert!(!c.ended, "{conn} ended twice");
                c.ended = true;
                if self.peers.get(peer) == Some(conn) {
                    self.peers.remove(peer);
                }
                self.check_no_calls_on(*conn);
            }
            Event::HandshakeFailed { conn, .. } => {
                let c = self
                    .conns
                    .get_mut(conn)
                    .expect("HandshakeFailed: unknown conn");
                assert!(c.connected.is_none(), "HandshakeFailed after Connected");
                assert!(!c.ended, "{conn} ended twice");
                c.ended = true;
                self.check_no_calls_on(*conn);
            }
            Event::Call(call) => {
                self.check_handler_may_run(call.id.conn(), &call.peer, call.handle.as_str());
                assert!(
                    self.inbound.insert(call.id),
                    "Call {:?} while the same id is in flight",
                    call.id
                );
            }
            Event::Send(send) => {
                // A SEND has no id; its connection is the peer's one.
                let conn = self.peers.get(&send.peer).copied();
                let conn = conn.expect("Send from a peer with no connection");
                self.check_handler_may_run(conn, &send.peer, send.handle.as_str());
            }
            Event::CallCancelled(id) => {
                assert!(
                    self.inbound.remove(id),
                    "CallCancelled for {id:?}, which is not in flight"
                );
            }
            Event::CallResult { id, result } => {
                assert!(
                    self.outbound.remove(id),
                    "CallResult for {id:?}, which is not in flight (twice, or never made)"
                );
                if let Err(CallError::NotConnected | CallError::WouldBlock) = result {
                    panic!("{id:?} resolved with an error `call` reports synchronously");
                }
            }
            _ => {}
        }
    }

    fn check_handler_may_run(&self, conn: ConnId, peer: &PeerId, handle: &str) {
        assert!(
            self.trusted.contains(peer),
            "handler runs for untrusted {peer}"
        );
        assert!(!self.shutting_down, "handler runs while shutting down");
        let rule = self.exposed.get(handle);
        let rule = rule.unwrap_or_else(|| panic!("handler runs for unexposed {handle:?}"));
        assert!(
            rule.allows(peer),
            "handler runs for {handle:?}, refused to {peer}"
        );
        let c = self.conns.get(&conn).expect("handler for an unknown conn");
        assert!(!c.closed && !c.ended, "handler for closed {conn}");
        assert_eq!(c.connected, Some(*peer), "handler for unannounced {conn}");
    }

    /// After a connection ended, none of its calls may be in flight.
    fn check_no_calls_on(&self, conn: ConnId) {
        assert!(
            !self.outbound.iter().any(|id| id.conn() == conn),
            "{conn} ended with calls of ours unresolved"
        );
        assert!(
            !self.inbound.iter().any(|id| id.conn() == conn),
            "{conn} ended with calls we serve not cancelled"
        );
    }

    /// Checks the endpoint's counters against the model and the limits.
    /// Call only with the output queue drained.
    pub fn check_stats(&self, ep: &Endpoint) {
        let s = ep.stats();
        let c = &self.config;
        let open = self.conns.values().filter(|c| !c.closed).count();
        assert_eq!(s.connections, open, "connections: stats vs model");
        assert_eq!(s.outbound_calls, self.outbound.len(), "calls in flight");
        assert_eq!(s.inbound_calls, self.inbound.len(), "calls served");
        assert!(
            s.max_buffered_input_per_conn <= c.max_frame_len as usize + 4,
            "{} bytes buffered for one frame, limit {}",
            s.max_buffered_input_per_conn,
            c.max_frame_len
        );
        assert!(
            s.max_inbound_calls_per_conn <= c.max_inbound_calls,
            "{} inbound calls on one conn",
            s.max_inbound_calls_per_conn
        );
        assert!(
            s.inbound_handshakes <= c.max_handshakes,
            "{} inbound handshakes",
            s.inbound_handshakes
        );
        let mut per_conn: BTreeMap<ConnId, usize> = BTreeMap::new();
        for id in &self.outbound {
            *per_conn.entry(id.conn()).or_default() += 1;
        }
        for (conn, n) in per_conn {
            assert!(n <= c.max_outbound_calls, "{n} calls of ours on {conn}");
        }
        let cap = hard_send_cap(c) + (c.max_outbound_calls + 2) * SMALL_FRAME;
        assert!(
            s.max_queued_bytes_per_conn <= cap,
            "{} bytes queued for one conn, cap {cap}",
            s.max_queued_bytes_per_conn
        );
        for (peer, conn) in &self.peers {
            assert_eq!(ep.connection(peer), Some(*conn), "registry vs events");
        }
        assert_eq!(ep.peers().count(), self.peers.len(), "registry size");
    }

    /// At the end: every connection closed and ended, every call resolved.
    pub fn check_all_done(&self, ep: &Endpoint) {
        for (conn, c) in &self.conns {
            assert!(c.closed && c.ended, "{conn} still open at the end: {c:?}");
        }
        assert!(self.outbound.is_empty(), "calls never resolved");
        assert!(self.inbound.is_empty(), "served calls never ended");
        let s = ep.stats();
        assert_eq!(s.connections, 0);
        assert_eq!(s.inbound_handshakes, 0, "handshake slots leaked");
        assert_eq!(s.timers, 0, "timers left armed with no connection");
    }
}

/// What an output asks of the driver, after the model checked it.
#[derive(Debug)]
pub enum Action {
    /// `conn` has bytes; take them with `Node::take` when the transport can.
    Transmit(ConnId),
    /// Write `last`, then close.
    Close(ConnId, Bytes),
    /// An event (already checked).
    Event(Event),
}

/// How a node's built-in "application" answers calls, decided by the first
/// argument byte so that the fuzzer controls it.
pub fn policy(args: &[u8]) -> Option<Response> {
    match args.first().map(|b| b % 4) {
        None | Some(0) => Some(Response::Ok(Bytes::copy_from_slice(args))),
        Some(1) => Some(Response::Error(Bytes::copy_from_slice(args))),
        Some(2) => Some(Response::Panicked(Bytes::copy_from_slice(args))),
        _ => None,
    }
}

/// An endpoint and its model.
pub struct Node {
    /// The endpoint under test.
    pub ep: Endpoint,
    /// What it may do.
    pub model: Model,
    /// The clock.
    pub now: Instant,
    /// Whether [`Node::pump`] answers calls by [`policy`]; when false the
    /// caller answers them from the `Event::Call` actions.
    pub auto_reply: bool,
    /// Per connection: when it opened or last had bytes delivered.
    last_input: BTreeMap<ConnId, Instant>,
    /// Deadlines were last fired at this instant.
    fired_at: Option<Instant>,
}

impl Node {
    /// An endpoint running as `seed`, trusting `trusted`.
    pub fn new(config: Config, seed: &[u8; 32], trusted: &[PeerId], rng: u64) -> Node {
        #[cfg(feature = "fault-injection")]
        let config = {
            let mut config = config;
            config.fault = fault();
            config
        };
        let identity = Identity::from_seed(seed);
        let me = identity.peer_id();
        let mut trust = TrustList::new();
        for p in trusted {
            trust.insert(*p, None);
        }
        let ep = Endpoint::new(
            config,
            identity,
            trust,
            Box::new(ChaCha20Rng::seed_from_u64(rng)),
        );
        let model = Model::new(me, ep.config().clone(), trusted.iter().copied().collect());
        Node {
            ep,
            model,
            now: START,
            auto_reply: true,
            last_input: BTreeMap::new(),
            fired_at: None,
        }
    }

    /// Exposes `handle` on the endpoint and in the model.
    pub fn expose(&mut self, handle: &str, rule: Rule) {
        if self.ep.expose(handle, rule.access()).is_ok() {
            self.model.exposed.insert(handle.into(), rule);
        }
    }

    /// Unexposes `handle` on the endpoint and in the model.
    pub fn unexpose(&mut self, handle: &str) {
        let was = self.ep.unexpose(handle);
        assert_eq!(was, self.model.exposed.remove(handle).is_some(), "unexpose");
    }

    /// The standard exposure of the single-endpoint targets.
    pub fn expose_standard(&mut self) {
        self.expose(ECHO, Rule::Anyone);
        self.expose(SECRET, Rule::Only([peer(&STRANGER_SEED)].into()));
        self.expose(NEVER, Rule::Never);
    }

    /// Dials (`connect`), recording the new connection.
    pub fn connect(&mut self, expected: Option<PeerId>) -> Option<ConnId> {
        let conn = self.ep.connect(self.now, expected).ok()?;
        self.model.opened(conn);
        self.last_input.insert(conn, self.now);
        Some(conn)
    }

    /// Accepts a transport, recording the new connection.
    pub fn accept(&mut self) -> Option<ConnId> {
        let conn = self.ep.accept(self.now).ok()?;
        self.model.opened(conn);
        self.last_input.insert(conn, self.now);
        Some(conn)
    }

    /// Feeds bytes.
    pub fn receive(&mut self, conn: ConnId, data: Bytes) {
        if !data.is_empty() {
            self.last_input.insert(conn, self.now);
        }
        self.ep
            .handle_input(self.now, Input::Received { conn, data });
    }

    /// The transport of `conn` ended.
    pub fn transport_closed(&mut self, conn: ConnId) {
        self.ep.handle_input(self.now, Input::Closed { conn });
    }

    /// Moves the clock and fires what is due.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        self.fire_timers();
    }

    /// Fires what is due at `self.now`; the next [`Node::pump`] then checks
    /// that no connection outlived its deadline.
    pub fn fire_timers(&mut self) {
        self.ep.handle_timeout(self.now);
        self.fired_at = Some(self.now);
    }

    /// With the deadlines due now fired: a connection that had no byte
    /// delivered for `max(idle_timeout, handshake_timeout)` is closed (it
    /// has had no frame for at least that long, and its handshake, if
    /// unfinished, ran out).
    fn check_liveness(&self) {
        let c = &self.model.config;
        let limit = c.idle_timeout.max(c.handshake_timeout);
        for conn in self.model.open_conns() {
            if let Some(last) = self.last_input.get(&conn) {
                assert!(
                    self.now.saturating_duration_since(*last) < limit,
                    "{conn} open with nothing received for {:?} (limit {limit:?})",
                    self.now.saturating_duration_since(*last)
                );
            }
        }
    }

    /// Takes what is queued for `conn`.
    pub fn take(&mut self, conn: ConnId) -> Option<Bytes> {
        let bytes = self.ep.poll_transmit(conn);
        if bytes.is_some() {
            assert!(self.model.is_open(conn), "bytes for closed {conn}");
        }
        bytes
    }

    /// Drains `poll_output` through the model. Calls are answered by
    /// [`policy`] once the queue is empty (their replies may produce more
    /// output, which is drained too). Returns every action, in order.
    pub fn pump(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        loop {
            let mut calls: Vec<InboundCall> = Vec::new();
            while let Some(output) = self.ep.poll_output() {
                self.model.observe(&output);
                actions.push(match output {
                    Output::Transmit(conn) => Action::Transmit(conn),
                    Output::Close { conn, last } => Action::Close(conn, last),
                    Output::Event(event) => {
                        if let Event::Call(call) = &event {
                            calls.push(call.clone());
                        }
                        Action::Event(event)
                    }
                });
            }
            if calls.is_empty() || !self.auto_reply {
                break;
            }
            for call in calls {
                if let Some(response) = policy(&call.args) {
                    self.reply(call.id, response);
                }
            }
        }
        self.model.check_stats(&self.ep);
        if self.fired_at == Some(self.now) {
            self.check_liveness();
        }
        actions
    }

    /// Answers a call; the endpoint must accept exactly the calls the
    /// model has in flight.
    pub fn reply(&mut self, id: InboundCallId, response: Response) -> bool {
        let in_flight = self.model.inbound.remove(&id);
        let ok = self.ep.reply(self.now, id, response);
        assert_eq!(ok, in_flight, "reply({id:?}) vs the model");
        ok
    }

    /// Calls `handle` on `peer`, recording the call if it went out.
    pub fn call(
        &mut self,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, CallError> {
        let r = self.ep.call(self.now, peer, handle, args, timeout);
        if let Ok(id) = r {
            assert!(self.model.outbound.insert(id), "call id {id:?} reused");
            assert_eq!(Some(id.conn()), self.model.connection(peer), "call's conn");
        }
        r
    }

    /// Cancels one of our calls; true exactly when the model has it.
    pub fn cancel(&mut self, id: CallId) {
        let in_flight = self.model.outbound.contains(&id);
        let ok = self.ep.cancel(self.now, id);
        assert_eq!(ok, in_flight, "cancel({id:?}) vs the model");
        // The CallResult(Cancelled) event removes it from the model.
    }
}

/// A peer that is correct never makes us detect a protocol error.
pub fn assert_no_local_protocol_error(event: &Event) {
    if let Event::Disconnected {
        reason:
            CloseReason::Goodbye {
                by: Side::Local,
                code: GoodbyeCode::ProtocolError,
                reason,
            },
        ..
    } = event
    {
        panic!("a correct peer made us see a protocol error: {reason}");
    }
}

/// The byte feed of the single-endpoint targets: a 3-byte header, then the
/// bytes to deliver.
///
/// - `flags`: target-specific bits;
/// - `split`: 0 delivers the payload in one piece; otherwise it is cut into
///   chunks of 1..=`split` bytes (sizes from a small LCG seeded by `split`);
/// - `tick`: after each chunk the clock moves by `tick * 16` ms and due
///   deadlines fire.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a> {
    /// Target-specific bits.
    pub flags: u8,
    /// Chunking.
    pub split: u8,
    /// Clock step per chunk, in units of 16 ms.
    pub tick: u8,
    /// The bytes.
    pub payload: &'a [u8],
}

/// Length of the [`Feed`] header.
pub const FEED_HEADER: usize = 3;

impl<'a> Feed<'a> {
    /// Splits the header off (missing header bytes read as 0).
    pub fn parse(data: &'a [u8]) -> Feed<'a> {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        Feed {
            flags: byte(0),
            split: byte(1),
            tick: byte(2),
            payload: data.get(FEED_HEADER..).unwrap_or(&[]),
        }
    }

    /// The header bytes for a seed.
    pub fn header(flags: u8, split: u8, tick: u8) -> [u8; FEED_HEADER] {
        [flags, split, tick]
    }

    /// The clock step per chunk.
    pub fn step(&self) -> Duration {
        Duration::from_millis(u64::from(self.tick) * 16)
    }

    /// The payload, cut as `split` says; the chunks are slices of one
    /// `Bytes`, as a transport's reads would be.
    pub fn chunks(&self) -> Vec<Bytes> {
        let all = Bytes::copy_from_slice(self.payload);
        if self.split == 0 {
            return if all.is_empty() { vec![] } else { vec![all] };
        }
        let mut state = u32::from(self.split);
        let mut out = Vec::new();
        let mut at = 0;
        while at < all.len() {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = 1 + (state >> 16) as usize % usize::from(self.split);
            let end = (at + n).min(all.len());
            out.push(all.slice(at..end));
            at = end;
        }
        out
    }
}

/// A responder as the handshake vectors have it (identity 0x22, trusting
/// 0x11), with the standard exposure, and the connection it accepted.
pub fn responder() -> (Node, ConnId) {
    let mut node = Node::new(
        fuzz_config(),
        &RESPONDER_SEED,
        &[peer(&INITIATOR_SEED)],
        RESPONDER_RNG,
    );
    node.expose_standard();
    let conn = node.accept().expect("accept");
    (node, conn)
}

/// An initiator as the handshake vectors have it (identity 0x11, trusting
/// 0x22), with the standard exposure, that dialed: its HELLO is queued.
/// `named`: whether it dialed the responder's PeerId or anyone trusted.
pub fn initiator(named: bool) -> (Node, ConnId) {
    let responder = peer(&RESPONDER_SEED);
    let mut node = Node::new(fuzz_config(), &INITIATOR_SEED, &[responder], INITIATOR_RNG);
    node.expose_standard();
    let conn = node.connect(named.then_some(responder)).expect("connect");
    (node, conn)
}

/// Two endpoints that completed a real handshake (initiator dialed
/// responder, bytes shuttled until quiet): `(initiator, its conn,
/// responder, its conn)`. Every event so far has been checked and dropped.
pub fn established_pair() -> (Node, ConnId, Node, ConnId) {
    let (mut a, ca) = initiator(true);
    let (mut b, cb) = responder();
    loop {
        let mut moved = false;
        for action in a.pump() {
            if let Action::Transmit(c) = action
                && let Some(bytes) = a.take(c)
            {
                b.receive(cb, bytes);
                moved = true;
            }
        }
        for action in b.pump() {
            if let Action::Transmit(c) = action
                && let Some(bytes) = b.take(c)
            {
                a.receive(ca, bytes);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(a.model.connection(&b.model.me), Some(ca), "a not connected");
    assert_eq!(b.model.connection(&a.model.me), Some(cb), "b not connected");
    (a, ca, b, cb)
}

/// Feeds `feed` to `node`'s connection `conn` as a peer's bytes, chunk by
/// chunk, ticking the clock; `take` decides whether the driver takes the
/// node's transmits (false: a peer that never reads). Then the transport
/// closes, and everything must be resolved.
pub fn run_feed(node: &mut Node, conn: ConnId, feed: &Feed<'_>, take: bool) {
    node.pump();
    for chunk in feed.chunks() {
        if !node.model.is_open(conn) {
            break;
        }
        node.receive(conn, chunk);
        drain(node, take);
        if feed.tick != 0 {
            node.advance(feed.step());
            drain(node, take);
        }
    }
    finish(node);
}

fn drain(node: &mut Node, take: bool) {
    for action in node.pump() {
        if let Action::Transmit(c) = action
            && take
        {
            node.take(c);
        }
    }
}

/// Ends every connection (transport lost) and checks nothing is left.
pub fn finish(node: &mut Node) {
    for conn in node.model.open_conns() {
        node.transport_closed(conn);
        node.pump();
    }
    node.model.check_all_done(&node.ep);
}

/// A GOODBYE `protocol_error` we sent because the peer let our queue grow
/// past the hard cap is the one a correct peer can cause (by not reading).
fn is_send_cap(reason: &CloseReason) -> bool {
    matches!(reason, CloseReason::Goodbye { reason, .. } if reason.starts_with("peer does not read"))
}

/// [`assert_no_local_protocol_error`], except for the send cap, which a
/// correct peer that does not read does trigger.
pub fn assert_no_protocol_error_but_send_cap(event: &Event) {
    if let Event::Disconnected { reason, .. } = event
        && is_send_cap(reason)
    {
        return;
    }
    assert_no_local_protocol_error(event);
}

/// The calls the fuzzed side of `connection_established` makes before its
/// input arrives, so that REPLY frames have something to resolve: an
/// `echo` with a 1 s timeout, one with none, and a call to a handle the
/// peer does not expose with a 30 s timeout.
fn initial_calls(x: &mut Node, to: &PeerId) {
    let _ = x.call(to, ECHO, b"\x00one", Some(Duration::from_secs(1)));
    let _ = x.call(to, ECHO, b"\x04two", None);
    let _ = x.call(to, "nope", b"", Some(Duration::from_secs(30)));
}

/// `connection_established`: an established connection whose one side
/// (`x`) is fed the fuzz input as its peer's bytes, while what `x` sends
/// goes to the real peer (`h`), which must never see a protocol error.
pub struct Established {
    /// The fuzzed endpoint.
    pub x: Node,
    /// Its connection.
    pub cx: ConnId,
    /// The honest peer, which receives what `x` sends.
    pub h: Node,
    /// Its connection.
    pub ch: ConnId,
    /// Whether the driver takes `x`'s bytes (else `x`'s peer never reads).
    pub take: bool,
}

impl Established {
    /// The setup for feed flags `flags`: bit 0 fuzzes the initiator
    /// (else the responder), bit 1 never takes the fuzzed side's bytes.
    /// The fuzzed side has made [`initial_calls`]; they reached `h`.
    pub fn new(flags: u8) -> Established {
        let (a, ca, b, cb) = established_pair();
        let (x, cx, h, ch) = if flags & 1 == 0 {
            (b, cb, a, ca)
        } else {
            (a, ca, b, cb)
        };
        let mut s = Established {
            x,
            cx,
            h,
            ch,
            take: flags & 2 == 0,
        };
        let to = s.h.model.me;
        initial_calls(&mut s.x, &to);
        s.settle();
        s
    }

    /// Routes outputs until nothing moves: `x`'s bytes to `h` (when taken),
    /// `h`'s bytes nowhere (the fuzz input stands for them), closes to the
    /// other side as a transport end.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for action in self.x.pump() {
                match action {
                    Action::Transmit(c) if self.take => {
                        if let Some(bytes) = self.x.take(c)
                            && self.h.model.is_open(self.ch)
                        {
                            self.h.receive(self.ch, bytes);
                            moved = true;
                        }
                    }
                    Action::Close(_, last) if self.h.model.is_open(self.ch) => {
                        if !last.is_empty() {
                            self.h.receive(self.ch, last);
                        }
                        if self.h.model.is_open(self.ch) {
                            self.h.transport_closed(self.ch);
                        }
                        moved = true;
                    }
                    _ => {}
                }
            }
            for action in self.h.pump() {
                match action {
                    Action::Transmit(c) => {
                        self.h.take(c);
                    }
                    Action::Close(..) => {
                        if self.x.model.is_open(self.cx) {
                            self.x.transport_closed(self.cx);
                            moved = true;
                        }
                    }
                    Action::Event(e) => assert_no_local_protocol_error(&e),
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Feeds the payload, then ends everything and checks nothing is left.
    pub fn run(mut self, feed: &Feed<'_>) {
        for chunk in feed.chunks() {
            if !self.x.model.is_open(self.cx) {
                break;
            }
            self.x.receive(self.cx, chunk);
            self.settle();
            if feed.tick != 0 {
                self.x.advance(feed.step());
                self.h.advance(feed.step());
                self.settle();
            }
        }
        if self.x.model.is_open(self.cx) {
            self.x.transport_closed(self.cx);
        }
        self.settle();
        finish(&mut self.x);
        finish(&mut self.h);
    }
}
