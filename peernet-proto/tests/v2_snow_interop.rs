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

use curve25519_dalek::montgomery::MontgomeryPoint;
use peernet_proto::testkit::noise::{InitiatorV2, LocalStatic, PROLOGUE, Transport, read_init};
use peernet_proto::{Identity, TrustList};
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
        self.public = MontgomeryPoint::mul_base_clamped(self.secret).to_bytes();
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
