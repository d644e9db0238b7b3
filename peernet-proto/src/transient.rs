//! Which failures are of the moment: [`CallError::is_transient`],
//! [`CloseReason::is_transient`], and for connecting
//! [`ConnectError::is_transient`], [`HandshakeError::is_transient`] and
//! [`DialFailure::is_transient`]: one decision per variant, so that an
//! application sorts "try again later" from "a bug or a refusal" without
//! a match of its own that a new variant would silently slip past.
//!
//! The rule is one for all: transient when the same thing, tried again
//! later with nothing changed on either side (no pairing, no
//! configuration, no code), may succeed.

use crate::codes::{GoodbyeCode, RejectCode};
use crate::error::{CallError, CloseReason, ConnectError, DialFailure, HandshakeError};
use crate::noise::RecordError;

impl CallError {
    /// Whether the same call, made again later (after a reconnect where
    /// the connection is gone), may succeed with nothing changed on
    /// either side: the failure is of the moment (load, time, a lost or
    /// replaced connection, a restart), not of the request, of the
    /// callee's code or of the two peers' trust.
    ///
    /// True for:
    /// - [`Timeout`](CallError::Timeout): no reply in time (a slow
    ///   callee or network; the handler may still have run: retry only
    ///   what is safe to repeat);
    /// - [`Overloaded`](CallError::Overloaded): the callee's limits for
    ///   us are full for now;
    /// - [`ShuttingDown`](CallError::ShuttingDown): the callee is
    ///   stopping, and may be restarted;
    /// - [`NotConnected`](CallError::NotConnected): no connection now
    ///   (connect, or keep the peer connected, then call again);
    /// - [`WouldBlock`](CallError::WouldBlock): our own send queue or
    ///   call slots are full for now;
    /// - [`ConnectionClosed`](CallError::ConnectionClosed) when its
    ///   reason is ([`CloseReason::is_transient`]): a lost transport, a
    ///   peer that closed or went idle, a connection superseded.
    ///
    /// False for:
    /// - [`NoSuchHandle`](CallError::NoSuchHandle) and
    ///   [`Forbidden`](CallError::Forbidden): a refusal (default deny;
    ///   the callee must expose the handle to us first);
    /// - [`HandlerError`](CallError::HandlerError): the handler's own
    ///   answer, whose meaning is the application's (its error value may
    ///   say "try later": ask it);
    /// - [`HandlerPanicked`](CallError::HandlerPanicked): a bug of the
    ///   callee;
    /// - [`ResultTooLarge`](CallError::ResultTooLarge),
    ///   [`MessageTooLarge`](CallError::MessageTooLarge) and
    ///   [`InvalidHandle`](CallError::InvalidHandle): the same request
    ///   fails the same way (change it, or the frame limit);
    /// - [`Cancelled`](CallError::Cancelled): this side gave up on the
    ///   call (the outer call of a nested one ended): nobody waits for
    ///   its result;
    /// - [`ConnectionClosed`](CallError::ConnectionClosed) whose reason
    ///   is a revocation, a protocol error or a refusal.
    ///
    /// It knows nothing of this node's own state: after this node's own
    /// [shutdown](crate::Endpoint::shutdown) its calls fail
    /// `NotConnected`, transient, yet nothing will reconnect.
    ///
    /// ```
    /// use peernet_proto::CallError;
    ///
    /// assert!(CallError::Timeout.is_transient());
    /// assert!(CallError::Overloaded.is_transient());
    /// assert!(!CallError::NoSuchHandle.is_transient());
    /// assert!(!CallError::Forbidden.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        // (exhaustive, in the crate that defines the variants: a new
        // variant needs its own decision here)
        match self {
            CallError::Timeout
            | CallError::Overloaded
            | CallError::ShuttingDown
            | CallError::NotConnected
            | CallError::WouldBlock => true,
            CallError::ConnectionClosed(reason) => reason.is_transient(),
            CallError::NoSuchHandle
            | CallError::Forbidden
            | CallError::HandlerError(_)
            | CallError::HandlerPanicked(_)
            | CallError::ResultTooLarge
            | CallError::MessageTooLarge
            | CallError::InvalidHandle(_)
            | CallError::Cancelled => false,
        }
    }
}

