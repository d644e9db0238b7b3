//! Section 5: Noise static keys derived from ed25519 identities, and
//! X25519 with the all-zero check.

use core::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::symmetric::{Mac1Key, mac1_key};
use crate::identity::{Identity, InvalidPeerId, PEER_ID_LEN, PeerId};

/// This node's version-2 keys, derived once from its [`Identity`]: the
/// X25519 static secret and public key, and the `mac1` key for INITs sent
/// to it. The secret is wiped on drop; `Debug` shows only the PeerId.
#[derive(Clone)]
pub struct LocalStatic {
    secret: [u8; 32],
    public: [u8; 32],
    peer_id: PeerId,
    mac1: Mac1Key,
}

impl LocalStatic {
    /// Derives the keys of section 5: the secret is the clamped first half
    /// of SHA-512(seed), the public key X25519(secret, 9).
    pub fn new(identity: &Identity) -> LocalStatic {
        let mut saved = identity.to_bytes();
        let mut hash: [u8; 64] = Sha512::digest(&saved[8..40]).into();
        saved.zeroize();
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&hash[..32]);
        hash.zeroize();
        secret[0] &= 248;
        secret[31] &= 127;
        secret[31] |= 64;
        let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        let peer_id = identity.peer_id();
        LocalStatic {
            secret,
            public,
            peer_id,
            mac1: mac1_key(&peer_id),
        }
    }

    /// The X25519 static secret (clamped), as `vectors/v2/keys.json` lists it.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The X25519 static public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The PeerId these keys belong to.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The key INITs sent to this node compute `mac1` with:
    /// SHA-256("peernet-v2-mac1" || PeerId).
    pub fn mac1_key(&self) -> &[u8; 32] {
        self.mac1.bytes()
    }

    pub(super) fn mac1(&self) -> &Mac1Key {
        &self.mac1
    }
}

impl Drop for LocalStatic {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for LocalStatic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStatic")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

/// The static public key of section 5 for raw PeerId bytes: the Montgomery
/// u-coordinate of the Edwards point, after the PeerId checks of version 1
/// (it decodes, it is not weak).
pub fn static_public_of(bytes: &[u8; PEER_ID_LEN]) -> Result<(PeerId, [u8; 32]), InvalidPeerId> {
    let key: VerifyingKey = PeerId::verifying_key_of(bytes)?;
    Ok((
        PeerId::from_verified(*bytes),
        key.to_montgomery().to_bytes(),
    ))
}

/// An X25519 result was all zeros: the public key had low order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroDh;

/// X25519(secret, public), refusing the all-zero result (section 5).
pub fn dh(secret: &[u8; 32], public: &[u8; 32]) -> Result<[u8; 32], ZeroDh> {
    let shared = MontgomeryPoint(*public).mul_clamped(*secret).to_bytes();
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(ZeroDh);
    }
    Ok(shared)
}
