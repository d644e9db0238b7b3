//! Property tests for frames and envelopes: round trips, arbitrary splits of
//! the byte stream, and arbitrary (hostile) input.

use bytes::{Bytes, BytesMut};
use peernet_proto::envelope::{Envelope, Handle, MAX_HANDLE_LEN};
use peernet_proto::frame::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder, encode_frame};
use proptest::collection::vec;
use proptest::prelude::*;

const ENVELOPES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../vectors/envelopes.json"
));

/// Integers that hit every CBOR head width and its edges.
fn any_uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(23),
        Just(24),
        Just(255),
        Just(256),
        Just(65535),
        Just(65536),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(u64::MAX),
        any::<u64>(),
        0u64..1000,
    ]
}

/// 1..=255 bytes of arbitrary unicode.
fn any_handle() -> impl Strategy<Value = Handle> {
    vec(any::<char>(), 1..=MAX_HANDLE_LEN).prop_map(|chars| {
        let mut name = String::new();
        for c in chars {
            if name.len() + c.len_utf8() > MAX_HANDLE_LEN {
                break;
            }
            name.push(c);
        }
        Handle::try_from(name).expect("1..=255 bytes of UTF-8")
    })
}

fn any_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..2048).prop_map(Bytes::from)
}

fn any_envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        (any_uint(), any_handle(), any_bytes(), any_uint()).prop_map(
            |(id, handle, args, timeout_ms)| {
                Envelope::Call {
                    id,
                    handle,
                    args,
                    timeout_ms,
                }
            }
        ),
        (any_uint(), any_uint(), any_bytes()).prop_map(|(id, status, body)| Envelope::Reply {
            id,
            status,
            body
        }),
        (any_handle(), any_bytes()).prop_map(|(handle, args)| Envelope::Send { handle, args }),
        any_uint().prop_map(|nonce| Envelope::Ping { nonce }),
        any_uint().prop_map(|nonce| Envelope::Pong { nonce }),
        (any_uint(), any::<String>()).prop_map(|(code, reason)| Envelope::Goodbye { code, reason }),
        any_uint().prop_map(|id| Envelope::Cancel { id }),
    ]
}

/// Splits `wire` into chunks of the given sizes (cycled), feeds them to a
/// decoder one by one and collects what comes out.
fn decode_in_chunks(dec: &mut FrameDecoder, wire: &Bytes, sizes: &[usize]) -> Vec<Bytes> {
    let mut bodies = Vec::new();
    let mut pos = 0;
    for size in sizes.iter().cycle() {
        if pos >= wire.len() {
            break;
        }
        let end = (pos + size).min(wire.len());
        let mut input = wire.slice(pos..end);
        pos = end;
        while let Some(body) = dec.decode(&mut input).expect("valid stream") {
            bodies.push(body);
        }
        assert!(input.is_empty());
        assert!(dec.buffered_len() <= FRAME_HEADER_LEN + dec.max_frame_len() as usize);
    }
    bodies
}

/// If `body` decodes, re-encoding and decoding again gives the same envelope.
fn check_stable(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(env) = Envelope::decode(&Bytes::copy_from_slice(body)) {
        let again = env.to_body();
        prop_assert_eq!(again.len(), env.encoded_len());
        prop_assert_eq!(Envelope::decode(&Bytes::from(again)), Ok(env));
    }
    Ok(())
}

