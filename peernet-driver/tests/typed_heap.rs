//! The heap a typed handler's decoded request takes, per byte of its
//! arguments (the bytes the node's budgets count), for the densest
//! requests a hostile trusted peer can send: arrays of one-byte items
//! that each decode to a `String` or `Vec` (24 bytes of header in their
//! parent's buffer), at element counts just past a power of two (a `Vec`
//! decoded by minicbor grows by doubling, so it holds up to twice the
//! room its elements need).
//!
//! Its own test binary: a counting global allocator. It counts only the
//! allocations of the thread that measures (a thread-local counter), so
//! the test harness's other threads do not disturb the figures.
//!
//! Run with `--nocapture` to see the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use futures_util::FutureExt;
use peernet_driver::{HandlerResult, Identity, bad_request_reason, cbor_handler};

/// Counts the bytes this thread's live allocations asked for, and their
/// peak; and beside them what the C allocator gave (its blocks' usable
/// size and 8-byte header: 32 bytes for a one-byte string), where it
/// says. A reallocation counts its old and its new block at once (the
/// system allocator may copy from one to the other).
struct Counting;

/// Live and peak bytes: asked for, and given.
#[derive(Clone, Copy, Default)]
struct Heap {
    live: usize,
    peak: usize,
    given: usize,
    peak_given: usize,
}

thread_local! {
    static HEAP: Cell<Heap> = const {
        Cell::new(Heap { live: 0, peak: 0, given: 0, peak_given: 0 })
    };
}

/// What the C allocator gave for the block at `ptr`, if it says.
fn given(ptr: *mut u8) -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `ptr` is a live block of the system allocator (malloc).
    return unsafe { libc::malloc_usable_size(ptr.cast()) } + 8;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    return {
        let _ = ptr;
        0
    };
}

fn grew(by: usize, given: usize) {
    let _ = HEAP.try_with(|heap| {
        let mut h = heap.get();
        h.live += by;
        h.given += given;
        h.peak = h.peak.max(h.live);
        h.peak_given = h.peak_given.max(h.given);
        heap.set(h);
    });
}

fn shrank(by: usize, given: usize) {
    let _ = HEAP.try_with(|heap| {
        let mut h = heap.get();
        h.live = h.live.saturating_sub(by);
        h.given = h.given.saturating_sub(given);
        heap.set(h);
    });
}

// SAFETY: every call goes to the system allocator as it came.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size(), given(p));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size(), given(ptr));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = given(ptr);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // (both blocks, for the peak: the old one goes only once
            // the new one holds its bytes)
            grew(new_size, given(p));
            shrank(layout.size(), old);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most heap live at once while `f` runs, above what was live
/// before: asked for, and given.
fn peak_during(f: impl FnOnce()) -> (usize, usize) {
    let mut base = HEAP.with(Cell::get);
    base.peak = base.live;
    base.peak_given = base.given;
    HEAP.with(|heap| heap.set(base));
    f();
    let after = HEAP.with(Cell::get);
    (after.peak - base.live, after.peak_given - base.given)
}

/// The bound documented for requests that decode to the standard types
/// (`MAX_CBOR_HEAP_PER_BYTE` bytes of elements per byte, plus
/// `CBOR_HEAP_SLACK`, up to four times that as `Vec`s grow, plus
/// the strings' own bytes, at most one per byte): written out here so
/// that the test also builds against the code before the bound.
fn bound(len: usize) -> usize {
    4 * (8 * len + 16 * 1024) + len
}

/// The body of a CBOR array of `n` copies of `item`.
fn array_of(n: usize, item: &[u8]) -> Vec<u8> {
    let mut encoder = minicbor::Encoder::new(Vec::with_capacity(9 + n * item.len()));
    encoder.array(n as u64).unwrap();
    let mut body = encoder.into_writer();
    for _ in 0..n {
        body.extend_from_slice(item);
    }
    body
}

/// What one request took: its bytes, the peak heap while a typed
/// handler decoded it and ran (holding the decoded value), and the
/// handler's outcome.
struct Took {
    bytes: usize,
    peak: usize,
    /// The peak in what the C allocator gave.
    peak_given: usize,
    outcome: HandlerResult,
}

/// Runs a typed handler taking `A` on `body` (as the node would: the
/// handler closure, then its future polled), and measures it.
fn run<A>(body: Vec<u8>) -> Took
where
    A: for<'b> minicbor::Decode<'b, ()> + Send + 'static,
{
    let handler = cbor_handler(|_caller, request: A| async move {
        // (the decoded value lives until the handler returns)
        let held = std::hint::black_box(request);
        drop(held);
        Ok::<u8, u8>(0)
    });
    let peer = Identity::from_seed(&[7; 32]).peer_id();
    let bytes = body.len();
    let args = Bytes::from(body);
    let mut outcome = None;
    let (peak, peak_given) = peak_during(|| {
        let fut = handler(peer, args);
        outcome = fut.now_or_never();
    });
    Took {
        bytes,
        peak,
        peak_given,
        outcome: outcome.expect("a typed handler that never waits is ready at once"),
    }
}

