//! A peer unpaired while the handlers of its last read wait their turn
//! starts none of them after `unpair` returned.
//!
//! The driver takes a read's calls and sends from the core under the
//! node's lock, then starts their handlers one after another with the
//! lock let go. An `unpair` can come in between (from the application,
//! on another thread): it closed the connection and revoked the peer,
//! yet every handler still waiting in the batch (up to a drain's 1,024)
//! was started after it, as if the peer were still trusted. Those that
//! finished on their first poll ran whole; only those that waited were
//! stopped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::{RawPeer, call_envelope};
use peernet_proto::{Envelope, Handle};
use peernet_tokio::{Context, Identity, NodeConfig, TokioRuntime};

#[path = "common/loopback.rs"]
mod loopback;

/// Calls and sends to `count` behind the one to `gate`, in one read.
const BEHIND: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handler_of_a_peer_unpaired_mid_batch_starts() {
    let (bob_id, eve_id) = (
        Identity::from_seed(&[121; 32]),
        Identity::from_seed(&[122; 32]),
    );
    let (bob_peer, eve_peer) = (bob_id.peer_id(), eve_id.peer_id());
    let bob = loopback::bound(NodeConfig::new(bob_id).trusting(eve_peer)).await;
    // The first handler of the batch holds the reader (its first poll
    // blocks) until the test has unpaired the peer; it hands the test its
    // context, whose signal is raised once the batch's first polls are
    // over (it then waits, and its call is no longer served).
    let (entered, in_gate) = mpsc::channel::<Context>();
    let (open_gate, gate) = mpsc::channel::<()>();
    let (entered, gate) = (Mutex::new(entered), Arc::new(Mutex::new(gate)));
    bob.expose_ctx("gate", move |ctx, _| {
        let _ = entered.lock().unwrap().send(ctx);
        let gate = gate.clone();
        async move {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(20));
            std::future::pending().await
        }
    })
    .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let counted = started.clone();
    bob.expose("count", move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok(Bytes::new()) }
    })
    .unwrap();

    let rt = TokioRuntime::default();
    let at = bob.local_addr().unwrap();
    let mut eve = RawPeer::dial(&rt, eve_id, bob_peer, at, &[]).await;
    let mut read = vec![call_envelope(1, "gate")];
    for id in 2..2 + BEHIND {
        read.push(call_envelope(id, "count"));
        read.push(Envelope::Send {
            handle: Handle::new("count").unwrap(),
            args: Bytes::from_static(&[7; 100]),
        });
    }
    eve.send_raw(&read).await;

    let ctx = tokio::task::spawn_blocking(move || in_gate.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the gate's handler starts");
    assert!(bob.unpair(&eve_peer).await.unwrap(), "eve was trusted");
    open_gate.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), ctx.cancelled())
        .await
        .expect("the batch's first polls end");
    assert_eq!(
        started.load(Ordering::Relaxed),
        0,
        "handlers of eve's calls and sends started after she was unpaired"
    );
    // (the SENDs not started gave back what they held)
    let core = bob.stats().core;
    assert_eq!((core.inbound_calls, core.inbound_bytes), (0, 0), "{core:?}");
    drop(eve);
}
