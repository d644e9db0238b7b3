//! Two endpoints over in-memory links with a virtual clock: every
//! behaviour of PROTOCOL.md sections 2–4, one scenario per test.

mod support;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, CloseReason, Config, Direction, Event, GoodbyeCode, HandshakeError,
    InboundCall, Input, RejectCode, Response, Side,
};
use support::{Pair, Who, failed_with, identity, test_config};

const SEC: Duration = Duration::from_secs(1);

fn call(
    p: &mut Pair,
    from: Who,
    handle: &str,
    args: &'static [u8],
    timeout: Option<Duration>,
) -> CallId {
    let peer = p.id(from.other());
    let now = p.now;
    p.node(from)
        .ep
        .call(now, &peer, handle, args, timeout)
        .expect("call accepted")
}

fn inbound_calls(p: &mut Pair, who: Who) -> Vec<InboundCall> {
    p.take_events(who)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn results(p: &mut Pair, who: Who) -> Vec<(CallId, Result<Bytes, CallError>)> {
    p.take_events(who)
        .into_iter()
        .filter_map(|e| match e {
            Event::CallResult { id, result } => Some((id, result)),
            _ => None,
        })
        .collect()
}

fn expose_echo(p: &mut Pair) {
    p.a.ep.expose("echo", Access::Anyone).unwrap();
    p.b.ep.expose("echo", Access::Anyone).unwrap();
}

fn reply(p: &mut Pair, who: Who, c: &InboundCall, r: Response) -> bool {
    let now = p.now;
    p.node(who).ep.reply(now, c.id, r)
}

/// A connected pair with `echo` exposed on both sides and one call from A
/// to B delivered: the call's id and the call as B's application sees it.
fn echo_call_delivered(
    args: &'static [u8],
    timeout: Option<Duration>,
) -> (Pair, CallId, InboundCall) {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let id = call(&mut p, Who::A, "echo", args, timeout);
    p.drive();
    let mut calls = inbound_calls(&mut p, Who::B);
    assert_eq!(calls.len(), 1, "one call reached B");
    (p, id, calls.remove(0))
}

/// Asserts that A and B each hold `link` as their connection to the other;
/// `note` says which case failed.
#[track_caller]
fn assert_connected_over(p: &Pair, link: usize, note: impl std::fmt::Debug) {
    assert_eq!(
        p.a.ep.connection(&p.id(Who::B)),
        Some(p.net.links[link].a()),
        "{note:?}"
    );
    assert_eq!(
        p.b.ep.connection(&p.id(Who::A)),
        Some(p.net.links[link].b()),
        "{note:?}"
    );
}

/// A trusts a third key C and dials expecting C, but B answers: asserts
/// that A's dial fails with `UnexpectedPeer` (C expected, B reached) and
/// that B's handshake fails with `b_error`. Returns the pair afterwards.
#[track_caller]
fn dial_c_but_reach_b(mut p: Pair, b_error: HandshakeError) -> Pair {
    let c = identity(3).peer_id();
    p.a.ep.pair(c, None);
    p.dial_expecting(Who::A, Some(c));
    p.drive();
    let bid = p.id(Who::B);
    let a = p.take_events(Who::A);
    let b = p.take_events(Who::B);
    assert!(a.iter().any(|e| matches!(e, Event::HandshakeFailed { error: HandshakeError::UnexpectedPeer { expected, actual }, .. } if *expected == c && *actual == bid)), "{a:?}");
    assert!(failed_with(&b, b_error), "{b:?}");
    p
}

fn closed_reason(events: &[Event]) -> Option<CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

fn goodbye(by: Side, code: GoodbyeCode) -> impl Fn(&CloseReason) -> bool {
    move |r| matches!(r, CloseReason::Goodbye { by: b, code: c, .. } if *b == by && *c == code)
}

#[test]
fn handshake_in_both_roles() {
    for dialer in [Who::A, Who::B] {
        let mut p = Pair::new();
        let link = p.dial(dialer);
        p.drive();
        for who in [Who::A, Who::B] {
            let events = p.take_events(who);
            let expected_dir = if who == dialer {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let peer = p.id(who.other());
            assert!(
                events.iter().any(|e| matches!(e, Event::Connected { peer: x, direction, .. } if *x == peer && *direction == expected_dir)),
                "{who:?}: {events:?}"
            );
            assert_eq!(p.node(who).ep.peers().collect::<Vec<_>>(), vec![peer]);
        }
        assert_connected_over(&p, link, dialer);
    }
}

#[test]
fn calls_in_both_directions() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    for from in [Who::A, Who::B] {
        let id = call(&mut p, from, "echo", b"hi", Some(5 * SEC));
        p.drive();
        let calls = inbound_calls(&mut p, from.other());
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].peer, p.id(from), "the verified caller");
        assert_eq!(calls[0].handle.as_str(), "echo");
        assert!(calls[0].deadline.is_some());
        assert!(reply(
            &mut p,
            from.other(),
            &calls[0],
            Response::Ok(calls[0].args.clone())
        ));
        p.drive();
        assert_eq!(
            results(&mut p, from),
            vec![(id, Ok(Bytes::from_static(b"hi")))]
        );
    }
}

