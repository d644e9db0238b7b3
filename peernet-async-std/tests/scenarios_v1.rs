//! The shared scenarios (`peernet-conformance`) on async-std, protocol
//! version 1 (the opt-in), over real loopback TCP.

mod harness;

peernet_conformance::scenario_tests!(harness::AsyncStd, v1);
