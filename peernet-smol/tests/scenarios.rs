//! The shared scenarios (`peernet-conformance`) on smol, protocol
//! version 2 (the default), over real loopback TCP.

mod harness;

peernet_conformance::scenario_tests!(harness::Smol);
