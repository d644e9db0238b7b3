//! A trusted peer turned hostile, against the core (version 2, records
//! sealed by hand): what it sends after its GOODBYE, ids it never issued,
//! streams of tiny records, a transport that ends mid-record, and a peer
//! that reconnects in a loop. Each case is either a clear error or a
//! bounded reaction, and leaves no state behind.

mod support;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CloseReason, Envelope, Event, GoodbyeCode, Handle, Input, PeerConnectLimits,
    Stats,
};
use support::v2::*;
use support::{Pair, Who, identity, test_config_v2};

fn call_body(id: u64, args: &[u8], timeout_ms: u64) -> Vec<u8> {
    Envelope::Call {
        id,
        handle: Handle::new("log").unwrap(),
        args: Bytes::copy_from_slice(args),
        timeout_ms,
    }
    .to_body()
}

fn body(envelope: Envelope) -> Vec<u8> {
    envelope.to_body()
}

/// The state that must not grow: connections, calls, bytes, queues,
/// outputs and timers.
fn footprint(s: &Stats) -> [usize; 10] {
    [
        s.connections,
        s.established,
        s.inbound_handshakes,
        s.outbound_calls,
        s.inbound_calls,
        s.inbound_bytes,
        s.queued_bytes,
        s.replies_waiting,
        s.buffered_input,
        s.timers,
    ]
}

/// B established by identity 1 (`established`), its first SEND's
/// handler done (as the driver reports it): B holds nothing.
fn established_idle() -> (
    peernet_proto::Endpoint,
    peernet_proto::ConnId,
    peernet_proto::testkit::noise::Transport,
    peernet_proto::Instant,
) {
    let (mut b, conn, keys, now) = established();
    b.send_done(conn, b"first".len());
    (b, conn, keys, now)
}

#[test]
fn nothing_after_a_goodbye_is_handled() {
    let (mut b, conn, mut keys, now) = established_idle();
    let mut plain = body(Envelope::Goodbye {
        code: 0,
        reason: "bye".into(),
    });
    plain.extend(call_body(1, b"after", 0));
    plain.extend(send_body(b"after"));
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &plain));
    assert!(d.closed, "the GOODBYE closes");
    assert!(d.events.iter().any(|e| matches!(
        e,
        Event::Disconnected { conn: c, reason: CloseReason::Goodbye { code: GoodbyeCode::Normal, .. }, .. } if *c == conn
    )), "{:?}", d.events);
    assert!(
        !d.events
            .iter()
            .any(|e| matches!(e, Event::Call(_) | Event::Send(_))),
        "an envelope behind the GOODBYE was handled: {:?}",
        d.events
    );
    assert!(d.sent.is_empty(), "a GOODBYE is not answered: {:?}", d.sent);
    // The peer keeps sending: the connection is gone, nothing happens.
    for id in 2..100 {
        let d = feed(
            &mut b,
            now,
            conn,
            &seal(&mut keys.send, &call_body(id, b"x", 0)),
        );
        assert!(
            d.events.is_empty() && d.sent.is_empty() && !d.closed,
            "{d:?}"
        );
    }
    assert_eq!(footprint(&b.stats()), [0; 10], "{:?}", b.stats());
}

