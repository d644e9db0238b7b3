//! A transport that takes at most a few bytes per write, and is full on
//! every other poll of one. During the handshake, and for the reply to a
//! read that brought one call, the connection's reader writes the core's
//! bytes itself (the driver's `write_half.rs`); here every such write
//! stops part-way, and the writer task must write what is left before
//! anything newer, byte for byte, or the handshake and the calls after it
//! fail (a record that does not authenticate, a frame that does not
//! decode). Whether the task that met a full stream is polled again is
//! the runtime's waker at work. (A tokio test once, `dribbling_stream.rs`.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::io::{AsyncRead, AsyncWrite};

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// How many bytes one write takes at most.
const DRIP: usize = 7;

/// `S`, taking at most 7 bytes (`DRIP`) a write and full on every other
/// poll of a write; in futures-io's traits and in tokio's, whichever `S`
/// has, so that every runtime can wrap it.
pub struct Dribbling<S> {
    inner: S,
    /// Whether the next poll of a write reports the stream full.
    full: bool,
}

impl<S> Dribbling<S> {
    /// `inner`, dribbling.
    pub fn new(inner: S) -> Dribbling<S> {
        Dribbling { inner, full: false }
    }

    /// How many of `len` bytes this poll of a write may take; `None`
    /// when the stream is full for this poll only: the poller is woken
    /// at once, so whoever polls with a real waker is polled again.
    fn room(&mut self, cx: &Context<'_>, len: usize) -> Option<usize> {
        let full = self.full;
        self.full = !full;
        if full {
            cx.waker().wake_by_ref();
            return None;
        }
        Some(len.min(DRIP))
    }

    /// A write of `buf` with `write` (the inner stream's), cut to what
    /// [`Dribbling::room`] leaves.
    fn dribble(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        write: impl FnOnce(Pin<&mut S>, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>>
    where
        S: Unpin,
    {
        match self.room(cx, buf.len()) {
            Some(n) => write(Pin::new(&mut self.inner), cx, &buf[..n]),
            None => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Dribbling<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().dribble(cx, buf, AsyncWrite::poll_write)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Dribbling<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Dribbling<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .dribble(cx, buf, tokio::io::AsyncWrite::poll_write)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Dribbling<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// Two nodes joined over a stream pair of the runtime's, each end
/// dribbling: the handshake completes, eight calls in flight at once
/// and four one at a time (each reply the lone call's, written by the
/// reader) come back whole.
pub async fn handshake_and_calls_over_a_dribbling_stream<H: Harness>()
where
    H::Rt: WrapStream<Dribbling<H::Stream>>,
{
    let (left, right) = H::stream_pair().expect("stream pair");
    let (left, right) = (Dribbling::new(left), Dribbling::new(right));
    let (a, b): (N<H>, N<H>) = crate::joined_over(left, right, version()).await;
    expose_echo(&a);
    let wait = Duration::from_secs(10);
    let calls = (0..8u8).map(|k| {
        let (b, to) = (b.clone(), a.peer_id());
        async move {
            let args = vec![k; 300];
            let got = b.call(&to, "echo", args.clone(), wait).await;
            assert_eq!(got.expect("call"), args, "call {k} came back altered");
        }
    });
    within(
        a.runtime(),
        "the calls in flight",
        futures_util::future::join_all(calls),
    )
    .await;
    for k in 0..4u8 {
        let args = vec![k; 100 + 200 * usize::from(k)];
        let got = b.call(&a.peer_id(), "echo", args.clone(), wait).await;
        assert_eq!(
            got.expect("call"),
            args,
            "sequential call {k} came back altered"
        );
    }
}
