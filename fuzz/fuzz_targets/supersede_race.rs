//! Two instances of one trusted peer race connections to an endpoint
//! while a third side tampers with, injects, drops and replays bytes:
//! one connection per peer, every call resolved exactly once. See
//! `peernet_fuzz::supersede`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peernet_fuzz::supersede::run(data);
});
