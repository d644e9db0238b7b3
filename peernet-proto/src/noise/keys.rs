//! Section 5: Noise static keys derived from ed25519 identities, and
//! X25519 with the all-zero check.

use core::fmt;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

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
    let (peer, public, _) = static_key_of(bytes)?;
    Ok((peer, public))
}

/// [`static_public_of`], and the key ready for Diffie-Hellman: the Edwards
/// point the PeerId decoded to, so that no DH with it decodes it again.
pub fn static_key_of(
    bytes: &[u8; PEER_ID_LEN],
) -> Result<(PeerId, [u8; 32], DhPublic), InvalidPeerId> {
    let key: VerifyingKey = PeerId::verifying_key_of(bytes)?;
    Ok((
        PeerId::from_verified(*bytes),
        key.to_montgomery().to_bytes(),
        DhPublic(Lift::Edwards(key.to_edwards())),
    ))
}

/// An X25519 result was all zeros: the public key had low order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroDh;

/// An X25519 result: wiped wherever it is dropped, on the handshake's
/// refusals too (a shared secret must not outlive its use in a copy the
/// caller forgot). Its `Debug` shows no bytes.
pub type DhOutput = Zeroizing<[u8; 32]>;

/// X25519(secret, public), refusing the all-zero result (section 5).
pub fn dh(secret: &[u8; 32], public: &[u8; 32]) -> Result<DhOutput, ZeroDh> {
    DhPublic::new(public).dh(secret)
}

/// A public X25519 key decoded once, for several Diffie-Hellman with it
/// (a handshake uses each remote key twice).
///
/// X25519 here gives the bytes of RFC 7748 (`MontgomeryPoint::mul_clamped`)
/// but faster: a `u` on the curve itself (every honest key) is lifted to
/// Edwards form and multiplied there, where curve25519-dalek uses its
/// vector (AVX2) backend when the CPU has one; measured on this project's
/// machine about 15% less CPU per Diffie-Hellman than the Montgomery
/// ladder, which has only a serial backend. The sign chosen for the lift
/// does not matter (`u` of `[k]P` and of `[k](-P)` are the same) and the
/// scalar is the clamped integer, not reduced, so points with a
/// small-order component give what the ladder gives. A `u` on the twist
/// (only an attacker sends one) has no Edwards point and takes the ladder.
/// Which way a key goes depends on the public key alone, never on the
/// secret; both are constant-time in the secret.
#[derive(Clone, Copy)]
pub struct DhPublic(Lift);

#[derive(Clone, Copy)]
enum Lift {
    Edwards(EdwardsPoint),
    Twist(MontgomeryPoint),
}

impl DhPublic {
    /// Decodes the public key `u`.
    pub fn new(public: &[u8; 32]) -> DhPublic {
        let u = MontgomeryPoint(*public);
        DhPublic(match u.to_edwards(0) {
            Some(point) => Lift::Edwards(point),
            None => Lift::Twist(u),
        })
    }

    /// X25519(secret, this key), refusing the all-zero result.
    pub fn dh(&self, secret: &[u8; 32]) -> Result<DhOutput, ZeroDh> {
        let shared = match self.0 {
            Lift::Edwards(point) => point.mul_clamped(*secret).to_montgomery().to_bytes(),
            Lift::Twist(u) => u.mul_clamped(*secret).to_bytes(),
        };
        nonzero(shared)
    }

    /// [`DhPublic::dh`] before the conversion to Montgomery form.
    fn product(&self, secret: &[u8; 32]) -> Product {
        match self.0 {
            Lift::Edwards(point) => Product::Edwards(point.mul_clamped(*secret)),
            Lift::Twist(u) => Product::Done(u.mul_clamped(*secret)),
        }
    }
}

fn nonzero(shared: [u8; 32]) -> Result<DhOutput, ZeroDh> {
    let shared = Zeroizing::new(shared);
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(ZeroDh);
    }
    Ok(shared)
}

