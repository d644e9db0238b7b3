//! Why a connection ends, as one value: an [`Ending`] per end, from which
//! the farewell frame (GOODBYE, REJECT or nothing), the [`CloseReason`]
//! of an established connection and the [`HandshakeError`] of one that
//! never got there are all derived, so no ending is described twice.
//! Carrying an ending out (the last write, the calls resolved, the
//! events) is the connection's own: `connection/closing.rs`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use bytes::BytesMut;

use crate::codes::{GoodbyeCode, RejectCode};
use crate::envelope::EnvelopeRef;
use crate::error::{CloseReason, HandshakeError};
use crate::frame::{FrameError, encode_frame};
use crate::handshake::{self, Failure};
use crate::ids::Side;
use crate::noise::{RecordError, reject_v2};

/// Why a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The transport ended (EOF, reset, failed write).
    TransportLost,
    /// The handshake did not finish within `handshake_timeout`.
    HandshakeTimeout,
    /// An accepted connection that had not delivered a complete frame gave
    /// its handshake slot to a newer one: every slot was taken.
    Evicted,
    /// A handshake step failed (section 2); maybe a REJECT to send.
    HandshakeFailed(Failure),
    /// A frame header was invalid: REJECT `malformed` during the handshake,
    /// GOODBYE `protocol_error` after it.
    BadFrame(FrameError),
    /// The peer broke the protocol on an established connection (this
    /// reason goes out in GOODBYE `protocol_error`).
    ProtocolError(String),
    /// Nothing arrived for `idle_timeout` (this long).
    Idle(Duration),
    /// The transport accepted none of our bytes for `idle_timeout` (this
    /// long): [`crate::Input::Stalled`].
    Stalled(Duration),
    /// The responder refused our PROOF after we had started using the
    /// connection.
    RejectedAfterProof(RejectCode),
    /// The peer said GOODBYE.
    Goodbye {
        /// Its code (an unknown one reads as `normal`).
        code: GoodbyeCode,
        /// Its reason.
        reason: String,
    },
    /// Another connection to the same peer won by the rule of section 4.
    Superseded,
    /// The peer was unpaired.
    Unpaired,
    /// Closed on purpose ([`crate::Endpoint::disconnect`]).
    Disconnected,
    /// The endpoint closes everything ([`crate::Endpoint::close_all`]).
    ShuttingDown,
    /// Version 2: a record failed to decrypt, or the nonces ran out.
    /// Nothing more is sent (PROTOCOL.md section 7).
    RecordFailed(RecordError),
}

impl Ending {
    /// A frame the decoder refused: a bad header ([`Ending::BadFrame`]),
    /// or a handshake over the node's byte budget, closed with nothing
    /// sent ([`HandshakeError::OverBudget`]).
    pub(crate) fn of_frame(error: FrameError) -> Ending {
        match error {
            FrameError::OverBudget { .. } => Ending::HandshakeFailed(Failure {
                send: None,
                error: HandshakeError::OverBudget,
            }),
            error => Ending::BadFrame(error),
        }
    }

    /// The GOODBYE this ending sends on an established connection, if any.
    fn goodbye(&self) -> Option<(GoodbyeCode, Cow<'_, str>)> {
        let (code, reason) = match self {
            // (its message already says `frame: …`)
            Ending::BadFrame(error) => (GoodbyeCode::ProtocolError, format!("{error}").into()),
            Ending::ProtocolError(reason) => (GoodbyeCode::ProtocolError, reason.as_str().into()),
            Ending::Idle(idle) => (
                GoodbyeCode::IdleTimeout,
                format!("no frame received for {idle:?}").into(),
            ),
            Ending::Stalled(idle) => (
                GoodbyeCode::IdleTimeout,
                format!("peer read none of our bytes for {idle:?}").into(),
            ),
            Ending::Superseded => (GoodbyeCode::Superseded, "superseded".into()),
            Ending::Unpaired => (GoodbyeCode::Revoked, "unpaired".into()),
            Ending::Disconnected => (GoodbyeCode::Normal, "closed".into()),
            Ending::ShuttingDown => (GoodbyeCode::Normal, "shutting down".into()),
            Ending::TransportLost
            | Ending::HandshakeTimeout
            | Ending::Evicted
            | Ending::HandshakeFailed(_)
            | Ending::RejectedAfterProof(_)
            | Ending::RecordFailed(_)
            | Ending::Goodbye { .. } => return None,
        };
        Some((code, reason))
    }

