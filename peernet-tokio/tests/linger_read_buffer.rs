//! What a closed connection keeps while it lingers, in heap bytes: not
//! its reader's buffer.
//!
//! A connection's reader grows its buffer up to 64 KiB while its peer
//! sends fast. Once the node closes the connection, the reader lingers
//! (up to `NodeConfig::linger`) discarding what the peer still sends,
//! until the peer's end of stream. It used to keep its buffer for that
//! whole time, outside the linger budget, and a peer that sent a burst
//! and then went silent left it parked in its read with the buffer: with
//! a long linger and a peer reconnecting as fast as its limit allows,
//! tens of MiB. The close now wakes the reader, which lets the buffer go
//! and discards into a buffer on its stack, for each read only.
//!
//! Its own test binary: it counts this process's live heap bytes with a
//! global allocator.

#[path = "common/loopback.rs"]
mod loopback;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use peernet_conformance::RawPeer;
use peernet_proto::Event;
use peernet_testkit::heap::{Counting, live};
use peernet_tokio::{Identity, Node, NodeConfig, NodeEvent, PeerId, TokioRuntime};

#[global_allocator]
static HEAP: Blocks = Blocks;

/// The heap, counted ([`Counting`]), and its live blocks of a read
/// buffer's largest size ([`big_blocks`]).
struct Blocks;

/// Live heap blocks of exactly 64 KiB: the read buffers grown to their
/// largest (and each raw peer's own, alive throughout).
static BIG: AtomicIsize = AtomicIsize::new(0);

const BIG_BLOCK: usize = 64 * 1024;

fn big_blocks() -> isize {
    BIG.load(Ordering::Relaxed)
}

fn count_big(size: usize, by: isize) {
    if size == BIG_BLOCK {
        BIG.fetch_add(by, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `Counting` unchanged; the count of
// blocks is only a side effect.
unsafe impl GlobalAlloc for Blocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { Counting.alloc(layout) };
        if !p.is_null() {
            count_big(layout.size(), 1);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { Counting.dealloc(ptr, layout) };
        count_big(layout.size(), -1);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { Counting.alloc_zeroed(layout) };
        if !p.is_null() {
            count_big(layout.size(), 1);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { Counting.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_big(layout.size(), -1);
            count_big(new_size, 1);
        }
        p
    }
}

/// Lingering connections measured.
const CONNS: usize = 8;

/// Each peer's burst: a call with arguments this large, enough for the
/// reader's buffer to double up to its largest (64 KiB).
const BURST: usize = 512 * 1024;

/// The most heap one lingering connection may keep: its tasks, its
/// socket and its signals, far below a grown read buffer. (It kept
/// 67.0 KiB, its reader's 64 KiB buffer with the rest; now 2.5 KiB.)
const LINGERING_AT_MOST: isize = 16 * 1024;

/// Bounds a wait that fails (what is awaited comes in milliseconds).
const BOUND: Duration = Duration::from_secs(10);

/// A raw peer (identity seeded `seed`, paired now) connected to `bob`,
/// which has sent bob a burst (and had its answer: bob read all of it),
/// and now sends nothing.
async fn burst_then_silence(bob: &Node, seed: u8) -> (RawPeer, PeerId) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let raw_peer = raw_id.peer_id();
    bob.pair(raw_peer, None).await.unwrap();
    let events = bob.events();
    let addr = bob.local_addr().unwrap();
    let mut raw = RawPeer::dial(&TokioRuntime::default(), raw_id, bob.peer_id(), addr, &[]).await;
    let up = async {
        loop {
            if let NodeEvent::Connected { peer, .. } = events.recv().await.unwrap() {
                if peer == raw_peer {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(BOUND, up).await.expect("bob connects");
    // (bob exposes nothing: it reads the whole call, then refuses it)
    let args = vec![7u8; BURST];
    raw.call(&bob.peer_id(), "sink", &args, BOUND).await;
    let answered = async { while !matches!(raw.next_event().await, Event::CallResult { .. }) {} };
    tokio::time::timeout(BOUND, answered)
        .await
        .expect("bob answers the burst");
    (raw, raw_peer)
}

/// Waits until `done` holds, looking every 10 ms, at most [`BOUND`];
/// false if it never did.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !done() {
            tick.tick().await;
        }
    };
    tokio::time::timeout(BOUND, wait).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_connection_keeps_no_read_buffer() {
    let metrics = tokio::runtime::Handle::current().metrics();
    // (an hour: no connection here stops lingering but by its peer's end
    // of stream)
    let config = NodeConfig::new(Identity::from_seed(&[80; 32])).linger(Duration::from_secs(3600));
    let bob = loopback::bound(config).await;
    let idle = metrics.num_alive_tasks();
    let mut raws = Vec::new();
    for seed in 81..81 + CONNS as u8 {
        raws.push(burst_then_silence(&bob, seed).await);
    }
    // (each reader's, and each raw peer's own)
    let grown = big_blocks();
    assert!(grown >= 2 * CONNS as isize, "{grown} buffers of 64 KiB");
    for (_, peer) in &raws {
        assert!(bob.unpair(peer).await.unwrap());
    }
    // Each raw peer reads bob's GOODBYE and end of stream (its core hears
    // them; nothing of it is written back yet): bob's writers have
    // written their last, its readers linger, parked in a read that
    // nothing will end.
    for (raw, _) in &mut raws {
        let eof = async { while raw.read_once().await {} };
        tokio::time::timeout(BOUND, eof).await.expect("bob's EOF");
    }
    // (nothing announces a reader's buffer let go but the heap: its
    // blocks of 64 KiB are looked at until the readers' are gone, at most
    // BOUND; before, they never went)
    let let_go = until(|| big_blocks() <= grown - CONNS as isize).await;
    let lingering = live();
    // Now the raw peers end their side: bob's readers read the end of
    // stream, and the connections' tasks end.
    for (raw, _) in &mut raws {
        raw.flush().await;
    }
    let ended = until(|| metrics.num_alive_tasks() <= idle).await;
    assert!(ended, "bob's connections did not end at their peers' EOF");
    // (what the heap loses here is bob's lingering connections, and what
    // the raw peers' cores let go at their own close: an upper bound)
    let gone = live();
    let per_conn = (lingering - gone) / CONNS as isize;
    println!(
        "{CONNS} connections lingering after a burst of {} KiB each: {:.1} KiB of heap \
         per connection, {:.1} KiB in all",
        BURST / 1024,
        per_conn as f64 / 1024.0,
        (lingering - gone) as f64 / 1024.0,
    );
    assert!(
        let_go,
        "the lingering readers kept their 64 KiB buffers ({} of {grown} left)",
        big_blocks()
    );
    assert!(
        per_conn <= LINGERING_AT_MOST,
        "a lingering connection keeps {per_conn} bytes, over {LINGERING_AT_MOST}"
    );
    drop(raws);
    bob.shutdown().await;
}