fn valid_vector_bodies() -> Vec<Vec<u8>> {
    let file: serde_json::Value = serde_json::from_str(ENVELOPES).unwrap();
    file["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(file["semantic_errors"].as_array().unwrap())
        .map(|v| hex::decode(v["cbor"].as_str().unwrap()).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    let n = body.len();
    match *m {
        Mutation::Flip { at, bit } => body[at % n] ^= 1 << bit,
        Mutation::Set { at, byte } => body[at % n] = byte,
        Mutation::Insert { at, byte } => body.insert(at % (n + 1), byte),
        Mutation::Remove { at } => {
            body.remove(at % n);
        }
        Mutation::Truncate { at } => body.truncate(at % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn envelope_round_trips_through_a_frame(env in any_envelope()) {
        let mut wire = BytesMut::new();
        env.encode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN).unwrap();
        prop_assert_eq!(wire.len(), FRAME_HEADER_LEN + env.encoded_len());
        prop_assert_eq!(&wire[FRAME_HEADER_LEN..], &env.to_body()[..]);

        let mut input = wire.freeze();
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let body = dec.decode(&mut input).unwrap().expect("a whole frame");
        prop_assert!(input.is_empty());
        prop_assert_eq!(body.len(), env.encoded_len());
        prop_assert_eq!(Envelope::decode(&body), Ok(env));
    }

    #[test]
    fn encode_frame_refuses_over_the_limit(env in any_envelope(), max in 0u32..300) {
        let mut wire = BytesMut::from(&b"keep"[..]);
        let fits = env.encoded_len() <= max as usize;
        prop_assert_eq!(env.encode_frame(&mut wire, max).is_ok(), fits);
        if !fits {
            prop_assert_eq!(&wire[..], b"keep");
        }
    }

    #[test]
    fn split_stream_yields_the_same_bodies(
        bodies in vec(vec(any::<u8>(), 1..600), 1..8),
        sizes in vec(1usize..700, 1..20),
    ) {
        let mut wire = BytesMut::new();
        for body in &bodies {
            encode_frame(body, &mut wire);
        }
        let wire = wire.freeze();
        let mut dec = FrameDecoder::new(600);
        let got = decode_in_chunks(&mut dec, &wire, &sizes);
        prop_assert_eq!(got.len(), bodies.len());
        for (got, want) in got.iter().zip(&bodies) {
            prop_assert_eq!(&got[..], &want[..]);
        }
        prop_assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn split_envelope_stream_yields_the_same_envelopes(
        envs in vec(any_envelope(), 1..6),
        sizes in vec(1usize..3000, 1..20),
    ) {
        let mut wire = BytesMut::new();
        for env in &envs {
            env.encode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN).unwrap();
        }
        let wire = wire.freeze();
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let got: Vec<Envelope> = decode_in_chunks(&mut dec, &wire, &sizes)
            .iter()
            .map(|body| Envelope::decode(body).unwrap())
            .collect();
        prop_assert_eq!(got, envs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_decoder(
        max in prop_oneof![1u32..64, 1u32..4096, Just(DEFAULT_MAX_FRAME_LEN), Just(u32::MAX)],
        data in vec(any::<u8>(), 0..4096),
        sizes in vec(1usize..300, 1..10),
    ) {
        let data = Bytes::from(data);
        let mut dec = FrameDecoder::new(max);
        let mut pos = 0;
        'feed: for size in sizes.iter().cycle() {
            if pos >= data.len() {
                break;
            }
            let end = (pos + size).min(data.len());
            let mut input = data.slice(pos..end);
            pos = end;
            loop {
                let result = dec.decode(&mut input);
                prop_assert!(dec.buffered_len() <= FRAME_HEADER_LEN + max as usize);
                match result {
                    Ok(Some(body)) => {
                        prop_assert!(!body.is_empty() && body.len() <= max as usize);
                        check_stable(&body)?;
                    }
                    Ok(None) => {
                        prop_assert!(input.is_empty());
                        break;
                    }
                    Err(e) => {
                        prop_assert_eq!(dec.decode(&mut input), Err(e));
                        break 'feed;
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_envelope_decode(data in vec(any::<u8>(), 0..512)) {
        check_stable(&data)?;
    }

    #[test]
    fn envelope_shaped_bytes_are_stable(
        head in prop_oneof![Just(0x82u8), Just(0x83), Just(0x84), Just(0x85)],
        tag in 0u8..8,
        rest in vec(any::<u8>(), 0..64),
    ) {
        // Starting from a plausible array head and tag reaches far deeper
        // into the decoder than uniformly random bytes do.
        let mut data = vec![head, tag];
        data.extend_from_slice(&rest);
        check_stable(&data)?;
    }

    #[test]
    fn mutated_vectors_are_stable(
        which in any::<prop::sample::Index>(),
        mutations in vec(any_mutation(), 1..4),
    ) {
        let bodies = valid_vector_bodies();
        let mut body = which.get(&bodies).clone();
        for m in &mutations {
            mutate(&mut body, m);
        }
        check_stable(&body)?;
    }

    #[test]
    fn decode_then_encode_is_identity_for_canonical_bodies(env in any_envelope()) {
        // Our encoder is canonical, so its output re-encodes byte for byte.
        let body = env.to_body();
        let decoded = Envelope::decode(&Bytes::from(body.clone())).unwrap();
        prop_assert_eq!(decoded.to_body(), body);
    }
}