    /// Whether what is still queued goes out before the farewell however
    /// long it is: the closes the application asks for (`disconnect`,
    /// `close_all` at a shutdown), after which a peer that reads should
    /// get the SENDs and replies queued before them. Every other close
    /// keeps its last write within [`crate::LAST_COPIED`]
    /// (`connection/closing.rs`).
    pub(crate) fn flushes_queue(&self) -> bool {
        matches!(self, Ending::Disconnected | Ending::ShuttingDown)
    }

    /// The GOODBYE this ending sends on an established version-2
    /// connection, to be sealed in a record.
    pub(crate) fn goodbye_envelope(&self) -> Option<(u64, Cow<'_, str>)> {
        self.goodbye().map(|(code, reason)| (code.code(), reason))
    }

    /// Appends the farewell frame to `out`: a GOODBYE on an established
    /// connection, a REJECT during a handshake (never a GOODBYE there: the
    /// peer would read an envelope where it expects a handshake frame), or
    /// nothing. A GOODBYE too large for a frame is left out. `v2`: a
    /// REJECT carries version byte 2 (an established version-2 connection
    /// seals its GOODBYE instead, see [`Ending::goodbye_envelope`]).
    pub(crate) fn write_farewell(
        &self,
        established: bool,
        v2: bool,
        out: &mut BytesMut,
        max_frame_len: u32,
    ) {
        if established {
            if let Some((code, reason)) = self.goodbye() {
                let goodbye = EnvelopeRef::Goodbye {
                    code: code.code(),
                    reason: &reason,
                };
                let _ = goodbye.encode_frame(out, max_frame_len);
            }
            return;
        }
        let reject = match self {
            Ending::HandshakeFailed(failure) => failure.send,
            Ending::BadFrame(_) => Some(RejectCode::Malformed),
            _ => None,
        };
        match reject {
            Some(code) if v2 => encode_frame(&reject_v2(code), out),
            Some(code) => encode_frame(&handshake::reject(code), out),
            None => {}
        }
    }

    /// Why an announced connection ended.
    pub(crate) fn close_reason(self) -> CloseReason {
        match self {
            Ending::RejectedAfterProof(code) => CloseReason::Rejected(code),
            Ending::RecordFailed(e) => CloseReason::RecordFailed(e),
            Ending::Goodbye { code, reason } => CloseReason::Goodbye {
                by: Side::Remote,
                code,
                reason,
            },
            other => match other.goodbye() {
                Some((code, reason)) => CloseReason::local(code, reason),
                None => CloseReason::TransportLost,
            },
        }
    }

    /// Whether an inbound handshake that ends this way is held against
    /// its source (`sources/`): every ending but those this node caused
    /// (`busy`: its own slots were full; shutdown, an unpairing or a
    /// disconnect; a connection that lost to another one of the same
    /// peer). A trusted peer's slow network counts too: the node cannot
    /// tell it from a source that wastes its work. So does an eviction: a
    /// source whose sockets say nothing while every slot is taken pays for
    /// each one evicted, so it cannot churn the slots faster than its
    /// failure rate.
    pub(crate) fn held_against_source(&self) -> bool {
        match self {
            Ending::Superseded | Ending::Unpaired | Ending::Disconnected | Ending::ShuttingDown => {
                false
            }
            Ending::HandshakeFailed(failure) => {
                failure.error != HandshakeError::Refused(RejectCode::Busy)
            }
            _ => true,
        }
    }

