//! A call that waits for room in a full send queue is woken when the
//! queue is taken, not once its bytes are written.
//!
//! The writer takes the whole queue as one batch; from then on the queue
//! is empty and has room. Callers blocked on it were woken only after the
//! batch was written: to a peer that reads nothing the write never ends,
//! so they slept, the queue empty, until their timeout or the stalled
//! transport's end (`idle_timeout`, 45 s). On a single-threaded runtime
//! the callers fill the queue before the writer runs, so the writer
//! always takes it whole, and the callers then stayed blocked with
//! nothing queued.
//!
//! The peer stops reading at a byte the test chooses (a [`WriteGate`] in
//! the node's runtime), which says when the writer is held: the test
//! awaits that, where it used to take half a second without progress for
//! the writer stuck, a guess a loaded machine could fool.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_tokio::{Identity, NodeConfig, TokioRuntime};

#[path = "common/until.rs"]
mod until;
#[path = "common/wrapped.rs"]
mod wrapped;

use until::until;
use wrapped::{Hooks, Wrapped, WriteGate};

/// What bob writes to the peer before it stops reading: the handshake
/// and a little of the first batch of calls.
static GATE: LazyLock<Arc<WriteGate>> = LazyLock::new(|| WriteGate::new(64 * 1024));

/// Bob's connections write through [`GATE`].
#[derive(Clone, Default)]
struct StopsReading;

impl Hooks for StopsReading {
    fn write_gate(&self) -> Option<Arc<WriteGate>> {
        Some(GATE.clone())
    }
}

#[tokio::test]
async fn callers_blocked_on_a_full_queue_are_woken_when_it_is_taken() {
    let bob_id = Identity::from_seed(&[2; 32]);
    let raw_id = Identity::from_seed(&[3; 32]);
    let raw_peer = raw_id.peer_id();
    let bob = peernet_driver::Node::<Wrapped<StopsReading>>::new(
        NodeConfig::new(bob_id).trusting(raw_peer),
    );
    let addr = bob.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // The raw peer connects, and reads nothing after the handshake.
    let _raw = RawPeer::dial(&TokioRuntime::default(), raw_id, bob.peer_id(), addr, &[]).await;
    until("the raw peer is connected", || bob.is_connected(&raw_peer)).await;

    // Calls to it, more than its connection takes: its send queue fills,
    // the writer takes it as a batch whose write the gate holds for good,
    // and the calls beyond wait for room.
    let args = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    let mut callers = Vec::new();
    for _ in 0..64 {
        let (bob, args) = (bob.clone(), args.clone());
        callers.push(tokio::spawn(async move {
            bob.call(&raw_peer, "x", args, Duration::from_secs(60))
                .await
        }));
    }
    tokio::time::timeout(Duration::from_secs(20), GATE.shut.notified())
        .await
        .expect("the writer is held");
    // The writer is stuck with its batch: the queue behind it fills
    // again only if the callers were woken as the batch was taken.
    let send_buffer = peernet_proto::Config::default().send_buffer;
    until("the queue behind the stuck batch fills", || {
        bob.stats().core.queued_bytes >= send_buffer
    })
    .await;
    assert!(callers.iter().all(|c| !c.is_finished()));
    for caller in callers {
        caller.abort();
    }
    bob.shutdown().await;
}