#[test]
fn out_of_order_replies_are_matched_by_id() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let ids: Vec<CallId> = [b"1", b"2", b"3"]
        .iter()
        .map(|a| call(&mut p, Who::A, "echo", *a, None))
        .collect();
    p.drive();
    let calls = inbound_calls(&mut p, Who::B);
    for c in calls.iter().rev() {
        reply(&mut p, Who::B, c, Response::Ok(c.args.clone()));
    }
    p.drive();
    let mut got = results(&mut p, Who::A);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, ids[2], "replies arrive in reverse");
    got.sort_by_key(|(id, _)| ids.iter().position(|x| x == id));
    for ((id, r), (want, arg)) in got.into_iter().zip(ids.iter().zip(["1", "2", "3"])) {
        assert_eq!(id, *want);
        assert_eq!(r.unwrap(), Bytes::from(arg));
    }
}

#[test]
fn timeout_sends_cancel_and_the_late_reply_is_dropped() {
    let (mut p, id, inbound) = echo_call_delivered(b"x", Some(2 * SEC));
    // B answers, but its reply is held up on the way back to A.
    p.net.links[0].to[0].hold = true;
    assert!(reply(
        &mut p,
        Who::B,
        &inbound,
        Response::Ok(Bytes::from_static(b"late"))
    ));
    p.advance(3 * SEC);
    assert_eq!(results(&mut p, Who::A), vec![(id, Err(CallError::Timeout))]);
    // the reply now arrives: dropped silently, connection fine
    p.net.links[0].to[0].hold = false;
    p.drive();
    assert!(results(&mut p, Who::A).is_empty());
    assert!(p.a.ep.is_connected(&p.id(Who::B)));
    assert_eq!(p.a.ep.stats().outbound_calls, 0);
}

#[test]
fn callee_enforces_the_callers_timeout() {
    let (mut p, _, inbound) = echo_call_delivered(b"x", Some(2 * SEC));
    assert_eq!(p.b.ep.stats().inbound_calls, 1);
    p.advance(3 * SEC);
    let events = p.take_events(Who::B);
    assert!(
        events.contains(&Event::CallCancelled(inbound.id)),
        "{events:?}"
    );
    assert_eq!(p.b.ep.stats().inbound_calls, 0, "the slot is freed");
    assert!(
        !reply(&mut p, Who::B, &inbound, Response::Ok(Bytes::new())),
        "late reply not sent"
    );
}

#[test]
fn call_deadlines_fire_in_order_and_completed_calls_never_time_out() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let long = call(&mut p, Who::A, "echo", b"l", Some(10 * SEC));
    let done = call(&mut p, Who::A, "echo", b"d", Some(SEC));
    let short = call(&mut p, Who::A, "echo", b"s", Some(3 * SEC));
    p.drive();
    let calls = inbound_calls(&mut p, Who::B);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].args, Bytes::from_static(b"d"));
    // only the call with the earliest deadline is answered
    assert!(reply(
        &mut p,
        Who::B,
        &calls[1],
        Response::Ok(calls[1].args.clone())
    ));
    p.drive();
    assert_eq!(
        results(&mut p, Who::A),
        vec![(done, Ok(Bytes::from_static(b"d")))]
    );
    p.advance(2 * SEC);
    assert!(
        results(&mut p, Who::A).is_empty(),
        "a completed call's deadline fires nothing"
    );
    p.advance(2 * SEC);
    assert_eq!(
        results(&mut p, Who::A),
        vec![(short, Err(CallError::Timeout))]
    );
    assert_eq!(p.a.ep.stats().outbound_calls, 1);
    p.advance(7 * SEC);
    assert_eq!(
        results(&mut p, Who::A),
        vec![(long, Err(CallError::Timeout))]
    );
    assert_eq!(p.a.ep.stats().outbound_calls, 0);
    assert_eq!(
        p.b.ep.stats().inbound_calls,
        0,
        "the callee freed both slots"
    );
    assert!(p.a.ep.is_connected(&p.id(Who::B)));
}

