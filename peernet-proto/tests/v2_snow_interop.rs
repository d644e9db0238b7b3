//! Interop with `snow`, an independent Noise implementation:
//! `Noise_IK_25519_ChaChaPoly_SHA256`, prologue `peernet-v2`, the static
//! keys of section 5. Our initiator against a snow responder and a snow
//! initiator against our responder, byte for byte, then records both ways.
//!
//! snow is built without default features, so it brings no second copy of
//! the crypto crates (its default resolver would add sha2 0.10, digest
//! 0.10, blake2, chacha20poly1305 0.10, curve25519-dalek 4 and getrandom
//! 0.3). The resolver below gives it X25519 from the curve25519-dalek the
//! core uses, SHA-256 from ring (not the sha2 crate the core uses) and
//! ChaCha20-Poly1305 from ring. What snow checks here is the Noise logic:
//! the handshake state, HMAC, HKDF, MixKey, MixHash, Split and nonces. The
//! primitives themselves are checked by `vectors/v2/`, made with libsodium
//! and another Noise implementation.
//!
//! snow also plays the attacker: an INIT that shows a static key its
//! sender does not hold (the key cache must not take it on trust), and
//! every other kind of INIT, answered alike with the cache cold or warm.

use std::cell::Cell;

use curve25519_dalek::montgomery::MontgomeryPoint;
use peernet_proto::testkit::handshake::Failure;
use peernet_proto::testkit::noise::{
    DhPublic, INIT_LEN, InitiatorV2, KeyCache, LocalStatic, PROLOGUE, PeerKey, RESP_LEN, Transport,
    check_init, read_init,
};
use peernet_proto::{HandshakeError, Identity, PeerId, RejectCode, TrustList};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState, TransportState};

const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_SHA256";

struct Resolver;

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(NoRng))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        matches!(choice, DHChoice::Curve25519).then(|| Box::new(X25519::default()) as _)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        matches!(choice, HashChoice::SHA256).then(|| Box::new(Sha256::new()) as _)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        matches!(choice, CipherChoice::ChaChaPoly).then(|| Box::new(ChaChaPoly([0; 32])) as _)
    }
}

/// The tests fix every ephemeral key, so snow must never draw one.
struct NoRng;

impl Random for NoRng {
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), snow::Error> {
        Err(snow::Error::Rng)
    }
}

thread_local! {
    /// A forger's claim: given this static secret, snow shows the public
    /// key next to it instead of the secret's own (its DH still uses the
    /// secret). Ephemeral keys are never claimed.
    static CLAIM: Cell<Option<([u8; 32], [u8; 32])>> = const { Cell::new(None) };
}

#[derive(Default)]
struct X25519 {
    secret: [u8; 32],
    public: [u8; 32],
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        self.secret.copy_from_slice(privkey);
        self.public = match CLAIM.get() {
            Some((secret, shown)) if secret == self.secret => shown,
            _ => MontgomeryPoint::mul_base_clamped(self.secret).to_bytes(),
        };
    }
    fn generate(&mut self, _: &mut dyn Random) -> Result<(), snow::Error> {
        Err(snow::Error::Rng)
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        &self.secret
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let point = MontgomeryPoint(pubkey[..32].try_into().map_err(|_| snow::Error::Dh)?);
        out[..32].copy_from_slice(&point.mul_clamped(self.secret).to_bytes());
        Ok(())
    }
}

struct Sha256(ring::digest::Context);

impl Sha256 {
    fn new() -> Sha256 {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Hash for Sha256 {
    fn name(&self) -> &'static str {
        "SHA256"
    }
    fn block_len(&self) -> usize {
        64
    }
    fn hash_len(&self) -> usize {
        32
    }
    fn reset(&mut self) {
        *self = Sha256::new();
    }
    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn result(&mut self, out: &mut [u8]) {
        let done = std::mem::replace(self, Sha256::new()).0.finish();
        out[..32].copy_from_slice(done.as_ref());
    }
}

struct ChaChaPoly([u8; 32]);

impl ChaChaPoly {
    fn key(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.0).unwrap())
    }
    fn nonce(n: u64) -> Nonce {
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(bytes)
    }
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }
    fn set(&mut self, key: &[u8; 32]) {
        self.0 = *key;
    }
    fn encrypt(&self, nonce: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        out[..len].copy_from_slice(plaintext);
        let tag = self
            .key()
            .seal_in_place_separate_tag(Self::nonce(nonce), Aad::from(ad), &mut out[..len])
            .unwrap();
        out[len..len + 16].copy_from_slice(tag.as_ref());
        len + 16
    }
    fn decrypt(
        &self,
        nonce: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key()
            .open_in_place(Self::nonce(nonce), Aad::from(ad), &mut buf)
            .map_err(|_| snow::Error::Decrypt)?;
        out[..plain.len()].copy_from_slice(plain);
        Ok(plain.len())
    }
}

