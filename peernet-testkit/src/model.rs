//! The invariants, once.
//!
//! - [`Invariant`]: the named promises every harness checks (the
//!   simulation reports them by name, the fuzzers panic with the name);
//! - [`Model`]: what one endpoint may legally do, tracked from the
//!   commands given to it and the outputs it produced; every output goes
//!   through [`Model::observe`];
//! - [`check_tables`]: the table limits, with the one allowance for the
//!   frames the core queues without the send-cap check;
//! - [`check_result`]: a call resolves with what its callee produced;
//! - [`local_protocol_error`]: an honest peer never makes us see a
//!   protocol error (the send cap against a peer that stops reading
//!   excepted).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, CloseReason, Config, ConnId, Endpoint, Event, GoodbyeCode,
    HandshakeError, InboundCallId, Output, PeerId, RejectCode, Response, Side, Stats,
};

use crate::setup::hard_send_cap;

/// The named invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every call resolves exactly once (reply, typed error, timeout or
    /// connection end), never after its deadline has passed unresolved
    /// and never left behind by a closed connection; on the callee's side,
    /// every inbound call ends exactly once too (reply or cancellation).
    CallsResolveExactlyOnce,
    /// A reply is the one its callee produced for that very call: no
    /// cross-talk between request ids or connections.
    RepliesMatchTheirCalls,
    /// A connection is established only with the peer that really holds
    /// the key it proved.
    AuthenticatedPeerIdentity,
    /// A connection is established only with a peer trusted at the end of
    /// its handshake.
    EstablishedOnlyWithTrustedPeers,
    /// A handler runs only for a peer trusted at handshake time, on a
    /// handle exposed to that peer, and never after the peer was revoked.
    HandlersOnlyForTrustedExposedPeers,
    /// A node never has two established connections to one peer.
    AtMostOneConnectionPerPeer,
    /// When both peers pick between the same two connections, they keep
    /// the same one (section 4), unless the rule itself, applied to what
    /// each side saw, would pick differently.
    SupersedeVerdictsAgree,
    /// Once the network is quiet, every two trusted peers that are both
    /// up have at most one connection, and both sides agree which.
    PairsAgreeWhenQuiet,
    /// Buffered bytes (those of handshakes in progress within
    /// `max_handshake_bytes` together), queued bytes, and the pending-call
    /// and handshake tables stay within the configured limits, whatever
    /// peers send.
    TablesWithinLimits,
    /// A connection whose peer vanished is closed within `idle_timeout`
    /// plus one ping interval.
    DeadPeersDetectedInTime,
    /// A handshake ends (established or closed) within
    /// `handshake_timeout`.
    HandshakesFinishInTime,
    /// The same seed gives a byte-identical trace.
    SameSeedSameTrace,
    /// Two honest peers never see a protocol error from each other (the
    /// send cap against a peer that stops reading excepted).
    NoProtocolErrorBetweenHonestPeers,
    /// A node that called `shutdown` runs no handler any more.
    NoHandlersWhileShuttingDown,
    /// A dial that names a PeerId is established only with that peer.
    DialReachesOnlyTheNamedPeer,
    /// A CANCEL that arrives ends the call it names on the callee's side
    /// (`CallCancelled`): the handler's slot is freed.
    CancelFreesTheCalleeSlot,
    /// After an unpair, both sides report `revoked`: the unpairing side's
    /// `Disconnected` says GOODBYE `revoked` by `Local`, the other side's
    /// says GOODBYE `revoked` by `Remote` (unless it ended the connection
    /// first, or the transport died before the GOODBYE arrived).
    RevokedOnBothSides,
    /// Every PING is answered with a PONG carrying its nonce.
    PingsAreAnswered,
    /// A connection between two live, well-behaved peers over a healthy
    /// transport is never closed by the idle timeout, however quiet.
    HealthyIdleConnectionsStayOpen,
    /// Only complete frames reset the idle clock: a peer that trickles
    /// the bytes of a frame it never finishes is closed within
    /// `idle_timeout` (plus one ping interval) of its last complete frame.
    IdleResetOnlyByCompleteFrames,
    /// A replayed version-2 INIT (with or without the first record it
    /// was recorded with) never becomes a connection, so it never
    /// supersedes one (PROTOCOL.md 6.1 step 4).
    ReplayedInitNeverConnects,
    /// A version-2 record that fails to decrypt (tampered, replayed,
    /// reordered, truncated) ends its connection as soon as it is read,
    /// and nothing it carried reaches a handler; a record that cuts an
    /// envelope ends it too (a protocol error).
    BadRecordsEndTheConnection,
    /// A node speaks only its configured version: a handshake between a
    /// version-1 and a version-2 node never connects, and fails cleanly
    /// (see [`fails_cleanly_across_versions`]).
    VersionsNeverMix,
    /// Per source address, at accept (`Endpoint::accept_from`): never more
    /// handshakes in progress than `SourceLimits::handshakes`, and of the
    /// handshakes that failed by the source's doing, those admitted
    /// within any `T` seconds are at most `failure_burst +
    /// failures_per_second × T`; with the node-wide limit
    /// (`SourceLimits::node_failures`), of the handshakes that failed by
    /// their source's doing and were admitted from sources no inbound
    /// handshake had completed from, those admitted within any `T`
    /// seconds, node-wide, are at most `burst + per_second × T`.
    SourceLimitsHold,
    /// A connection is accepted `busy` only if every handshake slot
    /// (`Config::max_handshakes`) is held by one that has delivered a
    /// complete frame; otherwise it takes a free slot, or the slot of the
    /// oldest holder that has not, which ends `Evicted`.
    BusyOnlyWhenEverySlotSpoke,
    /// Per trusted peer (`Config::peer_connects`): of the inbound
    /// connections it established, those accepted from `s` on and
    /// established by `e` are at most `burst + per_second × (e − s)`,
    /// plus the most of its handshakes that were in progress at once.
    PeerConnectsHold,
    /// A connection whose transport took none of a node's bytes for
    /// `idle_timeout` (`Input::Stalled`, which the driver reports) ends at
    /// once (its calls' resolution is `CallsResolveExactlyOnce`'s).
    StalledTransportsEnd,
    /// A reply waits only while its connection's send queue holds
    /// `send_buffer` bytes or more: none waits behind room, where nothing
    /// would ever move it.
    RepliesWaitOnlyForRoom,
    /// The bodies of the replies waiting for room are charged to the byte
    /// budgets: on each connection they are part of what it holds against
    /// `max_inbound_bytes_per_conn`, with its calls' arguments, and
    /// node-wide of what it holds against `max_inbound_bytes`, each within
    /// its limit, so that a peer that stops reading cannot make waiting
    /// results pile up past them.
    RepliesWithinByteBudgets,
    /// Every call to a kept peer resolves exactly once, across stalls,
    /// redials, partitions and supersedes: with its callee's result, with
    /// `Timeout` at its deadline (never later), or with
    /// `ConnectionClosed` when its connection ends (before that
    /// connection's `Disconnected`); never twice, and never one that was
    /// not made.
    KeptCallsResolveExactlyOnce,
    /// A call that failed (timed out, or its connection ended) gets no
    /// result after: a REPLY that comes late is dropped.
    NoResultAfterFailure,
    /// A call made while its pair is connected and healthy (both ends on
    /// one connection, settled, nothing in the way until it resolves) is
    /// answered with what its callee produced, before its deadline; only
    /// a newer connection superseding its own may end it.
    HealthyCallsAnswered,
    /// A call or send to a peer with no established connection (as the
    /// node's events tell) is refused at once with `NotConnected`, nothing
    /// sent and no event to follow, kept peer or not (`Endpoint::call`:
    /// the wait for a kept peer's reconnect is the driver's); one the core
    /// takes goes on the peer's established connection.
    DisconnectedCallsRefusedAtOnce,
    /// A writer whose transport takes nothing (a partition holds its
    /// bytes: its peer reads none) holds no more than the core documents:
    /// a call or send is taken only while the connection's send queue
    /// holds less than `send_buffer` bytes (`WouldBlock` beyond), and the
    /// queue never passes [`queue_cap`].
    BackedUpWritesBounded,
}

