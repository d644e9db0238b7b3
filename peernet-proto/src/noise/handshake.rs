//! Section 6: the IK handshake. INIT built and read (with `mac1`), RESP
//! built and read, Split into a [`Transport`], each failure mapped to its
//! REJECT code in the order of section 6.1.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::key_cache::{KeyCache, PeerKey};
use super::keys::{DhPublic, Job, LocalStatic, static_key_of, x25519_many};
use super::record::{CipherState, TAG_LEN, Transport};
use super::symmetric::{SymmetricState, mac1_key};
use crate::HandshakeError;
use crate::codes::RejectCode;
use crate::handshake::{Failure, MAGIC, REJECT_LEN};
use crate::identity::{PEER_ID_LEN, PeerId};
use crate::trust::TrustList;

/// The version byte of version-2 handshake frames.
pub const VERSION_2: u8 = 2;
/// Length of an INIT body.
pub const INIT_LEN: usize = 150;
/// Length of a RESP body.
pub const RESP_LEN: usize = 54;

const HEADER_LEN: usize = 6;
const KIND_INIT: u8 = 1;
const KIND_RESP: u8 = 2;
const KIND_REJECT: u8 = 4;
const KEY_LEN: usize = 32;
// INIT: header | e | enc(s) | enc(PeerId) | mac1.
const INIT_E: usize = HEADER_LEN;
const INIT_S: usize = INIT_E + KEY_LEN;
const INIT_PAYLOAD: usize = INIT_S + KEY_LEN + TAG_LEN;
const INIT_MAC1: usize = INIT_PAYLOAD + PEER_ID_LEN + TAG_LEN;
// RESP: header | e | enc(empty).
const RESP_E: usize = HEADER_LEN;
const RESP_TAG: usize = RESP_E + KEY_LEN;

fn header(kind: u8) -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION_2, kind]
}

/// A version-2 REJECT body: `"PNET" | 0x02 | 0x04 | code`.
pub fn reject_v2(code: RejectCode) -> [u8; REJECT_LEN] {
    let h = header(KIND_REJECT);
    [h[0], h[1], h[2], h[3], h[4], h[5], code.code()]
}

/// The code of a REJECT, if `body` is one, whatever its version byte (an
/// initiator reading RESP, and a responder waiting for the first record:
/// at 7 bytes a REJECT can never be a record).
pub fn reject_in(body: &[u8]) -> Option<RejectCode> {
    (body.len() == REJECT_LEN && body[..4] == MAGIC[..] && body[5] == KIND_REJECT)
        .then(|| RejectCode::from_code(body[6]))
}

/// The REJECT body a responder sends for `failure` of [`check_init`] or
/// [`read_init`] on `received`: a version-1 INIT (a HELLO) is answered
/// with the version-1 REJECT `unsupported_version` (`PNET|01|04|02`, which
/// a version-1 initiator understands), everything else with a version-2
/// header. `None` when nothing is to be sent.
pub fn reject_answer(failure: &Failure, received: &[u8]) -> Option<[u8; REJECT_LEN]> {
    let code = failure.send?;
    let mut body = reject_v2(code);
    if code == RejectCode::UnsupportedVersion && received.get(4) == Some(&1) {
        body[4] = 1;
    }
    Some(body)
}

/// A dial's failure for a responder key that gives an all-zero X25519
/// result (no valid PeerId does): reported as the responder's bad key.
fn bad_key() -> Failure {
    Failure {
        send: None,
        error: HandshakeError::Refused(RejectCode::Untrusted),
    }
}

/// The initiator after sending INIT, waiting for RESP. Secrets are wiped
/// on drop.
pub struct InitiatorV2 {
    state: SymmetricState,
    ephemeral: [u8; 32],
    static_secret: [u8; 32],
    responder: PeerId,
}

