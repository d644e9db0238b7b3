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
//! `send_buffer` (the core's `connection/replies.rs`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::CallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_for_large_results_do_not_cut_off_an_honest_peer() {
    let (alice, bob) = common::trusting_pair(41, 42).await;
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
    let failed: Vec<&CallError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "64 pipelined calls for 1 MB results: {} ok, {} failed; first failure: {:?}",
        results.len() - failed.len(),
        failed.len(),
        failed.first()
    );
    assert!(
        failed.is_empty(),
        "an honest, reading peer's calls failed: {:?}",
        failed.first()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
