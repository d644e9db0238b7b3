//! What the driver keeps per connection: the signals its reader and
//! writer tasks listen to (and the write half they share), and its entry
//! in the node's table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use bytes::Bytes;
use peernet_proto::Direction;

use crate::port::Port;
use crate::signal::Signal;

/// What a connection's two tasks listen to.
#[derive(Default)]
pub(crate) struct ConnSignals {
    /// Bytes are queued, or the connection is closing: writer, wake up.
    pub(crate) write: Signal,
    /// The core is done with the connection: reader, discard what comes.
    pub(crate) closed: AtomicBool,
    /// Reader, stop now.
    pub(crate) stop_reader: Signal,
    /// Writer, stop now (a forced shutdown).
    pub(crate) stop_writer: Signal,
    /// The reader has ended (so the writer need not linger).
    pub(crate) reader_done: Signal,
    /// The writer has ended, telling the reader to stop: the close
    /// deadline (`tasks::close_deadline`) has nothing left to stop.
    pub(crate) writer_done: Signal,
    /// The write half, for the writer and for the reader's inline writes.
    pub(crate) port: Port,
    /// Bytes taken from the core and not yet written: the batch of a
    /// write in progress, and what an inline write left in
    /// `PortState::left` until the writer wrote it; 0 otherwise. Only the
    /// port's holder changes it (`ConnSignals::take_transmit`, `port.rs`).
    pub(crate) unwritten: AtomicUsize,
    /// What this connection adds to
    /// [`Shared::lingering`](super::Shared::lingering) since its close,
    /// given back as its writer ends.
    pub(crate) lingering: AtomicUsize,
}

impl ConnSignals {
    /// Stops the connection's reader and writer wherever they are: the
    /// writer drops what it has not written.
    pub(crate) fn stop(&self) {
        self.stop_writer.notify();
        self.stop_reader.notify();
    }
}

pub(crate) struct ConnEntry {
    pub(crate) signals: Arc<ConnSignals>,
    pub(crate) direction: Direction,
    pub(crate) remote_addr: Option<SocketAddr>,
    /// Set by `Output::Close`: the final bytes; then the writer closes.
    pub(crate) closing: Option<Bytes>,
}
