//! Identities: ed25519 key pairs and the [`PeerId`]s that name peers.
//!
//! A [`PeerId`] only exists for a key that decodes to a valid, non-weak
//! point: every constructor checks, so code holding a `PeerId` never has to.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;

/// Length of a PeerId (an ed25519 public key) in bytes.
pub const PEER_ID_LEN: usize = 32;

/// Length of the saved form of an [`Identity`], see [`Identity::to_bytes`].
pub const IDENTITY_FILE_LEN: usize = 72;

/// The magic that opens a saved identity: format version 1.
const IDENTITY_MAGIC: &[u8; 8] = b"PNETSK01";

/// A peer's address: its 32-byte ed25519 public key (compressed Edwards
/// point, RFC 8032). Written in text as 64 lowercase hex digits.
///
/// Ordered bytewise, which is the order the supersede rule of PROTOCOL.md
/// section 4 uses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; PEER_ID_LEN]);

/// Why bytes or text are not a [`PeerId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPeerId {
    /// The text is not 64 hex digits (or the bytes are not 32 long).
    #[error("a PeerId is 64 lowercase hex digits")]
    Format,
    /// The bytes do not decode to a point on the curve.
    #[error("the key is not a valid ed25519 point")]
    NotAPoint,
    /// The key is a small-order ("weak") point that can sign anything.
    #[error("the key is a weak (small-order) ed25519 point")]
    Weak,
}

impl PeerId {
    /// Checks that `bytes` are a valid, non-weak ed25519 public key.
    pub fn from_bytes(bytes: [u8; PEER_ID_LEN]) -> Result<PeerId, InvalidPeerId> {
        Self::verifying_key_of(&bytes).map(|_| PeerId(bytes))
    }

    /// Like [`PeerId::from_bytes`] over a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PeerId, InvalidPeerId> {
        let bytes: [u8; PEER_ID_LEN] = bytes.try_into().map_err(|_| InvalidPeerId::Format)?;
        Self::from_bytes(bytes)
    }

    /// A PeerId for bytes that [`PeerId::verifying_key_of`] accepted.
    pub(crate) fn from_verified(bytes: [u8; PEER_ID_LEN]) -> PeerId {
        PeerId(bytes)
    }

    /// Unchecked bytes as a PeerId, only to look them up in a table of
    /// valid ones (compares like the bytes); never handed out.
    pub(crate) fn lookup_key(bytes: [u8; PEER_ID_LEN]) -> PeerId {
        PeerId(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// Decodes and checks a raw key: the one place weak keys are refused.
    pub(crate) fn verifying_key_of(
        bytes: &[u8; PEER_ID_LEN],
    ) -> Result<VerifyingKey, InvalidPeerId> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| InvalidPeerId::NotAPoint)?;
        if key.is_weak() {
            return Err(InvalidPeerId::Weak);
        }
        Ok(key)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 2 * PEER_ID_LEN];
        // Cannot fail: the buffer is exactly twice the bytes.
        let _ = hex::encode_to_slice(self.0, &mut text);
        // Hex digits are ASCII.
        f.write_str(core::str::from_utf8(&text).unwrap_or_default())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = InvalidPeerId;

    /// Parses 64 lowercase hex digits (uppercase is refused, so that every
    /// PeerId has exactly one text form).
    fn from_str(s: &str) -> Result<PeerId, InvalidPeerId> {
        let s = s.as_bytes();
        if s.iter().any(u8::is_ascii_uppercase) {
            return Err(InvalidPeerId::Format);
        }
        let mut bytes = [0u8; PEER_ID_LEN];
        // Refuses a wrong length and any non-hex digit.
        hex::decode_to_slice(s, &mut bytes).map_err(|_| InvalidPeerId::Format)?;
        PeerId::from_bytes(bytes)
    }
}