fn builder() -> Builder<'static> {
    Builder::with_resolver(PATTERN.parse().unwrap(), Box::new(Resolver))
}

struct Peers {
    initiator: LocalStatic,
    responder: LocalStatic,
    trust_responder: TrustList,
}

fn peers(i: u8, r: u8) -> Peers {
    let initiator = LocalStatic::new(&Identity::from_seed(&[i; 32]));
    let responder = LocalStatic::new(&Identity::from_seed(&[r; 32]));
    let mut trust_responder = TrustList::new();
    trust_responder.insert(initiator.peer_id(), None);
    Peers {
        initiator,
        responder,
        trust_responder,
    }
}

/// mac1 computed independently of the core (ring's HMAC and SHA-256).
fn mac1(responder: &LocalStatic, body: &[u8]) -> [u8; 16] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"peernet-v2-mac1");
    ctx.update(responder.peer_id().as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref());
    ring::hmac::sign(&key, body).as_ref()[..16]
        .try_into()
        .unwrap()
}

/// Records both ways: ours sealed and snow opening, and the reverse,
/// byte for byte against what snow itself would send.
fn records_both_ways(ours: &mut Transport, theirs: &mut TransportState) {
    for (i, payload) in [&b""[..], b"\x82\x03\x07", &[0xa5; 3000]]
        .iter()
        .enumerate()
    {
        // Ours to snow.
        let mut record = payload.to_vec();
        ours.send.seal_record(&mut record, 0).unwrap();
        let mut out = vec![0u8; record.len()];
        let n = theirs.read_message(&record, &mut out).unwrap();
        assert_eq!(&out[..n], *payload, "record {i} to snow");
        // Snow to ours.
        let mut message = vec![0u8; payload.len() + 16];
        let n = theirs.write_message(payload, &mut message).unwrap();
        assert_eq!(n, message.len());
        let plain = ours.recv.open_record(&mut message).unwrap();
        assert_eq!(plain, *payload, "record {i} from snow");
    }
}

#[test]
fn our_initiator_against_snow_responder() {
    for (i, r, e_i, e_r) in [
        (0x11, 0x22, [0xa1; 32], [0xb2; 32]),
        (3, 200, [7; 32], [9; 32]),
    ] {
        let p = peers(i, r);
        let (mut initiator, init) =
            InitiatorV2::start(&p.initiator, p.responder.peer_id(), e_i).unwrap();
        assert_eq!(&init[..6], b"PNET\x02\x01");
        assert_eq!(init[134..], mac1(&p.responder, &init[..134]));
        let mut snow_r: HandshakeState = builder()
            .local_private_key(p.responder.secret())
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&e_r)
            .build_responder()
            .unwrap();
        let mut payload = [0u8; 64];
        let n = snow_r.read_message(&init[6..134], &mut payload).unwrap();
        assert_eq!(&payload[..n], p.initiator.peer_id().as_bytes());
        assert_eq!(snow_r.get_remote_static().unwrap(), p.initiator.public());
        let mut resp = [0u8; 54];
        resp[..6].copy_from_slice(b"PNET\x02\x02");
        assert_eq!(snow_r.write_message(&[], &mut resp[6..]).unwrap(), 48);
        // Byte for byte what our responder sends for the same keys.
        let ours = read_init(&p.responder, &p.trust_responder, &init, false, e_r).unwrap();
        assert_eq!(ours.resp, resp);
        let mut transport = initiator.read_resp(&resp).unwrap();
        assert_eq!(transport.handshake_hash, snow_r.get_handshake_hash());
        let mut theirs = snow_r.into_transport_mode().unwrap();
        records_both_ways(&mut transport, &mut theirs);
    }
}

