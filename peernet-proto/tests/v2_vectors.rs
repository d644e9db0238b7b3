//! Version 2 (PROTOCOL.md part B) against every vector in `vectors/v2/`:
//! key conversion, a full handshake with fixed ephemerals byte for byte in
//! both roles, every invalid INIT with the REJECT it must get, and records,
//! bad ones included, with the reaction each must cause.

use bytes::Bytes;
use peernet_proto::RejectCode;
use peernet_proto::testkit::handshake::Failure;
use peernet_proto::testkit::noise::{
    CipherState, InitiatorV2, LocalStatic, RecordError, Transport, check_init, read_init,
    reject_answer, reject_v2,
};
use peernet_proto::{Envelope, HandshakeError, Identity, PeerId, TrustList};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/../vectors/v2/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

fn trusting(peers: &[PeerId]) -> TrustList {
    let mut trust = TrustList::new();
    for peer in peers {
        trust.insert(*peer, None);
    }
    trust
}

fn code(name: &str) -> RejectCode {
    (1..=6)
        .map(RejectCode::from_code)
        .find(|code| code.name() == name)
        .unwrap_or_else(|| panic!("unknown code {name}"))
}

/// Strips the 4-byte length prefix of a frame, checking it.
fn frame_body(frame: &[u8]) -> Vec<u8> {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4, "length prefix");
    frame[4..].to_vec()
}

#[test]
fn keys_convert_as_the_vectors_say() {
    let v = load("keys.json");
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for case in keys {
        let identity = Identity::from_seed(&hex32(&case["seed"]));
        assert_eq!(identity.peer_id().as_bytes(), &hex32(&case["peer_id"]));
        let local = LocalStatic::new(&identity);
        assert_eq!(local.secret(), &hex32(&case["x25519_secret"]));
        assert_eq!(local.public(), &hex32(&case["x25519_public"]));
        // The public key from the PeerId alone (what a dialer uses).
        let (peer, public) =
            peernet_proto::testkit::noise::static_public_of(identity.peer_id().as_bytes()).unwrap();
        assert_eq!(peer, identity.peer_id());
        assert_eq!(public, hex32(&case["x25519_public"]));
    }
}

struct Setup {
    initiator: LocalStatic,
    responder: LocalStatic,
    trust_initiator: TrustList,
    trust_responder: TrustList,
    e_i: [u8; 32],
    e_r: [u8; 32],
}

fn setup(v: &Value) -> Setup {
    let i = Identity::from_seed(&hex32(&v["initiator_seed"]));
    let r = Identity::from_seed(&hex32(&v["responder_seed"]));
    assert_eq!(i.peer_id().as_bytes(), &hex32(&v["initiator_peer_id"]));
    assert_eq!(r.peer_id().as_bytes(), &hex32(&v["responder_peer_id"]));
    Setup {
        trust_initiator: trusting(&[r.peer_id()]),
        trust_responder: trusting(&[i.peer_id()]),
        initiator: LocalStatic::new(&i),
        responder: LocalStatic::new(&r),
        e_i: hex32(&v["initiator_ephemeral_secret"]),
        e_r: hex32(&v["responder_ephemeral_secret"]),
    }
}

/// Runs the vector handshake; returns (initiator, responder) transports.
fn handshake(v: &Value) -> (Transport, Transport) {
    let s = setup(v);
    assert_eq!(s.responder.mac1_key(), &hex32(&v["mac1_key"]));
    let (mut initiator, init) =
        InitiatorV2::start(&s.initiator, s.responder.peer_id(), s.e_i).unwrap();
    assert_eq!(init.to_vec(), bytes(&v["init"]), "INIT");
    assert_eq!(frame_body(&bytes(&v["init_frame"])), init.to_vec());
    let accepted = read_init(&s.responder, &s.trust_responder, &init, false, s.e_r).unwrap();
    assert_eq!(accepted.peer, s.initiator.peer_id());
    assert_eq!(accepted.resp.to_vec(), bytes(&v["resp"]), "RESP");
    assert_eq!(frame_body(&bytes(&v["resp_frame"])), accepted.resp.to_vec());
    let t_i = initiator.read_resp(&accepted.resp).unwrap();
    let t_r = accepted.transport;
    let hash = hex32(&v["handshake_hash"]);
    assert_eq!(t_i.handshake_hash, hash);
    assert_eq!(t_r.handshake_hash, hash);
    let _ = &s.trust_initiator;
    (t_i, t_r)
}

