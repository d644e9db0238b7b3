//! What a connection tells about itself without changing: its peer and
//! direction, what it holds and queues, for the endpoint's routing and
//! statistics.

use bytes::BytesMut;

use super::*;

impl Connection {
    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }

    /// The peer, once known (dialed, named by HELLO, or proven).
    pub(crate) fn peer(&self) -> Option<PeerId> {
        match &self.state {
            State::Handshake(h) => h.peer(),
            State::Established(s) => Some(s.peer),
        }
    }

    /// The proven peer and what section 4 needs, once established.
    pub(crate) fn established(&self) -> Option<(PeerId, Established)> {
        match &self.state {
            State::Established(s) => Some((s.peer, s.established)),
            State::Handshake(_) => None,
        }
    }

    /// Whether the endpoint announced this connection with `Connected`.
    pub(crate) fn is_announced(&self) -> bool {
        matches!(&self.state, State::Established(s) if s.announced)
    }

    /// Whether this is an inbound handshake counted against
    /// `max_handshakes`.
    pub(crate) fn counts_against_handshake_limit(&self) -> bool {
        self.direction == Direction::Inbound
            && matches!(&self.state, State::Handshake(h) if h.counts_against_limit())
    }

    /// An inbound connection accepted while every handshake slot was held
    /// takes one that has freed since (see [`Handshake::take_slot`]);
    /// false if it was not waiting for one.
    pub(crate) fn take_slot(&mut self) -> bool {
        match &mut self.state {
            State::Handshake(h) => h.take_slot(),
            State::Established(_) => false,
        }
    }

    /// Whether this holds a handshake slot without having delivered a
    /// complete frame: what a newer connection may evict when every slot
    /// is taken.
    pub(crate) fn is_evictable(&self) -> bool {
        self.first_frame_pending.is_some() && self.counts_against_handshake_limit()
    }

    /// Bytes queued for the transport.
    pub(crate) fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Records (version 2) or envelope frames (version 1) queued so far.
    pub(crate) fn records_out(&self) -> u64 {
        self.tx.records
    }

    /// Bytes held for a partial incoming frame.
    pub(crate) fn buffered_input(&self) -> usize {
        self.decoder.buffered_len()
    }

    /// Bytes kept while decoding is paused (`Transition::Pause`).
    pub(crate) fn paused_input(&self) -> usize {
        self.stash.as_ref().map_or(0, BytesMut::len)
    }

    /// Our calls and the calls we serve in flight, once established.
    pub(crate) fn calls_in_flight(&self) -> Option<(usize, usize)> {
        match &self.state {
            State::Established(s) => Some((s.outbound.len(), s.inbound.len())),
            State::Handshake(_) => None,
        }
    }

    /// Whether the call we serve with request id `id` and `serial` is in
    /// flight (not answered, cancelled or timed out).
    pub(crate) fn is_serving(&self, id: u64, serial: u32) -> bool {
        match &self.state {
            State::Established(s) => s.inbound.get(id).is_some_and(|v| v.serial == serial),
            State::Handshake(_) => false,
        }
    }

    /// Bytes this connection holds against its budget: inbound arguments
    /// and the bodies of its waiting replies.
    pub(crate) fn held_bytes(&self) -> usize {
        match &self.state {
            State::Established(s) => s.held,
            State::Handshake(_) => 0,
        }
    }

    /// Replies waiting for room in the send queue, and their bodies'
    /// bytes.
    pub(crate) fn waiting_replies(&self) -> (usize, usize) {
        (self.waiting.count(), self.waiting.bytes())
    }

    /// A SEND from this connection of `bytes` finished running.
    pub(crate) fn send_done(&mut self, bytes: usize) {
        if let State::Established(s) = &mut self.state {
            s.held = s.held.saturating_sub(bytes);
        }
    }

    /// Whether our call `id` is in flight here (fault `ReplyAnyConnection`).
    pub(crate) fn has_outbound_call(&self, id: u64) -> bool {
        matches!(&self.state, State::Established(s) if s.outbound.contains(id))
    }
}