/// One job of [`x25519_many`]: a Diffie-Hellman, or a key generation.
#[derive(Clone, Copy)]
pub enum Job<'a> {
    /// X25519(secret, key), refusing the all-zero result.
    Dh(&'a DhPublic, &'a [u8; 32]),
    /// X25519(secret, 9): the public key of `secret` (never all zeros).
    Public(&'a [u8; 32]),
}

/// A multiplication's result before its last step.
enum Product {
    Edwards(EdwardsPoint),
    Done(MontgomeryPoint),
}

/// Several X25519 at once, giving the bytes each would give alone
/// ([`DhPublic::dh`], `MontgomeryPoint::mul_base_clamped`) but sharing one
/// field inversion: going back from Edwards to Montgomery form costs an
/// inversion per point, about a tenth of a Diffie-Hellman, and Montgomery's
/// trick turns `n` of them into one and about `3n` multiplications
/// (constant time, as curve25519-dalek's batch conversion is: a zero
/// denominator, an identity point, is skipped with a mask, and the
/// product it inverts is never zero). A handshake side has jobs that are
/// known together: its key generation with two Diffie-Hellman, or two
/// Diffie-Hellman with the peer's ephemeral key.
///
/// Wiped: the copy of the intermediate points handed to the batch, each
/// point taken out to read its result, and the batch's results (on the
/// heap). Not wiped, as in [`DhPublic::dh`]: the stack slots the points
/// were moved out of. curve25519-dalek's batch frees its scratch unwiped:
/// the inverses of the denominators `Z - Y` and their running products,
/// without the numerators `Z + Y`, which give no result.
pub fn x25519_many<const N: usize>(jobs: [Job<'_>; N]) -> [Result<DhOutput, ZeroDh>; N] {
    let products = jobs.map(|job| match job {
        Job::Dh(key, secret) => key.product(secret),
        Job::Public(secret) => Product::Edwards(EdwardsPoint::mul_base_clamped(*secret)),
    });
    // (an identity point for a result already in Montgomery form: batch
    // inversion skips its zero denominator)
    let mut points = [EdwardsPoint::default(); N];
    for (point, product) in points.iter_mut().zip(&products) {
        if let Product::Edwards(p) = product {
            *point = *p;
        }
    }
    let mut converted = EdwardsPoint::to_montgomery_batch(&points);
    points.zeroize();
    let mut i = 0;
    let out = products.map(|product| {
        let u = match product {
            Product::Edwards(mut p) => {
                p.zeroize();
                converted[i]
            }
            Product::Done(u) => u,
        };
        i += 1;
        nonzero(u.to_bytes())
    });
    converted.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Edwards path gives the ladder's bytes: honest keys, random
    /// strings (about half of them on the twist), small-order points and
    /// the edge encodings.
    /// A result's bytes, or zeros for a refused one (what the ladder
    /// gives then).
    fn bytes(result: Result<DhOutput, ZeroDh>) -> [u8; 32] {
        result.map_or([0; 32], |shared| *shared)
    }

    /// Every X25519 result wipes itself where it is dropped: a handshake
    /// that stops at a refusal between two Diffie-Hellman leaves no shared
    /// secret behind in a result it did not use. (A plain `[u8; 32]`
    /// would not compile here.)
    #[test]
    fn x25519_results_wipe_themselves() {
        fn wipes<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let key = DhPublic::new(&MontgomeryPoint::mul_base_clamped([5; 32]).to_bytes());
        let shared = key.dh(&[6; 32]).unwrap();
        wipes(&shared);
        let [batched] = x25519_many([Job::Dh(&key, &[6; 32])]);
        let batched = batched.unwrap();
        wipes(&batched);
        assert_eq!(batched, shared);
        wipes(
            &dh(
                &[6; 32],
                &MontgomeryPoint::mul_base_clamped([5; 32]).to_bytes(),
            )
            .unwrap(),
        );
    }

    #[test]
    fn a_peer_ids_own_point_gives_the_same_dh_as_its_static_key() {
        for seed in 0..20u8 {
            let peer = Identity::from_seed(&[seed; 32]).peer_id();
            let (_, public, lifted) = static_key_of(peer.as_bytes()).unwrap();
            let secret = [seed.wrapping_mul(7) | 1; 32];
            assert_eq!(lifted.dh(&secret), dh(&secret, &public));
            assert_eq!(
                *lifted.dh(&secret).unwrap(),
                MontgomeryPoint(public).mul_clamped(secret).to_bytes()
            );
        }
    }

    /// A batch gives what each job gives alone, whatever its mix: keys on
    /// the curve, on the twist, of small order (a zero result refused in
    /// its own slot), and key generations.
    #[test]
    fn a_batch_gives_each_jobs_own_result() {
        let mut order4 = [0u8; 32];
        order4[0] = 1;
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let keys = [
            MontgomeryPoint::mul_base_clamped([3; 32]).to_bytes(),
            minus_one, // on the twist
            order4,
            [0u8; 32],
            MontgomeryPoint::mul_base_clamped([4; 32]).to_bytes(),
        ];
        let keys = keys.map(|u| (u, DhPublic::new(&u)));
        assert!(keys.iter().any(|(_, k)| matches!(k.0, Lift::Twist(_))));
        for round in 0..16u8 {
            let secret = [round.wrapping_mul(29) | 1; 32];
            let other = [round ^ 0x77; 32];
            let jobs = [
                Job::Dh(&keys[round as usize % 5].1, &secret),
                Job::Public(&other),
                Job::Dh(&keys[(round as usize + 1) % 5].1, &other),
                Job::Dh(&keys[(round as usize + 2) % 5].1, &secret),
            ];
            let alone = jobs.map(|job| match job {
                Job::Dh(key, secret) => key.dh(secret),
                Job::Public(secret) => Ok(Zeroizing::new(
                    MontgomeryPoint::mul_base_clamped(*secret).to_bytes(),
                )),
            });
            assert_eq!(x25519_many(jobs), alone, "round {round}");
        }
        let pairs = [Job::Dh(&keys[2].1, &[9; 32]), Job::Dh(&keys[3].1, &[9; 32])];
        assert_eq!(x25519_many(pairs), [Err(ZeroDh), Err(ZeroDh)]);
    }

    #[test]
    fn x25519_matches_the_montgomery_ladder() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            let mut b = [0u8; 32];
            for c in b.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                c.copy_from_slice(&state.to_le_bytes());
            }
            b
        };
        let mut edge = [[0u8; 32], [0xff; 32], [0u8; 32], [0xff; 32], [0xff; 32]];
        edge[2][0] = 1; // u = 1, order 4
        edge[3][0] = 0xec; // u = p - 1 (-1: the twist)
        edge[3][31] = 0x7f;
        edge[4][0] = 0xed; // u = p, non-canonical 0
        edge[4][31] = 0x7f;
        let (mut curve, mut twist) = (0, 0);
        for i in 0..600 {
            let secret = next();
            let u = match i % 3 {
                0 => MontgomeryPoint::mul_base_clamped(next()).to_bytes(),
                1 => next(),
                _ => edge[i % edge.len()],
            };
            let public = MontgomeryPoint(u);
            match public.to_edwards(0) {
                Some(_) => curve += 1,
                None => twist += 1,
            }
            // (a zero result is refused, and is what the ladder gives)
            let ladder = public.mul_clamped(secret).to_bytes();
            let key = DhPublic::new(&u);
            assert_eq!(bytes(key.dh(&secret)), ladder, "u = {u:02x?}");
            // The same in a batch, next to a key generation and another DH.
            let other = next();
            let [dh, e, dh2] = x25519_many([
                Job::Dh(&key, &secret),
                Job::Public(&other),
                Job::Dh(&key, &other),
            ]);
            assert_eq!(bytes(dh), ladder, "batch, u = {u:02x?}");
            let base = curve25519_dalek::constants::X25519_BASEPOINT;
            // (the ladder from u = 9, not the fixed-base Edwards path)
            assert_eq!(bytes(e), base.mul_clamped(other).to_bytes());
            assert_eq!(bytes(dh2), public.mul_clamped(other).to_bytes());
        }
        assert!(
            curve > 100 && twist > 50,
            "{curve} on the curve, {twist} on the twist"
        );
    }
}
