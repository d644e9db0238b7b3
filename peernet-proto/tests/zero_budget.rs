//! A call with a zero timeout never leaves: `Endpoint::call` gives it an
//! id and it resolves with `Timeout` at the next `poll_output`, with no
//! CALL queued and nothing held. The wire cannot carry a zero budget
//! (`timeout_ms` 0 means no limit, PROTOCOL.md 3.1): the core used to
//! send it with 1 ms, so the callee started a handler nobody waited for.
//!
//! A timeout under a millisecond but not zero is a real budget: it goes
//! out rounded up to 1 ms (the callee never gives up before the caller)
//! and times out on the caller's side at its own deadline.

mod support;

use std::time::Duration;

use peernet_proto::{Access, CallError, Config, Event, Output};
use peernet_testkit::call_results;
use support::{Pair, Who, test_config, test_config_v2};

/// A and B connected, B exposes `echo`, every event so far taken.
fn connected(config: Config) -> Pair {
    let mut p = Pair::with(config.clone(), config, true, true);
    p.node(Who::B).ep.expose("echo", Access::Anyone).unwrap();
    p.dial(Who::A);
    p.drive();
    p.take_events(Who::A);
    p.take_events(Who::B);
    p
}

/// Every output A has now, taken by hand.
fn outputs(p: &mut Pair) -> Vec<Output> {
    std::iter::from_fn(|| p.node(Who::A).ep.poll_output()).collect()
}

#[test]
fn a_zero_timeout_resolves_with_timeout_and_sends_nothing() {
    for config in [test_config(), test_config_v2()] {
        let mut p = connected(config);
        let (b, now) = (p.id(Who::B), p.now);
        let conn = p.node(Who::A).ep.connection(&b).expect("connected");
        let before = p.node(Who::A).ep.stats();
        let id = p
            .node(Who::A)
            .ep
            .call(now, &b, "echo", b"x", Some(Duration::ZERO))
            .expect("taken, as any call would be");
        assert_eq!(id.conn(), conn);
        assert_eq!(p.node(Who::A).ep.poll_transmit(conn), None, "no CALL bytes");
        let outs = outputs(&mut p);
        let events: Vec<Event> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), outs.len(), "nothing to transmit: {outs:?}");
        assert_eq!(call_results(&events), [(id, Err(CallError::Timeout))]);
        let s = p.node(Who::A).ep.stats();
        assert_eq!(s.outbound_calls, 0, "no slot held: {s:?}");
        assert_eq!(s.queued_bytes, 0, "{s:?}");
        assert_eq!(s.timers, before.timers, "no deadline armed: {s:?}");
        assert_eq!(
            s.counters.calls_out.started,
            before.counters.calls_out.started + 1
        );
        assert_eq!(
            s.counters.calls_out.timed_out,
            before.counters.calls_out.timed_out + 1
        );
        assert_eq!(s.counters.calls_out.ended(), s.counters.calls_out.started);
        assert!(!p.node(Who::A).ep.cancel(now, id), "already resolved");
        // Nothing ever reaches B, and no later event names the call.
        p.advance(Duration::from_secs(5));
        assert_eq!(p.node(Who::B).ep.stats().counters.calls_in.started, 0);
        assert!(call_results(&p.take_events(Who::A)).is_empty());
        // The connection carries calls as before.
        let now = p.now;
        let next = p
            .node(Who::A)
            .ep
            .call(now, &b, "echo", b"y", Some(Duration::from_secs(1)))
            .expect("call");
        assert_ne!(next, id, "ids stay unique");
        p.drive();
        assert_eq!(p.node(Who::B).ep.stats().counters.calls_in.started, 1);
    }
}

#[test]
fn a_zero_timeout_is_refused_where_any_call_is() {
    for config in [test_config(), test_config_v2()] {
        let max_frame = config.max_frame_len as usize;
        let mut p = connected(config);
        let (b, now) = (p.id(Who::B), p.now);
        let a = &mut p.node(Who::A).ep;
        let zero = Some(Duration::ZERO);
        let big = vec![0; max_frame];
        assert_eq!(
            a.call(now, &b, "echo", &big, zero),
            Err(CallError::MessageTooLarge)
        );
        assert_eq!(
            a.call(now, &b, "", b"x", zero),
            a.call(now, &b, "", b"x", None),
            "an invalid handle"
        );
        let stranger = support::identity(9).peer_id();
        assert_eq!(
            a.call(now, &stranger, "echo", b"x", zero),
            Err(CallError::NotConnected)
        );
        assert_eq!(a.stats().counters.calls_out.started, 0);
        assert!(outputs(&mut p).is_empty(), "no event for a refusal");
    }
}

#[test]
fn a_timeout_under_a_millisecond_goes_out_as_one_and_ends_at_its_own() {
    for config in [test_config(), test_config_v2()] {
        let mut p = connected(config);
        let (b, sent_at) = (p.id(Who::B), p.now);
        let budget = Duration::from_micros(500);
        let id = p
            .node(Who::A)
            .ep
            .call(sent_at, &b, "echo", b"x", Some(budget))
            .expect("call");
        p.drive();
        let served: Vec<_> = p
            .take_events(Who::B)
            .into_iter()
            .filter_map(|e| match e {
                Event::Call(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(served.len(), 1, "the CALL went out");
        assert_eq!(
            served[0].deadline,
            Some(p.now + Duration::from_millis(1)),
            "timeout_ms 1: rounded up, never 0 (no limit)"
        );
        p.advance(budget - Duration::from_nanos(1));
        assert!(call_results(&p.take_events(Who::A)).is_empty());
        p.advance(Duration::from_nanos(1));
        assert_eq!(
            call_results(&p.take_events(Who::A)),
            [(id, Err(CallError::Timeout))],
            "the caller waits its own 500 µs"
        );
    }
}
