//! peernet on smol: default-deny, peer-to-peer RPC between
//! mutually-suspicious peers addressed by ed25519 public keys.
//!
//! A peer is addressed by its [`PeerId`]; a node talks only to peers in its
//! trust list, and only through the handles it exposes. This crate is the
//! smol plumbing (async-io TCP and timers, smol tasks) under the
//! runtime-agnostic [`peernet_driver`]; `peernet-tokio` and
//! `peernet-async-std` offer the same API.
//!
//! ```
//! use std::time::Duration;
//! use peernet_smol::{Identity, Node, NodeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> { smol::block_on(async {
//! let (alice_id, bob_id) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
//! let (alice_peer, bob_peer) = (alice_id.peer_id(), bob_id.peer_id());
//! let any_port = "127.0.0.1:0".parse()?;
//!
//! // Each side trusts the other; nobody else gets in.
//! let bob = Node::bind(NodeConfig::new(bob_id).trusting(alice_peer), any_port).await?;
//! bob.expose("echo", |_caller, args| async move { Ok(args) })?;
//!
//! let alice = Node::bind(NodeConfig::new(alice_id).trusting(bob_peer), any_port).await?;
//! alice.connect(bob_peer, bob.local_addr().unwrap()).await?;
//! let reply = alice.call(&bob_peer, "echo", "hi", Duration::from_secs(5)).await?;
//! assert_eq!(reply, "hi");
//!
//! alice.shutdown().await;
//! bob.shutdown().await;
//! # Ok(()) }) }
//! ```
//!
//! Tasks go to smol's global executor, or to an executor of the
//! application's ([`SmolRuntime::with_executor`] and
//! [`Node::bind_with`](peernet_driver::Node::bind_with)). Streams the
//! application opened itself (any `futures_io::AsyncRead + AsyncWrite`: a
//! Unix socket, a TLS stream, a relayed stream) go through
//! [`Node::connect_stream`](peernet_driver::Node::connect_stream) and
//! [`Node::accept_stream`](peernet_driver::Node::accept_stream).
//!
//! [`AsyncIoRuntime`] is the async-io implementation itself, generic over
//! where tasks run; `peernet-async-std` reuses it with async-std's tasks.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll, ready};
use std::time::Instant;

use async_io::Async;
use async_net::{TcpListener, TcpStream};
use futures_io::{AsyncRead, AsyncWrite};
use peernet_driver::socket_end::{ReadEnd, WriteEnd};
use peernet_driver::{
    BoxFuture, BoxRead, BoxWrite, Runtime, Socket, Transport, WrapStream, socket_end, socket_start,
};

pub use peernet_driver::api::*;
// (named again past the glob for docs.rs's feature badges: the driver's
// own `doc(cfg)` is not seen when this crate is documented)
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
pub use peernet_driver::discovery;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use peernet_driver::{Service, ServiceError};

/// A peernet node on smol: [`peernet_driver::Node`] on [`SmolRuntime`].
///
/// Its methods are documented on [`peernet_driver::Node`] (a `cargo doc
/// --no-deps` of this crate alone shows none of them here: document
/// `peernet-driver` with it); `peernet_tokio::Node`'s docs list where an
/// application starts.
pub type Node = peernet_driver::Node<SmolRuntime>;

/// The smol implementation of [`peernet_driver::Runtime`]: async-io for
/// TCP and timers, smol for tasks.
pub type SmolRuntime = AsyncIoRuntime<SmolSpawner>;

/// Where an [`AsyncIoRuntime`] runs its tasks.
pub trait Spawner: Clone + Default + Send + Sync + 'static {
    /// Runs `future` as a detached task.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs blocking `work` on a thread pool, as
    /// [`Runtime::spawn_blocking`].
    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
}

/// A [`Runtime`] on async-io (the reactor under smol and async-std): its
/// TCP sockets and timers, with tasks on `S`.
#[derive(Debug, Clone, Default)]
pub struct AsyncIoRuntime<S> {
    spawner: S,
}

