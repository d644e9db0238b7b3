//! A handshake's input held by the output bound stays within one read.
//!
//! While [`OUTPUTS_BEFORE_PAUSE`] outputs wait, the core decodes nothing
//! more: a connection's bytes handed in meanwhile stay with it
//! (`Stats::paused_input`), outside the handshakes' byte budget
//! (`max_handshake_bytes` counts split frames). That is bounded by the
//! driver, not the core: a reader hands in its next read only once the
//! outputs are all taken (which resumes every paused connection), and a
//! handshake's reads are 4 KiB (`FIRST_READ_BUF`). So a handshake holds
//! at most one 4 KiB read there.
//!
//! Here the bound is met, not assumed. Only a command or a timer can
//! leave more than [`OUTPUTS_BEFORE_PAUSE`] outputs waiting with the lock
//! free (input pauses at the bound): the node drops a connection with
//! 4,000 of our calls in flight, whose results are taken 1,024 at a time,
//! and the first caller's waker holds the node there while a handshake's
//! third and fourth reads may come in. The third pauses; wakers run by
//! the reader's own drain see what it holds. A reader that grew its
//! buffer during the handshake (after two full reads: 16 KiB held), or
//! handed in the fourth read while the third still waited (8 KiB), would
//! show more than 4 KiB.
//!
//! [`OUTPUTS_BEFORE_PAUSE`]: peernet_proto::OUTPUTS_BEFORE_PAUSE

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use peernet_proto::testkit::noise::{InitiatorV2, LocalStatic};
use peernet_tokio::{Identity, Node, NodeConfig};
use tokio::io::{AsyncRead, AsyncWriteExt, DuplexStream, ReadBuf, ReadHalf};
use tokio::sync::Notify;

const FIRST_READ_BUF: usize = 4 * 1024;
/// Our calls in flight when the connection is dropped: their results
/// leave more than `OUTPUTS_BEFORE_PAUSE` outputs after two drains of
/// 1,024 (the node's and the handshake reader's first).
const CALLS: usize = 4000;
/// How long any one step may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

/// The reads a [`Gated`] stream lets through, and what it saw.
#[derive(Default)]
struct Gate {
    /// Reads it may still give.
    allowed: AtomicUsize,
    /// The reader's waker while it waits for `allowed`.
    parked: Mutex<Option<Waker>>,
    /// Whether a read was given since the reader last waited.
    gave: AtomicBool,
    /// Told each time the reader comes back for more after a read it
    /// was given (its input handled and drained).
    back: Mutex<Option<mpsc::Sender<()>>>,
    /// The most room a read was offered.
    most_offered: AtomicUsize,
}

impl Gate {
    fn allow(&self, reads: usize) {
        self.allowed.fetch_add(reads, Ordering::AcqRel);
        if let Some(waker) = self.parked.lock().unwrap().take() {
            waker.wake();
        }
    }
}

/// The read half of the node's end of a pipe, reading only as its
/// [`Gate`] allows (joined to the write half: `tokio::io::join`).
struct Gated {
    inner: ReadHalf<DuplexStream>,
    gate: Arc<Gate>,
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let gate = self.gate.clone();
        gate.most_offered
            .fetch_max(buf.remaining(), Ordering::Relaxed);
        loop {
            let take = |n: usize| n.checked_sub(1);
            if gate
                .allowed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, take)
                .is_ok()
            {
                gate.gave.store(true, Ordering::Release);
                return Pin::new(&mut self.inner).poll_read(cx, buf);
            }
            *gate.parked.lock().unwrap() = Some(cx.waker().clone());
            // (allowed meanwhile: take it)
            if gate.allowed.load(Ordering::Acquire) > 0 {
                continue;
            }
            if gate.gave.swap(false, Ordering::AcqRel) {
                if let Some(back) = &*gate.back.lock().unwrap() {
                    let _ = back.send(());
                }
            }
            return Poll::Pending;
        }
    }
}

/// What the wakers of our calls see of the node (`paused_input`,
/// `connections`, `established`, `handshake_bytes` of its core) while
/// some input is paused.
type Seen = Mutex<Vec<(usize, usize, usize, usize)>>;

/// The wakers of our calls. The first one woken once `armed` is set lets
/// the handshake's gate give two reads and waits, under no lock, until
/// the reader comes back for more; the others look at the node as they
/// wake.
struct Watcher {
    node: Node,
    armed: AtomicBool,
    gate: Arc<Gate>,
    back: Mutex<mpsc::Receiver<()>>,
    came_back: AtomicBool,
    seen: Seen,
}

