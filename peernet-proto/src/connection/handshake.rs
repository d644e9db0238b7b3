//! A connection during its handshake: the state it holds between frames
//! and the step each frame takes it through. The messages and their rules
//! are the handshake module's ([`crate::handshake`], version 1); this is
//! where they meet the connection's send queue, the node's identity, trust
//! list and RNG.
//!
//! Each version's states sit side by side in [`Handshake`]: version 2
//! (PROTOCOL.md Part B, Noise IK) becomes a `V2` variant here, and
//! finishing it yields the same [`Step::Done`] (plus its record keys) as
//! version 1 does.

use alloc::boxed::Box;

use crate::handshake::{self, Failure, Initiator, Responder};
use crate::identity::PeerId;

use super::transmit::Transmit;
use super::{Ctx, Node};

/// Where a connection's handshake stands.
pub(super) enum Handshake {
    /// Version 1 (PROTOCOL.md section 2).
    V1(V1),
}

/// The states of a version-1 handshake.
pub(super) enum V1 {
    /// Accepted; waiting for HELLO. `busy` when accepted beyond
    /// `max_handshakes`: its HELLO gets REJECT `busy`.
    Accepted { busy: bool },
    /// Dialed; HELLO sent, waiting for WELCOME.
    Dialed(Initiator),
    /// WELCOME sent, waiting for PROOF.
    Welcomed(Box<Responder>),
}

/// What a handshake frame led to.
pub(super) enum Step {
    /// Wait for the next frame.
    Continue,
    /// The peer is proven: the connection is established.
    Done {
        /// The proven peer.
        peer: PeerId,
        /// Who dialed (the proven peer or us).
        initiator: PeerId,
    },
    /// The handshake failed.
    Failed(Failure),
}

impl Handshake {
    /// Starts a dial: queues HELLO. `expected` is the PeerId dialed.
    pub(super) fn dial(
        node: &mut Node<'_>,
        expected: Option<PeerId>,
        tx: &mut Transmit,
        ctx: &mut Ctx,
    ) -> Handshake {
        let mut nonce = [0u8; 32];
        node.rng.fill_bytes(&mut nonce);
        let initiator = Initiator::start(node.identity, &nonce, expected);
        tx.push_handshake(initiator.hello(), ctx);
        Handshake::V1(V1::Dialed(initiator))
    }

    /// Waits for a dialer's HELLO; `busy` refuses it.
    pub(super) fn accept(busy: bool) -> Handshake {
        Handshake::V1(V1::Accepted { busy })
    }

    /// The peer, once known (dialed, or named by its HELLO).
    pub(super) fn peer(&self) -> Option<PeerId> {
        match self {
            Handshake::V1(V1::Accepted { .. }) => None,
            Handshake::V1(V1::Dialed(i)) => i.expected(),
            Handshake::V1(V1::Welcomed(r)) => Some(r.peer()),
        }
    }

    /// Whether this inbound handshake counts against `max_handshakes`.
    pub(super) fn counts_against_limit(&self) -> bool {
        matches!(
            self,
            Handshake::V1(V1::Accepted { busy: false } | V1::Welcomed(_))
        )
    }

    /// One handshake frame's body.
    pub(super) fn on_frame(
        &mut self,
        body: &[u8],
        node: &mut Node<'_>,
        tx: &mut Transmit,
        ctx: &mut Ctx,
    ) -> Step {
        match self {
            Handshake::V1(V1::Accepted { busy: true }) => {
                Step::Failed(Failure::refuse(crate::RejectCode::Busy))
            }
            Handshake::V1(V1::Accepted { busy: false }) => {
                let hello = handshake::read_hello(node.identity, node.trust, body);
                #[cfg(feature = "fault-injection")]
                let hello =
                    hello.or_else(|failure| fault_skip_trust_check(node, ctx, body, failure));
                match hello {
                    Err(failure) => Step::Failed(failure),
                    Ok(dialer) => {
                        let mut nonce = [0u8; 32];
                        node.rng.fill_bytes(&mut nonce);
                        let responder = Responder::welcome(node.identity, dialer, body, &nonce);
                        tx.push_handshake(responder.welcome_body(), ctx);
                        *self = Handshake::V1(V1::Welcomed(Box::new(responder)));
                        Step::Continue
                    }
                }
            }
            Handshake::V1(V1::Dialed(initiator)) => {
                match initiator.on_welcome(node.identity, node.trust, body) {
                    Err(failure) => Step::Failed(failure),
                    Ok((peer, proof)) => {
                        tx.push_handshake(&proof, ctx);
                        Step::Done {
                            peer,
                            initiator: node.identity.peer_id(),
                        }
                    }
                }
            }
            // No second trust check here: `unpair` ends a handshake in
            // progress with the peer its HELLO named, so a dialer still
            // proving itself is trusted.
            Handshake::V1(V1::Welcomed(responder)) => match responder.on_proof(body) {
                Err(failure) => Step::Failed(failure),
                Ok(peer) => Step::Done {
                    peer,
                    initiator: peer,
                },
            },
        }
    }
}

/// Fault `SkipTrustCheck`: a HELLO refused only because its key is
/// untrusted is taken as if the key were trusted.
#[cfg(feature = "fault-injection")]
fn fault_skip_trust_check(
    node: &Node<'_>,
    ctx: &Ctx,
    hello: &[u8],
    failure: Failure,
) -> Result<handshake::Dialer, Failure> {
    let untrusted = failure.error == crate::HandshakeError::Refused(crate::RejectCode::Untrusted);
    match hello.get(6..6 + 32).map(PeerId::from_slice) {
        Some(Ok(key)) if untrusted && crate::config::fault!(ctx.config, SkipTrustCheck) => {
            let mut trust = node.trust.clone();
            trust.insert(key, None);
            handshake::read_hello(node.identity, &trust, hello)
        }
        _ => Err(failure),
    }
}