#[test]
fn snow_initiator_against_our_responder() {
    for (i, r, e_i, e_r) in [
        (0x11, 0x22, [0xa1; 32], [0xb2; 32]),
        (42, 0xff, [1; 32], [2; 32]),
    ] {
        let p = peers(i, r);
        let mut snow_i = builder()
            .local_private_key(p.initiator.secret())
            .unwrap()
            .remote_public_key(p.responder.public())
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&e_i)
            .build_initiator()
            .unwrap();
        let mut init = [0u8; 150];
        init[..6].copy_from_slice(b"PNET\x02\x01");
        let n = snow_i
            .write_message(p.initiator.peer_id().as_bytes(), &mut init[6..134])
            .unwrap();
        assert_eq!(n, 128);
        let mac = mac1(&p.responder, &init[..134]);
        init[134..].copy_from_slice(&mac);
        // Byte for byte what our initiator sends for the same keys.
        let (_, ours) = InitiatorV2::start(&p.initiator, p.responder.peer_id(), e_i).unwrap();
        assert_eq!(ours, init);
        let accepted = read_init(&p.responder, &p.trust_responder, &init, false, e_r).unwrap();
        assert_eq!(accepted.peer, p.initiator.peer_id());
        assert_eq!(&accepted.resp[..6], b"PNET\x02\x02");
        let mut payload = [0u8; 16];
        assert_eq!(
            snow_i
                .read_message(&accepted.resp[6..], &mut payload)
                .unwrap(),
            0
        );
        let mut transport = accepted.transport;
        assert_eq!(transport.handshake_hash, snow_i.get_handshake_hash());
        let mut theirs = snow_i.into_transport_mode().unwrap();
        // The initiator's first record comes first (step 4).
        records_both_ways(&mut transport, &mut theirs);
    }
}

/// An INIT to `responder` by the holder of `secret`, showing `shown` as its
/// static key and `payload` as its PeerId: what anyone who knows the
/// responder's PeerId can send.
fn forged_init(
    responder: &LocalStatic,
    secret: &[u8; 32],
    shown: [u8; 32],
    payload: &[u8; 32],
    e: [u8; 32],
) -> [u8; INIT_LEN] {
    CLAIM.set(Some((*secret, shown)));
    let mut snow_i = builder()
        .local_private_key(secret)
        .unwrap()
        .remote_public_key(responder.public())
        .unwrap()
        .prologue(PROLOGUE)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&e)
        .build_initiator()
        .unwrap();
    CLAIM.set(None);
    let mut init = [0u8; INIT_LEN];
    init[..6].copy_from_slice(b"PNET\x02\x01");
    assert_eq!(
        snow_i.write_message(payload, &mut init[6..134]).unwrap(),
        128
    );
    let mac = mac1(responder, &init[..134]);
    init[134..].copy_from_slice(&mac);
    init
}

fn local(seed: u8) -> LocalStatic {
    LocalStatic::new(&Identity::from_seed(&[seed; 32]))
}

/// `peer`'s negation: the other PeerId of its static key (section 5).
fn negated(peer: PeerId) -> PeerId {
    let mut bytes = *peer.as_bytes();
    bytes[31] ^= 0x80;
    PeerId::from_bytes(bytes).unwrap()
}

type Answer = Result<(PeerId, [u8; RESP_LEN], [u8; 32]), Failure>;

fn answer(
    responder: &LocalStatic,
    trust: &TrustList,
    keys: &mut KeyCache,
    busy: bool,
    throttled: Option<PeerId>,
    init: &[u8],
) -> Answer {
    let accepted = check_init(responder, init)?.accept_unless(
        responder,
        trust,
        keys,
        busy,
        &|p| Some(*p) == throttled,
        [0x5e; 32],
    )?;
    let hash = accepted.transport.handshake_hash;
    Ok((accepted.peer, accepted.resp, hash))
}

/// A key kept for a trusted peer is read only once an INIT has proven the
/// static key it shows (its payload decrypted with `ss`): an INIT that
/// shows T's key without holding it is answered from T's key, never from
/// what the cache holds. Here the entry kept for T is wrong (planted), so
/// an INIT read with it would be taken for T's; with a right entry the
/// read would still differ in time, telling a stranger whom the node met.
#[test]
fn a_kept_key_is_read_only_after_the_init_proves_it() {
    let (r, t, a) = (local(1), local(2), local(3));
    let mut trust = TrustList::new();
    trust.insert(t.peer_id(), None);
    // A (untrusted) shows T's static key and T's PeerId.
    let init = forged_init(&r, a.secret(), *t.public(), t.peer_id().as_bytes(), [7; 32]);
    let bad = Failure {
        send: Some(RejectCode::BadSignature),
        error: HandshakeError::Refused(RejectCode::BadSignature),
    };
    let mut cold = KeyCache::new();
    let got = answer(&r, &trust, &mut cold, false, None, &init);
    assert_eq!(got.map(|(peer, ..)| peer), Err(bad.clone()));
    let mut planted = KeyCache::new();
    let wrong = PeerKey {
        public: *t.public(),
        point: DhPublic::new(a.public()),
    };
    planted.insert(t.peer_id(), wrong);
    let got = answer(&r, &trust, &mut planted, false, None, &init);
    assert_eq!(
        got.map(|(peer, ..)| peer),
        Err(bad),
        "an INIT that does not hold T's key was taken for T's"
    );
}