impl Invariant {
    /// Its name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::CallsResolveExactlyOnce => "calls_resolve_exactly_once",
            Invariant::RepliesMatchTheirCalls => "replies_match_their_calls",
            Invariant::AuthenticatedPeerIdentity => "authenticated_peer_identity",
            Invariant::EstablishedOnlyWithTrustedPeers => "established_only_with_trusted_peers",
            Invariant::HandlersOnlyForTrustedExposedPeers => {
                "handlers_only_for_trusted_exposed_peers"
            }
            Invariant::AtMostOneConnectionPerPeer => "at_most_one_connection_per_peer",
            Invariant::SupersedeVerdictsAgree => "supersede_verdicts_agree",
            Invariant::PairsAgreeWhenQuiet => "pairs_agree_when_quiet",
            Invariant::TablesWithinLimits => "tables_within_limits",
            Invariant::DeadPeersDetectedInTime => "dead_peers_detected_in_time",
            Invariant::HandshakesFinishInTime => "handshakes_finish_in_time",
            Invariant::SameSeedSameTrace => "same_seed_same_trace",
            Invariant::NoProtocolErrorBetweenHonestPeers => {
                "no_protocol_error_between_honest_peers"
            }
            Invariant::NoHandlersWhileShuttingDown => "no_handlers_while_shutting_down",
            Invariant::DialReachesOnlyTheNamedPeer => "dial_reaches_only_the_named_peer",
            Invariant::CancelFreesTheCalleeSlot => "cancel_frees_the_callee_slot",
            Invariant::RevokedOnBothSides => "revoked_on_both_sides",
            Invariant::PingsAreAnswered => "pings_are_answered",
            Invariant::HealthyIdleConnectionsStayOpen => "healthy_idle_connections_stay_open",
            Invariant::IdleResetOnlyByCompleteFrames => "idle_reset_only_by_complete_frames",
            Invariant::ReplayedInitNeverConnects => "replayed_init_never_connects",
            Invariant::BadRecordsEndTheConnection => "bad_records_end_the_connection",
            Invariant::VersionsNeverMix => "versions_never_mix",
            Invariant::SourceLimitsHold => "source_limits_hold",
            Invariant::BusyOnlyWhenEverySlotSpoke => "busy_only_when_every_slot_spoke",
            Invariant::PeerConnectsHold => "peer_connects_hold",
            Invariant::StalledTransportsEnd => "stalled_transports_end",
            Invariant::RepliesWaitOnlyForRoom => "replies_wait_only_for_room",
            Invariant::RepliesWithinByteBudgets => "replies_within_byte_budgets",
            Invariant::KeptCallsResolveExactlyOnce => "kept_calls_resolve_exactly_once",
            Invariant::NoResultAfterFailure => "no_result_after_failure",
            Invariant::HealthyCallsAnswered => "healthy_calls_answered",
            Invariant::DisconnectedCallsRefusedAtOnce => "disconnected_calls_refused_at_once",
            Invariant::BackedUpWritesBounded => "backed_up_writes_bounded",
        }
    }
}

