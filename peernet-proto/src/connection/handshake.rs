//! A connection during its handshake: the state it holds between frames
//! and the step each frame takes it through. The messages and their rules
//! are the handshake module's ([`crate::handshake`], version 1); this is
//! where they meet the connection's send queue, the node's identity, trust
//! list and RNG.
//!
//! Each version's states sit side by side in [`Handshake`]: version 2
//! (PROTOCOL.md Part B, Noise IK, in [`crate::noise`]) finishes with the
//! same [`Step::Done`] as version 1, plus its record keys. Its responder
//! has one more step: after RESP it holds the keys ([`Step::Keyed`]) but is
//! established only when the initiator's first record decrypts, which the
//! connection's record layer sees.

use alloc::boxed::Box;

use zeroize::Zeroize;

use crate::config::{ProtocolVersion, fault};
use crate::error::{ConnectError, HandshakeError};
use crate::frame::encode_frame;
use crate::handshake::{self, Failure, Initiator, Responder};
use crate::identity::PeerId;
use crate::noise::{self, InitiatorV2, Transport};

use super::transmit::Transmit;
use super::{Ctx, Node};

/// Where a connection's handshake stands.
pub(super) enum Handshake {
    /// Version 1 (PROTOCOL.md section 2).
    V1(V1),
    /// Version 2 (PROTOCOL.md section 6).
    V2(V2),
}

/// The states of a version-2 handshake.
pub(super) enum V2 {
    /// Accepted; waiting for INIT. `busy` when accepted beyond
    /// `max_handshakes`: its INIT gets REJECT `busy` (after `mac1`).
    Accepted { busy: bool },
    /// Dialed; INIT sent, waiting for RESP.
    Dialed(Box<InitiatorV2>),
    /// RESP sent, keys held: waiting for the initiator's first record
    /// (step 4), which the record layer opens.
    Pending { peer: PeerId },
    /// INIT refused `busy`: the trusted peer it named connects too often
    /// (`reconnects.rs`). Ends at once; kept so the failure names it.
    Throttled(PeerId),
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
    /// HELLO refused `busy`: the trusted peer it named connects too often
    /// (`reconnects.rs`). Ends at once; kept so the failure names it.
    Throttled(PeerId),
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
        /// Version 2: the record keys.
        keys: Option<Transport>,
    },
    /// Version 2, responder: RESP is queued and these are the keys; the
    /// connection is established when the first record opens with them.
    Keyed {
        /// The initiator, not yet proven to hold its key now.
        peer: PeerId,
        /// The record keys.
        keys: Transport,
    },
    /// The handshake failed.
    Failed(Failure),
}

impl Handshake {
    /// Starts a dial: queues HELLO (version 1) or INIT (version 2, which
    /// needs `expected`, the PeerId dialed).
    pub(super) fn dial(
        node: &mut Node<'_>,
        expected: Option<PeerId>,
        tx: &mut Transmit,
        ctx: &mut Ctx,
    ) -> Result<Handshake, ConnectError> {
        let mut nonce = [0u8; 32];
        node.rng.fill_bytes(&mut nonce);
        if ctx.config.version == ProtocolVersion::V2 {
            let peer = expected.ok_or(ConnectError::PeerIdRequired)?;
            // (in version 2 the nonce is the ephemeral secret)
            let started = match node.keys.derive(&peer) {
                Ok(rs) => InitiatorV2::start_keyed(node.local, peer, &rs, nonce),
                Err(_) => InitiatorV2::start(node.local, peer, nonce),
            };
            nonce.zeroize();
            let (initiator, init) = started.map_err(|_| ConnectError::Untrusted(peer))?;
            tx.push_handshake(&init, ctx);
            return Ok(Handshake::V2(V2::Dialed(Box::new(initiator))));
        }
        let initiator = Initiator::start(node.identity, &nonce, expected);
        tx.push_handshake(initiator.hello(), ctx);
        Ok(Handshake::V1(V1::Dialed(initiator)))
    }

