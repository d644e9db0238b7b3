//! Saves of the address book: a save that fails (a full or read-only
//! disk, here a directory where the file should be) is tried again after
//! a back-off, whether or not the book changes again (it used to wait for
//! the next change or the shutdown: a node whose book then stayed the
//! same kept its changes off the disk until it stopped, and lost them in
//! a crash); and no save, pending or retried, keeps a node's state or its
//! port after the node is shut down or dropped.
//!
//! A test binary of its own: it installs the process's log subscriber.
//! Its tests run one at a time, each reading the log lines written since
//! it began.
//!
//! What a node must let go of at once is awaited with a generous bound
//! (20 s), which only ends a failing run; the retry test keeps the
//! node's retry from ever firing (its runtime holds every sleep of half
//! a second or more), so that a node kept alive by it stays alive.

#[path = "common/lines.rs"]
mod lines;
#[path = "common/until.rs"]
mod until;
#[path = "common/wrapped.rs"]
mod wrapped;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lines::Lines;
use peernet_driver::{Node, Runtime};
use peernet_tokio::{AddrSource, EventStream, Identity, NodeConfig, TokioRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, MutexGuard};
use until::until;
use wrapped::{Hooks, Wrapped};

/// A bound on what happens at once: it ends a failing run.
const AT_ONCE: Duration = Duration::from_secs(20);

/// The retry test's runtime hooks: every sleep of half a second or more
/// never ends (a save's retry waits 1 s at the least; the debounce,
/// 250 ms, runs). Every copy of the runtime holds the `Arc`: its count
/// tells whether anything of the node (its state, a task) still holds
/// its runtime.
#[derive(Clone, Default)]
struct RetriesHeld(Arc<()>);

impl Hooks for RetriesHeld {
    fn held(&self, wait: Duration) -> bool {
        wait >= Duration::from_millis(500)
    }
}

/// One test at a time; the log lines written since it began.
struct Turn {
    _serial: MutexGuard<'static, ()>,
    from: usize,
}

impl Turn {
    async fn take() -> Turn {
        static SERIAL: Mutex<()> = Mutex::const_new(());
        let serial = SERIAL.lock().await;
        Turn {
            _serial: serial,
            from: log().text().len(),
        }
    }

    fn text(&self) -> String {
        log().text()[self.from..].to_string()
    }
}

fn log() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| Lines::capture(tracing::Level::DEBUG))
}

/// A node on a fresh data directory that trusts one peer, listening on
/// loopback; its events, and the directory.
async fn node_in_dir(seed: u8) -> (Node<TokioRuntime>, EventStream, tempfile::TempDir) {
    node_in_dir_on(TokioRuntime::default(), seed).await
}

/// [`node_in_dir`] on the runtime `rt`.
async fn node_in_dir_on<R: Runtime>(rt: R, seed: u8) -> (Node<R>, EventStream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let peer = Identity::from_seed(&[seed; 32]).peer_id();
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .trusting(peer);
    let node = Node::bind_with(rt, config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let events = node.events();
    (node, events, dir)
}

/// Adds an address of the node's one trusted peer (a change to save).
fn change_the_book<R: Runtime>(node: &Node<R>) {
    let peer = node.trust().iter().next().map(|(p, _)| *p).unwrap();
    let addr = "192.0.2.7:4000".parse().unwrap();
    assert!(
        node.add_address(peer, addr, AddrSource::Application)
            .unwrap()
    );
}

/// Puts a directory (not empty) where the book file goes: no save can
/// replace it.
fn block_the_book(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let book = dir.path().join("book");
    std::fs::create_dir(&book).unwrap();
    std::fs::write(book.join("in-the-way"), b"").unwrap();
    book
}

/// Whether every sender of `events` (the node's state holds them) is gone
/// (within [`AT_ONCE`]).
async fn state_released(events: EventStream) -> bool {
    let ended = async { while events.recv().await.is_ok() {} };
    tokio::time::timeout(AT_ONCE, ended).await.is_ok()
}

/// Whether `addr` can be bound again (within [`AT_ONCE`]).
async fn port_released(addr: SocketAddr) -> bool {
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while std::net::TcpListener::bind(addr).is_err() {
            tick.tick().await;
        }
    };
    tokio::time::timeout(AT_ONCE, wait).await.is_ok()
}