/// Every kind of INIT gets the same answer (RESP and keys, or REJECT and
/// error, in the order of section 6.1) whether the responder's key cache
/// is cold, warm with every key involved, or warmed by the INITs before:
/// the cache saves work and changes no decision. Only trusted peers enter
/// it.
#[test]
fn a_warm_key_cache_changes_no_answer() {
    let (r, t, u, a) = (local(1), local(2), local(4), local(3));
    let neg_t = negated(t.peer_id());
    let mut minus_one = [0xff; 32]; // on the twist
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let honest =
        |from: &LocalStatic, e: u8| InitiatorV2::start(from, r.peer_id(), [e; 32]).unwrap().1;
    // The initiator's side: a kept key gives the INIT a derived one gives.
    let r_key = KeyCache::new().derive(&r.peer_id()).unwrap();
    for from in [&t, &u] {
        let keyed = InitiatorV2::start_keyed(from, r.peer_id(), &r_key, [1; 32]);
        assert_eq!(keyed.unwrap().1, honest(from, 1));
    }
    let mut tampered = honest(&t, 9);
    tampered[120] ^= 1; // in enc(PeerId)
    let mac = mac1(&r, &tampered[..134]);
    tampered[134..].copy_from_slice(&mac);
    let (t_id, a_s) = (t.peer_id(), a.secret());
    let inits = [
        ("T", honest(&t, 1)),
        ("untrusted", honest(&u, 2)),
        ("self", honest(&r, 3)),
        (
            "T as -T",
            forged_init(&r, t.secret(), *t.public(), neg_t.as_bytes(), [4; 32]),
        ),
        (
            "A shows T's key",
            forged_init(&r, a_s, *t.public(), t_id.as_bytes(), [5; 32]),
        ),
        (
            "A names T",
            forged_init(&r, a_s, *a.public(), t_id.as_bytes(), [6; 32]),
        ),
        (
            "twist key",
            forged_init(&r, a_s, minus_one, t_id.as_bytes(), [7; 32]),
        ),
        (
            "zero key",
            forged_init(&r, a_s, [0; 32], t_id.as_bytes(), [8; 32]),
        ),
        ("tampered", tampered),
    ];
    let refused = |code| {
        Err(Failure {
            send: Some(code),
            error: HandshakeError::Refused(code),
        })
    };
    let bad = refused(RejectCode::BadSignature);
    let untrusted = refused(RejectCode::Untrusted);
    for (with_neg, expected) in [
        (
            false,
            [
                Ok(t_id),
                untrusted.clone(),
                untrusted.clone(),
                untrusted.clone(),
            ],
        ),
        (
            true,
            [Ok(t_id), untrusted.clone(), untrusted.clone(), Ok(neg_t)],
        ),
    ] {
        let mut trust = TrustList::new();
        trust.insert(t_id, None);
        if with_neg {
            trust.insert(neg_t, None);
        }
        let mut running = KeyCache::new();
        for (busy, throttled) in [
            (false, None),
            (true, None),
            (false, Some(t_id)),
            (false, Some(neg_t)),
        ] {
            for (i, (name, init)) in inits.iter().enumerate() {
                let cold = answer(&r, &trust, &mut KeyCache::new(), busy, throttled, init);
                let mut warm = KeyCache::new();
                for p in [t_id, neg_t, u.peer_id(), a.peer_id(), r.peer_id()] {
                    warm.derive(&p).unwrap();
                }
                let case = format!("{name}, -T trusted {with_neg}, busy {busy}, {throttled:?}");
                let warm = answer(&r, &trust, &mut warm, busy, throttled, init);
                assert_eq!(warm, cold, "warm: {case}");
                let run = answer(&r, &trust, &mut running, busy, throttled, init);
                assert_eq!(run, cold, "running: {case}");
                let peer = cold.map(|(peer, ..)| peer);
                if busy {
                    assert_eq!(peer, refused(RejectCode::Busy), "{case}");
                } else if i >= 4 {
                    assert_eq!(peer, bad, "{case}");
                } else {
                    let want = match &expected[i] {
                        Ok(p) if Some(*p) == throttled => Err(Failure {
                            send: Some(RejectCode::Busy),
                            error: HandshakeError::Throttled,
                        }),
                        want => want.clone(),
                    };
                    assert_eq!(peer, want, "{case}");
                }
            }
        }
        assert_eq!(
            running.len(),
            1 + usize::from(with_neg),
            "only trusted peers are kept"
        );
    }
}
