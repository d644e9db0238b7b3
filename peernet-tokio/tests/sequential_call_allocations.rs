//! What a sequential call allocates, both sides in one process: the copy
//! of its arguments out of the callee's read buffer, the copy of its
//! result out of the caller's, and the echo handler's boxed future;
//! nothing for the driver's bookkeeping. Before, the caller's turn took
//! a new work list for the `Work::Write` of its own connection, and the
//! callee's reader a new list for its one reply: five allocations a call
//! (the bench README, day 19).
//!
//! Its own test binary: a global allocator counting allocations, and one
//! test, on a current-thread runtime, so that nothing else allocates
//! meanwhile but the runtime's occasional own (a new read buffer every
//! few dozen reads).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

/// The system allocator, counting allocations (and reallocations).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; the counter is
// only a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

const CALLS: usize = 2_000;

#[tokio::test]
async fn a_sequential_call_allocates_its_payloads_and_handler_only() {
    let (alice, bob) = common::trusting_pair(61, 62).await;
    bob.expose("echo", |_caller, args| async move { Ok(args) })
        .unwrap();
    let peer = bob.peer_id();
    alice
        .connect(peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    let args = Bytes::from(vec![0x5a; 64]);
    // (the first calls grow the tables and buffers they keep)
    for _ in 0..100 {
        let echoed = alice.call(&peer, "echo", &args, None::<Duration>).await;
        assert_eq!(echoed.unwrap(), args);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..CALLS {
        let echoed = alice.call(&peer, "echo", &args, None::<Duration>).await;
        assert_eq!(echoed.unwrap().len(), 64);
    }
    let per_call = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / CALLS as f64;
    eprintln!("allocations per sequential call: {per_call:.3}");
    // 3: two payload copies and the handler's future (plus, now and
    // then, a read buffer); 5 before
    assert!(
        per_call < 3.5,
        "{per_call:.3} allocations per sequential call"
    );
}
