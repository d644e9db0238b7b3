//! Endpoints joined by [`Link`]s on one virtual clock.
//!
//! Bytes are shuttled exactly as a driver would: `Output::Transmit` then
//! `poll_transmit` (while the link has room), `Output::Close` then a FIN
//! behind the last bytes and `Input::Closed` on the far side. [`Net`]
//! holds the links and does the shuttling for any set of nodes; [`World`]
//! is N nodes and their net, [`Pair`] the two-node view the core's tests
//! use (its nodes are fields, `a` and `b`).

use std::time::Duration;

use peernet_proto::{Config, ConnId, Event, Instant, PeerId};

use crate::link::Link;
use crate::node::{Action, Node};
use crate::setup::{START, endpoint, identity, test_config};

/// Which node of a [`Pair`] (or of a two-node [`World`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    /// Node 0.
    A,
    /// Node 1.
    B,
}

impl Who {
    /// The other one.
    pub fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }

    /// Its index in the world.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<Who> for usize {
    fn from(w: Who) -> usize {
        w.index()
    }
}

/// The links between some nodes, and how they deliver.
#[derive(Debug)]
pub struct Net {
    /// Every link ever dialed, in order.
    pub links: Vec<Link>,
    /// Delivery chunk sizes, cycled (empty: whole buffers).
    pub splits: Vec<usize>,
    split_at: usize,
    /// Bytes a link holds in flight per direction before the writer's
    /// driver stops taking from its endpoint (as a full socket buffer
    /// would).
    pub capacity: usize,
}

impl Default for Net {
    fn default() -> Net {
        Net {
            links: Vec::new(),
            splits: Vec::new(),
            split_at: 0,
            capacity: usize::MAX,
        }
    }
}

impl Net {
    /// A net whose links hold `capacity` bytes per direction.
    pub fn with_capacity(capacity: usize) -> Net {
        Net {
            capacity,
            ..Net::default()
        }
    }

    /// The link and end of `node`'s `conn`.
    pub fn link_of(&self, node: usize, conn: ConnId) -> Option<(usize, usize)> {
        self.links.iter().enumerate().find_map(|(l, link)| {
            let e = link.end_of(node)?;
            (link.conn[e] == Some(conn)).then_some((l, e))
        })
    }

    /// The far end's connection of `node`'s `conn`.
    pub fn peer_conn(&self, node: usize, conn: ConnId) -> Option<ConnId> {
        let (l, e) = self.link_of(node, conn)?;
        self.links[l].conn[1 - e]
    }

    /// `from` dials `to` (naming `expected`); `to` accepts if it can, else
    /// the dial fails at the transport. Returns the link.
    pub fn dial(
        &mut self,
        nodes: &mut [&mut Node],
        from: usize,
        to: usize,
        expected: Option<PeerId>,
    ) -> Option<usize> {
        let out = nodes[from].connect(expected)?;
        let inn = nodes[to].accept();
        self.links.push(Link::new(from, out, to, inn));
        if inn.is_none() {
            nodes[from].transport_closed(out);
        }
        Some(self.links.len() - 1)
    }

    /// Drains `who`'s outputs and routes them (events are kept in the
    /// node); returns whether anything came out.
    pub fn pump(&mut self, nodes: &mut [&mut Node], who: usize) -> bool {
        let actions = nodes[who].pump();
        let moved = !actions.is_empty();
        for action in actions {
            match action {
                Action::Transmit(conn) => {
                    if let Some((l, e)) = self.link_of(who, conn) {
                        self.links[l].wants[e] = true;
                        self.take(nodes, l, e);
                    }
                }
                Action::Close(conn, last) => {
                    if let Some((l, e)) = self.link_of(who, conn) {
                        self.links[l].close_end(e, last);
                    }
                }
                Action::Event(event) => nodes[who].events.push(event),
                // Links here are made by hand, not by address: a dial by
                // PeerId is the simulation's (tests/src/sim/keep.rs).
                Action::Dial(peer, addr) => nodes[who].dial_failed(peer, addr),
            }
        }
        moved
    }

    /// End `e`'s driver takes its endpoint's bytes for link `l` if the
    /// link has room (else it waits: that is backpressure).
    fn take(&mut self, nodes: &mut [&mut Node], l: usize, e: usize) {
        let link = &self.links[l];
        if !link.wants[e] || link.closed[e] || link.to[1 - e].in_flight() >= self.capacity {
            return;
        }
        let (Some(conn), node) = (link.conn[e], link.nodes[e]) else {
            return;
        };
        self.links[l].wants[e] = false;
        if let Some(bytes) = nodes[node].take(conn) {
            self.links[l].to[1 - e].push(bytes);
        }
    }

