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
    let mut c = every_limit(version, usize::MAX, u32::MAX, Duration::MAX);
    c.ping_interval = Duration::MAX - Duration::from_nanos(1);
    assert_eq!(c.validate(), Ok(()));
    c
}

/// Every limit of a [`Config`] at one value of its type: each count and
/// size `count`, each rate, burst, percentage and the frame limit `n`,
/// each duration `duration`.
fn every_limit(version: ProtocolVersion, count: usize, n: u32, duration: Duration) -> Config {
    let mut c = Config::default();
    c.version = version;
    c.max_frame_len = n;
    c.max_handshakes = count;
    c.max_handshake_bytes = count;
    c.max_inbound_calls = count;
    c.max_inbound_bytes_per_conn = count;
    c.max_inbound_bytes = count;
    c.max_outbound_calls = count;
    c.send_buffer = count;
    c.max_send_buffer = count;
    c.handshake_timeout = duration;
    c.first_frame_timeout = duration;
    c.ping_interval = duration;
    c.idle_timeout = duration;
    let mut sources = SourceLimits::default();
    sources.handshakes = count;
    sources.failures_per_second = n;
    sources.failure_burst = n;
    c.source_limits = sources;
    let mut connects = PeerConnectLimits::default();
    connects.per_second = n;
    connects.burst = n;
    c.peer_connects = connects;
    c.max_addresses_per_peer = count;
    c.max_addresses = count;
    c.dial.first_min = duration;
    c.dial.first_max = duration;
    c.dial.growth_min_percent = n;
    c.dial.growth_max_percent = n;
    c.dial.max_delay = duration;
    c.dial.reset_after = duration;
    c.dial.dial_timeout = duration;
    c.dial.max_dials_in_flight = count;
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
    let c = every_limit(version, 0, 0, Duration::ZERO);
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
/// `conn`) five times each way (five [`Node::turn`]s: the fifth's pump
/// of `a` shows the fourth's reply); the result of `a`'s call `id`, if it
/// came.
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

/// The handshakes' byte budget is refused at 0 and below the largest
/// handshake frame (an INIT split across reads would not fit), as the
/// other limits are.
#[test]
fn a_handshake_budget_below_an_init_is_refused() {
    use peernet_proto::ConfigError;
    let with = |bytes| {
        let mut c = Config::default();
        c.max_handshake_bytes = bytes;
        c.validate()
    };
    assert_eq!(with(0), Err(ConfigError::Zero("max_handshake_bytes")));
    assert_eq!(with(149), Err(ConfigError::HandshakeBytesTooSmall(149)));
    assert_eq!(with(150), Ok(()));
    assert_eq!(Config::default().max_handshake_bytes, 16 << 20);
}