/// Whether `error` is how a handshake between a version-1 and a version-2
/// node may end (PROTOCOL.md 2.1 and 6.1 step 2.1): REJECT
/// `unsupported_version` either way (or `busy` from a full responder), or
/// something local: a timeout, the transport lost, abandoned, superseded.
/// A frame error, another REJECT code or a crypto failure means one side
/// read the other version's bytes as its own.
pub fn fails_cleanly_across_versions(error: &HandshakeError) -> bool {
    match error {
        HandshakeError::Rejected(code) | HandshakeError::Refused(code) => {
            matches!(code, RejectCode::UnsupportedVersion | RejectCode::Busy)
        }
        HandshakeError::Timeout
        | HandshakeError::Evicted
        | HandshakeError::TransportLost
        | HandshakeError::Abandoned
        | HandshakeError::Superseded => true,
        _ => false,
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// Which.
    pub invariant: Invariant,
    /// What.
    pub detail: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant `{}` violated: {}",
            self.invariant, self.detail
        )
    }
}

fn breach(invariant: Invariant, detail: String) -> Result<(), Breach> {
    Err(Breach { invariant, detail })
}

/// A CANCEL or PING frame is at most 4 + 2 + 9 bytes.
const SMALL_FRAME: usize = 15;

/// The most bytes the core may hold for one connection's transport: the
/// hard send cap, plus the CANCEL and PING frames it queues without the
/// cap check (one CANCEL per call of ours, a PING and its answer).
pub fn queue_cap(c: &Config) -> usize {
    hard_send_cap(c) + (c.max_outbound_calls + 2) * SMALL_FRAME
}

