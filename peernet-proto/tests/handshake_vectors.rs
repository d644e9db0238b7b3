//! The handshake against every vector in `vectors/handshake.json`: exact
//! bytes for HELLO, WELCOME, PROOF and REJECT, and the expected REJECT code
//! for every invalid case.

use peernet_proto::testkit::handshake::{self, Initiator, Responder};
use peernet_proto::{FrameDecoder, HandshakeError, Identity, PeerId, RejectCode, TrustList};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vectors/handshake.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

struct Setup {
    initiator: Identity,
    responder: Identity,
    initiator_nonce: [u8; 32],
    responder_nonce: [u8; 32],
}

fn setup(v: &Value) -> Setup {
    let initiator = Identity::from_seed(&hex32(&v["initiator_seed"]));
    let responder = Identity::from_seed(&hex32(&v["responder_seed"]));
    assert_eq!(initiator.peer_id().as_bytes(), &hex32(&v["initiator_key"]));
    assert_eq!(responder.peer_id().as_bytes(), &hex32(&v["responder_key"]));
    Setup {
        initiator,
        responder,
        initiator_nonce: hex32(&v["initiator_nonce"]),
        responder_nonce: hex32(&v["responder_nonce"]),
    }
}

fn trusting(peer: PeerId) -> TrustList {
    let mut trust = TrustList::new();
    trust.insert(peer, None);
    trust
}

fn code(name: &str) -> RejectCode {
    [
        RejectCode::Untrusted,
        RejectCode::UnsupportedVersion,
        RejectCode::BadSignature,
        RejectCode::UnexpectedPeer,
        RejectCode::Busy,
        RejectCode::Malformed,
    ]
    .into_iter()
    .find(|c| c.name() == name)
    .unwrap_or_else(|| panic!("unknown code {name}"))
}

#[test]
fn valid_handshake_is_byte_exact() {
    let v = vectors();
    let s = setup(&v);
    let init = Initiator::start(
        &s.initiator,
        &s.initiator_nonce,
        Some(s.responder.peer_id()),
    );
    assert_eq!(init.hello().as_slice(), bytes(&v["hello"]));
    // the framed HELLO
    let mut framed = bytes::BytesMut::new();
    peernet_proto::frame::encode_frame(init.hello(), &mut framed);
    assert_eq!(framed.as_ref(), bytes(&v["hello_frame"]));

    let dialer =
        handshake::read_hello(&s.responder, &trusting(s.initiator.peer_id()), init.hello())
            .unwrap();
    assert_eq!(dialer.peer(), s.initiator.peer_id());
    let resp = Responder::welcome(&s.responder, dialer, init.hello(), &s.responder_nonce);
    assert_eq!(resp.welcome_body(), bytes(&v["welcome"]));

    let (peer, proof) = init
        .on_welcome(
            &s.initiator,
            &trusting(s.responder.peer_id()),
            resp.welcome_body(),
        )
        .unwrap();
    assert_eq!(peer, s.responder.peer_id());
    assert_eq!(proof.as_slice(), bytes(&v["proof"]));
    assert_eq!(resp.on_proof(&proof).unwrap(), s.initiator.peer_id());

    assert_eq!(
        handshake::reject(RejectCode::Untrusted).as_slice(),
        bytes(&v["reject_untrusted"])
    );
}

#[test]
fn signed_messages_match_the_vectors() {
    // The vectors spell out what is signed; check our layout against them
    // by verifying the vector signatures over the vector messages.
    let v = vectors();
    let s = setup(&v);
    let welcome = bytes(&v["welcome"]);
    let proof = bytes(&v["proof"]);
    let wmsg = bytes(&v["welcome_signed_message"]);
    let pmsg = bytes(&v["proof_signed_message"]);
    let vk =
        |id: &Identity| ed25519_dalek::VerifyingKey::from_bytes(id.peer_id().as_bytes()).unwrap();
    let sig = |b: &[u8]| ed25519_dalek::Signature::from_slice(b).unwrap();
    vk(&s.responder)
        .verify_strict(&wmsg, &sig(&welcome[70..]))
        .unwrap();
    vk(&s.initiator)
        .verify_strict(&pmsg, &sig(&proof[6..]))
        .unwrap();
    assert_eq!(&wmsg[..18], b"peernet-v1-welcome");
    assert_eq!(&pmsg[..16], b"peernet-v1-proof");
}

