//! Raw TCP baselines on tokio: 4-byte big-endian length-prefixed frames,
//! `[len: u32 BE][id: u64 LE][payload]`, id-matched request/response, no
//! CBOR, no handshake. An id of 0 marks a fire-and-forget frame (counted by
//! the server, never answered).
//!
//! - `PingPong`: one frame out, one frame back, repeat (the latency floor).
//! - `Pipe`: one writer task writing as many frames as the window allows in
//!   one write, one reader task matching ids — the transport's physical limit.
//! - `Mux`: shaped like a library — each call is its own future awaiting a
//!   oneshot; calls go through a bounded channel to a writer task that
//!   writes in batches; a reader task completes the oneshots.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

const HDR: usize = 4 + 8;

pub fn put_frame(out: &mut BytesMut, id: u64, payload: &[u8]) {
    out.reserve(HDR + payload.len());
    out.put_u32((8 + payload.len()) as u32);
    out.put_u64_le(id);
    out.put_slice(payload);
}

/// Splits one complete frame off the front of `buf`: `(id, payload)`.
pub fn take_frame(buf: &mut BytesMut) -> Option<(u64, BytesMut)> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
    assert!(len >= 8, "raw frame too short");
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return None;
    }
    let mut f = buf.split_to(4 + len);
    f.advance(4);
    let id = f.get_u64_le();
    Some((id, f))
}

fn ensure_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
}

/// The echo server shared by all raw clients: per connection one task that
/// reads what is there, answers every complete request frame into one
/// buffer, and writes it with one call. The read buffer is allocated on the
/// first readable event, so an idle connection holds only its task.
pub struct RawServer {
    pub addr: SocketAddr,
    /// Fire-and-forget frames received (id 0).
    pub sends: Arc<AtomicU64>,
    /// Connections currently open.
    pub conns: Arc<AtomicU64>,
}

impl RawServer {
    pub async fn start() -> io::Result<RawServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sends = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicU64::new(0));
        let (s, c) = (sends.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                c.fetch_add(1, Ordering::Relaxed);
                let (s, c) = (s.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = serve_conn(stream, &s).await;
                    c.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(RawServer { addr, sends, conns })
    }
}

