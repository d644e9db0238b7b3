//! What can go wrong, split by phase: dialing or accepting (handshake), a
//! live connection ending, and a single call.
//!
//! An error that wraps another error ([`ConnectError::Handshake`],
//! [`ConnectError::SourceLimited`]) returns it from
//! [`source`](core::error::Error::source) and does not repeat it in its
//! own message: a reporter that walks the chain shows each cause once,
//! and one that shows the message alone shows only the outer error (the
//! driver's `ErrorChain` shows the whole chain on one line). An error
//! whose message names a detail of its own (a REJECT code, a record's
//! failure, an invalid handle) says it in its message and returns
//! nothing from `source`.

use alloc::string::String;
use core::fmt;

use bytes::Bytes;

use crate::codes::{GoodbyeCode, RejectCode};
use crate::envelope::InvalidHandle;
use crate::identity::PeerId;
use crate::ids::Side;
use crate::noise::RecordError;
use crate::text::{Layout, escaped};

/// Why a transport did not become a connection: refused before it
/// started ([`crate::Endpoint::connect`], [`crate::Endpoint::accept`]),
/// or its handshake failed. A driver wraps this one type, adding its own
/// I/O failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint is shutting down.
    #[error("the endpoint is shutting down")]
    ShuttingDown,
    /// The dialed PeerId is not in the trust list (or is our own): its
    /// WELCOME would be refused, so the dial is refused before it starts.
    #[error("peer {0} is not trusted")]
    Untrusted(PeerId),
    /// Version 2 dials only a named PeerId (its static key is the Noise
    /// pre-message): `expected` must be given.
    #[error("a version-2 dial needs the PeerId of the peer dialed")]
    PeerIdRequired,
    /// [`crate::Endpoint::dial`]: the address book has no address for the
    /// peer; add one first.
    #[error("no address known for peer {0}")]
    NoAddress(PeerId),
    /// [`crate::Endpoint::dial`] or [`crate::Endpoint::connect_to`]: the
    /// peer is connected already (in either direction); a second
    /// connection would only supersede it.
    #[error("peer {0} is already connected")]
    AlreadyConnected(PeerId),
    /// [`crate::Endpoint::connect_to`]: the dial schedule is dialing the
    /// peer at another address (it gave up on `addr`, whose dial was not
    /// reported within `DialConfig::dial_timeout`), or a handshake of its
    /// schedule already runs; at most one dial per peer is in flight.
    #[error("peer {peer} is being dialed already (the transport to {addr} came too late)")]
    DialInFlight {
        /// The peer.
        peer: PeerId,
        /// The address whose transport opened too late.
        addr: core::net::SocketAddr,
    },
    /// [`crate::Endpoint::accept_from`]: the connection's source is over
    /// one of its limits ([`crate::SourceLimits`]); close the transport
    /// without a word.
    #[error("refused at accept")]
    SourceLimited(#[source] crate::SourceRefusal),
    /// The handshake ran and failed ([`crate::Event::HandshakeFailed`]).
    #[error("handshake failed")]
    Handshake(#[from] HandshakeError),
}

/// Why a handshake did not produce a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The remote node refused us with this REJECT code (for a dialer,
    /// the node answering at the address dialed, whose identity a REJECT
    /// does not prove). Its message names the code and what it means
    /// ([`RejectCode::meaning`]): `rejected by the remote node
    /// (untrusted): it does not trust our PeerId (it has not paired us)`.
    #[error("rejected by the remote node ({}): {}", .0.name(), .0.meaning())]
    Rejected(RejectCode),
    /// We refused the peer with this REJECT code: it is untrusted, its
    /// proof of identity failed (version 1: its signature did not verify;
    /// version 2: its handshake did not decrypt), its frame was
    /// malformed or of another version, or we were busy. Its message
    /// names the code and why ([`RejectCode::reason_sent`]): `we refused
    /// the remote node (untrusted): its PeerId is not in our trust list`.
    #[error("we refused the remote node ({}): {}", .0.name(), .0.reason_sent())]
    Refused(RejectCode),
    /// The responder is not the peer we dialed (version 1); we sent
    /// REJECT `unexpected_peer`, or `untrusted` if we do not trust its
    /// key either (PROTOCOL.md 2.1 checks trust first).
    #[error("dialed {expected} but reached {actual}")]
    UnexpectedPeer {
        /// The PeerId that was dialed.
        expected: PeerId,
        /// The peer that answered (a valid key, trusted or not).
        actual: PeerId,
    },
    /// The handshake did not finish within `handshake_timeout` from the
    /// transport's start, or (responder) a frame it was due came late:
    /// its first one within `first_frame_timeout` of accept, or the one
    /// that proves the dialer's key (version 1's PROOF, version 2's first
    /// record) within `first_frame_timeout` of our answer.
    #[error("handshake timed out")]
    Timeout,
    /// Responder: the connection had not delivered a complete frame when
    /// every handshake slot (`Config::max_handshakes`) was taken and a new
    /// connection came; the oldest such gave its slot to it, closed with
    /// nothing sent.
    #[error("evicted before its first frame: every handshake slot was taken")]
    Evicted,
    /// Responder: the trusted peer the HELLO or INIT named has
    /// established inbound connections faster than `Config::peer_connects`
    /// allows; we sent REJECT `busy` (the peer sees
    /// `Rejected(busy)`: try later). Held against the connection's source.
    #[error("the peer connects too often: refused busy")]
    Throttled,
    /// The bytes of a frame split across reads would have taken the
    /// buffers of every handshake in progress past the node's budget
    /// (`Config::max_handshake_bytes`): closed before they were buffered,
    /// with nothing sent (the bytes it needed and the room left are
    /// logged at debug). Held against the connection's source.
    #[error("over the node's byte budget for handshakes in progress")]
    OverBudget,
    /// The transport closed before the handshake finished.
    #[error("the transport closed during the handshake")]
    TransportLost,
    /// A frame header was invalid (length 0 or over the handshake limit).
    /// Only ever a handshake's: a bad frame on an established connection
    /// ends it with GOODBYE `protocol_error` instead.
    #[error("malformed frame during the handshake")]
    Frame,
    /// The peer was unpaired, or this endpoint shut down, while the
    /// handshake ran.
    #[error("handshake abandoned")]
    Abandoned,
    /// The handshake finished, but another connection to the same peer won
    /// by the rule of PROTOCOL.md section 4. The peer is connected through
    /// that one.
    #[error("superseded by another connection to the same peer")]
    Superseded,
    /// Version 2, responder: the INIT repeats the ephemeral key of one
    /// answered within `handshake_timeout` (a replay); closed before any
    /// X25519 work, with nothing sent.
    #[error("replayed INIT")]
    Replayed,
    /// Version 2, responder: the initiator's first record did not decrypt
    /// (a replayed INIT cannot produce it). A protocol error; nothing was
    /// sent.
    #[error("the first record failed: {0}")]
    Record(RecordError),
}

