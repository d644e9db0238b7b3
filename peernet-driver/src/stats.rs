//! [`NodeStats`]: the core's [`Stats`] and what only the driver sees.

use std::fmt;

use peernet_proto::Stats;

/// What [`Node::stats`](crate::Node::stats) reports: the core's gauges and
/// counters ([`Stats`], with its [`Counters`](peernet_proto::Counters)),
/// and the driver's own counters and gauges. Every counter only grows.
///
/// `Display` prints it as a few readable lines, for logs and demos.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// The core's gauges and counters.
    pub core: Stats,
    /// SENDs from peers dropped because that peer already had
    /// `max_inbound_calls` send handlers running (those dropped because a
    /// byte budget was full are the core's `counters.sends_dropped`).
    pub dropped_sends: u64,
    /// Events that subscribers missed: because they lagged, or because
    /// the node's queue of events not yet sent was full
    /// ([`MAX_QUEUED_EVENTS`](crate::MAX_QUEUED_EVENTS)); once per
    /// subscriber that missed one.
    pub dropped_events: u64,
    /// Accepted connections closed at once, unread, because their source
    /// address already had `handshakes_per_source` handshakes in progress
    /// or had failed too many handshakes lately
    /// (`failed_handshakes_per_source`).
    pub refused_connections: u64,
    /// Of `refused_connections`, those closed because their source had
    /// failed too many handshakes lately, or sources not known had,
    /// node-wide (`failed_handshakes_node_wide`).
    pub throttled_connections: u64,
    /// Calls that timed out before the core took them: waiting for room
    /// in a full send queue, for a kept peer's reconnect, or with no
    /// budget at all (a zero timeout, a nested call's inherited budget
    /// already spent): nothing of them was sent. The core's
    /// `counters.calls_out.timed_out` counts those it held.
    pub calls_timed_out_unsent: u64,
    /// A gauge: [`Node::connect_peer`](crate::Node::connect_peer) calls
    /// waiting now for a dial round (a caller that gave up stops counting
    /// when the next one for its peer starts waiting, or the round ends).
    pub connect_waiters: usize,
    /// A gauge: event subscriptions ([`Node::events`](crate::Node::events))
    /// the node holds a queue for. A dropped one is let go at the next
    /// subscription or event.
    pub event_streams: usize,
    /// A gauge: bytes that closed connections still mean to write during
    /// their linger (while the node runs, at most four
    /// `Config::hard_send_cap`s, short last writes with nothing unwritten
    /// before them aside; at a shutdown, what the connections then open
    /// held: see the README's "A peer that never reads").
    pub lingering_bytes: usize,
}

impl fmt::Display for NodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.core)?;
        write!(
            f,
            "driver: dropped_sends={} dropped_events={} refused_connections={} throttled_connections={} calls_timed_out_unsent={} connect_waiters={} event_streams={} lingering_bytes={}",
            self.dropped_sends,
            self.dropped_events,
            self.refused_connections,
            self.throttled_connections,
            self.calls_timed_out_unsent,
            self.connect_waiters,
            self.event_streams,
            self.lingering_bytes,
        )
    }
}
