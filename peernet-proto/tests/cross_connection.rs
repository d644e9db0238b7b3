//! Three endpoints, one of them with two connections whose request ids
//! (and ping nonces) collide: a REPLY, CANCEL or PONG must act only on the
//! connection it arrived on. Ids are random in the protocol, so no
//! simulated peer collides them by chance: every endpoint here draws from
//! an RNG that repeats one value, which forces the collision.
//! Also: a callee-side timeout frees its slot, and a request id reused
//! after its call ended names a new call, which nothing meant for the old
//! one reaches.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::config::Fault;
use peernet_proto::{
    Access, Config, Endpoint, Envelope, Event, Handle, InboundCallId, PeerId, Response, TrustList,
};
use peernet_testkit::{Node, World, call_results, identity, test_config};
use rand_core::{TryCryptoRng, TryRng};

/// An RNG that always draws the same value: every connection of an
/// endpoint starts its request ids (and its ping nonces) at the same point.
struct Repeating;

impl TryRng for Repeating {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(0x5eed_5eed)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(0x5eed_5eed_5eed_5eed)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        dst.fill(0x5e);
        Ok(())
    }
}

impl TryCryptoRng for Repeating {}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// A (node 0) connected to B (1) and C (2), every node trusting every
/// other, exposing `h` to anyone, with `fault` switched on in each.
fn triangle(config: Config, fault: Option<Fault>) -> World {
    let ids: Vec<PeerId> = (1..=3).map(|i| identity(i).peer_id()).collect();
    let nodes = (0..3)
        .map(|i| {
            let mut trust = TrustList::new();
            for (j, p) in ids.iter().enumerate() {
                if j != i {
                    trust.insert(*p, None);
                }
            }
            let mut c = config.clone();
            c.fault = fault;
            let ep = Endpoint::new(c, identity(i as u8 + 1), trust, Box::new(Repeating));
            let mut node = Node::unchecked(ep);
            node.ep.expose("h", Access::Anyone).unwrap();
            node
        })
        .collect();
    let mut w = World::new(nodes);
    w.dial(A, B);
    w.dial(A, C);
    w.drive();
    for n in [B, C] {
        assert!(w.nodes[A].ep.is_connected(&w.id(n)), "A-{n} not connected");
    }
    for n in [A, B, C] {
        w.take_events(n);
    }
    w
}

fn cancelled(events: &[Event]) -> Vec<InboundCallId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallCancelled(id) => Some(*id),
            _ => None,
        })
        .collect()
}

fn calls(events: &[Event]) -> Vec<InboundCallId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Call(call) => Some(call.id),
            _ => None,
        })
        .collect()
}

/// A calls B and C with colliding ids; C answers first. Returns what A
/// saw, or what went wrong.
fn reply_from_c_resolves_only_the_call_to_c(fault: Option<Fault>) -> Result<(), String> {
    let mut w = triangle(test_config(), fault);
    let (pb, pc, now) = (w.id(B), w.id(C), w.now);
    let to_b = w.nodes[A].ep.call(now, &pb, "h", b"to b", None).unwrap();
    let to_c = w.nodes[A].ep.call(now, &pc, "h", b"to c", None).unwrap();
    assert_eq!(to_b.request_id(), to_c.request_id(), "ids collide");
    assert_ne!(to_b, to_c, "on two connections");
    w.drive();
    let at_c = calls(&w.take_events(C));
    let at_b = calls(&w.take_events(B));
    assert_eq!((at_b.len(), at_c.len()), (1, 1));
    let from_c = Response::Ok(Bytes::from_static(b"from c"));
    assert!(w.nodes[C].ep.reply(now, at_c[0], from_c));
    w.drive();
    let seen = call_results(&w.take_events(A));
    if seen != [(to_c, Ok(Bytes::from_static(b"from c")))] {
        return Err(format!("after C's reply A saw {seen:?}"));
    }
    let from_b = Response::Ok(Bytes::from_static(b"from b"));
    assert!(w.nodes[B].ep.reply(now, at_b[0], from_b));
    w.drive();
    let seen = call_results(&w.take_events(A));
    if seen != [(to_b, Ok(Bytes::from_static(b"from b")))] {
        return Err(format!("after B's reply A saw {seen:?}"));
    }
    Ok(())
}

#[test]
fn a_reply_resolves_only_the_call_of_its_own_connection() {
    reply_from_c_resolves_only_the_call_to_c(None).unwrap();
}

#[test]
fn the_reply_test_catches_replies_matched_on_any_connection() {
    let r = reply_from_c_resolves_only_the_call_to_c(Some(Fault::ReplyAnyConnection));
    assert!(r.is_err(), "the fault went unnoticed");
}

#[test]
fn a_cancel_ends_only_the_call_of_its_own_connection() {
    let mut w = triangle(test_config(), None);
    let (pa, now) = (w.id(A), w.now);
    let from_b = w.nodes[B].ep.call(now, &pa, "h", b"b", None).unwrap();
    let from_c = w.nodes[C].ep.call(now, &pa, "h", b"c", None).unwrap();
    assert_eq!(from_b.request_id(), from_c.request_id(), "ids collide");
    w.drive();
    let served = calls(&w.take_events(A));
    assert_eq!(served.len(), 2);
    assert_eq!(served[0].request_id(), served[1].request_id());
    assert!(w.nodes[B].ep.cancel(now, from_b));
    w.drive();
    let a = w.take_events(A);
    let cancelled = cancelled(&a);
    let (b_conn, c_conn) = (
        w.nodes[A].ep.connection(&w.id(B)).unwrap(),
        w.nodes[A].ep.connection(&w.id(C)).unwrap(),
    );
    assert_eq!(cancelled.len(), 1, "{a:?}");
    assert_eq!(cancelled[0].conn(), b_conn, "B's CANCEL ended B's call");
    let c_call = served.into_iter().find(|id| id.conn() == c_conn).unwrap();
    let ok = Response::Ok(Bytes::from_static(b"still here"));
    assert!(
        w.nodes[A].ep.reply(now, c_call, ok),
        "C's call still served"
    );
    w.drive();
    let seen = call_results(&w.take_events(C));
    assert_eq!(seen, [(from_c, Ok(Bytes::from_static(b"still here")))]);
}

