//! Every error the core's API returns, or carries inside another, is a
//! `core::error::Error` that can cross threads: an application can box
//! it (`Box<dyn Error + Send + Sync>`), put it behind `?` and log it with
//! its `Display`.

use peernet_proto::{
    BookError, CallError, ConfigError, ConnectError, DialFailure, EnvelopeError, FrameError,
    HandshakeError, InvalidHandle, InvalidIdentity, InvalidLabel, InvalidPeerId, RecordError,
    SendError, TrustListError,
};

fn is_error<E: core::error::Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_is_an_error() {
    is_error::<BookError>();
    is_error::<CallError>();
    is_error::<ConfigError>();
    is_error::<ConnectError>();
    is_error::<DialFailure>();
    is_error::<EnvelopeError>();
    is_error::<FrameError>();
    is_error::<HandshakeError>();
    is_error::<InvalidHandle>();
    is_error::<InvalidIdentity>();
    is_error::<InvalidLabel>();
    is_error::<InvalidPeerId>();
    is_error::<RecordError>();
    is_error::<SendError>();
    is_error::<TrustListError>();
}

/// A record error reads as what happened, alone and inside the
/// handshake error that carries it.
#[test]
fn a_record_error_says_what_happened() {
    assert_eq!(
        RecordError::DecryptFailed.to_string(),
        "a record failed to decrypt"
    );
    assert_eq!(
        HandshakeError::Record(RecordError::NonceExhausted).to_string(),
        "the first record failed: the record nonce is exhausted"
    );
}
