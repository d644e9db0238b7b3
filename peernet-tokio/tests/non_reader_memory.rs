//! What a peer that never reads makes the node hold, in bytes.
//!
//! The writer task takes the core's whole send queue as one batch and
//! keeps it while its write waits on a peer that does not read; the
//! core's queue, empty again, used to fill once more up to the hard send
//! cap (16 MiB): a trusted peer calling a handler with large results and
//! reading nothing pinned about twice the cap (30.5 MiB measured). Now a
//! reply waits, as the handler gave it, while the queue holds
//! `send_buffer` (1 MiB), so the queue and the writer's batch each stay
//! within `send_buffer` plus one frame; the waiting replies go with the
//! connection when the stalled transport ends it (`idle_timeout`).
//!
//! Its own test binary: it counts this process's live heap bytes with a
//! global allocator.

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::Config;

#[path = "common/unread.rs"]
mod unread;
use unread::Unread;

/// Calls the peer makes, for 1 MB each.
const CALLS: usize = 32;

#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_pins_about_two_send_buffers() {
    let mut core = Config::default();
    core.ping_interval = Duration::from_millis(500);
    core.idle_timeout = Duration::from_secs(2);
    // One shared result: the handler allocates nothing per call, so what
    // the heap grows by is what the node itself holds.
    let big = Bytes::from(vec![7u8; 1_000_000]);
    let mut unread = Unread::start(45, &[44], core.clone(), move || big.clone()).await;
    let raw_peer = unread.raws[0].peer_id();
    let events = unread.bob.events();
    let before = peernet_testkit::heap::live();
    // 32 calls for 1 MB each, and never a read
    unread.call(CALLS).await;
    let bob = &unread.bob;
    // (the last replies are given in the lock turn after the handlers
    // ran: a gauge, looked at until it shows them, within 30 s)
    let waiting = async {
        while bob.stats().core.replies_waiting == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("replies wait for room");
    let held = (peernet_testkit::heap::live() - before).max(0) as usize;
    let s = bob.stats().core;
    let frame = core.max_frame_len as usize;
    let bound = 2 * (core.send_buffer + frame) + (1 << 20);
    println!(
        "a peer that never reads, {CALLS} calls for 1 MB: core queue {:.1} MiB, {} replies \
         waiting, process heap grew {:.1} MiB (bound {:.1} MiB)",
        s.queued_bytes as f64 / 1048576.0,
        s.replies_waiting,
        held as f64 / 1048576.0,
        bound as f64 / 1048576.0,
    );
    assert!(s.queued_bytes <= core.send_buffer + frame, "{s:?}");
    assert!(
        held <= bound,
        "the node holds {:.1} MiB for a peer that reads nothing",
        held as f64 / 1048576.0
    );
    // the stalled transport ends the connection, and the replies with it
    let reason = unread::disconnected(&events, raw_peer).await;
    println!("closed: {reason}");
    assert_eq!(bob.stats().core.replies_waiting, 0);
    let Unread { bob, raws, .. } = unread;
    drop(raws);
    bob.shutdown().await;
}
