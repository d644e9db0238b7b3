//! The deliberate faults (`Fault`) the simulation switches on to prove
//! its invariants real, and the `fault!` check the core's detours use.
//! A room of its own so that `config.rs` holds only the configuration.

/// Deliberate bugs, each a one-line detour at the place it names, which
/// the simulation tests switch on to prove that their invariants catch
/// them. Compiled in only with the `fault-injection` feature; reached as
/// `peernet_proto::testkit::Fault`.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `Endpoint::register`: the supersede rule keeps the newest connection
    /// always.
    SupersedeNewest,
    /// `connection::handshake` (HELLO): a responder accepts a HELLO key it
    /// does not trust.
    SkipTrustCheck,
    /// `Connection::establish`/`on_envelope`: request ids start at 1 on
    /// every connection and a
    /// REPLY is matched against every connection's calls, as if ids were
    /// global.
    ReplyAnyConnection,
    /// `Connection::on_liveness`: a connection that went idle is never
    /// closed.
    NoIdleTimeout,
    /// `unpair`: the revoked peer's connections stay open.
    KeepRevokedConnections,
    /// `Connection::on_call`: a CALL reaches the handler whether or not its handle is
    /// exposed to the caller.
    SkipExposureCheck,
    /// `Connection::on_call`: `max_inbound_calls` is not enforced.
    IgnoreInboundLimit,
    /// `connection::session` (CANCEL): a CANCEL for an id not in flight
    /// ends the connection with `protocol_error` (the spec says: ignored;
    /// honest callers send one whenever a timeout races the reply).
    CancelUnknownIsError,
    /// `connection::session` (CALL, SEND): a node that is shutting down
    /// still hands new calls and sends to handlers.
    HandlersWhileShuttingDown,
    /// `Endpoint::connect`: the PeerId a dial names is not passed to the
    /// handshake, so any trusted responder is accepted.
    IgnoreExpectedPeer,
    /// `connection::session` (CANCEL): a CANCEL that arrives leaves the
    /// call in flight (its handler slot is not freed).
    CancelIgnored,
    /// `Endpoint::unpair`: the revoked peer's connection is closed with
    /// GOODBYE `normal` instead of `revoked`.
    RevokedAsNormal,
    /// `connection::session` (PING): a PING is not answered with a PONG.
    NoPong,
    /// `Connection::on_liveness`: no PING is ever sent (the timer re-arms
    /// as if one had been).
    NoPing,
    /// `Connection::handle_data`: any bytes on an established connection
    /// reset the idle clock, not only complete frames.
    HalfFrameResetsIdle,
    /// `connection::handshake` (version 2): the responder treats the
    /// connection as established when it sends RESP, not when the
    /// initiator's first record decrypts, so a replayed INIT becomes a
    /// connection.
    EstablishAtResp,
    /// `Connection::on_record` (version 2): a record that fails to
    /// decrypt is skipped and the connection stays open, instead of
    /// ending it at once.
    IgnoreBadRecord,
    /// `Connection::new` (version 1): the handshake frame limit stays
    /// WELCOME's 134 bytes, so a version-2 INIT (150) is a frame error
    /// rather than REJECT `unsupported_version`.
    SmallHandshakeFrames,
    /// `dial::next_delay`: a kept peer is redialed at once (1 ms) after
    /// every loss or failure, the delay never growing.
    NoBackoff,
    /// `Endpoint::unpair`: the peer's dial schedule and addresses are kept,
    /// so a kept peer goes on being redialed after it was unpaired.
    RedialAfterUnpair,
    /// `Endpoint::connect_to`: a dial's transport is taken whatever the
    /// schedule does, and never counted as its round's: a late transport
    /// runs its handshake beside the round's next dial.
    LateDialTaken,
    /// `Connection::handle_timer`: the handshake timer does nothing, so a
    /// handshake that stalls holds its connection for ever.
    NoHandshakeTimeout,
    /// `Endpoint::register`: the older connection that loses to a newer
    /// one by the rule of section 4 is left open beside it.
    SupersedeKeepsBoth,
    /// `Connection::handle_timer`: outbound call deadlines never fire, so
    /// a call whose reply never comes never resolves.
    NoCallDeadline,
    /// `Responder::on_proof`'s verdict is ignored (version 1): a dialer
    /// that names a trusted key in its HELLO need not hold it.
    SkipProofCheck,
    /// `Endpoint::accept_from`: every connection is admitted whatever its
    /// source has in progress or has failed lately.
    SourceUnlimited,
    /// `Endpoint::accept_from`: the node-wide limit on strangers' failed
    /// handshakes (`SourceLimits::node_failures`) never refuses.
    NodeWideUnlimited,
    /// `Endpoint::end`: a failed inbound handshake is not charged to its
    /// source, as a success is not, so failures are bounded by nothing
    /// but the handshakes in progress.
    FailuresUncharged,
    /// `Endpoint::accept`: when every handshake slot is taken, a new
    /// connection is answered `busy` even while slots are held by
    /// connections that have delivered no complete frame.
    NoEviction,
    /// `Endpoint::on_transition`: an inbound connection that becomes
    /// established is not charged to its peer, so a trusted peer may
    /// reconnect as often as it likes (`Config::peer_connects` is never
    /// reached).
    ReconnectsUncharged,
    /// `Endpoint::handle_input`: `Input::Stalled` is ignored, so a
    /// connection whose peer reads none of our bytes stays open.
    IgnoreStalled,
    /// `Connection::take_transmit`: replies waiting for room are moved
    /// into the send queue before the driver takes it but not after, so
    /// they wait behind an empty queue until something else is sent.
    NoRefillAfterTake,
    /// A round (`Endpoint::start_round`, or an application's dial that
    /// joins one) dials every discovery hint in the book, however many
    /// never worked (as before `HINTS_PER_ROUND`).
    HintsUnlimited,
    /// `AddressBook::insert`: an untried discovery hint heard again takes
    /// a new turn in the line of hints waiting for a round's dial (as
    /// before 2219256), so a LAN host that re-announces the peer's true
    /// address between fresh false ones keeps it at the back for good.
    HintTurnResets,
    /// `AddressBook::insert` (`book/room.rs`): a hint that never worked
    /// may push out a discovery hint that worked and failed since, however
    /// recently it worked (as before the book kept the hints that worked
    /// most recently), so a LAN host's false hints drop a true address
    /// that a partition made fail, and heard again it waits its turn.
    WorkedHintEvictable,
    /// `Connection::room_for_input`: a handshake's split frame may grow
    /// whatever the others hold (`Config::max_handshake_bytes` is never
    /// enforced), so slow first records pile up outside every budget.
    NoHandshakeBudget,
    /// `connection::replies`: a reply that waits for room is not charged
    /// to the byte budgets (nor ever refused for them), so a peer that
    /// stops reading holds up to `max_inbound_calls` results of a frame
    /// each outside every budget.
    UnchargedReplies,
    /// `Endpoint::address_worked` (`endpoint/dialing.rs`): an address the
    /// book dropped while a dial to it was out, whose handshake then
    /// proved the peer, is learned again as an untried discovery hint (as
    /// before the book recorded it from its source as one that worked),
    /// so in a full peer it is lost.
    DialedAddressAsHint,
    /// `Endpoint::end` (`endpoint/transitions.rs`): a connection ended by
    /// `Input::Stalled` is no loss of its peer to the dial schedule, so a
    /// kept peer whose reader stalled is not redialed (its schedule still
    /// counts it connected).
    StalledNotLost,
    /// `Connection::close` (`connection/closing.rs`): a connection that
    /// another supersedes ends without failing our calls in flight on it,
    /// so they never resolve (a kept peer's redial race loses them).
    SupersededCallsLost,
    /// `Session::resolve_reply` (`connection/session.rs`): a REPLY whose
    /// call is no longer in flight (it timed out, or was cancelled) is
    /// delivered all the same, a second result after its failure.
    LateReplyDelivered,
    /// `Transmit::push` (`connection/transmit.rs`): queuing a CALL does not
    /// ask the driver to write (`Output::Transmit`), so it waits for the
    /// next write of anything else (a reply, a PING) and may time out on a
    /// healthy connection.
    CallUnsignalled,
    /// `Endpoint::call`/`send` (`endpoint/mod.rs`): a kept peer with no
    /// connection (being redialed) is refused with `WouldBlock`, as if its
    /// connection were only full, not `NotConnected`.
    WouldBlockWhileRedialing,
    /// `Connection::send` (`connection/session.rs`): a SEND is queued
    /// whatever the send queue holds (`send_buffer` is never checked), so
    /// a writer whose peer reads nothing queues without bound.
    SendIgnoresSendBuffer,
}

