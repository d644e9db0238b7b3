//! Writes the seed corpora, `corpus/<target>/`, from the protocol vectors
//! in `vectors/`.
//!
//! ```text
//! cargo run --features corpus --bin make-corpus -- [OUT_DIR] [VECTORS_DIR]
//! ```
//!
//! The handshake and connection targets run deterministic endpoints (fixed
//! identities, seeded RNGs), so this program builds the very same endpoints
//! and computes frames they accept: a PROOF for the responder's WELCOME, a
//! WELCOME for the initiator's HELLO, REPLYs for the request ids of the
//! calls the established target makes. Without those, the fuzzer would
//! have to forge Ed25519 signatures to get past the handshake.
//!
//! Seed files are named after their content hash, so re-running only adds
//! what is missing, next to whatever the fuzzer found.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use peernet_fuzz::seeds::Seed;
use peernet_fuzz::{
    Action, Established, Feed, INITIATOR_SEED, Node, RESPONDER_RNG, RESPONDER_SEED, STRANGER_SEED,
    expose_standard, fuzz_config, initiator, new_node, responder, responder_v2, seeds, sources,
    supersede, two_endpoints,
};
use peernet_proto::frame::encode_frame;
use peernet_proto::testkit::handshake::{self, Initiator, Responder};
use peernet_proto::{ConnId, Envelope, FrameDecoder, Handle, Identity, PeerId, TrustList};
use serde_json::Value;

struct Vectors {
    frames: Value,
    envelopes: Value,
    handshake: Value,
}

fn load(dir: &Path) -> Vectors {
    let read = |name: &str| -> Value {
        let path = dir.join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    Vectors {
        frames: read("frames.json"),
        envelopes: read("envelopes.json"),
        handshake: read("handshake.json"),
    }
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(body, &mut out);
    out.to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn add(&mut self, target: &str, data: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        let mut h = DefaultHasher::new();
        data.hash(&mut h);
        let path = dir.join(format!("seed-{:016x}", h.finish()));
        if !path.exists() {
            fs::write(&path, data).expect("write seed");
            self.written += 1;
        }
    }
}

/// Each envelope body in the vectors: (valid, invalid).
fn envelope_bodies(v: &Vectors) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let list = |key: &str| -> Vec<Vec<u8>> {
        v.envelopes[key]
            .as_array()
            .map(|a| a.iter().map(|e| hex_of(&e["cbor"])).collect())
            .unwrap_or_default()
    };
    let mut invalid = list("invalid");
    invalid.extend(list("semantic_errors"));
    (list("valid"), invalid)
}

/// Frame bodies of every frame in `wire`.
fn bodies(wire: Bytes) -> Vec<Bytes> {
    let mut dec = FrameDecoder::new(u32::MAX);
    let mut wire = wire;
    let mut out = Vec::new();
    while let Ok(Some(body)) = dec.decode(&mut wire) {
        out.push(body);
    }
    out
}

/// Everything `node` queued so far, drained through its model.
fn sent(node: &mut Node) -> Vec<u8> {
    let mut out = Vec::new();
    for action in node.pump() {
        if let Action::Transmit(conn) = action
            && let Some(b) = node.take(conn)
        {
            out.extend_from_slice(&b);
        }
    }
    out
}

/// The first frame body `node` queued so far (its answer); `what` says
/// what it should have sent.
fn first_sent(node: &mut Node, what: &str) -> Bytes {
    let first = bodies(Bytes::from(sent(node))).into_iter().next();
    first.unwrap_or_else(|| panic!("{what}"))
}

/// Checks that a seed does what it is for: `node`, fed `seed` on `conn`,
/// is established with `peer` (`role` names the seed's target).
fn assert_establishes(node: &mut Node, conn: ConnId, seed: &[u8], peer: &PeerId, role: &str) {
    node.receive(conn, Bytes::from(seed.to_vec()));
    node.pump();
    assert!(
        node.model().connection(peer).is_some(),
        "{role} seed no longer completes the handshake"
    );
}

