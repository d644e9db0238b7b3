//! The one seam between the driver and an async runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

/// The read half of a transport.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a transport.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A future the runtime can run.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a runtime lends the driver: a clock, timers, tasks and TCP.
///
/// Each runtime crate implements this in about a hundred lines; the whole
/// `Node` is written once against it.
pub trait Runtime: Clone + Default + Send + Sync + 'static {
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;

    /// The runtime's clock (tokio's, so that paused-time tests work).
    fn now(&self) -> Instant;
    /// Runs `future` as a task of its own.
    fn spawn(&self, future: BoxFuture<()>);
    /// Completes at `at`.
    fn sleep_until(&self, at: Instant) -> BoxFuture<()>;
    /// Opens a TCP connection (with `TCP_NODELAY`) and splits it.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<(BoxRead, BoxWrite)>>;
    /// Binds a TCP listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Self::Listener>>;
    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// Accepts one connection (with `TCP_NODELAY`) and splits it.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(BoxRead, BoxWrite, SocketAddr)>> + Send;
}
