#![allow(unreachable_pub)] // shared by several test crates, each using part of it
//! `Pair`: two endpoints joined by in-memory links and a virtual clock.
//!
//! Bytes are shuttled exactly as a driver would: `Output::Transmit` then
//! `poll_transmit`, `Output::Close` then `Input::Closed` on the far side.
//! `drive` runs until nothing moves; `advance` moves the clock and fires
//! deadlines. A link can be split into arbitrary chunks, held (a peer that
//! stops reading or vanishes) or cut.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Config, ConnId, Endpoint, Event, Identity, Input, Instant, Output, PeerId, ProtocolVersion,
    TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    A,
    B,
}

impl Who {
    pub fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
}

pub struct Node {
    pub ep: Endpoint,
    pub events: Vec<Event>,
}

/// One transport between A and B.
pub struct Link {
    pub a: ConnId,
    pub b: ConnId,
    /// Bytes in flight towards A and towards B.
    to_a: VecDeque<Bytes>,
    to_b: VecDeque<Bytes>,
    /// A side that closed: its FIN travels behind its last bytes.
    fin_to_a: bool,
    fin_to_b: bool,
    /// While held, nothing is delivered towards that side.
    pub hold_to_a: bool,
    pub hold_to_b: bool,
    pub closed_a: bool,
    pub closed_b: bool,
}

pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: Instant,
    pub links: Vec<Link>,
    /// Delivery chunk sizes, cycled (empty: whole buffers).
    pub splits: Vec<usize>,
    split_at: usize,
}

pub fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

/// Version 1: the scenarios written for it read and write its plaintext
/// bytes. `v2_pair.rs` runs version 2 with [`test_config_v2`].
pub fn test_config() -> Config {
    let mut c = test_config_v2();
    c.version = ProtocolVersion::V1;
    c
}

/// The protocol's defaults (version 2).
#[allow(dead_code)]
pub fn test_config_v2() -> Config {
    let mut c = Config::default();
    c.handshake_timeout = Duration::from_secs(10);
    c.ping_interval = Duration::from_secs(15);
    c.idle_timeout = Duration::from_secs(45);
    c
}

impl Pair {
    /// Two endpoints that trust each other.
    pub fn new() -> Pair {
        Self::with(test_config(), test_config(), true, true)
    }

    pub fn with(ca: Config, cb: Config, a_trusts_b: bool, b_trusts_a: bool) -> Pair {
        let (ia, ib) = (identity(1), identity(2));
        let mut ta = TrustList::new();
        let mut tb = TrustList::new();
        if a_trusts_b {
            ta.insert(ib.peer_id(), None);
        }
        if b_trusts_a {
            tb.insert(ia.peer_id(), None);
        }
        let node = |c, i, t, seed| Node {
            ep: Endpoint::new(c, i, t, Box::new(ChaCha20Rng::seed_from_u64(seed))),
            events: Vec::new(),
        };
        Pair {
            a: node(ca, ia, ta, 1),
            b: node(cb, ib, tb, 2),
            now: Instant::from_millis(1_000),
            links: Vec::new(),
            splits: Vec::new(),
            split_at: 0,
        }
    }