fn frame_seeds(c: &mut Corpus, v: &Vectors, valid: &[Vec<u8>], hello_frame: &[u8]) {
    // max (3 bytes) | split | switch_after | new_max (3 bytes)
    let header = |max: u32, split: u8, switch: u8, new_max: u32| -> Vec<u8> {
        let m = max.to_be_bytes();
        let n = new_max.to_be_bytes();
        vec![m[1], m[2], m[3], split, switch, n[1], n[2], n[3]]
    };
    let mib = 1 << 20;
    for kind in ["valid", "invalid"] {
        for f in v.frames[kind].as_array().into_iter().flatten() {
            let wire = hex_of(&f["wire"]);
            for split in [0, 1, 3] {
                c.add(
                    "frame_decode",
                    &cat(&[&header(mib, split, 255, mib), &wire]),
                );
            }
        }
    }
    let mut stream = hello_frame.to_vec();
    for body in valid {
        stream.extend_from_slice(&framed(body));
    }
    for split in [0, 2, 200] {
        c.add(
            "frame_decode",
            &cat(&[&header(mib, split, 255, mib), &stream]),
        );
        // The handshake limit, raised after the first frame.
        c.add(
            "frame_decode",
            &cat(&[&header(134, split, 1, 4096), &stream]),
        );
    }
    // A partial trailing frame.
    let cut = &stream[..stream.len() - 3];
    c.add("frame_decode", &cat(&[&header(4096, 5, 255, 4096), cut]));
}

fn envelope_seeds(c: &mut Corpus, v: &Vectors, valid: &[Vec<u8>], invalid: &[Vec<u8>]) {
    for body in valid.iter().chain(invalid) {
        c.add("envelope_decode", body);
    }
    for key in ["hello", "welcome", "proof", "reject_untrusted"] {
        c.add("envelope_decode", &hex_of(&v.handshake[key]));
    }
    // A few the vectors lack: non-shortest heads, every tag at its smallest.
    for hex in [
        "8203190005",
        "82031b0000000000000005",
        "820600",
        "820400",
        "8305006568656c6c6f",
        "84011a00000001005900016f",
        "85001801786401020304400a",
    ] {
        if let Ok(b) = hex::decode(hex) {
            c.add("envelope_decode", &b);
        }
    }
}

/// The envelope frames a peer might send after the handshake.
fn envelope_stream(valid: &[Vec<u8>]) -> Vec<u8> {
    let mut s = Vec::new();
    for body in valid {
        s.extend_from_slice(&framed(body));
    }
    s
}

fn call_frame(id: u64, handle: &'static str, args: &'static [u8], timeout_ms: u64) -> Vec<u8> {
    framed(
        &Envelope::Call {
            id,
            handle: Handle::from_static(handle),
            args: Bytes::from_static(args),
            timeout_ms,
        }
        .to_body(),
    )
}

