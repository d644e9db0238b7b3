//! Callers waiting for a call slot on one connection are woken when a
//! call on it is dropped, whatever happened to the callers waiting on
//! another connection meanwhile.
//!
//! A completed call looks up its connection to wake the callers waiting
//! for room there only if the node counts some connection with waiters
//! (`RoomWaiters`, `shared/conn.rs`): a count too low loses the wake-up,
//! and the caller sleeps until its timeout. Here the callers on a second
//! connection are woken first, then a call on the first one is dropped;
//! its waiter must be woken still. (A count that forgot the first
//! connection's waiter when the second's were woken, say a flag for the
//! whole node, fails this test after 20 s; one never raised fails
//! `room_after_cancel.rs` as well.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use peernet_tokio::{Identity, Node, PeerId};

#[path = "common/deaf.rs"]
mod deaf;
#[path = "common/until.rs"]
mod until;
use until::until;

/// A call from `bob` to `peer`, spawned; `polled` is set once it ran.
fn spawn_call(bob: &Node, peer: PeerId, polled: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let bob = bob.clone();
    tokio::spawn(async move {
        polled.store(true, Ordering::SeqCst);
        let _ = bob.call(&peer, "x", b"", Duration::from_secs(60)).await;
    })
}

// (one thread: the sends below are all queued before the writer runs, and
// a spawned caller's first poll is over when the test looks at it)
#[tokio::test]
async fn a_caller_waiting_on_one_connection_is_woken_after_others_were() {
    let other = Identity::from_seed(&[4; 32]).peer_id();
    let (bob, _raw, first) = deaf::bob_and_deaf_peer(|c| {
        c.max_outbound_calls(1)
            // (room for the sends below: only the call slot blocks)
            .send_buffer(256 << 20)
            .trusting(other)
    })
    .await;
    let (_raw_other, second) = deaf::deaf_peer(&bob, 4).await;
    let calls_out = || bob.stats().core.counters.calls_out;

    // On each connection: a batch stuck in a write the peer never reads
    // (so no queue take wakes anyone), its one call slot taken, and a
    // caller waiting for it.
    let args = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    let mut slots = Vec::new();
    let mut waiting = Vec::new();
    for peer in [first, second] {
        for _ in 0..64 {
            bob.send(&peer, "x", &args).await.unwrap();
        }
        let taken = calls_out().started + 1;
        slots.push(spawn_call(&bob, peer, Arc::new(AtomicBool::new(false))));
        until("the call is queued", || calls_out().started == taken).await;
        let polled = Arc::new(AtomicBool::new(false));
        waiting.push(spawn_call(&bob, peer, polled.clone()));
        until("the next call was polled", || polled.load(Ordering::SeqCst)).await;
        assert_eq!(
            calls_out().started,
            taken,
            "the next call waits for the slot"
        );
    }

    // The second connection's slot is freed: its waiter is woken and
    // takes it.
    slots.pop().unwrap().abort();
    until("the second connection's waiter is woken", || {
        calls_out().cancelled == 1 && calls_out().started == 3
    })
    .await;
    // Then the first's: its waiter is woken too.
    slots.pop().unwrap().abort();
    until("the first connection's waiter is woken", || {
        calls_out().cancelled == 2 && calls_out().started == 4
    })
    .await;
    for caller in waiting {
        assert!(!caller.is_finished());
        caller.abort();
    }
    bob.shutdown().await;
}
