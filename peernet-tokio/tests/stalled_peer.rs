//! A peer that keeps sending but never reads: the node used to keep the
//! connection for ever (its frames kept the idle timeout away, and the
//! queue stayed under the hard cap while our writer sat blocked), with
//! every call to that peer hanging until its own deadline. Now a writer
//! that gets none of its bytes taken for `idle_timeout` reports
//! `Input::Stalled` and the connection ends, also over a buffering stream
//! whose flush is what blocks. A reader that keeps taking bytes is not cut
//! off. A test binary of its own: one test counts panics on the runtime's
//! threads.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peernet_conformance::RawPeer;
#[path = "common/raw_bob.rs"]
mod raw_bob;
use peernet_tokio::{
    CloseReason, Config, EventStream, GoodbyeCode, Identity, Node, NodeConfig, NodeEvent, PeerId,
    Side, TokioRuntime,
};
use raw_bob::bob_and_raw;

/// The node's patience: `idle_timeout`.
const IDLE: Duration = Duration::from_secs(2);

/// The protocol configuration of these tests: patience [`IDLE`].
fn patient(idle: Duration) -> Config {
    let mut protocol = Config::default();
    protocol.ping_interval = Duration::from_millis(800);
    protocol.idle_timeout = idle;
    protocol
}

/// Sends `count` messages of `size` bytes to `to`, from a task of its own
/// (each waits for room in bob's queue), until one fails.
fn flood(bob: &Node, to: PeerId, count: usize, size: usize) {
    let sender = bob.clone();
    tokio::spawn(async move {
        let body = Bytes::from(vec![7u8; size]);
        for _ in 0..count {
            if sender.send(&to, "x", body.clone()).await.is_err() {
                break;
            }
        }
    });
}

/// Plays a peer that writes a PING every 100 ms (so bob never finds it
/// idle) and reads nothing, until bob ends the connection; its reason.
async fn ping_until_cut_off(raw: &mut RawPeer, events: &EventStream) -> CloseReason {
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
}

fn stalled_reason() -> CloseReason {
    CloseReason::Goodbye {
        by: Side::Local,
        code: GoodbyeCode::IdleTimeout,
        reason: format!("peer read none of our bytes for {IDLE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_pings_but_never_reads_is_cut_off() {
    let (bob, mut raw, events) = bob_and_raw(71, patient(IDLE)).await;
    // (before the flood: its task may run on the other worker at once,
    // and bob's patience starts with the first byte it cannot write)
    let start = Instant::now();
    // 40 MB: far more than the loopback socket buffers hold.
    flood(&bob, raw.peer_id(), 40, 1_000_000);
    let cut_off = ping_until_cut_off(&mut raw, &events);
    let reason = tokio::time::timeout(Duration::from_secs(30), cut_off)
        .await
        .expect("bob cuts off a peer that takes none of its bytes");
    assert_eq!(reason, stalled_reason());
    // Not before its patience ran out once.
    assert!(start.elapsed() >= IDLE, "{:?}", start.elapsed());
    bob.shutdown().await;
}

/// Over a stream that buffers what it is given (as TLS does), the writes
/// all land in the buffer and the flush is what waits on the full
/// socket: it is under the same patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_noticed_over_a_buffering_stream() {
    let raw_id = Identity::from_seed(&[121; 32]);
    let bob = Node::new(
        NodeConfig::new(Identity::from_seed(&[122; 32]))
            .trusting(raw_id.peer_id())
            .protocol(patient(IDLE)),
    );
    let events = bob.events();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let buffered = tokio::io::BufWriter::with_capacity(1 << 20, tcp);
        bob.accept_stream(buffered).await.unwrap()
    };
    let rt = TokioRuntime::default();
    let dial = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &["x"]);
    let (mut raw, _) = tokio::join!(dial, accept);
    // 64 KB at a time, without end: each lands in the buffer
    flood(&bob, raw.peer_id(), usize::MAX, 64_000);
    let cut_off = ping_until_cut_off(&mut raw, &events);
    let reason = tokio::time::timeout(Duration::from_secs(30), cut_off)
        .await
        .expect("bob cuts off a peer that takes none of its bytes, flush or not");
    assert_eq!(reason, stalled_reason());
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_keeps_taking_bytes_is_not_cut_off() {
    let (bob, mut raw, events) = bob_and_raw(81, patient(IDLE)).await;
    let raw_peer = raw.peer_id();
    // 16 MB read 64 KiB at a time, one read every 10 ms (about 6.5 MB/s):
    // once the socket buffers are full, bob's writer waits on them again
    // and again, each time for far less than its patience (2 s; room is
    // reported once less than 512 KiB is left unsent, `socket_start`).
    flood(&bob, raw_peer, 16, 1_000_000);
    let mut received = 0;
    let mut nonce = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let read_all = async {
        while received < 16 {
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
        .expect("all 16 messages arrive");
    assert!(bob.is_connected(&raw_peer));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::Disconnected { .. }),
            "{event:?}"
        );
    }
    bob.shutdown().await;
}

/// Panics seen on the runtime's worker threads.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `Config::validate` accepts any `idle_timeout` above the ping interval
/// (the core saturates its instants): the writer's patience used to be
/// added to the clock as it was, and `Duration::MAX` panicked the writer
/// task the first time the socket was full, leaving the connection up
/// with no writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patience_of_duration_max_is_no_panic() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // (the runtime's workers only: other tests' assertions are theirs)
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tokio"))
        {
            PANICS.lock().unwrap().push(info.to_string());
        }
        hook(info);
    }));
    let protocol = patient(Duration::MAX);
    protocol.validate().expect("a valid configuration");
    let (bob, raw, _events) = bob_and_raw(91, protocol).await;
    flood(&bob, raw.peer_id(), 40, 1_000_000);
    // The raw peer reads nothing: bob's writer waits on a full socket
    // once the queue stops moving (no send taken, nothing written, for
    // 200 ms), which it does within seconds.
    let blocked = async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut before = None;
        loop {
            tick.tick().await;
            let queued = bob.stats().core.queued_bytes;
            if queued > 0 && before == Some(queued) {
                break;
            }
            before = Some(queued);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("bob's writer waits");
    let panics = PANICS.lock().unwrap().clone();
    assert!(panics.is_empty(), "{panics:#?}");
    assert!(bob.is_connected(&raw.peer_id()), "still patient");
    drop(raw);
    bob.shutdown().await;
}