fn handshake_seeds(c: &mut Corpus, v: &Vectors, valid: &[Vec<u8>], invalid: &[Vec<u8>]) {
    let hs = &v.handshake;
    let a = Identity::from_seed(&INITIATOR_SEED);
    let b = Identity::from_seed(&RESPONDER_SEED);
    let hello_frame = hex_of(&hs["hello_frame"]);
    let nonce: [u8; 32] = hex_of(&hs["initiator_nonce"]).try_into().unwrap();
    let envelopes = envelope_stream(valid);
    let calls = cat(&[
        &call_frame(1, "echo", b"\x00hi", 5000),
        &call_frame(2, "echo", b"\x03pending", 100),
        &call_frame(3, "secret", b"", 0),
        &call_frame(4, "never", b"", 0),
        &call_frame(5, "unknown", b"", 0),
        &framed(&Envelope::Cancel { id: 2 }.to_body()),
        &framed(&Envelope::Ping { nonce: 9 }.to_body()),
    ]);
    let goodbye = framed(
        &Envelope::Goodbye {
            code: 0,
            reason: "bye".into(),
        }
        .to_body(),
    );
    let reject = |code: u8| {
        framed(&handshake::reject(peernet_proto::RejectCode::from_code(
            code,
        )))
    };

    // --- responder: the vectors' HELLO, then a PROOF for its WELCOME.
    let (mut r, conn) = responder();
    r.receive(conn, Bytes::from(hello_frame.clone()));
    let welcome = first_sent(&mut r, "responder answered the HELLO");
    let init = Initiator::start(&a, &nonce, Some(b.peer_id()));
    let mut trust_b = TrustList::new();
    trust_b.insert(b.peer_id(), None);
    let (_, proof) = init
        .on_welcome(&a, &trust_b, &welcome)
        .expect("the responder's WELCOME verifies");
    let proof_frame = framed(&proof);
    let hello_proof = cat(&[&hello_frame, &proof_frame]);
    // Check the seed does what it is for: the responder gets established.
    let (mut r, conn) = responder();
    assert_establishes(&mut r, conn, &hello_proof, &a.peer_id(), "responder");
    for (flags, split, tick) in [(0, 0, 0), (0, 7, 0), (0, 0, 40), (1, 0, 0), (0, 1, 1)] {
        let h = Feed::header(flags, split, tick);
        c.add("handshake_responder", &cat(&[&h, &hello_frame]));
        c.add("handshake_responder", &cat(&[&h, &hello_proof]));
        c.add("handshake_responder", &cat(&[&h, &hello_proof, &envelopes]));
        c.add(
            "handshake_responder",
            &cat(&[&h, &hello_proof, &calls, &goodbye]),
        );
    }
    // The stranger's HELLO and a PROOF for the WELCOME it would get if it
    // were trusted (the responder's nonce does not depend on its trust
    // list): refused as untrusted, unless a bug skips the trust check.
    let stranger = Identity::from_seed(&STRANGER_SEED);
    let mut trusting = new_node(
        fuzz_config(),
        &RESPONDER_SEED,
        &[a.peer_id(), stranger.peer_id()],
        RESPONDER_RNG,
    );
    expose_standard(&mut trusting);
    let tconn = trusting.accept().expect("accept");
    let s_init = Initiator::start(&stranger, &nonce, None);
    let s_hello = framed(s_init.hello());
    trusting.receive(tconn, Bytes::from(s_hello.clone()));
    let s_welcome = first_sent(&mut trusting, "the responder answered the stranger");
    let (_, s_proof) = s_init
        .on_welcome(&stranger, &trust_b, &s_welcome)
        .expect("WELCOME to the stranger verifies");
    let s_seed = cat(&[&s_hello, &framed(&s_proof), &calls]);
    for split in [0, 3] {
        c.add(
            "handshake_responder",
            &cat(&[&Feed::header(0, split, 0), &s_seed]),
        );
    }

    let h = Feed::header(0, 0, 0);
    for inv in hs["invalid"].as_array().into_iter().flatten() {
        let hello = framed(&hex_of(&inv["hello"]));
        c.add("handshake_responder", &cat(&[&h, &hello]));
        if inv.get("proof").is_some() {
            let proof = framed(&hex_of(&inv["proof"]));
            c.add("handshake_responder", &cat(&[&h, &hello, &proof]));
        }
    }
    c.add("handshake_responder", &cat(&[&h, &reject(1)]));
    c.add(
        "handshake_responder",
        &cat(&[&h, &hello_frame, &hello_frame]),
    );
    c.add("handshake_responder", &cat(&[&h, &hello_frame, &envelopes]));
    c.add("handshake_responder", &cat(&[&h, &[0, 0, 0, 0]]));
    c.add(
        "handshake_responder",
        &cat(&[&h, &hello_proof, &[0, 0x10, 0, 1]]),
    );
    for body in invalid {
        c.add(
            "handshake_responder",
            &cat(&[&h, &hello_proof, &framed(body)]),
        );
    }

    // --- initiator: a WELCOME for the HELLO this endpoint sends.
    let (mut i, _) = initiator(true);
    let hello = first_sent(&mut i, "initiator sent HELLO");
    let their_nonce: [u8; 32] = hex_of(&hs["responder_nonce"]).try_into().unwrap();
    let mut trust_a = TrustList::new();
    trust_a.insert(a.peer_id(), None);
    let dialer = handshake::read_hello(&b, &trust_a, &hello).expect("our HELLO reads");
    let welcome = Responder::welcome(&b, dialer, &hello, &their_nonce);
    let welcome_frame = framed(welcome.welcome_body());
    let (mut i, conn) = initiator(true);
    i.pump();
    assert_establishes(&mut i, conn, &welcome_frame, &b.peer_id(), "initiator");
    for (flags, split, tick) in [(0, 0, 0), (0, 9, 0), (2, 0, 0), (1, 0, 30), (0, 1, 0)] {
        let h = Feed::header(flags, split, tick);
        c.add("handshake_initiator", &cat(&[&h, &welcome_frame]));
        c.add(
            "handshake_initiator",
            &cat(&[&h, &welcome_frame, &envelopes]),
        );
        c.add(
            "handshake_initiator",
            &cat(&[&h, &welcome_frame, &calls, &goodbye]),
        );
        c.add(
            "handshake_initiator",
            &cat(&[&h, &welcome_frame, &reject(3)]),
        );
    }
    // A WELCOME from the stranger (untrusted) for our HELLO.
    let mut trust_a_s = TrustList::new();
    trust_a_s.insert(a.peer_id(), None);
    let dialer = handshake::read_hello(&stranger, &trust_a_s, &hello).expect("HELLO reads");
    let s_welcome = Responder::welcome(&stranger, dialer, &hello, &their_nonce);
    let s_welcome = framed(s_welcome.welcome_body());
    for flags in [0, 2] {
        let h = Feed::header(flags, 0, 0);
        c.add("handshake_initiator", &cat(&[&h, &s_welcome, &calls]));
    }

    let h = Feed::header(0, 0, 0);
    for code in 0..=7 {
        c.add("handshake_initiator", &cat(&[&h, &reject(code)]));
    }
    c.add(
        "handshake_initiator",
        &cat(&[&h, &framed(&hex_of(&hs["welcome"]))]),
    );
    for inv in hs["invalid"].as_array().into_iter().flatten() {
        if inv.get("welcome").is_some() {
            c.add(
                "handshake_initiator",
                &cat(&[&h, &framed(&hex_of(&inv["welcome"]))]),
            );
        }
    }
    c.add(
        "handshake_initiator",
        &cat(&[&h, &welcome_frame, &welcome_frame]),
    );
    c.add("handshake_initiator", &cat(&[&h, &envelopes]));
    for body in invalid {
        c.add(
            "handshake_initiator",
            &cat(&[&h, &welcome_frame, &framed(body)]),
        );
    }
}

