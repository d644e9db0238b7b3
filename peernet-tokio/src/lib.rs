//! peernet on tokio.
//!
//! A peer is addressed by its ed25519 public key ([`PeerId`]); a node
//! talks only to peers in its trust list, and only through the handles it
//! exposes. This crate is tokio plumbing around the runtime-agnostic
//! [`peernet_driver`]; `peernet-smol` and `peernet-async-std` offer the
//! same API.
//!
//! ```no_run
//! use std::time::Duration;
//! use peernet_tokio::{Identity, Node, NodeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alice_id = Identity::from_seed(&[1; 32]);
//! let bob_id = Identity::from_seed(&[2; 32]);
//! let (alice_peer, bob_peer) = (alice_id.peer_id(), bob_id.peer_id());
//!
//! // Each side trusts the other; nothing else gets in.
//! let bob = Node::bind(NodeConfig::new(bob_id).trusting(alice_peer), "127.0.0.1:0".parse()?).await?;
//! bob.expose("echo", |_caller, args| async move { Ok(args) })?;
//!
//! let alice = Node::bind(NodeConfig::new(alice_id).trusting(bob_peer), "127.0.0.1:0".parse()?).await?;
//! alice.connect(bob_peer, bob.local_addr().unwrap()).await?;
//! let reply = alice.call(&bob_peer, "echo", &b"hi"[..], Duration::from_secs(5)).await?;
//! assert_eq!(&reply[..], b"hi");
//! alice.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Streams the application opened itself (Unix sockets, TLS, relays) go
//! through [`Node::connect_stream`] / [`Node::accept_stream`]; a tokio
//! stream is adapted with [`TokioStreamExt::compat`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

pub use peernet_driver::*;
/// Adapts a tokio `AsyncRead + AsyncWrite` stream for
/// [`Node::connect_stream`] / [`Node::accept_stream`]: `stream.compat()`.
pub use tokio_util::compat::TokioAsyncReadCompatExt as TokioStreamExt;

/// A peernet node on tokio.
pub type Node = peernet_driver::Node<TokioRuntime>;

/// The tokio implementation of [`peernet_driver::Runtime`]. Tasks go to
/// the current tokio runtime; the clock is tokio's, so tests with paused
/// time work.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRuntime;

fn split(stream: TcpStream) -> io::Result<(BoxRead, BoxWrite)> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    Ok((Box::new(read.compat()), Box::new(write.compat_write())))
}

impl peernet_driver::Runtime for TokioRuntime {
    type Listener = TcpListener;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<(BoxRead, BoxWrite)>> {
        Box::pin(async move { split(TcpStream::connect(addr).await?) })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(&self, listener: &TcpListener) -> io::Result<(BoxRead, BoxWrite, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        let (read, write) = split(stream)?;
        Ok((read, write, addr))
    }
}
