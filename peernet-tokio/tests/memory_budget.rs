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

use peernet_tokio::{CallError, Config, Identity, Node, NodeConfig};

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
    let bob = Node::bind(
        NodeConfig::new(bob_id).trusting(eve_peer),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    bob.expose("hang", |_, _| std::future::pending()).unwrap();
    bob.expose("sink", |_, _| std::future::pending()).unwrap();
    let eve = Node::bind(
        NodeConfig::new(eve_id).trusting(bob_peer),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
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
        tokio::spawn(async move {
            match eve.call(&bob_peer, "hang", args, None).await {
                Err(CallError::Overloaded) => {
                    overloaded.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("a held call resolved: {other:?}"),
            }
        });
    }
    // Every call is either held by bob or refused.
    let (mut peak_bytes, mut peak_rss) = (0, 0);
    let settled = async {
        loop {
            let s = bob.stats().core;
            peak_bytes = peak_bytes.max(s.inbound_bytes);
            peak_rss = peak_rss.max(rss());
            if s.inbound_calls + overloaded.load(Ordering::Relaxed) == calls {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let s = tokio::time::timeout(Duration::from_secs(120), settled)
        .await
        .expect("every call is held or refused");
    let held_calls = s.inbound_calls;
    assert!(held_calls >= 1, "the budget admits calls");
    assert_eq!(
        held_calls,
        budget / args.len(),
        "calls held: the budget's worth"
    );

    // Sends to a handler that never finishes: dropped once the budget is
    // full (it already is).
    for _ in 0..64 {
        eve.send(&bob_peer, "sink", args.clone()).await.unwrap();
    }
    let drained = async {
        while bob.stats().core.sends_dropped < 64 {
            peak_bytes = peak_bytes.max(bob.stats().core.inbound_bytes);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drained)
        .await
        .expect("the sends are dropped");
    let s = bob.stats().core;
    peak_bytes = peak_bytes.max(s.inbound_bytes);
    peak_rss = peak_rss.max(rss());

    println!(
        "one hostile peer, {calls} calls of {} B against a hanging handler: \
         {held_calls} held, {} overloaded; args held by the core: peak {:.1} MiB \
         (budget {} MiB per connection, {} MiB per node); {} sends dropped; \
         process RSS {:.1} MiB before, peak {:.1} MiB (both nodes, one process)",
        args.len(),
        overloaded.load(Ordering::Relaxed),
        peak_bytes as f64 / MIB as f64,
        budget / MIB,
        config.max_inbound_bytes / MIB,
        s.sends_dropped,
        rss_before as f64 / MIB as f64,
        peak_rss as f64 / MIB as f64,
    );
    assert!(peak_bytes <= budget, "over the per-connection budget");
    assert!(peak_bytes < 64 * MIB, "one hostile peer under 64 MiB");
    assert_eq!(s.max_inbound_bytes_per_conn, s.inbound_bytes);

    // The connection's end gives the calls' bytes back.
    assert!(bob.disconnect(&eve_peer));
    let released = async {
        while bob.stats().core.inbound_bytes != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), released)
        .await
        .expect("bytes released at the connection's end");
}
