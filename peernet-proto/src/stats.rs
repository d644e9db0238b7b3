//! [`Stats`]: counters over a whole endpoint.

use core::fmt;

use crate::counters::Counters;

/// Counters over the whole endpoint, for tests, simulation invariants and
/// metrics: gauges of what is held now, computed on demand (walks every
/// connection), and the [`Counters`] of what happened since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Transports the endpoint drives.
    pub connections: usize,
    /// Of those, established.
    pub established: usize,
    /// Inbound handshakes counted against `max_handshakes`.
    pub inbound_handshakes: usize,
    /// Our calls in flight.
    pub outbound_calls: usize,
    /// Calls we serve in flight.
    pub inbound_calls: usize,
    /// The most inbound calls in flight on one connection.
    pub max_inbound_calls_per_conn: usize,
    /// Bytes held against the byte budgets: inbound arguments of calls
    /// we serve in flight and of SENDs whose handlers still run
    /// (including those of connections that ended), and the bodies of our
    /// replies waiting for room (`reply_bytes_waiting`).
    pub inbound_bytes: usize,
    /// The most such bytes held for one connection.
    pub max_inbound_bytes_per_conn: usize,
    /// SENDs dropped since the endpoint started because a byte budget
    /// was full.
    pub sends_dropped: u64,
    /// Bytes queued for transports, not yet taken by the driver.
    pub queued_bytes: usize,
    /// The most bytes queued for one transport.
    pub max_queued_bytes_per_conn: usize,
    /// Our replies waiting for room in a send queue (past
    /// `Config::send_buffer`), as the handlers gave them.
    pub replies_waiting: usize,
    /// Their bodies' bytes, part of `inbound_bytes`: within the byte
    /// budgets, a result that would pass them being answered `overloaded`
    /// ([`crate::Counters::replies_refused`]).
    pub reply_bytes_waiting: usize,
    /// Bytes held for partial incoming frames.
    pub buffered_input: usize,
    /// The most bytes held for one transport's partial frame.
    pub max_buffered_input_per_conn: usize,
    /// Bytes the buffers of split frames hold (their capacity) on
    /// connections whose handshake is not finished: at most
    /// `Config::max_handshake_bytes` together.
    pub handshake_bytes: usize,
    /// Bytes handed in and not decoded yet because the output queue was
    /// full ([`crate::OUTPUTS_BEFORE_PAUSE`]): the transport's chunks, kept
    /// as they came.
    pub paused_input: usize,
    /// Outputs waiting for [`crate::Endpoint::poll_output`].
    pub outputs: usize,
    /// Armed deadlines.
    pub timers: usize,
    /// What happened since the endpoint started (handshakes and calls by
    /// outcome, SENDs, bytes, records, supersedes).
    pub counters: Counters,
}

impl fmt::Display for Stats {
    /// The gauges on one line, then the [`Counters`], one group a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections: {} ({} established, {} inbound handshakes)  calls in flight: out={} in={}",
            self.connections,
            self.established,
            self.inbound_handshakes,
            self.outbound_calls,
            self.inbound_calls,
        )?;
        writeln!(
            f,
            "held: inbound args={} B, send queues={} B, partial frames={} B (handshakes {} B)  timers: {}",
            self.inbound_bytes,
            self.queued_bytes,
            self.buffered_input,
            self.handshake_bytes,
            self.timers,
        )?;
        write!(f, "{}", self.counters)
    }
}
