//! [`Counters`]: what happened since the endpoint started, counted where
//! the core decides it. Plain `u64`s bumped in place (no allocation, no
//! atomics: the endpoint is `&mut`), read through
//! [`Endpoint::stats`](crate::Endpoint::stats). They only grow; a metrics
//! exporter takes differences between two readings.

use core::fmt;

use crate::codes::{RejectCode, ReplyStatus};
use crate::error::HandshakeError;

/// How many REJECT codes PROTOCOL.md section 2 defines (1 to 6).
const REJECT_CODES: usize = 6;
/// How many REPLY statuses section 3.1 defines (0 to 7).
const REPLY_STATUSES: usize = 8;

/// A count per REJECT code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; REJECT_CODES]);

impl RejectCounts {
    /// The count for `code`.
    pub fn get(&self, code: RejectCode) -> u64 {
        self.0[usize::from(code.code() - 1)]
    }

    /// The sum over every code.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every code with its count, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (RejectCode, u64)> + '_ {
        (1..).map_while(RejectCode::try_from_code).zip(self.0)
    }

    pub(crate) fn add(&mut self, code: RejectCode) {
        self.0[usize::from(code.code() - 1)] += 1;
    }
}

/// A count per REPLY status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts([u64; REPLY_STATUSES]);

impl StatusCounts {
    /// The count for `status`.
    pub fn get(&self, status: ReplyStatus) -> u64 {
        // Every status is a code below `REPLY_STATUSES`.
        self.0[status.code() as usize]
    }

    /// The sum over every status.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every status with its count, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplyStatus, u64)> + '_ {
        (0..).map_while(ReplyStatus::try_from_code).zip(self.0)
    }

    pub(crate) fn add(&mut self, status: ReplyStatus) {
        self.0[status.code() as usize] += 1;
    }

    /// Takes back one [`StatusCounts::add`]: a reply counted when given
    /// that never went out (`connection/replies.rs`).
    pub(crate) fn take_back(&mut self, status: ReplyStatus) {
        let n = &mut self.0[status.code() as usize];
        *n = n.saturating_sub(1);
    }
}

/// Handshakes of one direction, by outcome. Every transport the endpoint
/// drove ends up in exactly one field except `established`'s, whose
/// connections are counted when they are announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeCounts {
    /// Finished and announced as the peer's connection.
    pub established: u64,
    /// We refused the peer, by the REJECT code we sent (`untrusted`,
    /// `bad_signature`, `unexpected_peer`, `busy`, `malformed` for a bad
    /// frame or message, …). A bad frame where no REJECT may go (a
    /// version-2 responder that sent RESP and waits for the first record)
    /// closes unanswered and is counted under `malformed` all the same.
    pub refused: RejectCounts,
    /// The peer refused us, by the REJECT code it sent.
    pub rejected: RejectCounts,
    /// Did not finish within `handshake_timeout` (or, accepted, sent no
    /// frame within `first_frame_timeout`, or not its proof of key within
    /// `first_frame_timeout` of our answer: [`HandshakeError::Timeout`]).
    pub timed_out: u64,
    /// The transport closed first.
    pub transport_lost: u64,
    /// Finished, but lost to another connection to the same peer.
    pub superseded: u64,
    /// Given up by us: the peer was unpaired, or the endpoint shut down.
    pub abandoned: u64,
    /// Version 2: a replayed INIT, closed unanswered.
    pub replayed: u64,
    /// Version 2: the initiator's first record did not open.
    pub record_failed: u64,
    /// Accepted, but had delivered no complete frame when a newer
    /// connection took its handshake slot, every slot being taken
    /// ([`HandshakeError::Evicted`]).
    pub evicted: u64,
    /// Closed because the bytes of a split frame would have taken the
    /// handshakes' buffers past `Config::max_handshake_bytes`
    /// ([`HandshakeError::OverBudget`]).
    pub over_budget: u64,
    /// Refused `busy` because the trusted peer named connects more often
    /// than `Config::peer_connects` allows ([`HandshakeError::Throttled`];
    /// also counted in `refused` under `busy`).
    pub throttled: u64,
}

impl HandshakeCounts {
    /// Counts the end of a handshake that did not produce a connection;
    /// `sent`: the REJECT its failing step sent, if it said. (A dial that
    /// named a PeerId and reached an untrusted key reports
    /// `UnexpectedPeer` but sends `untrusted`, trust being checked first.)
    pub(crate) fn failed(&mut self, error: &HandshakeError, sent: Option<RejectCode>) {
        match error {
            HandshakeError::Refused(code) => self.refused.add(*code),
            HandshakeError::UnexpectedPeer { .. } => {
                self.refused.add(sent.unwrap_or(RejectCode::UnexpectedPeer));
            }
            HandshakeError::Frame => self.refused.add(RejectCode::Malformed),
            HandshakeError::Rejected(code) => self.rejected.add(*code),
            HandshakeError::Timeout => self.timed_out += 1,
            HandshakeError::TransportLost => self.transport_lost += 1,
            HandshakeError::Superseded => self.superseded += 1,
            HandshakeError::Abandoned => self.abandoned += 1,
            HandshakeError::Replayed => self.replayed += 1,
            HandshakeError::Record(_) => self.record_failed += 1,
            HandshakeError::Evicted => self.evicted += 1,
            HandshakeError::OverBudget => self.over_budget += 1,
            HandshakeError::Throttled => {
                self.throttled += 1;
                self.refused.add(RejectCode::Busy);
            }
        }
    }