/// Why bytes are not a saved [`Identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIdentity {
    /// Not 72 bytes, or not opening with `PNETSK01`.
    #[error("not a peernet identity (expected 72 bytes starting with PNETSK01)")]
    Format,
    /// The stored public key is not the one the secret key derives: the
    /// file is damaged.
    #[error("the identity's public key does not match its secret key")]
    Mismatch,
}

/// This node's key pair. Its [`PeerId`] is what others trust.
///
/// `Debug` shows only the PeerId; the secret never appears in output.
/// The secret is wiped from memory on drop (ed25519-dalek `zeroize`).
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    peer_id: PeerId,
}

impl Identity {
    /// A fresh identity from a cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Identity {
        Self::from_key(SigningKey::generate(rng))
    }

    /// The identity whose RFC 8032 secret key ("seed") is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Identity {
        Self::from_key(SigningKey::from_bytes(seed))
    }

    fn from_key(key: SigningKey) -> Identity {
        // An honestly generated key is never weak (it is the base point
        // times a clamped scalar), so this cannot fail.
        let peer_id = PeerId(key.verifying_key().to_bytes());
        Identity { key, peer_id }
    }

    /// The public half: this node's address.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The saved form, 72 bytes: `"PNETSK01" | secret seed (32) | public key (32)`.
    ///
    /// The public key is stored so that [`Identity::from_bytes`] can detect
    /// a damaged file instead of silently becoming another identity. The
    /// caller must keep these bytes secret (the runtime crates write them
    /// to a file of mode 0600).
    pub fn to_bytes(&self) -> [u8; IDENTITY_FILE_LEN] {
        let mut out = [0u8; IDENTITY_FILE_LEN];
        out[..8].copy_from_slice(IDENTITY_MAGIC);
        out[8..40].copy_from_slice(self.key.as_bytes());
        out[40..].copy_from_slice(self.peer_id.as_bytes());
        out
    }

    /// Parses the saved form written by [`Identity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Identity, InvalidIdentity> {
        if bytes.len() != IDENTITY_FILE_LEN || &bytes[..8] != IDENTITY_MAGIC {
            return Err(InvalidIdentity::Format);
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[8..40]);
        let identity = Identity::from_seed(&seed);
        // (`zeroize`: a plain `fill(0)` of an array never read again is a
        // store the compiler may remove)
        zeroize::Zeroize::zeroize(&mut seed);
        if identity.peer_id.as_bytes()[..] != bytes[40..] {
            return Err(InvalidIdentity::Mismatch);
        }
        Ok(identity)
    }

    /// Signs `message` (plain RFC 8032 Ed25519).
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn text_round_trip_and_strictness() {
        let id = Identity::from_seed(&[0x11; 32]).peer_id();
        let text = id.to_string();
        assert_eq!(
            text,
            "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"
        );
        assert_eq!(text.parse::<PeerId>(), Ok(id));
        assert_eq!(
            text.to_uppercase().parse::<PeerId>(),
            Err(InvalidPeerId::Format)
        );
        assert_eq!(text[..63].parse::<PeerId>(), Err(InvalidPeerId::Format));
        let mut weak = [0u8; 32];
        weak[0] = 1; // the identity point: small order
        assert_eq!(PeerId::from_bytes(weak), Err(InvalidPeerId::Weak));
    }

    #[test]
    fn saved_identity_round_trips_and_detects_damage() {
        let identity = Identity::from_seed(&[0x22; 32]);
        let bytes = identity.to_bytes();
        assert_eq!(
            Identity::from_bytes(&bytes).unwrap().peer_id(),
            identity.peer_id()
        );
        let mut damaged = bytes;
        damaged[10] ^= 1;
        assert_eq!(
            Identity::from_bytes(&damaged).unwrap_err(),
            InvalidIdentity::Mismatch
        );
        assert_eq!(
            Identity::from_bytes(&bytes[..71]).unwrap_err(),
            InvalidIdentity::Format
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let identity = Identity::from_seed(&[0x33; 32]);
        let debug = format!("{identity:?}");
        assert!(debug.contains(&identity.peer_id().to_string()));
        assert!(!debug.contains("3333"));
    }
}