#[test]
fn cancel_resolves_once_and_frees_the_callee_slot() {
    let (mut p, id, inbound) = echo_call_delivered(b"x", None);
    let now = p.now;
    assert!(p.a.ep.cancel(now, id));
    assert!(!p.a.ep.cancel(now, id), "only once");
    p.drive();
    assert_eq!(
        results(&mut p, Who::A),
        vec![(id, Err(CallError::Cancelled))]
    );
    assert_eq!(
        p.take_events(Who::B),
        vec![Event::CallCancelled(inbound.id)]
    );
    assert!(!reply(&mut p, Who::B, &inbound, Response::Ok(Bytes::new())));
    // CANCEL for an id not in flight is ignored
    p.drive();
    assert!(p.a.ep.is_connected(&p.id(Who::B)));
}

#[test]
fn overloaded_beyond_max_inbound_calls() {
    let mut cb = test_config();
    cb.max_inbound_calls = 2;
    let mut p = Pair::with(test_config(), cb, true, true);
    p.dial(Who::A);
    p.drive();
    expose_echo(&mut p);
    let ids: Vec<_> = (0..3)
        .map(|_| call(&mut p, Who::A, "echo", b"x", None))
        .collect();
    p.drive();
    assert_eq!(inbound_calls(&mut p, Who::B).len(), 2);
    let r = results(&mut p, Who::A);
    assert_eq!(r, vec![(ids[2], Err(CallError::Overloaded))]);
}

#[test]
fn statuses_map_to_typed_errors() {
    let mut p = Pair::connected();
    let a = p.id(Who::A);
    let c = identity(3).peer_id();
    p.b.ep.expose("mine", Access::only([c])).unwrap();
    p.b.ep
        .expose("yours", Access::rule(move |peer| *peer == a))
        .unwrap();
    let hidden = call(&mut p, Who::A, "nothing-here", b"", None);
    let forbidden = call(&mut p, Who::A, "mine", b"", None);
    let e = call(&mut p, Who::A, "yours", b"", None);
    let panicked = call(&mut p, Who::A, "yours", b"", None);
    let big = call(&mut p, Who::A, "yours", b"", None);
    p.drive();
    let calls = inbound_calls(&mut p, Who::B);
    assert_eq!(
        calls.len(),
        3,
        "only the allowed handle reaches the application"
    );
    reply(
        &mut p,
        Who::B,
        &calls[0],
        Response::Error(Bytes::from_static(b"boom")),
    );
    reply(
        &mut p,
        Who::B,
        &calls[1],
        Response::Panicked(Bytes::from("oops ".repeat(200))),
    );
    let huge = Bytes::from(vec![0u8; p.b.ep.config().max_frame_len as usize]);
    reply(&mut p, Who::B, &calls[2], Response::Ok(huge));
    p.drive();
    let mut r = results(&mut p, Who::A);
    r.sort_by_key(|(id, _)| *id);
    assert_eq!(r[0], (hidden, Err(CallError::NoSuchHandle)));
    assert_eq!(r[1], (forbidden, Err(CallError::Forbidden)));
    assert_eq!(
        r[2],
        (e, Err(CallError::HandlerError(Bytes::from_static(b"boom"))))
    );
    match &r[3] {
        (id, Err(CallError::HandlerPanicked(note))) => {
            assert_eq!(*id, panicked);
            assert!(note.len() <= 256 && std::str::from_utf8(note).is_ok());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r[4], (big, Err(CallError::ResultTooLarge)));
}

#[test]
fn a_call_that_does_not_fit_a_frame_fails_locally() {
    let mut p = Pair::connected();
    let peer = p.id(Who::B);
    let now = p.now;
    let args = Bytes::from(vec![0u8; p.a.ep.config().max_frame_len as usize]);
    assert_eq!(
        p.a.ep.call(now, &peer, "echo", &args, None),
        Err(CallError::MessageTooLarge)
    );
    assert_eq!(p.a.ep.queued_bytes(p.net.links[0].a()), 0, "nothing sent");
    assert_eq!(p.a.ep.stats().outbound_calls, 0);
}

#[test]
fn sends_are_dispatched_or_dropped_silently() {
    let mut p = Pair::connected();
    p.b.ep.expose("chat", Access::Anyone).unwrap();
    let (peer, now) = (p.id(Who::B), p.now);
    p.a.ep.send(now, &peer, "chat", b"hello").unwrap();
    p.a.ep.send(now, &peer, "closed", b"nope").unwrap();
    p.drive();
    let events = p.take_events(Who::B);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0], Event::Send(s) if s.handle.as_str() == "chat" && s.args == "hello" && s.peer == p.id(Who::A))
    );
    assert!(p.take_events(Who::A).is_empty(), "no answer to a send");
}