    /// Handshakes that ended without a connection.
    pub fn failures(&self) -> u64 {
        self.refused.total()
            + self.rejected.total()
            + self.timed_out
            + self.transport_lost
            + self.superseded
            + self.abandoned
            + self.replayed
            + self.record_failed
            + self.evicted
            + self.over_budget
    }
}

/// Calls of one direction, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallCounts {
    /// Started: ours queued (or, with a zero timeout, timed out at once
    /// unsent), or theirs arrived (refused ones included).
    pub started: u64,
    /// Answered, by REPLY status: ours by the status the callee sent,
    /// theirs by the status we answered. For theirs, `no_such_handle`,
    /// `forbidden`, `overloaded` and `shutting_down` are the core's
    /// refusals, answered without running a handler, but for the
    /// `overloaded` of [`Counters::replies_refused`], whose handler ran.
    pub by_status: StatusCounts,
    /// Ours: the caller's timeout ran out (CANCEL sent; with a zero
    /// timeout, nothing sent at all). Theirs: the
    /// deadline the caller sent ran out before we answered.
    pub timed_out: u64,
    /// Ours: cancelled by us. Theirs: the caller sent CANCEL.
    pub cancelled: u64,
    /// The connection ended with the call in flight.
    pub connection_closed: u64,
}

impl CallCounts {
    /// Calls that ended (`started` minus those in flight).
    pub fn ended(&self) -> u64 {
        self.by_status.total() + self.timed_out + self.cancelled + self.connection_closed
    }

    /// Theirs: calls the core refused (`no_such_handle`, `forbidden`,
    /// `overloaded`): before any handler ran, but for
    /// [`Counters::replies_refused`].
    pub fn refusals(&self) -> u64 {
        self.by_status.get(ReplyStatus::NoSuchHandle)
            + self.by_status.get(ReplyStatus::Forbidden)
            + self.by_status.get(ReplyStatus::Overloaded)
    }

    /// Theirs: replies counted answered that were dropped from the send
    /// queue unsent (the connection ended): their calls ended with it.
    pub(crate) fn never_sent(&mut self, dropped: &StatusCounts) {
        for (count, n) in self.by_status.0.iter_mut().zip(dropped.0) {
            *count = count.saturating_sub(n);
            self.connection_closed += n;
        }
    }
}

/// What the endpoint did since it started: handshakes and calls by
/// outcome, SENDs, bytes and records, supersedes. Part of
/// [`Stats`](crate::Stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Handshakes on transports we accepted.
    pub handshakes_in: HandshakeCounts,
    /// Handshakes on transports we dialed.
    pub handshakes_out: HandshakeCounts,
    /// Calls peers made to us.
    pub calls_in: CallCounts,
    /// Calls we made.
    pub calls_out: CallCounts,
    /// SENDs handed to the application.
    pub sends_in: u64,
    /// SENDs dropped silently because the handle is not exposed to the
    /// sender, or the endpoint is shutting down.
    pub sends_refused: u64,
    /// SENDs dropped because a byte budget was full.
    pub sends_dropped: u64,
    /// SENDs we queued.
    pub sends_out: u64,
    /// Calls whose result would have had to wait for room in the send
    /// queue past a byte budget (`Config::max_inbound_bytes_per_conn`,
    /// `Config::max_inbound_bytes`): the result was dropped and the call
    /// answered `overloaded` (counted so in `calls_in` too).
    pub replies_refused: u64,
    /// Bytes received from transports.
    pub bytes_in: u64,
    /// Bytes handed to the driver for transports (farewells included).
    pub bytes_out: u64,
    /// Records received and opened (version 2); envelope frames in
    /// version 1.
    pub records_in: u64,
    /// Records sealed (version 2); envelope frames in version 1.
    pub records_out: u64,
    /// Connections ended because another connection to the same peer won
    /// (PROTOCOL.md section 4): established ones replaced, and finished
    /// handshakes that lost.
    pub superseded: u64,
    /// Connections refused at accept because their source was over a
    /// limit ([`crate::SourceLimits`]), before any handshake.
    pub refused_at_accept: u64,
    /// Of `refused_at_accept`, those whose source had failed too many
    /// handshakes lately, or (`refused_node_wide`) sources not known had,
    /// node-wide.
    pub throttled_at_accept: u64,
    /// Of `throttled_at_accept`, those refused by the node-wide limit
    /// ([`crate::NodeFailureLimit`]).
    pub refused_node_wide: u64,
}

