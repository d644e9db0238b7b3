//! A transport that takes at most a few bytes per write, and is full on
//! every other poll. During the handshake, and for the reply to a read
//! that brought one call, the connection's reader writes the core's bytes
//! itself (the driver's `write_half.rs`); here every such write stops part-way,
//! and the writer task must write what is left before anything newer,
//! byte for byte, or the handshake and the calls after it fail (a record
//! that does not authenticate, a frame that does not decode).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::joined_over;
use peernet_tokio::{Node, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

/// How many bytes one write takes at most.
const DRIP: usize = 7;

struct Dribbling {
    inner: UnixStream,
    /// Whether the next poll of a write reports the stream full.
    full: bool,
}

impl Dribbling {
    fn new(inner: UnixStream) -> Dribbling {
        Dribbling { inner, full: false }
    }
}

impl AsyncWrite for Dribbling {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let full = self.full;
        self.full = !full;
        if full {
            // full for this poll only: whoever polls with a real waker is
            // polled again
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = buf.len().min(DRIP);
        Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Dribbling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

async fn handshake_and_calls_over_a_dribbling_stream(version: ProtocolVersion) {
    let (left, right) = UnixStream::pair().unwrap();
    let (a, b): (Node, Node) =
        joined_over(Dribbling::new(left), Dribbling::new(right), version).await;
    a.expose("echo", |_, args: Bytes| async move { Ok(args) })
        .unwrap();
    let wait = Duration::from_secs(30);
    let calls = (0..8u8).map(|k| {
        let b = b.clone();
        let to = a.peer_id();
        async move {
            let args = vec![k; 300];
            let got = b.call(&to, "echo", &args, wait).await.expect("call");
            assert_eq!(got, args, "call {k} came back altered");
        }
    });
    futures_util::future::join_all(calls).await;
    // one at a time: each reply is the lone call's, written by the reader
    for k in 0..4u8 {
        let args = vec![k; 100 + 200 * usize::from(k)];
        let got = b
            .call(&a.peer_id(), "echo", &args, wait)
            .await
            .expect("call");
        assert_eq!(got, args, "sequential call {k} came back altered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_over_a_dribbling_stream() {
    handshake_and_calls_over_a_dribbling_stream(ProtocolVersion::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_over_a_dribbling_stream() {
    handshake_and_calls_over_a_dribbling_stream(ProtocolVersion::V1).await;
}
