//! What the fuzz targets in `fuzz/` found, kept as plain tests so that
//! `cargo test` replays it without cargo-fuzz (see fuzz/README.md).

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{CloseReason, Config, ConnId, Endpoint, Event, Input, Instant, Output};
use peernet_testkit::model::is_send_cap;
use peernet_testkit::setup::hard_send_cap as hard_cap;
use peernet_testkit::{Pair, Who, fuzz_config as config};

/// Every output of `ep`; bytes are taken only if `take`.
fn drain(ep: &mut Endpoint, take: bool) -> (Vec<u8>, Vec<Output>) {
    let mut bytes = Vec::new();
    let mut outputs = Vec::new();
    while let Some(output) = ep.poll_output() {
        if let (Output::Transmit(conn), true) = (&output, take) {
            if let Some(b) = ep.poll_transmit(*conn) {
                bytes.extend_from_slice(&b);
            }
        }
        outputs.push(output);
    }
    (bytes, outputs)
}

/// A dials B at `now`; bytes are shuttled until both are connected.
fn established(ca: Config, cb: Config, now: Instant) -> (Endpoint, ConnId, Endpoint, ConnId) {
    let mut p = Pair::with(ca, cb, true, true);
    p.now = now;
    let link = p.dial(Who::A);
    p.drive();
    assert!(p.a.ep.is_connected(&p.id(Who::B)) && p.b.ep.is_connected(&p.id(Who::A)));
    let (conn_a, conn_b) = (p.net.links[link].a(), p.net.links[link].b());
    (p.a.ep, conn_a, p.b.ep, conn_b)
}

/// A PING frame: 4-byte length, array head, tag, 9-byte nonce.
const PING_FRAME: usize = 4 + 2 + 9;

/// The peer was cut off as one that does not read.
fn assert_cut_off(end: Option<CloseReason>) {
    match end {
        Some(reason) => assert!(is_send_cap(&reason), "{reason:?}"),
        other => panic!("expected the peer to be cut off, got {other:?}"),
    }
}

fn disconnected(outputs: Vec<Output>) -> Option<CloseReason> {
    outputs.into_iter().find_map(|o| match o {
        Output::Event(Event::Disconnected { reason, .. }) => Some(reason),
        _ => None,
    })
}

/// `two_endpoints` input (minimized), found with the invariant "bytes
/// queued per connection within the hard send cap":
///
/// ```text
/// Scenario { max_frame_len: 200, link_capacity: 0 (holds 1 byte),
///   a: { max_outbound_calls: 64 (% 8 = 0), send_buffer: 4,
///        max_send_buffer: 128, ping_ms: 100, idle_ms: 30000, .. },
///   b: { .. }, ops: [Dial { from: A, target: Other }, Flush,
///                    Tick { ms: 257, times: 210 }] }
/// ```
///
/// Once the link holds an unread byte, A's driver takes nothing more, and
/// A queued one PING per `ping_interval` until `idle_timeout`, with no
/// limit: only replies and PONGs were held to the hard cap. Its own PINGs
/// now are too.
const PING_QUEUE_INPUT: &str = "c8000000020440040080008813640030750204042a008000881364003075\
    018787870700000040aaaaaa2a01a5a5a52577777777f40101d252";

#[test]
fn pings_on_a_stuck_transport_stay_within_the_send_cap() {
    let input = hex::decode(PING_QUEUE_INPUT).unwrap();
    assert_eq!(input.len(), 57);
    let mut ca = config();
    ca.max_frame_len = 200;
    ca.max_outbound_calls = 0;
    ca.send_buffer = 4;
    ca.max_send_buffer = 128;
    ca.ping_interval = Duration::from_millis(100);
    ca.idle_timeout = Duration::from_secs(30);
    let cap = hard_cap(&ca);
    let mut cb = ca.clone();
    cb.send_buffer = 42;
    let mut now = Instant::from_millis(1_000);
    let (mut a, conn, _b, _) = established(ca, cb, now);
    drain(&mut a, true);
    let mut end = None;
    for _ in 0..210 {
        now = now + Duration::from_millis(257);
        a.handle_timeout(now);
        // The transport takes nothing: A's driver never gets to write.
        let (_, outputs) = drain(&mut a, false);
        let queued = a.queued_bytes(conn);
        assert!(
            queued <= cap + PING_FRAME,
            "{queued} bytes queued, cap {cap}"
        );
        end = end.or(disconnected(outputs));
    }
    assert_cut_off(end);
}

/// The same through the other door: a peer that keeps sending (so it never
/// goes idle) but never reads made the endpoint queue a PING every
/// `ping_interval` for as long as it kept at it.
#[test]
fn pings_to_a_peer_that_never_reads_stay_within_the_send_cap() {
    let c = config();
    let cap = hard_cap(&c);
    let mut now = Instant::from_millis(1_000);
    let (_a, _, mut b, cb) = established(config(), config(), now);
    drain(&mut b, true);
    // PONG [4, 0], answering nothing: no reply, just traffic.
    let pong = Bytes::from(hex::decode("00000003820400").unwrap());
    let mut end = None;
    for _ in 0..2_000 {
        now = now + c.ping_interval;
        b.handle_input(
            now,
            Input::Received {
                conn: cb,
                data: pong.clone().into(),
            },
        );
        b.handle_timeout(now);
        // The driver never takes B's bytes: its peer does not read.
        let (_, outputs) = drain(&mut b, false);
        assert!(
            b.queued_bytes(cb) <= cap + PING_FRAME,
            "{} bytes queued, hard cap {cap}",
            b.queued_bytes(cb)
        );
        end = disconnected(outputs);
        if end.is_some() {
            break;
        }
    }
    assert_cut_off(end);
}
