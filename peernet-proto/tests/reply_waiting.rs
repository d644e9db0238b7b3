//! Replies wait, as the handlers gave them, while a connection's send
//! queue holds `send_buffer` bytes, and go out in order as the queue is
//! taken (`connection/replies.rs`). A burst of replies used to go into
//! the queue at once, past the hard send cap, and end the connection as
//! if its peer did not read.

mod support;

use bytes::Bytes;
use peernet_proto::{Access, CallError, CallId, CloseReason, Config, Event, Output, Response};
use peernet_testkit::call_results;
use support::{Pair, Who, answer_all, echo_calls_in_hand, test_config, test_config_v2};

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
    let (_, ids, calls) = echo_calls_in_hand(&mut p, CALLS, ARGS);
    (p, ids, calls)
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

/// A connection we close on purpose sends what is queued (a send buffer
/// of replies), then GOODBYE; the calls of the replies still waiting fail
/// with the close, each once.
#[test]
fn a_connection_closed_on_purpose_sends_what_is_queued_then_goodbye() {
    let mut config = test_config_v2();
    config.send_buffer = 2048;
    let (mut p, _, calls) = b_holds_calls(config.clone());
    answer_all(&mut p, &calls);
    assert!(p.node(Who::B).ep.stats().replies_waiting > 0);
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    p.drive();
    let events = p.take_events(Who::A);
    let got = call_results(&events);
    assert_eq!(got.len(), CALLS, "every call resolves once");
    let ok = got.iter().take_while(|(_, r)| r.is_ok()).count();
    let wrote = ok * (ARGS + 16);
    assert!(
        wrote > config.send_buffer / 2,
        "{ok} results before the GOODBYE"
    );
    assert!(
        got[ok..]
            .iter()
            .all(|(_, r)| matches!(r, Err(CallError::ConnectionClosed(_)))),
        "the rest fail with the close: {:?}",
        &got[ok..]
    );
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

/// A peer that reads nothing and keeps calling: B (small send buffer,
/// `max_inbound_calls` 4) answers every round, A's link holds 8 KiB.
/// A call whose reply waits used to free its slot, so the waiting
/// replies grew without bound (380 held, 30 times the hard send cap, and
/// the peer stayed connected; review s40, r2).
const ROUNDS: usize = 100;

/// B (small send buffer, `max_inbound_calls` 4) serves `echo`; A calls it
/// in rounds of 4 and reads none of B's bytes (its socket buffer, the
/// link, holds 8 KiB); B answers each round. Returns the pair and B's
/// config.
fn non_reader_keeps_calling() -> (Pair, Config) {
    let mut cb = test_config_v2();
    cb.max_frame_len = 4096;
    cb.send_buffer = 2048;
    cb.max_send_buffer = 4096;
    cb.max_inbound_calls = 4;
    let mut ca = test_config_v2();
    ca.max_outbound_calls = 100_000;
    let mut p = Pair::with(ca, cb.clone(), true, true);
    p.node(Who::B).ep.expose("echo", Access::Anyone).unwrap();
    let l = p.dial(Who::A);
    p.drive();
    p.take_events(Who::A);
    p.take_events(Who::B);
    // A reads nothing from now on; B's driver stops taking once 8 KiB
    // wait in the (full) socket buffer.
    p.net.capacity = 8192;
    p.net.links[l].to[Who::A.index()].hold = true;
    let b = p.id(Who::B);
    for round in 0..ROUNDS {
        let now = p.now;
        for i in 0..cb.max_inbound_calls {
            let args = [(round * 7 + i) as u8; ARGS];
            p.node(Who::A)
                .ep
                .call(now, &b, "echo", &args, None)
                .expect("A's call goes out");
        }
        p.drive();
        let now = p.now;
        for e in p.take_events(Who::B) {
            match e {
                Event::Call(call) => {
                    assert!(p.node(Who::B).ep.reply(
                        now,
                        call.id,
                        Response::Ok(Bytes::copy_from_slice(&call.args))
                    ));
                }
                Event::Disconnected { .. } => return (p, cb),
                _ => {}
            }
        }
        p.drive();
    }
    (p, cb)
}

/// replies.rs: "Until then it holds the results of its calls in flight,
/// as the handlers gave them: at most `max_inbound_calls` of them."
/// README: "a peer that reads nothing pins about two send buffers
/// besides the results of its calls in flight". Neither holds: the
/// waiting replies are of calls no longer in flight, and the peer gets a
/// new slot for each one answered.
#[test]
fn waiting_replies_of_a_non_reader_are_bounded_by_its_calls_in_flight() {
    let (mut p, cb) = non_reader_keeps_calling();
    let a = p.id(Who::A);
    let connected = p.node(Who::B).ep.is_connected(&a);
    let s = p.node(Who::B).ep.stats();
    println!(
        "B connected to A: {connected}; replies waiting {} ({} body bytes), queued {}, \
         hard send cap {}",
        s.replies_waiting,
        s.reply_bytes_waiting,
        s.queued_bytes,
        cb.hard_send_cap()
    );
    assert!(
        !connected || s.replies_waiting <= cb.max_inbound_calls,
        "a peer that reads nothing makes B hold {} replies ({} bytes, {}x the hard send cap \
         {}) for calls no longer in flight (max_inbound_calls {}), and stays connected",
        s.replies_waiting,
        s.reply_bytes_waiting,
        s.reply_bytes_waiting / cb.hard_send_cap(),
        cb.hard_send_cap(),
        cb.max_inbound_calls
    );
}

/// The last write of a connection closed on purpose carries at most a
/// send buffer of waiting replies: an unbounded one (it used to carry
/// them all) passes the driver's node-wide linger budget (four hard send
/// caps), and the driver drops it whole, GOODBYE included (review s40,
/// r2: 198,870 bytes against 24,592).
#[test]
fn the_last_write_of_a_disconnect_stays_within_the_linger_budget() {
    let mut config = test_config_v2();
    config.max_frame_len = 4096;
    config.send_buffer = 2048;
    config.max_send_buffer = 4096;
    let (mut p, _, calls) = b_holds_calls(config.clone());
    let now = p.node(Who::B).now;
    for call in &calls {
        let big = Bytes::from(vec![3u8; 3000]);
        assert!(p.node(Who::B).ep.reply(now, call.id, Response::Ok(big)));
    }
    let linger_budget = 4 * config.hard_send_cap();
    assert!(p.node(Who::B).ep.stats().reply_bytes_waiting > linger_budget);
    let a = p.id(Who::A);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    let mut last_len = None;
    while let Some(out) = p.node(Who::B).ep.poll_output() {
        if let Output::Close { last, .. } = out {
            last_len = Some(last.len());
        }
    }
    let last_len = last_len.expect("B closes the connection");
    let bound = config.send_buffer + config.max_frame_len as usize + 4 * 1024;
    assert!(
        last_len <= bound && bound <= linger_budget,
        "the last write is {last_len} bytes (bound {bound}, linger budget {linger_budget})"
    );
}

/// A peer whose replies wait (it stopped reading) can send CANCELs for
/// ids it never used as fast as it likes. Each one was looked for among
/// the waiting replies by a scan: with 1,000 waiting, a flood of CANCELs
/// cost about 14 times what it costs with none (a release build; more at
/// the tests' opt-level). The waiting ids are a set now, and the flood
/// costs about the same either way.
#[test]
fn a_cancel_flood_costs_no_more_while_replies_wait() {
    const HELD: usize = 1000;
    const FLOOD: u64 = 40_000;
    // CANCELs of ids never used, in version 1's plain frames
    let mut flood = bytes::BytesMut::new();
    for id in 0..FLOOD {
        let cancel = peernet_proto::Envelope::Cancel { id: 1 << 40 | id };
        cancel.encode_frame(&mut flood, u32::MAX).unwrap();
    }
    let flood = flood.freeze();
    // The fastest of three floods into B, whose calls are all in hand
    // and either unanswered (none waits) or answered (most wait).
    let cost = |answered: bool| {
        let mut config = test_config();
        config.send_buffer = 2048;
        config.max_send_buffer = 64 << 20;
        config.max_inbound_calls = HELD + 24;
        let mut for_a = config.clone();
        for_a.send_buffer = Config::default().send_buffer;
        let mut p = Pair::with(for_a, config, true, true);
        let (_, _, calls) = echo_calls_in_hand(&mut p, HELD, 8);
        if answered {
            answer_all(&mut p, &calls);
            let waiting = p.node(Who::B).ep.stats().replies_waiting;
            assert!(waiting > HELD / 2, "{waiting} replies wait");
        }
        let a = p.id(Who::A);
        let conn = p.node(Who::B).ep.connection(&a).unwrap();
        (0..3)
            .map(|_| {
                let now = p.node(Who::B).now;
                let data = flood.clone().into();
                let started = std::time::Instant::now();
                p.node(Who::B)
                    .ep
                    .handle_input(now, peernet_proto::Input::Received { conn, data });
                while p.node(Who::B).ep.poll_output().is_some() {}
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let (none, most) = (cost(false), cost(true));
    assert!(
        most < none * 4,
        "a flood of {FLOOD} CANCELs took {most:?} with replies waiting, {none:?} without"
    );
}
