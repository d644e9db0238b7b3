//! What a node tells the application about its connections.

use peernet_proto::{CloseReason, Direction, PeerId};

/// A connection came or went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A handshake finished: `peer` is connected.
    Connected {
        /// The proven peer.
        peer: PeerId,
        /// Who dialed.
        direction: Direction,
    },
    /// The connection to `peer` ended; its calls failed with `reason`.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: CloseReason,
    },
}

/// A bounded stream of [`NodeEvent`]s (see `Node::events`). A subscriber
/// that falls more than its capacity behind loses the newest events rather
/// than holding up the node.
pub type EventStream = async_channel::Receiver<NodeEvent>;
