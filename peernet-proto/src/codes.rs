//! The protocol's code tables, each one definition through `wire_code!`:
//! REJECT codes (PROTOCOL.md section 2), REPLY statuses (3.1) and GOODBYE
//! codes (3.3).

wire_code! {
    /// The REJECT codes of PROTOCOL.md section 2.
    pub enum RejectCode: u8 {
        /// Your key is not in my trust list (or is invalid, weak, or mine).
        Untrusted = 1 => "untrusted",
        /// I speak version 1 only.
        UnsupportedVersion = 2 => "unsupported_version",
        /// Your signature did not verify.
        BadSignature = 3 => "bad_signature",
        /// You are not the peer I dialed.
        UnexpectedPeer = 4 => "unexpected_peer",
        /// Too many handshakes in progress; try later.
        Busy = 5 => "busy",
        /// The handshake frame was not valid.
        Malformed = 6 => "malformed",
    }
    unknown => Malformed,
    "Reads a code byte; an unknown code counts as `malformed` (section 2)."
}

wire_code! {
    /// REPLY status codes (PROTOCOL.md section 3.1).
    pub enum ReplyStatus: u64 {
        /// `ok`: the body is the handler's result.
        Ok = 0 => "ok",
        /// `no_such_handle`: the handle is not exposed (default deny).
        NoSuchHandle = 1 => "no_such_handle",
        /// `forbidden`: exposed, but this caller is not authorized.
        Forbidden = 2 => "forbidden",
        /// `handler_error`: the body is the handler's own error bytes.
        HandlerError = 3 => "handler_error",
        /// `handler_panicked`: the handler crashed; the body is empty or a
        /// short UTF-8 note.
        HandlerPanicked = 4 => "handler_panicked",
        /// `overloaded`: too many calls in flight from this connection.
        Overloaded = 5 => "overloaded",
        /// `shutting_down`: the callee is closing and takes no new calls.
        ShuttingDown = 6 => "shutting_down",
        /// `too_large`: the handler's result does not fit in one frame.
        TooLarge = 7 => "too_large",
    }
    unknown => HandlerError,
    "The status for a code; an unknown code is `HandlerError`, as the protocol tells a caller to treat it."
}

wire_code! {
    /// GOODBYE codes (PROTOCOL.md section 3.3).
    pub enum GoodbyeCode: u64 {
        /// `normal`: the sender closes on purpose.
        Normal = 0 => "normal",
        /// `superseded`: another connection between the same peers replaces this one.
        Superseded = 1 => "superseded",
        /// `revoked`: the receiver was removed from the sender's trust list.
        Revoked = 2 => "revoked",
        /// `protocol_error`: the receiver broke the protocol; the reason says how.
        ProtocolError = 3 => "protocol_error",
        /// `idle_timeout`: nothing arrived for `idle_timeout`. (Locally, also
        /// the code of a connection ended because the peer took none of our
        /// bytes for as long: [`crate::Input::Stalled`]; that GOODBYE seldom
        /// reaches a peer that does not read.)
        IdleTimeout = 4 => "idle_timeout",
    }
    unknown => Normal,
    "The code's meaning; an unknown code is `Normal`, as the protocol says."
}

impl RejectCode {
    /// What the code tells the side that received it (the node it
    /// refused), in a user's terms, of the remote node that sent it:
    /// `untrusted` is "it does not trust our PeerId (it has not paired
    /// us)", `busy` "it is busy, try again later". Error messages show it
    /// after the code's name (`rejected by the remote node (untrusted):
    /// it does not trust our PeerId (it has not paired us)`).
    ///
    /// ```
    /// use peernet_proto::RejectCode;
    ///
    /// assert!(RejectCode::Untrusted.meaning().contains("has not paired us"));
    /// assert!(RejectCode::Busy.meaning().contains("try again later"));
    /// ```
    pub fn meaning(self) -> &'static str {
        match self {
            RejectCode::Untrusted => "it does not trust our PeerId (it has not paired us)",
            RejectCode::UnsupportedVersion => "it does not speak our protocol version",
            RejectCode::BadSignature => "our proof of identity did not verify there",
            RejectCode::UnexpectedPeer => "it is not the peer we dialed",
            RejectCode::Busy => "it is busy, try again later",
            RejectCode::Malformed => "it could not read our handshake",
        }
    }

    /// What the code says of the remote node when we sent it (we refused
    /// it), in a user's terms: `untrusted` is "its PeerId is not in our
    /// trust list".
    ///
    /// ```
    /// use peernet_proto::RejectCode;
    ///
    /// assert!(RejectCode::Untrusted.reason_sent().contains("our trust list"));
    /// ```
    pub fn reason_sent(self) -> &'static str {
        match self {
            RejectCode::Untrusted => "its PeerId is not in our trust list",
            RejectCode::UnsupportedVersion => "it speaks a protocol version we do not",
            RejectCode::BadSignature => "its proof of identity did not verify",
            RejectCode::UnexpectedPeer => "it is not the peer we dialed",
            RejectCode::Busy => "we were busy",
            RejectCode::Malformed => "its handshake frame was not valid",
        }
    }
}