#[test]
fn pings_keep_an_idle_connection_alive() {
    let mut p = Pair::connected();
    for _ in 0..20 {
        p.advance(10 * SEC);
    }
    assert!(p.a.ep.is_connected(&p.id(Who::B)));
    assert!(p.b.ep.is_connected(&p.id(Who::A)));
    assert!(p.take_events(Who::A).is_empty());
}

#[test]
fn idle_timeout_closes_a_connection_whose_peer_vanished() {
    let mut p = Pair::connected();
    let start = p.now;
    // B vanishes: nothing reaches A any more, nothing A sends is read.
    p.net.links[0].to[0].hold = true;
    p.net.links[0].to[1].hold = true;
    let mut closed_at = None;
    for _ in 0..70 {
        p.advance(SEC);
        if !p.a.ep.is_connected(&p.id(Who::B)) {
            closed_at = Some(p.now);
            break;
        }
    }
    let closed_at = closed_at.expect("A noticed");
    let cfg = test_config();
    let waited = closed_at.saturating_duration_since(start);
    assert!(
        waited >= cfg.idle_timeout && waited <= cfg.idle_timeout + cfg.ping_interval,
        "{waited:?}"
    );
    let reason = closed_reason(&p.take_events(Who::A)).unwrap();
    assert!(
        goodbye(Side::Local, GoodbyeCode::IdleTimeout)(&reason),
        "{reason:?}"
    );
    assert_eq!(
        p.a.ep.stats().timers,
        0,
        "a closed connection arms no timers"
    );
}

/// A transport that takes none of our bytes (`Input::Stalled`, reported
/// by the driver after `idle_timeout`) ends the connection at once, with
/// the idle GOODBYE's code and a reason that says which way it stalled,
/// and every call in flight on it resolves.
#[test]
fn a_stalled_transport_ends_the_connection_and_its_calls() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let id = call(&mut p, Who::A, "echo", b"x", None);
    // B reads nothing from here on (its writes to A still arrive)
    p.net.links[0].to[1].hold = true;
    p.drive();
    let conn = p.net.links[0].a();
    let now = p.now;
    p.a.ep.handle_input(now, Input::Stalled { conn });
    assert!(!p.a.ep.is_connected(&p.id(Who::B)), "closed at once");
    p.drive();
    let events = p.take_events(Who::A);
    let reason = closed_reason(&events).expect("announced");
    let idle = test_config().idle_timeout;
    assert_eq!(
        reason,
        CloseReason::Goodbye {
            by: Side::Local,
            code: GoodbyeCode::IdleTimeout,
            reason: format!("peer read none of our bytes for {idle:?}"),
        }
    );
    let resolved: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::CallResult { id: i, result: Err(_) } if *i == id))
        .collect();
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert_eq!(p.a.ep.stats().timers, 0, "no timer left armed");
}

