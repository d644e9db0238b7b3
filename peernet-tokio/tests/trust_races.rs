//! Trust changes racing each other, the node's close and the runtime's
//! end: what `pair` and `unpair` return says what the running node holds.
//! The races are put in order by the changes' turns and by a disk whose
//! writes wait until the test lets them through, never by sleeping.

#[path = "common/wrapped.rs"]
mod wrapped;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use peernet_driver::{BoxFuture, Node, TrustChangeError};
use peernet_tokio::{DataDir, Identity, NodeConfig, PeerId};
use tokio::sync::Semaphore;
use wrapped::{Hooks, Wrapped};

/// A disk whose writes each wait at a gate for the test to let them
/// through, and say when they have reached it.
#[derive(Clone)]
struct GatedDisk {
    /// One permit a write.
    gate: Arc<Semaphore>,
    /// A permit for each write that reached the gate.
    handed: Arc<Semaphore>,
}

impl Default for GatedDisk {
    fn default() -> Self {
        GatedDisk {
            gate: Arc::new(Semaphore::new(0)),
            handed: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Hooks for GatedDisk {
    fn gate(&self) -> Option<BoxFuture<()>> {
        self.handed.add_permits(1);
        let gate = self.gate.clone();
        Some(Box::pin(async move {
            gate.acquire().await.expect("never closed").forget();
        }))
    }
}

impl GatedDisk {
    /// Waits until a write has reached the gate.
    async fn write_waiting(&self) {
        let handed = tokio::time::timeout(BOUND, self.handed.acquire());
        let handed = handed
            .await
            .expect("a write reached the disk within the bound");
        handed.expect("never closed").forget();
    }

    /// Lets `n` writes through.
    fn let_through(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Lets the next write through once it has reached the gate.
    async fn let_next_write_through(&self) {
        self.write_waiting().await;
        self.let_through(1);
    }
}

/// How long a test waits for what it awaits before it fails (a bound on
/// a failure only: each wait ends as soon as the event comes).
const BOUND: Duration = Duration::from_secs(30);

fn peer(seed: u8) -> PeerId {
    Identity::from_seed(&[seed; 32]).peer_id()
}

/// Polls `change` once: a trust change takes its turn (and an `unpair`
/// revokes the peer in the run); true if it is still pending.
fn polled_once<F: Future + ?Sized>(change: Pin<&mut F>) -> bool {
    change
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending()
}

/// A node over a data directory, on a disk the test lets through.
fn gated_node(dir: &std::path::Path) -> (Node<Wrapped<GatedDisk>>, GatedDisk) {
    let rt = Wrapped::<GatedDisk>::default();
    let disk = rt.hooks.clone();
    let config = NodeConfig::from_data_dir(dir)
        .unwrap()
        .shutdown_grace(Duration::from_millis(100));
    (Node::new_with(rt, config), disk)
}

/// An `unpair` whose turn to write the file comes after the node has
/// closed: the peer is revoked in the run (at the unpair's first poll),
/// the closed node writes no more to its data directory, and the error
/// says both. It used to be `Closed`, which says nothing changed: the
/// caller could not tell that the peer was revoked.
#[tokio::test]
async fn an_unpair_overtaken_by_the_close_says_the_peer_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = gated_node(dir.path());
    let (revoked, other) = (peer(2), peer(3));
    let (paired, ()) = tokio::join!(node.pair(revoked, None), disk.let_next_write_through());
    assert!(paired.unwrap());
    // A change of another peer takes the turns' lead, its write held.
    let mut pair = Box::pin(node.pair(other, None));
    assert!(polled_once(pair.as_mut()));
    disk.write_waiting().await;
    // The unpair, next: the peer revoked in the run at once.
    let mut unpair = Box::pin(node.unpair(&revoked));
    assert!(polled_once(unpair.as_mut()));
    assert!(!node.trust().contains(&revoked), "not revoked at once");
    // The node closes before the unpair's turn comes.
    let events = node.events();
    drop(node.shutdown());
    let closed = async { while events.recv().await.is_ok() {} };
    tokio::time::timeout(BOUND, closed)
        .await
        .expect("the node closed within the bound");
    disk.let_through(16);
    pair.await
        .expect("written while the node held its directory");
    let unpaired = unpair.await;
    println!("unpair: {unpaired:?}");
    assert!(
        matches!(
            unpaired,
            Err(TrustChangeError::RevokedNotSaved { changed: true, .. })
        ),
        "the error must say the peer was trusted and is revoked, and the file not updated: \
         {unpaired:?}"
    );
    assert!(!node.trust().contains(&revoked), "the run trusts the peer");
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(on_disk.contains(&revoked), "the closed node wrote its file");
}

/// A `pair` asked for before an `unpair` of the same peer, its write
/// under way when the `unpair` revoked the peer, trusts it again in the
/// run when its write ends: it used to, for as long as the unpair's own
/// write then took (for good on a disk that hangs), so that the peer
/// could connect and be served again after `unpair` had closed its
/// connection. The later change wins, in the run at once.
#[tokio::test]
async fn a_pair_asked_before_an_unpair_does_not_trust_the_peer_again() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = gated_node(dir.path());
    let revoked = peer(2);
    let mut pair = Box::pin(node.pair(revoked, None));
    assert!(polled_once(pair.as_mut()));
    disk.write_waiting().await;
    let mut unpair = Box::pin(node.unpair(&revoked));
    assert!(polled_once(unpair.as_mut()));
    // the pair's write ends; the unpair's is held
    disk.let_through(1);
    pair.await.expect("pair");
    assert!(
        !node.trust().contains(&revoked),
        "the pair asked for first trusted the revoked peer again"
    );
    disk.let_next_write_through().await;
    assert!(
        unpair.await.expect("unpair"),
        "asked for after the pair, the unpair found the peer trusted"
    );
    assert!(!node.trust().contains(&revoked));
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert!(
        !on_disk.contains(&revoked),
        "the file still trusts the peer"
    );
    // a pair asked for after the unpair trusts the peer again
    let (again, ()) = tokio::join!(node.pair(revoked, None), disk.let_next_write_through());
    assert!(again.expect("pair again"));
    assert!(node.trust().contains(&revoked));
}

/// The runtime drops a trust change (it shuts down): `Dropped` says
/// what the run holds, an `unpair` made (at its first poll) and a `pair`
/// not made, even one dropped with its write under way. Without a data
/// directory an `unpair` used to wait for its task to revoke the peer:
/// dropped, it left the peer trusted, though `Dropped` said it revoked.
#[test]
fn a_change_the_runtime_drops_says_what_the_run_holds() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (kept, paired) = (peer(2), peer(3));
    let node = {
        let _on = runtime.enter();
        let config = NodeConfig::new(Identity::from_seed(&[1; 32])).trusting(kept);
        peernet_tokio::Node::new(config)
    };
    let mut unpair = Box::pin(node.unpair(&kept));
    assert!(polled_once(unpair.as_mut()));
    let mut pair = Box::pin(node.pair(paired, None));
    assert!(polled_once(pair.as_mut()));
    // (the runtime never ran their tasks: dropped with it)
    drop(runtime);
    let unpaired = futures_util::FutureExt::now_or_never(unpair).expect("answered");
    assert!(
        matches!(unpaired, Err(TrustChangeError::Dropped)),
        "{unpaired:?}"
    );
    assert!(
        !node.trust().contains(&kept),
        "the unpair was dropped with the peer still trusted in the run"
    );
    let pair_result = futures_util::FutureExt::now_or_never(pair).expect("answered");
    assert!(
        matches!(pair_result, Err(TrustChangeError::Dropped)),
        "{pair_result:?}"
    );
    assert!(!node.trust().contains(&paired));

    // A `pair` whose write is under way when the runtime drops it.
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (node, disk) = {
        let _on = runtime.enter();
        gated_node(dir.path())
    };
    let mut pair = Box::pin(node.pair(paired, None));
    assert!(polled_once(pair.as_mut()));
    runtime.block_on(disk.write_waiting());
    drop(runtime);
    let pair_result = futures_util::FutureExt::now_or_never(pair).expect("answered");
    assert!(
        matches!(pair_result, Err(TrustChangeError::Dropped)),
        "{pair_result:?}"
    );
    assert!(
        !node.trust().contains(&paired),
        "Dropped, yet made in the run"
    );
}

/// Without a data directory too, a `pair` asked for before an `unpair`
/// of the same peer, its task not yet run when the `unpair` revoked the
/// peer, does not trust it again; and the two return what they would
/// have made in the order asked: the `pair` found the peer untrusted,
/// the `unpair` trusted.
#[test]
fn without_a_data_directory_the_later_unpair_wins_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let revoked = peer(2);
    let node = {
        let _on = runtime.enter();
        peernet_tokio::Node::new(NodeConfig::new(Identity::from_seed(&[1; 32])))
    };
    let mut pair = Box::pin(node.pair(revoked, None));
    assert!(polled_once(pair.as_mut()));
    let mut unpair = Box::pin(node.unpair(&revoked));
    assert!(polled_once(unpair.as_mut()));
    // (the tasks run now, in their turns)
    assert!(runtime.block_on(pair).expect("pair"), "trusted before");
    assert!(
        !node.trust().contains(&revoked),
        "the pair asked for first trusted the revoked peer again"
    );
    assert!(
        runtime.block_on(unpair).expect("unpair"),
        "asked for after the pair, the unpair found the peer untrusted"
    );
    assert!(!node.trust().contains(&revoked));
}

/// A `pair` whose caller stops waiting while its write waits on the disk
/// (a timeout, a `select!`: the future dropped at that await) is made
/// whole by its own task, in the file and in the run, once the disk
/// answers: the two never disagree until the next start. (Made so before
/// s56 by the change's own task; checked s56 with the change made in the
/// caller's future instead: the dropped pair was lost.)
#[tokio::test]
async fn a_pair_dropped_mid_write_is_made_in_the_file_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = gated_node(dir.path());
    let (dropped, next) = (peer(2), peer(3));
    let mut pair = Box::pin(node.pair(dropped, None));
    assert!(polled_once(pair.as_mut()));
    disk.write_waiting().await;
    drop(pair);
    disk.let_through(1);
    // the next change takes its turn after the dropped one's
    let (paired, ()) = tokio::join!(node.pair(next, None), disk.let_next_write_through());
    assert!(paired.unwrap());
    let on_disk = DataDir::open(dir.path()).unwrap().load_trust().unwrap();
    assert_eq!(
        on_disk.contains(&dropped),
        node.trust().contains(&dropped),
        "the file and the run disagree"
    );
    assert!(node.trust().contains(&dropped), "the dropped pair was lost");
}
