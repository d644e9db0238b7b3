//! What a peer that calls for large results and reads none of them makes
//! the node hold, in bytes.
//!
//! A reply that waits for room in the send queue used to be bounded by
//! `max_inbound_calls` alone: a trusted peer that made 1,024 calls to a
//! handler with 1 MB results and read nothing held about 1 GiB of results
//! on the node (1,019 MiB measured) until stall detection cut it off
//! after `idle_timeout`, its byte budget reading 0. Now the waiting
//! results are charged to the byte budgets (`max_inbound_bytes_per_conn`,
//! 16 MiB), and those past them are dropped and answered `overloaded`.
//!
//! Its own test binary: it counts this process's live heap bytes with a
//! global allocator.

use bytes::Bytes;
use peernet_proto::Config;

#[path = "common/unread.rs"]
mod unread;
use unread::Unread;
#[path = "common/until.rs"]
mod until;
use until::until;

/// Calls the peer makes (`max_inbound_calls`), for [`RESULT`] bytes each.
const CALLS: usize = 1024;
const RESULT: usize = 1_000_000;
const MIB: f64 = 1048576.0;

#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_for_a_peer_that_never_reads_stay_within_its_byte_budget() {
    let core = Config::default();
    // A result of its own per call: what the heap grows by is what the
    // node keeps of them.
    let mut unread =
        Unread::start(47, &[46], core.clone(), || Bytes::from(vec![7u8; RESULT])).await;
    let raw_peer = unread.raws[0].peer_id();
    let events = unread.bob.events();
    let before = peernet_testkit::heap::live();
    unread.call(CALLS).await;
    let bob = &unread.bob;
    // (the last replies are given in the lock turn after the handlers
    // ran: looked at until every call is answered)
    until("every call answered", || {
        bob.stats().core.counters.calls_in.by_status.total() as usize >= CALLS
    })
    .await;
    let held = (peernet_testkit::heap::live() - before).max(0) as usize;
    let s = bob.stats().core;
    let frame = core.max_frame_len as usize;
    let budget = core.max_inbound_bytes_per_conn;
    // the budget, the send queue and the writer's batch (each a send
    // buffer and a frame), and 2 MiB for the rest
    let bound = budget + 2 * (core.send_buffer + frame) + (2 << 20);
    println!(
        "a peer that never reads, {CALLS} calls for {RESULT} B results: {} replies wait \
         ({:.1} MiB, held against the budget {:.1} MiB of {:.1}), {} refused, core queue \
         {:.1} MiB; process heap grew {:.1} MiB (bound {:.1} MiB)",
        s.replies_waiting,
        s.reply_bytes_waiting as f64 / MIB,
        s.inbound_bytes as f64 / MIB,
        budget as f64 / MIB,
        s.counters.replies_refused,
        s.queued_bytes as f64 / MIB,
        held as f64 / MIB,
        bound as f64 / MIB,
    );
    assert!(
        held <= bound,
        "the node holds {:.1} MiB for a peer that reads nothing",
        held as f64 / MIB
    );
    assert!(s.reply_bytes_waiting <= budget, "{s:?}");
    assert!(
        s.counters.replies_refused as usize >= CALLS - budget / RESULT - 8,
        "the results past the budget are refused: {s:?}"
    );
    // the peer goes: the connection ends, and the budget is whole again
    let Unread { bob, raws, .. } = unread;
    drop(raws);
    unread::disconnected(&events, raw_peer).await;
    let s = bob.stats().core;
    assert_eq!((s.inbound_bytes, s.reply_bytes_waiting), (0, 0), "{s:?}");
    bob.shutdown().await;
}
