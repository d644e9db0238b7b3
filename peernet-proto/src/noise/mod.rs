//! Version 2 crypto (PROTOCOL.md part B): static keys derived from the
//! ed25519 identity (section 5), the `Noise_IK_25519_ChaChaPoly_SHA256`
//! handshake with `mac1` (section 6) and encrypted records (section 7).
//!
//! Everything here is sans-IO and deterministic: ephemeral secrets and
//! time come from the caller. The connection state machine drives it; the
//! module is public only with the `testkit` feature, for the crate's own
//! tests and benches.
//!
//! The Noise pattern is written here on three primitives rather than taken
//! from `snow`: X25519 from curve25519-dalek (already in the tree through
//! ed25519-dalek), SHA-256 from sha2 (likewise), ChaCha20-Poly1305 from
//! ring (chosen by measurement, see `Cargo.toml`). One fixed pattern needs
//! no resolver, no pattern interpreter and no heap, the frames carry the
//! version-1 header and `mac1` that `snow` knows nothing about, and records
//! are sealed in place in the caller's buffer. `snow` checks the result in
//! `tests/v2_snow_interop.rs`.

mod handshake;
mod key_cache;
mod keys;
mod record;
mod replay;
mod symmetric;

pub use handshake::{
    Accepted, CheckedInit, INIT_LEN, InitiatorV2, RESP_LEN, VERSION_2, check_init, read_init,
    reject_answer, reject_in, reject_v2,
};
pub use key_cache::{KeyCache, MAX_CACHED_KEYS, PeerKey};
pub use keys::{
    DhOutput, DhPublic, Job, LocalStatic, ZeroDh, dh, static_key_of, static_public_of, x25519_many,
};
pub use record::{CipherState, RecordError, TAG_LEN, Transport};
pub use replay::ReplayCache;
pub use symmetric::{PROLOGUE, PROTOCOL_NAME};