fn established_seeds(c: &mut Corpus, valid: &[Vec<u8>], invalid: &[Vec<u8>]) {
    let envelopes = envelope_stream(valid);
    for flags in [0u8, 1, 2, 3] {
        // The ids of the calls the fuzzed side made (see
        // `peernet_fuzz::Established::new`).
        let s = Established::new(flags);
        let ids: Vec<u64> =
            s.x.model()
                .outbound
                .iter()
                .map(|id| id.request_id())
                .collect();
        let reply = |id: u64, status: u64, body: &'static [u8]| {
            framed(
                &Envelope::Reply {
                    id,
                    status,
                    body: Bytes::from_static(body),
                }
                .to_body(),
            )
        };
        let mut replies = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            replies.extend(reply(*id, n as u64, b"result"));
        }
        let mut check = Established::new(flags);
        check.x.receive(check.cx, Bytes::from(replies.clone()));
        check.settle();
        assert!(
            ids.len() == 3 && check.x.model().outbound.is_empty(),
            "established seed: REPLYs no longer match the calls"
        );
        let mut odd = Vec::new();
        for id in &ids {
            odd.extend(reply(*id, 99, b"unknown status"));
            odd.extend(reply(*id, 0, b"duplicate"));
        }
        let calls = cat(&[
            &call_frame(1, "echo", b"\x00hi", 5000),
            &call_frame(2, "echo", b"\x03pending", 100),
            &call_frame(2, "echo", b"\x00reused id", 0),
            &call_frame(0, "echo", b"", 0),
            &call_frame(3, "secret", b"", 0),
            &call_frame(4, "never", b"", 0),
            &framed(&Envelope::Cancel { id: 1 }.to_body()),
            &framed(&Envelope::Ping { nonce: 9 }.to_body()),
            &framed(&Envelope::Pong { nonce: 9 }.to_body()),
        ]);
        let mut many = Vec::new();
        for id in 1..=12u64 {
            many.extend(call_frame(id, "echo", b"\x03keep", 0));
        }
        for (split, tick) in [(0, 0), (5, 0), (0, 100), (1, 3)] {
            let h = Feed::header(flags, split, tick);
            c.add("connection_established", &cat(&[&h, &replies]));
            c.add("connection_established", &cat(&[&h, &odd]));
            c.add("connection_established", &cat(&[&h, &envelopes]));
            c.add("connection_established", &cat(&[&h, &calls]));
            c.add("connection_established", &cat(&[&h, &many]));
        }
        let h = Feed::header(flags, 0, 0);
        for body in valid.iter().chain(invalid) {
            c.add("connection_established", &cat(&[&h, &framed(body)]));
        }
        c.add("connection_established", &cat(&[&h, &[0, 0, 0, 0]]));
        c.add("connection_established", &cat(&[&h, &[0, 0, 0x10, 1]]));
        c.add(
            "connection_established",
            &cat(&[
                &h,
                &framed(&handshake::reject(peernet_proto::RejectCode::BadSignature)),
            ]),
        );
    }
}

