//! Reading the identity file leaves no heap copy of its secret seed
//! behind: a global allocator looks into every block before it goes back
//! to the system (the block is still the program's then) for the seed's
//! bytes. One test binary of its own, since the allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use peernet_driver::Identity;
use peernet_driver::persist::{read_identity, write_identity};

/// The seed the test's identity is made from: what no freed block may hold.
const SEED: [u8; 32] = [0xa7; 32];
/// The part of it a block must hold to count: a block holding this much
/// of the seed gives the rest away to a search of 2^(8 * 8) keys at most.
const SHOWN: usize = 24;

struct Watch;

static WATCHING: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; `dealloc` only
// reads the block it is handed, which is still allocated until then.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::Relaxed) && layout.size() >= SHOWN {
            // SAFETY: the block is ours until `System.dealloc` below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(SHOWN).any(|w| w == &SEED[..SHOWN]) {
                UNWIPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// `read_identity` read the file into a vector grown as bytes came and
/// dropped it unwiped: every node start (and the CLI's key commands) left
/// the ed25519 seed, and with it the X25519 static secret, in freed heap
/// memory for the process's life.
#[test]
fn reading_the_identity_file_frees_no_copy_of_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    let identity = Identity::from_seed(&SEED);
    write_identity(&path, &identity).unwrap();
    UNWIPED.store(0, Ordering::Relaxed);
    WATCHING.store(true, Ordering::Relaxed);
    let read = read_identity(&path);
    WATCHING.store(false, Ordering::Relaxed);
    assert_eq!(read.unwrap().peer_id(), identity.peer_id());
    assert_eq!(
        UNWIPED.load(Ordering::Relaxed),
        0,
        "freed blocks held the identity's seed"
    );
}
