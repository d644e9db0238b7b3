//! The handshake of PROTOCOL.md section 2, as pure functions over frame
//! bodies.
//!
//! Each step takes the bytes that arrived and either returns the next
//! message to send, or a [`Failure`] that says what went wrong and which
//! REJECT code (if any) to send before closing. The endpoint owns the
//! sockets, the timers and the nonces' source; this module owns the rules,
//! including their order: a responder decides trust before it signs
//! anything, so an untrusted dialer cannot make it do expensive work.

use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::codes::RejectCode;
use crate::identity::{Identity, PEER_ID_LEN, PeerId};
use crate::trust::TrustList;

/// The magic that opens every handshake frame body.
pub const MAGIC: &[u8; 4] = b"PNET";
/// The version byte of version-1 handshake frames (version 2's is
/// `noise::VERSION_2`).
pub const VERSION: u8 = 1;
/// Length of a HELLO body.
pub const HELLO_LEN: usize = 70;
/// Length of a WELCOME body.
pub const WELCOME_LEN: usize = 134;
/// Length of a PROOF body.
pub const PROOF_LEN: usize = 70;
/// Length of a REJECT body.
pub const REJECT_LEN: usize = 7;
/// The largest version-1 handshake frame body (WELCOME). A connection's
/// limit while its handshake runs is version 2's INIT (150 bytes) on both
/// versions, so a version-1 node reads a whole INIT to answer it with
/// `unsupported_version`; a header announcing more is refused at once,
/// so no handshake frame makes us buffer more than that. (A version-2
/// responder's wait for the initiator's first record is another matter:
/// that is a record, bounded by `max_frame_len`, `connection/records.rs`.)
pub const MAX_HANDSHAKE_FRAME: u32 = WELCOME_LEN as u32;

const HEADER_LEN: usize = 6;
const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_PROOF: u8 = 3;
const KIND_REJECT: u8 = 4;
const WELCOME_LABEL: &[u8] = b"peernet-v1-welcome";
const PROOF_LABEL: &[u8] = b"peernet-v1-proof";

/// A nonce: 32 bytes from a cryptographically secure RNG, fresh per
/// connection.
pub type Nonce = [u8; 32];

/// Why a handshake step failed: what to report locally and what REJECT
/// to send, if any, before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The REJECT to send (None: close silently, e.g. the peer's REJECT).
    pub send: Option<RejectCode>,
    /// What the local side reports.
    pub error: crate::HandshakeError,
}

impl Failure {
    pub(crate) fn refuse(code: RejectCode) -> Failure {
        Failure {
            send: Some(code),
            error: crate::HandshakeError::Refused(code),
        }
    }

    /// A HELLO or INIT naming a peer that connects more often than
    /// `Config::peer_connects` allows (`reconnects.rs`): REJECT `busy`,
    /// reported as `Throttled`.
    pub(crate) fn throttled() -> Failure {
        Failure {
            send: Some(RejectCode::Busy),
            error: crate::HandshakeError::Throttled,
        }
    }
}

/// The body of a REJECT frame.
pub fn reject(code: RejectCode) -> [u8; REJECT_LEN] {
    let mut out = [0u8; REJECT_LEN];
    out[..HEADER_LEN].copy_from_slice(&header(KIND_REJECT));
    out[HEADER_LEN] = code.code();
    out
}

fn header(kind: u8) -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, kind]
}