/// `name=n` for every name counted (`n` above 0), space-separated, or `0`
/// where none is.
fn write_nonzero<K: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    counts: impl Iterator<Item = (K, u64)>,
) -> fmt::Result {
    let mut first = true;
    for (name, n) in counts.filter(|&(_, n)| n > 0) {
        let sep = if first { "" } else { " " };
        write!(f, "{sep}{name}={n}")?;
        first = false;
    }
    if first {
        f.write_str("0")?;
    }
    Ok(())
}

impl fmt::Display for RejectCounts {
    /// `code=n` for every code counted, or `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_nonzero(f, self.iter())
    }
}

impl fmt::Display for StatusCounts {
    /// `status=n` for every status counted, or `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_nonzero(f, self.iter())
    }
}

impl fmt::Display for HandshakeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "established={} refused[{}] rejected[{}] timed_out={} transport_lost={} \
             superseded={} abandoned={} replayed={} record_failed={} evicted={} \
             over_budget={} throttled={}",
            self.established,
            self.refused,
            self.rejected,
            self.timed_out,
            self.transport_lost,
            self.superseded,
            self.abandoned,
            self.replayed,
            self.record_failed,
            self.evicted,
            self.over_budget,
            self.throttled,
        )
    }
}

impl fmt::Display for CallCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "started={} answered[{}] timed_out={} cancelled={} connection_closed={}",
            self.started, self.by_status, self.timed_out, self.cancelled, self.connection_closed,
        )
    }
}

impl fmt::Display for Counters {
    /// One line per group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "handshakes in:  {}", self.handshakes_in)?;
        writeln!(f, "handshakes out: {}", self.handshakes_out)?;
        writeln!(
            f,
            "calls in:  {} replies_refused={}",
            self.calls_in, self.replies_refused
        )?;
        writeln!(f, "calls out: {}", self.calls_out)?;
        writeln!(
            f,
            "sends: in={} refused={} dropped={} out={}",
            self.sends_in, self.sends_refused, self.sends_dropped, self.sends_out,
        )?;
        writeln!(
            f,
            "bytes: in={} out={}  records: in={} out={}",
            self.bytes_in, self.bytes_out, self.records_in, self.records_out,
        )?;
        write!(
            f,
            "superseded: {}  refused at accept: {} ({} throttled, {} node-wide)",
            self.superseded,
            self.refused_at_accept,
            self.throttled_at_accept,
            self.refused_node_wide,
        )
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn every_code_has_its_slot_and_a_name() {
        let mut r = RejectCounts::default();
        assert_eq!(r.to_string(), "0");
        for code in 1..=REJECT_CODES as u8 {
            r.add(RejectCode::try_from_code(code).unwrap());
        }
        r.add(RejectCode::Busy);
        assert_eq!(r.iter().count(), REJECT_CODES);
        assert_eq!(r.get(RejectCode::Busy), 2);
        assert_eq!(r.total(), REJECT_CODES as u64 + 1);
        assert!(r.to_string().contains("busy=2"), "{r}");
        let mut s = StatusCounts::default();
        for code in 0..REPLY_STATUSES as u64 {
            s.add(ReplyStatus::try_from_code(code).unwrap());
        }
        assert_eq!(s.iter().count(), REPLY_STATUSES);
        assert_eq!(s.total(), REPLY_STATUSES as u64);
        assert!(s.to_string().starts_with("ok=1 no_such_handle=1"), "{s}");
        let calls = CallCounts {
            by_status: s,
            ..CallCounts::default()
        };
        assert_eq!(calls.refusals(), 3);
    }

    #[test]
    fn each_handshake_error_lands_in_one_field() {
        let mut h = HandshakeCounts::default();
        h.failed(&HandshakeError::Refused(RejectCode::Untrusted), None);
        h.failed(&HandshakeError::Rejected(RejectCode::Busy), None);
        h.failed(&HandshakeError::Frame, None);
        h.failed(&HandshakeError::Timeout, None);
        h.failed(&HandshakeError::Replayed, None);
        assert_eq!(h.refused.get(RejectCode::Untrusted), 1);
        assert_eq!(h.refused.get(RejectCode::Malformed), 1);
        assert_eq!(h.rejected.get(RejectCode::Busy), 1);
        assert_eq!(h.failures(), 5);
        // a throttled peer was refused busy: one failure, two views of it
        h.failed(&HandshakeError::Throttled, None);
        assert_eq!(h.throttled, 1);
        assert_eq!(h.refused.get(RejectCode::Busy), 1);
        assert_eq!(h.failures(), 6);
        assert!(
            h.to_string()
                .ends_with("evicted=0 over_budget=0 throttled=1"),
            "{h}"
        );
        h.failed(&HandshakeError::OverBudget, None);
        assert_eq!((h.over_budget, h.failures()), (1, 7));
    }
}
