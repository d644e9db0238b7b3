//! A trusted peer that keeps `WORKERS` calls open against a handler that
//! never finishes, cancelling each once its handler has started and
//! calling again at once (a CANCEL storm over real TCP): the core frees a
//! call's slot at its CANCEL, and the driver aborts its handler, so the
//! handlers alive at once stay a small multiple of `WORKERS` however many
//! rounds run, never the total; when the peer stops, none is left.
//!
//! The multiple is not 1: an aborted handler's state is dropped when the
//! runtime next polls its task, after the CANCEL freed the slot (and the
//! bytes of its arguments, in the core's budget) for the next CALL.
//! Measured (2 worker threads): 32 calls open, 64 to 90 handler states
//! alive at most; 1,000 open (`max_inbound_calls` is 1,024), 2,264 to
//! 2,380.
//!
//! Its own test binary: it counts handler states process-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peernet_tokio::{Identity, NodeConfig};

#[path = "common/loopback.rs"]
mod loopback;
#[path = "common/until.rs"]
mod until;

const WORKERS: usize = 32;
const ROUNDS: usize = 300;

/// One handler's state: counted while it lives (started, not dropped).
struct Live(Arc<Counts>);

#[derive(Default)]
struct Counts {
    live: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
}

impl Live {
    fn new(counts: Arc<Counts>) -> Live {
        let now = counts.live.fetch_add(1, Ordering::SeqCst) + 1;
        counts.peak.fetch_max(now, Ordering::SeqCst);
        counts.started.fetch_add(1, Ordering::SeqCst);
        Live(counts)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_handlers_are_dropped_as_fast_as_they_are_cancelled() {
    let bob_id = Identity::from_seed(&[91; 32]);
    let eve_id = Identity::from_seed(&[92; 32]);
    let (bob_peer, eve_peer) = (bob_id.peer_id(), eve_id.peer_id());
    let bob = loopback::bound(NodeConfig::new(bob_id).trusting(eve_peer)).await;
    let counts = Arc::new(Counts::default());
    // Worker `i`'s handlers tell worker `i` that they started.
    let (started_txs, started_rxs): (Vec<_>, Vec<_>) = (0..WORKERS)
        .map(|_| tokio::sync::mpsc::unbounded_channel::<()>())
        .unzip();
    let started_txs = Arc::new(started_txs);
    {
        let counts = counts.clone();
        bob.expose("hang", move |_, args| {
            let live = Live::new(counts.clone());
            let _ = started_txs[u16::from_be_bytes([args[0], args[1]]) as usize].send(());
            async move {
                let _live = live;
                std::future::pending().await
            }
        })
        .unwrap();
    }
    let eve = loopback::bound(NodeConfig::new(eve_id).trusting(bob_peer)).await;
    eve.connect(bob_peer, bob.local_addr().unwrap())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let workers: Vec<_> = started_rxs
        .into_iter()
        .enumerate()
        .map(|(i, mut rx)| {
            let eve = eve.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let call = eve.call(&bob_peer, "hang", (i as u16).to_be_bytes(), None);
                    tokio::select! {
                        r = call => panic!("a hanging call resolved: {r:?}"),
                        s = rx.recv() => s.expect("bob lives"),
                    }
                    // (the call future is dropped here: CANCEL)
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    until::until("every cancelled handler dropped", || {
        counts.live.load(Ordering::SeqCst) == 0 && bob.stats().core.inbound_calls == 0
    })
    .await;
    let (peak, total) = (
        counts.peak.load(Ordering::SeqCst),
        counts.started.load(Ordering::SeqCst),
    );
    println!(
        "CANCEL storm: {WORKERS} workers x {ROUNDS} rounds = {total} handlers started \
         and cancelled in {:.0} ms ({:.1} us a round trip); peak alive at once {peak} \
         (max_inbound_calls {})",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / total as f64,
        peernet_tokio::Config::default().max_inbound_calls,
    );
    assert_eq!(total, WORKERS * ROUNDS);
    // A worker starts its next call only once its last handler started,
    // so at most WORKERS are wanted at once. A cancelled handler is
    // dropped when the runtime next polls its task, so a few more than
    // that live (2 to 3 times as many, measured:
    // the module comment), but never a number that grows with the rounds: a
    // handler the driver failed to stop would make it the total.
    assert!(
        peak < total / 10,
        "{peak} handlers alive at once for {WORKERS} calls open"
    );
}