#[tokio::test]
async fn a_failed_save_is_tried_again_without_another_change() {
    let turn = Turn::take().await;
    let (node, _events, dir) = node_in_dir(3).await;
    let book = block_the_book(&dir);
    change_the_book(&node);
    until("a failed save", || {
        turn.text().contains("address book not saved")
    })
    .await;
    let text = turn.text();
    assert!(text.contains("failures=1"), "{text}");
    assert!(text.contains("retry_in=1s"), "{text}");

    // The disk is back; nothing changes in the book, and no shutdown.
    std::fs::remove_dir_all(&book).unwrap();
    // (the file is in place before the save has synced and said so: both
    // are awaited)
    until("the book saved by a retry, and said so", || {
        turn.text().contains("address book saved")
    })
    .await;
    let saved = std::fs::read_to_string(&book).unwrap();
    assert!(saved.contains("192.0.2.7:4000"), "{saved}");
    node.shutdown().await;
}

/// The save task waited on the accept loop's one-waiter stop signal and
/// took its place: after any save, `shutdown` woke the save task, not the
/// accept loop, which kept the port and the node's state.
#[tokio::test]
async fn shutdown_after_a_save_releases_the_port_and_the_state() {
    after_a_save_the_node_lets_go(5, true).await;
}

/// The same, the node dropped rather than shut down.
#[tokio::test]
async fn dropping_a_node_after_a_save_releases_the_port_and_the_state() {
    after_a_save_the_node_lets_go(6, false).await;
}

async fn after_a_save_the_node_lets_go(seed: u8, shut_down: bool) {
    let _turn = Turn::take().await;
    let (node, events, dir) = node_in_dir(seed).await;
    let addr = node.local_addr().unwrap();
    change_the_book(&node);
    until("the book saved", || dir.path().join("book").exists()).await;
    if shut_down {
        tokio::time::timeout(Duration::from_secs(10), node.shutdown())
            .await
            .expect("shut down");
    }
    drop(node);
    assert!(state_released(events).await, "the state outlives the node");
    assert!(port_released(addr).await, "{addr} still bound");
}

/// A retry sleeps up to 5 minutes; a dropped node must not live on in it.
/// (It waited on the accept loop's stop signal too: once the accept loop
/// had waited again, after any connection, the close woke only the
/// accept loop.) The retry here never fires (`RetriesHeld`): a node that
/// lived on until it did would never be released.
#[tokio::test]
async fn a_save_retry_does_not_keep_a_dropped_node_alive() {
    let turn = Turn::take().await;
    let rt = Wrapped::<RetriesHeld>::default();
    let runtimes = rt.hooks.0.clone();
    let (node, events, dir) = node_in_dir_on(rt, 7).await;
    let addr = node.local_addr().unwrap();
    block_the_book(&dir);
    change_the_book(&node);
    // the save fails at about 0.25 s; its retry, 1 s on, is held
    until("a failed save", || turn.text().contains("failures=1")).await;
    // A connection comes and is refused (a frame of length 0): the accept
    // loop has accepted and waits again.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(&[0, 0, 0, 0]).await.unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    // (closed on our side too, so that the node's connection ends at once
    // rather than lingering for its peer's EOF: its linger is held)
    drop(client);
    drop(node);
    assert!(
        state_released(events).await,
        "the node's state outlives it in a retry"
    );
    assert!(port_released(addr).await, "{addr} still bound");
    // (the event streams end at the close, whoever still holds the state)
    until("nothing of the node holding its runtime", || {
        Arc::strong_count(&runtimes) == 1
    })
    .await;
}
