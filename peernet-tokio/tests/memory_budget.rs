//! Issue 13, limit 6: one hostile trusted peer holds `max_inbound_calls`
//! calls of `max_frame_len` arguments against a handler that never
//! finishes, then floods sends to another such handler. Before the byte
//! budgets this pinned about 1 GiB of arguments; now the node holds at
//! most `max_inbound_bytes_per_conn` (16 MiB by default) for it.
//!
//! Its own test binary: it reads this process's resident set.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peernet_tokio::{CallError, Config, Identity, NodeConfig, NodeEvent};

#[path = "common/loopback.rs"]
mod loopback;

const MIB: usize = 1 << 20;

/// This process's resident set, from /proc/self/statm (pages of 4 KiB).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hostile_peer_pins_at_most_its_byte_budget() {
    let config = Config::default();
    let (calls, frame) = (config.max_inbound_calls, config.max_frame_len as usize);
    let budget = config.max_inbound_bytes_per_conn;
    let bob_id = Identity::from_seed(&[81; 32]);
    let eve_id = Identity::from_seed(&[82; 32]);
    let (bob_peer, eve_peer) = (bob_id.peer_id(), eve_id.peer_id());
    let bob = loopback::bound(NodeConfig::new(bob_id).trusting(eve_peer)).await;
    // Each call ends up held (its handler starts, and never finishes) or
    // refused: both say so here, so the test awaits the count.
    let (settled_tx, mut settled) = tokio::sync::mpsc::unbounded_channel::<()>();
    let held_tx = settled_tx.clone();
    bob.expose("hang", move |_, _| {
        let _ = held_tx.send(());
        std::future::pending()
    })
    .unwrap();
    bob.expose("sink", |_, _| std::future::pending()).unwrap();
    bob.expose("barrier", |_, _| async { Ok(bytes::Bytes::new()) })
        .unwrap();
    let eve = loopback::bound(NodeConfig::new(eve_id).trusting(bob_peer)).await;
    eve.connect(bob_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    let rss_before = rss();

    // Arguments as large as a frame allows (the CALL envelope's few bytes
    // of header aside).
    let args = bytes::Bytes::from(vec![0x5a; frame - 64]);
    let overloaded = Arc::new(AtomicUsize::new(0));
    for _ in 0..calls {
        let (eve, args, overloaded) = (eve.clone(), args.clone(), overloaded.clone());
        let refused_tx = settled_tx.clone();
        tokio::spawn(async move {
            match eve.call(&bob_peer, "hang", args, None).await {
                Err(CallError::Overloaded) => {
                    overloaded.fetch_add(1, Ordering::Relaxed);
                    let _ = refused_tx.send(());
                }
                other => panic!("a held call resolved: {other:?}"),
            }
        });
    }
    // Every call is either held by bob or refused.
    let all_settled = async {
        for _ in 0..calls {
            settled.recv().await.expect("senders live");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_settled)
        .await
        .expect("every call is held or refused");
    let s = bob.stats().core;
    let mut rss_held = rss();
    let held_calls = s.inbound_calls;
    assert!(held_calls >= 1, "the budget admits calls");
    assert_eq!(held_calls + overloaded.load(Ordering::Relaxed), calls);
    assert_eq!(
        held_calls,
        budget / args.len(),
        "calls held: the budget's worth"
    );

    // Sends to a handler that never finishes: dropped once the budget is
    // full (it already is). A call after them is a barrier: bob handles a
    // connection's envelopes in order, so when it is answered (or refused)
    // every send before it was dropped or admitted.
    for _ in 0..64 {
        eve.send(&bob_peer, "sink", args.clone()).await.unwrap();
    }
    let barrier = eve.call(&bob_peer, "barrier", "", Duration::from_secs(60));
    match barrier.await {
        Ok(_) | Err(CallError::Overloaded) => {}
        Err(other) => panic!("the barrier call failed: {other}"),
    }
    let s = bob.stats().core;
    assert_eq!(s.sends_dropped, 64, "every send over the budget is dropped");
    rss_held = rss_held.max(rss());
    // (the core keeps the most it ever held for one connection)
    let peak_bytes = s.max_inbound_bytes_per_conn;

    println!(
        "one hostile peer, {calls} calls of {} B against a hanging handler: \
         {held_calls} held, {} overloaded; args held by the core: peak {:.1} MiB \
         (budget {} MiB per connection, {} MiB per node); {} sends dropped; \
         process RSS {:.1} MiB before, {:.1} MiB with the calls held (the larger of two samples; both nodes, one process)",
        args.len(),
        overloaded.load(Ordering::Relaxed),
        peak_bytes as f64 / MIB as f64,
        budget / MIB,
        config.max_inbound_bytes / MIB,
        s.sends_dropped,
        rss_before as f64 / MIB as f64,
        rss_held as f64 / MIB as f64,
    );
    assert!(peak_bytes <= budget, "over the per-connection budget");
    assert!(peak_bytes < 64 * MIB, "one hostile peer under 64 MiB");
    assert_eq!(s.max_inbound_bytes_per_conn, s.inbound_bytes);

    // The connection's end gives the calls' bytes back, as it ends.
    let events = bob.events();
    assert!(bob.disconnect(&eve_peer));
    let ended = async {
        loop {
            match events.recv().await.expect("bob's events") {
                NodeEvent::Disconnected { peer, .. } if peer == eve_peer => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("the connection ends");
    assert_eq!(
        bob.stats().core.inbound_bytes,
        0,
        "bytes released at the connection's end"
    );
}