impl<S: Spawner> AsyncIoRuntime<S> {
    /// With tasks on `spawner`.
    pub fn with_spawner(spawner: S) -> Self {
        AsyncIoRuntime { spawner }
    }
}

/// The socket's options ([`socket_start`]); the stream is shared by its halves (one socket, with no
/// lock between the reader and the writer).
///
/// `remote` is what connect dialed or accept returned (asking the socket
/// again would be one `getpeername` per connection for nothing).
fn tcp(stream: TcpStream, remote: SocketAddr) -> io::Result<Transport> {
    socket_start::take_up(&stream);
    Ok(Transport::from_socket(Tcp(stream), Some(remote)))
}

/// A TCP stream the driver has not split yet.
struct Tcp(TcpStream);

impl Socket for Tcp {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let reader = TcpReader {
            socket: self.0.clone().into(),
            drained: false,
        };
        let reader = ReadEnd::new(reader, |reader, cleanly| {
            socket_end::let_go(&*reader.socket, cleanly);
        });
        let writer = WriteEnd::new(self.0, |stream, cleanly| {
            socket_end::let_go(stream, cleanly);
        });
        (Box::new(reader), Box::new(writer))
    }

    fn reset(self: Box<Self>) {
        socket_end::reset(&self.0);
    }
}

/// The read half of a TCP stream that, like tokio's, trusts a short read:
/// it emptied the socket, so the next read first waits for the reactor to
/// report readability instead of trying a `recv` bound to fail with
/// `WouldBlock` (async-net's stream always tries first, then builds a
/// readiness future). Measured on the pipelined benchmark: about 20 %
/// fewer context switches per call and about 8 % more calls per second.
///
/// Its [`ReadEnd`] lets go of the socket.
struct TcpReader {
    socket: Arc<Async<std::net::TcpStream>>,
    /// The last read came back short (or would have blocked): wait for
    /// readability before the next one.
    drained: bool,
}

impl AsyncRead for TcpReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.drained {
                ready!(self.socket.poll_readable(cx))?;
                self.drained = false;
            }
            match self.socket.get_ref().read(buf) {
                Ok(n) => {
                    self.drained = n > 0 && n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl<S: Spawner> Runtime for AsyncIoRuntime<S> {
    type Listener = TcpListener;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawner.spawn(future);
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawner.spawn_blocking(work)
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            async_io::Timer::at(at).await;
        })
    }

    async fn resolve(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        // the system resolver, on the `blocking` crate's thread pool
        async_net::resolve(host).await
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Transport> {
        tcp(TcpStream::connect(addr).await?, addr)
    }

    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<TcpListener>> + Send {
        let listener = listen(addr, backlog);
        async move { listener }
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(&self, listener: &TcpListener) -> io::Result<Transport> {
        let (stream, remote) = listener.accept().await?;
        tcp(stream, remote)
    }
}

/// A listening socket with an accept queue of `backlog` (async-net's
/// `bind` always asks for 128).
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::try_from(std::net::TcpListener::from(socket))
}

impl<S, T> WrapStream<T> for AsyncIoRuntime<S>
where
    S: Spawner,
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn wrap(stream: T) -> Transport {
        Transport::split(stream)
    }
}

/// Spawns on smol's global executor, or on an executor of the
/// application's.
#[derive(Clone, Default)]
pub struct SmolSpawner {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl std::fmt::Debug for SmolSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = if self.executor.is_some() {
            "executor"
        } else {
            "global"
        };
        f.debug_tuple("SmolSpawner").field(&on).finish()
    }
}

impl Spawner for SmolSpawner {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        smol::unblock(work)
    }
}

impl SmolRuntime {
    /// With tasks on `executor`, which the application runs.
    pub fn with_executor(executor: Arc<smol::Executor<'static>>) -> SmolRuntime {
        AsyncIoRuntime::with_spawner(SmolSpawner {
            executor: Some(executor),
        })
    }
}

/// The crate README's example, compiled as a doctest so that it cannot
/// drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
