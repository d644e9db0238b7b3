//! PROTOCOL.md 3.1 against a call whose reply waits for room
//! (`connection/replies.rs`; review s40, r4): a CANCEL frees its slot, a
//! CALL reusing its id is a protocol error, and a reply that never went
//! out is not counted as answered.

mod support;

use bytes::Bytes;
use peernet_proto::{CallId, Config, Envelope, Event, Handle, InboundCall};
use support::{Pair, Who, a_stops_reading, answer_all, echo_calls_in_hand, test_config_v2};

const CALLS: usize = 8;
const ARGS: usize = 1000;

/// A and B connected (version 2); B (send buffer 2 KiB, `max_inbound_calls`
/// `max_in`) serves `echo`; A made [`CALLS`] calls, B holds them all; then A
/// stops reading (its link holds what B writes, and B's writer takes one
/// batch at most) and B answers every call, so most replies wait.
fn replies_wait(max_in: usize) -> (Pair, Vec<CallId>, Vec<InboundCall>) {
    let mut cb = test_config_v2();
    cb.send_buffer = 2048;
    cb.max_send_buffer = 4096;
    cb.max_inbound_calls = max_in;
    let mut ca = test_config_v2();
    ca.send_buffer = Config::default().send_buffer;
    ca.max_send_buffer = Config::default().max_send_buffer;
    let mut p = Pair::with(ca, cb, true, true);
    let (l, ids, calls) = echo_calls_in_hand(&mut p, CALLS, ARGS);
    // A reads nothing from now on
    a_stops_reading(&mut p, l);
    answer_all(&mut p, &calls);
    let s = p.node(Who::B).ep.stats();
    assert!(s.replies_waiting >= CALLS / 2, "{s:?}");
    (p, ids, calls)
}

/// PROTOCOL.md 3.1: "For a cancelled call the callee MAY stop the work and
/// send no REPLY, and it frees the call's slot either way." A call whose
/// reply waits keeps its `max_inbound_calls` slot (0706bac), and a CANCEL
/// of it was ignored (the call is no longer in `inbound`): the slot stayed
/// taken, and a caller that cancelled all its calls was refused
/// `overloaded`. Now the CANCEL drops the waiting reply.
#[test]
fn a_cancel_of_a_call_whose_reply_waits_frees_its_slot() {
    let (mut p, ids, _) = replies_wait(CALLS);
    let waiting = p.node(Who::B).ep.stats().replies_waiting;
    let (b, now) = (p.id(Who::B), p.node(Who::A).now);
    for id in &ids {
        assert!(p.node(Who::A).ep.cancel(now, *id), "A cancels its call");
    }
    // A has no call in flight; it makes CALLS new ones
    for i in 0..CALLS {
        p.node(Who::A)
            .ep
            .call(now, &b, "echo", &[i as u8; 8], None)
            .expect("A's new call goes out");
    }
    p.drive();
    let events = p.take_events(Who::B);
    let cancelled = events
        .iter()
        .filter(|e| matches!(e, Event::CallCancelled(_)))
        .count();
    let served = events
        .iter()
        .filter(|e| matches!(e, Event::Call(_)))
        .count();
    let s = p.node(Who::B).ep.stats();
    println!(
        "replies waiting before the cancels: {waiting}; after: {}; CallCancelled: {cancelled}; \
         new calls served: {served} of {CALLS}",
        s.replies_waiting
    );
    assert_eq!(
        served,
        CALLS,
        "B refused {} of A's {CALLS} new calls 'overloaded' although A cancelled every earlier \
         call (their slots are held by {} replies waiting for a caller that gave up on them)",
        CALLS - served,
        s.replies_waiting
    );
}

/// PROTOCOL.md 3.1: "A CALL with ... an id the callee still has in flight
/// from this connection, is a protocol error." A call whose reply waits is
/// still in flight on the callee's side (its REPLY is not sent; 0706bac
/// counts it against `max_inbound_calls`, which `overloaded` defines as
/// calls "in flight"); a CALL reusing its id was taken as a new call, and
/// two REPLYs with one id went to the caller.
#[test]
fn a_call_reusing_the_id_of_a_call_whose_reply_waits_is_refused() {
    let (mut p, ids, _) = replies_wait(1024);
    let reused = ids.last().unwrap();
    let (now, conn) = (p.node(Who::A).now, reused.conn());
    let call = Envelope::Call {
        id: reused.request_id(),
        handle: Handle::from_static("echo"),
        args: Bytes::from_static(b"again"),
        timeout_ms: 0,
    };
    assert!(p.node(Who::A).ep.testkit_queue_envelope(now, conn, &call));
    p.drive();
    let events = p.take_events(Who::B);
    let dispatched: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c.id.request_id()),
            _ => None,
        })
        .collect();
    let closed = events
        .iter()
        .any(|e| matches!(e, Event::Disconnected { .. }));
    println!(
        "reply to id {} waiting: yes; B dispatched {dispatched:?}; B closed: {closed}",
        reused.request_id()
    );
    assert!(
        dispatched.is_empty(),
        "B took a CALL reusing request id {} while that id's REPLY still waits to be sent",
        reused.request_id()
    );
}

/// A connection closed on purpose drops the replies still waiting:
/// their calls fail on the caller's side with the close. The callee's
/// counters used to count each of them answered, with
/// the status it was to go out with (`by_status`: "Answered, by REPLY
/// status ... theirs by the status we answered"), and none as
/// `connection_closed` ("The connection ended with the call in flight").
#[test]
fn replies_dropped_at_a_disconnect_are_not_counted_answered() {
    let (mut p, _, _) = replies_wait(1024);
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    // A reads what B wrote, to the end
    for link in &mut p.net.links {
        link.to[Who::A.index()].hold = false;
    }
    p.net.capacity = usize::MAX;
    p.drive();
    let events = p.take_events(Who::A);
    let got = peernet_testkit::call_results(&events);
    assert_eq!(got.len(), CALLS, "every call resolves once on A's side");
    let a_ok = got.iter().filter(|(_, r)| r.is_ok()).count() as u64;
    let c = p.node(Who::B).ep.counters().calls_in;
    let b_ok = c.by_status.get(peernet_proto::ReplyStatus::Ok);
    println!(
        "A got {a_ok} results of {CALLS}; B counts {b_ok} answered ok, {} connection_closed",
        c.connection_closed
    );
    assert_eq!(
        (b_ok, c.connection_closed),
        (a_ok, CALLS as u64 - a_ok),
        "B's counters claim answers that never left"
    );
}
