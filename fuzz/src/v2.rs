//! What the version-2 targets share: the identities and ephemeral keys of
//! `vectors/v2/handshake.json` (so the vector messages are valid seeds),
//! and reading records off a byte stream.

use bytes::Bytes;
use peernet_proto::testkit::noise::{CipherState, TAG_LEN};
use peernet_proto::{DEFAULT_MAX_FRAME_LEN, FrameDecoder};

/// The vectors' initiator identity seed.
pub const INITIATOR_SEED: [u8; 32] = [0x11; 32];
/// The vectors' responder identity seed.
pub const RESPONDER_SEED: [u8; 32] = [0x22; 32];
/// The vectors' initiator ephemeral secret.
pub const INITIATOR_EPHEMERAL: [u8; 32] = [0xa1; 32];
/// The vectors' responder ephemeral secret.
pub const RESPONDER_EPHEMERAL: [u8; 32] = [0xb2; 32];

/// Reads frames from `input` and opens each as a record, in order, until
/// the input ends, a frame is invalid or a record fails. Checks that an
/// opened record is its frame less the tag and advances the nonce by one,
/// and that a failed one leaves the nonce as it was.
pub fn open_records(recv: &mut CipherState, mut input: Bytes) {
    let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    while let Ok(Some(frame)) = frames.decode(&mut input) {
        let mut record = frame.to_vec();
        let before = recv.nonce();
        match recv.open_record(&mut record) {
            Ok(plain) => {
                assert_eq!(plain.len() + TAG_LEN, frame.len());
                assert_eq!(recv.nonce(), before + 1);
            }
            Err(_) => {
                assert_eq!(recv.nonce(), before, "a failed record uses no nonce");
                return;
            }
        }
    }
}