impl CloseReason {
    /// Whether a new connection to the same peer may work where this one
    /// ended, with nothing changed on either side (for a call that failed
    /// with it: [`CallError::is_transient`]).
    ///
    /// True for a lost transport, a GOODBYE `normal` (either side closed
    /// on purpose: a disconnect, a shutdown, a restart), `superseded`
    /// (another connection to the peer replaced this one) or
    /// `idle_timeout`, a version-1 REJECT `busy`, and a version-2
    /// connection whose record nonces ran out (a new connection has new
    /// keys).
    ///
    /// False for a GOODBYE `revoked` (one side unpaired the other: a
    /// refusal until it pairs again) or `protocol_error` (a bug of one
    /// side), any other REJECT (the peer does not trust us, or refused
    /// our proof), and a record that failed to decrypt (TCP delivers
    /// bytes intact: it was altered on the way, or a side has a bug;
    /// PROTOCOL.md section 7 makes it a protocol error).
    ///
    /// ```
    /// use peernet_proto::CloseReason;
    ///
    /// assert!(CloseReason::TransportLost.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            CloseReason::TransportLost => true,
            CloseReason::Goodbye { code, .. } => match code {
                GoodbyeCode::Normal | GoodbyeCode::Superseded | GoodbyeCode::IdleTimeout => true,
                GoodbyeCode::Revoked | GoodbyeCode::ProtocolError => false,
            },
            CloseReason::Rejected(code) => *code == RejectCode::Busy,
            CloseReason::RecordFailed(error) => record_transient(error),
        }
    }
}

/// A record's failure: its nonces ran out (a new connection has new
/// keys), or it did not decrypt (altered on the way, or a bug: never
/// of the moment).
fn record_transient(error: &RecordError) -> bool {
    match error {
        RecordError::NonceExhausted => true,
        RecordError::DecryptFailed => false,
    }
}

impl HandshakeError {
    /// Whether a new handshake with the same peer may succeed where this
    /// one failed, with nothing changed on either side (the same rule
    /// as [`CloseReason::is_transient`], whose `Rejected` it agrees
    /// with).
    ///
    /// True for:
    /// - [`Rejected`](HandshakeError::Rejected) and
    ///   [`Refused`](HandshakeError::Refused) with
    ///   [`RejectCode::Busy`]: the refusing side's handshake slots or
    ///   connect rate were full for now;
    /// - [`Timeout`](HandshakeError::Timeout) and
    ///   [`TransportLost`](HandshakeError::TransportLost): a slow or
    ///   lost network, a peer restarting;
    /// - [`Evicted`](HandshakeError::Evicted),
    ///   [`Throttled`](HandshakeError::Throttled) and
    ///   [`OverBudget`](HandshakeError::OverBudget): the responder's
    ///   slots, connect rate or byte budget were full for now;
    /// - [`Superseded`](HandshakeError::Superseded): another connection
    ///   to the peer won the race; the peer is connected through it;
    /// - [`Record`](HandshakeError::Record) of
    ///   [`RecordError::NonceExhausted`].
    ///
    /// False for:
    /// - any other REJECT code, received or sent: `untrusted` (one side
    ///   has not paired the other: a refusal until it does, which a
    ///   retry does not bring about; a kept peer is redialed anyway, and
    ///   connects once the pairing is made), `unexpected_peer` (another
    ///   node answers at that address), `bad_signature`,
    ///   `unsupported_version`, `malformed` (a bug or another protocol
    ///   version on one side);
    /// - [`UnexpectedPeer`](HandshakeError::UnexpectedPeer): another
    ///   node answers at the address dialed;
    /// - [`Frame`](HandshakeError::Frame),
    ///   [`Replayed`](HandshakeError::Replayed) and a record that did
    ///   not decrypt: a bug or an attack;
    /// - [`Abandoned`](HandshakeError::Abandoned): this side unpaired the
    ///   peer or shut down meanwhile.
    ///
    /// ```
    /// use peernet_proto::{HandshakeError, RejectCode};
    ///
    /// assert!(HandshakeError::Rejected(RejectCode::Busy).is_transient());
    /// assert!(!HandshakeError::Rejected(RejectCode::Untrusted).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            HandshakeError::Rejected(code) | HandshakeError::Refused(code) => {
                *code == RejectCode::Busy
            }
            HandshakeError::Timeout
            | HandshakeError::TransportLost
            | HandshakeError::Evicted
            | HandshakeError::Throttled
            | HandshakeError::OverBudget
            | HandshakeError::Superseded => true,
            HandshakeError::Record(error) => record_transient(error),
            HandshakeError::UnexpectedPeer { .. }
            | HandshakeError::Frame
            | HandshakeError::Replayed
            | HandshakeError::Abandoned => false,
        }
    }
}

