//! The one seam between the driver and an async runtime, and the byte
//! stream every connection is driven through.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::AsyncReadExt as _;

/// The read half of a transport.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a transport.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A boxed future the runtime can run.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a runtime lends the driver (in the style of quinn's `Runtime`): a
/// clock, timers, tasks, a pool for blocking work and TCP.
///
/// Each runtime crate implements this in well under a hundred lines; the
/// whole [`Node`](crate::Node) is written once against it. `Default` is
/// the runtime the caller is on (tokio: the current runtime's handle).
pub trait Runtime: Clone + Default + Send + Sync + 'static {
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;

    /// The runtime's clock; [`Runtime::sleep_until`] is on it (tokio's,
    /// so that paused-time tests work).
    fn now(&self) -> Instant;

    /// Runs `future` as a detached task of its own.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs `work` on the runtime's pool for blocking code (file I/O, an
    /// fsync) and completes with its result, so that it never stalls the
    /// threads that drive connections. A panic in `work` resumes in the
    /// awaiting task.
    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Completes at `at` (at once if it has passed).
    fn sleep_until(&self, at: Instant) -> BoxFuture<()>;

    /// Resolves `host`, a `"name:port"` string, to the addresses to dial,
    /// in the order to try them, without blocking the async threads.
    ///
    /// The default runs the system resolver (`std::net::ToSocketAddrs`)
    /// through [`Runtime::spawn_blocking`], so lookups share the
    /// runtime's pool and its bound rather than a thread each; the runtime
    /// crates use their runtime's resolver (tokio's `lookup_host`,
    /// async-net's `resolve`, both on the blocking pool).
    fn resolve(&self, host: &str) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send {
        let host = host.to_owned();
        self.spawn_blocking(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&host).map(Iterator::collect)
        })
    }

    /// Opens a TCP connection to `addr`, its options set by
    /// [`socket_start::take_up`](crate::socket_start::take_up)
    /// (`TCP_NODELAY`, and a bound on what the kernel holds unsent).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send;

    /// Binds a TCP listener to `addr` whose accept queue holds `backlog`
    /// connections (the kernel may cap it, e.g. at `net.core.somaxconn`).
    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Accepts one TCP connection on `listener`, its options set as
    /// [`Runtime::connect`]'s.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<Transport>> + Send;
}

/// A runtime that can drive a stream of type `S` the application opened
/// itself: a Unix socket, a TLS stream, a relayed stream.
///
/// `peernet-tokio` implements it for every `tokio::io::AsyncRead +
/// AsyncWrite` stream; `peernet-smol` and `peernet-async-std` for every
/// `futures_io::AsyncRead + AsyncWrite` stream. So
/// [`Node::accept_stream`](crate::Node::accept_stream) and
/// [`Node::connect_stream`](crate::Node::connect_stream) take the
/// runtime's own stream type, with no adapter in sight.
pub trait WrapStream<S>: Runtime {
    /// Splits `stream` into the halves a connection's reader and writer
    /// own.
    fn wrap(stream: S) -> Transport;
}

/// A connected socket not split yet, as a runtime hands it over when it
/// can also refuse a connection with a reset ([`Transport::from_socket`]).
pub trait Socket: Send + 'static {
    /// The halves a connection's reader and writer own.
    ///
    /// The driver closes the write half (`close`) once its last bytes are
    /// written, and the reader reads until the peer's end of stream; when
    /// it gives up instead (a peer that takes none of our bytes, the
    /// linger over, a broken transport) it drops a half without that. A
    /// socket whose halves are dropped so should close with a reset, as
    /// [`Socket::reset`] does: a FIN would leave the kernel holding the
    /// socket and every byte queued before the FIN for as long as the
    /// peer keeps its end open without reading (the TCP sockets of
    /// `peernet-tokio` and `peernet-smol` do so).
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite);

    /// Closes the socket at once with a TCP reset (`SO_LINGER` 0) rather
    /// than a FIN: the dialer learns at once, and this side keeps no
    /// `TIME_WAIT` (or orphaned `FIN_WAIT`) state behind. The driver does
    /// this only to a connection it refuses at accept, before a byte was
    /// read or written. If the option cannot be set, the socket closes as
    /// usual.
    fn reset(self: Box<Self>);
}

/// One byte stream, split into the halves a connection's reader and writer
/// tasks own, with the peer's address when there is one.
pub struct Transport {
    halves: Halves,
    remote_addr: Option<SocketAddr>,
}

enum Halves {
    Split(BoxRead, BoxWrite),
    Whole(Box<dyn Socket>),
}

impl Transport {
    /// A transport from halves owned separately (a TCP stream split by its
    /// runtime, with no lock between the halves).
    pub fn new(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        remote_addr: Option<SocketAddr>,
    ) -> Transport {
        Transport {
            halves: Halves::Split(Box::new(reader), Box::new(writer)),
            remote_addr,
        }
    }

    /// A transport over a socket that is split only once the driver keeps
    /// the connection, and is reset if the driver refuses it at accept
    /// (what the runtime crates do for TCP).
    pub fn from_socket(socket: impl Socket, remote_addr: Option<SocketAddr>) -> Transport {
        Transport {
            halves: Halves::Whole(Box::new(socket)),
            remote_addr,
        }
    }

    /// A transport over any futures-io stream, split with
    /// [`futures_util::io::AsyncReadExt::split`].
    pub fn split<S>(stream: S) -> Transport
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (reader, writer) = stream.split();
        Transport::new(reader, writer, None)
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The two halves.
    pub fn into_parts(self) -> (BoxRead, BoxWrite) {
        match self.halves {
            Halves::Split(reader, writer) => (reader, writer),
            Halves::Whole(socket) => socket.split(),
        }
    }

    /// Closes the transport with a reset if it is a [`Socket`] (see
    /// [`Socket::reset`]); any other closes as it does when dropped.
    pub fn reset(self) {
        if let Halves::Whole(socket) = self.halves {
            socket.reset();
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}