/// Why one address of a dial round ([`crate::Endpoint::dial`],
/// [`crate::Endpoint::keep_connected`]) gave no connection; the round's
/// [`crate::Event::Unreachable`] lists one per address tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialFailure {
    /// The driver could not open the transport
    /// ([`crate::Endpoint::dial_failed`]); its words, at most
    /// [`DialFailure::MAX_TRANSPORT_TEXT`] bytes. Its message says what
    /// failed, then those words escaped (a runtime's error may quote a
    /// host name, anyone's text): `the connection did not open:
    /// Connection refused (os error 111)`.
    #[error("the connection did not open: {}", escaped(.0, Layout::Line))]
    Transport(String),
    /// Neither [`crate::Endpoint::connect_to`] nor
    /// [`crate::Endpoint::dial_failed`] came within
    /// `DialConfig::dial_timeout` (this long).
    #[error("no connection within {0:?}")]
    TimedOut(core::time::Duration),
    /// The transport opened and the handshake failed.
    #[error("handshake: {0}")]
    Handshake(HandshakeError),
}

impl DialFailure {
    /// The longest text [`DialFailure::Transport`] keeps: a longer one is
    /// cut at a character boundary, so a round's causes stay bounded.
    pub const MAX_TRANSPORT_TEXT: usize = 256;

    /// A transport failure in the driver's words, cut to
    /// [`DialFailure::MAX_TRANSPORT_TEXT`] bytes.
    pub fn transport(text: &str) -> DialFailure {
        DialFailure::Transport(String::from(cut(text, Self::MAX_TRANSPORT_TEXT)))
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why an established connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A GOODBYE was sent (`Local`) or received (`Remote`) with this code.
    Goodbye {
        /// Who said goodbye.
        by: Side,
        /// The GOODBYE code (an unknown received code reads as `normal`).
        code: GoodbyeCode,
        /// The GOODBYE reason text (a peer's: at most
        /// [`CloseReason::MAX_PEER_REASON`] bytes of it).
        reason: String,
    },
    /// The responder refused our PROOF after we had started using the
    /// connection.
    Rejected(RejectCode),
    /// The transport ended (EOF, reset, write failure) with no GOODBYE.
    TransportLost,
    /// Version 2: a record failed to decrypt (wrong tag, replayed,
    /// reordered, cut) or a direction's nonces ran out. A protocol error,
    /// closed at once with nothing more sent (PROTOCOL.md section 7).
    RecordFailed(RecordError),
}

impl CloseReason {
    /// The most of a peer's GOODBYE reason kept (cut at a character
    /// boundary): the reason travels with every close event and into
    /// logs, and a peer may send one as long as a frame.
    pub const MAX_PEER_REASON: usize = 256;

