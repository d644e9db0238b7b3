//! What a node tells the application about its connections.

use std::time::Duration;

use peernet_proto::{CloseReason, Direction, HandshakeError, PeerId};

/// A connection came, went, or never came to be.
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
        /// Why it ended (e.g. a GOODBYE `revoked` or `idle_timeout`).
        reason: CloseReason,
    },
    /// A transport ended before its handshake finished (a dialer we do not
    /// trust, a peer that does not trust us, a timeout, a connection that
    /// lost to another one to the same peer, ...).
    HandshakeFailed {
        /// The peer, when known: dialed, named by its HELLO (version 1),
        /// or, on version 2, named by an INIT this node answered (an
        /// INIT refused, from an untrusted peer say, leaves it `None`).
        peer: Option<PeerId>,
        /// Who dialed.
        direction: Direction,
        /// Why.
        error: HandshakeError,
    },
    /// A kept peer ([`Node::keep_connected`](crate::Node::keep_connected))
    /// is redialed after a loss, now: the core's
    /// [`Event::Reconnecting`](peernet_proto::Event::Reconnecting), passed
    /// on as it comes (which redials it announces, and when, is said
    /// there; the first dial is silent).
    ///
    /// Why the peer is redialed is said by the events before it: the
    /// first redial's by the [`NodeEvent::Disconnected`] of the loss (or
    /// by the first round's [`NodeEvent::Unreachable`]), each next one's
    /// by the [`NodeEvent::Unreachable`] its previous round ended with
    /// (every address tried, with why). A log of the events so reads
    /// `disconnected from …: …`, `redialing … (attempt 1, after …)`,
    /// `peer … is unreachable at every address tried: 192.0.2.7:7000: the
    /// connection did not open: …`, `redialing … (attempt 2, …)`, ….
    Reconnecting {
        /// The peer.
        peer: PeerId,
        /// The redial's number since the loss, from 1.
        attempt: u32,
        /// The backoff waited before this redial.
        after: Duration,
    },
    /// A dial through the address book
    /// ([`Node::connect_peer`](crate::Node::connect_peer)), or a round of
    /// a kept peer ([`Node::keep_connected`](crate::Node::keep_connected):
    /// its first round, or a redial announced by
    /// [`NodeEvent::Reconnecting`]) that dialed something, tried every
    /// address of its round and none gave a connection: the core's
    /// [`Event::Unreachable`](peernet_proto::Event::Unreachable), passed
    /// on as it comes (which addresses a round tries is said there). An
    /// address where the node answering refused the handshake (the peer
    /// has not paired us, or another node answers there) is among them:
    /// [`NodeEvent::rejection`] says so.
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Each address tried, in the order tried, with why it failed.
        tried: Vec<(std::net::SocketAddr, peernet_proto::DialFailure)>,
    },
}

impl NodeEvent {
    /// Of [`NodeEvent::Unreachable`]: the REJECT code of the last address
    /// of the round where the node answering refused the handshake (a
    /// peer that has not paired us answers `untrusted`): a node was
    /// reached there, and refused us, but a REJECT does not prove which
    /// node it was. As
    /// [`ConnectError::rejection`](crate::ConnectError::rejection), which
    /// says what each protocol version lets one conclude; none for any
    /// other event.
    pub fn rejection(&self) -> Option<peernet_proto::RejectCode> {
        match self {
            NodeEvent::Unreachable { tried, .. } => crate::error::rejection(tried),
            _ => None,
        }
    }
}

/// One line for a log or a terminal, in the words of the errors:
/// `connected to PEER (we dialed)`, `disconnected from PEER: closed by
/// peer: normal (shutting down)`, `handshake with PEER failed (it
/// dialed): handshake timed out`, `redialing PEER (attempt 2, after
/// 601 ms)`, and for [`NodeEvent::Unreachable`] what
/// [`ConnectError::Unreachable`](crate::ConnectError::Unreachable) says.
/// A peer's words (a GOODBYE reason) are escaped.
impl std::fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = |direction: &Direction| match direction {
            Direction::Outbound => "we dialed",
            Direction::Inbound => "it dialed",
        };
        match self {
            NodeEvent::Connected { peer, direction } => {
                write!(f, "connected to {peer} ({})", who(direction))
            }
            NodeEvent::Disconnected { peer, reason } => {
                write!(f, "disconnected from {peer}: {reason}")
            }
            NodeEvent::HandshakeFailed {
                peer,
                direction,
                error,
            } => {
                match peer {
                    Some(peer) => write!(f, "handshake with {peer}")?,
                    None => f.write_str("handshake with a node not named")?,
                }
                write!(f, " failed ({}): {error}", who(direction))
            }
            NodeEvent::Reconnecting {
                peer,
                attempt,
                after,
            } => write!(
                f,
                "redialing {peer} (attempt {attempt}, after {} ms)",
                after.as_millis()
            ),
            NodeEvent::Unreachable { peer, tried } => {
                write!(f, "{}", crate::error::Unreachable(peer, tried))
            }
        }
    }
}

/// A bounded stream of [`NodeEvent`]s, from
/// [`Node::events`](crate::Node::events): `recv().await` or use it as a
/// `futures_core::Stream`. A subscriber that falls its capacity behind
/// loses the newest events (counted by
/// [`Node::dropped_events`](crate::Node::dropped_events)) rather than
/// holding up the node. It ends once the node is closed (its shutdown
/// done, or its last handle dropped), after the events of the close, so
/// that a `while let Ok(event) = events.recv().await` loop ends with the
/// node, though the application still holds a `Node` handle.
pub type EventStream = async_channel::Receiver<NodeEvent>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use peernet_proto::{
        CloseReason, DialFailure, Direction, GoodbyeCode, HandshakeError, Identity, RejectCode,
        Side,
    };

    use super::NodeEvent;

    /// An application logging events had only their `Debug` form:
    /// `PeerId(…)`, `Goodbye { by: Remote, … }`, `Transport("…")`. Each
    /// reads as one line in the errors' words.
    #[test]
    fn an_event_reads_as_a_line() {
        let peer = Identity::from_seed(&[7; 32]).peer_id();
        let addr = "127.0.0.1:9".parse().unwrap();
        let cases = [
            (
                NodeEvent::Connected {
                    peer,
                    direction: Direction::Outbound,
                },
                format!("connected to {peer} (we dialed)"),
            ),
            (
                NodeEvent::Disconnected {
                    peer,
                    reason: CloseReason::Goodbye {
                        by: Side::Remote,
                        code: GoodbyeCode::Normal,
                        reason: "bye\nforged".into(),
                    },
                },
                format!("disconnected from {peer}: closed by peer: normal (bye\\nforged)"),
            ),
            (
                NodeEvent::HandshakeFailed {
                    peer: None,
                    direction: Direction::Inbound,
                    error: HandshakeError::Refused(RejectCode::Untrusted),
                },
                "handshake with a node not named failed (it dialed): we refused the remote \
                 node (untrusted): its PeerId is not in our trust list"
                    .to_string(),
            ),
            (
                NodeEvent::Reconnecting {
                    peer,
                    attempt: 2,
                    after: Duration::from_micros(601_684),
                },
                format!("redialing {peer} (attempt 2, after 601 ms)"),
            ),
            (
                NodeEvent::Unreachable {
                    peer,
                    tried: vec![(addr, DialFailure::transport("refused"))],
                },
                format!(
                    "peer {peer} is unreachable at every address tried: \
                     {addr}: the connection did not open: refused"
                ),
            ),
        ];
        for (event, line) in cases {
            assert_eq!(event.to_string(), line, "{event:?}");
        }
    }
}