impl InitiatorV2 {
    /// Starts a dial to `responder` (which the caller has checked is in its
    /// trust list, step 1): returns the state and the INIT body to send.
    /// `ephemeral_secret` must be 32 fresh bytes from a secure RNG.
    ///
    /// Fails only if an X25519 result is all zeros, which a valid PeerId
    /// cannot cause; it is then reported as the responder's bad key.
    pub fn start(
        local: &LocalStatic,
        responder: PeerId,
        mut ephemeral_secret: [u8; 32],
    ) -> Result<(InitiatorV2, [u8; INIT_LEN]), Failure> {
        let started = match static_key_of(responder.as_bytes()) {
            Ok((_, public, point)) => {
                let rs = PeerKey { public, point };
                InitiatorV2::start_keyed(local, responder, &rs, ephemeral_secret)
            }
            Err(_) => Err(bad_key()),
        };
        ephemeral_secret.zeroize();
        started
    }

    /// [`InitiatorV2::start`] with the responder's static key already
    /// derived (from a [`KeyCache`]): `rs` must be `responder`'s key.
    pub fn start_keyed(
        local: &LocalStatic,
        responder: PeerId,
        rs: &PeerKey,
        ephemeral_secret: [u8; 32],
    ) -> Result<(InitiatorV2, [u8; INIT_LEN]), Failure> {
        // (wiped on every way out, the refusals' included)
        let ephemeral_secret = Zeroizing::new(ephemeral_secret);
        let (rs, rs_key) = (&rs.public, rs.point);
        let mut state = SymmetricState::initialize(rs);
        let mut init = [0u8; INIT_LEN];
        init[..HEADER_LEN].copy_from_slice(&header(KIND_INIT));
        // e, es and ss: all three known now, converted with one inversion.
        let [e, es, ss] = x25519_many([
            Job::Public(&ephemeral_secret),
            Job::Dh(&rs_key, &ephemeral_secret),
            Job::Dh(&rs_key, local.secret()),
        ]);
        let e = e.map_err(|_| bad_key())?;
        init[INIT_E..INIT_S].copy_from_slice(&*e);
        state.mix_hash(&*e);
        state.mix_key(&*es.map_err(|_| bad_key())?);
        init[INIT_S..INIT_S + KEY_LEN].copy_from_slice(local.public());
        state.encrypt_and_hash(&mut init[INIT_S..INIT_PAYLOAD]);
        state.mix_key(&*ss.map_err(|_| bad_key())?);
        init[INIT_PAYLOAD..INIT_PAYLOAD + PEER_ID_LEN].copy_from_slice(local.peer_id().as_bytes());
        state.encrypt_and_hash(&mut init[INIT_PAYLOAD..INIT_MAC1]);
        let mac1 = mac1_key(&responder).mac(&init[..INIT_MAC1]);
        init[INIT_MAC1..].copy_from_slice(&mac1);
        let initiator = InitiatorV2 {
            state,
            ephemeral: *ephemeral_secret,
            static_secret: *local.secret(),
            responder,
        };
        Ok((initiator, init))
    }

    /// The PeerId this dial must reach.
    pub fn responder(&self) -> PeerId {
        self.responder
    }

    /// Reads RESP, or REJECT (step 3). On success the connection is
    /// established on this side, and the caller MUST send its first record
    /// at once (its queued envelopes, or an empty record). Either way the
    /// state is spent: drop it where it lies (a state moved out of a box
    /// would leave the box's copy of the secrets unwiped).
    pub fn read_resp(&mut self, body: &[u8]) -> Result<Transport, Failure> {
        // A REJECT is recognised whatever its version byte.
        if let Some(code) = reject_in(body) {
            return Err(Failure {
                send: None,
                error: HandshakeError::Rejected(code),
            });
        }
        if body.len() != RESP_LEN || body[..HEADER_LEN] != header(KIND_RESP) {
            return Err(Failure::refuse(RejectCode::Malformed));
        }
        let bad = || Failure::refuse(RejectCode::BadSignature);
        let mut re = [0u8; KEY_LEN];
        re.copy_from_slice(&body[RESP_E..RESP_TAG]);
        self.state.mix_hash(&re);
        let re = DhPublic::new(&re);
        let [ee, se] = x25519_many([
            Job::Dh(&re, &self.ephemeral),
            Job::Dh(&re, &self.static_secret),
        ]);
        self.state.mix_key(&*ee.map_err(|_| bad())?);
        self.state.mix_key(&*se.map_err(|_| bad())?);
        self.state
            .decrypt_and_hash(&body[RESP_TAG..], &mut [])
            .ok_or_else(bad)?;
        let (mut k1, mut k2) = self.state.split();
        let transport = Transport {
            send: CipherState::new(k1),
            recv: CipherState::new(k2),
            handshake_hash: self.state.handshake_hash(),
        };
        k1.zeroize();
        k2.zeroize();
        Ok(transport)
    }
}

