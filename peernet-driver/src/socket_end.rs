//! How a connection's TCP socket is let go of, written once for the
//! runtimes' socket halves (`Socket::split`).
//!
//! The driver closes the write half once its last bytes are written and
//! reads to the peer's end of stream; when it gives up instead (a peer
//! that takes none of our bytes, the linger over, a broken transport) it
//! drops a half without that. A FIN then would leave the kernel holding
//! the socket, and every byte queued before the FIN, for as long as the
//! peer keeps its end open without reading: measured, 3.7 MB still held
//! 280 s after the node let go, outside every limit of the node. So a
//! half dropped that way makes the socket close with a reset. A half that
//! ended cleanly still may not be read by the peer (one that closed its
//! sending side and reads nothing kept 2.5 MB so): where the kernel
//! offers `TCP_USER_TIMEOUT`, it gives up once nothing the socket sends
//! is taken for [`ORPHAN_PATIENCE`]; a peer that reads keeps it going.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use socket2::SockRef;

/// How long the kernel may go on trying to deliver what a socket let go
/// of cleanly still queues, without progress, before it drops the socket
/// (the driver's linger).
pub const ORPHAN_PATIENCE: Duration = Duration::from_secs(2);

/// A half of `socket` is dropped: `cleanly` if it ended as the driver
/// ends a connection (our close written, or the peer's end of stream
/// read), else given up, and the socket closes with a reset once its last
/// half is gone. A failure to set the option is ignored: the socket is
/// dead already, and nothing is queued.
pub fn let_go<'a, S>(socket: &'a S, cleanly: bool)
where
    SockRef<'a>: From<&'a S>,
{
    if !cleanly {
        reset(socket);
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = SockRef::from(socket).set_tcp_user_timeout(Some(ORPHAN_PATIENCE));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// Makes `socket` close with a TCP reset (`SO_LINGER` 0) rather than a
/// FIN when its last handle is dropped: what it still queues is dropped
/// at once ([`Socket::reset`](crate::Socket::reset), and a half given
/// up).
pub fn reset<'a, S>(socket: &'a S)
where
    SockRef<'a>: From<&'a S>,
{
    let _ = SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

/// A read half of a runtime's socket that lets go of the socket as
/// [`let_go`] says when dropped: cleanly once a read returned the peer's
/// end of stream, else with a reset. `let_go` is the runtime's call of
/// [`let_go`] on the socket under `R`.
pub struct ReadEnd<R> {
    half: R,
    /// A read returned the end of stream.
    ended: bool,
    let_go: fn(&R, bool),
}

impl<R> ReadEnd<R> {
    /// Wraps `half`; `let_go` is called with it once, on drop.
    pub fn new(half: R, let_go: fn(&R, bool)) -> ReadEnd<R> {
        ReadEnd {
            half,
            ended: false,
            let_go,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadEnd<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = ready!(Pin::new(&mut self.half).poll_read(cx, buf));
        if matches!(read, Ok(0)) && !buf.is_empty() {
            self.ended = true;
        }
        Poll::Ready(read)
    }
}

impl<R> Drop for ReadEnd<R> {
    fn drop(&mut self) {
        (self.let_go)(&self.half, self.ended);
    }
}

/// A write half of a runtime's socket that lets go of the socket as
/// [`let_go`] says when dropped: cleanly once its close completed (our
/// last bytes and the FIN are queued), else with a reset, so does a read
/// half dropped before the peer's end of stream ([`ReadEnd`]).
pub struct WriteEnd<W> {
    half: W,
    /// `poll_close` completed.
    closed: bool,
    let_go: fn(&W, bool),
}

impl<W> WriteEnd<W> {
    /// Wraps `half`; `let_go` is called with it once, on drop.
    pub fn new(half: W, let_go: fn(&W, bool)) -> WriteEnd<W> {
        WriteEnd {
            half,
            closed: false,
            let_go,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WriteEnd<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.half).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let closed = ready!(Pin::new(&mut self.half).poll_close(cx));
        self.closed = closed.is_ok();
        Poll::Ready(closed)
    }
}

impl<W> Drop for WriteEnd<W> {
    fn drop(&mut self) {
        (self.let_go)(&self.half, self.closed);
    }
}
