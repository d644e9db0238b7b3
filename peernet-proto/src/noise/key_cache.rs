//! The static keys of trusted peers, derived once and kept: a bounded
//! memo of [`static_key_of`], so that a handshake with a peer seen before
//! decodes its PeerId no more.
//!
//! Deriving a peer's key (section 5) decodes its PeerId (a square root in
//! the field) and converts it to Montgomery form (an inversion), all a
//! pure function of the PeerId: an initiator needs it for the PeerId it
//! dials, a responder to check the PeerId an INIT names against the static
//! key it shows. The memo changes no decision: trust is still read from
//! the trust list at every handshake, and an entry is only a PeerId's own
//! key, derived from the PeerId.
//!
//! A responder looks up the key an INIT shows only once the INIT proved
//! it (its payload decrypted with `ss`, which takes the key's secret), so
//! what it finds there concerns the sender's own key and nobody else's.
//! Looked up earlier, by a key anyone may show, a hit would save work that
//! a stranger knowing the node's PeerId could time, and learn from it
//! whether the node met a given peer lately.
//!
//! Bounded by [`MAX_CACHED_KEYS`]; only peers that passed the trust check
//! (or that the node dials, which it trusts) enter it, so a stranger can
//! neither fill it nor evict from it.
//!
//! What it still shows: a responder answers the INIT of a peer whose key
//! it kept some 10 us sooner (one PeerId decoded and converted less) than
//! that peer's first since it started. One who times its answers can tell
//! a trusted peer's first handshake from its later ones, not which peer it
//! is (its identity stays encrypted).

use alloc::collections::BTreeMap;

use super::keys::{DhPublic, static_key_of};
use crate::identity::{InvalidPeerId, PeerId};

/// The most peers whose keys are kept: about 300 bytes each, some 300 KiB
/// in all. Past it the peer with the smallest PeerId gives way (any rule
/// will do: an evicted key is derived again when needed).
pub const MAX_CACHED_KEYS: usize = 1024;

/// A peer's static key as a handshake uses it: the X25519 public key of
/// section 5 (its bytes) and the point ready for Diffie-Hellman.
#[derive(Clone, Copy)]
pub struct PeerKey {
    /// The X25519 static public key (Montgomery `u`).
    pub public: [u8; 32],
    /// The same key, decoded for [`DhPublic::dh`].
    pub point: DhPublic,
}

/// The memo: PeerId to key, and the key's bytes back to the PeerId (what
/// a responder finds in an INIT is the key, not the PeerId).
#[derive(Default)]
pub struct KeyCache {
    by_peer: BTreeMap<PeerId, PeerKey>,
    by_public: BTreeMap<[u8; 32], PeerId>,
}

impl KeyCache {
    /// An empty memo.
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    /// `peer`'s key, from the memo or derived (and kept). For a peer the
    /// node trusts; fails only for bytes that are no valid PeerId.
    pub fn derive(&mut self, peer: &PeerId) -> Result<PeerKey, InvalidPeerId> {
        if let Some(key) = self.by_peer.get(peer) {
            return Ok(*key);
        }
        let (_, public, point) = static_key_of(peer.as_bytes())?;
        let key = PeerKey { public, point };
        self.insert(*peer, key);
        Ok(key)
    }

    /// The peer whose static key is `public`, and the key decoded, if it
    /// is kept.
    pub fn by_public(&self, public: &[u8; 32]) -> Option<(PeerId, PeerKey)> {
        let peer = self.by_public.get(public)?;
        Some((*peer, *self.by_peer.get(peer)?))
    }

    /// Keeps `key` as `peer`'s (the caller derived it from `peer`).
    pub fn insert(&mut self, peer: PeerId, key: PeerKey) {
        if !self.by_peer.contains_key(&peer) && self.by_peer.len() >= MAX_CACHED_KEYS {
            if let Some((old, old_key)) = self.by_peer.pop_first() {
                self.unindex(&old, &old_key.public);
            }
        }
        self.by_peer.insert(peer, key);
        self.by_public.insert(key.public, peer);
    }

    /// Forgets `peer`'s key (when it is unpaired).
    pub fn remove(&mut self, peer: &PeerId) {
        if let Some(key) = self.by_peer.remove(peer) {
            self.unindex(peer, &key.public);
        }
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }

    // Two PeerIds (a point and its negation) share one Montgomery key: the
    // index names the one kept last; leave it if it names the other.
    fn unindex(&mut self, peer: &PeerId, public: &[u8; 32]) {
        if self.by_public.get(public) == Some(peer) {
            self.by_public.remove(public);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn peer(n: u32) -> PeerId {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        Identity::from_seed(&seed).peer_id()
    }

    #[test]
    fn a_kept_key_is_the_derived_key() {
        let mut cache = KeyCache::new();
        let p = peer(1);
        let key = cache.derive(&p).unwrap();
        let (_, public, _) = static_key_of(p.as_bytes()).unwrap();
        assert_eq!(key.public, public);
        let (found, again) = cache.by_public(&public).unwrap();
        assert_eq!(found, p);
        assert_eq!(again.public, public);
        let secret = [9u8; 32];
        assert_eq!(
            again.point.dh(&secret),
            super::super::keys::dh(&secret, &public)
        );
    }

    #[test]
    fn the_cache_holds_at_most_its_bound_and_its_index_follows() {
        let mut cache = KeyCache::new();
        let peers: alloc::vec::Vec<PeerId> = (0..MAX_CACHED_KEYS as u32 + 10).map(peer).collect();
        for p in &peers {
            cache.derive(p).unwrap();
        }
        assert_eq!(cache.len(), MAX_CACHED_KEYS);
        assert_eq!(cache.by_public.len(), MAX_CACHED_KEYS);
        // Every key indexed names a kept peer, and back.
        for (public, p) in &cache.by_public {
            assert_eq!(&cache.by_peer[p].public, public);
        }
        cache.remove(&peers[peers.len() - 1]);
        assert_eq!(cache.len(), MAX_CACHED_KEYS - 1);
        assert_eq!(cache.by_public.len(), MAX_CACHED_KEYS - 1);
    }

    #[test]
    fn a_point_and_its_negation_share_the_index_safely() {
        // The negated point's encoding: the sign bit flipped.
        let p = peer(7);
        let mut bytes = *p.as_bytes();
        bytes[31] ^= 0x80;
        let neg = PeerId::from_bytes(bytes).expect("-P is as valid as P");
        let mut cache = KeyCache::new();
        let a = cache.derive(&p).unwrap();
        let b = cache.derive(&neg).unwrap();
        assert_eq!(a.public, b.public);
        assert_eq!(cache.by_public(&a.public).unwrap().0, neg);
        cache.remove(&p);
        assert_eq!(cache.by_public(&a.public).unwrap().0, neg);
        cache.remove(&neg);
        assert!(cache.by_public(&a.public).is_none());
        assert!(cache.is_empty());
    }
}