    /// Waits for a dialer's HELLO or INIT; `busy` refuses it.
    pub(super) fn accept(busy: bool, version: ProtocolVersion) -> Handshake {
        match version {
            ProtocolVersion::V1 => Handshake::V1(V1::Accepted { busy }),
            ProtocolVersion::V2 => Handshake::V2(V2::Accepted { busy }),
        }
    }

    /// An accepted handshake that found every slot held (`busy`) takes one
    /// that has freed since; false if it was not waiting for one.
    pub(super) fn take_slot(&mut self) -> bool {
        match self {
            Handshake::V1(V1::Accepted { busy }) | Handshake::V2(V2::Accepted { busy }) => {
                core::mem::replace(busy, false)
            }
            _ => false,
        }
    }

    /// Whether this handshake holds record keys already: its next frame is
    /// a record (a version-2 responder after RESP).
    pub(super) fn is_v2(&self) -> bool {
        matches!(self, Handshake::V2(_))
    }

    /// The peer, once known (dialed, or named by its HELLO).
    pub(super) fn peer(&self) -> Option<PeerId> {
        match self {
            Handshake::V1(V1::Accepted { .. }) => None,
            Handshake::V1(V1::Dialed(i)) => i.expected(),
            Handshake::V1(V1::Welcomed(r)) => Some(r.peer()),
            Handshake::V2(V2::Accepted { .. }) => None,
            Handshake::V2(V2::Dialed(i)) => Some(i.responder()),
            Handshake::V2(V2::Pending { peer }) => Some(*peer),
            Handshake::V1(V1::Throttled(peer)) | Handshake::V2(V2::Throttled(peer)) => Some(*peer),
        }
    }

    /// Whether this is a version-1 responder that sent WELCOME and waits
    /// for PROOF.
    pub(super) fn awaits_proof(&self) -> bool {
        matches!(self, Handshake::V1(V1::Welcomed(_)))
    }

    /// Whether this inbound handshake counts against `max_handshakes`
    /// (a throttled one held its slot: only one with a slot is throttled).
    pub(super) fn counts_against_limit(&self) -> bool {
        matches!(
            self,
            Handshake::V1(V1::Accepted { busy: false } | V1::Welcomed(_) | V1::Throttled(_))
                | Handshake::V2(
                    V2::Accepted { busy: false } | V2::Pending { .. } | V2::Throttled(_)
                )
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
            // (magic and version first, as version 2 does: a peer of
            // another version learns that rather than to retry)
            Handshake::V1(V1::Accepted { busy: true }) => match handshake::check_header(body) {
                Err(failure) => Step::Failed(failure),
                Ok(()) => Step::Failed(Failure::refuse(crate::RejectCode::Busy)),
            },
            Handshake::V1(V1::Accepted { busy: false }) => {
                let hello = handshake::read_hello(node.identity, node.trust, body);
                #[cfg(feature = "fault-injection")]
                let hello =
                    hello.or_else(|failure| fault_skip_trust_check(node, ctx, body, failure));
                match hello {
                    Err(failure) => {
                        if failure.error == HandshakeError::Refused(crate::RejectCode::Untrusted) {
                            // HELLO's key field (section 2), as sent.
                            let key = body.get(6..6 + 32).map(PeerId::from_slice);
                            tracing::info!(peer = ?key.and_then(Result::ok), "untrusted dialer refused");
                        }
                        Step::Failed(failure)
                    }
                    Ok(dialer) if !node.reconnects.admits(&dialer.peer(), ctx.now) => {
                        tracing::info!(peer = %dialer.peer(), "peer connects too often: refused busy");
                        *self = Handshake::V1(V1::Throttled(dialer.peer()));
                        Step::Failed(Failure::throttled())
                    }
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
                            keys: None,
                        }
                    }
                }
            }
            // No second trust check here: `unpair` ends a handshake in
            // progress with the peer its HELLO named, so a dialer still
            // proving itself is trusted.
            Handshake::V1(V1::Welcomed(responder)) => match responder.on_proof(body) {
                Err(_) if fault!(ctx.config, SkipProofCheck) => Step::Done {
                    peer: responder.peer(),
                    initiator: responder.peer(),
                    keys: None,
                },
                Err(failure) => Step::Failed(failure),
                Ok(peer) => Step::Done {
                    peer,
                    initiator: peer,
                    keys: None,
                },
            },
            Handshake::V2(V2::Accepted { busy }) => {
                let busy = *busy;
                let (step, throttled) = on_init(body, busy, node, tx, ctx);
                if let Step::Keyed { peer, .. } = &step {
                    *self = Handshake::V2(V2::Pending { peer: *peer });
                } else if let Some(peer) = throttled {
                    *self = Handshake::V2(V2::Throttled(peer));
                }
                step
            }
            Handshake::V2(V2::Dialed(initiator)) => {
                let peer = initiator.responder();
                let read = initiator.read_resp(body);
                // The spent state is dropped in its box, whose `Drop`
                // wipes the secrets there (moved out, they would be freed
                // unwiped).
                *self = Handshake::V2(V2::Pending { peer });
                match read {
                    Err(failure) => Step::Failed(failure),
                    Ok(keys) => Step::Done {
                        peer,
                        initiator: node.identity.peer_id(),
                        keys: Some(keys),
                    },
                }
            }
            // The record layer handles every frame from here on (and a
            // throttled handshake has ended).
            Handshake::V2(V2::Pending { .. } | V2::Throttled(_))
            | Handshake::V1(V1::Throttled(_)) => {
                Step::Failed(Failure::refuse(crate::RejectCode::Malformed))
            }
        }
    }
}

