//! Version 2 record decoding alone (PROTOCOL.md section 7), past the
//! AEAD: a responder established by a real handshake is fed records that
//! the initiator's real keys seal from the input (envelopes one after
//! another, cut envelopes, garbage), some tampered, cut short or replayed.
//! The test kit's model checks every event; a broken record must end the
//! connection at once with nothing in it handed to a handler.
//!
//! Input: see `peernet_fuzz::v2::run_records`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peernet_fuzz::v2::run_records(data);
});
