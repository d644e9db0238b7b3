//! A responder (`accept`ed transport) fed arbitrary bytes: HELLO, PROOF and
//! whatever follows, in arbitrary chunks, with the clock ticking. The seed
//! corpus holds a HELLO and a PROOF valid for this exact endpoint (its RNG
//! is seeded), so envelopes after the handshake are reached too. Every
//! invariant of `peernet_fuzz::Model` holds throughout; at the end the
//! transport closes and nothing may be left.
//!
//! Flag bit 1 makes it a version-2 responder (`peernet_fuzz::responder_v2`,
//! accepted from a source address): the endpoint's own INIT handling,
//! replay cache, records and per-source charging; the corpus holds the
//! vectors' INIT, which passes `mac1` for it.
//!
//! Input: `peernet_fuzz::Feed` (flags bit 0: the driver never takes our
//! bytes, a peer that does not read; bit 1: version 2).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peernet_fuzz::{Feed, responder, responder_v2, run_feed};

fuzz_target!(|data: &[u8]| {
    let feed = Feed::parse(data);
    let (mut node, conn) = if feed.flags & 2 == 0 {
        responder()
    } else {
        responder_v2()
    };
    run_feed(&mut node, conn, &feed, feed.flags & 1 == 0);
});