/// `replies_wait_only_for_room`: on each of `conns`, replies wait only
/// while the send queue holds `send_buffer` bytes or more.
pub fn check_replies_wait(
    c: &Config,
    ep: &Endpoint,
    conns: impl IntoIterator<Item = ConnId>,
) -> Result<(), Breach> {
    for conn in conns {
        let waiting = ep.testkit_replies_waiting(conn);
        let queued = ep.queued_bytes(conn);
        if waiting > 0 && queued < c.send_buffer {
            return Err(Breach {
                invariant: Invariant::RepliesWaitOnlyForRoom,
                detail: format!(
                    "{conn}: {waiting} replies wait behind {queued} queued bytes (send_buffer {})",
                    c.send_buffer
                ),
            });
        }
    }
    Ok(())
}

/// `replies_within_byte_budgets`: on each of `conns`, the bodies of the
/// replies waiting are part of what the connection holds against its
/// byte budget, within it; over the node, part of what it holds against
/// the node's, within it.
pub fn check_reply_budgets(
    c: &Config,
    ep: &Endpoint,
    conns: impl IntoIterator<Item = ConnId>,
) -> Result<(), Breach> {
    let over = |detail: String| breach(Invariant::RepliesWithinByteBudgets, detail);
    for conn in conns {
        let (waiting, held) = ep.testkit_reply_bytes(conn);
        if waiting > held || held > c.max_inbound_bytes_per_conn {
            return over(format!(
                "{conn}: {waiting} bytes of replies wait, {held} held against the budget \
                 (max_inbound_bytes_per_conn {})",
                c.max_inbound_bytes_per_conn
            ));
        }
    }
    let s = ep.stats();
    if s.reply_bytes_waiting > s.inbound_bytes || s.inbound_bytes > c.max_inbound_bytes {
        return over(format!(
            "{} bytes of replies wait, {} held against the node's budget (max_inbound_bytes {})",
            s.reply_bytes_waiting, s.inbound_bytes, c.max_inbound_bytes
        ));
    }
    Ok(())
}

/// What the harness knows of one endpoint's tables, to compare with its
/// [`Stats`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected {
    /// Our calls in flight.
    pub outbound_calls: usize,
    /// The most of our calls in flight on one connection.
    pub max_outbound_per_conn: usize,
    /// Calls we serve, in flight.
    pub inbound_calls: usize,
    /// Transports the endpoint drives (opened and not closed).
    pub connections: usize,
}

/// `tables_within_limits`: the endpoint's counters against the limits of
/// `c` and against what the harness expects. Call with the output queue
/// drained, and with every send handler finished (`Endpoint::send_done`
/// called for each `Event::Send`, as the test kit and the simulation do
/// at once): bytes held then belong to calls in flight alone.
pub fn check_tables(c: &Config, s: &Stats, e: &Expected) -> Result<(), Breach> {
    let frame = c.max_frame_len as usize + 4;
    let cap = queue_cap(c);
    let problem = if s.max_inbound_calls_per_conn > c.max_inbound_calls {
        format!(
            "{} inbound calls in flight on one connection (max_inbound_calls {})",
            s.max_inbound_calls_per_conn, c.max_inbound_calls
        )
    } else if e.max_outbound_per_conn > c.max_outbound_calls {
        format!(
            "{} outbound calls on one connection (max_outbound_calls {})",
            e.max_outbound_per_conn, c.max_outbound_calls
        )
    } else if s.max_buffered_input_per_conn > frame {
        format!(
            "{} bytes buffered for one partial frame (limit {frame})",
            s.max_buffered_input_per_conn
        )
    } else if s.max_queued_bytes_per_conn > cap {
        format!(
            "{} bytes queued for one connection (cap {cap})",
            s.max_queued_bytes_per_conn
        )
    } else if s.max_inbound_bytes_per_conn > c.max_inbound_bytes_per_conn {
        format!(
            "{} bytes of arguments held for one connection (max_inbound_bytes_per_conn {})",
            s.max_inbound_bytes_per_conn, c.max_inbound_bytes_per_conn
        )
    } else if s.inbound_bytes > c.max_inbound_bytes {
        format!(
            "{} bytes of arguments held (max_inbound_bytes {})",
            s.inbound_bytes, c.max_inbound_bytes
        )
    } else if s.inbound_calls == 0 && s.inbound_bytes > s.reply_bytes_waiting {
        // Send handlers finish at once here, so only calls and waiting
        // replies hold bytes.
        format!(
            "{} bytes held with no call in flight and {} of replies waiting: the budget leaks",
            s.inbound_bytes, s.reply_bytes_waiting
        )
    } else if s.handshake_bytes > c.max_handshake_bytes {
        format!(
            "{} bytes held by handshakes in progress (max_handshake_bytes {})",
            s.handshake_bytes, c.max_handshake_bytes
        )
    } else if s.inbound_handshakes > c.max_handshakes {
        format!(
            "{} inbound handshakes (max_handshakes {})",
            s.inbound_handshakes, c.max_handshakes
        )
    } else if s.outbound_calls != e.outbound_calls {
        format!(
            "the core holds {} outbound calls, the callers wait for {}",
            s.outbound_calls, e.outbound_calls
        )
    } else if s.inbound_calls != e.inbound_calls {
        format!(
            "the core holds {} inbound calls, the handlers hold {}",
            s.inbound_calls, e.inbound_calls
        )
    } else if s.timers > 2 * s.connections + s.outbound_calls + s.inbound_calls {
        format!(
            "{} timers armed for {} connections and {} calls: timers leak",
            s.timers,
            s.connections,
            s.outbound_calls + s.inbound_calls
        )
    } else if s.connections != e.connections {
        format!(
            "the core drives {} connections, the driver {}",
            s.connections, e.connections
        )
    } else {
        return Ok(());
    };
    breach(Invariant::TablesWithinLimits, problem)
}