    pub(crate) fn local(code: GoodbyeCode, reason: impl Into<String>) -> CloseReason {
        CloseReason::Goodbye {
            by: Side::Local,
            code,
            reason: reason.into(),
        }
    }

    /// The GOODBYE code, if the connection ended with one.
    pub fn goodbye_code(&self) -> Option<GoodbyeCode> {
        match self {
            CloseReason::Goodbye { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Goodbye { by, code, reason } => {
                let who = match by {
                    Side::Local => "closed",
                    Side::Remote => "closed by peer",
                };
                write!(f, "{who}: {}", code.name())?;
                if !reason.is_empty() {
                    // (a peer's words, escaped: this goes to logs and
                    // terminals, one line)
                    write!(f, " ({})", escaped(reason, Layout::Line))?;
                }
                Ok(())
            }
            CloseReason::Rejected(code) => write!(
                f,
                "rejected by the remote node ({}): {}",
                code.name(),
                code.meaning()
            ),
            CloseReason::TransportLost => f.write_str("transport lost"),
            CloseReason::RecordFailed(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Why a call failed. Each call resolves exactly once: with its reply or
/// with one of these. [`crate::Endpoint::call`] refuses up front with the
/// local ones (`NotConnected`, `WouldBlock`, `MessageTooLarge`,
/// `InvalidHandle`: [`SendError`]'s set), so one type covers a call from
/// request to resolution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The handle is not exposed to us (default deny).
    #[error("no such handle")]
    NoSuchHandle,
    /// The handle is exposed, but not to us.
    #[error("forbidden")]
    Forbidden,
    /// The handler failed with these bytes (also: an unknown status).
    #[error("handler error ({} bytes)", .0.len())]
    HandlerError(Bytes),
    /// The handler panicked; the body is empty or a short note: UTF-8, at
    /// most 256 bytes (what the peer sent is cut to that, up to its first
    /// byte that is not UTF-8).
    #[error("handler panicked")]
    HandlerPanicked(Bytes),
    /// The callee has `max_inbound_calls` in flight from us, or its
    /// byte budget for arguments held (`max_inbound_bytes_per_conn` for
    /// our connection, `max_inbound_bytes` over the node) is spent.
    #[error("callee overloaded")]
    Overloaded,
    /// The callee is shutting down and takes no new calls.
    #[error("callee shutting down")]
    ShuttingDown,
    /// The handler's result did not fit in one frame.
    #[error("result too large for one frame")]
    ResultTooLarge,
    /// No reply within the call's timeout; CANCEL was sent (for a zero
    /// timeout, nothing at all: see [`crate::Endpoint::call`]).
    #[error("timed out")]
    Timeout,
    /// Cancelled locally: with [`crate::Endpoint::cancel`] on the core;
    /// on a node (peernet-driver), a nested call (`Node::call_in`) whose
    /// outer call was cancelled (CANCEL, or its connection lost) before
    /// its deadline. A plain `Node::call` does not end with it: an
    /// application gives up on one by dropping its future (which sends
    /// CANCEL).
    #[error("cancelled")]
    Cancelled,
    /// The connection ended while the call was in flight.
    #[error("connection closed: {0}")]
    ConnectionClosed(CloseReason),
    /// No established connection to that peer.
    #[error("not connected")]
    NotConnected,
    /// The CALL would not fit in one frame; nothing was sent.
    #[error("message too large for one frame")]
    MessageTooLarge,
    /// The handle name is not valid (empty, over 255 bytes).
    #[error("invalid handle: {0}")]
    InvalidHandle(InvalidHandle),
    /// The connection's send queue is full (`send_buffer`) or
    /// `max_outbound_calls` are in flight: try again after the driver took
    /// the queued bytes with [`crate::Endpoint::poll_transmit`] or a call
    /// on the connection resolved.
    #[error("send queue full")]
    WouldBlock,
}

/// Why [`crate::Endpoint::send`] (or [`crate::Endpoint::call`], as the
/// matching [`CallError`] variants) refused to queue a message: nothing was
/// sent. Each is local; none says anything about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No established connection to that peer.
    #[error("not connected")]
    NotConnected,
    /// The connection's send queue is full (`send_buffer`), or for a call
    /// `max_outbound_calls` are in flight: try again after the driver took
    /// the queued bytes with [`crate::Endpoint::poll_transmit`].
    #[error("send queue full")]
    WouldBlock,
    /// The message would not fit in one frame.
    #[error("message too large for one frame")]
    MessageTooLarge,
    /// The handle name is not valid (empty, over 255 bytes).
    #[error("invalid handle: {0}")]
    InvalidHandle(InvalidHandle),
}

impl From<SendError> for CallError {
    fn from(e: SendError) -> CallError {
        match e {
            SendError::NotConnected => CallError::NotConnected,
            SendError::WouldBlock => CallError::WouldBlock,
            SendError::MessageTooLarge => CallError::MessageTooLarge,
            SendError::InvalidHandle(e) => CallError::InvalidHandle(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another returns it from `source` and leaves it
    /// out of its own message, so that a reporter walking the chain
    /// (anyhow's `{:#}`, the driver's `ErrorChain`) says it once:
    /// `ConnectError::Handshake` said `handshake: handshake timed out:
    /// handshake timed out`.
    #[test]
    fn a_connect_error_says_its_cause_through_source_alone() {
        use core::error::Error;
        let cases = [
            (
                ConnectError::Handshake(HandshakeError::Timeout),
                "handshake timed out",
            ),
            (
                ConnectError::SourceLimited(crate::SourceRefusal::Failing),
                "too many failed handshakes from this source",
            ),
        ];
        for (error, cause) in cases {
            let source = error.source().map(|s| alloc::format!("{s}"));
            assert_eq!(source.as_deref(), Some(cause), "{error:?}");
            let shown = alloc::format!("{error}");
            assert!(!shown.contains(cause), "`{shown}` repeats `{cause}`");
        }
    }

    /// A REJECT's message says who refused whom and what the code means
    /// for the user: `rejected by the peer: untrusted` read, in a dial
    /// round's list, as if the peer dialed had answered, and did not say
    /// what to do.
    #[test]
    fn a_reject_says_who_refused_and_what_it_means() {
        let shown = |e: HandshakeError| alloc::format!("{e}");
        assert_eq!(
            shown(HandshakeError::Rejected(RejectCode::Untrusted)),
            "rejected by the remote node (untrusted): \
             it does not trust our PeerId (it has not paired us)"
        );
        assert_eq!(
            shown(HandshakeError::Rejected(RejectCode::Busy)),
            "rejected by the remote node (busy): it is busy, try again later"
        );
        assert_eq!(
            shown(HandshakeError::Refused(RejectCode::Untrusted)),
            "we refused the remote node (untrusted): its PeerId is not in our trust list"
        );
        assert_eq!(
            alloc::format!("{}", CloseReason::Rejected(RejectCode::BadSignature)),
            "rejected by the remote node (bad_signature): \
             our proof of identity did not verify there"
        );
    }

    /// A transport's failure says what failed before the driver's words,
    /// which are escaped: they stood alone (`10.0.0.1:7000: Connection
    /// refused`), and a runtime's text went to logs as it was.
    #[test]
    fn a_transport_failure_says_what_failed_escaped() {
        let failure = DialFailure::transport("refused\n\u{1b}[2J");
        assert_eq!(
            alloc::format!("{failure}"),
            "the connection did not open: refused\\n\\u{1b}[2J"
        );
    }

    /// A peer's GOODBYE reason reaches logs and terminals through this
    /// `Display`: it cannot start a line of its own or send escapes.
    #[test]
    fn a_peers_goodbye_reason_is_escaped() {
        let reason = CloseReason::Goodbye {
            by: Side::Remote,
            code: GoodbyeCode::Normal,
            reason: String::from("bye\nERROR forged line \u{1b}[2J\u{202e}"),
        };
        let shown = alloc::format!("{reason}");
        assert_eq!(
            shown,
            "closed by peer: normal (bye\\nERROR forged line \\u{1b}[2J\\u{202e})"
        );
        assert!(!shown.contains('\n'));
    }

    /// A peer's GOODBYE reason is shown by the one escaper the driver and
    /// the `peernet` tool use: its quotes as they are (not `\"`), and a
    /// character that renders blank, in which text could hide, as its
    /// escape, next to the right-to-left override.
    #[test]
    fn a_peers_goodbye_reason_is_shown_as_the_tool_shows_text() {
        let said = "say \"bye\"\u{202e}olleh\u{3164}\u{3164}x\\";
        let reason = CloseReason::Goodbye {
            by: Side::Remote,
            code: GoodbyeCode::Normal,
            reason: String::from(said),
        };
        assert_eq!(
            alloc::format!("{reason}"),
            r#"closed by peer: normal (say "bye"\u{202e}olleh\u{3164}\u{3164}x\\)"#
        );
        assert_eq!(
            alloc::format!("{reason}"),
            alloc::format!(
                "closed by peer: normal ({})",
                crate::text::escape(said.as_bytes(), crate::text::Layout::Line)
            )
        );
    }
}
