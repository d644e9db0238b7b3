//! A runtime of the application's own, written against the `Runtime`
//! trait, gets the trait's defaults: here, that host names are resolved
//! on the runtime's blocking pool, not on a thread per lookup.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use peernet_driver::{BoxFuture, Runtime, Transport};
use peernet_tokio::TokioRuntime;

/// tokio underneath, counting the blocking work it is given; `resolve`
/// is the trait's default.
#[derive(Clone, Default)]
struct Counting {
    inner: TokioRuntime,
    blocking: Arc<AtomicUsize>,
}

impl Runtime for Counting {
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
        self.blocking.fetch_add(1, Ordering::SeqCst);
        self.inner.spawn_blocking(work)
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        self.inner.sleep_until(at)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send {
        self.inner.connect(addr)
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
        self.inner.accept(listener).await
    }
}

#[tokio::test]
async fn the_default_resolver_runs_on_the_blocking_pool() {
    let rt = Counting::default();
    let addrs = rt.resolve("127.0.0.1:4000").await.unwrap();
    assert_eq!(addrs, ["127.0.0.1:4000".parse::<SocketAddr>().unwrap()]);
    assert_eq!(rt.blocking.load(Ordering::SeqCst), 1);
    // many lookups at once share the pool: no thread of their own each
    let lookups = (0..64).map(|i| rt.resolve(if i % 2 == 0 { "localhost:1" } else { "[::1]:1" }));
    for found in futures_util::future::join_all(lookups).await {
        assert!(!found.unwrap().is_empty());
    }
    assert_eq!(rt.blocking.load(Ordering::SeqCst), 65);
    let err = rt.resolve("no port here").await.unwrap_err();
    assert_eq!(rt.blocking.load(Ordering::SeqCst), 66, "{err}");
}