    pub fn node(&mut self, who: Who) -> &mut Node {
        match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    pub fn id(&self, who: Who) -> PeerId {
        match who {
            Who::A => self.a.ep.peer_id(),
            Who::B => self.b.ep.peer_id(),
        }
    }

    /// `from` dials the other (naming it); returns the link index.
    pub fn dial(&mut self, from: Who) -> usize {
        let expected = self.id(from.other());
        self.dial_expecting(from, Some(expected))
    }

    pub fn dial_expecting(&mut self, from: Who, expected: Option<PeerId>) -> usize {
        let now = self.now;
        let out = self.node(from).ep.connect(now, expected).expect("connect");
        let inn = self.node(from.other()).ep.accept(now).expect("accept");
        let (a, b) = match from {
            Who::A => (out, inn),
            Who::B => (inn, out),
        };
        self.links.push(Link {
            a,
            b,
            to_a: VecDeque::new(),
            to_b: VecDeque::new(),
            fin_to_a: false,
            fin_to_b: false,
            hold_to_a: false,
            hold_to_b: false,
            closed_a: false,
            closed_b: false,
        });
        self.links.len() - 1
    }

    fn link_of(&self, who: Who, conn: ConnId) -> Option<usize> {
        self.links.iter().position(|l| match who {
            Who::A => l.a == conn,
            Who::B => l.b == conn,
        })
    }

    /// Collects every output of `who`; returns whether anything happened.
    fn pump_outputs(&mut self, who: Who) -> bool {
        let mut moved = false;
        while let Some(output) = self.node(who).ep.poll_output() {
            moved = true;
            match output {
                Output::Transmit(conn) => {
                    if let Some(bytes) = self.node(who).ep.poll_transmit(conn) {
                        if let Some(i) = self.link_of(who, conn) {
                            let l = &mut self.links[i];
                            match who {
                                Who::A => l.to_b.push_back(bytes),
                                Who::B => l.to_a.push_back(bytes),
                            }
                        }
                    }
                }
                Output::Close { conn, last } => {
                    if let Some(i) = self.link_of(who, conn) {
                        let l = &mut self.links[i];
                        match who {
                            Who::A => {
                                l.closed_a = true;
                                if !last.is_empty() {
                                    l.to_b.push_back(last);
                                }
                                l.fin_to_b = true;
                            }
                            Who::B => {
                                l.closed_b = true;
                                if !last.is_empty() {
                                    l.to_a.push_back(last);
                                }
                                l.fin_to_a = true;
                            }
                        }
                    }
                }
                Output::Event(event) => self.node(who).events.push(event),
            }
        }
        moved
    }

    fn next_chunk(&mut self, available: usize) -> usize {
        if self.splits.is_empty() {
            return available;
        }
        let n = self.splits[self.split_at % self.splits.len()].max(1);
        self.split_at += 1;
        n.min(available)
    }

    /// Delivers what is in flight; returns whether anything moved.
    fn deliver(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.links.len() {
            for to in [Who::A, Who::B] {
                loop {
                    let l = &mut self.links[i];
                    let (queue, fin, hold, closed, conn) = match to {
                        Who::A => (&mut l.to_a, &mut l.fin_to_a, l.hold_to_a, l.closed_a, l.a),
                        Who::B => (&mut l.to_b, &mut l.fin_to_b, l.hold_to_b, l.closed_b, l.b),
                    };
                    if hold {
                        break;
                    }
                    if closed {
                        queue.clear();
                        *fin = false;
                        break;
                    }
                    if let Some(mut front) = queue.pop_front() {
                        let n = self.next_chunk(front.len());
                        let chunk = front.split_to(n);
                        let l = &mut self.links[i];
                        if !front.is_empty() {
                            match to {
                                Who::A => l.to_a.push_front(front),
                                Who::B => l.to_b.push_front(front),
                            }
                        }
                        let now = self.now;
                        self.node(to)
                            .ep
                            .handle_input(now, Input::Received { conn, data: chunk });
                        moved = true;
                        self.pump_outputs(to);
                    } else if *fin {
                        *fin = false;
                        match to {
                            Who::A => self.links[i].closed_a = true,
                            Who::B => self.links[i].closed_b = true,
                        }
                        let now = self.now;
                        self.node(to).ep.handle_input(now, Input::Closed { conn });
                        moved = true;
                        self.pump_outputs(to);
                    } else {
                        break;
                    }
                }
            }
        }
        moved
    }

    /// Runs until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            let a = self.pump_outputs(Who::A);
            let b = self.pump_outputs(Who::B);
            let d = self.deliver();
            if !(a || b || d) {
                return;
            }
        }
        panic!("drive did not settle");
    }

    /// Moves the clock forward by `d`, firing deadlines on the way (each
    /// at its own instant), then drives.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.drive();
            let next = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.a.ep.handle_timeout(now);
                    self.b.ep.handle_timeout(now);
                }
                _ => break,
            }
        }
        self.now = until;
        let now = self.now;
        self.a.ep.handle_timeout(now);
        self.b.ep.handle_timeout(now);
        self.drive();
    }

    /// Dials from A, drives the handshake to completion.
    pub fn connected() -> Pair {
        let mut p = Pair::new();
        p.dial(Who::A);
        p.drive();
        assert!(p.a.ep.is_connected(&p.id(Who::B)));
        assert!(p.b.ep.is_connected(&p.id(Who::A)));
        p.a.events.clear();
        p.b.events.clear();
        p
    }

    pub fn take_events(&mut self, who: Who) -> Vec<Event> {
        std::mem::take(&mut self.node(who).events)
    }
}
