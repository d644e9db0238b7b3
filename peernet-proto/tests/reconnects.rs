//! A trusted peer that reconnects in a loop (`Config::peer_connects`):
//! each inbound connection it establishes is charged to it, and past its
//! burst its next HELLO or INIT is refused `busy` before any more work,
//! until the rate has paid for one more. Nobody else can spend its
//! budget: only established connections are charged.

mod support;

use std::time::Duration;

use peernet_proto::{
    Config, Event, HandshakeError, PeerConnectLimits, ProtocolVersion, RejectCode, Source,
    SourceLimits, SourceRefusal,
};
use peernet_testkit::{Node, Pair, Who, test_config};
use support::failed_with;

const MS: Duration = Duration::from_millis(1);

/// `version`'s test config with `burst` connections a peer may establish
/// at once, then 2 a second.
fn config(version: ProtocolVersion, burst: u32) -> Config {
    let mut config = test_config();
    config.version = version;
    let mut limits = PeerConnectLimits::default();
    limits.per_second = 2;
    limits.burst = burst;
    config.peer_connects = limits;
    config
}

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V1, ProtocolVersion::V2];

/// A dials B once more and everything is delivered; B's connection to A
/// afterwards.
fn redial(p: &mut Pair) -> Option<peernet_proto::ConnId> {
    p.dial(Who::A);
    p.drive();
    let a = p.id(Who::A);
    p.b.ep.connection(&a)
}

#[test]
fn a_peer_that_reconnects_in_a_loop_is_refused_busy_past_its_burst() {
    for version in BOTH {
        let c = config(version, 3);
        let mut p = Pair::with(c.clone(), c, true, true);
        let mut last = None;
        for n in 0..3 {
            let conn = redial(&mut p);
            assert!(conn.is_some() && conn != last, "{version:?}: dial {n}");
            last = conn;
        }
        p.take_events(Who::A);
        p.take_events(Who::B);
        // the fourth at the same instant: refused, the third stays
        assert_eq!(redial(&mut p), last, "{version:?}");
        let a = p.take_events(Who::A);
        let b = p.take_events(Who::B);
        assert!(
            failed_with(&a, HandshakeError::Rejected(RejectCode::Busy)),
            "{version:?}: {a:?}"
        );
        assert!(
            failed_with(&b, HandshakeError::Throttled),
            "{version:?}: {b:?}"
        );
        // the event names the peer refused (it was `None`: review s51)
        let named = b.iter().find_map(|e| match e {
            Event::HandshakeFailed { peer, error, .. } if *error == HandshakeError::Throttled => {
                Some(*peer)
            }
            _ => None,
        });
        assert_eq!(named, Some(Some(p.id(Who::A))), "{version:?}");
        let counts = p.b.ep.counters().handshakes_in;
        assert_eq!(counts.throttled, 1, "{version:?}");
        assert_eq!(counts.refused.get(RejectCode::Busy), 1, "{version:?}");
        assert!(p.a.ep.is_connected(&p.id(Who::B)), "{version:?}");
        // half a second pays for one more, and one only
        p.advance(500 * MS);
        let fifth = redial(&mut p);
        assert!(fifth.is_some() && fifth != last, "{version:?}");
        assert_eq!(redial(&mut p), fifth, "{version:?}: the sixth is refused");
        assert_eq!(p.b.ep.counters().handshakes_in.throttled, 2);
    }
}

#[test]
fn dials_the_other_way_are_not_charged() {
    // B dialing A is B's doing: A's budget at B is untouched.
    for version in BOTH {
        let c = config(version, 1);
        let mut p = Pair::with(c.clone(), c, true, true);
        for _ in 0..4 {
            p.dial(Who::B);
            p.drive();
        }
        assert!(redial(&mut p).is_some(), "{version:?}");
        assert_eq!(p.b.ep.counters().handshakes_in.throttled, 0);
    }
}

/// Node `b` with `limits` per source, trusting identity 1 (which `a` is),
/// and the PeerConnectLimits of `config`.
fn nodes(config: Config, sources: SourceLimits) -> (Node, Node) {
    let mut cb = config.clone();
    cb.source_limits = sources;
    Node::checked_pair(config, cb)
}

/// `a` dials `b`, accepted from `source`; the handshake runs as far as
/// it goes. Whether `b` is connected to `a` through it.
fn connect_from(a: &mut Node, b: &mut Node, source: Source) -> Result<bool, SourceRefusal> {
    let conn = match b.accept_from(source) {
        Ok(conn) => conn,
        Err(peernet_proto::ConnectError::SourceLimited(refusal)) => return Err(refusal),
        Err(e) => panic!("{e}"),
    };
    Ok(finish(a, b, conn))
}

