//! The core tests' harness is the test kit's `Pair`: two endpoints joined
//! by in-memory links on a virtual clock (`peernet-testkit`).

#![allow(unused_imports)]

pub(crate) use peernet_testkit::{Pair, Who, identity, test_config, test_config_v2};

use peernet_proto::{Event, HandshakeError};

/// Whether a handshake failed with `expected` among `events`.
#[allow(dead_code)]
pub(crate) fn failed_with(events: &[Event], expected: HandshakeError) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::HandshakeFailed { error, .. } if *error == expected))
}

#[allow(dead_code, unreachable_pub)]
pub mod dialing;
#[allow(dead_code, unreachable_pub)]
pub mod v2;

/// B answers every call of `calls` at once (`ok`, with the call's own
/// arguments), taking nothing from its queue.
#[allow(dead_code)]
pub(crate) fn answer_all(p: &mut Pair, calls: &[peernet_proto::InboundCall]) {
    let now = p.node(Who::B).now;
    for call in calls {
        let answered =
            p.node(Who::B)
                .ep
                .reply(now, call.id, peernet_proto::Response::Ok(call.args.clone()));
        assert!(answered);
    }
}

/// A reads nothing more on `link`: what B writes stays in the link, which
/// holds one byte, so B's driver takes one batch at most.
#[allow(dead_code)]
pub(crate) fn a_stops_reading(p: &mut Pair, link: usize) {
    p.net.capacity = 1;
    p.net.links[link].to[Who::A.index()].hold = true;
}

/// A and B of `p` connected; B exposes `echo`, A has made `calls` calls of
/// `args` bytes (call `i` filled with `i`) and B has all of them in hand,
/// answered none. Returns A's link, A's call ids and B's calls, in order.
#[allow(dead_code)]
pub(crate) fn echo_calls_in_hand(
    p: &mut Pair,
    calls: usize,
    args: usize,
) -> (
    usize,
    Vec<peernet_proto::CallId>,
    Vec<peernet_proto::InboundCall>,
) {
    p.node(Who::B)
        .ep
        .expose("echo", peernet_proto::Access::Anyone)
        .expect("handle");
    let link = p.dial(Who::A);
    p.drive();
    p.take_events(Who::A);
    p.take_events(Who::B);
    let (b, now) = (p.id(Who::B), p.node(Who::A).now);
    let ids = (0..calls)
        .map(|i| {
            let filled = vec![i as u8; args];
            p.node(Who::A)
                .ep
                .call(now, &b, "echo", &filled, None)
                .expect("call")
        })
        .collect();
    p.drive();
    let held: Vec<_> = p
        .take_events(Who::B)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(call) => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), calls, "B holds every call");
    (link, ids, held)
}
