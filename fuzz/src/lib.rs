//! The fuzz targets' own harness: fixed identities, the chunked byte feed,
//! and the single-endpoint and established-connection setups. The nodes,
//! links and the model are the test kit's (`peernet-testkit`, the same the
//! simulation and the core tests use): every output a [`Node`] produces
//! goes through [`Model::observe`], which panics (so libFuzzer reports a
//! crash) on any broken invariant:
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

pub mod ops;
pub mod seeds;
pub mod sources;
pub mod supersede;
pub mod two_endpoints;
pub mod v2;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{Config, ConnId, Event, PeerId, ProtocolVersion, Source};
pub use peernet_testkit::model::local_protocol_error;
pub use peernet_testkit::setup::{START, peer};
pub use peernet_testkit::{Action, Link, Model, Net, Node, Rule, fuzz_config, policy};

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
    *FAULT.get_or_init(|| peernet_testkit::setup::fault_from_env("PEERNET_FUZZ_FAULT"))
}

/// A checked node (the kit's [`Node`] and its [`peernet_testkit::Model`])
/// running as `seed`, trusting `trusted`, with the fault named by
/// `PEERNET_FUZZ_FAULT` switched on (with the `fault-injection` feature).
pub fn new_node(config: Config, seed: &[u8; 32], trusted: &[PeerId], rng: u64) -> Node {
    #[cfg(feature = "fault-injection")]
    let config = {
        let mut config = config;
        config.fault = fault();
        config
    };
    let mut node = Node::checked(config, seed, trusted, rng);
    node.now = START;
    node
}

/// The standard exposure of the single-endpoint targets.
pub fn expose_standard(node: &mut Node) {
    node.expose(ECHO, Rule::Anyone);
    node.expose(SECRET, Rule::Only([peer(&STRANGER_SEED)].into()));
    node.expose(NEVER, Rule::Never);
}

/// A peer that is correct never makes us detect a protocol error.
pub fn assert_no_local_protocol_error(event: &Event) {
    if let Some(reason) = local_protocol_error(event, false) {
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

/// A responder node as the handshake vectors have it (identity 0x22,
/// trusting 0x11), running `version`, with the standard exposure and no
/// connection yet.
pub fn responder_node(version: ProtocolVersion) -> Node {
    let mut config = fuzz_config();
    config.version = version;
    let mut node = new_node(
        config,
        &RESPONDER_SEED,
        &[peer(&INITIATOR_SEED)],
        RESPONDER_RNG,
    );
    expose_standard(&mut node);
    node
}

/// A version-1 [`responder_node`] and the connection it accepted.
pub fn responder() -> (Node, ConnId) {
    let mut node = responder_node(ProtocolVersion::V1);
    let conn = node.accept().expect("accept");
    (node, conn)
}

/// The source address [`responder_v2`] accepts its transport from.
pub const FUZZ_SOURCE: Source = Source::V4([192, 0, 2, 7]);

/// A version-2 [`responder_node`] (the vectors' `v2/handshake.json` INIT
/// passes its `mac1` and names a trusted initiator), its transport
/// accepted from [`FUZZ_SOURCE`] (`accept_from`), so that the endpoint's
/// own handshake state machine, the INIT replay cache and the per-source
/// charging of failed handshakes run over fuzzed bytes.
pub fn responder_v2() -> (Node, ConnId) {
    let mut node = responder_node(ProtocolVersion::V2);
    let conn = node.accept_from(FUZZ_SOURCE).expect("accept_from");
    (node, conn)
}

/// An initiator as the handshake vectors have it (identity 0x11, trusting
/// 0x22), with the standard exposure, that dialed: its HELLO is queued.
/// `named`: whether it dialed the responder's PeerId or anyone trusted.
pub fn initiator(named: bool) -> (Node, ConnId) {
    let responder = peer(&RESPONDER_SEED);
    let mut node = new_node(fuzz_config(), &INITIATOR_SEED, &[responder], INITIATOR_RNG);
    expose_standard(&mut node);
    let conn = node.connect(named.then_some(responder)).expect("connect");
    (node, conn)
}

/// Two endpoints that completed a real handshake (initiator dialed
/// responder, bytes shuttled until quiet): `(initiator, its conn,
/// responder, its conn)`. Every event so far has been checked and dropped.
pub fn established_pair() -> (Node, ConnId, Node, ConnId) {
    let (mut a, ca) = initiator(true);
    let (mut b, cb) = responder();
    let mut net = Net::default();
    net.links.push(Link::new(0, ca, 1, Some(cb)));
    net.drive(&mut [&mut a, &mut b]);
    a.events.clear();
    b.events.clear();
    assert_eq!(
        a.model().connection(&b.model().me),
        Some(ca),
        "a not connected"
    );
    assert_eq!(
        b.model().connection(&a.model().me),
        Some(cb),
        "b not connected"
    );
    (a, ca, b, cb)
}

/// Feeds `feed` to `node`'s connection `conn` as a peer's bytes, chunk by
/// chunk, ticking the clock; `take` decides whether the driver takes the
/// node's transmits (false: a peer that never reads). Then the transport
/// closes, and everything must be resolved.
pub fn run_feed(node: &mut Node, conn: ConnId, feed: &Feed<'_>, take: bool) {
    node.pump();
    for chunk in feed.chunks() {
        if !node.model().is_open(conn) {
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
    node.finish();
}

/// [`assert_no_local_protocol_error`], except for the send cap, which a
/// correct peer that does not read does trigger.
pub fn assert_no_protocol_error_but_send_cap(event: &Event) {
    if let Some(reason) = local_protocol_error(event, true) {
        panic!("a correct peer made us see a protocol error: {reason}");
    }
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
        let to = s.h.model().me;
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
                            && self.h.model().is_open(self.ch)
                        {
                            self.h.receive(self.ch, bytes);
                            moved = true;
                        }
                    }
                    Action::Close(_, last) if self.h.model().is_open(self.ch) => {
                        if !last.is_empty() {
                            self.h.receive(self.ch, last);
                        }
                        if self.h.model().is_open(self.ch) {
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
                        if self.x.model().is_open(self.cx) {
                            self.x.transport_closed(self.cx);
                            moved = true;
                        }
                    }
                    Action::Event(e) => assert_no_local_protocol_error(&e),
                    // Nobody here keeps a peer connected or asks to dial,
                    // so a dial is the endpoint inventing work.
                    Action::Dial(peer, addr) => {
                        panic!("the fuzzed endpoint dialed {peer:?} at {addr} unasked")
                    }
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
            if !self.x.model().is_open(self.cx) {
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
        if self.x.model().is_open(self.cx) {
            self.x.transport_closed(self.cx);
        }
        self.settle();
        finish(&mut self.x);
        finish(&mut self.h);
    }
}