/// The most calls of `calls` on one connection.
pub fn max_per_conn<'a>(calls: impl Iterator<Item = &'a CallId>) -> usize {
    let mut per_conn: BTreeMap<ConnId, usize> = BTreeMap::new();
    for id in calls {
        *per_conn.entry(id.conn()).or_default() += 1;
    }
    per_conn.values().copied().max().unwrap_or(0)
}

/// Whether we closed the connection because the peer let our queue grow
/// past the hard cap: the one protocol error a correct peer can cause (by
/// not reading).
pub fn is_send_cap(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Goodbye {
            by: Side::Local,
            code: GoodbyeCode::ProtocolError,
            reason,
        } if reason.starts_with("peer does not read")
    )
}

/// The protocol error `event` reports us detecting, if it does (with the
/// send cap excepted when `send_cap_excused`).
pub fn local_protocol_error(event: &Event, send_cap_excused: bool) -> Option<&str> {
    match event {
        Event::Disconnected {
            reason:
                r @ CloseReason::Goodbye {
                    by: Side::Local,
                    code: GoodbyeCode::ProtocolError,
                    reason,
                },
            ..
        } if !(send_cap_excused && is_send_cap(r)) => Some(reason),
        _ => None,
    }
}

/// Whether `reason` is a GOODBYE `code` said by `by`.
pub fn is_goodbye(reason: &CloseReason, by: Side, code: GoodbyeCode) -> bool {
    matches!(reason, CloseReason::Goodbye { by: b, code: c, .. } if *b == by && *c == code)
}

/// `revoked_on_both_sides`, the unpairing side: a connection that
/// `unpair` ended must report GOODBYE `revoked` sent by us.
pub fn check_unpaired(conn: ConnId, reason: &CloseReason) -> Result<(), Breach> {
    if is_goodbye(reason, Side::Local, GoodbyeCode::Revoked) {
        return Ok(());
    }
    breach(
        Invariant::RevokedOnBothSides,
        format!("{conn} ended by `unpair` reports {reason}, not a revocation we sent"),
    )
}

/// `revoked_on_both_sides`, the revoked side: the peer unpaired us on
/// `conn`; it must end with the peer's GOODBYE `revoked`, unless we ended
/// it first (any local reason), or the transport died before the GOODBYE
/// could arrive (`transport_dead`).
pub fn check_revoked_by_peer(
    conn: ConnId,
    reason: &CloseReason,
    transport_dead: bool,
) -> Result<(), Breach> {
    let ok = match reason {
        CloseReason::Goodbye {
            by: Side::Local, ..
        } => true,
        CloseReason::Goodbye {
            by: Side::Remote,
            code,
            ..
        } => *code == GoodbyeCode::Revoked,
        _ => transport_dead,
    };
    if ok {
        return Ok(());
    }
    breach(
        Invariant::RevokedOnBothSides,
        format!("the peer unpaired us, but {conn} ends with {reason}, not its revocation"),
    )
}