#[cfg(feature = "fault-injection")]
impl Fault {
    /// Every fault, for the simulation and the fuzz targets to iterate.
    pub const ALL: [Fault; 44] = [
        Fault::SupersedeNewest,
        Fault::SkipTrustCheck,
        Fault::ReplyAnyConnection,
        Fault::NoIdleTimeout,
        Fault::KeepRevokedConnections,
        Fault::SkipExposureCheck,
        Fault::IgnoreInboundLimit,
        Fault::CancelUnknownIsError,
        Fault::HandlersWhileShuttingDown,
        Fault::IgnoreExpectedPeer,
        Fault::CancelIgnored,
        Fault::RevokedAsNormal,
        Fault::NoPong,
        Fault::NoPing,
        Fault::HalfFrameResetsIdle,
        Fault::EstablishAtResp,
        Fault::IgnoreBadRecord,
        Fault::SmallHandshakeFrames,
        Fault::NoBackoff,
        Fault::RedialAfterUnpair,
        Fault::LateDialTaken,
        Fault::NoHandshakeTimeout,
        Fault::SupersedeKeepsBoth,
        Fault::NoCallDeadline,
        Fault::SkipProofCheck,
        Fault::SourceUnlimited,
        Fault::NodeWideUnlimited,
        Fault::FailuresUncharged,
        Fault::NoEviction,
        Fault::ReconnectsUncharged,
        Fault::IgnoreStalled,
        Fault::NoRefillAfterTake,
        Fault::HintsUnlimited,
        Fault::HintTurnResets,
        Fault::WorkedHintEvictable,
        Fault::NoHandshakeBudget,
        Fault::UnchargedReplies,
        Fault::DialedAddressAsHint,
        Fault::StalledNotLost,
        Fault::SupersededCallsLost,
        Fault::LateReplyDelivered,
        Fault::CallUnsignalled,
        Fault::WouldBlockWhileRedialing,
        Fault::SendIgnoresSendBuffer,
    ];

    /// The fault whose variant name is `name` (as its `Debug` prints it).
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| alloc::format!("{f:?}") == name)
    }
}

/// Whether the deliberate fault `$fault` is on; always false without the
/// `fault-injection` feature.
macro_rules! fault {
    ($config:expr, $fault:ident) => {{
        #[cfg(feature = "fault-injection")]
        let on = $config.fault == Some($crate::fault::Fault::$fault);
        #[cfg(not(feature = "fault-injection"))]
        let on = false;
        on
    }};
}
pub(crate) use fault;
