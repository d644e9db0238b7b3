//! The deadline table: one ordered set of (instant, timer) pairs from which
//! both "when must I be woken" and "what fires now" are read, so the two
//! can never disagree and a driver can never spin on a past instant.

use alloc::collections::BTreeSet;

use crate::Instant;
use crate::identity::PeerId;
use crate::ids::ConnId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The handshake's budget runs out.
    Handshake(ConnId),
    /// Time to check ping and idle deadlines (armed lazily, see
    /// `Connection::liveness_deadline`).
    Liveness(ConnId),
    /// The earliest deadline of our calls in flight on this connection.
    /// One timer per connection, not one per call: a completing call leaves
    /// it armed (unless it was the last one in flight); when it fires, the
    /// calls that are due time out and it is re-armed at the next deadline
    /// (see `InFlight`).
    Outbound(ConnId),
    /// The same for the calls we serve (their callers' budgets).
    Inbound(ConnId),
    /// The dial schedule of a peer: its backoff ran out, or the driver
    /// took too long to open the transport of a dial.
    Dial(PeerId),
}

impl Timer {
    /// The connection that armed it (none for the dial schedule's).
    pub(crate) fn conn(self) -> Option<ConnId> {
        match self {
            Timer::Handshake(c) | Timer::Liveness(c) | Timer::Outbound(c) | Timer::Inbound(c) => {
                Some(c)
            }
            Timer::Dial(_) => None,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) {
        self.set.insert((at, timer));
    }

    pub(crate) fn disarm(&mut self, at: Instant, timer: Timer) {
        self.set.remove(&(at, timer));
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Removes and returns one timer due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        match self.set.first() {
            Some((at, _)) if *at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
