//! peernet on tokio: default-deny, peer-to-peer RPC between
//! mutually-suspicious peers addressed by ed25519 public keys.
//!
//! A peer is addressed by its [`PeerId`]; a node talks only to peers in its
//! trust list, and only through the handles it exposes. This crate is the
//! tokio plumbing (TCP, timers, tasks) under the runtime-agnostic
//! [`peernet_driver`]; `peernet-smol` and `peernet-async-std` offer the
//! same API.
//!
//! ```
//! use std::time::Duration;
//! use peernet_tokio::{Identity, Node, NodeConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
//! # Ok(()) }
//! ```
//!
//! Streams the application opened itself (a Unix socket, a TLS stream, a
//! relayed stream: any `tokio::io::AsyncRead + AsyncWrite`) go through
//! [`Node::connect_stream`](peernet_driver::Node::connect_stream) and
//! [`Node::accept_stream`](peernet_driver::Node::accept_stream).
//!
//! Everything but [`Node`] and [`TokioRuntime`] is
//! [`peernet_driver`]'s, re-exported as it is: where an item's example
//! writes `use peernet_driver::Service` or `peernet_driver::Node<R>`,
//! write `peernet_tokio::Service` and `peernet_tokio::Node` (an
//! application needs no dependency of its own on `peernet-driver` or
//! `peernet-proto`). The typed services (`Service`,
//! `Node::call_service`) need the `serde` feature, LAN discovery
//! (`discovery`, `Node::discover_lan`) `mdns`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use peernet_driver::socket_end::{ReadEnd, WriteEnd};
use peernet_driver::{
    BoxFuture, BoxRead, BoxWrite, Runtime, Socket, Transport, WrapStream, socket_end, socket_start,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle as RuntimeHandle;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

pub use peernet_driver::api::*;
// (named again past the glob for docs.rs's feature badges: the driver's
// own `doc(cfg)` is not seen when this crate is documented)
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
pub use peernet_driver::discovery;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use peernet_driver::{Service, ServiceError};

/// A peernet node on tokio: [`peernet_driver::Node`] on [`TokioRuntime`].
///
/// Its methods are documented on [`peernet_driver::Node`]. A `cargo doc
/// --no-deps` of this crate alone shows none of them here (rustdoc shows
/// an alias's methods only when the crate that defines the type is
/// documented too): document both, `cargo doc -p peernet-tokio -p
/// peernet-driver --no-deps`, or leave out `--no-deps`. Where an
/// application starts:
///
/// - **Start**: [`Node::bind`](peernet_driver::Node::bind) with a
///   [`NodeConfig`] ([`NodeConfig::new`] for an identity held in memory,
///   [`NodeConfig::from_data_dir`] for one kept on disk with its trust
///   list and address book); or
///   [`Node::try_new`](peernet_driver::Node::try_new), expose, then
///   [`Node::listen`](peernet_driver::Node::listen), so that no peer finds
///   a handle missing ([`Node::new`](peernet_driver::Node::new) is
///   `try_new` that panics on a [`StartError`]).
/// - **Trust**: [`Node::pair`](peernet_driver::Node::pair) and
///   [`Node::unpair`](peernet_driver::Node::unpair) (saved to the data
///   directory), or [`NodeConfig::trusting`] for one run.
/// - **Reach**: [`Node::connect`](peernet_driver::Node::connect) a peer at
///   an address; or record its addresses
///   ([`Node::add_address`](peernet_driver::Node::add_address), from a
///   [`Ticket`]: see its docs) and
///   [`Node::connect_peer`](peernet_driver::Node::connect_peer) by PeerId;
///   [`Node::keep_connected`](peernet_driver::Node::keep_connected) to
///   redial a lost peer (each failed round says why:
///   [`NodeEvent::Unreachable`]); [`ConnectError::is_transient`] says
///   whether a failed connect is worth trying again.
/// - **Serve**: [`Node::expose`](peernet_driver::Node::expose) (bytes),
///   [`Node::expose_ctx`](peernet_driver::Node::expose_ctx) (with the
///   call's [`Context`]), [`cbor_handler`] (typed CBOR;
///   [`cbor_handler_ctx`] with the call's `Context`: its deadline and
///   cancellation), and with the `serde` feature `Node::expose_service`
///   (a `Service`: the request, response and error types defined once
///   for both sides). `expose`, `expose_ctx` and `expose_service` each
///   have a `_to` form taking an [`Access`] (a set of peers, or a rule
///   over the caller's PeerId): the other peers are answered
///   `forbidden`.
/// - **Call**: [`Node::call`](peernet_driver::Node::call) with a timeout
///   ([`CallError`]; [`CallError::is_transient`] says whether to try
///   again), [`Node::send`](peernet_driver::Node::send)
///   (fire-and-forget), [`Node::call_cbor`](peernet_driver::Node::call_cbor)
///   ([`TypedCallError`]), and with `serde` `Node::call_service`
///   (`ServiceError`).
/// - **Watch**: [`Node::events`](peernet_driver::Node::events)
///   ([`NodeEvent`]) and [`Node::stats`](peernet_driver::Node::stats).
/// - **Stop**: [`Node::shutdown`](peernet_driver::Node::shutdown): goodbyes
///   sent, running handlers given their grace, the address book saved and
///   the data directory's lock let go once it returns.
///
/// `examples/kv.rs` does each of these with a data directory and tickets.
pub type Node = peernet_driver::Node<TokioRuntime>;

/// The tokio implementation of [`peernet_driver::Runtime`].
///
/// It holds a runtime [`Handle`](RuntimeHandle): the node's tasks, timers and sockets
/// live on that runtime, whichever executor polls the node's futures. The
/// clock is tokio's, so tests with paused time work.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: RuntimeHandle,
}