    /// Delivers up to `n` bytes towards end `e` of link `l` (or its FIN);
    /// returns whether anything moved.
    pub fn deliver(&mut self, nodes: &mut [&mut Node], l: usize, e: usize, n: usize) -> bool {
        let link = &mut self.links[l];
        let Some(conn) = link.conn[e] else {
            return false;
        };
        let (to, from) = (link.nodes[e], link.nodes[1 - e]);
        if link.to[e].hold {
            return false;
        }
        if link.closed[e] {
            link.to[e].clear();
            return false;
        }
        if let Some(chunk) = link.to[e].pop(n) {
            nodes[to].receive(conn, chunk);
            self.pump(nodes, to);
            // Room on the link: the writer's driver may take more.
            self.take(nodes, l, 1 - e);
            self.pump(nodes, from);
            true
        } else if link.to[e].fin {
            link.to[e].fin = false;
            link.closed[e] = true;
            nodes[to].transport_closed(conn);
            self.pump(nodes, to);
            true
        } else {
            false
        }
    }

    fn next_chunk(&mut self) -> usize {
        if self.splits.is_empty() {
            return usize::MAX;
        }
        let n = self.splits[self.split_at % self.splits.len()].max(1);
        self.split_at += 1;
        n
    }

    /// Delivers what is in flight, in chunks as `splits` says; returns
    /// whether anything moved.
    pub fn deliver_all(&mut self, nodes: &mut [&mut Node]) -> bool {
        let mut moved = false;
        for l in 0..self.links.len() {
            for e in 0..2 {
                loop {
                    let n = self.next_chunk();
                    if !self.deliver(nodes, l, e, n) {
                        break;
                    }
                    moved = true;
                }
            }
        }
        moved
    }

    /// Pumps and delivers until nothing moves.
    pub fn drive(&mut self, nodes: &mut [&mut Node]) {
        for _ in 0..100_000 {
            let mut moved = false;
            for who in 0..nodes.len() {
                moved |= self.pump(nodes, who);
            }
            moved |= self.deliver_all(nodes);
            if !moved {
                return;
            }
        }
        panic!("drive did not settle");
    }

    /// Moves the clock `now` forward by `d`, firing deadlines on the way
    /// (each at its own instant), then drives.
    pub fn advance(&mut self, nodes: &mut [&mut Node], now: &mut Instant, d: Duration) {
        let until = *now + d;
        loop {
            self.drive(nodes);
            let next = nodes.iter().filter_map(|n| n.ep.poll_timeout()).min();
            match next {
                Some(at) if at <= until => {
                    *now = (*now).max(at);
                    fire(nodes, *now);
                }
                _ => break,
            }
        }
        *now = until;
        fire(nodes, until);
        self.drive(nodes);
    }
}

/// Sets every node's clock to `now` and fires what is due.
fn fire(nodes: &mut [&mut Node], now: Instant) {
    for n in nodes.iter_mut() {
        n.now = now;
        n.fire_timers();
    }
}

/// N nodes, their links and one virtual clock.
pub struct World {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The links.
    pub net: Net,
    /// The clock.
    pub now: Instant,
}

impl World {
    /// A world of `nodes`, at [`START`].
    pub fn new(nodes: Vec<Node>) -> World {
        World {
            nodes,
            net: Net::default(),
            now: START,
        }
    }

    /// `n` unchecked nodes with [`test_config`] running as identities
    /// `1..=n` (RNG seeds likewise), each trusting every other.
    pub fn trusting(n: usize) -> World {
        let ids: Vec<PeerId> = (1..=n).map(|i| identity(i as u8).peer_id()).collect();
        let nodes = (1..=n)
            .map(|i| {
                let others: Vec<PeerId> =
                    ids.iter().copied().filter(|p| *p != ids[i - 1]).collect();
                Node::unchecked(endpoint(
                    test_config(),
                    identity(i as u8),
                    &others,
                    i as u64,
                ))
            })
            .collect();
        World::new(nodes)
    }

    fn sync(&mut self) -> (Vec<&mut Node>, &mut Net) {
        let now = self.now;
        let mut nodes: Vec<&mut Node> = self.nodes.iter_mut().collect();
        for n in nodes.iter_mut() {
            n.now = now;
        }
        (nodes, &mut self.net)
    }

    /// Node `i`'s PeerId.
    pub fn id(&self, i: impl Into<usize>) -> PeerId {
        self.nodes[i.into()].ep.peer_id()
    }

    /// `from` dials `to`, naming it; returns the link.
    pub fn dial(&mut self, from: impl Into<usize>, to: impl Into<usize>) -> usize {
        let to = to.into();
        let expected = Some(self.id(to));
        self.dial_expecting(from, to, expected)
    }

