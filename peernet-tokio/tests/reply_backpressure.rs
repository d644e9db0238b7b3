//! An honest peer that pipelines calls to a handler with a large (but
//! legal) result is served at the pace it reads.
//!
//! The replies of every call one read brings, whose handlers finish on
//! their first poll, are given under one lock (`handlers.rs`,
//! `run_once`). They used to go straight into the send queue, so 17
//! pipelined calls for 1 MB each passed the hard send cap (16 MiB) before
//! the writer could take a byte, and the connection ended with GOODBYE
//! `protocol_error` "peer does not read" although the caller read as
//! fast as it could. Now a reply waits while the queue holds
//! `send_buffer` (the core's `connection/replies.rs`), charged to the
//! byte budgets: results that would wait past them are answered
//! `overloaded`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{CloseReason, Config, GoodbyeCode};
use peernet_tokio::CallError;

#[path = "common/unread.rs"]
mod unread;
use unread::Unread;

/// 64 pipelined calls for 1 MB results from an honest, reading peer
/// (`alice`), bob's per-connection byte budget `budget`; returns how many
/// succeeded, and asserts that the others were answered `overloaded`
/// (results past the budget while they wait), never cut off.
async fn pipelined_calls_for_large_results(budget: usize) -> usize {
    let (alice, bob) = common::trusting_pair_with(41, 42, |config| {
        let mut core = Config::default();
        core.max_inbound_bytes_per_conn = budget;
        config.protocol(core)
    })
    .await;
    // A result just under the default frame limit, ready on the first poll.
    let big = Bytes::from(vec![7u8; 1_000_000]);
    bob.expose("get", move |_, _| {
        let big = big.clone();
        async move { Ok(big) }
    })
    .unwrap();
    alice
        .connect(bob.peer_id(), bob.local_addr().unwrap())
        .await
        .unwrap();
    let bob_id = bob.peer_id();
    // 64 calls in flight at once: alice, an ordinary node, reads every
    // byte bob writes as fast as it can.
    let calls = (0..64).map(|i| {
        let alice = alice.clone();
        async move {
            alice
                .call(&bob_id, "get", [i as u8], Duration::from_secs(60))
                .await
        }
    });
    let results = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(calls),
    )
    .await
    .expect("the calls resolve");
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let failed: Vec<&CallError> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| !matches!(e, CallError::Overloaded))
        .collect();
    println!(
        "64 pipelined calls for 1 MB results, budget {} MiB: {ok} ok, {} overloaded, {} failed \
         otherwise; first: {:?}",
        budget >> 20,
        64 - ok - failed.len(),
        failed.len(),
        failed.first()
    );
    assert!(
        failed.is_empty(),
        "an honest, reading peer's calls failed: {:?}",
        failed.first()
    );
    assert!(alice.is_connected(&bob_id), "alice is not cut off");
    alice.shutdown().await;
    bob.shutdown().await;
    ok
}

/// With a byte budget that holds the results that wait, every call
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_for_large_results_do_not_cut_off_an_honest_peer() {
    assert_eq!(pipelined_calls_for_large_results(128 << 20).await, 64);
}

/// With the default budget (16 MiB), the results that would wait past it
/// are answered `overloaded` (the caller may call again): at least a
/// budget's worth succeeds, and the connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_results_past_the_byte_budget_are_answered_overloaded() {
    let ok = pipelined_calls_for_large_results(Config::default().max_inbound_bytes_per_conn).await;
    assert!(ok >= 16, "{ok} calls succeeded");
}

/// Calls the peer makes before it reads, for [`RESULT`] bytes each: far
/// more than loopback socket buffers and the linger budget hold.
const CALLS: usize = 400;
const RESULT: usize = 60_000;

/// A connection closed on purpose while replies wait (review s40, r2):
/// its last write carried every waiting reply, passed the driver's linger
/// budget and was dropped whole, so the peer got 10 of 400 results and a
/// lost transport instead of GOODBYE. Now the GOODBYE `normal` follows
/// what the writer had taken (what is still queued goes too only if it
/// fits with the GOODBYE in a short last write: `goodbyes_at_close.rs`);
/// the calls of the replies left behind fail with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_with_replies_waiting_ends_with_goodbye_and_resolves_every_call() {
    let mut core = Config::default();
    core.send_buffer = 64 << 10;
    core.max_send_buffer = 64 << 10;
    core.max_frame_len = 64 << 10;
    let budget = 4 * core.hard_send_cap();
    let mut unread = Unread::start(92, &[91], core, || Bytes::from(vec![7u8; RESULT])).await;
    let raw_peer = unread.raws[0].peer_id();
    unread.call(CALLS).await;
    let Unread { bob, mut raws, .. } = unread;
    let mut raw = raws.remove(0);
    // the replies the socket could not take wait in the core
    let waiting = async {
        while bob.stats().core.reply_bytes_waiting <= 2 * budget {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("replies wait for room");
    let s = bob.stats().core;
    println!(
        "before disconnect: {} replies waiting ({} bytes); linger budget {budget}",
        s.replies_waiting, s.reply_bytes_waiting
    );
    assert!(bob.disconnect(&raw_peer));
    // now the peer reads everything there is
    let got = unread::read_to_end(&mut raw).await;
    let (ok, closed, reason) = (got.ok, got.closed, got.reason);
    println!("peer got {ok} of {CALLS} results, {closed} closed; closed: {reason:?}");
    let goodbye = matches!(
        &reason,
        Some(CloseReason::Goodbye {
            code: GoodbyeCode::Normal,
            ..
        })
    );
    assert!(goodbye, "the GOODBYE was lost: {reason:?}");
    assert!(ok > 0, "the replies the socket took went out first");
    assert_eq!(ok + closed, CALLS, "every call resolves once");
    drop(raw);
    bob.shutdown().await;
}
