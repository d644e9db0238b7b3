//! The accept loop under connections that die in the listener's queue: an
//! error of one accepted connection costs nothing, so a source that resets
//! connections in a loop cannot slow everyone's accepts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peernet_driver::{BoxFuture, Runtime, Transport};
use peernet_tokio::{Identity, NodeConfig, TokioRuntime};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// tokio underneath, with `accept` as on BSD and macOS: a connection reset
/// while it waited in the queue is returned as `ECONNABORTED` (Linux
/// accepts it; its `getpeername` then fails, which stands in here).
#[derive(Clone, Default)]
struct BsdAccept(TokioRuntime);

impl Runtime for BsdAccept {
    type Listener = tokio::net::TcpListener;
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        self.0.spawn(future);
    }
    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.spawn_blocking(work)
    }
    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        self.0.sleep_until(at)
    }
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send {
        self.0.connect(addr)
    }
    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        self.0.bind(addr, backlog)
    }
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        TokioRuntime::local_addr(listener)
    }
    async fn accept(&self, listener: &Self::Listener) -> io::Result<Transport> {
        let (stream, remote) = listener.accept().await?;
        if stream.peer_addr().is_err() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let (read, write) = stream.into_split();
        Ok(Transport::new(
            read.compat(),
            write.compat_write(),
            Some(remote),
        ))
    }
}

/// 80 connections reset before they are accepted, then an honest peer: it
/// connects at once. Each such error used to cost the accept loop its
/// 50 ms back-off (4 s here), with no per-source limit to stop it, since
/// the driver never gets a transport to charge.
#[tokio::test]
async fn connections_reset_before_accept_do_not_stall_the_accept_loop() {
    let (a_id, b_id) = (
        Identity::from_seed(&[85; 32]),
        Identity::from_seed(&[86; 32]),
    );
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let alice = peernet_tokio::Node::bind(
        NodeConfig::new(a_id).trusting(b_peer),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let bob = peernet_driver::Node::<BsdAccept>::new(NodeConfig::new(b_id).trusting(a_peer));
    let addr = bob.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // (no await until all are reset: the accept loop has not run yet)
    for _ in 0..80 {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        // closed with a reset as it drops
        tokio::net::TcpStream::from_std(s)
            .unwrap()
            .set_zero_linger()
            .unwrap();
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), alice.connect(b_peer, addr))
        .await
        .expect("connected within 15 s")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "an honest peer waited {took:?} behind 80 resets"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