/// The first checks of a handshake frame, section 2.1 step 2: magic
/// (else `malformed`), then the version whatever the length (else
/// `unsupported_version`), then room for the kind (else `malformed`).
/// A responder that is `busy` makes them too before it answers `busy`,
/// so that a peer of another version learns that, not to retry.
pub(crate) fn check_header(body: &[u8]) -> Result<(), Failure> {
    if body.get(..4) != Some(&MAGIC[..]) {
        return Err(Failure::refuse(RejectCode::Malformed));
    }
    // (the version "whatever the length": a 5-byte `PNET|02` too)
    match body.get(4) {
        None => return Err(Failure::refuse(RejectCode::Malformed)),
        Some(&v) if v != VERSION => {
            return Err(Failure::refuse(RejectCode::UnsupportedVersion));
        }
        Some(_) if body.len() < HEADER_LEN => {
            return Err(Failure::refuse(RejectCode::Malformed));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Checks magic, version, kind and length in the order section 2.1
/// gives. A REJECT from the other side surfaces as `Rejected`, so each
/// role handles it in one place.
fn expect(body: &[u8], kind: u8, len: usize) -> Result<(), Failure> {
    check_header(body)?;
    if body[5] == KIND_REJECT && body.len() == REJECT_LEN {
        return Err(Failure {
            send: None,
            error: crate::HandshakeError::Rejected(RejectCode::from_code(body[6])),
        });
    }
    if body[5] != kind || body.len() != len {
        return Err(Failure::refuse(RejectCode::Malformed));
    }
    Ok(())
}

/// Reads a REJECT frame body, if `body` is one. An initiator needs this
/// after PROOF: the responder's verdict on PROOF may arrive after the
/// initiator already treats the connection as established.
pub fn parse_reject(body: &[u8]) -> Option<RejectCode> {
    (body.len() == REJECT_LEN && body[..HEADER_LEN] == header(KIND_REJECT))
        .then(|| RejectCode::from_code(body[6]))
}

/// Checks a key read from the wire: trusted, not ours, valid, not weak.
/// The trust list is looked up with the raw bytes first, so a key nobody
/// trusts is refused without the cost of decompressing the point; only a
/// trusted key is decoded. Returns the decoded key too: decoding costs a
/// good part of a verification, so it is done once per handshake.
fn trusted_key(
    bytes: &[u8],
    identity: &Identity,
    trust: &TrustList,
) -> Result<(PeerId, VerifyingKey), Failure> {
    let untrusted = || Failure::refuse(RejectCode::Untrusted);
    let raw: &[u8; PEER_ID_LEN] = bytes.try_into().map_err(|_| untrusted())?;
    if raw == identity.peer_id().as_bytes() || !trust.contains_raw(raw) {
        return Err(untrusted());
    }
    // A trusted key was valid when it was trusted; checked again anyway.
    let key = PeerId::verifying_key_of(raw).map_err(|_| untrusted())?;
    Ok((PeerId::from_verified(*raw), key))
}

fn verify(key: &VerifyingKey, parts: &[&[u8]], sig: &[u8]) -> Result<(), Failure> {
    let sig: &[u8; 64] = sig
        .try_into()
        .map_err(|_| Failure::refuse(RejectCode::Malformed))?;
    let signature = Signature::from_bytes(sig);
    // The signed strings are at most 18 + 70 + 134 bytes: assemble them on
    // the stack rather than allocate per handshake.
    let mut buf = [0u8; 256];
    let mut len = 0;
    for part in parts {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    key.verify_strict(&buf[..len], &signature)
        .map_err(|_| Failure::refuse(RejectCode::BadSignature))
}

fn sign(identity: &Identity, parts: &[&[u8]]) -> [u8; 64] {
    let mut buf = [0u8; 256];
    let mut len = 0;
    for part in parts {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    identity.sign(&buf[..len]).to_bytes()
}

/// The initiator after sending HELLO, waiting for WELCOME.
#[derive(Clone)]
pub struct Initiator {
    hello: [u8; HELLO_LEN],
    expected: Option<PeerId>,
}

impl Initiator {
    /// Starts a dial: returns the state and the HELLO body to send.
    /// `expected` is the PeerId dialed, when the dial named one.
    pub fn start(identity: &Identity, nonce: &Nonce, expected: Option<PeerId>) -> Initiator {
        let mut hello = [0u8; HELLO_LEN];
        hello[..HEADER_LEN].copy_from_slice(&header(KIND_HELLO));
        hello[HEADER_LEN..HEADER_LEN + PEER_ID_LEN].copy_from_slice(identity.peer_id().as_bytes());
        hello[HEADER_LEN + PEER_ID_LEN..].copy_from_slice(nonce);
        Initiator { hello, expected }
    }

    /// The HELLO body this dial sends.
    pub fn hello(&self) -> &[u8; HELLO_LEN] {
        &self.hello
    }

    /// The PeerId this dial must reach, if it named one.
    pub fn expected(&self) -> Option<PeerId> {
        self.expected
    }

    /// Reads WELCOME (step 3): on success, the verified responder and the
    /// PROOF body to send.
    pub fn on_welcome(
        &self,
        identity: &Identity,
        trust: &TrustList,
        body: &[u8],
    ) -> Result<(PeerId, [u8; PROOF_LEN]), Failure> {
        expect(body, KIND_WELCOME, WELCOME_LEN)?;
        let key = &body[HEADER_LEN..HEADER_LEN + PEER_ID_LEN];
        let nonce = &body[HEADER_LEN + PEER_ID_LEN..HEADER_LEN + 2 * PEER_ID_LEN];
        let sig = &body[HEADER_LEN + 2 * PEER_ID_LEN..];
        let (peer, verifying_key) = trusted_key(key, identity, trust).map_err(|mut failure| {
            // The wire answer stays `untrusted` (the spec checks trust
            // first), but a dial that named a PeerId and reached another
            // valid key reports what the caller needs to hear.
            if let (Some(expected), Ok(actual)) = (self.expected, PeerId::from_slice(key)) {
                if expected != actual {
                    failure.error = crate::HandshakeError::UnexpectedPeer { expected, actual };
                }
            }
            failure
        })?;
        if let Some(expected) = self.expected {
            if expected != peer {
                return Err(Failure {
                    send: Some(RejectCode::UnexpectedPeer),
                    error: crate::HandshakeError::UnexpectedPeer {
                        expected,
                        actual: peer,
                    },
                });
            }
        }
        verify(
            &verifying_key,
            &[WELCOME_LABEL, &self.hello, key, nonce],
            sig,
        )?;
        let mut proof = [0u8; PROOF_LEN];
        proof[..HEADER_LEN].copy_from_slice(&header(KIND_PROOF));
        proof[HEADER_LEN..].copy_from_slice(&sign(identity, &[PROOF_LABEL, &self.hello, body]));
        Ok((peer, proof))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// A dialer whose HELLO passed [`read_hello`]: trusted, not yet proven.
#[derive(Clone, Debug)]
pub struct Dialer {
    peer: PeerId,
    key: VerifyingKey,
}

impl Dialer {
    /// The PeerId its HELLO named.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

/// Reads HELLO (step 2) and checks the dialer's key against the trust list
/// before anything is signed; then call [`Responder::welcome`].
pub fn read_hello(identity: &Identity, trust: &TrustList, body: &[u8]) -> Result<Dialer, Failure> {
    expect(body, KIND_HELLO, HELLO_LEN)?;
    let (peer, key) = trusted_key(&body[HEADER_LEN..HEADER_LEN + PEER_ID_LEN], identity, trust)?;
    Ok(Dialer { peer, key })
}

/// The responder after sending WELCOME, waiting for PROOF.
#[derive(Clone)]
pub struct Responder {
    dialer: Dialer,
    // HELLO and WELCOME, as signed by PROOF.
    transcript: [u8; HELLO_LEN + WELCOME_LEN],
}

impl Responder {
    /// Signs and builds WELCOME for a HELLO that [`read_hello`] accepted
    /// from `dialer`. Returns the state and the WELCOME body to send.
    pub fn welcome(identity: &Identity, dialer: Dialer, hello: &[u8], nonce: &Nonce) -> Responder {
        let mut transcript = [0u8; HELLO_LEN + WELCOME_LEN];
        transcript[..HELLO_LEN].copy_from_slice(&hello[..HELLO_LEN]);
        let welcome = &mut transcript[HELLO_LEN..];
        welcome[..HEADER_LEN].copy_from_slice(&header(KIND_WELCOME));
        welcome[HEADER_LEN..HEADER_LEN + PEER_ID_LEN]
            .copy_from_slice(identity.peer_id().as_bytes());
        welcome[HEADER_LEN + PEER_ID_LEN..HEADER_LEN + 2 * PEER_ID_LEN].copy_from_slice(nonce);
        let sig = sign(
            identity,
            &[
                WELCOME_LABEL,
                &hello[..HELLO_LEN],
                identity.peer_id().as_bytes(),
                nonce,
            ],
        );
        transcript[HELLO_LEN + HEADER_LEN + 2 * PEER_ID_LEN..].copy_from_slice(&sig);
        Responder { dialer, transcript }
    }

    /// The dialer, as HELLO named it (not yet proven).
    pub fn peer(&self) -> PeerId {
        self.dialer.peer
    }

    /// The WELCOME body to send.
    pub fn welcome_body(&self) -> &[u8] {
        &self.transcript[HELLO_LEN..]
    }

    /// Reads PROOF (step 4); on success the dialer has proven its key.
    pub fn on_proof(&self, body: &[u8]) -> Result<PeerId, Failure> {
        expect(body, KIND_PROOF, PROOF_LEN)?;
        verify(
            &self.dialer.key,
            &[PROOF_LABEL, &self.transcript],
            &body[HEADER_LEN..],
        )?;
        Ok(self.dialer.peer)
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("peer", &self.dialer.peer)
            .finish_non_exhaustive()
    }
}
