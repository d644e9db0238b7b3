//! The Noise SymmetricState for `Noise_IK_25519_ChaChaPoly_SHA256`
//! (Noise revision 34, sections 4 and 5): SHA-256, HMAC and HKDF as Noise
//! defines them, MixHash, MixKey, EncryptAndHash, DecryptAndHash, Split;
//! plus the `mac1` of PROTOCOL.md section 6.

use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::identity::PeerId;

/// The Noise protocol name; 32 bytes, so `h` starts as the name itself.
pub const PROTOCOL_NAME: &[u8; 32] = b"Noise_IK_25519_ChaChaPoly_SHA256";
/// The prologue every version-2 handshake mixes in.
pub const PROLOGUE: &[u8; 10] = b"peernet-v2";

/// HMAC over SHA-256.
type HmacSha256 = Hmac<Sha256>;
const MAC1_LABEL: &[u8] = b"peernet-v2-mac1";

/// HMAC-SHA256 keyed once (the padded key blocks absorbed), to be
/// cloned for each message under that key.
fn keyed(key: &[u8; 32]) -> HmacSha256 {
    // A 32-byte key is always accepted (any length is).
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// HMAC-SHA256 under `keyed` over the concatenation of `parts`.
fn hmac_with(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Noise's HKDF with two outputs; the temporary key's HMAC state is
/// built once for both outputs.
pub(super) fn hkdf2(chaining_key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32]) {
    let mut temp = hmac_with(&keyed(chaining_key), &[input]);
    let temp_key = keyed(&temp);
    temp.zeroize();
    let first = hmac_with(&temp_key, &[&[1]]);
    let second = hmac_with(&temp_key, &[&first, &[2]]);
    (first, second)
}

/// The key `mac1` is computed with for INITs sent to `peer`:
/// SHA-256("peernet-v2-mac1" || PeerId).
#[derive(Clone)]
pub(crate) struct Mac1Key([u8; 32]);

pub(super) fn mac1_key(peer: &PeerId) -> Mac1Key {
    let mut hash = Sha256::new();
    hash.update(MAC1_LABEL);
    hash.update(peer.as_bytes());
    Mac1Key(hash.finalize().into())
}

impl Mac1Key {
    /// The raw key, for the vectors.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 16 bytes of HMAC-SHA256(key, data).
    pub(super) fn mac(&self, data: &[u8]) -> [u8; 16] {
        let full = hmac_with(&keyed(&self.0), &[data]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// A ChaCha20-Poly1305 key for ring. The key lives in our own memory,
/// wiped on drop, and ring's key object is built for each operation and
/// dropped after it: ring does not wipe that object, so a copy of the key
/// may stay in a dead stack frame until the stack is reused, but none
/// stays on the heap or lives as long as the connection.
pub(super) fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    // ring refuses only a key of the wrong length, and this one is 32.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes 32-byte keys"));
    LessSafeKey::new(unbound)
}

/// Noise's ChaChaPoly nonce: 4 zero bytes, then the counter little-endian.
pub(super) fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// Seals `buf` in place with `ad`; returns the tag.
pub(super) fn seal(key: &[u8; 32], n: u64, ad: &[u8], buf: &mut [u8]) -> Tag {
    aead_key(key)
        .seal_in_place_separate_tag(nonce(n), Aad::from(ad), buf)
        // ring fails only for a message over 256 GiB, which no frame is.
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 message too long"))
}

/// Opens `buf` (ciphertext then tag) in place; returns the plaintext.
pub(super) fn open<'a>(key: &[u8; 32], n: u64, ad: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    aead_key(key)
        .open_in_place(nonce(n), Aad::from(ad), buf)
        .ok()
        .map(|plain| &*plain)
}

/// The handshake's SymmetricState (with its CipherState's key and nonce).
/// Secrets are wiped on drop.
#[derive(Clone)]
pub(super) struct SymmetricState {
    ck: [u8; 32],
    h: [u8; 32],
    k: Option<[u8; 32]>,
    n: u64,
}

impl SymmetricState {
    /// InitializeSymmetric(protocol name), MixHash(prologue), and the IK
    /// pre-message: MixHash(responder static public key).
    pub(super) fn initialize(responder_static: &[u8; 32]) -> SymmetricState {
        let mut state = SymmetricState {
            ck: *PROTOCOL_NAME,
            h: *PROTOCOL_NAME,
            k: None,
            n: 0,
        };
        state.mix_hash(PROLOGUE);
        state.mix_hash(responder_static);
        state
    }

    pub(super) fn mix_hash(&mut self, data: &[u8]) {
        let mut hash = Sha256::new();
        hash.update(self.h);
        hash.update(data);
        self.h = hash.finalize().into();
    }

    pub(super) fn mix_key(&mut self, input: &[u8; 32]) {
        let (ck, k) = hkdf2(&self.ck, input);
        self.ck = ck;
        self.k = Some(k);
        self.n = 0;
    }

    /// EncryptAndHash of `buf[..buf.len() - 16]` in place, the tag written
    /// into the last 16 bytes. Only called after a MixKey.
    pub(super) fn encrypt_and_hash(&mut self, buf: &mut [u8]) {
        let split = buf.len() - 16;
        let (plain, tag_out) = buf.split_at_mut(split);
        debug_assert!(self.k.is_some(), "EncryptAndHash before MixKey");
        // (the key by reference: no copy of it left on the stack)
        let key = self.k.as_ref().unwrap_or(&[0; 32]);
        let tag = seal(key, self.n, &self.h, plain);
        tag_out.copy_from_slice(tag.as_ref());
        self.n += 1;
        self.mix_hash(buf);
    }

    /// DecryptAndHash of `ciphertext` (with its tag) into `out`, which is
    /// 16 bytes shorter. `None` if the tag does not verify.
    pub(super) fn decrypt_and_hash(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Option<()> {
        let key = self.k.as_ref()?;
        let mut buf = [0u8; 64];
        let buf = buf.get_mut(..ciphertext.len())?;
        buf.copy_from_slice(ciphertext);
        let plain = open(key, self.n, &self.h, buf)?;
        out.copy_from_slice(plain);
        self.n += 1;
        self.mix_hash(ciphertext);
        Some(())
    }

    /// The handshake hash `h`.
    pub(super) fn handshake_hash(&self) -> [u8; 32] {
        self.h
    }

    /// Split: the initiator-to-responder and responder-to-initiator keys.
    pub(super) fn split(&self) -> ([u8; 32], [u8; 32]) {
        hkdf2(&self.ck, &[])
    }
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.ck.zeroize();
        if let Some(k) = self.k.as_mut() {
            k.zeroize();
        }
    }
}