    /// Why a connection that was never announced did not become one.
    pub(crate) fn handshake_error(self) -> HandshakeError {
        match self {
            // (a handshake's messages are small: a transport that takes
            // none of them is as good as lost)
            Ending::TransportLost | Ending::Stalled(_) => HandshakeError::TransportLost,
            Ending::HandshakeTimeout => HandshakeError::Timeout,
            Ending::Evicted => HandshakeError::Evicted,
            Ending::HandshakeFailed(failure) => failure.error,
            Ending::RecordFailed(e) => HandshakeError::Record(e),
            Ending::BadFrame(_) => HandshakeError::Frame,
            Ending::Superseded => HandshakeError::Superseded,
            Ending::Unpaired | Ending::Disconnected | Ending::ShuttingDown => {
                HandshakeError::Abandoned
            }
            // The rest only end established connections, and an
            // established connection is announced as soon as it wins the
            // registry (a loser ends `Superseded`): not reached, but a
            // connection that had finished its handshake reads as lost.
            Ending::ProtocolError(_)
            | Ending::Idle(_)
            | Ending::RejectedAfterProof(_)
            | Ending::Goodbye { .. } => HandshakeError::TransportLost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::frame::FrameDecoder;

    /// The farewell frame's body, decoded: a GOODBYE's code and reason, or
    /// a REJECT's code.
    fn farewell(ending: &Ending, established: bool) -> Option<Result<(u64, String), RejectCode>> {
        let mut out = BytesMut::new();
        ending.write_farewell(established, false, &mut out, 1 << 20);
        let mut wire = out.freeze();
        let body = FrameDecoder::new(1 << 20).decode(&mut wire).unwrap()?;
        if let Some(code) = handshake::parse_reject(&body) {
            return Some(Err(code));
        }
        match Envelope::decode(&body).unwrap() {
            Envelope::Goodbye { code, reason } => Some(Ok((code, reason))),
            other => panic!("not a farewell: {other:?}"),
        }
    }

    #[test]
    fn one_ending_gives_frame_reason_and_error_alike() {
        let idle = Ending::Idle(Duration::from_secs(45));
        let reason = "no frame received for 45s";
        assert_eq!(farewell(&idle, true), Some(Ok((4, reason.into()))));
        assert_eq!(
            idle.clone().close_reason(),
            CloseReason::local(GoodbyeCode::IdleTimeout, reason)
        );
        // A frame error: REJECT during the handshake, GOODBYE after it.
        let bad = Ending::BadFrame(FrameError::Empty);
        assert_eq!(farewell(&bad, false), Some(Err(RejectCode::Malformed)));
        let Some(Ok((3, text))) = farewell(&bad, true) else {
            panic!("not a protocol_error GOODBYE");
        };
        assert_eq!(
            bad.clone().close_reason().goodbye_code(),
            Some(GoodbyeCode::ProtocolError)
        );
        assert_eq!(
            CloseReason::local(GoodbyeCode::ProtocolError, text),
            bad.clone().close_reason()
        );
        assert_eq!(bad.handshake_error(), HandshakeError::Frame);
        // No GOODBYE during a handshake; the error says what happened.
        assert_eq!(farewell(&Ending::Unpaired, false), None);
        assert_eq!(
            Ending::Unpaired.handshake_error(),
            HandshakeError::Abandoned
        );
        assert_eq!(
            Ending::Superseded.handshake_error(),
            HandshakeError::Superseded
        );
        // Nothing is sent in answer to the peer's own farewell.
        let goodbye = Ending::Goodbye {
            code: GoodbyeCode::Revoked,
            reason: "unpaired".into(),
        };
        assert_eq!(farewell(&goodbye, true), None);
        assert_eq!(
            goodbye.close_reason(),
            CloseReason::Goodbye {
                by: Side::Remote,
                code: GoodbyeCode::Revoked,
                reason: "unpaired".into(),
            }
        );
        let refused = Ending::HandshakeFailed(Failure::refuse(RejectCode::BadSignature));
        assert_eq!(
            farewell(&refused, false),
            Some(Err(RejectCode::BadSignature))
        );
        assert_eq!(refused.clone().close_reason(), CloseReason::TransportLost);
        assert_eq!(
            refused.handshake_error(),
            HandshakeError::Refused(RejectCode::BadSignature)
        );
    }

    #[test]
    fn only_this_nodes_own_endings_are_not_held_against_a_source() {
        let ours = [
            Ending::HandshakeFailed(Failure::refuse(RejectCode::Busy)),
            Ending::Superseded,
            Ending::Unpaired,
            Ending::Disconnected,
            Ending::ShuttingDown,
        ];
        for ending in ours {
            assert!(!ending.held_against_source(), "{ending:?}");
        }
        let theirs = [
            Ending::HandshakeFailed(Failure::refuse(RejectCode::Untrusted)),
            Ending::HandshakeFailed(Failure::refuse(RejectCode::BadSignature)),
            Ending::HandshakeFailed(Failure::refuse(RejectCode::Malformed)),
            Ending::HandshakeFailed(Failure {
                send: None,
                error: HandshakeError::Replayed,
            }),
            Ending::HandshakeTimeout,
            Ending::Evicted,
            Ending::TransportLost,
            Ending::BadFrame(FrameError::Empty),
            Ending::RecordFailed(RecordError::DecryptFailed),
        ];
        for ending in theirs {
            assert!(ending.held_against_source(), "{ending:?}");
        }
    }
}