#[test]
fn a_throttled_handshake_is_charged_to_its_source() {
    // Past the peer's burst each attempt fails by its doing: the source's
    // failure limit (a burst of 3 here) then refuses it at accept, with no
    // handshake work at all.
    let source = Source::from("192.0.2.7:1000".parse::<std::net::SocketAddr>().unwrap());
    let mut sources = SourceLimits::default();
    sources.failure_burst = 3;
    sources.failures_per_second = 1;
    for version in BOTH {
        let (mut a, mut b) = nodes(config(version, 2), sources);
        assert_eq!(
            connect_from(&mut a, &mut b, source),
            Ok(true),
            "{version:?}"
        );
        assert_eq!(
            connect_from(&mut a, &mut b, source),
            Ok(true),
            "{version:?}"
        );
        for n in 0..3 {
            assert_eq!(
                connect_from(&mut a, &mut b, source),
                Ok(false),
                "{version:?} {n}"
            );
        }
        assert_eq!(b.ep.counters().handshakes_in.throttled, 3, "{version:?}");
        assert_eq!(
            connect_from(&mut a, &mut b, source),
            Err(SourceRefusal::Failing),
            "{version:?}"
        );
    }
}

/// The source limits read the endpoint's clock, which never steps back
/// (`Endpoint::advance` keeps the latest reading), as every other rule
/// does: a reading from before the failures paid off, handed to
/// `accept_from` after a later one, must not refuse the source again.
#[test]
fn a_clock_read_back_does_not_refuse_a_source_that_paid_off() {
    let source = Source::from("192.0.2.7:1000".parse::<std::net::SocketAddr>().unwrap());
    let mut sources = SourceLimits::default();
    sources.failure_burst = 3;
    sources.failures_per_second = 1;
    let (mut a, mut b) = nodes(config(ProtocolVersion::V2, 2), sources);
    for _ in 0..2 {
        assert_eq!(connect_from(&mut a, &mut b, source), Ok(true));
    }
    for _ in 0..3 {
        assert_eq!(connect_from(&mut a, &mut b, source), Ok(false));
    }
    assert_eq!(
        connect_from(&mut a, &mut b, source),
        Err(SourceRefusal::Failing)
    );
    // Ten seconds on, three failures are paid off; then a reading from
    // before them (a clock stepped back) reaches `accept_from`.
    let failed_at = b.now;
    b.ep.handle_timeout(failed_at + Duration::from_secs(10));
    assert!(b.ep.accept_from(failed_at, source).is_ok());
}

#[test]
fn naming_a_peer_does_not_spend_its_budget() {
    // Version 1: HELLOs that name the peer but never prove it (the
    // transport closes after WELCOME), far more than its burst.
    let (mut a, mut b) = nodes(config(ProtocolVersion::V1, 1), SourceLimits::default());
    for _ in 0..20 {
        let conn = b.accept().expect("accepted");
        let dial = a.connect(Some(b.me())).expect("dial");
        a.pump();
        let hello = a.take(dial).expect("HELLO");
        b.receive(conn, hello);
        b.pump();
        assert!(b.take(conn).is_some(), "WELCOME: the HELLO was not refused");
        b.transport_closed(conn);
        a.transport_closed(dial);
        b.pump();
        a.pump();
    }
    let conn = b.accept().expect("accepted");
    assert!(
        finish(&mut a, &mut b, conn),
        "the peer itself still connects"
    );
    assert_eq!(b.ep.counters().handshakes_in.throttled, 0);
}

#[test]
fn a_replayed_init_does_not_spend_the_budget() {
    // Version 2: the peer's INIT replayed after the replay window gets
    // RESP, but cannot make the first record: never established, never
    // charged.
    let (mut a, mut b) = nodes(config(ProtocolVersion::V2, 1), SourceLimits::default());
    let conn = b.accept().expect("accepted");
    let dial = a.connect(Some(b.me())).expect("dial");
    a.pump();
    let init = a.take(dial).expect("INIT");
    b.receive(conn, init.clone());
    b.pump();
    assert!(b.take(conn).is_some(), "RESP");
    b.transport_closed(conn);
    a.transport_closed(dial);
    b.pump();
    a.pump();
    for _ in 0..5 {
        b.advance(Duration::from_secs(11));
        let conn = b.accept().expect("accepted");
        b.receive(conn, init.clone());
        b.pump();
        assert!(b.take(conn).is_some(), "RESP to the replay");
        b.transport_closed(conn);
        b.pump();
    }
    let conn = b.accept().expect("accepted");
    assert!(
        finish(&mut a, &mut b, conn),
        "the peer itself still connects"
    );
    assert_eq!(b.ep.counters().handshakes_in.throttled, 0);
}

/// `a` dials `b`, which accepted `conn` for it; the handshake runs to the
/// end. Whether `b` is connected to `a` through `conn`.
fn finish(a: &mut Node, b: &mut Node, conn: peernet_proto::ConnId) -> bool {
    let dial = a.connect(Some(b.me())).expect("dial");
    a.shake(dial, b, conn)
}
