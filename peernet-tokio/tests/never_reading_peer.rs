//! Issue 13, fault 1: a peer that never reads must not keep its socket and
//! our queued bytes after the node closed the connection. The writer used
//! to stay blocked in its write for as long as the peer kept its end open
//! (the linger only started after that write), pinning the descriptor and
//! megabytes of unsent data per redial.
//!
//! Its own test binary: it counts this process's open file descriptors,
//! so its tests take turns ([`TURN`]).

use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_tokio::{Config, Identity, Node, NodeConfig, NodeEvent, PeerId, TokioRuntime};

/// Held by each test for its whole run: another's sockets would move the
/// count of descriptors.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Bob, with a writer blocked towards a raw peer that never reads, and
/// the descriptors open while connected.
async fn bob_blocked_on_a_silent_peer(config: NodeConfig) -> (Node, RawPeer, PeerId, usize) {
    let raw_id = Identity::from_seed(&[61; 32]);
    let raw_peer = raw_id.peer_id();
    let bob = Node::bind(config.trusting(raw_peer), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = bob.local_addr().unwrap();
    let events = bob.events();
    // Completes the handshake, then is never pumped again: it reads nothing.
    let raw = RawPeer::dial(&TokioRuntime::default(), raw_id, bob.peer_id(), addr, &[]).await;
    // Bob counts the connection once it has the raw peer's last handshake
    // message.
    let up = async {
        loop {
            if let NodeEvent::Connected { .. } = events.recv().await.unwrap() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("bob connects");
    let connected = open_fds();

    // 40 calls of ~1 MB towards the silent peer: far more than the two
    // loopback socket buffers hold, so bob's writer blocks in its write.
    let args = bytes::Bytes::from(vec![7u8; 1_000_000]);
    for _ in 0..40 {
        let (bob, args) = (bob.clone(), args.clone());
        tokio::spawn(async move {
            let _ = bob
                .call(&raw_peer, "x", args, Duration::from_secs(120))
                .await;
        });
    }
    // The writer is blocked once the calls stop making progress (no call
    // accepted and nothing taken from the queue for 200 ms) while fewer
    // than all 40 went out: 40 MB cannot fit in the socket buffers of a
    // peer that does not read, and loopback writes that can proceed take
    // microseconds.
    let blocked = async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut before = None;
        loop {
            tick.tick().await;
            let s = bob.stats().core;
            let now = (s.outbound_calls, s.queued_bytes);
            if before == Some(now) && (1..40).contains(&now.0) {
                break;
            }
            before = Some(now);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("bob's writer blocks");
    (bob, raw, raw_peer, connected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_releases_its_socket_though_the_peer_never_reads() {
    let _turn = TURN.lock().await;
    let config = NodeConfig::new(Identity::from_seed(&[62; 32]));
    let (bob, raw, raw_peer, connected) = bob_blocked_on_a_silent_peer(config).await;

    // The node ends the connection while its writer is stuck.
    assert!(bob.unpair(&raw_peer).await.unwrap());
    assert_eq!(bob.stats().core.connections, 0, "the core let go at once");

    // Within the linger (2 s) plus slack, bob's socket is closed.
    let released = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while open_fds() >= connected {
            tick.tick().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), released)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "bob still holds the socket 5 s after closing it ({} fds, {connected} while connected)",
                open_fds()
            )
        });
    drop(raw);
    bob.shutdown().await;
}

/// Closed connections may hold at most four send buffers of unwritten
/// bytes node-wide during their linger; one whose writer holds more stops
/// at once. (A peer that reads nothing and reconnects as fast as it may
/// used to pin a batch of up to a send buffer per closed connection, for
/// the whole linger of each: hundreds of MiB with the defaults.) Here the
/// send buffer is 64 KiB, so the budget is 256 KiB, and the blocked
/// writer's batch of a 1 MB call is over it: the socket goes well before
/// the 2 s linger would have let it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_over_the_linger_budget_stops_at_once() {
    let _turn = TURN.lock().await;
    let mut protocol = Config::default();
    protocol.max_send_buffer = 64 << 10;
    let config = NodeConfig::new(Identity::from_seed(&[62; 32])).protocol(protocol);
    let (bob, raw, raw_peer, connected) = bob_blocked_on_a_silent_peer(config).await;
    let closed_at = std::time::Instant::now();
    assert!(bob.unpair(&raw_peer).await.unwrap());
    let released = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while open_fds() >= connected {
            tick.tick().await;
        }
    };
    // (the linger is 2 s: released in 1 s, it did not linger)
    tokio::time::timeout(Duration::from_secs(1), released)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "bob still holds the socket {:?} after closing it",
                closed_at.elapsed()
            )
        });
    drop(raw);
    bob.shutdown().await;
}