#[test]
fn goodbye_normal_and_protocol_error_reach_the_peer() {
    let mut p = Pair::connected();
    let now = p.now;
    let peer = p.id(Who::B);
    assert!(p.a.ep.disconnect(now, &peer));
    p.drive();
    assert!(goodbye(Side::Local, GoodbyeCode::Normal)(
        &closed_reason(&p.take_events(Who::A)).unwrap()
    ));
    assert!(goodbye(Side::Remote, GoodbyeCode::Normal)(
        &closed_reason(&p.take_events(Who::B)).unwrap()
    ));

    // a frame that is not an envelope: protocol error, with a reason
    let mut p = Pair::connected();
    let conn = p.net.links[0].b();
    let now = p.now;
    p.b.ep.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x05]).into(),
        },
    );
    p.drive();
    let b = closed_reason(&p.take_events(Who::B)).unwrap();
    let a = closed_reason(&p.take_events(Who::A)).unwrap();
    assert!(
        goodbye(Side::Local, GoodbyeCode::ProtocolError)(&b),
        "{b:?}"
    );
    match a {
        CloseReason::Goodbye {
            by: Side::Remote,
            code: GoodbyeCode::ProtocolError,
            reason,
        } => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn call_id_zero_and_duplicate_ids_are_protocol_errors() {
    use peernet_proto::{Envelope, Handle};
    for ids in [&[0u64][..], &[7, 7]] {
        let mut p = Pair::connected();
        expose_echo(&mut p);
        let conn = p.net.links[0].b();
        let mut wire = bytes::BytesMut::new();
        for &id in ids {
            Envelope::Call {
                id,
                handle: Handle::new("echo").unwrap(),
                args: Bytes::new(),
                timeout_ms: 0,
            }
            .encode_frame(&mut wire, 1 << 20)
            .unwrap();
        }
        let now = p.now;
        p.b.ep
            .handle_input(now, Input::Received { conn, data: wire });
        p.drive();
        let reason = closed_reason(&p.take_events(Who::B)).expect("closed");
        assert!(
            goodbye(Side::Local, GoodbyeCode::ProtocolError)(&reason),
            "{ids:?}: {reason:?}"
        );
    }
}

#[test]
fn redial_supersedes_and_fails_calls_on_the_old_connection() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let old_call = call(&mut p, Who::A, "echo", b"x", None);
    p.drive();
    p.take_events(Who::B);
    let link = p.dial(Who::A);
    p.drive();
    assert_connected_over(&p, link, "the new connection");
    let a_events = p.take_events(Who::A);
    assert!(a_events.iter().any(|e| matches!(e, Event::CallResult { id, result: Err(CallError::ConnectionClosed(r)) } if *id == old_call && r.goodbye_code() == Some(GoodbyeCode::Superseded))), "{a_events:?}");
    assert!(goodbye(Side::Local, GoodbyeCode::Superseded)(
        &closed_reason(&a_events).unwrap()
    ));
    let b_events = p.take_events(Who::B);
    assert_eq!(
        closed_reason(&b_events).unwrap().goodbye_code(),
        Some(GoodbyeCode::Superseded)
    );
    // the new connection carries calls
    let id = call(&mut p, Who::A, "echo", b"y", None);
    p.drive();
    let c = inbound_calls(&mut p, Who::B);
    reply(&mut p, Who::B, &c[0], Response::Ok(c[0].args.clone()));
    p.drive();
    assert_eq!(
        results(&mut p, Who::A),
        vec![(id, Ok(Bytes::from_static(b"y")))]
    );
}

#[test]
fn simultaneous_dials_converge_on_one_connection_on_both_sides() {
    for splits in [vec![], vec![1], vec![3, 70, 5]] {
        let mut p = Pair::new();
        p.net.splits = splits.clone();
        let from_a = p.dial(Who::A);
        let from_b = p.dial(Who::B);
        p.drive();
        let winner = if p.id(Who::A) < p.id(Who::B) {
            from_a
        } else {
            from_b
        };
        assert_connected_over(&p, winner, &splits);
        assert_eq!(p.a.ep.stats().connections, 1);
        assert_eq!(p.b.ep.stats().connections, 1);
    }
}

#[test]
fn a_dial_long_after_the_first_replaces_a_half_open_connection() {
    // B's side of the first connection is gone without a trace; B dials A
    // much later: rule 2 makes the new connection win on both sides.
    let mut p = Pair::connected();
    p.net.links[0].to[0].hold = true;
    p.net.links[0].to[1].hold = true;
    p.advance(11 * SEC);
    let link = p.dial(Who::B);
    p.drive();
    assert_connected_over(&p, link, "the new connection");
}

