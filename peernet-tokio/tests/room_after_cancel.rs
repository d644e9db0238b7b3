//! A call that waits for one of its connection's `max_outbound_calls`
//! slots is woken when a call on it is dropped (cancelled), not only when
//! one is answered.
//!
//! Review s47 (revs): callers blocked on a connection wait on that
//! connection alone, woken by its queue being taken, its calls resolving
//! and its close. A call its caller drops frees a slot too; the CANCEL it
//! queues would wake them only once the writer took it, which, behind a
//! batch stuck in a write to a peer that reads nothing, is never. What
//! wakes them is the core's `CallResult` for the cancelled call
//! (`shared/drain.rs`): without that wake-up this test waits its 20 s and
//! fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[path = "common/deaf.rs"]
mod deaf;
#[path = "common/until.rs"]
mod until;
use until::until;

// (one thread: the sends below are all queued before the writer runs, and
// a spawned caller's first poll is over when the test looks at it)
#[tokio::test]
async fn a_caller_waiting_for_a_call_slot_is_woken_when_a_call_is_dropped() {
    // The raw peer connects and then reads nothing.
    let (bob, _raw, raw_peer) = deaf::bob_and_deaf_peer(|c| {
        c.max_outbound_calls(1)
            // (room for the sends below: only the call slot blocks)
            .send_buffer(256 << 20)
    })
    .await;

    // 32 MiB queued at once (`send` does not yield): the writer takes it
    // as one batch, far more than the sockets hold, and its write to a
    // peer that reads nothing never ends.
    let args = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    for _ in 0..64 {
        bob.send(&raw_peer, "x", &args).await.unwrap();
    }
    let calls_out = || bob.stats().core.counters.calls_out;
    let call = |waiting: Arc<AtomicBool>| {
        let bob = bob.clone();
        async move {
            waiting.store(true, Ordering::SeqCst);
            bob.call(&raw_peer, "x", b"", Duration::from_secs(60)).await
        }
    };
    // The one slot, taken.
    let first = tokio::spawn(call(Arc::new(AtomicBool::new(false))));
    until("the first call is queued", || calls_out().started == 1).await;
    // A second call waits for it.
    let polled = Arc::new(AtomicBool::new(false));
    let second = tokio::spawn(call(polled.clone()));
    until("the second call was polled", || {
        polled.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(calls_out().started, 1, "the second call waits for the slot");

    // The first caller stops waiting: its call is cancelled, its slot
    // free, and the second call is made at once.
    first.abort();
    until("the first call is cancelled", || calls_out().cancelled == 1).await;
    until("the second call is queued in the slot freed", || {
        calls_out().started == 2
    })
    .await;
    assert!(!second.is_finished());
    second.abort();
    bob.shutdown().await;
}
