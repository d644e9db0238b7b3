//! Identities, configurations and endpoints built from seeds: what every
//! harness needs to start deterministic endpoints.

use std::time::Duration;

use peernet_proto::config::Fault;
use peernet_proto::{Config, Endpoint, Identity, Instant, PeerId, ProtocolVersion, TrustList};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The clock every harness starts at.
pub const START: Instant = Instant::from_millis(1_000);

/// The identity whose secret seed is 32 bytes of `seed`.
pub fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

/// The PeerId of a secret seed.
pub fn peer(seed: &[u8; 32]) -> PeerId {
    Identity::from_seed(seed).peer_id()
}

/// The core tests' configuration: the protocol's defaults, with the
/// handshake, ping and idle times written out, on version 1 (the tests
/// that use it count and craft plaintext frames); see [`test_config_v2`].
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.version = ProtocolVersion::V1;
    c.handshake_timeout = Duration::from_secs(10);
    c.ping_interval = Duration::from_secs(15);
    c.idle_timeout = Duration::from_secs(45);
    c
}

/// [`test_config`] on version 2 (the default).
pub fn test_config_v2() -> Config {
    let mut c = test_config();
    c.version = ProtocolVersion::V2;
    c
}

/// Small limits, so that a fuzzer reaches every one of them (the fuzz
/// targets' configuration, and that of the tests replaying what they
/// found).
pub fn fuzz_config() -> Config {
    let mut c = Config::default();
    // The harnesses feed version-1 frames (the v2 targets use the crypto
    // directly).
    c.version = ProtocolVersion::V1;
    c.max_frame_len = 4096;
    c.max_handshakes = 2;
    c.max_inbound_calls = 8;
    c.max_outbound_calls = 8;
    c.send_buffer = 2048;
    c.max_send_buffer = 4096;
    c.handshake_timeout = Duration::from_secs(5);
    c.ping_interval = Duration::from_secs(2);
    c.idle_timeout = Duration::from_secs(6);
    c
}

/// The limit the core holds a connection's send queue to (as
/// `Config::max_send_buffer` documents it): never less than `send_buffer`
/// plus one frame.
pub fn hard_send_cap(c: &Config) -> usize {
    c.max_send_buffer
        .max(c.send_buffer.saturating_add(c.max_frame_len as usize + 4))
}

/// An endpoint running as `identity`, trusting `trusted`, drawing from a
/// ChaCha20 RNG seeded with `rng`.
pub fn endpoint(config: Config, identity: Identity, trusted: &[PeerId], rng: u64) -> Endpoint {
    let mut trust = TrustList::new();
    for p in trusted {
        trust.insert(*p, None);
    }
    Endpoint::new(
        config,
        identity,
        trust,
        Box::new(ChaCha20Rng::seed_from_u64(rng)),
    )
}

/// The deliberate bug named by the environment variable `var` (a `Fault`
/// variant name), if it is set. Panics on a name that is no fault.
pub fn fault_from_env(var: &str) -> Option<Fault> {
    let name = std::env::var(var).ok()?;
    let fault = Fault::from_name(&name);
    Some(fault.unwrap_or_else(|| panic!("{var}: no fault {name:?}")))
}