#[test]
fn every_invalid_vector_is_rejected_with_its_code() {
    let v = vectors();
    let s = setup(&v);
    let cases = v["invalid"].as_array().unwrap();
    assert!(cases.len() >= 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expect = code(case["expect"].as_str().unwrap());
        let hello = bytes(&case["hello"]);
        let failure = if case.get("proof").is_some() {
            // the responder, having sent the vector's WELCOME, reads PROOF
            let dialer =
                handshake::read_hello(&s.responder, &trusting(s.initiator.peer_id()), &hello)
                    .unwrap();
            let resp = Responder::welcome(&s.responder, dialer, &hello, &s.responder_nonce);
            assert_eq!(
                resp.welcome_body(),
                bytes(&case["welcome"]),
                "{name}: welcome differs"
            );
            resp.on_proof(&bytes(&case["proof"]))
                .map(|_| ())
                .unwrap_err()
        } else if case.get("welcome").is_some() {
            let init = Initiator::start(
                &s.initiator,
                &s.initiator_nonce,
                Some(s.responder.peer_id()),
            );
            assert_eq!(init.hello().as_slice(), hello, "{name}: hello differs");
            init.on_welcome(
                &s.initiator,
                &trusting(s.responder.peer_id()),
                &bytes(&case["welcome"]),
            )
            .map(|_| ())
            .unwrap_err()
        } else {
            handshake::read_hello(&s.responder, &trusting(s.initiator.peer_id()), &hello)
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(failure.send, Some(expect), "{name}");
        match &failure.error {
            // a dial that named the responder and reached an untrusted key
            // says so locally; the wire answer is still `untrusted`
            HandshakeError::UnexpectedPeer { .. } => {
                assert_eq!(expect, RejectCode::Untrusted, "{name}")
            }
            other => assert_eq!(other, &HandshakeError::Refused(expect), "{name}"),
        }
    }
}

#[test]
fn reject_frames_surface_as_typed_errors() {
    let v = vectors();
    let s = setup(&v);
    let init = Initiator::start(&s.initiator, &s.initiator_nonce, None);
    for c in 1u8..=7 {
        let mut body = handshake::reject(RejectCode::Untrusted);
        body[6] = c;
        let failure = init
            .on_welcome(&s.initiator, &TrustList::new(), &body)
            .unwrap_err();
        assert_eq!(failure.send, None, "no REJECT answers a REJECT");
        // an unknown code reads as malformed
        assert_eq!(
            failure.error,
            HandshakeError::Rejected(RejectCode::from_code(c))
        );
    }
    assert_eq!(RejectCode::from_code(7), RejectCode::Malformed);
}

#[test]
fn responder_refuses_its_own_key() {
    let v = vectors();
    let s = setup(&v);
    let me = s.responder.peer_id();
    let init = Initiator::start(&s.responder, &s.initiator_nonce, None);
    let failure = handshake::read_hello(&s.responder, &trusting(me), init.hello()).unwrap_err();
    assert_eq!(failure.send, Some(RejectCode::Untrusted));
}

#[test]
fn hello_frame_decodes_through_the_frame_layer() {
    let v = vectors();
    let mut dec = FrameDecoder::new(handshake::MAX_HANDSHAKE_FRAME);
    let mut input = bytes::Bytes::from(bytes(&v["hello_frame"]));
    assert_eq!(
        dec.decode(&mut input).unwrap().unwrap().as_ref(),
        bytes(&v["hello"])
    );
}
