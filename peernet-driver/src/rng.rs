//! The node's random numbers: ChaCha20 seeded by the operating system,
//! with the key erased after every draw ("fast key erasure").
//!
//! Every version-2 ephemeral secret, version-1 nonce and request-id start
//! comes from this generator. A plain `ChaCha20Rng` keeps its seed for
//! the node's life (`get_seed`, `set_word_pos` back to 0) and the words it
//! handed out in its buffer: one look at the node's memory then gives
//! every ephemeral secret it ever drew, and with the identity's static
//! secret (the same look, or the identity file later) the keys of every
//! past session, which forward secrecy (PROTOCOL.md section 6) is meant
//! to keep out of reach. After each draw this one takes a new key from
//! its own stream and starts afresh from it, its buffer empty, so what the
//! state holds can compute only what it has not handed out yet (rand_core
//! calls this backtracking resistance). It costs one batch of four
//! ChaCha20 blocks per draw, a fraction of a microsecond; the core draws a
//! few times per handshake, connection and liveness timer, never per call.
//! (The new key passes through the stack on its way in: a copy there can
//! compute what comes after it, never what came before.)

use std::convert::Infallible;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng, TryCryptoRng, TryRng};
use zeroize::Zeroizing;

/// A CSPRNG whose state never lets one compute what it drew before.
pub(crate) struct NodeRng(ChaCha20Rng);

impl NodeRng {
    /// A generator seeded by the operating system.
    pub(crate) fn from_os() -> Result<NodeRng, getrandom::Error> {
        ChaCha20Rng::try_from_rng(&mut getrandom::SysRng).map(NodeRng)
    }

    /// A generator seeded with `seed` (tests).
    #[cfg(test)]
    pub(crate) fn from_seed(seed: [u8; 32]) -> NodeRng {
        NodeRng(ChaCha20Rng::from_seed(seed))
    }

    /// Replaces the key with 32 bytes of its own stream, and the buffer of
    /// words drawn and to come with an empty one.
    fn erase(&mut self) {
        let mut key = Zeroizing::new([0u8; 32]);
        self.0.fill_bytes(&mut *key);
        self.0 = ChaCha20Rng::from_seed(*key);
    }
}

impl TryRng for NodeRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let drawn = self.0.next_u32();
        self.erase();
        Ok(drawn)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let drawn = self.0.next_u64();
        self.erase();
        Ok(drawn)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        self.erase();
        Ok(())
    }
}

impl TryCryptoRng for NodeRng {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the state holds (its key; its position and buffer are
    /// renewed with it) regenerates none of what was drawn: neither from
    /// the start of its stream nor anywhere in its first 64 KiB. A plain
    /// `ChaCha20Rng` gives its first draw back at position 0.
    #[test]
    fn what_was_drawn_cannot_be_computed_from_the_state() {
        let mut rng = NodeRng::from_seed([7; 32]);
        let mut ephemeral = [0u8; 32];
        rng.fill_bytes(&mut ephemeral);
        let id = rng.next_u64().to_le_bytes();
        let mut replay = ChaCha20Rng::from_seed(rng.0.get_seed());
        let mut stream = vec![0u8; 64 * 1024];
        replay.fill_bytes(&mut stream);
        assert!(
            !stream.windows(32).any(|w| w == ephemeral),
            "the ephemeral secret can be computed from the state"
        );
        assert!(
            !stream.windows(8).any(|w| w == id),
            "the request id can be computed from the state"
        );
    }

    /// Still a generator: draws differ, and the same seed gives the same
    /// stream (tests that seed it stay deterministic).
    #[test]
    fn draws_differ_and_a_seed_repeats_its_stream() {
        let mut a = NodeRng::from_seed([1; 32]);
        let mut b = NodeRng::from_seed([1; 32]);
        let (x, y) = (a.next_u64(), a.next_u64());
        assert_ne!(x, y);
        assert_eq!((b.next_u64(), b.next_u64()), (x, y));
        let mut bytes = [0u8; 64];
        a.fill_bytes(&mut bytes);
        assert_ne!(bytes, [0u8; 64]);
    }
}
