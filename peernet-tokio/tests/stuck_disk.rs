//! A disk that hangs (blocking work whose end is never reported; a test
//! binary of its own, since the hang is switched on for the whole
//! process), and a slow one (per runtime).

#[path = "common/wrapped.rs"]
mod wrapped;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peernet_driver::Node;
use peernet_tokio::{AddrSource, DataDir, Identity, NodeConfig, PeerId};
use tokio::sync::Notify;
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

/// Each write to the disk takes 300 ms more; `handed` is told as one is
/// handed over.
#[derive(Clone, Default)]
struct SlowDisk {
    handed: Arc<Notify>,
}

impl Hooks for SlowDisk {
    fn slow(&self) -> Duration {
        Duration::from_millis(300)
    }

    fn blocking(&self) -> bool {
        self.handed.notify_one();
        false
    }
}

fn slow_node(dir: &std::path::Path) -> (Node<Wrapped<SlowDisk>>, Arc<Notify>, PeerId) {
    let peer = Identity::from_seed(&[2; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir)
        .unwrap()
        .trusting(peer)
        .shutdown_grace(Duration::from_millis(100));
    let rt = Wrapped::<SlowDisk>::default();
    let handed = rt.hooks.handed.clone();
    (Node::new_with(rt, config), handed, peer)
}

/// Once `shutdown` has returned, the directory is free for the next node
/// and the book on disk is the last one.
async fn shut_down_and_check(
    node: Node<Wrapped<SlowDisk>>,
    dir: &std::path::Path,
    peer: PeerId,
    addr: SocketAddr,
) {
    let closed = node.shutdown();
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("shutdown within 20 s");
    let data = DataDir::open(dir).unwrap();
    assert!(
        data.try_lock().is_ok(),
        "the data directory was still locked when shutdown returned"
    );
    let book = data.load_book().unwrap();
    assert!(book.get(&peer).iter().any(|(a, _)| *a == addr), "{book:?}");
}

/// A change during the shutdown is saved at the close: `shutdown` used to
/// return while that write still held the directory's lock, so that a
/// node started from the same directory next was refused as "in use".
#[tokio::test]
async fn a_save_at_the_close_is_done_when_shutdown_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _, peer) = slow_node(dir.path());
    let closed = node.shutdown();
    let addr = "192.0.2.1:4000".parse().unwrap();
    node.add_address(peer, addr, AddrSource::Application)
        .unwrap();
    drop(closed);
    shut_down_and_check(node, dir.path(), peer, addr).await;
}

/// A save already writing when the shutdown begins owes nothing more, so
/// the shutdown did not wait for it and used to return under it.
#[tokio::test]
async fn a_save_in_progress_is_done_when_shutdown_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (node, handed, peer) = slow_node(dir.path());
    let addr = "192.0.2.1:4000".parse().unwrap();
    node.add_address(peer, addr, AddrSource::Application)
        .unwrap();
    // the debounced save, handed to the (slow) disk
    tokio::time::timeout(Duration::from_secs(20), handed.notified())
        .await
        .expect("the book's save is handed to the disk");
    shut_down_and_check(node, dir.path(), peer, addr).await;
}

/// A disk that hangs from a moment the test chooses, for one node.
#[derive(Clone, Default)]
struct HangsLater {
    stuck: Arc<AtomicBool>,
}

impl Hooks for HangsLater {
    fn blocking(&self) -> bool {
        self.stuck.load(Ordering::SeqCst)
    }
}

/// `unpair` closes the revoked peer's connection at once, whatever the
/// disk does: a revocation is never held up by the trust file. A write
/// that hangs (the trust file's own, or a save of the address book
/// holding the lock that serialises the two) used to hold it up for as
/// long as it hung, the revoked peer connected, trusted and served all
/// along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_hangs_does_not_hold_up_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let bob_id = Identity::from_seed(&[12; 32]);
    let bob_peer = bob_id.peer_id();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rt = Wrapped::<HangsLater>::default();
    let stuck = rt.hooks.stuck.clone();
    let alice = Node::bind_with(rt, NodeConfig::from_data_dir(dir.path()).unwrap(), any)
        .await
        .unwrap();
    alice.pair(bob_peer, None).await.unwrap();
    let bob_config = NodeConfig::new(bob_id).trusting(alice.peer_id());
    let bob = peernet_tokio::Node::bind(bob_config, any).await.unwrap();
    alice
        .connect(bob_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    let events = bob.events();
    stuck.store(true, Ordering::SeqCst);
    // (the disk never answers: the unpair's file write never ends)
    let unpairing = alice.clone();
    tokio::spawn(async move { unpairing.unpair(&bob_peer).await });
    let revoked = async {
        loop {
            if let peernet_tokio::NodeEvent::Disconnected { reason, .. } =
                events.recv().await.unwrap()
            {
                return reason;
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(20), revoked)
        .await
        .expect("the revoked peer still connected 20 s after the unpair");
    assert!(
        matches!(
            reason,
            peernet_tokio::CloseReason::Goodbye {
                code: peernet_tokio::GoodbyeCode::Revoked,
                ..
            }
        ),
        "{reason:?}"
    );
    assert!(!alice.trust().contains(&bob_peer));
    assert!(!alice.is_connected(&bob_peer));
    bob.shutdown().await;
}