/// A version-2 responder reads INIT (PROTOCOL.md 6.1 step 2): header and
/// `mac1`, then the replay cache before any X25519 work, then `busy`, the
/// Noise message and trust; RESP is queued. With the step, the trusted
/// peer the INIT named if it was refused for connecting too often.
fn on_init(
    body: &[u8],
    busy: bool,
    node: &mut Node<'_>,
    tx: &mut Transmit,
    ctx: &mut Ctx,
) -> (Step, Option<PeerId>) {
    let checked = match noise::check_init(node.local, body) {
        Ok(checked) => checked,
        Err(failure) => return (refuse_v2(failure, body, tx), None),
    };
    let ephemeral = *checked.ephemeral();
    if node.replay.contains(&ephemeral, ctx.now) {
        let replayed = Failure {
            send: None,
            error: HandshakeError::Replayed,
        };
        return (Step::Failed(replayed), None);
    }
    let mut secret = [0u8; 32];
    node.rng.fill_bytes(&mut secret);
    let reconnects = node.reconnects;
    let throttled = core::cell::Cell::new(None);
    let throttled_peer = |peer: &PeerId| {
        let refused = !reconnects.admits(peer, ctx.now);
        if refused {
            tracing::info!(peer = %peer, "peer connects too often: refused busy");
            throttled.set(Some(*peer));
        }
        refused
    };
    let accepted = checked.accept_unless(
        node.local,
        node.trust,
        node.keys,
        busy,
        &throttled_peer,
        secret,
    );
    secret.zeroize();
    let throttled = throttled.get();
    let step = match accepted {
        Err(failure) => refuse_v2(failure, body, tx),
        Ok(accepted) => {
            node.replay.insert(ephemeral, ctx.now);
            tx.push_handshake(&accepted.resp, ctx);
            let peer = accepted.peer;
            if fault!(ctx.config, EstablishAtResp) {
                let done = Step::Done {
                    peer,
                    initiator: peer,
                    keys: Some(accepted.transport),
                };
                return (done, None);
            }
            Step::Keyed {
                peer,
                keys: accepted.transport,
            }
        }
    };
    (step, throttled)
}

/// Queues the REJECT a version-2 responder answers `failure` with (a
/// version-1 HELLO gets the version-1 `unsupported_version`); the failure
/// then has nothing left to send.
fn refuse_v2(failure: Failure, received: &[u8], tx: &mut Transmit) -> Step {
    if let Some(reject) = noise::reject_answer(&failure, received) {
        encode_frame(&reject, tx.out_for_farewell());
    }
    Step::Failed(Failure {
        send: None,
        error: failure.error,
    })
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