/// A peer may reuse a request id once its call ended (here by CANCEL).
/// The second call gets an id of its own: the first call's answer (a
/// handler that ran on past its cancellation, answering late) is refused
/// and leaves the second call waiting for its own, and a driver that asks
/// `is_serving` about the first is told no.
#[test]
fn a_request_id_reused_after_its_call_ended_names_a_new_call() {
    let mut w = triangle(test_config(), None);
    let (pa, now) = (w.id(A), w.now);
    let conn = w.nodes[B].ep.connection(&pa).unwrap();
    let call = || Envelope::Call {
        id: 7,
        handle: Handle::from_static("h"),
        args: Bytes::from_static(b"x"),
        timeout_ms: 0,
    };
    assert!(w.nodes[B].ep.testkit_queue_envelope(now, conn, &call()));
    w.drive();
    let first = calls(&w.take_events(A));
    assert_eq!(first.len(), 1);
    assert!(w.nodes[A].ep.is_serving(first[0]));
    let cancel = Envelope::Cancel { id: 7 };
    assert!(w.nodes[B].ep.testkit_queue_envelope(now, conn, &cancel));
    assert!(w.nodes[B].ep.testkit_queue_envelope(now, conn, &call()));
    w.drive();
    let a = w.take_events(A);
    let cancelled = cancelled(&a);
    let second = calls(&a);
    assert_eq!(cancelled, first, "{a:?}");
    assert_eq!(second.len(), 1, "{a:?}");
    let (old, new) = (first[0], second[0]);
    assert_eq!(
        (old.conn(), old.request_id()),
        (new.conn(), new.request_id())
    );
    assert_ne!(old, new, "two calls, two ids");
    assert!(!w.nodes[A].ep.is_serving(old));
    let late = Response::Ok(Bytes::from_static(b"meant for the first"));
    assert!(
        !w.nodes[A].ep.reply(now, old, late),
        "the late answer is refused"
    );
    assert!(w.nodes[A].ep.is_serving(new), "the second call still waits");
    let own = Response::Ok(Bytes::from_static(b"its own"));
    assert!(w.nodes[A].ep.reply(now, new, own));
    assert!(!w.nodes[A].ep.is_serving(new));
}

#[test]
fn a_pong_keeps_alive_only_its_own_connection() {
    let mut w = triangle(test_config(), None);
    // B vanishes for A: nothing from B reaches A any more; C stays.
    let l_ab = 0;
    let e_a = w.net.links[l_ab].end_of(A).unwrap();
    w.net.links[l_ab].to[e_a].hold = true;
    let c = test_config();
    w.advance(c.idle_timeout + c.ping_interval + Duration::from_secs(1));
    let (pb, pc) = (w.id(B), w.id(C));
    assert!(!w.nodes[A].ep.is_connected(&pb), "dead B still connected");
    assert!(w.nodes[A].ep.is_connected(&pc), "live C was dropped");
    let a = w.take_events(A);
    assert!(
        a.iter()
            .any(|e| matches!(e, Event::Disconnected { peer, .. } if *peer == pb)),
        "{a:?}"
    );
}

#[test]
fn a_callee_side_timeout_frees_its_slot() {
    let mut config = test_config();
    config.max_inbound_calls = 1;
    let mut w = triangle(config, None);
    let (pa, now) = (w.id(A), w.now);
    let first = w.nodes[B]
        .ep
        .call(now, &pa, "h", b"1", Some(Duration::from_secs(1)));
    first.unwrap();
    w.drive();
    assert_eq!(calls(&w.take_events(A)).len(), 1);
    assert_eq!(w.nodes[A].ep.stats().inbound_calls, 1);
    // B's CANCEL (sent when its own timeout runs out) never reaches A:
    // only A's own deadline can free the slot.
    let l_ab = 0;
    let e_a = w.net.links[l_ab].end_of(A).unwrap();
    w.net.links[l_ab].to[e_a].hold = true;
    w.advance(Duration::from_millis(1_100));
    let a = w.take_events(A);
    assert!(
        a.iter().any(|e| matches!(e, Event::CallCancelled(_))),
        "{a:?}"
    );
    assert_eq!(w.nodes[A].ep.stats().inbound_calls, 0, "slot freed");
    w.net.links[l_ab].to[e_a].hold = false;
    w.drive();
    w.take_events(B);
    let now = w.now;
    let second = w.nodes[B].ep.call(now, &pa, "h", b"2", None).unwrap();
    w.drive();
    assert_eq!(calls(&w.take_events(A)).len(), 1, "second call served");
    let b = w.take_events(B);
    assert!(
        call_results(&b).iter().all(|(id, _)| *id != second),
        "{b:?}"
    );
}