impl Wake for Watcher {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.armed.swap(false, Ordering::AcqRel) {
            self.gate.allow(2);
            let back = self.back.lock().unwrap().recv_timeout(LIMIT);
            self.came_back.store(back.is_ok(), Ordering::Release);
            return;
        }
        let core = self.node.stats().core;
        if core.paused_input > 0 {
            let seen = (
                core.paused_input,
                core.connections,
                core.established,
                core.handshake_bytes,
            );
            self.seen.lock().unwrap().push(seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_handshake_holds_one_read_at_most() {
    let (s_id, p_id) = (
        Identity::from_seed(&[71; 32]),
        Identity::from_seed(&[72; 32]),
    );
    let slow_key = Identity::from_seed(&[73; 32]);
    let (s_peer, p_peer) = (s_id.peer_id(), p_id.peer_id());
    // (no deadline, PING or idle check may come while the test runs)
    let quiet = |config: NodeConfig| {
        config
            .handshake_timeout(Duration::from_secs(600))
            .first_frame_timeout(Duration::from_secs(600))
            .ping_interval(Duration::from_secs(600))
            .idle_timeout(Duration::from_secs(1200))
    };
    let any = "127.0.0.1:0".parse().unwrap();
    let p_config = NodeConfig::new(p_id)
        .trusting(s_peer)
        .max_inbound_calls(CALLS + 1);
    let p = Node::bind(quiet(p_config), any).await.unwrap();
    // P holds every call: none is answered.
    let arrived = Arc::new((AtomicUsize::new(0), Notify::new()));
    p.expose("hold", {
        let arrived = arrived.clone();
        move |_, _| {
            if arrived.0.fetch_add(1, Ordering::AcqRel) + 1 == CALLS {
                arrived.1.notify_one();
            }
            std::future::pending::<Result<bytes::Bytes, bytes::Bytes>>()
        }
    })
    .unwrap();
    let s_config = NodeConfig::new(s_id)
        .trusting(p_peer)
        .trusting(slow_key.peer_id());
    let s = Node::new(quiet(s_config));
    s.connect(p_peer, p.local_addr().unwrap()).await.unwrap();

    // A handshake: a trusted INIT, then the start of a 1 MiB first
    // record, eight reads of it waiting in the pipe (more than three
    // reads take, even of a buffer that would grow).
    let gate = Arc::new(Gate::default());
    let (back_tx, back_rx) = mpsc::channel();
    *gate.back.lock().unwrap() = Some(back_tx);
    let (node_end, mut peer_end) = tokio::io::duplex(64 * 1024);
    let key = LocalStatic::new(&slow_key);
    let (_, init) = InitiatorV2::start(&key, s_peer, [7; 32]).unwrap();
    let mut wire = (init.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&init);
    wire.extend_from_slice(&(1u32 << 20).to_be_bytes());
    wire.resize(wire.len() + 8 * FIRST_READ_BUF, 0);
    peer_end.write_all(&wire).await.unwrap();

    let watcher = Arc::new(Watcher {
        node: s.clone(),
        armed: AtomicBool::new(false),
        gate: gate.clone(),
        back: Mutex::new(back_rx),
        came_back: AtomicBool::new(false),
        seen: Mutex::new(Vec::new()),
    });
    let waker = Waker::from(watcher.clone());
    let mut cx = Context::from_waker(&waker);
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let mut call = Box::pin(s.call(&p_peer, "hold", "x", None::<Duration>));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        calls.push(call);
    }
    // (every CALL written and read: the connection is quiet)
    tokio::time::timeout(LIMIT, arrived.1.notified())
        .await
        .expect("P has every call");

    // Two full reads of the handshake go through; the reader then waits.
    gate.allow(2);
    let accepting = tokio::spawn({
        let s = s.clone();
        let (read, write) = tokio::io::split(node_end);
        let read = Gated {
            inner: read,
            gate: gate.clone(),
        };
        let stream = tokio::io::join(read, write);
        async move { s.accept_stream(stream).await }
    });
    // (blocking this thread, which is none of the runtime's workers)
    let waited = watcher.back.lock().unwrap().recv_timeout(LIMIT);
    waited.expect("the reader took two reads and waits");
    let before = s.stats().core;
    assert_eq!(
        (before.connections, before.established, before.paused_input),
        (2, 1, 0),
        "{before}"
    );
    assert!(
        before.handshake_bytes > 0,
        "the record's start is held: {before}"
    );

    // Dropping the connection fails the calls; the first waker lets the
    // handshake's third and fourth reads in while their results wait.
    watcher.armed.store(true, Ordering::Release);
    assert!(s.disconnect(&p_peer));
    assert!(
        watcher.came_back.load(Ordering::Acquire),
        "the reader came back for more"
    );
    let seen = watcher.seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the handshake's read was never paused");
    let kinds: std::collections::BTreeSet<_> = seen.iter().collect();
    for &&(paused, connections, established, budget) in &kinds {
        // (the handshake is the one connection left)
        assert_eq!((connections, established), (1, 0), "{kinds:?}");
        assert!(
            paused <= FIRST_READ_BUF,
            "a handshake held {paused} bytes of paused input ({budget} in the budget): {kinds:?}"
        );
    }
    let most = seen.iter().map(|s| s.0).max();
    assert_eq!(most, Some(FIRST_READ_BUF), "one whole read: {kinds:?}");
    assert_eq!(gate.most_offered.load(Ordering::Relaxed), FIRST_READ_BUF);
    assert_eq!(s.stats().core.paused_input, 0, "resumed");

    accepting.abort();
    drop(calls);
    s.shutdown().await;
    p.shutdown().await;
}
