//! The small names everything else refers to: a transport ([`ConnId`]), a
//! call in each direction ([`CallId`], [`InboundCallId`]), who dialed
//! ([`Direction`]) and who acted ([`Side`]). They depend on nothing else
//! in the crate, so every module can use them without a cycle.

use core::fmt;

/// Names one transport (one TCP stream) for as long as the endpoint
/// drives it. Never reused by an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number behind the id (for logs and maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// One of our calls, for as long as it is in flight. Keyed by connection
/// and request id, so nothing from an old connection can resolve a call
/// made on a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId {
    pub(crate) conn: ConnId,
    pub(crate) id: u64,
}

impl CallId {
    /// The connection the call went out on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
    /// The request id on the wire (non-zero).
    pub fn request_id(&self) -> u64 {
        self.id
    }
}

/// A call we serve, from its arrival until [`crate::Endpoint::reply`] or
/// its cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundCallId {
    pub(crate) conn: ConnId,
    pub(crate) id: u64,
    /// Tells apart two calls that reused one request id (see
    /// `connection::session::Served`): ids of two different calls are
    /// never equal.
    pub(crate) serial: u32,
}

impl InboundCallId {
    /// The connection the call came in on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
    /// The caller's request id on the wire.
    pub fn request_id(&self) -> u64 {
        self.id
    }
}

/// Which side opened the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We dialed: we are the handshake's initiator.
    Outbound,
    /// We accepted: we are the responder.
    Inbound,
}

/// Which side did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This endpoint.
    Local,
    /// The peer.
    Remote,
}
