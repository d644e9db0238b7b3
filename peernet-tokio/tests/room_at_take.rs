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

use std::time::Duration;

#[path = "common/deaf.rs"]
mod deaf;
#[path = "common/until.rs"]
mod until;

#[tokio::test]
async fn callers_blocked_on_a_full_queue_are_woken_when_it_is_taken() {
    // The raw peer connects and then reads nothing.
    let (bob, _raw, raw_peer) = deaf::bob_and_deaf_peer(|c| c).await;

    // Calls to it, more than its connection takes: its send queue fills,
    // the writer's batch sticks in a write the peer never reads, and the
    // calls beyond wait for room.
    let args = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    let mut callers = Vec::new();
    for _ in 0..64 {
        let (bob, args) = (bob.clone(), args.clone());
        callers.push(tokio::spawn(async move {
            bob.call(&raw_peer, "x", args, Duration::from_secs(60))
                .await
        }));
    }
    // Once the writer is stuck (nothing moves for half a second), the
    // queue behind its batch is full again: the callers were woken as it
    // was taken.
    let send_buffer = peernet_proto::Config::default().send_buffer;
    let moving = || {
        let s = bob.stats().core;
        (s.queued_bytes, s.counters.bytes_out)
    };
    let settled = async {
        let (mut last, mut since) = (moving(), std::time::Instant::now());
        while since.elapsed() < Duration::from_millis(500) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if moving() != last {
                (last, since) = (moving(), std::time::Instant::now());
            }
        }
        last.0
    };
    let queued = tokio::time::timeout(Duration::from_secs(20), settled)
        .await
        .expect("the writer gets stuck");
    assert!(
        queued >= send_buffer,
        "callers wait for room while the queue holds {queued} bytes"
    );
    assert!(callers.iter().all(|c| !c.is_finished()));
    for caller in callers {
        caller.abort();
    }
    bob.shutdown().await;
}
