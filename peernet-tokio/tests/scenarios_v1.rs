//! The shared scenarios (`peernet-conformance`) on tokio, protocol
//! version 1 (the opt-in), over real loopback TCP.

mod harness;

peernet_conformance::scenario_tests!(harness::Tokio, v1);
