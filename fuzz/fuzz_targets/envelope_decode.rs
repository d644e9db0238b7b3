//! `Envelope::decode` over an arbitrary frame body. Whatever decodes must
//! re-encode to a body that decodes to the same envelope and re-encodes to
//! the same bytes (decode -> encode -> decode is stable); the encoding is
//! never longer than the input (shortest form, definite lengths);
//! `encoded_len` is exact and `encode_frame` honours the limit. Whatever
//! does not decode must have a `Display` (the GOODBYE reason).

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use peernet_proto::{Envelope, MAX_HANDLE_LEN};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let envelope = match Envelope::decode(&body) {
        Ok(envelope) => envelope,
        Err(error) => {
            let reason = error.to_string();
            assert!(!reason.is_empty());
            return;
        }
    };
    match &envelope {
        Envelope::Call { handle, .. } | Envelope::Send { handle, .. } => {
            let name = handle.as_str();
            assert!(!name.is_empty() && name.len() <= MAX_HANDLE_LEN);
        }
        _ => {}
    }

    let encoded = envelope.to_body();
    assert_eq!(
        encoded.len(),
        envelope.encoded_len(),
        "encoded_len is exact"
    );
    assert!(
        encoded.len() <= data.len(),
        "re-encoding ({} bytes) is longer than the input ({} bytes)",
        encoded.len(),
        data.len()
    );
    if encoded.as_slice() != data {
        // Only a non-shortest integer or length head may differ.
        assert!(encoded.len() < data.len(), "same length, different bytes");
    }
    let again = Envelope::decode(&Bytes::from(encoded.clone()))
        .unwrap_or_else(|e| panic!("re-encoded {envelope:?} does not decode: {e}"));
    assert_eq!(again, envelope, "decode(encode(x)) != x");
    assert_eq!(again.to_body(), encoded, "encode is not stable");

    // encode_frame: the body after a 4-byte length, refused over the limit.
    let len = encoded.len() as u32;
    let mut out = BytesMut::from(&b"ab"[..]);
    assert!(envelope.encode_frame(&mut out, len - 1).is_err());
    assert_eq!(&out[..], b"ab", "a refused frame leaves the buffer alone");
    envelope.encode_frame(&mut out, len).unwrap();
    assert_eq!(&out[2..6], &len.to_be_bytes());
    assert_eq!(&out[6..], &encoded[..]);
});
