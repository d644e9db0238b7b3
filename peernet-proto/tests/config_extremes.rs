//! Every limit of a [`Config`] that `validate` accepts works at its
//! extreme: each count, buffer and rate at its largest value (what an
//! application writes for "no limit"), each duration at `Duration::MAX`.
//! Review s46 (revo): `max_handshakes = usize::MAX` made the first
//! accepted connection panic (`2 * max_handshakes` overflowed in the
//! bound of the silent-connection queue), in the node's lock, with
//! overflow checks on (debug builds, and release builds that turn them
//! on): a node with no handshake limit accepted nobody.

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    CallError, CallId, Config, ConnId, Event, Identity, PeerConnectLimits, ProtocolVersion,
    SourceLimits,
};
use peernet_testkit::setup::endpoint;
use peernet_testkit::{Action, Node, Rule};

/// The largest value of every limit that [`Config::validate`] takes.
fn extreme(version: ProtocolVersion) -> Config {
    let max = Duration::MAX;
    let mut c = Config::default();
    c.version = version;
    c.max_frame_len = u32::MAX;
    c.max_handshakes = usize::MAX;
    c.max_inbound_calls = usize::MAX;
    c.max_inbound_bytes_per_conn = usize::MAX;
    c.max_inbound_bytes = usize::MAX;
    c.max_outbound_calls = usize::MAX;
    c.send_buffer = usize::MAX;
    c.max_send_buffer = usize::MAX;
    c.handshake_timeout = max;
    c.first_frame_timeout = max;
    c.ping_interval = max - Duration::from_nanos(1);
    c.idle_timeout = max;
    let mut sources = SourceLimits::default();
    sources.handshakes = usize::MAX;
    sources.failures_per_second = u32::MAX;
    sources.failure_burst = u32::MAX;
    c.source_limits = sources;
    let mut connects = PeerConnectLimits::default();
    connects.per_second = u32::MAX;
    connects.burst = u32::MAX;
    c.peer_connects = connects;
    c.max_addresses_per_peer = usize::MAX;
    c.max_addresses = usize::MAX;
    c.dial.first_min = max;
    c.dial.first_max = max;
    c.dial.growth_min_percent = u32::MAX;
    c.dial.growth_max_percent = u32::MAX;
    c.dial.max_delay = max;
    c.dial.reset_after = max;
    c.dial.dial_timeout = max;
    c.dial.max_dials_in_flight = usize::MAX;
    assert_eq!(c.validate(), Ok(()));
    c
}

/// Two unchecked nodes (the model's own sums assume sane limits).
fn pair(config: Config) -> (Node, Node) {
    let (ia, ib) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
    let (pa, pb) = (ia.peer_id(), ib.peer_id());
    let mut a = Node::unchecked(endpoint(config.clone(), ia, &[pb], 1));
    let mut b = Node::unchecked(endpoint(config, ib, &[pa], 2));
    a.auto_reply = true;
    b.auto_reply = true;
    (a, b)
}

#[test]
fn every_limit_at_its_largest_value_works() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (mut a, mut b) = pair(extreme(version));
        b.expose("echo", Rule::Anyone);
        // accepted connections: a handshake slot, the per-source limits
        for _ in 0..3 {
            let dial = a.connect(Some(b.me())).expect("a dials");
            let conn = b.accept().expect("b accepts");
            assert!(a.shake(dial, &mut b, conn), "{version:?}: connected");
        }
        let id = a
            .call(&b.me(), "echo", b"\x00hi", Some(Duration::MAX))
            .expect("a calls");
        let conn = b.ep.connection(&a.me()).unwrap();
        let dial = a.ep.connection(&b.me()).unwrap();
        let result = result_of(&mut a, &mut b, dial, conn, id);
        assert_eq!(
            result,
            Some(Ok(Bytes::from_static(b"\x00hi"))),
            "{version:?}"
        );
        // centuries on, every deadline saturated: nothing fires early,
        // nothing panics
        for node in [&mut a, &mut b] {
            node.advance(Duration::from_secs(100 * 365 * 86_400));
            node.fire_timers();
            node.pump();
        }
        assert!(b.ep.is_connected(&a.me()), "{version:?}: still connected");
    }
}

/// The smallest value of every limit, zero, though `validate` refuses it.
fn zeros(version: ProtocolVersion) -> Config {
    let zero = Duration::ZERO;
    let mut c = Config::default();
    c.version = version;
    c.max_frame_len = 0;
    c.max_handshakes = 0;
    c.max_inbound_calls = 0;
    c.max_inbound_bytes_per_conn = 0;
    c.max_inbound_bytes = 0;
    c.max_outbound_calls = 0;
    c.send_buffer = 0;
    c.max_send_buffer = 0;
    c.handshake_timeout = zero;
    c.first_frame_timeout = zero;
    c.ping_interval = zero;
    c.idle_timeout = zero;
    let mut sources = SourceLimits::default();
    sources.handshakes = 0;
    sources.failures_per_second = 0;
    sources.failure_burst = 0;
    c.source_limits = sources;
    let mut connects = PeerConnectLimits::default();
    connects.per_second = 0;
    connects.burst = 0;
    c.peer_connects = connects;
    c.max_addresses_per_peer = 0;
    c.max_addresses = 0;
    c.dial.first_min = zero;
    c.dial.first_max = zero;
    c.dial.growth_min_percent = 0;
    c.dial.growth_max_percent = 0;
    c.dial.max_delay = zero;
    c.dial.reset_after = zero;
    c.dial.dial_timeout = zero;
    c.dial.max_dials_in_flight = 0;
    assert!(c.validate().is_err());
    c
}

/// What `Config::validate` refuses, `Endpoint::new` clamps to the nearest
/// workable values, as the docs of both say: with every limit zero, two
/// endpoints connect and a call is answered. Review s47 (revo2): only the
/// durations, the frame limit and the dial schedule were clamped; a zero
/// count stayed zero, so every handshake was answered `busy` and every
/// call waited for room in a send queue of no bytes.
#[test]
fn every_limit_at_zero_is_clamped_to_a_workable_one() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (mut a, mut b) = pair(zeros(version));
        b.expose("echo", Rule::Anyone);
        let dial = a.connect(Some(b.me())).expect("a dials");
        let conn = b.accept().expect("b accepts");
        assert!(a.shake(dial, &mut b, conn), "{version:?}: connected");
        let id = a
            .call(&b.me(), "echo", b"\x00", Some(Duration::from_secs(5)))
            .expect("a calls");
        let (conn, dial) = (
            b.ep.connection(&a.me()).unwrap(),
            a.ep.connection(&b.me()).unwrap(),
        );
        let result = result_of(&mut a, &mut b, dial, conn, id);
        assert_eq!(result, Some(Ok(Bytes::from_static(b"\x00"))), "{version:?}");
    }
}

/// Passes bytes between `a` (connection `dial`) and `b` (connection
/// `conn`) four times each way; the result of `a`'s call `id`, if it came
/// (a fifth turn's pump of `a` shows the last reply).
fn result_of(
    a: &mut Node,
    b: &mut Node,
    dial: ConnId,
    conn: ConnId,
    id: CallId,
) -> Option<Result<Bytes, CallError>> {
    let mut result = None;
    for _ in 0..5 {
        let (actions, _) = a.turn(dial, b, conn);
        for action in actions {
            if let Action::Event(Event::CallResult { id: got, result: r }) = action {
                assert_eq!(got, id);
                result = Some(r);
            }
        }
    }
    result
}
