//! The core tests' harness is the test kit's `Pair`: two endpoints joined
//! by in-memory links on a virtual clock (`peernet-testkit`).

#![allow(unused_imports)]

pub(crate) use peernet_testkit::{Pair, Who, identity, test_config, test_config_v2};
