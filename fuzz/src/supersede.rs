//! The `supersede_race` target: endpoint B and two instances of one
//! trusted peer's identity, A and A2 (a peer that restarted, or runs
//! twice), race connections to each other: dials either way in any
//! order, deliveries in any chunk size, clock steps within and past
//! `handshake_timeout` (rule 2 of PROTOCOL.md section 4), calls in flight
//! while connections are superseded. A third side interferes: bytes in
//! flight tampered with, injected or dropped, and B's inbound handshake
//! bytes replayed on a new transport (which claims to be A).
//!
//! On top of the kit's `Model` for every node (every call resolves exactly
//! once; `Connected` only for a trusted peer with no other connection;
//! every connection ends exactly once):
//!
//! - one connection per peer: no node ever has more than one established
//!   connection (each has one peer), and B's registry names the one the
//!   model has;
//! - no endpoint detects a protocol error on a link nobody tampered with
//!   (but the send cap, against a peer that stops reading);
//! - a replayed handshake never becomes a connection;
//! - when the input only dials, delivers and calls (nothing fails, no
//!   time passes), B ends connected to one instance, which keeps the same
//!   connection (both sides applied section 4 alike);
//! - at the end, every transport closed, nothing is left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{ConnId, Event, PeerId, ProtocolVersion};

use crate::ops::{Decode, Driven, Reader, Writer, play, pump_three, wind_down};
use crate::{Net, Node, Rule, assert_no_protocol_error_but_send_cap, fuzz_config, new_node, peer};

const MAX_OPS: usize = 300;
/// The endpoint under test.
const B: usize = 0;
/// The peer's first instance.
const A: usize = 1;
/// Its second instance (the same identity).
const A2: usize = 2;

/// What happens next.
#[derive(Debug, Clone)]
pub enum Op {
    /// `from % 4`: A dials B, A2 dials B, B dials A (A accepts), B dials
    /// A (A2 accepts).
    Dial { from: u8 },
    /// Up to `n` bytes towards end `to % 2` of link `link`.
    Deliver { link: u8, to: u8, n: u16 },
    /// Every link delivers until nothing moves.
    Flush,
    /// The clock moves `ms`.
    Advance { ms: u16 },
    /// `from % 3` (A, A2, B) calls its peer with `args` (the first byte
    /// picks the callee's answer, `policy`), timeout `timeout_ms` (0:
    /// none).
    Call {
        from: u8,
        args: Vec<u8>,
        timeout_ms: u16,
    },
    /// Flips bits `xor` of byte `at` (modulo those in flight) towards end
    /// `to` of `link`.
    Tamper { link: u8, to: u8, at: u16, xor: u8 },
    /// Bytes appear in flight towards end `to` of `link`.
    Inject { link: u8, to: u8, bytes: Vec<u8> },
    /// Up to `n` bytes in flight towards end `to` of `link` vanish.
    Drop { link: u8, to: u8, n: u16 },
    /// B accepts a new transport that sends everything B received on
    /// `link` so far (a replay, claiming to be A).
    Replay { link: u8 },
    /// The transport of end `side % 2` of `link` fails.
    Cut { link: u8, side: u8 },
    /// `who % 3` (B, A, A2) disconnects its peer.
    Disconnect { who: u8 },
}

impl Decode for Op {
    fn read(r: &mut Reader<'_>) -> Op {
        match r.u8() % 11 {
            0 => Op::Dial { from: r.u8() },
            1 => Op::Deliver {
                link: r.u8(),
                to: r.u8(),
                n: r.u16(),
            },
            2 => Op::Flush,
            3 => Op::Advance { ms: r.u16() },
            4 => Op::Call {
                from: r.u8(),
                args: r.bytes().to_vec(),
                timeout_ms: r.u16(),
            },
            5 => Op::Tamper {
                link: r.u8(),
                to: r.u8(),
                at: r.u16(),
                xor: r.u8(),
            },
            6 => Op::Inject {
                link: r.u8(),
                to: r.u8(),
                bytes: r.bytes().to_vec(),
            },
            7 => Op::Drop {
                link: r.u8(),
                to: r.u8(),
                n: r.u16(),
            },
            8 => Op::Replay { link: r.u8() },
            9 => Op::Cut {
                link: r.u8(),
                side: r.u8(),
            },
            _ => Op::Disconnect { who: r.u8() },
        }
    }
}

