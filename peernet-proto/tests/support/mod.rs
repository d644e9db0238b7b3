//! The core tests' harness is the test kit's `Pair`: two endpoints joined
//! by in-memory links on a virtual clock (`peernet-testkit`).

#![allow(unused_imports)]

pub(crate) use peernet_testkit::{Pair, Who, identity, test_config, test_config_v2};

use peernet_proto::{Event, HandshakeError};

/// Whether a handshake failed with `expected` among `events`.
#[allow(dead_code)]
pub(crate) fn failed_with(events: &[Event], expected: HandshakeError) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::HandshakeFailed { error, .. } if *error == expected))
}

#[allow(dead_code, unreachable_pub)]
pub mod dialing;
#[allow(dead_code, unreachable_pub)]
pub mod v2;