impl DialFailure {
    /// Whether a later dial of the same address may connect: a
    /// transport that did not open or did not open in time (a peer not
    /// running yet, a network down) may; a handshake that failed may
    /// as [`HandshakeError::is_transient`] says.
    ///
    /// ```
    /// use peernet_proto::DialFailure;
    ///
    /// assert!(DialFailure::transport("Connection refused").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            DialFailure::Transport(_) | DialFailure::TimedOut(_) => true,
            DialFailure::Handshake(error) => error.is_transient(),
        }
    }
}

impl ConnectError {
    /// Whether the same connect, tried again later with nothing changed
    /// on either side, may succeed.
    ///
    /// True for [`DialInFlight`](ConnectError::DialInFlight) (the
    /// schedule's own dial of the peer ends soon),
    /// [`SourceLimited`](ConnectError::SourceLimited) (the source's
    /// limits are rates and counts of the moment) and a
    /// [`Handshake`](ConnectError::Handshake) that is
    /// ([`HandshakeError::is_transient`]).
    ///
    /// False for [`ShuttingDown`](ConnectError::ShuttingDown) (this
    /// endpoint's own end), [`Untrusted`](ConnectError::Untrusted) (pair
    /// the peer first), [`PeerIdRequired`](ConnectError::PeerIdRequired)
    /// (name the peer), [`NoAddress`](ConnectError::NoAddress) (add an
    /// address first) and
    /// [`AlreadyConnected`](ConnectError::AlreadyConnected) (nothing to
    /// try again: the peer is connected).
    ///
    /// ```
    /// use peernet_proto::{ConnectError, HandshakeError};
    ///
    /// assert!(ConnectError::Handshake(HandshakeError::Timeout).is_transient());
    /// assert!(!ConnectError::ShuttingDown.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::DialInFlight { .. } | ConnectError::SourceLimited(_) => true,
            ConnectError::Handshake(error) => error.is_transient(),
            ConnectError::ShuttingDown
            | ConnectError::Untrusted(_)
            | ConnectError::PeerIdRequired
            | ConnectError::NoAddress(_)
            | ConnectError::AlreadyConnected(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use bytes::Bytes;

    use super::*;
    use crate::ids::Side;

    fn goodbye(by: Side, code: GoodbyeCode) -> CloseReason {
        CloseReason::Goodbye {
            by,
            code,
            reason: String::from("words"),
        }
    }

    /// Every close reason, with whether it is of the moment.
    fn every_close_reason() -> alloc::vec::Vec<(CloseReason, bool)> {
        let mut all = alloc::vec![
            (CloseReason::TransportLost, true),
            (CloseReason::RecordFailed(RecordError::NonceExhausted), true),
            (CloseReason::RecordFailed(RecordError::DecryptFailed), false),
        ];
        for by in [Side::Local, Side::Remote] {
            all.extend([
                (goodbye(by, GoodbyeCode::Normal), true),
                (goodbye(by, GoodbyeCode::Superseded), true),
                (goodbye(by, GoodbyeCode::IdleTimeout), true),
                (goodbye(by, GoodbyeCode::Revoked), false),
                (goodbye(by, GoodbyeCode::ProtocolError), false),
            ]);
        }
        all.extend([
            (CloseReason::Rejected(RejectCode::Busy), true),
            (CloseReason::Rejected(RejectCode::Untrusted), false),
            (CloseReason::Rejected(RejectCode::UnsupportedVersion), false),
            (CloseReason::Rejected(RejectCode::BadSignature), false),
            (CloseReason::Rejected(RejectCode::UnexpectedPeer), false),
            (CloseReason::Rejected(RejectCode::Malformed), false),
        ]);
        all
    }

    /// Each variant of `CallError` is sorted as its documentation says:
    /// retry later, or a bug or a refusal.
    #[test]
    fn every_call_error_is_sorted_as_documented() {
        let invalid = crate::Handle::new("").unwrap_err();
        let cases = [
            (CallError::Timeout, true),
            (CallError::Overloaded, true),
            (CallError::ShuttingDown, true),
            (CallError::NotConnected, true),
            (CallError::WouldBlock, true),
            (CallError::NoSuchHandle, false),
            (CallError::Forbidden, false),
            (CallError::HandlerError(Bytes::from_static(b"later")), false),
            (CallError::HandlerPanicked(Bytes::new()), false),
            (CallError::ResultTooLarge, false),
            (CallError::MessageTooLarge, false),
            (CallError::InvalidHandle(invalid), false),
            (CallError::Cancelled, false),
        ];
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
        for (reason, transient) in every_close_reason() {
            let error = CallError::ConnectionClosed(reason.clone());
            assert_eq!(reason.is_transient(), transient, "{reason:?}");
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
    }

    /// Each handshake error is sorted as its documentation says, the
    /// REJECT codes as `CloseReason` sorts them, and a dial's failure
    /// and a connect's error as the handshake error they carry.
    #[test]
    fn every_handshake_error_is_sorted_as_documented() {
        let peer = crate::Identity::from_seed(&[3; 32]).peer_id();
        let of_the_moment = [
            HandshakeError::Timeout,
            HandshakeError::TransportLost,
            HandshakeError::Evicted,
            HandshakeError::Throttled,
            HandshakeError::OverBudget,
            HandshakeError::Superseded,
            HandshakeError::Record(RecordError::NonceExhausted),
        ];
        let for_good = [
            HandshakeError::Record(RecordError::DecryptFailed),
            HandshakeError::UnexpectedPeer {
                expected: peer,
                actual: peer,
            },
            HandshakeError::Frame,
            HandshakeError::Replayed,
            HandshakeError::Abandoned,
        ];
        let mut cases: alloc::vec::Vec<(HandshakeError, bool)> = of_the_moment
            .into_iter()
            .map(|e| (e, true))
            .chain(for_good.into_iter().map(|e| (e, false)))
            .collect();
        for (reason, transient) in every_close_reason() {
            if let CloseReason::Rejected(code) = reason {
                cases.push((HandshakeError::Rejected(code), transient));
                cases.push((HandshakeError::Refused(code), transient));
            }
        }
        assert!(cases.contains(&(HandshakeError::Rejected(RejectCode::Busy), true)));
        assert!(cases.contains(&(HandshakeError::Rejected(RejectCode::Untrusted), false)));
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error:?}");
            let dial = DialFailure::Handshake(error.clone());
            assert_eq!(dial.is_transient(), transient, "{dial:?}");
            let connect = ConnectError::Handshake(error);
            assert_eq!(connect.is_transient(), transient, "{connect:?}");
        }
        let waited = core::time::Duration::from_secs(1);
        assert!(DialFailure::transport("refused").is_transient());
        assert!(DialFailure::TimedOut(waited).is_transient());
    }

