//! One endpoint accepting transports from a handful of sources (IPv4,
//! IPv4-mapped, IPv6 in a shared /64) under fuzzed per-source and
//! node-wide limits; every admission checked against a reference of the
//! rules. See `peernet_fuzz::sources`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peernet_fuzz::sources::run(data);
});
