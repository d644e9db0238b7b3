//! A connection's write half, and who may write to it: its writer task,
//! which may wait (a full socket, a slow peer), or, without waiting, the
//! connection's reader, right after a read made the core queue the next
//! handshake message or the reply to a lone call
//! (`Shared::with_core_reading` says when), or a caller that just started
//! a sequential call (`Shared::with_core_calling`).
//!
//! Writing from the reader or the caller saves a wake-up of the writer
//! task per handshake message and per sequential call: on a multi-threaded
//! runtime that is often a hand-off to another worker thread, which cost
//! more than the write itself (the bench README). Whoever writes holds
//! the write half's lock from taking the core's bytes to the end of their
//! write, so bytes go out in
//! the order the core queued them; an inline write that cannot finish at
//! once leaves the rest here, and the writer task writes it first.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_io::AsyncWrite;
use futures_util::lock::{Mutex, MutexGuard};
use peernet_proto::ConnId;

use crate::runtime::{BoxFuture, BoxWrite, Runtime};
use crate::shared::{ConnSignals, Shared, Taken};

/// The write half and what an inline write left for the writer task.
#[derive(Default)]
pub(crate) struct WriteHalf(Mutex<WriteHalfState>);

#[derive(Default)]
pub(crate) struct WriteHalfState {
    /// The transport's write half: `None` until the writer task starts
    /// (it brings it), and again once it ended (dropping it closes our
    /// side).
    pub(crate) write: Option<BoxWrite>,
    /// Bytes an inline write took from the core and could not write at
    /// once: the writer task writes them before anything else.
    pub(crate) left: Option<Bytes>,
    /// The connection's last bytes, when an inline write found the core
    /// had closed it: the writer task writes them and closes.
    pub(crate) closing: Option<Bytes>,
}

impl WriteHalf {
    /// The write half, for the writer task (which may wait for it).
    pub(crate) async fn lock(&self) -> MutexGuard<'_, WriteHalfState> {
        self.0.lock().await
    }
}

impl ConnSignals {
    /// Writes what the core queued for `conn` (this connection's id) now,
    /// from the calling task, as far as the socket takes it without
    /// waiting. Returns whether the writer task has nothing to do: false
    /// when it holds the write half (it is
    /// writing: it takes the new bytes in its next turn), when the socket
    /// did not take everything, when a write failed (the writer task
    /// meets the error again and handles it), when the core closed the
    /// connection (closing is the writer task's), or when it queued more
    /// as these bytes were taken (replies that waited for room).
    ///
    /// What this leaves for the writer task stays counted in
    /// [`ConnSignals::unwritten`] until the writer wrote it, so a close
    /// meanwhile (the peer's GOODBYE in the reader's next read, before the
    /// writer task ran) counts it against the linger budget
    /// (`Shared::may_linger`).
    pub(crate) fn write_now<R: Runtime>(&self, shared: &Shared<R>, conn: ConnId) -> bool {
        let Some(mut guard) = self.write_half.0.try_lock() else {
            return false;
        };
        let half = &mut *guard;
        let Some(write) = half.write.as_mut() else {
            return false;
        };
        if half.left.is_some() || half.closing.is_some() {
            return false;
        }
        let Taken {
            data,
            closing,
            more,
        } = self.take_transmit(shared, conn);
        if closing.is_some() {
            half.left = data;
            half.closing = closing;
            return false;
        }
        let Some(mut data) = data else {
            return !more;
        };
        // No task waits on this context: when the socket is full the
        // writer task, woken by our caller, polls again with its own.
        let mut cx = Context::from_waker(Waker::noop());
        while !data.is_empty() {
            match Pin::new(&mut *write).poll_write(&mut cx, &data) {
                Poll::Ready(Ok(n)) if n > 0 => data.advance(n),
                // full, failed or closed: the writer task's to handle
                _ => {
                    self.unwritten.store(data.len(), Ordering::Release);
                    half.left = Some(data);
                    return false;
                }
            }
        }
        self.unwritten.store(0, Ordering::Release);
        // (a no-op on TCP; a buffering stream not flushed at once is
        // flushed in the writer task's turn, as is what waited for room)
        !more && matches!(Pin::new(write).poll_flush(&mut cx), Poll::Ready(Ok(())))
    }
}

/// Why [`write_patiently`] or [`flush_patiently`] gave up.
#[derive(Debug)]
pub(crate) enum WriteFailed {
    /// The transport refused the write.
    Io(io::Error),
    /// The transport made no progress for the whole patience: the peer
    /// does not read (`Input::Stalled`).
    Stalled,
}

/// Writes all of `bytes`, unless the transport takes none of them for
/// `patience` at a stretch: each write it takes starts the wait again.
///
/// Progress is what the transport reports. A TCP socket of the runtimes
/// reports room only once less than half of
/// [`UNSENT_LIMIT`](crate::socket_start::UNSENT_LIMIT) is left unsent
/// (Linux and Android; a write may leave a segment or two past the
/// limit): while more is queued than the socket takes, a peer must take
/// half the limit or more within `patience` to count as reading.
/// Elsewhere, and on a stream the application brings, the send buffer's
/// rules hold (on Linux, room once about a third of a buffer of up to
/// 4 MiB is free).
///
/// The timer exists only while a write waits: a socket with room costs no
/// clock read and no allocation.
pub(crate) async fn write_patiently<R: Runtime>(
    shared: &Shared<R>,
    write: &mut BoxWrite,
    mut bytes: &[u8],
    patience: Duration,
) -> Result<(), WriteFailed> {
    if bytes.is_empty() {
        return Ok(());
    }
    patiently(shared, patience, |cx| {
        match Pin::new(&mut **write).poll_write(cx, bytes) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                bytes = &bytes[n..];
                Poll::Ready(Ok(bytes.is_empty()))
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Poll::Ready(Ok(false)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Flushes what a buffering stream holds (a no-op on TCP), unless it takes
/// `patience` or more: a buffering stream (TLS, `BufWriter`) over a
/// socket the peer does not read blocks here, not in a write.
pub(crate) async fn flush_patiently<R: Runtime>(
    shared: &Shared<R>,
    write: &mut BoxWrite,
    patience: Duration,
) -> Result<(), WriteFailed> {
    patiently(shared, patience, |cx| {
        Pin::new(&mut **write).poll_flush(cx).map_ok(|()| true)
    })
    .await
}

/// Polls `step` until it says it is done (`Ok(true)`), or fails, or waits
/// (`Pending`) for `patience` at a stretch; `Ok(false)`, progress, starts
/// the wait again.
async fn patiently<R: Runtime>(
    shared: &Shared<R>,
    patience: Duration,
    mut step: impl FnMut(&mut Context<'_>) -> Poll<io::Result<bool>>,
) -> Result<(), WriteFailed> {
    let mut timer: Option<BoxFuture<()>> = None;
    poll_fn(|cx| {
        loop {
            match step(cx) {
                Poll::Ready(Ok(true)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(false)) => timer = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(WriteFailed::Io(e))),
                Poll::Pending => {
                    // (`after`: a patience of `Duration::MAX` is valid)
                    let timer =
                        timer.get_or_insert_with(|| shared.rt.sleep_until(shared.after(patience)));
                    return timer.as_mut().poll(cx).map(|()| Err(WriteFailed::Stalled));
                }
            }
        }
    })
    .await
}
