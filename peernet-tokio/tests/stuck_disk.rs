//! A disk that hangs: blocking work whose end is never reported. A test
//! binary of its own, since the hang is switched on for the whole process.

#[path = "common/wrapped.rs"]
mod wrapped;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peernet_tokio::{AddrSource, Identity, NodeConfig};
use wrapped::{Hooks, Wrapped};

/// While set, blocking work never reports its end.
static STUCK: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Default)]
struct StuckDisk;

impl Hooks for StuckDisk {
    fn blocking(&self) -> bool {
        STUCK.load(Ordering::SeqCst)
    }
}

/// `shutdown` waits for a pending save of the address book (so the book
/// is on disk once it returns), but within the grace period (at least a
/// second for writes): a save that never ends used to hold the shutdown
/// for good.
#[tokio::test]
async fn a_save_that_never_ends_does_not_hold_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Identity::from_seed(&[2; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trusting(peer)
        .shutdown_grace(Duration::from_millis(100));
    let node = peernet_driver::Node::<Wrapped<StuckDisk>>::new(config);
    // a change to save (debounced: still pending at the shutdown)
    let addr = "192.0.2.1:4000".parse().unwrap();
    node.add_address(peer, addr, AddrSource::Application)
        .unwrap();
    STUCK.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(20), node.shutdown()).await;
    assert!(
        closed.is_ok(),
        "shutdown waited 20 s for a save that never ends"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