#[test]
fn full_handshake_and_records_byte_for_byte() {
    let v = load("handshake.json");
    let (mut t_i, mut t_r) = handshake(&v);
    // Split's keys, checked through records sealed with known keys.
    let k1 = hex32(&v["key_initiator_to_responder"]);
    let k2 = hex32(&v["key_responder_to_initiator"]);
    for (key, side) in [(k1, "initiator"), (k2, "responder")] {
        let mut probe = CipherState::with_nonce(key, 0);
        let mut buf = Vec::new();
        probe.seal_record(&mut buf, 0).unwrap();
        let mut ours = Vec::new();
        let state = if side == "initiator" {
            &mut t_i.send
        } else {
            &mut t_r.send
        };
        let mut copy = CipherState::with_nonce([0; 32], 0);
        std::mem::swap(&mut copy, state);
        copy.seal_record(&mut ours, 0).unwrap();
        assert_eq!(buf, ours, "{side}'s sending key");
    }
    // Fresh transports for the records (the probes used nonce 0).
    let (mut t_i, mut t_r) = handshake(&v);
    for record in v["records"].as_array().unwrap() {
        let (send, recv) = match record["from"].as_str().unwrap() {
            "initiator" => (&mut t_i.send, &mut t_r.recv),
            _ => (&mut t_r.send, &mut t_i.recv),
        };
        assert_eq!(send.nonce(), record["nonce"].as_u64().unwrap());
        let envelopes: Vec<Vec<u8>> = record["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(bytes)
            .collect();
        // Sealed in place behind room for the length prefix.
        let mut frame = vec![0u8; 4];
        for e in &envelopes {
            frame.extend_from_slice(e);
        }
        send.seal_record(&mut frame, 4).unwrap();
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(frame, bytes(&record["frame"]), "record {record}");
        let mut body = frame_body(&frame);
        let plain = recv.open_record(&mut body).unwrap();
        assert_eq!(plain, envelopes.concat().as_slice());
    }
}

#[test]
fn v1_hello_gets_the_v1_reject_and_reject_is_v2() {
    let v = load("handshake.json");
    let s = setup(&v);
    let hello = bytes(&v["v1_hello"]);
    let failure = check_init(&s.responder, &hello).unwrap_err();
    assert_eq!(failure.send, Some(RejectCode::UnsupportedVersion));
    assert_eq!(
        reject_answer(&failure, &hello).unwrap().to_vec(),
        bytes(&v["v1_hello_answer"])
    );
    assert_eq!(
        reject_v2(RejectCode::Untrusted).to_vec(),
        bytes(&v["reject_untrusted"])
    );
}

#[test]
fn every_invalid_init_gets_its_reject() {
    let v = load("handshake.json");
    let s = setup(&v);
    let cases = v["invalid_init"].as_array().unwrap();
    assert!(cases.len() >= 14);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let init = bytes(&case["init"]);
        let want = code(
            case["expect"]
                .as_str()
                .unwrap()
                .strip_prefix("reject:")
                .unwrap(),
        );
        let trust = if name == "own_key" {
            // The responder trusting itself must still refuse its own key.
            trusting(&[s.initiator.peer_id(), s.responder.peer_id()])
        } else {
            s.trust_responder.clone()
        };
        let failure = read_init(&s.responder, &trust, &init, false, s.e_r).unwrap_err();
        assert_eq!(
            failure,
            Failure {
                send: Some(want),
                error: HandshakeError::Refused(want),
            },
            "{name}"
        );
        let answer = reject_answer(&failure, &init).unwrap();
        assert_eq!(answer, reject_v2(want), "{name}: a version-2 REJECT");
    }
}

#[test]
fn checks_run_in_the_order_of_section_6_1() {
    let v = load("handshake.json");
    let s = setup(&v);
    let init = bytes(&v["init"]);
    let untrusting = TrustList::new();
    // busy comes after mac1 ...
    let mut bad_mac = init.clone();
    bad_mac[149] ^= 1;
    let f = read_init(&s.responder, &untrusting, &bad_mac, true, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::UnexpectedPeer));
    // ... and before the Noise message and trust.
    let f = read_init(&s.responder, &untrusting, &init, true, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::Busy));
    let f = read_init(&s.responder, &untrusting, &init, false, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::Untrusted));
    // Magic before version, version before length.
    let f = read_init(&s.responder, &untrusting, b"PNEX\x07", false, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::Malformed));
    let f = read_init(&s.responder, &untrusting, b"PNET\x07", false, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::UnsupportedVersion));
    let f = read_init(&s.responder, &untrusting, b"PNET\x02\x01", false, s.e_r).unwrap_err();
    assert_eq!(f.send, Some(RejectCode::Malformed));
    for len in 0..5 {
        let f = read_init(&s.responder, &untrusting, &init[..len], false, s.e_r).unwrap_err();
        assert_eq!(f.send, Some(RejectCode::Malformed), "{len} bytes");
    }
}