#[test]
fn unpair_mid_call_fails_the_call_with_revoked() {
    // The callee revokes the caller…
    let (mut p, id, inbound) = echo_call_delivered(b"x", None);
    let (now, a) = (p.now, p.id(Who::A));
    assert!(p.b.ep.unpair(now, &a));
    p.drive();
    assert!(
        !reply(&mut p, Who::B, &inbound, Response::Ok(Bytes::new())),
        "no handler result after revoke"
    );
    let r = results(&mut p, Who::A);
    assert!(
        matches!(&r[..], [(x, Err(CallError::ConnectionClosed(reason)))] if *x == id && goodbye(Side::Remote, GoodbyeCode::Revoked)(reason)),
        "{r:?}"
    );
    // …and A can no longer get in
    p.dial(Who::A);
    p.drive();
    assert!(p.take_events(Who::A).iter().any(|e| matches!(
        e,
        Event::HandshakeFailed {
            error: HandshakeError::Rejected(RejectCode::Untrusted),
            ..
        }
    )));

    // The caller revokes the callee.
    let (mut p, id, _) = echo_call_delivered(b"x", None);
    let (now, b) = (p.now, p.id(Who::B));
    p.a.ep.unpair(now, &b);
    p.drive();
    let r = results(&mut p, Who::A);
    assert!(
        matches!(&r[..], [(x, Err(CallError::ConnectionClosed(reason)))] if *x == id && goodbye(Side::Local, GoodbyeCode::Revoked)(reason)),
        "{r:?}"
    );
    assert_eq!(
        p.a.ep.call(now, &b, "echo", b"", None),
        Err(CallError::NotConnected)
    );
}

#[test]
fn a_peer_unpaired_during_its_handshake_never_gets_in() {
    let mut p = Pair::new();
    p.dial(Who::A);
    // deliver HELLO and WELCOME, hold PROOF
    p.net.links[0].to[1].hold = true;
    p.drive();
    p.net.links[0].to[1].hold = false;
    // A already sent HELLO; B answered. Unpair A at B now.
    let mut q = Pair::new();
    q.net.splits = vec![70 + 4];
    q.dial(Who::A);
    // step: B reads HELLO (74 bytes incl. header) and answers WELCOME
    q.net.links[0].to[0].hold = true;
    q.drive();
    let (now, a) = (q.now, q.id(Who::A));
    q.b.ep.unpair(now, &a);
    q.net.links[0].to[0].hold = false;
    q.drive();
    assert!(!q.b.ep.is_connected(&a));
    let events = q.take_events(Who::B);
    assert!(
        failed_with(&events, HandshakeError::Abandoned),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Connected { .. })));
}

#[test]
fn untrusted_dialer_is_rejected_before_the_responder_signs() {
    let mut p = Pair::with(test_config(), test_config(), true, false);
    p.dial(Who::A);
    p.drive();
    let a = p.take_events(Who::A);
    let b = p.take_events(Who::B);
    assert!(
        failed_with(&a, HandshakeError::Rejected(RejectCode::Untrusted)),
        "{a:?}"
    );
    assert!(
        failed_with(&b, HandshakeError::Refused(RejectCode::Untrusted)),
        "{b:?}"
    );
    assert_eq!(p.a.ep.stats().connections + p.b.ep.stats().connections, 0);
}

#[test]
fn unexpected_peer_aborts_the_dial() {
    let p = dial_c_but_reach_b(
        Pair::new(),
        HandshakeError::Rejected(RejectCode::UnexpectedPeer),
    );
    assert!(!p.a.ep.is_connected(&p.id(Who::B)));
    let refused = p.a.ep.counters().handshakes_out.refused;
    assert_eq!(refused.get(RejectCode::UnexpectedPeer), 1, "{refused}");
}