/// Prints a measurement and returns its heap per byte of arguments.
fn report(shape: &str, took: &Took) -> f64 {
    let per_byte = took.peak as f64 / took.bytes as f64;
    let verdict = match &took.outcome {
        Ok(_) => "decoded".to_string(),
        Err(body) => format!(
            "refused: {}",
            bad_request_reason(body).unwrap_or_else(|| "(not a bad request)".into())
        ),
    };
    let given_per_byte = took.peak_given as f64 / took.bytes as f64;
    println!(
        "{shape:<34} {:>7} B of arguments, peak {:>9} B of heap: {per_byte:5.1} B/B \
         ({given_per_byte:5.1} B/B given by malloc); {verdict}",
        took.bytes, took.peak
    );
    per_byte
}

/// Element counts just past a power of two: the decoded `Vec` has twice
/// the room its elements need, its worst.
const N: usize = (1 << 19) + 1;

/// The densest requests: each element one byte on the wire, and 24 bytes
/// (a `String` or a `Vec`) in the decoded value. Before the bound a
/// request of 512 KiB of empty strings decoded as a `Vec<String>` took
/// 72 bytes of heap per byte of arguments at its peak (24 per element,
/// three times while the `Vec` moved to a doubled buffer), and one of
/// `[[]]`s as a `Vec<Vec<Vec<u8>>>` 84 (each inner `Vec` keeps room for
/// four); now they are refused before they are decoded, and what is
/// decoded stays within the bound.
#[test]
fn a_typed_requests_heap_is_bounded_per_byte_of_arguments() {
    let refused = [
        (
            "Vec<String> of empty strings",
            run::<Vec<String>>(array_of(N, &[0x60])),
        ),
        (
            "Vec<String> of one-byte strings",
            run::<Vec<String>>(array_of(N / 2 + 1, b"\x61a")),
        ),
        (
            "Vec<Option<String>> of nulls",
            run::<Vec<Option<String>>>(array_of(N, &[0xf6])),
        ),
        (
            "Vec<Vec<u8>> of empty arrays",
            run::<Vec<Vec<u8>>>(array_of(N, &[0x80])),
        ),
        (
            "Vec<Vec<u8>> of [0]",
            run::<Vec<Vec<u8>>>(array_of(N / 2 + 1, &[0x81, 0x00])),
        ),
        (
            "Vec<Vec<Vec<u8>>> of [[]]",
            run::<Vec<Vec<Vec<u8>>>>(array_of(N / 2 + 1, &[0x81, 0x80])),
        ),
        // (the price of a check that cannot see the type: this one took
        // 2 bytes per byte)
        (
            "Vec<(u8, u8)> of [0, 0]",
            run::<Vec<(u8, u8)>>(array_of(N / 4 + 1, &[0x82, 0x00, 0x00])),
        ),
    ];
    let decoded = [
        (
            "Vec<u64> of one-byte integers",
            run::<Vec<u64>>(array_of(N, &[0x01])),
        ),
        (
            "Vec<u8> of one-byte integers",
            run::<Vec<u8>>(array_of(N, &[0x01])),
        ),
        (
            "Vec<Vec<String>> of [\"abcd\"]",
            run::<Vec<Vec<String>>>(array_of(N / 8 + 1, b"\x81\x64abcd")),
        ),
        (
            "Vec<String> of two-byte strings",
            run::<Vec<String>>(array_of(N / 4 + 1, b"\x62ab")),
        ),
    ];
    let mut over = Vec::new();
    for (shape, took) in refused.iter().chain(&decoded) {
        let per_byte = report(shape, took);
        if took.peak > bound(took.bytes) {
            over.push(format!("{shape}: {per_byte:.1} B/B"));
        }
    }
    assert!(over.is_empty(), "over the bound: {over:?}");
    for (shape, took) in &refused {
        let why = match &took.outcome {
            Err(body) => bad_request_reason(body),
            Ok(_) => None,
        };
        assert!(
            why.as_deref().is_some_and(|why| why.contains("too dense")),
            "{shape}: {why:?}"
        );
        // (nothing decoded: the reply's few bytes)
        assert!(took.peak < 4096, "{shape}: {} B", took.peak);
    }
    for (shape, took) in &decoded {
        assert!(took.outcome.is_ok(), "{shape}");
    }
    // Beyond the bound, as documented: elements larger than they are
    // charged, which the check cannot tell from a body (a one-entry
    // `BTreeMap` keeps a node of room for eleven entries, a `HashMap`
    // for four, an `Option<u64>` takes 16 bytes).
    for (shape, took) in [
        (
            "Vec<BTreeMap<String, String>>",
            run::<Vec<std::collections::BTreeMap<String, String>>>(array_of(
                N / 16 + 1,
                b"\xa1\x63abc\x65defgh",
            )),
        ),
        (
            "Vec<HashMap<String, String>>",
            run::<Vec<std::collections::HashMap<String, String>>>(array_of(
                N / 16 + 1,
                b"\xa1\x63abc\x65defgh",
            )),
        ),
        (
            "Vec<Option<u64>> of one-byte integers",
            run::<Vec<Option<u64>>>(array_of(N, &[0x01])),
        ),
    ] {
        report(shape, &took);
        assert!(took.outcome.is_ok(), "{shape}");
    }
}