#[test]
fn initiator_reads_rejects_and_bad_resps() {
    let v = load("handshake.json");
    let s = setup(&v);
    let start = || {
        InitiatorV2::start(&s.initiator, s.responder.peer_id(), s.e_i)
            .unwrap()
            .0
    };
    // A REJECT of either version ends the dial with its code.
    for body in [bytes(&v["v1_hello_answer"]), bytes(&v["reject_untrusted"])] {
        let f = start().read_resp(&body).unwrap_err();
        assert_eq!(f.send, None);
        assert_eq!(
            f.error,
            HandshakeError::Rejected(RejectCode::from_code(body[6]))
        );
    }
    let resp = bytes(&v["resp"]);
    let refused = |f: Failure, code| {
        assert_eq!(
            f,
            Failure {
                send: Some(code),
                error: HandshakeError::Refused(code)
            }
        );
    };
    refused(
        start().read_resp(&resp[..53]).unwrap_err(),
        RejectCode::Malformed,
    );
    let mut wrong_version = resp.clone();
    wrong_version[4] = 1;
    refused(
        start().read_resp(&wrong_version).unwrap_err(),
        RejectCode::Malformed,
    );
    for i in [6, 37, 38, 53] {
        let mut flipped = resp.clone();
        flipped[i] ^= 0x10;
        refused(
            start().read_resp(&flipped).unwrap_err(),
            RejectCode::BadSignature,
        );
    }
    let mut low_order = resp.clone();
    low_order[6..38].fill(0);
    refused(
        start().read_resp(&low_order).unwrap_err(),
        RejectCode::BadSignature,
    );
    assert!(start().read_resp(&resp).is_ok());
}

/// Splits a record's plaintext into envelopes the way section 7 says: CBOR
/// items one after another until the plaintext ends.
fn envelopes_of(plain: &[u8]) -> Result<Vec<Vec<u8>>, ()> {
    let mut out = Vec::new();
    let mut d = minicbor::Decoder::new(plain);
    while d.position() < plain.len() {
        let start = d.position();
        d.skip().map_err(|_| ())?;
        let item = &plain[start..d.position()];
        Envelope::decode(&Bytes::copy_from_slice(item)).map_err(|_| ())?;
        out.push(item.to_vec());
    }
    Ok(out)
}

#[test]
fn records_and_their_reactions() {
    let v = load("records.json");
    let hs = load("handshake.json");
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (_, mut t_r) = handshake(&hs);
        let mut confirmation = frame_body(&bytes(&v["confirmation"]));
        assert_eq!(t_r.recv.open_record(&mut confirmation).unwrap(), b"");
        let frame = bytes(&case["frame"]);
        let mut body = frame[4..].to_vec();
        let result = t_r.recv.open_record(&mut body).map(<[u8]>::to_vec);
        match case["expect"].as_str().unwrap() {
            "envelopes" => {
                let want: Vec<Vec<u8>> = case["envelopes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(bytes)
                    .collect();
                assert_eq!(envelopes_of(&result.unwrap()), Ok(want), "{name}");
                assert_eq!(t_r.recv.nonce(), 2);
            }
            "close:decrypt_failed" => {
                assert_eq!(result, Err(RecordError::DecryptFailed), "{name}");
                assert_eq!(
                    t_r.recv.nonce(),
                    1,
                    "{name}: a failed record consumes no nonce"
                );
            }
            "goodbye:protocol_error" => {
                let plain = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(envelopes_of(&plain), Err(()), "{name}");
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
    }
}

#[test]
fn nonce_space_ends_before_its_last_value() {
    let key = [9u8; 32];
    let mut send = CipherState::with_nonce(key, u64::MAX - 1);
    let mut buf = b"last".to_vec();
    send.seal_record(&mut buf, 0).unwrap();
    assert_eq!(send.nonce(), u64::MAX);
    let mut more = b"one more".to_vec();
    assert_eq!(
        send.seal_record(&mut more, 0),
        Err(RecordError::NonceExhausted)
    );
    assert_eq!(more, b"one more", "nothing sealed");
    let mut recv = CipherState::with_nonce(key, u64::MAX - 1);
    assert_eq!(recv.open_record(&mut buf).unwrap(), b"last");
    let mut other = vec![0u8; 16];
    assert_eq!(
        recv.open_record(&mut other),
        Err(RecordError::NonceExhausted)
    );
}

#[test]
fn a_replayed_init_is_caught_before_any_x25519_work() {
    use peernet_proto::Instant;
    use peernet_proto::testkit::noise::ReplayCache;
    use std::time::Duration;

    let v = load("handshake.json");
    let s = setup(&v);
    let init = bytes(&v["init"]);
    let timeout = Duration::from_secs(10);
    let mut answered = ReplayCache::new(1024, timeout, 99);
    let t0 = Instant::from_millis(500);
    // First time: not a replay; answered, then remembered.
    let checked = check_init(&s.responder, &init).unwrap();
    assert!(!answered.contains(checked.ephemeral(), t0));
    let ephemeral = *checked.ephemeral();
    assert_eq!(&ephemeral[..], &init[6..38]);
    checked
        .accept(&s.responder, &s.trust_responder, false, s.e_r)
        .unwrap();
    answered.insert(ephemeral, t0);
    // The same INIT again within handshake_timeout: a replay.
    let again = check_init(&s.responder, &init).unwrap();
    assert!(answered.contains(again.ephemeral(), t0 + Duration::from_secs(9)));
    // After the window it would be checked afresh (and its first record,
    // which a replayer cannot make, would still be missing).
    assert!(!answered.contains(again.ephemeral(), t0 + timeout));
}