#[test]
fn handshake_timeout_closes_without_a_reject() {
    let mut p = Pair::new();
    p.net.links.clear();
    p.dial(Who::A);
    p.net.links[0].to[0].hold = true;
    p.net.links[0].to[1].hold = true;
    p.advance(11 * SEC);
    for who in [Who::A, Who::B] {
        let events = p.take_events(who);
        assert!(
            failed_with(&events, HandshakeError::Timeout),
            "{who:?} {events:?}"
        );
        assert_eq!(p.node(who).ep.stats().timers, 0);
    }
}

/// Two transports accepted before either says a word, with one handshake
/// slot: the second takes the slot of the first (evicted, closed bare),
/// and connects. (When the slots are held by handshakes that have
/// spoken, a new one is answered `busy`: `first_frame.rs`.)
#[test]
fn a_transport_beyond_max_handshakes_evicts_a_silent_one() {
    let mut cb = test_config();
    cb.max_handshakes = 1;
    let mut p = Pair::with(test_config(), cb, true, true);
    p.dial(Who::A);
    p.dial(Who::A);
    p.drive();
    let a = p.take_events(Who::A);
    assert!(failed_with(&a, HandshakeError::TransportLost), "{a:?}");
    assert!(a.iter().any(|e| matches!(e, Event::Connected { .. })));
    let b = p.take_events(Who::B);
    assert!(failed_with(&b, HandshakeError::Evicted), "{b:?}");
    assert_eq!(p.b.ep.counters().handshakes_in.evicted, 1);
    assert_eq!(p.b.ep.stats().inbound_handshakes, 0);
}

#[test]
fn shutdown_answers_new_calls_then_says_goodbye() {
    let (mut p, running, inbound) = echo_call_delivered(b"1", None);
    let now = p.now;
    p.b.ep.shutdown(now);
    let late = call(&mut p, Who::A, "echo", b"2", None);
    p.drive();
    assert_eq!(
        results(&mut p, Who::A),
        vec![(late, Err(CallError::ShuttingDown))]
    );
    // the running handler still finishes
    reply(
        &mut p,
        Who::B,
        &inbound,
        Response::Ok(Bytes::from_static(b"done")),
    );
    p.drive();
    assert_eq!(
        results(&mut p, Who::A),
        vec![(running, Ok(Bytes::from_static(b"done")))]
    );
    p.b.ep.close_all(now);
    p.drive();
    assert!(goodbye(Side::Remote, GoodbyeCode::Normal)(
        &closed_reason(&p.take_events(Who::A)).unwrap()
    ));
    assert!(p.b.ep.accept(now).is_err());
}

#[test]
fn a_clock_that_steps_back_fires_nothing_early_and_never_spins() {
    let (mut p, id, _) = echo_call_delivered(b"x", Some(5 * SEC));
    let t = p.now;
    // time going backwards: nothing fires, nothing panics
    p.a.ep.handle_timeout(t - Duration::from_secs(100));
    p.a.ep.handle_timeout(peernet_proto::Instant::ZERO);
    p.drive();
    assert!(results(&mut p, Who::A).is_empty());
    // after handle_timeout(now), the next deadline is in the future
    for step in 0..50 {
        let now = p.now + Duration::from_millis(step * 700);
        p.a.ep.handle_timeout(now);
        if let Some(next) = p.a.ep.poll_timeout() {
            assert!(
                next > p.a.ep.now(),
                "poll_timeout {next:?} <= now {:?}",
                p.a.ep.now()
            );
        }
    }
    p.now = p.a.ep.now();
    p.drive();
    assert!(results(&mut p, Who::A).contains(&(id, Err(CallError::Timeout))));
}

#[test]
fn a_peer_that_does_not_read_is_cut_off_at_the_hard_cap() {
    let mut ca = test_config();
    ca.send_buffer = 1 << 12;
    ca.max_send_buffer = 1 << 12;
    ca.max_frame_len = 1 << 12;
    let mut p = Pair::with(ca, test_config(), true, true);
    p.dial(Who::A);
    p.drive();
    // B floods A with pings and never reads A's pongs.
    p.net.links[0].to[1].hold = true;
    let conn = p.net.links[0].a();
    let ping = peernet_proto::Envelope::Ping { nonce: 1 };
    let mut wire = bytes::BytesMut::new();
    for _ in 0..2000 {
        ping.encode_frame(&mut wire, 1 << 20).unwrap();
    }
    let now = p.now;
    p.a.ep
        .handle_input(now, Input::Received { conn, data: wire });
    // the driver never takes A's bytes: the queue is what grows
    while p.a.ep.poll_output().is_some() {}
    assert!(!p.a.ep.is_open(conn));
    assert!(p.a.ep.stats().queued_bytes <= 2 * (1 << 12) + 64);
}

