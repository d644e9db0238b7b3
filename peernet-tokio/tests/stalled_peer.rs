//! A peer that keeps sending but never reads: the node used to keep the
//! connection for ever (its frames kept the idle timeout away, and the
//! queue stayed under the hard cap while our writer sat blocked), with
//! every call to that peer hanging until its own deadline. Now a writer
//! that gets none of its bytes taken for `idle_timeout` reports
//! `Input::Stalled` and the connection ends. A slow reader that still
//! takes bytes is never cut off.

use std::time::{Duration, Instant};

use bytes::Bytes;
use peernet_conformance::RawPeer;
use peernet_tokio::{
    CloseReason, Config, EventStream, GoodbyeCode, Identity, Node, NodeConfig, NodeEvent, Side,
    TokioRuntime,
};

/// The node's patience: `idle_timeout`.
const IDLE: Duration = Duration::from_secs(2);

/// Bob, connected to a raw peer, and sending it `megabytes` messages of
/// 1 MB from a task of its own (each waits for room in bob's queue).
async fn bob_flooding_raw(seed: u8, megabytes: usize) -> (Node, RawPeer, EventStream) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let mut protocol = Config::default();
    protocol.ping_interval = Duration::from_millis(800);
    protocol.idle_timeout = IDLE;
    let bob = Node::bind(
        NodeConfig::new(Identity::from_seed(&[seed + 1; 32]))
            .trusting(raw_id.peer_id())
            .protocol(protocol),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let events = bob.events();
    let addr = bob.local_addr().unwrap();
    let rt = TokioRuntime::default();
    let raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &["x"]).await;
    let up =
        async { while !matches!(events.recv().await.unwrap(), NodeEvent::Connected { .. }) {} };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("bob connects");
    let (sender, to) = (bob.clone(), raw.peer_id());
    tokio::spawn(async move {
        let body = Bytes::from(vec![7u8; 1_000_000]);
        for _ in 0..megabytes {
            if sender.send(&to, "x", body.clone()).await.is_err() {
                break;
            }
        }
    });
    (bob, raw, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_pings_but_never_reads_is_cut_off() {
    // 40 MB: far more than the loopback socket buffers hold.
    let (bob, mut raw, events) = bob_flooding_raw(71, 40).await;
    let start = Instant::now();
    let closed = async {
        // Keeps bob's idle timeout away with a PING every 100 ms.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut nonce = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    nonce += 1;
                    raw.ping(nonce).await;
                }
                event = events.recv() => {
                    if let NodeEvent::Disconnected { reason, .. } = event.unwrap() {
                        break reason;
                    }
                }
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("bob cuts off a peer that takes none of its bytes");
    assert_eq!(
        reason,
        CloseReason::Goodbye {
            by: Side::Local,
            code: GoodbyeCode::IdleTimeout,
            reason: format!("peer read none of our bytes for {IDLE:?}"),
        }
    );
    // Not before its patience ran out once.
    assert!(start.elapsed() >= IDLE, "{:?}", start.elapsed());
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_not_cut_off() {
    // 6 MB read 64 KiB at a time, one read every 25 ms (about 2.6 MB/s):
    // bob's writer waits on a full socket again and again, but never for
    // as long as its patience (2 s).
    let (bob, mut raw, events) = bob_flooding_raw(81, 6).await;
    let raw_peer = raw.peer_id();
    let mut received = 0;
    let mut nonce = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let read_all = async {
        while received < 6 {
            tick.tick().await;
            assert!(raw.read_once().await, "bob closed the connection");
            nonce += 1;
            raw.ping(nonce).await;
            while let Some(event) = raw.try_event().await {
                if matches!(event, peernet_proto::Event::Send(_)) {
                    received += 1;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("all six messages arrive");
    assert!(bob.is_connected(&raw_peer));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::Disconnected { .. }),
            "{event:?}"
        );
    }
    bob.shutdown().await;
}