/// Hand-encoded `two_endpoints` scenarios, in `arbitrary`'s format (see
/// `Op` in `fuzz_targets/two_endpoints.rs`; the variant numbers below
/// follow its declaration order).
struct Scn(Vec<u8>);

impl Scn {
    fn new(max_frame_len: u16) -> Scn {
        Scn::with(max_frame_len, 16 * 1024, [2048, 4096, 5000, 2000, 6000])
    }
    /// Tight limits: a small frame and send queue, a link that holds one
    /// write, a quick ping and a slow idle timeout.
    fn tight() -> Scn {
        Scn::with(200, 1, [64, 128, 5000, 100, 30000])
    }
    /// `times`: send_buffer, max_send_buffer, handshake, ping, idle (ms).
    fn with(max_frame_len: u16, link_capacity: u16, times: [u16; 5]) -> Scn {
        let mut s = Scn(max_frame_len.to_le_bytes().to_vec());
        s.0.extend((link_capacity - 1).to_le_bytes());
        for _ in 0..2 {
            // max_handshakes, max_inbound_calls, max_outbound_calls
            s.0.extend([2, 4, 4]);
            for v in times {
                s.0.extend(v.to_le_bytes());
            }
        }
        s
    }
    /// An enum variant `i` of `n`, as `arbitrary` reads it.
    fn variant(&mut self, i: u32, n: u32) -> &mut Scn {
        let v = ((u64::from(i) << 32) + (1 << 31)) / u64::from(n);
        assert_eq!((v * u64::from(n)) >> 32, u64::from(i));
        self.0.extend((v as u32).to_le_bytes());
        self
    }
    fn op(&mut self, i: u32) -> &mut Scn {
        self.0.push(1); // one more element
        self.variant(i, 17)
    }
    fn who(&mut self, b: bool) -> &mut Scn {
        self.variant(u32::from(b), 2)
    }
    fn u8(&mut self, v: u8) -> &mut Scn {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Scn {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn dial(&mut self, from_b: bool) -> &mut Scn {
        self.op(0).who(from_b).variant(0, 3)
    }
    fn deliver(&mut self, link: u8, to_b: bool, bytes: u16) -> &mut Scn {
        self.op(1).u8(link).who(to_b).u16(bytes)
    }
    fn flush(&mut self) -> &mut Scn {
        self.op(2)
    }
    /// A call to `echo` with `n` zero bytes of args.
    fn call(&mut self, from_b: bool, n: u16, timeout_ms: Option<u16>) -> &mut Scn {
        self.op(3).who(from_b).variant(0, 6).variant(1, 2).u16(n);
        match timeout_ms {
            Some(ms) => self.u8(1).u16(ms),
            None => self.u8(0),
        }
    }
    fn reply(&mut self, who_b: bool, resp: u32, n: u16) -> &mut Scn {
        self.op(5)
            .who(who_b)
            .u8(0)
            .variant(resp, 3)
            .variant(1, 2)
            .u16(n)
    }
    fn cancel(&mut self, who_b: bool) -> &mut Scn {
        self.op(6).who(who_b).u8(0)
    }
    fn unpair(&mut self, who_b: bool) -> &mut Scn {
        self.op(10).who(who_b).variant(0, 3)
    }
    fn cut(&mut self, side_b: bool) -> &mut Scn {
        self.op(12).u8(0).who(side_b)
    }
    fn advance(&mut self, ms: u16) -> &mut Scn {
        self.op(13).u16(ms)
    }
    fn shutdown(&mut self, who_b: bool) -> &mut Scn {
        self.op(14).who(who_b)
    }
    fn done(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.push(0);
        v
    }
}

/// Runs a hand-made scenario, checks it got where it should, keeps it.
fn scenario(c: &mut Corpus, data: &[u8], connects: bool, ok_results: usize) {
    let u = arbitrary::Unstructured::new(data);
    let s = two_endpoints::Scenario::arbitrary_take_rest(u).expect("scenario decodes");
    let summary = two_endpoints::run(s);
    assert!(
        (summary.connected > 0) == connects && summary.ok_results >= ok_results,
        "two_endpoints seed did not get where it should: {summary:?}"
    );
    c.add("two_endpoints", data);
}

fn two_endpoint_seeds(c: &mut Corpus) {
    let connected = || {
        let mut s = Scn::new(4096);
        s.dial(false).flush();
        s
    };
    scenario(c, &connected().done(), true, 0);
    scenario(
        c,
        &connected()
            .call(false, 5, Some(1000))
            .flush()
            .reply(true, 0, 3)
            .flush()
            .call(true, 1, None)
            .flush()
            .reply(false, 1, 2)
            .flush()
            .done(),
        true,
        1,
    );
    scenario(
        c,
        &connected()
            .call(false, 5, Some(100))
            .call(false, 5000, None)
            .flush()
            .advance(200)
            .cancel(false)
            .flush()
            .reply(true, 2, 300)
            .flush()
            .done(),
        true,
        0,
    );
    // Both dial at once: one connection survives on both sides.
    scenario(
        c,
        &Scn::new(4096).dial(false).dial(true).flush().done(),
        true,
        0,
    );
    scenario(
        c,
        &Scn::new(4096)
            .dial(false)
            .dial(true)
            .deliver(0, true, 70)
            .deliver(1, false, 70)
            .flush()
            .done(),
        true,
        0,
    );
    // Byte by byte.
    let mut s = Scn::new(300);
    s.dial(false);
    for _ in 0..40 {
        s.deliver(0, true, 7).deliver(0, false, 11);
    }
    scenario(c, &s.flush().call(false, 200, None).flush().done(), true, 0);
    scenario(
        c,
        &connected().call(false, 1, None).unpair(true).flush().done(),
        true,
        0,
    );
    scenario(
        c,
        &connected().call(false, 1, None).cut(true).flush().done(),
        true,
        0,
    );
    scenario(
        c,
        &connected()
            .shutdown(true)
            .call(false, 1, None)
            .flush()
            .done(),
        true,
        0,
    );
    scenario(
        c,
        &connected()
            .advance(3000)
            .flush()
            .advance(9000)
            .flush()
            .done(),
        true,
        0,
    );
    // Tight limits: queues and links fill up.
    let tight = || {
        let mut s = Scn::tight();
        s.dial(false).flush();
        s
    };
    scenario(
        c,
        &tight().call(false, 100, None).advance(150).flush().done(),
        true,
        0,
    );
    scenario(
        c,
        &tight()
            .call(false, 50, Some(500))
            .call(true, 50, None)
            .deliver(0, true, 40)
            .advance(150)
            .advance(150)
            .flush()
            .reply(true, 0, 150)
            .flush()
            .done(),
        true,
        0,
    );
    // A peer that stops reading while calls pile up.
    let mut s = connected();
    for _ in 0..8 {
        s.call(false, 3000, None);
    }
    scenario(
        c,
        &s.deliver(0, true, 100).advance(100).flush().done(),
        true,
        0,
    );
}

/// Inputs that once broke an invariant (`regressions/<target>/`, kept in
/// git; each also has a test in `peernet-proto/tests/fuzz_regressions.rs`)
/// go back into the corpus, so the fuzzer starts from them.
fn regressions(c: &mut Corpus, dir: &Path) {
    let Ok(targets) = fs::read_dir(dir) else {
        return;
    };
    for target in targets.flatten() {
        let name = target.file_name().to_string_lossy().into_owned();
        for input in fs::read_dir(target.path()).into_iter().flatten().flatten() {
            let data = fs::read(input.path()).expect("read regression input");
            c.add(&name, &data);
        }
    }
}

/// Seeds for the version-2 targets from `vectors/v2/`: the vector INIT
/// (valid for the targets' responder) followed by the initiator's records,
/// each invalid INIT, the record cases after the key confirmation; the
/// vector RESP followed by the responder's records, and the REJECTs.
fn v2_seeds(c: &mut Corpus, dir: &Path) {
    let read = |name: &str| -> Value {
        let path = dir.join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let handshake = read("handshake.json");
    let records = read("records.json");
    let frames_from = |from: &str| -> Vec<u8> {
        handshake["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["from"] == from)
            .flat_map(|r| hex_of(&r["frame"]))
            .collect()
    };
    let init = hex_of(&handshake["init"]);
    c.add("v2_responder", &init);
    c.add(
        "v2_responder",
        &[init.clone(), frames_from("initiator")].concat(),
    );
    for case in handshake["invalid_init"].as_array().expect("invalid_init") {
        c.add("v2_responder", &hex_of(&case["init"]));
    }
    let confirmation = hex_of(&records["confirmation"]);
    for case in records["cases"].as_array().expect("cases") {
        let seed = [init.clone(), confirmation.clone(), hex_of(&case["frame"])].concat();
        c.add("v2_responder", &seed);
    }
    // The endpoint itself as a version-2 responder (`handshake_responder`,
    // flag bit 1): the INIT frame must get a RESP from it.
    let init_frame = hex_of(&handshake["init_frame"]);
    let (mut r, conn) = responder_v2();
    r.receive(conn, Bytes::from(init_frame.clone()));
    first_sent(&mut r, "the version-2 responder answered the vector INIT");
    let after = frames_from("initiator");
    for (flags, split, tick) in [(2, 0, 0), (2, 9, 0), (3, 0, 0), (2, 0, 40)] {
        let h = Feed::header(flags, split, tick);
        c.add("handshake_responder", &cat(&[&h, &init_frame]));
        c.add("handshake_responder", &cat(&[&h, &init_frame, &after]));
        c.add("handshake_responder", &cat(&[&h, &init_frame, &init_frame]));
    }
    let resp = hex_of(&handshake["resp"]);
    c.add("v2_initiator", &resp);
    c.add("v2_initiator", &[resp, frames_from("responder")].concat());
    c.add("v2_initiator", &hex_of(&handshake["reject_untrusted"]));
    c.add("v2_initiator", &hex_of(&handshake["v1_hello_answer"]));
}

/// Seeds for `v2_records` (`kind | len | plaintext` items, see
/// `peernet_fuzz::v2::run_records`): each valid envelope alone, all of
/// them batched in one record, an empty record, each invalid envelope, a
/// record cutting an envelope, and each way of breaking a record.
fn v2_record_seeds(c: &mut Corpus, valid: &[Vec<u8>], invalid: &[Vec<u8>]) {
    let item = |kind: u8, plain: &[u8]| -> Vec<u8> {
        let len = u16::try_from(plain.len()).expect("a small plaintext");
        [&[kind][..], &len.to_be_bytes(), plain].concat()
    };
    let batch: Vec<u8> = valid.concat();
    for body in valid {
        c.add("v2_records", &item(0, body));
    }
    c.add("v2_records", &[item(0, &[]), item(1, &batch)].concat());
    for body in invalid {
        c.add("v2_records", &[item(0, &[]), item(2, body)].concat());
    }
    if let Some(first) = valid.first() {
        let cut = [&batch[..], &first[..first.len() / 2]].concat();
        c.add("v2_records", &item(3, &cut));
        for kind in [5, 6, 7] {
            c.add("v2_records", &[item(0, first), item(kind, first)].concat());
        }
    }
}

/// Seeds for `source_limits` and `supersede_race` (`peernet_fuzz::seeds`):
/// each is run, and must get where it claims.
fn op_stream_seeds(c: &mut Corpus) {
    fn check<T: std::fmt::Debug>(
        c: &mut Corpus,
        target: &str,
        seeds: Vec<Seed<T>>,
        run: fn(&[u8]) -> T,
    ) {
        for seed in seeds {
            let summary = run(&seed.data);
            assert!(
                (seed.reached)(&summary),
                "{target} seed did not get where it claims ({}): {summary:?}",
                seed.name
            );
            c.add(target, &seed.data);
        }
    }
    check(c, "source_limits", seeds::source_limits(), sources::run);
    check(c, "supersede_race", seeds::supersede_race(), supersede::run);
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map_or_else(|| manifest.join("corpus"), PathBuf::from);
    let vectors = args
        .next()
        .map_or_else(|| manifest.join("../vectors"), PathBuf::from);
    let v = load(&vectors);
    let (valid, invalid) = envelope_bodies(&v);
    let mut c = Corpus {
        root: out,
        written: 0,
    };
    let hello_frame = hex_of(&v.handshake["hello_frame"]);
    frame_seeds(&mut c, &v, &valid, &hello_frame);
    envelope_seeds(&mut c, &v, &valid, &invalid);
    handshake_seeds(&mut c, &v, &valid, &invalid);
    established_seeds(&mut c, &valid, &invalid);
    two_endpoint_seeds(&mut c);
    v2_seeds(&mut c, &vectors.join("v2"));
    v2_record_seeds(&mut c, &valid, &invalid);
    op_stream_seeds(&mut c);
    regressions(&mut c, &manifest.join("regressions"));
    println!(
        "make-corpus: {} new seed files under {}",
        c.written,
        c.root.display()
    );
}
