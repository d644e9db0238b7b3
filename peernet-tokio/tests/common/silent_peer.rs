//! A node whose writer is blocked towards a raw peer that never reads, for
//! the test files that count this process's open descriptors (each its
//! own binary, so no other test's sockets move the count). Taken with
//! `#[path = "common/silent_peer.rs"] mod silent_peer;`.

use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_tokio::{Identity, Node, NodeEvent, PeerId, TokioRuntime};

/// The descriptors this process has open.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A raw peer (identity seeded `seed`, paired now) connected to `bob`,
/// towards which bob's writer is blocked: bob calls it with `args`-byte
/// arguments, far more than the loopback socket buffers hold, and it
/// reads nothing.
pub(crate) async fn silent_peer(bob: &Node, seed: u8, args: usize) -> (RawPeer, PeerId) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let raw_peer = raw_id.peer_id();
    bob.pair(raw_peer, None).await.unwrap();
    let addr = bob.local_addr().unwrap();
    let events = bob.events();
    let calls_before = bob.stats().core.outbound_calls;
    // Completes the handshake, then is never pumped again: it reads nothing.
    let raw = RawPeer::dial(&TokioRuntime::default(), raw_id, bob.peer_id(), addr, &[]).await;
    // Bob counts the connection once it has the raw peer's last handshake
    // message.
    let up = async {
        loop {
            if let NodeEvent::Connected { peer, .. } = events.recv().await.unwrap() {
                if peer == raw_peer {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("bob connects");
    // 40 MB of calls towards the silent peer, so bob's writer blocks in
    // its write.
    let calls = 40_000_000 / args;
    let args = bytes::Bytes::from(vec![7u8; args]);
    for _ in 0..calls {
        let (bob, args) = (bob.clone(), args.clone());
        tokio::spawn(async move {
            let _ = bob
                .call(&raw_peer, "x", args, Duration::from_secs(120))
                .await;
        });
    }
    // The writer is blocked once the calls stop making progress (no call
    // accepted and nothing taken from the queue for 200 ms) while fewer
    // than all of them went out: 40 MB cannot fit in the socket buffers
    // of a peer that does not read, and loopback writes that can proceed
    // take microseconds.
    let blocked = async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut before = None;
        loop {
            tick.tick().await;
            let s = bob.stats().core;
            let now = (s.outbound_calls - calls_before, s.queued_bytes);
            if before == Some(now) && (1..calls).contains(&now.0) {
                break;
            }
            before = Some(now);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("bob's writer blocks");
    (raw, raw_peer)
}

/// Waits until fewer descriptors than `connected` are open (the closed
/// connection's socket is gone), within `limit`; `Err` with the count
/// still open then.
pub(crate) async fn socket_released(connected: usize, limit: Duration) -> Result<(), usize> {
    let released = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while open_fds() >= connected {
            tick.tick().await;
        }
    };
    tokio::time::timeout(limit, released)
        .await
        .map_err(|_| open_fds())
}
