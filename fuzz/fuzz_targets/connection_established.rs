//! An established connection (a real handshake between two in-memory
//! endpoints) whose one side is fed arbitrary bytes as its peer's, in
//! arbitrary chunks, with the clock ticking. That side has three calls in
//! flight (the seed corpus holds REPLY frames for their request ids); what
//! it sends goes to the real peer, which must never detect a protocol
//! error. Every invariant of `peernet_fuzz::Model` holds on both sides.
//!
//! Input: `peernet_fuzz::Feed` (flags bit 0: fuzz the initiator instead of
//! the responder; bit 1: the driver never takes the fuzzed side's bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peernet_fuzz::{Established, Feed};

fuzz_target!(|data: &[u8]| {
    let feed = Feed::parse(data);
    Established::new(feed.flags).run(&feed);
});