impl Op {
    /// Writes it (seeds).
    pub fn write(&self, w: &mut Writer) {
        match self {
            Op::Dial { from } => w.u8(0).u8(*from),
            Op::Deliver { link, to, n } => w.u8(1).u8(*link).u8(*to).u16(*n),
            Op::Flush => w.u8(2),
            Op::Advance { ms } => w.u8(3).u16(*ms),
            Op::Call {
                from,
                args,
                timeout_ms,
            } => w.u8(4).u8(*from).bytes(args).u16(*timeout_ms),
            Op::Tamper { link, to, at, xor } => w.u8(5).u8(*link).u8(*to).u16(*at).u8(*xor),
            Op::Inject { link, to, bytes } => w.u8(6).u8(*link).u8(*to).bytes(bytes),
            Op::Drop { link, to, n } => w.u8(7).u8(*link).u8(*to).u16(*n),
            Op::Replay { link } => w.u8(8).u8(*link),
            Op::Cut { link, side } => w.u8(9).u8(*link).u8(*side),
            Op::Disconnect { who } => w.u8(10).u8(*who),
        };
    }
}

/// The header: bit 0 of `flags` runs version 2; `capacity` is the bytes a
/// link holds in flight per direction (`1 + capacity % 4096`);
/// `handshake_timeout` is `64 ms × (1 + handshake)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Bit 0: version 2.
    pub flags: u8,
    /// Link capacity.
    pub capacity: u16,
    /// `handshake_timeout`, in 64 ms.
    pub handshake: u8,
}

/// An input for the target (seeds).
pub fn encode(header: &Header, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(header.flags).u16(header.capacity).u8(header.handshake);
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

/// What a run got to, for checking that seeds reach where they claim.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// `Connected` events, every node.
    pub connected: usize,
    /// Connections superseded, every node (`Counters::superseded`).
    pub supersedes: u64,
    /// Calls resolved `Ok`.
    pub ok_results: usize,
    /// Replayed transports B accepted.
    pub replays: usize,
    /// Handshakes B's replay cache refused (version 2).
    pub replays_refused: u64,
}

struct World {
    nodes: [Node; 3],
    net: Net,
    b: PeerId,
    a: PeerId,
    /// Links a third side touched.
    dirty: BTreeSet<usize>,
    /// What B received on each link, in order.
    received: BTreeMap<usize, Vec<u8>>,
    /// B's replayed transports.
    replayed: Vec<ConnId>,
    /// Whether every op so far was a dial, a delivery or a call: nothing
    /// failed, timed out, or was tampered with.
    calm: bool,
    summary: Summary,
}

impl Driven for World {
    type Op = Op;

    fn nodes(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    fn pump(&mut self) {
        pump_three(&mut self.net, &mut self.nodes, B, &self.replayed, true);
        self.events();
    }

    fn flush(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for l in 0..self.net.links.len() {
                for e in 0..2 {
                    while self.deliver(l, e, usize::MAX) {
                        moved = true;
                    }
                }
            }
            self.pump();
            if !moved {
                return;
            }
        }
        panic!("flush did not settle");
    }

