//! What the endpoint tells without changing: identity, configuration,
//! trust, who is connected, and its statistics.

use super::*;

impl Endpoint {
    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The trust list.
    pub fn trust(&self) -> &TrustList {
        &self.trust
    }

    /// The latest time passed in (never moves backwards).
    pub fn now(&self) -> Instant {
        self.ctx.now
    }

    /// Whether an established connection to `peer` exists.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.registry.get(peer).is_some()
    }

    /// The established connection to `peer`.
    pub fn connection(&self, peer: &PeerId) -> Option<ConnId> {
        self.registry.get(peer)
    }

    /// The peers with an established connection, in PeerId order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.registry.peers()
    }

    /// The peer on `conn`, once known (dialed, named by HELLO, or proven).
    pub fn peer_of(&self, conn: ConnId) -> Option<PeerId> {
        self.conns.get(&conn).and_then(Connection::peer)
    }

    /// Whether `conn` is open and still in its handshake (not yet
    /// established).
    pub fn is_handshaking(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.established().is_none())
    }

    /// Whether `conn` is driven by this endpoint (not yet closed).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Whether `call` (from [`Event::Call`]) still waits for its
    /// [`Endpoint::reply`]: false once it was answered, cancelled, timed
    /// out or its connection ended, and then [`Event::CallCancelled`] (or
    /// the reply) already went out for it. A driver that starts a handler
    /// outside its lock checks this before it keeps the handler running,
    /// so that a call cancelled in the meantime leaves nothing behind.
    pub fn is_serving(&self, call: InboundCallId) -> bool {
        self.conns
            .get(&call.conn)
            .is_some_and(|c| c.is_serving(call.id, call.serial))
    }

    /// Bytes queued for `conn` and not yet taken.
    pub fn queued_bytes(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, Connection::queued)
    }

    /// Test hook (`testkit` only): our replies on `conn` waiting for room
    /// in its send queue.
    #[cfg(feature = "testkit")]
    pub fn testkit_replies_waiting(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.waiting_replies().0)
    }

    /// Test hook (`testkit` only): the bytes of the bodies of our replies
    /// on `conn` waiting for room, and the bytes `conn` holds against its
    /// byte budget (arguments and those bodies).
    #[cfg(feature = "testkit")]
    pub fn testkit_reply_bytes(&self, conn: ConnId) -> (usize, usize) {
        self.conns
            .get(&conn)
            .map_or((0, 0), |c| (c.waiting_replies().1, c.held_bytes()))
    }

    /// Whether [`Endpoint::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// What happened since the endpoint started: [`Stats::counters`]
    /// alone, without walking the connections for the gauges.
    pub fn counters(&self) -> Counters {
        self.ctx.counters
    }

    /// Counters over every connection.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            connections: self.conns.len(),
            inbound_handshakes: self.inbound_handshakes,
            timers: self.ctx.timers.len(),
            outputs: self.ctx.outputs.len(),
            inbound_bytes: self.ctx.held,
            sends_dropped: self.ctx.counters.sends_dropped,
            counters: self.ctx.counters,
            ..Stats::default()
        };
        for c in self.conns.values() {
            // Those of closed connections were added up as they closed.
            s.counters.records_out += c.records_out();
            s.queued_bytes += c.queued();
            s.max_queued_bytes_per_conn = s.max_queued_bytes_per_conn.max(c.queued());
            let (waiting, bytes) = c.waiting_replies();
            s.replies_waiting += waiting;
            s.reply_bytes_waiting += bytes;
            s.max_inbound_bytes_per_conn = s.max_inbound_bytes_per_conn.max(c.held_bytes());
            s.buffered_input += c.buffered_input();
            s.handshake_bytes += c.handshake_bytes();
            s.paused_input += c.paused_input();
            s.max_buffered_input_per_conn = s.max_buffered_input_per_conn.max(c.buffered_input());
            if let Some((outbound, inbound)) = c.calls_in_flight() {
                s.established += 1;
                s.outbound_calls += outbound;
                s.inbound_calls += inbound;
                s.max_inbound_calls_per_conn = s.max_inbound_calls_per_conn.max(inbound);
            }
        }
        s
    }
}
