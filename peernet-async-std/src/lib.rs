//! peernet on async-std: default-deny, peer-to-peer RPC between
//! mutually-suspicious peers addressed by ed25519 public keys.
//!
//! **async-std is discontinued upstream** (its maintainers point to smol;
//! see [RUSTSEC-2025-0052](https://rustsec.org/advisories/RUSTSEC-2025-0052)).
//! This crate exists for applications that still run on it; new code should
//! use `peernet-smol`, which offers the same API.
//!
//! A peer is addressed by its [`PeerId`]; a node talks only to peers in its
//! trust list, and only through the handles it exposes. async-std runs on
//! async-io, so this crate is `peernet-smol`'s async-io runtime
//! ([`AsyncIoRuntime`]) with tasks spawned by `async_std::task::spawn`; the
//! API is the runtime-agnostic [`peernet_driver`]'s.
//!
//! ```
//! use std::time::Duration;
//! use peernet_async_std::{Identity, Node, NodeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> { async_std::task::block_on(async {
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
//! Streams the application opened itself (any `futures_io::AsyncRead +
//! AsyncWrite`, such as async-std's own `UnixStream` or a TLS stream) go
//! through [`Node::connect_stream`](peernet_driver::Node::connect_stream)
//! and [`Node::accept_stream`](peernet_driver::Node::accept_stream).
//! async-std's own `TcpStream` does not end its sending side when it is
//! closed (its `close` only flushes): brought this way, a connection the
//! node closes reaches the peer as its GOODBYE, and the end of the stream
//! follows only when the node lets go of the stream (the peer's end of
//! stream, or the linger). The node's own TCP connections
//! ([`Node::connect`](peernet_driver::Node::connect), and the ones it
//! accepts) end their sending side as they close.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

use std::future::Future;

pub use peernet_driver::api::*;
// (named again past the glob for docs.rs's feature badges: the driver's
// own `doc(cfg)` is not seen when this crate is documented)
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
pub use peernet_driver::discovery;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use peernet_driver::{Service, ServiceError};
pub use peernet_smol::{AsyncIoRuntime, Spawner};

/// A peernet node on async-std: [`peernet_driver::Node`] on [`AsyncStdRuntime`].
///
/// Its methods are documented on [`peernet_driver::Node`] (a `cargo doc
/// --no-deps` of this crate alone shows none of them here: document
/// `peernet-driver` with it); `peernet_tokio::Node`'s docs list where an
/// application starts.
pub type Node = peernet_driver::Node<AsyncStdRuntime>;

/// The async-std implementation of [`peernet_driver::Runtime`]: async-io
/// (async-std's reactor) for TCP and timers, async-std's tasks.
pub type AsyncStdRuntime = AsyncIoRuntime<AsyncStdSpawner>;

/// Spawns with `async_std::task::spawn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdSpawner;

impl Spawner for AsyncStdSpawner {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        async_std::task::spawn(future);
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        async_std::task::spawn_blocking(work)
    }
}

/// The crate README's example, compiled as a doctest so that it cannot
/// drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