/// `replies_match_their_calls`: `result` is what the callee `produced`
/// for that call (`None`: no handler answered it).
pub fn check_result(
    id: CallId,
    result: &Result<Bytes, CallError>,
    produced: Option<&Response>,
) -> Result<(), Breach> {
    let wrong = |detail: String| breach(Invariant::RepliesMatchTheirCalls, detail);
    match result {
        Ok(body) => match produced {
            Some(Response::Ok(b)) if b == body => Ok(()),
            other => wrong(format!(
                "{id:?} resolved Ok({body:?}), the callee produced {other:?}"
            )),
        },
        Err(CallError::HandlerError(body)) => match produced {
            Some(Response::Error(b)) if b == body => Ok(()),
            other => wrong(format!(
                "{id:?} resolved HandlerError({body:?}), callee {other:?}"
            )),
        },
        Err(CallError::HandlerPanicked(note)) => match produced {
            Some(Response::Panicked(b)) if b.starts_with(note) && note.len() <= 256 => Ok(()),
            other => wrong(format!(
                "{id:?} resolved HandlerPanicked({note:?}), callee {other:?}"
            )),
        },
        Err(CallError::ResultTooLarge) if produced.is_none() => {
            wrong(format!("{id:?}: too_large with no handler result"))
        }
        // (a result that would wait past a byte budget is dropped and
        // answered `overloaded`: only one with a body is ever charged)
        Err(CallError::Overloaded) if produced.is_some_and(|r| body_of(r).is_empty()) => wrong(
            format!("{id:?} refused (overloaded) after its handler gave an empty result"),
        ),
        Err(e @ (CallError::NoSuchHandle | CallError::Forbidden | CallError::ShuttingDown))
            if produced.is_some() =>
        {
            wrong(format!("{id:?} refused ({e}) after its handler ran"))
        }
        Err(
            CallError::ResultTooLarge
            | CallError::NoSuchHandle
            | CallError::Forbidden
            | CallError::Overloaded
            | CallError::ShuttingDown
            | CallError::Timeout
            | CallError::Cancelled
            | CallError::ConnectionClosed(_),
        ) => Ok(()),
        Err(e) => breach(
            Invariant::CallsResolveExactlyOnce,
            format!("{id:?} resolved with {e:?}"),
        ),
    }
}

/// The body a handler's response goes out with.
fn body_of(response: &Response) -> &Bytes {
    match response {
        Response::Ok(b) | Response::Error(b) | Response::Panicked(b) => b,
    }
}

/// Who may call a handle, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `Access::Anyone`.
    Anyone,
    /// `Access::Only`.
    Only(BTreeSet<PeerId>),
    /// `Access::rule(|_| false)`.
    Never,
}

impl Rule {
    /// The endpoint's equivalent.
    pub fn access(&self) -> Access {
        match self {
            Rule::Anyone => Access::Anyone,
            Rule::Only(set) => Access::only(set.iter().copied()),
            Rule::Never => Access::rule(|_| false),
        }
    }

    /// Whether `peer` may call.
    pub fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Rule::Anyone => true,
            Rule::Only(set) => set.contains(peer),
            Rule::Never => false,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ConnModel {
    /// The peer of a `Connected` event.
    connected: Option<PeerId>,
    /// `Output::Close` seen.
    closed: bool,
    /// `Disconnected` or `HandshakeFailed` seen.
    ended: bool,
}

/// What an endpoint may legally do, tracked from the commands given to it
/// and the outputs it produced. A broken invariant panics with its name
/// (so that a fuzzer reports a crash).
#[derive(Debug)]
pub struct Model {
    /// The endpoint's own id.
    pub me: PeerId,
    /// The configuration in force (as adjusted by `Endpoint::new`).
    pub config: Config,
    /// The trust list.
    pub trusted: BTreeSet<PeerId>,
    /// The exposed handles.
    pub exposed: BTreeMap<String, Rule>,
    /// `shutdown` was called.
    pub shutting_down: bool,
    conns: BTreeMap<ConnId, ConnModel>,
    peers: BTreeMap<PeerId, ConnId>,
    /// Our calls in flight.
    pub outbound: BTreeSet<CallId>,
    /// Calls we serve, in flight.
    pub inbound: BTreeSet<InboundCallId>,
}

/// Panics with the breach (the fuzzers' way of reporting it).
#[track_caller]
pub fn enforce(r: Result<(), Breach>) {
    if let Err(b) = r {
        panic!("{b}");
    }
}

macro_rules! ensure {
    ($cond:expr, $inv:ident, $($arg:tt)*) => {
        if !$cond {
            panic!("invariant `{}` violated: {}", Invariant::$inv, format!($($arg)*));
        }
    };
}

impl Model {
    /// The model of a fresh endpoint `ep`, which trusts `trusted`.
    pub fn new(ep: &Endpoint, trusted: BTreeSet<PeerId>) -> Model {
        Model {
            me: ep.peer_id(),
            config: ep.config().clone(),
            trusted,
            exposed: BTreeMap::new(),
            shutting_down: false,
            conns: BTreeMap::new(),
            peers: BTreeMap::new(),
            outbound: BTreeSet::new(),
            inbound: BTreeSet::new(),
        }
    }

