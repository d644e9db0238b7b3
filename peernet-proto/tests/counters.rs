//! The endpoint's [`Counters`]: each outcome lands in its own counter, on
//! both sides, in both protocol versions, and the byte and record counts
//! of one side match the other's.

mod support;

use std::time::Duration;

use peernet_proto::{Access, Config, Counters, Event, RejectCode, ReplyStatus, Response, Stats};
use support::{Pair, Who, test_config, test_config_v2};

fn counters(p: &mut Pair, who: Who) -> Counters {
    p.node(who).ep.stats().counters
}

fn call(p: &mut Pair, handle: &str, timeout: Option<Duration>) -> peernet_proto::CallId {
    let (peer, now) = (p.id(Who::B), p.now);
    p.node(Who::A)
        .ep
        .call(now, &peer, handle, b"args", timeout)
        .expect("call queued")
}

/// B's calls served so far, answered `ok`.
fn answer_all(p: &mut Pair) {
    let now = p.now;
    for event in p.take_events(Who::B) {
        if let Event::Call(c) = event {
            assert!(p.node(Who::B).ep.reply(now, c.id, Response::Ok(c.args)));
        }
    }
    p.drive();
}

fn each_outcome_is_counted_once(config: Config) {
    let mut cb = config.clone();
    cb.max_inbound_calls = 2;
    let mut p = Pair::with(config, cb, true, true);
    p.dial(Who::A);
    p.drive();
    let a_id = p.id(Who::A);
    let b = &mut p.node(Who::B).ep;
    b.expose("echo", Access::Anyone).unwrap();
    b.expose("secret", Access::rule(move |peer| *peer != a_id))
        .unwrap();

    call(&mut p, "echo", None);
    p.drive();
    answer_all(&mut p);
    call(&mut p, "nope", None);
    call(&mut p, "secret", None);
    p.drive();
    // Two calls held by B's handler, the third refused `overloaded`.
    let held = call(&mut p, "echo", None);
    call(&mut p, "echo", Some(Duration::from_secs(1)));
    call(&mut p, "echo", None);
    p.drive();
    let now = p.now;
    assert!(p.node(Who::A).ep.cancel(now, held));
    p.drive();
    p.advance(Duration::from_secs(2));
    let (peer, now) = (p.id(Who::B), p.now);
    let a = &mut p.node(Who::A).ep;
    a.send(now, &peer, "echo", b"s").unwrap();
    a.send(now, &peer, "nope", b"s").unwrap();
    p.drive();

    let (ca, cb) = (counters(&mut p, Who::A), counters(&mut p, Who::B));
    assert_eq!(ca.handshakes_out.established, 1);
    assert_eq!(cb.handshakes_in.established, 1);
    assert_eq!(
        ca.handshakes_in.established + cb.handshakes_out.established,
        0
    );

    let out = ca.calls_out;
    assert_eq!(out.started, 6);
    assert_eq!(out.by_status.get(ReplyStatus::Ok), 1);
    assert_eq!(out.by_status.get(ReplyStatus::NoSuchHandle), 1);
    assert_eq!(out.by_status.get(ReplyStatus::Forbidden), 1);
    assert_eq!(out.by_status.get(ReplyStatus::Overloaded), 1);
    assert_eq!((out.cancelled, out.timed_out), (1, 1));
    assert_eq!(out.ended(), out.started);

    let inn = cb.calls_in;
    assert_eq!(inn.started, 6);
    assert_eq!(inn.refusals(), 3);
    assert_eq!(inn.by_status.get(ReplyStatus::Ok), 1);
    // The timed-out call ends on B by its own deadline or by A's CANCEL,
    // whichever comes first; the held one by CANCEL.
    assert_eq!(inn.cancelled + inn.timed_out, 2);
    assert_eq!(inn.ended(), inn.started);

    assert_eq!((ca.sends_out, cb.sends_in, cb.sends_refused), (2, 1, 1));
    assert_eq!(cb.sends_dropped, 0);

    // Everything sent arrived: one side's output is the other's input.
    assert!(ca.bytes_out > 0 && cb.bytes_out > 0);
    assert_eq!(ca.bytes_out, cb.bytes_in);
    assert_eq!(cb.bytes_out, ca.bytes_in);
    assert_eq!(ca.records_out, cb.records_in);
    assert_eq!(cb.records_out, ca.records_in);
    assert!(ca.records_out > 0 && cb.records_out > 0, "{ca:?}");

    // The same survives the connection's end (counts of closed
    // connections are kept), and the calls in flight are counted.
    call(&mut p, "echo", None);
    p.drive();
    let (peer, now) = (p.id(Who::B), p.now);
    assert!(p.node(Who::A).ep.disconnect(now, &peer));
    p.drive();
    let (ca, cb) = (counters(&mut p, Who::A), counters(&mut p, Who::B));
    assert_eq!(ca.calls_out.connection_closed, 1);
    assert_eq!(cb.calls_in.connection_closed, 1);
    assert_eq!(ca.bytes_out, cb.bytes_in);
    assert_eq!(ca.records_out, cb.records_in);
    let shown = p.node(Who::B).ep.stats().to_string();
    assert!(shown.contains("no_such_handle=1"), "{shown}");
}

#[test]
fn each_outcome_is_counted_once_v1() {
    each_outcome_is_counted_once(test_config());
}

#[test]
fn each_outcome_is_counted_once_v2() {
    each_outcome_is_counted_once(test_config_v2());
}

fn untrusted_dialer(config: Config) -> (Stats, Stats) {
    let mut p = Pair::with(config.clone(), config, true, false);
    p.dial(Who::A);
    p.drive();
    (p.a.ep.stats(), p.b.ep.stats())
}

#[test]
fn an_untrusted_dialer_is_counted_on_both_sides() {
    for config in [test_config(), test_config_v2()] {
        let (a, b) = untrusted_dialer(config);
        let (a, b) = (a.counters, b.counters);
        assert_eq!(b.handshakes_in.refused.get(RejectCode::Untrusted), 1);
        assert_eq!(a.handshakes_out.rejected.get(RejectCode::Untrusted), 1);
        assert_eq!(a.handshakes_out.failures() + b.handshakes_in.failures(), 2);
        assert_eq!(
            a.handshakes_out.established + b.handshakes_in.established,
            0
        );
    }
}

#[test]
fn a_silent_transport_is_a_timed_out_handshake() {
    let mut p = Pair::new();
    let now = p.now;
    p.b.ep.accept(now).unwrap();
    p.advance(Duration::from_secs(30));
    assert_eq!(counters(&mut p, Who::B).handshakes_in.timed_out, 1);
}