/// REPLYs for ids B never issued, a second REPLY to an answered call, a
/// REPLY to a call B cancelled, and CANCELs of ids B never served: all
/// dropped silently (PROTOCOL.md 3.1), each B call resolved exactly once,
/// nothing sent, nothing kept.
#[test]
fn replies_and_cancels_for_ids_not_in_flight_are_dropped() {
    let (mut b, conn, mut keys, now) = established_idle();
    let a = identity(1).peer_id();
    let answered = b.call(now, &a, "x", b"", None).unwrap();
    let cancelled = b.call(now, &a, "x", b"", None).unwrap();
    assert!(!drain(&mut b, conn).sent.is_empty(), "B's two CALLs");
    assert!(b.cancel(now, cancelled));
    let d = drain(&mut b, conn);
    let cancel_events = d
        .events
        .iter()
        .filter(|e| matches!(e, Event::CallResult { id, .. } if *id == cancelled))
        .count();
    assert_eq!(cancel_events, 1, "{:?}", d.events);
    let before = footprint(&b.stats());
    let mut plain = Vec::new();
    for _ in 0..3 {
        for id in [answered.request_id(), cancelled.request_id()] {
            plain.extend(body(Envelope::Reply {
                id,
                status: 0,
                body: Bytes::from_static(b"r"),
            }));
        }
    }
    for id in (1..2_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1) {
        plain.extend(body(Envelope::Reply {
            id,
            status: id % 9,
            body: Bytes::new(),
        }));
        plain.extend(body(Envelope::Cancel { id }));
    }
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &plain));
    assert!(!d.closed && d.sent.is_empty(), "{d:?}");
    let results: Vec<_> = d
        .events
        .iter()
        .filter(|e| matches!(e, Event::CallResult { .. }))
        .collect();
    assert_eq!(
        results,
        [&Event::CallResult {
            id: answered,
            result: Ok(Bytes::from_static(b"r"))
        }],
        "only the first REPLY to the call in flight resolves anything"
    );
    assert_eq!(d.events.len(), 1, "{:?}", d.events);
    let mut after = before;
    after[3] -= 1; // the answered call left
    assert_eq!(footprint(&b.stats()), after, "{:?}", b.stats());
    assert!(b.is_open(conn));
}

/// 20,000 records of 20 bytes on the wire (empty) or 23 (one PING each,
/// its PONG read back at once): B sends nothing for the empty ones, one
/// PONG a PING, and keeps nothing.
#[test]
fn tiny_records_cost_a_record_each_and_keep_nothing() {
    let (mut b, conn, mut keys, now) = established_idle();
    let before = footprint(&b.stats());
    let empty = (0..20_000)
        .flat_map(|_| seal(&mut keys.send, &[]))
        .collect::<Vec<u8>>();
    assert_eq!(empty.len(), 20_000 * 20);
    let started = std::time::Instant::now();
    let d = feed(&mut b, now, conn, &empty);
    let took = started.elapsed();
    assert!(
        d.events.is_empty() && d.sent.is_empty() && !d.closed,
        "{d:?}"
    );
    assert_eq!(footprint(&b.stats()), before, "{:?}", b.stats());
    eprintln!(
        "20000 empty records: {:.3} us each",
        took.as_secs_f64() * 1e6 / 20_000.0
    );
    let mut pongs = 0;
    let started = std::time::Instant::now();
    for nonce in 0..20_000u64 {
        let ping = seal(&mut keys.send, &body(Envelope::Ping { nonce: nonce % 24 }));
        assert_eq!(ping.len(), 23);
        let d = feed(&mut b, now, conn, &ping);
        assert!(d.events.is_empty() && !d.closed, "{d:?}");
        pongs += open_all(&mut keys.recv, &d.sent).len();
    }
    let took = started.elapsed();
    assert_eq!(pongs, 20_000, "one PONG (one record) a PING");
    assert_eq!(footprint(&b.stats()), before, "{:?}", b.stats());
    eprintln!(
        "20000 one-PING records: {:.3} us each",
        took.as_secs_f64() * 1e6 / 20_000.0
    );
}

/// The peer's transport ends in the middle of a record (a half-close or a
/// reset: the driver reports both as `Closed`): the connection ends at
/// once, B's call fails exactly once with `Closed`, the call B served is
/// cancelled, and nothing is kept.
#[test]
fn a_transport_ended_mid_record_ends_everything_once() {
    for cut in [0, 1, 4, 5, 20] {
        let (mut b, conn, mut keys, now) = established_idle();
        let a = identity(1).peer_id();
        let ours = b.call(now, &a, "x", b"", None).unwrap();
        let d = feed(
            &mut b,
            now,
            conn,
            &seal(&mut keys.send, &call_body(7, b"args", 0)),
        );
        let served = d
            .events
            .iter()
            .find_map(|e| match e {
                Event::Call(c) => Some(c.id),
                _ => None,
            })
            .expect("B serves the call");
        let record = seal(&mut keys.send, &call_body(8, b"cut off", 0));
        let d = feed(&mut b, now, conn, &record[..cut]);
        assert!(d.events.is_empty() && !d.closed, "cut {cut}: {d:?}");
        b.handle_input(now, Input::Closed { conn });
        let d = drain(&mut b, conn);
        assert!(d.closed, "cut {cut}");
        let results = d
            .events
            .iter()
            .filter(|e| matches!(e, Event::CallResult { id, result: Err(CallError::ConnectionClosed(_)) } if *id == ours))
            .count();
        assert_eq!(results, 1, "cut {cut}: {:?}", d.events);
        assert!(!b.is_serving(served), "cut {cut}");
        assert!(
            d.events
                .iter()
                .any(|e| matches!(e, Event::Disconnected { conn: c, .. } if *c == conn)),
            "cut {cut}: {:?}",
            d.events
        );
        assert!(
            !d.events.iter().any(|e| matches!(e, Event::Call(_))),
            "cut {cut}: the cut record's CALL ran: {:?}",
            d.events
        );
        assert_eq!(footprint(&b.stats()), [0; 10], "cut {cut}: {:?}", b.stats());
        // A reset reported after the close changes nothing.
        b.handle_input(now, Input::Closed { conn });
        let d = drain(&mut b, conn);
        assert!(d.events.is_empty() && !d.closed, "cut {cut}: {d:?}");
    }
}

