//! One endpoint as a harness drives it: the events it produced and,
//! when checked, the [`Model`] every output goes through.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    CallError, CallId, Config, ConnId, ConnectError, DialFailure, Endpoint, Event, Identity,
    InboundCall, InboundCallId, Input, Instant, Output, PeerId, Response, Source,
};

use crate::model::{Invariant, Model, Rule};
use crate::setup::{START, endpoint, peer};

/// What an output asks of the driver, after the model checked it.
#[derive(Debug)]
pub enum Action {
    /// `conn` has bytes; take them with [`Node::take`] when the transport
    /// can.
    Transmit(ConnId),
    /// Write `last`, then close.
    Close(ConnId, Bytes),
    /// An event (already checked).
    Event(Event),
    /// Open a transport to the address for the peer (`Output::Dial`).
    Dial(PeerId, SocketAddr),
}

/// How a node's built-in application answers calls, decided by the first
/// argument byte: `Ok`, `Error`, `Panicked` with the arguments as body, or
/// no answer.
pub fn policy(args: &[u8]) -> Option<Response> {
    match args.first().map(|b| b % 4) {
        None | Some(0) => Some(Response::Ok(Bytes::copy_from_slice(args))),
        Some(1) => Some(Response::Error(Bytes::copy_from_slice(args))),
        Some(2) => Some(Response::Panicked(Bytes::copy_from_slice(args))),
        _ => None,
    }
}

/// An endpoint, its clock, and (when checked) its model.
pub struct Node {
    /// The endpoint under test.
    pub ep: Endpoint,
    /// Events produced and not consumed yet (a [`crate::World`] keeps them
    /// here).
    pub events: Vec<Event>,
    /// What it may do; `None` for an unchecked node, which a test drives
    /// through `ep` directly.
    pub model: Option<Model>,
    /// The clock.
    pub now: Instant,
    /// Whether [`Node::pump`] answers calls by [`policy`]; when false the
    /// caller answers them from the `Event::Call` actions.
    pub auto_reply: bool,
    /// Whether send handlers run on until the test reports them done
    /// (`Endpoint::send_done`) instead of finishing at once.
    pub hold_sends: bool,
    /// Per connection: when it opened or last had bytes delivered.
    last_input: BTreeMap<ConnId, Instant>,
    /// Deadlines were last fired at this instant.
    fired_at: Option<Instant>,
}

impl Node {
    /// An unchecked node: `ep` as it is.
    pub fn unchecked(ep: Endpoint) -> Node {
        Node {
            ep,
            events: Vec::new(),
            model: None,
            now: START,
            auto_reply: false,
            hold_sends: false,
            last_input: BTreeMap::new(),
            fired_at: None,
        }
    }

    /// A checked node running as `seed`, trusting `trusted`, its RNG
    /// seeded with `rng`; it answers calls by [`policy`].
    pub fn checked(config: Config, seed: &[u8; 32], trusted: &[PeerId], rng: u64) -> Node {
        let ep = endpoint(config, Identity::from_seed(seed), trusted, rng);
        let model = Model::new(&ep, trusted.iter().copied().collect::<BTreeSet<_>>());
        Node {
            model: Some(model),
            auto_reply: true,
            ..Node::unchecked(ep)
        }
    }

    /// Two checked nodes that trust each other, to be driven by hand: `a`
    /// runs as identity 1 with `ca`, `b` as identity 2 with `cb` (those of
    /// [`Pair`](crate::Pair)).
    pub fn checked_pair(ca: Config, cb: Config) -> (Node, Node) {
        let (pa, pb) = (peer(&[1; 32]), peer(&[2; 32]));
        (
            Node::checked(ca, &[1; 32], &[pb], 1),
            Node::checked(cb, &[2; 32], &[pa], 2),
        )
    }

