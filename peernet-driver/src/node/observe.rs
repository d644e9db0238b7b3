//! What the node tells about itself: its connections, its stats and
//! counters, and subscriptions to its connection events.

use std::sync::atomic::Ordering;

use peernet_proto::PeerId;

use crate::events::EventStream;
use crate::runtime::Runtime;
use crate::shared::Phase;
use crate::stats::NodeStats;

use super::Node;

impl<R: Runtime> Node<R> {
    /// Whether `peer` has an established connection.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.shared.read(|inner| inner.ep.is_connected(peer))
    }

    /// The peers with an established connection, in PeerId order.
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared.read(|inner| inner.ep.peers().collect())
    }

    /// The core's gauges and counters ([`Stats`](peernet_proto::Stats): connections, calls in
    /// flight, bytes held; handshakes and calls by outcome, refusals,
    /// bytes and records in and out, supersedes) and the driver's own
    /// counters. Its `Display` is a readable summary.
    pub fn stats(&self) -> NodeStats {
        let (core, event_streams) = self
            .shared
            .read(|inner| (inner.ep.stats(), inner.subscribers.len()));
        NodeStats {
            event_streams,
            lingering_bytes: self.shared.lingering.load(Ordering::Acquire),
            core,
            dropped_sends: self.dropped_sends(),
            dropped_events: self.dropped_events(),
            refused_connections: core.counters.refused_at_accept,
            throttled_connections: core.counters.throttled_at_accept,
            connect_waiters: self.shared.dialing.waiting(),
            calls_timed_out_unsent: self.shared.calls_timed_out_unsent.load(Ordering::Relaxed),
        }
    }

    /// A new subscription to connection events, from now on. The stream
    /// ends (`recv` returns an error, the `Stream` yields `None`) once the
    /// node is closed, after the events of its close (the `Disconnected`
    /// of every connection its shutdown ended): a subscription made after
    /// that has ended already.
    pub fn events(&self) -> EventStream {
        let (tx, rx) = async_channel::bounded(self.events_capacity);
        let refused = self.shared.with_core(|inner, _| {
            if inner.phase == Phase::Closed {
                // (nothing more comes: the stream ends at once)
                return Some(tx);
            }
            inner.subscribers.add(tx);
            None
        });
        drop(refused);
        rx
    }

    /// Events that subscribers missed: because they lagged, or because
    /// the node's queue of events not yet sent was full
    /// ([`MAX_QUEUED_EVENTS`](crate::MAX_QUEUED_EVENTS): a subscriber's
    /// waker that does not return holds it up). Counted once per
    /// subscriber that missed the event.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.get()
    }

    /// SENDs from peers that were dropped because that peer already had
    /// `max_inbound_calls` send handlers running (see [`Node::expose`]).
    /// Those dropped because a byte budget was full are counted in
    /// [`Counters::sends_dropped`](peernet_proto::Counters::sends_dropped).
    pub fn dropped_sends(&self) -> u64 {
        self.shared.dropped_sends.load(Ordering::Relaxed)
    }

    /// Accepted connections closed at once, unread, because their source
    /// address already had
    /// [`NodeConfig::handshakes_per_source`](crate::NodeConfig::handshakes_per_source)
    /// handshakes in progress, or had failed too many handshakes lately
    /// ([`NodeConfig::failed_handshakes_per_source`](crate::NodeConfig::failed_handshakes_per_source);
    /// those alone: [`NodeStats::throttled_connections`]): the same count
    /// as [`NodeStats::refused_connections`].
    pub fn refused_connections(&self) -> u64 {
        self.shared
            .read(|inner| inner.ep.counters().refused_at_accept)
    }
}
