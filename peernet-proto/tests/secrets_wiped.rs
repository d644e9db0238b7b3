//! No heap copy of a node's long-term X25519 secret is freed unwiped. A
//! global allocator looks into every block before it goes back to the
//! system (the block is still the program's at that point) for the bytes
//! of the secrets of both sides of a version-2 handshake. One test binary
//! of its own, since the allocator is global.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::BytesMut;
use peernet_proto::testkit::noise::LocalStatic;
use peernet_proto::{ConnId, Endpoint, Input, Instant, Output, PeerId, TrustList};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use support::{identity, test_config_v2};

/// The allocator that looks: while `WATCHING`, a freed block that holds
/// one of `SECRETS` is counted in `UNWIPED`.
struct Watch;

static WATCHING: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);
/// Set before `WATCHING` goes up; read with `try_lock` only (never
/// blocks in the allocator, and the test sets it while nothing frees).
static SECRETS: Mutex<Vec<[u8; 32]>> = Mutex::new(Vec::new());
/// The tests of this binary share the allocator's state: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: every call is passed on to `System` unchanged; `dealloc` only
// reads the block it is handed, which is still allocated until then.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::Relaxed) && layout.size() >= 32 {
            if let Ok(secrets) = SECRETS.try_lock() {
                // SAFETY: the block is ours until `System.dealloc` below.
                let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                let holds = |s: &[u8; 32]| block.windows(32).any(|w| w == s);
                if secrets.iter().any(holds) {
                    UNWIPED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

fn node(me: u8, other: u8) -> Endpoint {
    let mut trust = TrustList::new();
    trust.insert(identity(other).peer_id(), None);
    let rng = Box::new(ChaCha20Rng::seed_from_u64(u64::from(me)));
    Endpoint::new(test_config_v2(), identity(me), trust, rng)
}

/// Everything `ep` wrote for `conn` since last time.
fn written(ep: &mut Endpoint, conn: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit(c) if c == conn => {
                if let Some(b) = ep.poll_transmit(c) {
                    out.extend_from_slice(&b);
                }
            }
            Output::Close { conn: c, last } if c == conn => out.extend_from_slice(&last),
            _ => {}
        }
    }
    out
}

fn feed(ep: &mut Endpoint, now: Instant, conn: ConnId, bytes: &[u8]) {
    let data = BytesMut::from(bytes);
    ep.handle_input(now, Input::Received { conn, data });
}

/// `dialer` dials `to` at `responder`, and the two hand each other what
/// they wrote, `flights` times in all (INIT, RESP or REJECT, the first
/// record).
fn exchange(
    dialer: &mut Endpoint,
    responder: &mut Endpoint,
    to: PeerId,
    now: Instant,
    flights: usize,
) {
    let out = dialer.connect(now, Some(to)).unwrap();
    let inb = responder.accept(now).unwrap();
    for flight in 0..flights {
        let (from, from_conn, into, into_conn) = match flight % 2 {
            0 => (&mut *dialer, out, &mut *responder, inb),
            _ => (&mut *responder, inb, &mut *dialer, out),
        };
        let bytes = written(from, from_conn);
        feed(into, now, into_conn, &bytes);
    }
    let _ = written(responder, inb);
    let _ = written(dialer, out);
}

/// Counts the unwiped blocks freed while `run` runs.
fn unwiped_during(run: impl FnOnce()) -> usize {
    UNWIPED.store(0, Ordering::Relaxed);
    WATCHING.store(true, Ordering::Relaxed);
    run();
    WATCHING.store(false, Ordering::Relaxed);
    UNWIPED.load(Ordering::Relaxed)
}

/// Both roles, a dial given up before RESP, a full handshake (which
/// spends the initiator's state on RESP) and a REJECTed dial.
#[test]
fn no_freed_block_holds_a_static_secret() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *SECRETS.lock().unwrap() = [1, 2, 3]
        .map(|seed| *LocalStatic::new(&identity(seed)).secret())
        .to_vec();
    let now = Instant::from_millis(1_000);
    let (mut a, mut b) = (node(1, 2), node(2, 1));
    let (pa, pb) = (identity(1).peer_id(), identity(2).peer_id());

    let given_up = unwiped_during(|| {
        let ca = a.connect(now, Some(pb)).unwrap();
        let _ = written(&mut a, ca);
        a.handle_input(now, Input::Closed { conn: ca });
        let _ = written(&mut a, ca);
    });
    assert_eq!(given_up, 0, "a dial given up before RESP");

    let full = unwiped_during(|| {
        exchange(&mut a, &mut b, pb, now, 3);
        assert!(a.is_connected(&pb) && b.is_connected(&pa));
    });
    assert_eq!(full, 0, "a handshake, both roles");

    // C is not in A's trust list: its INIT is REJECTed `untrusted`, and
    // C's dial state is spent on the REJECT.
    let mut c = node(3, 1);
    let rejected = unwiped_during(|| {
        exchange(&mut c, &mut a, pa, now, 2);
        assert!(!c.is_connected(&pa));
    });
    assert_eq!(rejected, 0, "a REJECTed dial, both roles");
}

/// The record keys of a connection are not left in freed memory either:
/// the endpoint keeps its connections by value in a map whose nodes are
/// freed (as connections come and go) without wiping, so keys stored in
/// a connection itself outlived it there, undoing forward secrecy
/// against a later look at the heap.
#[test]
fn no_freed_block_holds_a_record_key() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use peernet_proto::Access;
    use support::v2::{connected, drain, feed as feed_v2, handshake, responder, seal, send_body};
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    b.expose("log", Access::Anyone).unwrap();
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    // (B holds the same two keys: its receiving one is our sending one)
    *SECRETS.lock().unwrap() = vec![*keys.send.key(), *keys.recv.key()];
    let first = seal(&mut keys.send, &send_body(b"first"));
    let freed = unwiped_during(|| {
        let d = feed_v2(&mut b, now, conn, &first);
        assert!(connected(&d.events, conn));
        // other transports come and go: the map's nodes split and merge
        let others: Vec<_> = (0..64).map(|_| b.accept(now).unwrap()).collect();
        for c in others {
            b.handle_input(now, Input::Closed { conn: c });
            let _ = drain(&mut b, c);
        }
        b.handle_input(now, Input::Closed { conn });
        let _ = drain(&mut b, conn);
        drop(b);
    });
    assert_eq!(freed, 0, "freed blocks held a record key");
}