fn supersede_config() -> peernet_proto::Config {
    let mut c = test_config_v2();
    // (no rate: the loop measures what one supersede leaves, not the
    // throttle, `reconnects.rs`)
    let mut limits = PeerConnectLimits::default();
    limits.per_second = u32::MAX;
    c.peer_connects = limits;
    c
}

fn held_calls(events: &[Event]) -> Vec<peernet_proto::InboundCallId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c.id),
            _ => None,
        })
        .collect()
}

/// A peer that redials 500 times, each connection with calls in flight
/// both ways (handlers that never answer, callers that never hear back):
/// each superseded connection resolves its calls exactly once (ours fail
/// `superseded`, theirs are cancelled), and neither side keeps anything
/// per supersede: the footprint after 500 is the one after 1.
#[test]
fn a_supersede_storm_resolves_every_call_once_and_keeps_nothing() {
    let mut p = Pair::with(supersede_config(), supersede_config(), true, true);
    p.a.auto_reply = false;
    p.b.auto_reply = false;
    for who in [Who::A, Who::B] {
        p.node(who).ep.expose("hang", Access::Anyone).unwrap();
    }
    let (aid, bid) = (p.id(Who::A), p.id(Who::B));
    let mut first: Option<[[usize; 10]; 2]> = None;
    let started = std::time::Instant::now();
    const ROUNDS: usize = 500;
    p.dial(Who::A);
    p.drive();
    p.take_events(Who::A);
    p.take_events(Who::B);
    for round in 0..ROUNDS {
        let now = p.now;
        let a_call = p.a.ep.call(now, &bid, "hang", &[1; 64], None).unwrap();
        let b_call = p.b.ep.call(now, &aid, "hang", &[2; 64], None).unwrap();
        p.drive();
        let a_events = p.take_events(Who::A);
        let b_events = p.take_events(Who::B);
        let (a_held, b_held) = (held_calls(&a_events), held_calls(&b_events));
        assert_eq!((a_held.len(), b_held.len()), (1, 1), "round {round}");
        // The next round's dial supersedes this connection.
        p.advance(Duration::from_millis(1));
        p.dial(Who::A);
        p.drive();
        let a_events = p.take_events(Who::A);
        let b_events = p.take_events(Who::B);
        for (events, call) in [(&a_events, a_call), (&b_events, b_call)] {
            let results: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::CallResult { id, result } if *id == call => Some(result),
                    _ => None,
                })
                .collect();
            assert!(
                matches!(&results[..], [Err(CallError::ConnectionClosed(r))] if r.goodbye_code() == Some(GoodbyeCode::Superseded)),
                "round {round}: {results:?}"
            );
        }
        assert!(!p.a.ep.is_serving(a_held[0]) && !p.b.ep.is_serving(b_held[0]));
        assert!(p.a.ep.is_connected(&bid) && p.b.ep.is_connected(&aid));
        let fp = [footprint(&p.a.ep.stats()), footprint(&p.b.ep.stats())];
        match first {
            None => first = Some(fp),
            Some(first) => assert_eq!(fp, first, "round {round}: grew"),
        }
        p.advance(Duration::from_millis(1));
    }
    eprintln!(
        "{ROUNDS} supersedes: {:.1} us each (both sides)",
        started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64
    );
}