    fn apply(&mut self, op: Op) {
        self.calm &= matches!(
            op,
            Op::Dial { .. } | Op::Deliver { .. } | Op::Flush | Op::Call { .. }
        );
        match op {
            Op::Dial { from } => self.dial(from),
            Op::Deliver { link, to, n } => {
                if let Some(l) = self.link(link) {
                    self.deliver(l, usize::from(to % 2), usize::from(n));
                }
            }
            Op::Flush => self.flush(),
            Op::Advance { ms } => {
                for n in &mut self.nodes {
                    n.advance(Duration::from_millis(u64::from(ms)));
                }
            }
            Op::Call {
                from,
                args,
                timeout_ms,
            } => self.call(from, &args, timeout_ms),
            Op::Tamper { link, to, at, xor } => self.rewrite(link, to, |bytes| {
                if !bytes.is_empty() {
                    let i = usize::from(at) % bytes.len();
                    bytes[i] ^= xor;
                }
            }),
            Op::Inject { link, to, bytes } => {
                self.rewrite(link, to, |b| b.extend_from_slice(&bytes));
            }
            Op::Drop { link, to, n } => {
                self.rewrite(link, to, |b| {
                    b.drain(..usize::from(n).min(b.len()));
                });
            }
            Op::Replay { link } => {
                let Some(l) = self.link(link) else {
                    return;
                };
                let bytes = self.received.get(&l).cloned().unwrap_or_default();
                if let Some(conn) = self.nodes[B].accept() {
                    self.replayed.push(conn);
                    self.summary.replays += 1;
                    if !bytes.is_empty() {
                        self.nodes[B].receive(conn, Bytes::from(bytes));
                    }
                }
            }
            Op::Cut { link, side } => {
                if let Some(l) = self.link(link) {
                    let link = &self.net.links[l];
                    let e = usize::from(side % 2);
                    if let Some(conn) = link.conn[e] {
                        self.nodes[link.nodes[e]].transport_closed(conn);
                    }
                }
            }
            Op::Disconnect { who } => {
                let (who, whom) = match who % 3 {
                    0 => (B, self.a),
                    1 => (A, self.b),
                    _ => (A2, self.b),
                };
                let node = &mut self.nodes[who];
                node.ep.disconnect(node.now, &whom);
            }
        }
        self.pump();
    }
}

impl World {
    fn events(&mut self) {
        for who in [B, A, A2] {
            for event in self.nodes[who].take_events() {
                self.on_event(who, &event);
            }
            let stats = self.nodes[who].ep.stats();
            assert!(
                stats.established <= 1,
                "node {who} has {} established connections to its one peer",
                stats.established
            );
        }
        let registered = self.nodes[B].ep.connection(&self.a);
        assert_eq!(
            registered,
            self.nodes[B].model().connection(&self.a),
            "B's registry and the events disagree"
        );
    }

    fn on_event(&mut self, who: usize, event: &Event) {
        let conn = match event {
            Event::Connected { conn, .. } => {
                assert!(
                    who != B || !self.replayed.contains(conn),
                    "a replayed handshake became a connection: {event:?}"
                );
                self.summary.connected += 1;
                Some(*conn)
            }
            Event::Disconnected { conn, .. } | Event::HandshakeFailed { conn, .. } => Some(*conn),
            Event::CallResult { id, result } => {
                self.summary.ok_results += usize::from(result.is_ok());
                Some(id.conn())
            }
            _ => None,
        };
        let link = conn.and_then(|c| self.net.link_of(who, c));
        if let Some((l, _)) = link
            && !self.dirty.contains(&l)
        {
            assert_no_protocol_error_but_send_cap(event);
        }
    }

    fn link(&self, link: u8) -> Option<usize> {
        let n = self.net.links.len();
        (n > 0).then(|| usize::from(link) % n)
    }

    /// Delivers up to `n` bytes towards end `e` of link `l`, logging what
    /// reaches B.
    fn deliver(&mut self, l: usize, e: usize, n: usize) -> bool {
        let link = &mut self.net.links[l];
        let to_b = link.nodes[e] == B;
        let mut next = None;
        if to_b && !link.to[e].hold && !link.closed[e] && link.conn[e].is_some() {
            let all = drain(&mut link.to[e]);
            next = all.first().map(|f| f.slice(..n.clamp(1, f.len())));
            for b in all {
                link.to[e].push(b);
            }
        }
        let [b, a, a2] = &mut self.nodes;
        let moved = self.net.deliver(&mut [b, a, a2], l, e, n);
        if moved && let Some(chunk) = next {
            self.received
                .entry(l)
                .or_default()
                .extend_from_slice(&chunk);
        }
        self.pump();
        moved
    }

