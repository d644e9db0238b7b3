//! The shared scenarios (`peernet-conformance`) on smol, protocol
//! version 1 (the opt-in), over real loopback TCP.

mod harness;

peernet_conformance::scenario_tests!(harness::Smol, v1);
