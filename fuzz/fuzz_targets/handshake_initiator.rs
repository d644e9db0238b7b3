//! An initiator that sent its HELLO, fed arbitrary bytes: WELCOME or
//! REJECT, then whatever follows (REJECT of our PROOF, envelopes), in
//! arbitrary chunks, with the clock ticking. The seed corpus holds a
//! WELCOME valid for this exact endpoint's HELLO (its RNG is seeded). Every
//! invariant of `peernet_fuzz::Model` holds throughout; at the end the
//! transport closes and nothing may be left.
//!
//! Input: `peernet_fuzz::Feed` (flags bit 0: the driver never takes our
//! bytes; bit 1: dial without naming the responder).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peernet_fuzz::{Feed, initiator, run_feed};

fuzz_target!(|data: &[u8]| {
    let feed = Feed::parse(data);
    let (mut node, conn) = initiator(feed.flags & 2 == 0);
    run_feed(&mut node, conn, &feed, feed.flags & 1 == 0);
});
