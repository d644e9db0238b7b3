//! A runtime of the application's own, written against the `Runtime`
//! trait, gets the trait's defaults: here, that host names are resolved
//! on the runtime's blocking pool, not on a thread per lookup.

#[path = "common/wrapped.rs"]
mod wrapped;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peernet_driver::Runtime;
use wrapped::{Hooks, Wrapped};

/// Counts the blocking work the runtime is given.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Hooks for Counting {
    fn blocking(&self) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        false
    }
}

#[tokio::test]
async fn the_default_resolver_runs_on_the_blocking_pool() {
    let rt = Wrapped::<Counting>::default();
    let addrs = rt.resolve("127.0.0.1:4000").await.unwrap();
    assert_eq!(addrs, ["127.0.0.1:4000".parse::<SocketAddr>().unwrap()]);
    assert_eq!(rt.hooks.0.load(Ordering::SeqCst), 1);
    // many lookups at once share the pool: no thread of their own each
    let lookups = (0..64).map(|i| rt.resolve(if i % 2 == 0 { "localhost:1" } else { "[::1]:1" }));
    for found in futures_util::future::join_all(lookups).await {
        assert!(!found.unwrap().is_empty());
    }
    assert_eq!(rt.hooks.0.load(Ordering::SeqCst), 65);
    let err = rt.resolve("no port here").await.unwrap_err();
    assert_eq!(rt.hooks.0.load(Ordering::SeqCst), 66, "{err}");
}
