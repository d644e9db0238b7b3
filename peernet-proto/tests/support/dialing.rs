//! Driving one endpoint's dial schedule by hand: node 1 trusting others,
//! and what it wants done.

use std::net::SocketAddr;

use peernet_proto::{Config, DialFailure, Endpoint, Event, Output, PeerId, TrustList};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::identity;

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// Node `me` trusting `trusted`, with the default configuration.
pub fn endpoint(me: u8, trusted: &[u8]) -> Endpoint {
    endpoint_with(Config::default(), me, trusted)
}

/// [`endpoint`] with `config`.
pub fn endpoint_with(config: Config, me: u8, trusted: &[u8]) -> Endpoint {
    let mut trust = TrustList::new();
    for t in trusted {
        trust.insert(identity(*t).peer_id(), None);
    }
    Endpoint::new(
        config,
        identity(me),
        trust,
        Box::new(ChaCha20Rng::seed_from_u64(u64::from(me))),
    )
}

/// Everything `ep` wants done, in order (transmits are left queued).
pub fn drain(ep: &mut Endpoint) -> Vec<Output> {
    std::iter::from_fn(|| ep.poll_output()).collect()
}

pub fn dials(outputs: &[Output]) -> Vec<(PeerId, SocketAddr)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Dial { peer, addr } => Some((*peer, *addr)),
            _ => None,
        })
        .collect()
}

pub fn events(outputs: &[Output]) -> Vec<Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A transport that refused the dial, in a driver's words.
pub fn refused() -> DialFailure {
    DialFailure::transport("connection refused")
}
