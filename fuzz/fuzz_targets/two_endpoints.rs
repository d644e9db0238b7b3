//! Structured: two endpoints driven through an arbitrary sequence of
//! operations and byte deliveries; see `peernet_fuzz::two_endpoints` for
//! the operations and the invariants checked.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peernet_fuzz::two_endpoints::{Scenario, run};

fuzz_target!(|scenario: Scenario| {
    run(scenario);
});