#[test]
fn calls_wait_for_room_in_the_send_queue() {
    let mut ca = test_config();
    ca.send_buffer = 256;
    let mut p = Pair::with(ca, test_config(), true, true);
    p.dial(Who::A);
    p.drive();
    let (now, b) = (p.now, p.id(Who::B));
    let args = Bytes::from(vec![7u8; 100]);
    let mut accepted = 0;
    loop {
        match p.a.ep.call(now, &b, "echo", &args, None) {
            Ok(_) => accepted += 1,
            Err(CallError::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!((2..=4).contains(&accepted), "{accepted}");
    // the driver takes the bytes: room again
    p.drive();
    assert!(p.a.ep.call(now, &b, "echo", &args, None).is_ok());
}

#[test]
fn every_call_resolves_when_the_transport_is_lost() {
    let mut p = Pair::connected();
    expose_echo(&mut p);
    let ids: Vec<_> = (0..5)
        .map(|_| call(&mut p, Who::A, "echo", b"x", Some(5 * SEC)))
        .collect();
    let conn = p.net.links[0].a();
    let now = p.now;
    p.a.ep.handle_input(now, Input::Closed { conn });
    p.drive();
    let r = results(&mut p, Who::A);
    assert_eq!(r.len(), 5);
    for ((id, res), want) in r.iter().zip(&ids) {
        assert_eq!(id, want);
        assert_eq!(
            res,
            &Err(CallError::ConnectionClosed(CloseReason::TransportLost))
        );
    }
    p.advance(10 * SEC);
    assert!(
        results(&mut p, Who::A).is_empty(),
        "no second resolution by timeout"
    );
    assert_eq!(p.a.ep.stats().timers, 0);
}

#[test]
fn config_limits_are_clamped_to_sane_values() {
    let mut c = Config::default();
    c.ping_interval = Duration::ZERO;
    c.idle_timeout = Duration::ZERO;
    let mut p = Pair::with(c.clone(), c, true, true);
    p.dial(Who::A);
    p.drive();
    // zero intervals must not make the timer loop spin
    p.advance(SEC);
}

#[test]
fn an_abandoned_handshake_closes_without_a_goodbye() {
    use peernet_proto::Output;
    let mut p = Pair::new();
    let (now, b) = (p.now, p.id(Who::B));
    let conn = p.a.ep.connect(now, Some(b)).unwrap();
    // the driver wrote HELLO
    assert_eq!(p.a.ep.poll_transmit(conn).map(|h| h.len()), Some(74));
    assert!(p.a.ep.unpair(now, &b));
    let mut closed = None;
    while let Some(out) = p.a.ep.poll_output() {
        if let Output::Close { conn: c, last } = out {
            closed = Some((c, last));
        }
    }
    let (c, last) = closed.expect("closed");
    assert_eq!(c, conn);
    assert!(
        last.is_empty(),
        "no envelope on a connection still in its handshake"
    );
    assert_eq!(p.a.ep.stats().timers, 0);
}

#[test]
fn reaching_an_untrusted_key_when_dialing_a_peerid_reports_unexpected_peer() {
    // A trusts only C and dials C, but B answers: on the wire the answer is
    // REJECT `untrusted` (trust is checked first), locally the dial says it
    // reached the wrong peer.
    let p = dial_c_but_reach_b(
        Pair::with(test_config(), test_config(), false, true),
        HandshakeError::Rejected(RejectCode::Untrusted),
    );
    // A's counters file it under the code it sent, as B's under the one
    // B got (they said `unexpected_peer`, a REJECT never sent: review s51)
    let refused = p.a.ep.counters().handshakes_out.refused;
    assert_eq!(refused.get(RejectCode::Untrusted), 1, "{refused}");
    assert_eq!(refused.total(), 1, "{refused}");
    let rejected = p.b.ep.counters().handshakes_in.rejected;
    assert_eq!(rejected.get(RejectCode::Untrusted), 1, "{rejected}");
}
