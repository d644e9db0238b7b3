//! Raw TCP ping-pong on smol and on async-std: the latency floor of each
//! of the other two runtimes, beside `raw.rs`'s tokio one, so that a
//! runtime's own cost per round trip is not taken for peernet's
//! (`seq64.rawtcp.pingpong.smol` against `seq64.peernet-smol`). Same
//! frames as `raw.rs`; the server answers every complete request of a
//! read with one write, like `raw::RawServer`.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::raw::{put_frame, take_frame};

/// What a connection has read: the frames not yet taken, and a scratch
/// buffer to read into (futures-io reads into initialised memory; this
/// is zeroed once, not per read).
struct Inbox {
    buf: BytesMut,
    scratch: Box<[u8]>,
}

impl Inbox {
    fn new() -> Inbox {
        Inbox {
            buf: BytesMut::with_capacity(16 * 1024),
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    /// Reads what is there; returns the count (0 at EOF).
    async fn read_more<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> io::Result<usize> {
        let n = s.read(&mut self.scratch).await?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
}

/// One connection of the echo server.
pub async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let (mut inbox, mut out) = (Inbox::new(), BytesMut::new());
    loop {
        if inbox.read_more(&mut s).await? == 0 {
            return Ok(());
        }
        while let Some((id, payload)) = take_frame(&mut inbox.buf) {
            put_frame(&mut out, id, &payload);
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
    }
}

/// Sequential request/response on one connection until `deadline`;
/// returns (calls, latencies in ns).
pub async fn run_seq<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    payload: &[u8],
    deadline: Instant,
) -> (u64, Vec<u64>) {
    let (mut inbox, mut out) = (Inbox::new(), BytesMut::new());
    let mut lat = Vec::with_capacity(1 << 16);
    let mut id = 1u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        put_frame(&mut out, id, payload);
        s.write_all(&out).await.expect("raw ping-pong write");
        out.clear();
        loop {
            if let Some((rid, _)) = take_frame(&mut inbox.buf) {
                assert_eq!(rid, id, "ping-pong id mismatch");
                break;
            }
            let n = inbox.read_more(s).await.expect("raw ping-pong read");
            assert!(n > 0, "raw ping-pong: server closed");
        }
        lat.push(t.elapsed().as_nanos() as u64);
        id += 1;
    }
    (lat.len() as u64, lat)
}

/// smol: an echo server on `ex` and one client stream connected to it.
pub fn smol_pair(ex: &Arc<smol::Executor<'static>>) -> smol::net::TcpStream {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let on = ex.clone();
        ex.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                on.spawn(serve_conn(s)).detach();
            }
        })
        .detach();
        let c = smol::net::TcpStream::connect(addr).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");
        c
    })
}

/// async-std: an echo server on its global executor and one client stream
/// connected to it.
pub fn async_std_pair() -> async_std::net::TcpStream {
    async_std::task::block_on(async {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        async_std::task::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                async_std::task::spawn(serve_conn(s));
            }
        });
        let c = async_std::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        c.set_nodelay(true).expect("nodelay");
        c
    })
}