impl Drop for InitiatorV2 {
    fn drop(&mut self) {
        self.ephemeral.zeroize();
        self.static_secret.zeroize();
    }
}

impl fmt::Debug for InitiatorV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiatorV2")
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

/// An INIT whose header and `mac1` passed (steps 2.1 and 2.2), before any
/// X25519 work. The caller may now check [`CheckedInit::ephemeral`]
/// against its [`super::ReplayCache`] and close on a repeat, then call
/// [`CheckedInit::accept`].
#[derive(Debug, Clone, Copy)]
pub struct CheckedInit<'a> {
    body: &'a [u8; INIT_LEN],
}

/// Steps 2.1 and 2.2 of section 6.1: magic, version, kind and length, then
/// `mac1` in constant time.
pub fn check_init<'a>(local: &LocalStatic, body: &'a [u8]) -> Result<CheckedInit<'a>, Failure> {
    if body.len() < 5 || body[..4] != MAGIC[..] {
        return Err(Failure::refuse(RejectCode::Malformed));
    }
    if body[4] != VERSION_2 {
        return Err(Failure::refuse(RejectCode::UnsupportedVersion));
    }
    let body: &[u8; INIT_LEN] = body
        .try_into()
        .map_err(|_| Failure::refuse(RejectCode::Malformed))?;
    if body[5] != KIND_INIT {
        return Err(Failure::refuse(RejectCode::Malformed));
    }
    let mac1 = local.mac1().mac(&body[..INIT_MAC1]);
    if !bool::from(mac1.ct_eq(&body[INIT_MAC1..])) {
        return Err(Failure::refuse(RejectCode::UnexpectedPeer));
    }
    Ok(CheckedInit { body })
}

/// What a responder gets from an INIT it accepts.
#[derive(Debug)]
pub struct Accepted {
    /// The initiator, proven to hold its static key by the Noise message
    /// (and to hold it now only once its first record decrypts).
    pub peer: PeerId,
    /// The keys. The connection is established only when
    /// `transport.recv` opens the initiator's first record (step 4); until
    /// then nothing is sent with `transport.send`.
    pub transport: Transport,
    /// The RESP body to send.
    pub resp: [u8; RESP_LEN],
}