    /// Rewrites what is in flight towards end `to` of `link` (a third
    /// side at work on it).
    fn rewrite(&mut self, link: u8, to: u8, f: impl FnOnce(&mut Vec<u8>)) {
        let Some(l) = self.link(link) else {
            return;
        };
        let pipe = &mut self.net.links[l].to[usize::from(to % 2)];
        let mut bytes: Vec<u8> = drain(pipe).iter().flat_map(|b| b.iter().copied()).collect();
        f(&mut bytes);
        pipe.push(Bytes::from(bytes));
        self.dirty.insert(l);
    }

    /// After a flush of a calm run with a dial: B is connected to one
    /// instance of A, over the link that instance keeps as its
    /// connection to B (both sides kept the same connection, section 4).
    fn check_settled(&self) {
        let Some(conn) = self.nodes[B].model().connection(&self.a) else {
            panic!("dials, deliveries and calls only, yet B ended with no connection to A");
        };
        let (l, e) = self
            .net
            .link_of(B, conn)
            .expect("B's connection has a link");
        let link = &self.net.links[l];
        let (other, far) = (link.nodes[1 - e], link.conn[1 - e]);
        assert_eq!(
            self.nodes[other].model().connection(&self.b),
            far,
            "B and node {other} kept different connections to each other"
        );
    }

    fn dial(&mut self, from: u8) {
        let (dialer, accepter, expected) = match from % 4 {
            0 => (A, B, self.b),
            1 => (A2, B, self.b),
            2 => (B, A, self.a),
            _ => (B, A2, self.a),
        };
        let [b, a, a2] = &mut self.nodes;
        self.net
            .dial(&mut [b, a, a2], dialer, accepter, Some(expected));
    }

    fn call(&mut self, from: u8, args: &[u8], timeout_ms: u16) {
        let (who, to) = match from % 3 {
            0 => (A, self.b),
            1 => (A2, self.b),
            _ => (B, self.a),
        };
        let timeout = (timeout_ms != 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
        let _ = self.nodes[who].call(&to, "echo", &args[..args.len().min(64)], timeout);
    }
}

/// Takes every buffer in flight in `pipe` (the FIN stays).
fn drain(pipe: &mut peernet_testkit::Pipe) -> Vec<Bytes> {
    std::iter::from_fn(|| pipe.pop(usize::MAX)).collect()
}

/// Runs an input; panics on any broken invariant.
pub fn run(data: &[u8]) -> Summary {
    let mut r = Reader::new(data);
    let header = Header {
        flags: r.u8(),
        capacity: r.u16(),
        handshake: r.u8(),
    };
    let mut config = fuzz_config();
    if header.flags & 1 != 0 {
        config.version = ProtocolVersion::V2;
    }
    config.handshake_timeout = Duration::from_millis(64 * (1 + u64::from(header.handshake)));
    let (a, b) = (peer(&[1; 32]), peer(&[2; 32]));
    let mut world = World {
        nodes: [
            new_node(config.clone(), &[2; 32], &[a], 2),
            new_node(config.clone(), &[1; 32], &[b], 1),
            new_node(config, &[1; 32], &[b], 11),
        ],
        net: Net::with_capacity(1 + usize::from(header.capacity % 4096)),
        b,
        a,
        dirty: BTreeSet::new(),
        received: BTreeMap::new(),
        replayed: Vec::new(),
        calm: true,
        summary: Summary::default(),
    };
    for n in &mut world.nodes {
        n.expose("echo", Rule::Anyone);
    }
    play(&mut world, &mut r, MAX_OPS);
    if world.calm && !world.net.links.is_empty() {
        world.check_settled();
    }
    let raw: Vec<_> = world.replayed.iter().map(|&c| (B, c)).collect();
    wind_down(&mut world, &raw);
    for n in &world.nodes {
        world.summary.supersedes += n.ep.stats().counters.superseded;
    }
    world.summary.replays_refused = world.nodes[B].ep.stats().counters.handshakes_in.replayed;
    world.summary
}