    /// The model of a checked node.
    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("a checked node")
    }

    /// The model of a checked node.
    pub fn model_mut(&mut self) -> &mut Model {
        self.model.as_mut().expect("a checked node")
    }

    /// The node's PeerId.
    pub fn me(&self) -> PeerId {
        self.ep.peer_id()
    }

    /// Whether `conn` is open: as the model says, or as the endpoint says
    /// for an unchecked node.
    pub fn is_open(&self, conn: ConnId) -> bool {
        match &self.model {
            Some(m) => m.is_open(conn),
            None => self.ep.is_open(conn),
        }
    }

    /// Exposes `handle` on the endpoint and in the model.
    pub fn expose(&mut self, handle: &str, rule: Rule) {
        if self.ep.expose(handle, rule.access()).is_ok()
            && let Some(m) = &mut self.model
        {
            m.exposed.insert(handle.into(), rule);
        }
    }

    /// Unexposes `handle` on the endpoint and in the model.
    pub fn unexpose(&mut self, handle: &str) {
        let was = self.ep.unexpose(handle);
        if let Some(m) = &mut self.model {
            assert_eq!(was, m.exposed.remove(handle).is_some(), "unexpose");
        }
    }

    fn opened(&mut self, conn: ConnId) {
        if let Some(m) = &mut self.model {
            m.opened(conn);
        }
        self.last_input.insert(conn, self.now);
    }

    /// Dials (`connect`), recording the new connection.
    pub fn connect(&mut self, expected: Option<PeerId>) -> Option<ConnId> {
        let conn = self.ep.connect(self.now, expected).ok()?;
        self.opened(conn);
        Some(conn)
    }

    /// Accepts a transport, recording the new connection.
    pub fn accept(&mut self) -> Option<ConnId> {
        let conn = self.ep.accept(self.now).ok()?;
        self.opened(conn);
        Some(conn)
    }

    /// Accepts a transport from `source`, recording the new connection;
    /// the core's refusal (its source's limits) otherwise.
    pub fn accept_from(&mut self, source: Source) -> Result<ConnId, ConnectError> {
        let conn = self.ep.accept_from(self.now, source)?;
        self.opened(conn);
        Ok(conn)
    }

    /// A handshake run by hand: moves bytes both ways between this node's
    /// `dial` and `responder`'s `conn` (it accepted the transport) until
    /// neither has any left, at most 8 turns. Whether `responder` then
    /// holds `conn` as its connection to this node.
    pub fn shake(&mut self, dial: ConnId, responder: &mut Node, conn: ConnId) -> bool {
        for _ in 0..8 {
            self.turn(dial, responder, conn);
        }
        responder.ep.connection(&self.me()) == Some(conn)
    }

    /// One turn of an exchange run by hand between this node's `dial` and
    /// `peer`'s `conn`: pumps this node and passes what `dial` has to
    /// `peer`, then pumps `peer` and passes what `conn` has back. The
    /// actions of the two pumps: this node's, then `peer`'s (the bytes
    /// passed back show in this node's next turn).
    pub fn turn(
        &mut self,
        dial: ConnId,
        peer: &mut Node,
        conn: ConnId,
    ) -> (Vec<Action>, Vec<Action>) {
        let mine = self.pump();
        if let Some(bytes) = self.take(dial) {
            peer.receive(conn, bytes);
        }
        let theirs = peer.pump();
        if let Some(bytes) = peer.take(conn) {
            self.receive(dial, bytes);
        }
        (mine, theirs)
    }

    /// Feeds bytes.
    pub fn receive(&mut self, conn: ConnId, data: Bytes) {
        if !data.is_empty() {
            self.last_input.insert(conn, self.now);
        }
        self.ep.handle_input(
            self.now,
            Input::Received {
                conn,
                data: data.into(),
            },
        );
    }

    /// The transport of `conn` ended (ignored once the core closed it).
    pub fn transport_closed(&mut self, conn: ConnId) {
        if self.is_open(conn) {
            self.ep.handle_input(self.now, Input::Closed { conn });
        }
    }

    /// A transport for an `Output::Dial` could not be opened.
    pub fn dial_failed(&mut self, peer: PeerId, addr: SocketAddr) {
        self.ep
            .dial_failed(self.now, peer, addr, DialFailure::transport("refused"));
    }

    /// Moves the clock and fires what is due.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        self.fire_timers();
    }

    /// Fires what is due at `self.now`; the next [`Node::pump`] of a
    /// checked node then checks that no connection outlived its deadline.
    pub fn fire_timers(&mut self) {
        self.ep.handle_timeout(self.now);
        self.fired_at = Some(self.now);
    }

    /// `dead_peers_detected_in_time`, as a node alone can see it: with the
    /// deadlines due now fired, a connection that had no byte delivered
    /// for `max(idle_timeout, handshake_timeout)` is closed.
    fn check_liveness(&self, m: &Model) {
        let c = &m.config;
        let limit = c.idle_timeout.max(c.handshake_timeout);
        for conn in m.open_conns() {
            if let Some(last) = self.last_input.get(&conn) {
                let quiet = self.now.saturating_duration_since(*last);
                assert!(
                    quiet < limit,
                    "invariant `{}` violated: {conn} open with nothing received for {quiet:?} (limit {limit:?})",
                    Invariant::DeadPeersDetectedInTime
                );
            }
        }
    }

    /// Takes what is queued for `conn`.
    pub fn take(&mut self, conn: ConnId) -> Option<Bytes> {
        let bytes = self.ep.poll_transmit(conn);
        if bytes.is_some() {
            assert!(self.is_open(conn), "bytes for closed {conn}");
        }
        bytes
    }

    /// Drains `poll_output` through the model. With `auto_reply`, calls
    /// are answered by [`policy`] once the queue is empty (their replies
    /// may produce more output, which is drained too). Returns every
    /// action, in order.
    pub fn pump(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        loop {
            let mut calls: Vec<InboundCall> = Vec::new();
            while let Some(output) = self.ep.poll_output() {
                if let Some(m) = &mut self.model {
                    m.observe(&output);
                }
                actions.push(match output {
                    Output::Transmit(conn) => Action::Transmit(conn),
                    Output::Close { conn, last } => Action::Close(conn, last),
                    Output::Dial { peer, addr } => Action::Dial(peer, addr),
                    Output::Event(event) => {
                        match &event {
                            Event::Call(call) => calls.push(call.clone()),
                            // A send handler here finishes at once, unless
                            // held.
                            Event::Send(send) if !self.hold_sends => {
                                self.ep.send_done(send.conn, send.args.len())
                            }
                            _ => {}
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
        if let Some(m) = &self.model {
            m.check_stats(&self.ep);
            if self.fired_at == Some(self.now) {
                self.check_liveness(m);
            }
        }
        actions
    }

    /// Answers a call; the endpoint must accept exactly the calls the
    /// model has in flight.
    pub fn reply(&mut self, id: InboundCallId, response: Response) -> bool {
        let ok = self.ep.reply(self.now, id, response);
        if let Some(m) = &mut self.model {
            let in_flight = m.inbound.remove(&id);
            assert_eq!(ok, in_flight, "reply({id:?}) vs the model");
        }
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
        if let (Ok(id), Some(m)) = (&r, &mut self.model) {
            assert!(m.outbound.insert(*id), "call id {id:?} reused");
            assert_eq!(Some(id.conn()), m.connection(peer), "call's conn");
        }
        r
    }

    /// Cancels one of our calls; true exactly when the model has it.
    pub fn cancel(&mut self, id: CallId) {
        let ok = self.ep.cancel(self.now, id);
        if let Some(m) = &self.model {
            assert_eq!(ok, m.outbound.contains(&id), "cancel({id:?}) vs the model");
        }
        // The CallResult(Cancelled) event removes it from the model.
    }

    /// Ends every connection (transport lost) and checks nothing is left.
    pub fn finish(&mut self) {
        for conn in self.model().open_conns() {
            self.transport_closed(conn);
            self.pump();
        }
        self.model().check_all_done(&self.ep);
    }

    /// The events produced and not consumed yet.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The call results among `events`, in order.
pub fn call_results(events: &[Event]) -> Vec<(CallId, Result<Bytes, CallError>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallResult { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}
