//! A global allocator that counts the process's live heap bytes, for
//! tests that measure what a peer's input keeps alive. Install it in the
//! test binary that needs it (it is global: one measuring test at a time):
//!
//! ```
//! use peernet_testkit::heap::{Counting, live};
//!
//! #[global_allocator]
//! static HEAP: Counting = Counting;
//!
//! let before = live();
//! let kept = vec![7u8; 4096];
//! assert!(live() - before >= 4096);
//! drop(kept);
//! assert!(live() - before < 4096);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting what is allocated and not yet freed.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Heap bytes allocated through [`Counting`] and not freed yet.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn count(p: *mut u8, bytes: isize) -> *mut u8 {
    if !p.is_null() {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
    p
}

// SAFETY: every call is passed on to `System` unchanged; the counter is
// only a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(unsafe { System.alloc(layout) }, layout.size() as isize)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(
            unsafe { System.alloc_zeroed(layout) },
            layout.size() as isize,
        )
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = new_size as isize - layout.size() as isize;
        count(unsafe { System.realloc(ptr, layout, new_size) }, grown)
    }
}
