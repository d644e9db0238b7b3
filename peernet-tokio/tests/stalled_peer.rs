//! A peer that keeps sending but never reads, on tokio alone: over a
//! buffering stream of tokio's (as TLS is), and under a patience of
//! `Duration::MAX`. The scenarios every runtime runs (a peer that pings
//! but never reads is cut off, a slow reader is not) are
//! `peernet-conformance`'s (`hostile.rs`). A test binary of its own: one
//! test counts panics on the runtime's threads.

use std::sync::Mutex;
use std::time::Duration;

use peernet_conformance::{
    IDLE, RawPeer, bob_and_raw, flood, patient, ping_until_cut_off, stalled_reason,
};
use peernet_tokio::{Config, Identity, Node, NodeConfig, TokioRuntime};

/// Over a stream that buffers what it is given (as TLS does), the writes
/// all land in the buffer and the flush is what waits on the full
/// socket: it is under the same patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_noticed_over_a_buffering_stream() {
    let raw_id = Identity::from_seed(&[121; 32]);
    let config = NodeConfig::new(Identity::from_seed(&[122; 32])).trusting(raw_id.peer_id());
    let bob = Node::new(patient(IDLE)(config));
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
    // (flush or not)
    let reason = ping_until_cut_off(&rt, &mut raw, &events).await;
    assert_eq!(reason, stalled_reason());
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
    let mut protocol = Config::default();
    protocol.ping_interval = Duration::from_millis(800);
    protocol.idle_timeout = Duration::MAX;
    protocol.validate().expect("a valid configuration");
    let (bob, raw, _events) = bob_and_raw::<TokioRuntime>(91, |c| c.protocol(protocol)).await;
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
