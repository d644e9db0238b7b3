//! Section 7: records, sealed and opened in place with a Noise CipherState.

use alloc::boxed::Box;
use core::fmt;

use bytes::BufMut;
use zeroize::Zeroize;

use super::symmetric::{open, seal};

/// Length of the Poly1305 tag that ends every record.
pub const TAG_LEN: usize = 16;

/// Why a record could not be sealed or opened.
///
/// `#[non_exhaustive]`, as every error of this crate: a later cipher
/// suite may fail in ways of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record did not decrypt: wrong tag, replayed, reordered, cut, or
    /// shorter than a tag. The connection closes with nothing more sent.
    #[error("a record failed to decrypt")]
    DecryptFailed,
    /// The nonce would reach 2^64 - 1; the side closes instead.
    #[error("the record nonce is exhausted")]
    NonceExhausted,
}

/// One direction's Noise CipherState: a ChaCha20-Poly1305 key and the
/// 64-bit nonce counter (one per record, from 0). The key is wiped on drop.
/// It lives in a box of its own: a connection moves (in and out of the
/// endpoint's map, whose nodes are freed without wiping), the key does
/// not, so no freed block keeps a copy of it.
pub struct CipherState {
    key: Box<[u8; 32]>,
    n: u64,
}

impl CipherState {
    pub(super) fn new(key: [u8; 32]) -> CipherState {
        CipherState {
            key: Box::new(key),
            n: 0,
        }
    }

    /// The key, for tests that look for copies of it.
    #[cfg(feature = "testkit")]
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The nonce the next record uses.
    pub fn nonce(&self) -> u64 {
        self.n
    }

    /// A state whose next nonce is `n`, to test the end of the nonce space.
    #[cfg(feature = "testkit")]
    pub fn with_nonce(key: [u8; 32], n: u64) -> CipherState {
        CipherState {
            key: Box::new(key),
            n,
        }
    }

    /// Moves the counter to `n`: the next record uses nonce `n` (tests of
    /// the end of the nonce space on a live connection).
    #[cfg(feature = "testkit")]
    pub fn set_nonce(&mut self, n: u64) {
        self.n = n;
    }

    /// Takes back the nonces from `n` on: the records sealed under them
    /// were dropped before any of their bytes left (a send queue thrown
    /// away), so the next record, the first the peer sees, uses `n`, the
    /// nonce the peer expects. Never call it for a record that may have
    /// been sent: two records under one nonce would break the AEAD.
    pub(crate) fn rewind_unsent(&mut self, n: u64) {
        debug_assert!(n <= self.n, "rewinding forward");
        self.n = self.n.min(n);
    }

    fn next_nonce(&mut self) -> Result<u64, RecordError> {
        // Noise reserves 2^64 - 1; a side that would use it closes instead.
        if self.n == u64::MAX {
            return Err(RecordError::NonceExhausted);
        }
        let n = self.n;
        self.n += 1;
        Ok(n)
    }

    /// Seals the plaintext `buf[start..]` in place and appends the tag, so
    /// `buf[start..]` becomes the record (a frame body). `buf[..start]` is
    /// left alone: room for the frame header, for example.
    ///
    /// Panics if `start > buf.len()` (a caller bug, not peer input).
    pub fn seal_record<B: AsMut<[u8]> + BufMut>(
        &mut self,
        buf: &mut B,
        start: usize,
    ) -> Result<(), RecordError> {
        let n = self.next_nonce()?;
        let tag = seal(&self.key, n, &[], &mut buf.as_mut()[start..]);
        buf.put_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a record (a frame body) in place; returns the plaintext, the
    /// start of `record` without the tag. On failure the state is not
    /// advanced, and the caller closes the connection.
    pub fn open_record<'a>(&mut self, record: &'a mut [u8]) -> Result<&'a [u8], RecordError> {
        if record.len() < TAG_LEN {
            return Err(RecordError::DecryptFailed);
        }
        if self.n == u64::MAX {
            return Err(RecordError::NonceExhausted);
        }
        let plain = open(&self.key, self.n, &[], record).ok_or(RecordError::DecryptFailed)?;
        self.n += 1;
        Ok(plain)
    }
}

impl Drop for CipherState {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for CipherState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CipherState")
            .field("nonce", &self.n)
            .finish_non_exhaustive()
    }
}

/// Both directions of an established version-2 connection (after Split).
#[derive(Debug)]
pub struct Transport {
    /// Seals what this side sends.
    pub send: CipherState,
    /// Opens what this side receives.
    pub recv: CipherState,
    /// The Noise handshake hash `h`, which names this session.
    pub handshake_hash: [u8; 32],
}
