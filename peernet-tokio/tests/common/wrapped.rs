//! A runtime of the test's own over tokio, written against the `Runtime`
//! trait as an application's would be: tokio underneath, with hooks that
//! make it behave as a given platform or a failing disk does. Test files
//! take it with `#[path = "common/wrapped.rs"] mod wrapped;`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use peernet_driver::{BoxFuture, Runtime, Transport};
use peernet_tokio::TokioRuntime;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// What the wrapped runtime does differently from tokio's.
pub(crate) trait Hooks: Clone + Default + Send + Sync + 'static {
    /// Called as blocking work is handed over; true: its end is never
    /// reported (a disk that hangs).
    fn blocking(&self) -> bool {
        false
    }

    /// Called as blocking work is handed over: how much longer than its
    /// own the work takes (a slow disk).
    fn slow(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Called as blocking work is handed over: a future the work waits
    /// for before it starts, if any (a disk that answers when the test
    /// lets it, one write at a time).
    fn gate(&self) -> Option<BoxFuture<()>> {
        None
    }

    /// Called with each sleep the node asks for, with how long it is;
    /// true: the sleep never ends (a timer the test keeps from firing,
    /// so that what must not wait for it is seen not to).
    fn held(&self, _wait: std::time::Duration) -> bool {
        false
    }

    /// Called with each accepted stream; true: the accept fails with
    /// `ECONNABORTED` instead, as BSD's does for a connection reset while
    /// it waited in the queue.
    fn aborted(&self, _stream: &tokio::net::TcpStream) -> bool {
        false
    }

    /// Called with each connect the node makes; true: it never completes
    /// (a host that drops our SYNs), whatever the timeouts.
    fn unanswered(&self, _addr: SocketAddr) -> bool {
        false
    }

    /// Called with each accepted stream: the gate its writes pass, if
    /// any (a peer that stops reading at a point the test chooses).
    fn write_gate(&self) -> Option<std::sync::Arc<WriteGate>> {
        None
    }
}

/// Lets the first `allowed` bytes of a connection's writes through, then
/// holds every write pending for good, as a socket whose peer stopped
/// reading does once the kernel's buffers are full, but at a byte the
/// test chose and with a signal when it happens: the test awaits the
/// writer stuck instead of guessing it from a while without progress.
#[allow(dead_code)] // (only the test binaries that hold writes use it)
pub(crate) struct WriteGate {
    left: std::sync::Mutex<usize>,
    /// Raised when a write was first held.
    pub(crate) shut: tokio::sync::Notify,
}

#[allow(dead_code)] // (only the test binaries that hold writes use it)
impl WriteGate {
    /// A gate that lets `allowed` bytes through.
    pub(crate) fn new(allowed: usize) -> std::sync::Arc<WriteGate> {
        std::sync::Arc::new(WriteGate {
            left: std::sync::Mutex::new(allowed),
            shut: tokio::sync::Notify::new(),
        })
    }
}

/// A write half behind a [`WriteGate`].
struct Gated<W> {
    inner: W,
    gate: std::sync::Arc<WriteGate>,
}

impl<W: futures_util::AsyncWrite + Unpin> futures_util::AsyncWrite for Gated<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let left = *self.gate.left.lock().unwrap();
        if left == 0 {
            // (never woken: the peer never reads again)
            self.gate.shut.notify_one();
            return std::task::Poll::Pending;
        }
        let n = buf.len().min(left);
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let std::task::Poll::Ready(Ok(n)) = written {
            *self.gate.left.lock().unwrap() -= n;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// tokio, with `H`'s hooks; `resolve` is the trait's default.
#[derive(Clone, Default)]
pub(crate) struct Wrapped<H> {
    inner: TokioRuntime,
    pub(crate) hooks: H,
}

impl<H: Hooks> Runtime for Wrapped<H> {
    type Listener = tokio::net::TcpListener;

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(future);
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let stuck = self.hooks.blocking();
        let slow = self.hooks.slow();
        let work = move || {
            if !slow.is_zero() {
                // (the disk's own time, on the blocking thread)
                std::thread::sleep(slow);
            }
            work()
        };
        // (started at once, as tokio's is, unless a gate holds it)
        let inner = self.inner.clone();
        let started = match self.hooks.gate() {
            None => Ok(self.inner.spawn_blocking(work)),
            Some(gate) => Err((gate, work)),
        };
        async move {
            if stuck {
                std::future::pending::<()>().await;
            }
            match started {
                Ok(done) => done.await,
                Err((gate, work)) => {
                    gate.await;
                    inner.spawn_blocking(work).await
                }
            }
        }
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        if self.hooks.held(at.saturating_duration_since(self.now())) {
            return Box::pin(std::future::pending());
        }
        self.inner.sleep_until(at)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send {
        let unanswered = self.hooks.unanswered(addr);
        let connecting = self.inner.connect(addr);
        async move {
            if unanswered {
                std::future::pending::<()>().await;
            }
            connecting.await
        }
    }

    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        self.inner.bind(addr, backlog)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        TokioRuntime::local_addr(listener)
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<Transport> {
        let (stream, remote) = listener.accept().await?;
        if self.hooks.aborted(&stream) {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let (read, write) = stream.into_split();
        let write = write.compat_write();
        Ok(match self.hooks.write_gate() {
            Some(gate) => Transport::new(read.compat(), Gated { inner: write, gate }, Some(remote)),
            None => Transport::new(read.compat(), write, Some(remote)),
        })
    }
}
