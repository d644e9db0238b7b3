//! The shared frame and envelope test vectors (vectors/frames.json at the repo root,
//! vectors/envelopes.json), every one of them.

use bytes::{Bytes, BytesMut};
use peernet_proto::envelope::{Envelope, Handle};
use peernet_proto::frame::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder};
use serde_json::Value;

const FRAMES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../vectors/frames.json"
));
const ENVELOPES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../vectors/envelopes.json"
));

fn load(json: &str) -> Value {
    serde_json::from_str(json).expect("vector file is JSON")
}

fn vectors<'a>(file: &'a Value, key: &str) -> &'a [Value] {
    let list = file[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` list"));
    assert!(!list.is_empty(), "`{key}` is empty");
    list
}

fn name(v: &Value) -> &str {
    v["name"].as_str().expect("vector has a name")
}

fn hex_field(v: &Value, key: &str) -> Bytes {
    let text = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no `{key}`", name(v)));
    Bytes::from(
        hex::decode(text).unwrap_or_else(|e| panic!("{}: bad hex in `{key}`: {e}", name(v))),
    )
}

/// Feeds `wire` to `dec` in chunks of `chunk` bytes and collects the bodies.
fn decode_chunked(dec: &mut FrameDecoder, wire: &Bytes, chunk: usize) -> Vec<Bytes> {
    let mut bodies = Vec::new();
    for start in (0..wire.len()).step_by(chunk) {
        let mut input = wire.slice(start..(start + chunk).min(wire.len()));
        while let Some(body) = dec.decode(&mut input).expect("valid frame") {
            bodies.push(body);
        }
        assert!(input.is_empty());
    }
    bodies
}

#[test]
fn valid_frames_decode_to_their_body() {
    let file = load(FRAMES);
    for v in vectors(&file, "valid") {
        let (wire, body) = (hex_field(v, "wire"), hex_field(v, "body"));
        for chunk in [wire.len(), 1] {
            let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
            assert_eq!(
                decode_chunked(&mut dec, &wire, chunk),
                std::slice::from_ref(&body),
                "{} (chunk {chunk})",
                name(v)
            );
            assert_eq!(dec.buffered_len(), 0, "{}", name(v));
        }
        let mut encoded = BytesMut::new();
        peernet_proto::frame::encode_frame(&body, &mut encoded);
        assert_eq!(encoded, wire, "{}: encode", name(v));
    }
}

#[test]
fn invalid_frames_are_rejected_right_after_the_header() {
    let file = load(FRAMES);
    for v in vectors(&file, "invalid") {
        let wire = hex_field(v, "wire");
        // The vectors are bare headers; a body after them must not matter.
        let mut with_body = BytesMut::from(&wire[..]);
        with_body.extend_from_slice(&[0xAA; 64]);

        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut input = with_body.freeze();
        assert!(dec.decode(&mut input).is_err(), "{}: whole", name(v));
        assert!(dec.buffered_len() <= FRAME_HEADER_LEN, "{}", name(v));

        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        for (i, byte) in wire.iter().enumerate() {
            let result = dec.decode(&mut Bytes::copy_from_slice(&[*byte]));
            if i + 1 < FRAME_HEADER_LEN {
                assert_eq!(result, Ok(None), "{}: byte {i}", name(v));
            } else {
                let err = result.expect_err(name(v));
                assert!(dec.buffered_len() <= FRAME_HEADER_LEN, "{}", name(v));
                // The decoder stays failed.
                assert_eq!(
                    dec.decode(&mut Bytes::from_static(&[0, 0, 0, 1, 0])),
                    Err(err),
                    "{}",
                    name(v)
                );
                break;
            }
        }
    }
}

/// Builds the expected envelope from a vector's `value` array.
fn expected(v: &Value) -> Envelope {
    let items = v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no value", name(v)));
    let uint = |i: usize| {
        items[i]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: item {i} not a u64", name(v)))
    };
    let text = |i: usize| {
        items[i]
            .as_str()
            .unwrap_or_else(|| panic!("{}: item {i} not text", name(v)))
    };
    let bytes = |i: usize| Bytes::from(hex::decode(text(i)).unwrap());
    let handle = |i: usize| Handle::new(text(i)).unwrap();
    match uint(0) {
        0 => Envelope::Call {
            id: uint(1),
            handle: handle(2),
            args: bytes(3),
            timeout_ms: uint(4),
        },
        1 => Envelope::Reply {
            id: uint(1),
            status: uint(2),
            body: bytes(3),
        },
        2 => Envelope::Send {
            handle: handle(1),
            args: bytes(2),
        },
        3 => Envelope::Ping { nonce: uint(1) },
        4 => Envelope::Pong { nonce: uint(1) },
        5 => Envelope::Goodbye {
            code: uint(1),
            reason: text(2).to_owned(),
        },
        6 => Envelope::Cancel { id: uint(1) },
        tag => panic!("{}: unknown tag {tag}", name(v)),
    }
}

#[test]
fn valid_envelopes_decode_and_encode_exactly() {
    let file = load(ENVELOPES);
    let mut tags = std::collections::BTreeSet::new();
    for v in vectors(&file, "valid") {
        let cbor = hex_field(v, "cbor");
        let value = expected(v);
        tags.insert(v["value"][0].as_u64().unwrap());

        assert_eq!(
            Envelope::decode(&cbor).as_ref(),
            Ok(&value),
            "{}: decode",
            name(v)
        );
        assert_eq!(value.to_body(), cbor, "{}: to_body", name(v));
        assert_eq!(value.encoded_len(), cbor.len(), "{}: encoded_len", name(v));

        let mut frame = BytesMut::from(&b"prefix"[..]);
        value
            .encode_frame(&mut frame, DEFAULT_MAX_FRAME_LEN)
            .unwrap_or_else(|e| panic!("{}: {e}", name(v)));
        assert_eq!(&frame[..6], b"prefix", "{}", name(v));
        assert_eq!(
            &frame[6..10],
            &(cbor.len() as u32).to_be_bytes(),
            "{}: header",
            name(v)
        );
        assert_eq!(&frame[10..], &cbor[..], "{}: encode_frame", name(v));

        // And back through the frame decoder.
        let mut input = frame.freeze().slice(6..);
        let body = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
            .decode(&mut input)
            .unwrap()
            .unwrap();
        assert_eq!(
            Envelope::decode(&body).as_ref(),
            Ok(&value),
            "{}: via frame",
            name(v)
        );
    }
    assert_eq!(tags.len(), 7, "every tag has a valid vector");
}

#[test]
fn invalid_envelopes_are_rejected() {
    let file = load(ENVELOPES);
    for v in vectors(&file, "invalid") {
        let cbor = hex_field(v, "cbor");
        match Envelope::decode(&cbor) {
            Err(e) => {
                let reason = e.to_string();
                assert!(
                    reason.starts_with("envelope: "),
                    "{}: reason {reason:?}",
                    name(v)
                );
            }
            Ok(env) => panic!("{}: decoded as {env:?}", name(v)),
        }
    }
}

#[test]
fn semantic_errors_decode() {
    let file = load(ENVELOPES);
    for v in vectors(&file, "semantic_errors") {
        let cbor = hex_field(v, "cbor");
        let env = Envelope::decode(&cbor).unwrap_or_else(|e| panic!("{}: {e}", name(v)));
        assert!(
            matches!(env, Envelope::Call { id: 0, .. }),
            "{}: {env:?}",
            name(v)
        );
        assert_eq!(env.to_body(), cbor, "{}: re-encode", name(v));
    }
}
