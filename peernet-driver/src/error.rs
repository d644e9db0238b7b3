//! Errors of the async API. Calls fail with the core's typed
//! [`CallError`](peernet_proto::CallError); dialing has its own.

use std::io;

use peernet_proto::{CallError, CloseReason, GoodbyeCode, HandshakeError, PeerId, RejectCode};

/// Why `connect` (or a brought-in stream) did not give a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection could not be opened.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The peer refused us with this REJECT code (e.g. `untrusted`: it
    /// does not trust our key).
    #[error("rejected: {0}")]
    Rejected(RejectCode),
    /// We refused the peer with this REJECT code (its key is not trusted,
    /// its signature did not verify, …).
    #[error("refused: {0}")]
    Refused(RejectCode),
    /// The peer that answered is not the one we dialed.
    #[error("unexpected_peer: dialed {expected}, reached {actual}")]
    UnexpectedPeer {
        /// The PeerId dialed.
        expected: PeerId,
        /// The trusted peer that answered.
        actual: PeerId,
    },
    /// The handshake did not finish within `handshake_timeout`.
    #[error("timeout")]
    Timeout,
    /// The transport closed during the handshake.
    #[error("connection closed during the handshake")]
    Closed,
    /// The peer to dial is not in our trust list.
    #[error("peer {0} is not trusted")]
    Untrusted(PeerId),
    /// The node is shutting down, or the peer was unpaired meanwhile.
    #[error("abandoned: the node is shutting down or the peer was unpaired")]
    Abandoned,
}

impl From<peernet_proto::ConnectError> for ConnectError {
    fn from(error: peernet_proto::ConnectError) -> ConnectError {
        match error {
            peernet_proto::ConnectError::Untrusted(peer) => ConnectError::Untrusted(peer),
            peernet_proto::ConnectError::Handshake(error) => ConnectError::from_handshake(error),
            _ => ConnectError::Abandoned,
        }
    }
}

impl ConnectError {
    pub(crate) fn from_handshake(error: HandshakeError) -> ConnectError {
        match error {
            HandshakeError::Rejected(code) => ConnectError::Rejected(code),
            HandshakeError::Refused(code) => ConnectError::Refused(code),
            HandshakeError::UnexpectedPeer { expected, actual } => {
                ConnectError::UnexpectedPeer { expected, actual }
            }
            HandshakeError::Timeout => ConnectError::Timeout,
            HandshakeError::Frame => ConnectError::Refused(RejectCode::Malformed),
            HandshakeError::TransportLost => ConnectError::Closed,
            _ => ConnectError::Abandoned,
        }
    }
}

/// Questions about a failed call that would otherwise need a nested
/// match on [`CallError::ConnectionClosed`] and [`CloseReason`].
///
/// ```
/// use peernet_driver::{CallError, CallErrorExt};
///
/// fn describe(error: &CallError) -> &'static str {
///     match error {
///         e if e.is_revoked() => "one side unpaired the other",
///         CallError::Timeout => "no reply in time",
///         _ => "something else",
///     }
/// }
/// assert_eq!(describe(&CallError::Timeout), "no reply in time");
/// ```
pub trait CallErrorExt {
    /// Why the connection ended, if the call failed because it did.
    fn close_reason(&self) -> Option<&CloseReason>;
    /// The GOODBYE code the connection ended with, if any.
    fn goodbye_code(&self) -> Option<GoodbyeCode> {
        self.close_reason().and_then(CloseReason::goodbye_code)
    }
    /// Whether the call failed because one side removed the other from its
    /// trust list (GOODBYE `revoked`, sent or received).
    fn is_revoked(&self) -> bool {
        self.goodbye_code() == Some(GoodbyeCode::Revoked)
    }
}

impl CallErrorExt for CallError {
    fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            CallError::ConnectionClosed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Binding the listener, or reading the data directory, failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The identity file is damaged.
    #[error("identity file: {0}")]
    Identity(#[from] peernet_proto::InvalidIdentity),
    /// The trust list file is damaged (never read as an empty list).
    #[error("trust list file: {0}")]
    TrustList(#[from] peernet_proto::TrustListError),
    /// The operating system gave no randomness to seed the node's RNG.
    #[error("no entropy from the operating system: {0}")]
    Entropy(getrandom::Error),
}