async fn serve_conn(mut stream: TcpStream, sends: &AtomicU64) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    loop {
        stream.readable().await?;
        ensure_room(&mut buf);
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        let mut n_sends = 0;
        while let Some((id, payload)) = take_frame(&mut buf) {
            if id == 0 {
                n_sends += 1;
            } else {
                put_frame(&mut out, id, &payload);
            }
        }
        if n_sends > 0 {
            sends.fetch_add(n_sends, Ordering::Relaxed);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

pub async fn dial(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sequential request/response on one connection.
pub struct PingPong {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
    next: u64,
}

impl PingPong {
    pub async fn connect(addr: SocketAddr) -> io::Result<PingPong> {
        Ok(PingPong {
            stream: dial(addr).await?,
            buf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            next: 1,
        })
    }

    pub async fn call(&mut self, payload: &[u8]) -> io::Result<BytesMut> {
        let id = self.next;
        self.next += 1;
        put_frame(&mut self.out, id, payload);
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        loop {
            if let Some((rid, body)) = take_frame(&mut self.buf) {
                assert_eq!(rid, id, "ping-pong id mismatch");
                return Ok(body);
            }
            ensure_room(&mut self.buf);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Sequential calls until `deadline`; returns (calls, latencies in ns).
    pub async fn run_seq(&mut self, payload: &[u8], deadline: Instant) -> (u64, Vec<u64>) {
        let mut lat = Vec::with_capacity(1 << 16);
        let mut n = 0;
        loop {
            let t = Instant::now();
            if t >= deadline {
                break;
            }
            self.call(payload).await.expect("raw ping-pong");
            lat.push(t.elapsed().as_nanos() as u64);
            n += 1;
        }
        (n, lat)
    }

    /// Fire-and-forget frames (id 0), `batch` per write, until `deadline`.
    /// Returns the number written.
    pub async fn run_sends(&mut self, payload: &[u8], batch: usize, deadline: Instant) -> u64 {
        let mut n = 0;
        while Instant::now() < deadline {
            for _ in 0..batch {
                put_frame(&mut self.out, 0, payload);
            }
            self.stream.write_all(&self.out).await.expect("raw send");
            self.out.clear();
            n += batch as u64;
        }
        n
    }
}

/// The physical limit: one writer task, one reader task, `window` frames in
/// flight, the writer writing every frame it may send in one write.
pub struct Pipe {
    halves: Option<(OwnedReadHalf, OwnedWriteHalf)>,
    next: u64,
}

impl Pipe {
    pub async fn connect(addr: SocketAddr) -> io::Result<Pipe> {
        Ok(Pipe {
            halves: Some(dial(addr).await?.into_split()),
            next: 1,
        })
    }

    /// Runs until `deadline` with `window` calls in flight, then drains.
    /// Returns the number of responses received.
    pub async fn run(&mut self, window: usize, payload: Bytes, deadline: Instant) -> u64 {
        let (mut rd, mut wr) = self.halves.take().expect("pipe in use");
        let credits = Arc::new(Semaphore::new(window));
        let stop = Arc::new(Notify::new());
        let first = self.next;
        let writer = {
            let credits = credits.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut out = BytesMut::with_capacity(window * (HDR + payload.len()));
                let mut id = first;
                loop {
                    credits.acquire().await.unwrap().forget();
                    let mut k = 1;
                    let more = credits.available_permits();
                    if more > 0 {
                        credits.try_acquire_many(more as u32).unwrap().forget();
                        k += more;
                    }
                    for _ in 0..k {
                        put_frame(&mut out, id, &payload);
                        id += 1;
                    }
                    wr.write_all(&out).await.expect("pipe write");
                    out.clear();
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                // Wait for every response, then stop the reader.
                credits.acquire_many(window as u32).await.unwrap().forget();
                stop.notify_one();
                (wr, id)
            })
        };
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut expect = first;
            loop {
                ensure_room(&mut buf);
                tokio::select! {
                    biased;
                    _ = stop.notified() => break,
                    r = rd.read_buf(&mut buf) => {
                        if r.expect("pipe read") == 0 {
                            panic!("pipe: server closed");
                        }
                        let mut k = 0;
                        while let Some((id, _)) = take_frame(&mut buf) {
                            assert_eq!(id, expect, "pipe id mismatch");
                            expect += 1;
                            k += 1;
                        }
                        credits.add_permits(k);
                    }
                }
            }
            (rd, expect)
        });
        let (wr, sent_to) = writer.await.unwrap();
        let (rd, recv_to) = reader.await.unwrap();
        assert_eq!(sent_to, recv_to);
        self.halves = Some((rd, wr));
        self.next = sent_to;
        sent_to - first
    }
}

struct Req {
    id: u64,
    payload: Bytes,
    done: oneshot::Sender<Bytes>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// A library-shaped multiplexing client.
pub struct Mux {
    tx: mpsc::Sender<Req>,
    next: AtomicU64,
    closed: Arc<AtomicBool>,
}

impl Mux {
    pub async fn connect(addr: SocketAddr) -> io::Result<Mux> {
        let (mut rd, mut wr) = dial(addr).await?.into_split();
        let (tx, mut rx) = mpsc::channel::<Req>(1024);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let p = pending.clone();
        tokio::spawn(async move {
            let mut out = BytesMut::with_capacity(64 * 1024);
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, 256).await > 0 {
                {
                    let mut p = p.lock().unwrap();
                    for r in batch.drain(..) {
                        put_frame(&mut out, r.id, &r.payload);
                        p.insert(r.id, r.done);
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        });
        let c = closed.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                ensure_room(&mut buf);
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let mut p = pending.lock().unwrap();
                while let Some((id, body)) = take_frame(&mut buf) {
                    if let Some(done) = p.remove(&id) {
                        let _ = done.send(body.freeze());
                    }
                }
            }
            c.store(true, Ordering::Relaxed);
            pending.lock().unwrap().clear();
        });
        Ok(Mux {
            tx,
            next: AtomicU64::new(1),
            closed,
        })
    }

    pub async fn call(&self, payload: Bytes) -> io::Result<Bytes> {
        let (done, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.tx
            .send(Req { id, payload, done })
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        rx.await.map_err(|_| io::ErrorKind::BrokenPipe.into())
    }
}

/// Connects, then closes, `n` raw TCP connections, `par` at a time; returns
/// the count. The baseline for handshakes: what TCP alone costs.
pub async fn connect_close(addr: SocketAddr, n: usize, par: usize) -> u64 {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|_| async move {
            let mut s = dial(addr).await.expect("raw connect");
            // one byte exchanged so the server has seen the connection
            s.write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0])
                .await
                .unwrap();
            s.shutdown().await.ok();
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
        })
        .buffer_unordered(par)
        .count()
        .await as u64
}

/// Helper: sleeps until `d` from now (tokio).
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}
