//! Replies wait, as the handlers gave them, while a connection's send
//! queue holds `send_buffer` bytes, and go out in order as the queue is
//! taken (`connection/replies.rs`). A burst of replies used to go into
//! the queue at once, past the hard send cap, and end the connection as
//! if its peer did not read.

mod support;

use bytes::Bytes;
use peernet_proto::{Access, CallError, CallId, CloseReason, Config, Event, Response};
use peernet_testkit::call_results;
use support::{Pair, Who, test_config, test_config_v2};

const CALLS: usize = 24;
const ARGS: usize = 500;

/// A and B connected, B with `config` (A with its default send
/// buffer); B exposes `echo`; A has made [`CALLS`] calls and B has all
/// of them in hand, answered none.
fn b_holds_calls(config: Config) -> (Pair, Vec<CallId>, Vec<peernet_proto::InboundCall>) {
    let mut for_a = config.clone();
    for_a.send_buffer = Config::default().send_buffer;
    for_a.max_send_buffer = Config::default().max_send_buffer;
    let mut p = Pair::with(for_a, config, true, true);
    p.node(Who::B)
        .ep
        .expose("echo", Access::Anyone)
        .expect("handle");
    p.dial(Who::A);
    p.drive();
    p.take_events(Who::A);
    p.take_events(Who::B);
    let b = p.id(Who::B);
    let now = p.node(Who::A).now;
    let ids = (0..CALLS)
        .map(|i| {
            let args = [i as u8; ARGS];
            p.node(Who::A)
                .ep
                .call(now, &b, "echo", &args, None)
                .expect("call")
        })
        .collect();
    p.drive();
    let calls = p
        .take_events(Who::B)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(call) => Some(call),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(calls.len(), CALLS);
    (p, ids, calls)
}

/// B answers every call at once, taking nothing from its queue.
fn answer_all(p: &mut Pair, calls: &[peernet_proto::InboundCall]) {
    let now = p.node(Who::B).now;
    for call in calls {
        let answered = p
            .node(Who::B)
            .ep
            .reply(now, call.id, Response::Ok(call.args.clone()));
        assert!(answered);
    }
}

#[test]
fn a_burst_of_replies_waits_for_room_and_leaves_in_order() {
    for config in [test_config(), test_config_v2()] {
        let mut config = config;
        config.send_buffer = 2048;
        config.max_send_buffer = 4096;
        let frame = config.max_frame_len as usize + 4;
        let (mut p, ids, calls) = b_holds_calls(config.clone());
        answer_all(&mut p, &calls);
        let s = p.node(Who::B).ep.stats();
        assert!(s.replies_waiting > 0, "{s:?}");
        assert!(s.queued_bytes < config.send_buffer + frame, "{s:?}");
        assert!(s.reply_bytes_waiting >= s.replies_waiting * ARGS, "{s:?}");
        p.drive();
        let events = p.take_events(Who::A);
        let got = call_results(&events);
        assert_eq!(got.len(), CALLS, "every call resolves");
        for (i, ((id, result), want)) in got.iter().zip(&ids).enumerate() {
            assert_eq!(id, want, "in the order they were answered");
            assert_eq!(result.as_deref().ok(), Some(&[i as u8; ARGS][..]));
        }
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Disconnected { .. })),
            "the connection stays"
        );
        let s = p.node(Who::B).ep.stats();
        assert_eq!((s.replies_waiting, s.reply_bytes_waiting), (0, 0));
    }
}

#[test]
fn a_connection_closed_on_purpose_sends_its_waiting_replies_first() {
    let mut config = test_config_v2();
    config.send_buffer = 2048;
    let (mut p, _, calls) = b_holds_calls(config);
    answer_all(&mut p, &calls);
    assert!(p.node(Who::B).ep.stats().replies_waiting > 0);
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    p.drive();
    let events = p.take_events(Who::A);
    let ok = call_results(&events)
        .iter()
        .filter(|(_, r)| r.is_ok())
        .count();
    assert_eq!(ok, CALLS, "every result reached A before the GOODBYE");
    assert!(
        matches!(events.last(), Some(Event::Disconnected { .. })),
        "{:?}",
        events.last()
    );
}

#[test]
fn a_revoked_peer_gets_no_waiting_reply() {
    let mut config = test_config_v2();
    config.send_buffer = 2048;
    let (mut p, _, calls) = b_holds_calls(config);
    answer_all(&mut p, &calls);
    let waiting = p.node(Who::B).ep.stats().replies_waiting;
    assert!(waiting > 0);
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    assert!(p.node(Who::B).ep.unpair(now, &a));
    assert_eq!(p.node(Who::B).ep.stats().replies_waiting, 0);
    p.drive();
    let got = call_results(&p.take_events(Who::A));
    let revoked = got
        .iter()
        .filter(|(_, r)| {
            matches!(r, Err(CallError::ConnectionClosed(reason)) if matches!(reason, CloseReason::Goodbye { .. }))
        })
        .count();
    assert_eq!(got.len(), CALLS);
    assert_eq!(
        revoked, waiting,
        "the waiting replies went with the connection"
    );
}

/// A reply too large for a frame that has to wait is answered
/// `too_large` as one that goes out at once is, in its place in line.
#[test]
fn a_waiting_reply_too_large_for_a_frame_is_answered_too_large() {
    for config in [test_config(), test_config_v2()] {
        let mut config = config;
        config.send_buffer = 2048;
        let huge = Bytes::from(vec![1u8; config.max_frame_len as usize]);
        let (mut p, ids, calls) = b_holds_calls(config);
        let now = p.node(Who::B).now;
        let (last, rest) = calls.split_last().expect("calls");
        answer_all(&mut p, rest);
        assert!(p.node(Who::B).ep.stats().replies_waiting > 0);
        assert!(p.node(Who::B).ep.reply(now, last.id, Response::Ok(huge)));
        p.drive();
        let got = call_results(&p.take_events(Who::A));
        assert_eq!(got.len(), CALLS);
        assert_eq!(got.last().map(|(id, _)| *id), ids.last().copied());
        assert!(matches!(
            got.last(),
            Some((_, Err(CallError::ResultTooLarge)))
        ));
        assert!(got[..CALLS - 1].iter().all(|(_, r)| r.is_ok()));
    }
}