    /// `from` dials `to`, naming `expected`; returns the link.
    pub fn dial_expecting(
        &mut self,
        from: impl Into<usize>,
        to: impl Into<usize>,
        expected: Option<PeerId>,
    ) -> usize {
        let (from, to) = (from.into(), to.into());
        let (mut nodes, net) = self.sync();
        let l = net.dial(&mut nodes, from, to, expected);
        l.expect("connect")
    }

    /// Pumps `who`'s outputs; returns whether anything came out.
    pub fn pump(&mut self, who: impl Into<usize>) -> bool {
        let who = who.into();
        let (mut nodes, net) = self.sync();
        net.pump(&mut nodes, who)
    }

    /// Delivers up to `n` bytes towards end `e` of link `l`.
    pub fn deliver(&mut self, l: usize, e: usize, n: usize) -> bool {
        let (mut nodes, net) = self.sync();
        net.deliver(&mut nodes, l, e, n)
    }

    /// Runs until nothing moves.
    pub fn drive(&mut self) {
        let (mut nodes, net) = self.sync();
        net.drive(&mut nodes);
    }

    /// Moves the clock forward by `d`, firing deadlines on the way, then
    /// drives.
    pub fn advance(&mut self, d: Duration) {
        let mut now = self.now;
        let (mut nodes, net) = self.sync();
        net.advance(&mut nodes, &mut now, d);
        self.now = now;
    }

    /// Moves the clock forward by `d` at once and fires what is due (no
    /// driving: a long pause of every driver).
    pub fn jump(&mut self, d: Duration) {
        self.now = self.now + d;
        let now = self.now;
        fire(&mut self.sync().0, now);
    }

    /// The events node `who` produced since the last look.
    pub fn take_events(&mut self, who: impl Into<usize>) -> Vec<Event> {
        self.nodes[who.into()].take_events()
    }
}

/// Two endpoints, `a` and `b`, joined by links on one clock: the core
/// tests' harness.
pub struct Pair {
    /// Node A.
    pub a: Node,
    /// Node B.
    pub b: Node,
    /// The clock.
    pub now: Instant,
    /// The links.
    pub net: Net,
}

impl Default for Pair {
    fn default() -> Pair {
        Pair::new()
    }
}

impl Pair {
    /// Two endpoints that trust each other.
    pub fn new() -> Pair {
        Self::with(test_config(), test_config(), true, true)
    }

    /// A with `ca` (identity 1, RNG seed 1), B with `cb` (identity 2, RNG
    /// seed 2), each trusting the other or not.
    pub fn with(ca: Config, cb: Config, a_trusts_b: bool, b_trusts_a: bool) -> Pair {
        let (ia, ib) = (identity(1), identity(2));
        let (pa, pb) = (ia.peer_id(), ib.peer_id());
        let trusts = |yes: bool, p: PeerId| if yes { vec![p] } else { vec![] };
        Pair {
            a: Node::unchecked(endpoint(ca, ia, &trusts(a_trusts_b, pb), 1)),
            b: Node::unchecked(endpoint(cb, ib, &trusts(b_trusts_a, pa), 2)),
            now: START,
            net: Net::default(),
        }
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

    fn nodes(&mut self) -> (Vec<&mut Node>, &mut Net, &mut Instant) {
        self.a.now = self.now;
        self.b.now = self.now;
        (vec![&mut self.a, &mut self.b], &mut self.net, &mut self.now)
    }

    /// Node `who`.
    pub fn node(&mut self, who: Who) -> &mut Node {
        match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    /// Node `who`'s PeerId.
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

    /// `from` dials the other, naming `expected`; returns the link index.
    pub fn dial_expecting(&mut self, from: Who, expected: Option<PeerId>) -> usize {
        let (mut nodes, net, _) = self.nodes();
        let l = net.dial(&mut nodes, from.index(), from.other().index(), expected);
        let l = l.expect("connect");
        assert!(self.net.links[l].conn.iter().all(Option::is_some), "accept");
        l
    }

    /// Runs until nothing moves.
    pub fn drive(&mut self) {
        let (mut nodes, net, _) = self.nodes();
        net.drive(&mut nodes);
    }

    /// Moves the clock forward by `d`, firing deadlines on the way (each
    /// at its own instant), then drives.
    pub fn advance(&mut self, d: Duration) {
        let (mut nodes, net, now) = self.nodes();
        net.advance(&mut nodes, now, d);
    }

    /// The events `who` produced since the last look.
    pub fn take_events(&mut self, who: Who) -> Vec<Event> {
        self.node(who).take_events()
    }
}