    /// A transport the endpoint now drives (`connect`/`accept` said Ok).
    pub fn opened(&mut self, conn: ConnId) {
        let fresh = self.conns.insert(conn, ConnModel::default()).is_none();
        ensure!(fresh, AuthenticatedPeerIdentity, "{conn} reused");
    }

    /// Whether `conn` is open (not closed yet).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.closed)
    }

    /// The open connections.
    pub fn open_conns(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The established connection to `peer`, per the events seen.
    pub fn connection(&self, peer: &PeerId) -> Option<ConnId> {
        self.peers.get(peer).copied()
    }

    /// Checks one output against the model and updates it.
    pub fn observe(&mut self, output: &Output) {
        match output {
            Output::Transmit(_) => {}
            Output::Close { conn, .. } => {
                let c = self.conns.get_mut(conn).expect("Close for an unknown conn");
                ensure!(!c.closed, CallsResolveExactlyOnce, "{conn} closed twice");
                c.closed = true;
            }
            Output::Event(event) => self.observe_event(event),
            // Dials open transports; the connection they make is checked
            // like any other.
            Output::Dial { .. } => {}
        }
    }

    fn observe_event(&mut self, event: &Event) {
        match event {
            Event::Connected { conn, peer, .. } => {
                ensure!(
                    self.trusted.contains(peer),
                    EstablishedOnlyWithTrustedPeers,
                    "Connected to untrusted {peer}"
                );
                ensure!(
                    *peer != self.me,
                    AuthenticatedPeerIdentity,
                    "Connected to myself"
                );
                let c = self.conns.get_mut(conn).expect("Connected: unknown conn");
                ensure!(
                    !c.closed && !c.ended && c.connected.is_none(),
                    CallsResolveExactlyOnce,
                    "Connected for a dead or already connected {conn}"
                );
                c.connected = Some(*peer);
                if let Some(other) = self.peers.insert(*peer, *conn) {
                    panic!(
                        "invariant `{}` violated: two connections to {peer}: {other} and {conn}",
                        Invariant::AtMostOneConnectionPerPeer
                    );
                }
            }
            Event::Disconnected { conn, peer, .. } => {
                let c = self
                    .conns
                    .get_mut(conn)
                    .expect("Disconnected: unknown conn");
                ensure!(
                    c.connected == Some(*peer),
                    CallsResolveExactlyOnce,
                    "Disconnected without Connected"
                );
                ensure!(!c.ended, CallsResolveExactlyOnce, "{conn} ended twice");
                c.ended = true;
                if self.peers.get(peer) == Some(conn) {
                    self.peers.remove(peer);
                }
                self.check_no_calls_on(*conn);
            }
            Event::HandshakeFailed { conn, .. } => {
                let c = self
                    .conns
                    .get_mut(conn)
                    .expect("HandshakeFailed: unknown conn");
                ensure!(
                    c.connected.is_none(),
                    CallsResolveExactlyOnce,
                    "HandshakeFailed after Connected"
                );
                ensure!(!c.ended, CallsResolveExactlyOnce, "{conn} ended twice");
                c.ended = true;
                self.check_no_calls_on(*conn);
            }
            Event::Call(call) => {
                self.check_handler_may_run(call.id.conn(), &call.peer, call.handle.as_str());
                ensure!(
                    self.inbound.insert(call.id),
                    CallsResolveExactlyOnce,
                    "Call {:?} while the same id is in flight",
                    call.id
                );
            }
            Event::Send(send) => {
                // A SEND has no id; its connection is the peer's one.
                let conn = self.peers.get(&send.peer).copied();
                let conn = conn.expect("Send from a peer with no connection");
                self.check_handler_may_run(conn, &send.peer, send.handle.as_str());
            }
            Event::CallCancelled(id) => {
                ensure!(
                    self.inbound.remove(id),
                    CallsResolveExactlyOnce,
                    "CallCancelled for {id:?}, which is not in flight"
                );
            }
            Event::CallResult { id, result } => {
                ensure!(
                    self.outbound.remove(id),
                    CallsResolveExactlyOnce,
                    "CallResult for {id:?}, which is not in flight (twice, or never made)"
                );
                ensure!(
                    !matches!(result, Err(CallError::NotConnected | CallError::WouldBlock)),
                    CallsResolveExactlyOnce,
                    "{id:?} resolved with an error `call` reports synchronously"
                );
            }
            _ => {}
        }
    }

    fn check_handler_may_run(&self, conn: ConnId, peer: &PeerId, handle: &str) {
        ensure!(
            self.trusted.contains(peer),
            HandlersOnlyForTrustedExposedPeers,
            "handler runs for untrusted {peer}"
        );
        ensure!(
            !self.shutting_down,
            NoHandlersWhileShuttingDown,
            "handler runs for {handle:?} while shutting down"
        );
        let rule = self.exposed.get(handle);
        ensure!(
            rule.is_some_and(|r| r.allows(peer)),
            HandlersOnlyForTrustedExposedPeers,
            "handler runs for {handle:?} ({rule:?}), called by {peer}"
        );
        let c = self.conns.get(&conn).expect("handler for an unknown conn");
        ensure!(
            !c.closed && !c.ended,
            HandlersOnlyForTrustedExposedPeers,
            "handler for closed {conn}"
        );
        ensure!(
            c.connected == Some(*peer),
            HandlersOnlyForTrustedExposedPeers,
            "handler for unannounced {conn}"
        );
    }

    /// After a connection ended, none of its calls may be in flight.
    fn check_no_calls_on(&self, conn: ConnId) {
        ensure!(
            !self.outbound.iter().any(|id| id.conn() == conn),
            CallsResolveExactlyOnce,
            "{conn} ended with calls of ours unresolved"
        );
        ensure!(
            !self.inbound.iter().any(|id| id.conn() == conn),
            CallsResolveExactlyOnce,
            "{conn} ended with calls we serve not cancelled"
        );
    }

    /// Checks the endpoint's tables against the model and the limits
    /// ([`check_tables`]), and its registry against the events. Call only
    /// with the output queue drained.
    pub fn check_stats(&self, ep: &Endpoint) {
        let expected = Expected {
            outbound_calls: self.outbound.len(),
            max_outbound_per_conn: max_per_conn(self.outbound.iter()),
            inbound_calls: self.inbound.len(),
            connections: self.open_conns().len(),
        };
        enforce(check_tables(&self.config, &ep.stats(), &expected));
        enforce(check_replies_wait(&self.config, ep, self.open_conns()));
        enforce(check_reply_budgets(&self.config, ep, self.open_conns()));
        for (peer, conn) in &self.peers {
            ensure!(
                ep.connection(peer) == Some(*conn),
                AtMostOneConnectionPerPeer,
                "registry vs events for {peer}"
            );
        }
        ensure!(
            ep.peers().count() == self.peers.len(),
            AtMostOneConnectionPerPeer,
            "registry size"
        );
    }

    /// At the end: every connection closed and ended, every call resolved,
    /// no handshake slot and no timer left.
    pub fn check_all_done(&self, ep: &Endpoint) {
        for (conn, c) in &self.conns {
            ensure!(
                c.closed && c.ended,
                CallsResolveExactlyOnce,
                "{conn} still open at the end: {c:?}"
            );
        }
        ensure!(
            self.outbound.is_empty(),
            CallsResolveExactlyOnce,
            "calls never resolved"
        );
        ensure!(
            self.inbound.is_empty(),
            CallsResolveExactlyOnce,
            "served calls never ended"
        );
        let s = ep.stats();
        ensure!(
            s.connections == 0 && s.inbound_handshakes == 0 && s.timers == 0,
            TablesWithinLimits,
            "left at the end: {s:?}"
        );
    }
}