    /// Each of the connect errors refused before a handshake is sorted
    /// as its documentation says.
    #[test]
    fn every_connect_error_is_sorted_as_documented() {
        let peer = crate::Identity::from_seed(&[3; 32]).peer_id();
        let addr = "192.0.2.7:7000".parse().unwrap();
        let cases = [
            (ConnectError::DialInFlight { peer, addr }, true),
            (
                ConnectError::SourceLimited(crate::SourceRefusal::Busy),
                true,
            ),
            (
                ConnectError::SourceLimited(crate::SourceRefusal::Failing),
                true,
            ),
            (
                ConnectError::SourceLimited(crate::SourceRefusal::NodeFailing),
                true,
            ),
            (ConnectError::ShuttingDown, false),
            (ConnectError::Untrusted(peer), false),
            (ConnectError::PeerIdRequired, false),
            (ConnectError::NoAddress(peer), false),
            (ConnectError::AlreadyConnected(peer), false),
        ];
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
    }

    /// A call the callee refused for now (overloaded, shutting down, a
    /// REJECT `busy`) is transient; one it refused for good (unpaired,
    /// untrusted) is not, though both end a call the same way.
    #[test]
    fn a_refusal_for_now_is_transient_and_one_for_good_is_not() {
        let revoked = CallError::ConnectionClosed(goodbye(Side::Remote, GoodbyeCode::Revoked));
        let normal = CallError::ConnectionClosed(goodbye(Side::Remote, GoodbyeCode::Normal));
        assert!(!revoked.is_transient());
        assert!(normal.is_transient());
        let busy = CallError::ConnectionClosed(CloseReason::Rejected(RejectCode::Busy));
        let untrusted = CallError::ConnectionClosed(CloseReason::Rejected(RejectCode::Untrusted));
        assert!(busy.is_transient());
        assert!(!untrusted.is_transient());
    }
}