impl<'a> CheckedInit<'a> {
    /// The initiator's ephemeral public key, for the replay cache.
    pub fn ephemeral(&self) -> &'a [u8; 32] {
        self.body[INIT_E..INIT_S]
            .try_into()
            .unwrap_or_else(|_| unreachable!("INIT_E..INIT_S is 32 bytes"))
    }

    /// Steps 2.3 to 2.5 of section 6.1 (`busy`, the Noise message, trust)
    /// and RESP with the responder's `ephemeral_secret`.
    pub fn accept(
        self,
        local: &LocalStatic,
        trust: &TrustList,
        busy: bool,
        ephemeral_secret: [u8; 32],
    ) -> Result<Accepted, Failure> {
        let mut keys = KeyCache::new();
        self.accept_unless(local, trust, &mut keys, busy, &|_| false, ephemeral_secret)
    }

    /// [`CheckedInit::accept`], but a trusted initiator for which
    /// `throttled` says so is refused `busy` ([`HandshakeError::Throttled`])
    /// before any more work: no ephemeral key, no RESP (local policy,
    /// `reconnects.rs`). The initiator's static key, once the Noise
    /// message proved it, is looked up in `keys` (saving the decoding of
    /// its PeerId) and kept there once it is trusted.
    pub fn accept_unless(
        self,
        local: &LocalStatic,
        trust: &TrustList,
        keys: &mut KeyCache,
        busy: bool,
        throttled: &dyn Fn(&PeerId) -> bool,
        ephemeral_secret: [u8; 32],
    ) -> Result<Accepted, Failure> {
        // (wiped on every way out, the refusals' included)
        let ephemeral_secret = Zeroizing::new(ephemeral_secret);
        if busy {
            return Err(Failure::refuse(RejectCode::Busy));
        }
        let bad = || Failure::refuse(RejectCode::BadSignature);
        let body = self.body;
        let mut state = SymmetricState::initialize(local.public());
        let re = self.ephemeral();
        state.mix_hash(re);
        let re = DhPublic::new(re);
        state.mix_key(&*re.dh(local.secret()).map_err(|_| bad())?);
        let mut rs = [0u8; KEY_LEN];
        state
            .decrypt_and_hash(&body[INIT_S..INIT_PAYLOAD], &mut rs)
            .ok_or_else(bad)?;
        // (the key shown is looked up in `keys` only once the INIT proved
        // it: see `key_cache.rs`)
        let rs_key = DhPublic::new(&rs);
        state.mix_key(&*rs_key.dh(local.secret()).map_err(|_| bad())?);
        let mut payload = [0u8; PEER_ID_LEN];
        state
            .decrypt_and_hash(&body[INIT_PAYLOAD..INIT_MAC1], &mut payload)
            .ok_or_else(bad)?;
        // Only the holder of `rs`'s secret could encrypt the payload: a key
        // kept for a trusted peer is that peer's, derived from its PeerId,
        // so the PeerId it must come with is known.
        let kept = keys.by_public(&rs);
        let peer = match kept {
            Some((peer, _)) if peer.as_bytes() == &payload => peer,
            // (the PeerId not kept, or the other PeerId of the same key)
            _ => {
                let (peer, claimed, _) = static_key_of(&payload).map_err(|_| bad())?;
                if !bool::from(claimed.ct_eq(&rs)) {
                    return Err(bad());
                }
                peer
            }
        };
        if peer == local.peer_id() || !trust.contains(&peer) {
            tracing::info!(peer = %peer, "untrusted dialer refused");
            return Err(Failure::refuse(RejectCode::Untrusted));
        }
        if kept.is_none_or(|(kept, _)| kept != peer) {
            keys.insert(
                peer,
                PeerKey {
                    public: rs,
                    point: rs_key,
                },
            );
        }
        if throttled(&peer) {
            return Err(Failure::throttled());
        }
        let mut resp = [0u8; RESP_LEN];
        resp[..HEADER_LEN].copy_from_slice(&header(KIND_RESP));
        let [e, ee, se] = x25519_many([
            Job::Public(&ephemeral_secret),
            Job::Dh(&re, &ephemeral_secret),
            Job::Dh(&rs_key, &ephemeral_secret),
        ]);
        drop(ephemeral_secret);
        let e = e.map_err(|_| bad())?;
        resp[RESP_E..RESP_TAG].copy_from_slice(&*e);
        state.mix_hash(&*e);
        state.mix_key(&*ee.map_err(|_| bad())?);
        state.mix_key(&*se.map_err(|_| bad())?);
        state.encrypt_and_hash(&mut resp[RESP_TAG..]);
        let (mut k1, mut k2) = state.split();
        let transport = Transport {
            send: CipherState::new(k2),
            recv: CipherState::new(k1),
            handshake_hash: state.handshake_hash(),
        };
        k1.zeroize();
        k2.zeroize();
        Ok(Accepted {
            peer,
            transport,
            resp,
        })
    }
}

/// Step 2 of section 6.1 in one call, without the replay check:
/// [`check_init`], then [`CheckedInit::accept`].
pub fn read_init(
    local: &LocalStatic,
    trust: &TrustList,
    body: &[u8],
    busy: bool,
    ephemeral_secret: [u8; 32],
) -> Result<Accepted, Failure> {
    check_init(local, body)?.accept(local, trust, busy, ephemeral_secret)
}