impl TokioRuntime {
    /// On the runtime behind `handle`.
    pub fn new(handle: RuntimeHandle) -> TokioRuntime {
        TokioRuntime { handle }
    }
}

impl Default for TokioRuntime {
    /// On the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`Handle::current`](RuntimeHandle::current) does).
    fn default() -> TokioRuntime {
        TokioRuntime::new(RuntimeHandle::current())
    }
}

/// The socket's options ([`socket_start`]), then the stream, split into halves without a lock
/// between them once the driver keeps it. `remote` is what connect dialed
/// or accept returned (asking the socket again would be one `getpeername`
/// per connection for nothing).
fn tcp(stream: TcpStream, remote: SocketAddr) -> io::Result<Transport> {
    socket_start::take_up(&stream);
    Ok(Transport::from_socket(Tcp(stream), Some(remote)))
}

/// A TCP stream the driver has not split yet.
struct Tcp(TcpStream);

impl Socket for Tcp {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (read, write) = self.0.into_split();
        let read = ReadEnd::new(read.compat(), |half, cleanly| {
            socket_end::let_go(half.get_ref().as_ref(), cleanly);
        });
        let write = WriteEnd::new(write.compat_write(), |half, cleanly| {
            socket_end::let_go(half.get_ref().as_ref(), cleanly);
        });
        (Box::new(read), Box::new(write))
    }

    fn reset(self: Box<Self>) {
        socket_end::reset(&self.0);
    }
}

impl Runtime for TokioRuntime {
    type Listener = TcpListener;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = self.handle.spawn_blocking(work);
        async move {
            match task.await {
                Ok(value) => value,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Only when the runtime shuts down under the caller, which
                // then is not polled again.
                Err(error) => panic!("blocking task did not finish: {error}"),
            }
        }
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        // the timer registers with this runtime, whoever polls it
        let _runtime = self.handle.enter();
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn resolve(&self, host: &str) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send {
        // tokio's resolver runs on this runtime's blocking pool
        let host = host.to_owned();
        let task = self
            .handle
            .spawn(async move { Ok(tokio::net::lookup_host(host).await?.collect()) });
        joined(task)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send {
        // sockets register with the runtime they are created on
        let task = self
            .handle
            .spawn(async move { tcp(TcpStream::connect(addr).await?, addr) });
        joined(task)
    }

    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<TcpListener>> + Send {
        let task = self.handle.spawn(async move {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(backlog)
        });
        joined(task)
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(&self, listener: &TcpListener) -> io::Result<Transport> {
        let (stream, remote) = listener.accept().await?;
        tcp(stream, remote)
    }
}

/// The outcome of a task spawned to do socket work on this runtime (its
/// sockets register with the runtime they are created on). The task is
/// aborted if the future is dropped first: a dial the driver gave up
/// (handshake budget, shutdown, `dial_timeout`) must not go on trying for
/// the kernel's connect timeout, holding a socket, nor open a connection
/// after its failure was reported, which the peer would count as a failed
/// handshake against our address.
fn joined<T: Send + 'static>(
    task: tokio::task::JoinHandle<io::Result<T>>,
) -> impl Future<Output = io::Result<T>> + Send {
    let mut guard = AbortOnDrop(task);
    async move { (&mut guard.0).await.map_err(io::Error::other)? }
}

/// Aborts its task when dropped (a no-op once the task has finished).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<S> WrapStream<S> for TokioRuntime
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    fn wrap(stream: S) -> Transport {
        let (read, write) = tokio::io::split(stream);
        Transport::new(read.compat(), write.compat_write(), None)
    }
}

/// The repository README's code, compiled as a doc-test so that it cannot
/// drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// This crate's README's example, compiled as a doctest too.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "Getting started" is `examples/getting_started.rs`
    /// word for word, but for the example's opening comment: the README
    /// says so, and neither can change alone.
    #[test]
    fn the_readmes_getting_started_is_the_example() {
        let readme = include_str!("../../README.md");
        let example = include_str!("../examples/getting_started.rs");
        let code: String = example
            .lines()
            .skip_while(|line| line.starts_with("//!") || line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(code.contains("pair_ticket"), "{code}");
        let heading = "## Getting started\n";
        let section = &readme[readme.find(heading).expect("a Getting started section")..];
        assert!(
            section.contains(&format!("```rust,no_run\n{code}```\n")),
            "the README's Getting started is not examples/getting_started.rs"
        );
    }

    /// A socket future the driver drops (a dial given up) stops its task,
    /// and with it whatever the task holds (here a sender, standing for
    /// the socket of a connect still trying).
    #[tokio::test]
    async fn a_dropped_socket_future_stops_its_task() {
        let (held, released) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<io::Result<()>>().await
        });
        drop(joined(task));
        let wait = std::time::Duration::from_secs(15);
        let ended = tokio::time::timeout(wait, released).await;
        assert!(
            ended.is_ok(),
            "the task lives on after its future was dropped"
        );
    }
}
