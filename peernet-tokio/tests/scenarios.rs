//! The shared scenarios (`peernet-conformance`) on tokio, protocol
//! version 2 (the default), over real loopback TCP.

mod harness;

peernet_conformance::scenario_tests!(harness::Tokio);
