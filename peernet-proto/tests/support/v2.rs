//! Hand-driven version 2 against one endpoint: B (identity 2) answers
//! INITs from identity 1 built by the crypto test kit, and the helpers
//! read what B did.

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::testkit::noise::{CipherState, InitiatorV2, LocalStatic, Transport};
use peernet_proto::{
    Access, CloseReason, Config, ConnId, Endpoint, Envelope, Event, Handle, HandshakeError, Input,
    Instant, Output, RecordError, TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub(crate) use super::failed_with;
use super::{identity, test_config_v2};

/// B, a version-2 responder that trusts identity 1 (the hand-driven
/// initiator).
pub fn responder(config: Config) -> Endpoint {
    let mut trust = TrustList::new();
    trust.insert(identity(1).peer_id(), None);
    Endpoint::new(
        config,
        identity(2),
        trust,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
    )
}

/// Fails the test unless `d` holds a handshake failed with `expected`
/// (showing its events).
#[track_caller]
pub fn assert_failed(d: &Drained, expected: HandshakeError) {
    assert!(failed_with(&d.events, expected), "{:?}", d.events);
}

/// What B did for `conn`: the bytes it wrote (its last ones included),
/// whether it closed, and every event.
#[derive(Default, Debug)]
pub struct Drained {
    /// Every byte B wrote for the connection, its last ones included.
    pub sent: Vec<u8>,
    /// Whether B closed it.
    pub closed: bool,
    /// Every event B emitted.
    pub events: Vec<Event>,
}

pub fn drain(ep: &mut Endpoint, conn: ConnId) -> Drained {
    let mut d = Drained::default();
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Transmit(c) => {
                if let Some(b) = ep.poll_transmit(c) {
                    if c == conn {
                        d.sent.extend_from_slice(&b);
                    }
                }
            }
            Output::Close { conn: c, last } if c == conn => {
                d.sent.extend_from_slice(&last);
                d.closed = true;
            }
            Output::Close { .. } | Output::Dial { .. } => {}
            Output::Event(e) => d.events.push(e),
        }
    }
    d
}

pub fn feed(ep: &mut Endpoint, now: Instant, conn: ConnId, data: &[u8]) -> Drained {
    let data = Bytes::copy_from_slice(data);
    ep.handle_input(
        now,
        Input::Received {
            conn,
            data: data.into(),
        },
    );
    drain(ep, conn)
}

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A record (a whole frame) holding `plain`.
pub fn seal(cipher: &mut CipherState, plain: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u32(0);
    buf.put_slice(plain);
    cipher.seal_record(&mut buf, 4).unwrap();
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// The plaintexts of the records in `wire`.
pub fn open_all(cipher: &mut CipherState, wire: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = wire;
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut body = rest[4..4 + len].to_vec();
        out.push(
            cipher
                .open_record(&mut body)
                .expect("record opens")
                .to_vec(),
        );
        rest = &rest[4 + len..];
    }
    out
}

pub fn send_body(args: &[u8]) -> Vec<u8> {
    Envelope::Send {
        handle: Handle::new("log").unwrap(),
        args: Bytes::copy_from_slice(args),
    }
    .to_body()
}

/// An INIT from identity 1 to identity 2 with ephemeral `seed`.
pub fn init(seed: u8) -> (InitiatorV2, Vec<u8>) {
    let local = LocalStatic::new(&identity(1));
    let (initiator, init) = InitiatorV2::start(&local, identity(2).peer_id(), [seed; 32]).unwrap();
    (initiator, frame(&init))
}

/// Identity 1 dials B by hand up to RESP: B's connection, the keys, and
/// what B did.
pub fn handshake(b: &mut Endpoint, now: Instant, seed: u8) -> (ConnId, Transport, Drained) {
    let conn = b.accept(now).unwrap();
    let (mut initiator, init) = init(seed);
    let d = feed(b, now, conn, &init);
    assert_eq!(d.sent.len(), 4 + 54, "RESP");
    let keys = initiator.read_resp(&d.sent[4..]).expect("RESP reads");
    (conn, keys, d)
}

pub fn connected(events: &[Event], conn: ConnId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Connected { conn: c, .. } if *c == conn))
}

/// B established by identity 1's first record (a SEND to `log`);
/// returns B, its connection and identity 1's keys.
pub fn established() -> (Endpoint, ConnId, Transport, Instant) {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    b.expose("log", Access::Anyone).unwrap();
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    let d = feed(
        &mut b,
        now,
        conn,
        &seal(&mut keys.send, &send_body(b"first")),
    );
    assert!(connected(&d.events, conn));
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e, Event::Send(s) if &s.args[..] == b"first")),
        "the first record's envelope is handled after Connected"
    );
    (b, conn, keys, now)
}

pub fn closed_by(events: &[Event], expected: RecordError) -> bool {
    events.iter().any(|e| {
        matches!(e, Event::Disconnected { reason: CloseReason::RecordFailed(r), .. } if *r == expected)
    })
}
