//! The byte budgets on inbound arguments (`max_inbound_bytes_per_conn`,
//! `max_inbound_bytes`): a CALL beyond is answered `overloaded`, a SEND
//! beyond is dropped and counted, and every way a call ends gives its
//! bytes back.

mod support;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{CallError, CallId, Config, Event, InboundCall, Response};
use support::{Pair, Who, test_config};

const ARGS: &[u8] = &[7; 1000];

/// A pair whose B holds at most `per_conn` bytes for A's connection and
/// `node` bytes in all, with `echo` exposed on both sides.
fn pair(per_conn: usize, node: usize) -> Pair {
    let mut cb = test_config();
    cb.max_inbound_bytes_per_conn = per_conn;
    cb.max_inbound_bytes = node;
    let mut p = Pair::with(test_config(), cb, true, true);
    p.dial(Who::A);
    p.drive();
    for who in [Who::A, Who::B] {
        p.node(who)
            .ep
            .expose("echo", peernet_proto::Access::Anyone)
            .unwrap();
    }
    p
}

fn call(p: &mut Pair, timeout: Option<Duration>) -> CallId {
    let (peer, now) = (p.id(Who::B), p.now);
    p.node(Who::A)
        .ep
        .call(now, &peer, "echo", ARGS, timeout)
        .expect("call accepted")
}

fn send(p: &mut Pair) {
    let (peer, now) = (p.id(Who::B), p.now);
    p.node(Who::A)
        .ep
        .send(now, &peer, "echo", ARGS)
        .expect("send accepted");
}

fn held(p: &mut Pair) -> (usize, usize) {
    let s = p.node(Who::B).ep.stats();
    (s.inbound_bytes, s.max_inbound_bytes_per_conn)
}

fn served(p: &mut Pair) -> (Vec<InboundCall>, usize) {
    let mut calls = Vec::new();
    let mut sends = 0;
    for e in p.take_events(Who::B) {
        match e {
            Event::Call(c) => calls.push(c),
            Event::Send(_) => sends += 1,
            _ => {}
        }
    }
    (calls, sends)
}

fn results(p: &mut Pair) -> Vec<(CallId, Result<Bytes, CallError>)> {
    peernet_testkit::call_results(&p.take_events(Who::A))
}

#[test]
fn the_defaults_keep_one_peer_under_64_mib() {
    let c = Config::default();
    assert!(c.max_inbound_bytes_per_conn <= 64 << 20);
    assert!(c.max_inbound_bytes_per_conn >= c.max_frame_len as usize);
    assert!(c.max_inbound_bytes >= c.max_inbound_bytes_per_conn);
}

#[test]
fn a_call_beyond_the_connection_budget_is_overloaded_until_one_ends() {
    let mut p = pair(3 * ARGS.len(), 1 << 20);
    let ids: Vec<_> = (0..4).map(|_| call(&mut p, None)).collect();
    p.drive();
    let (calls, _) = served(&mut p);
    assert_eq!(calls.len(), 3, "three calls fit the budget");
    assert_eq!(held(&mut p), (3 * ARGS.len(), 3 * ARGS.len()));
    assert_eq!(results(&mut p), vec![(ids[3], Err(CallError::Overloaded))]);

    // a SEND beyond is dropped and counted
    send(&mut p);
    p.drive();
    assert_eq!(served(&mut p).1, 0, "the send was dropped");
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 1);

    // a reply gives the bytes back: the next call runs
    let now = p.now;
    assert!(
        p.node(Who::B)
            .ep
            .reply(now, calls[0].id, Response::Ok(Bytes::new()))
    );
    assert_eq!(held(&mut p).0, 2 * ARGS.len());
    let again = call(&mut p, None);
    p.drive();
    assert_eq!(served(&mut p).0.len(), 1);
    assert!(results(&mut p).iter().all(|(id, _)| *id != again));
    assert_eq!(held(&mut p).0, 3 * ARGS.len());
}

#[test]
fn the_node_budget_applies_too() {
    let mut p = pair(1 << 20, 2 * ARGS.len());
    let ids: Vec<_> = (0..3).map(|_| call(&mut p, None)).collect();
    p.drive();
    assert_eq!(served(&mut p).0.len(), 2);
    assert_eq!(results(&mut p), vec![(ids[2], Err(CallError::Overloaded))]);
    send(&mut p);
    p.drive();
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 1);
}

#[test]
fn sends_that_fit_are_delivered_and_given_back() {
    let mut p = pair(2 * ARGS.len(), 1 << 20);
    for _ in 0..5 {
        send(&mut p);
        p.drive();
    }
    // the test kit's send handlers finish at once (`send_done`), after
    // the read that brought them
    assert_eq!(served(&mut p).1, 5);
    assert_eq!(held(&mut p), (0, 0));
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 0);

    // five in one read: their handlers have not finished when the third
    // arrives
    for _ in 0..5 {
        send(&mut p);
    }
    p.drive();
    assert_eq!(served(&mut p).1, 2);
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 3);
    assert_eq!(held(&mut p), (0, 0));
}

#[test]
fn cancel_timeout_and_close_give_the_bytes_back() {
    let mut p = pair(1 << 20, 1 << 20);
    let cancelled = call(&mut p, None);
    let _timed = call(&mut p, Some(Duration::from_secs(1)));
    let _left = call(&mut p, None);
    p.drive();
    assert_eq!(served(&mut p).0.len(), 3);
    assert_eq!(held(&mut p).0, 3 * ARGS.len());

    let now = p.now;
    assert!(p.node(Who::A).ep.cancel(now, cancelled));
    p.drive();
    assert_eq!(held(&mut p).0, 2 * ARGS.len(), "CANCEL");

    p.advance(Duration::from_secs(2));
    assert_eq!(held(&mut p).0, ARGS.len(), "callee-side timeout");

    let (peer, now) = (p.id(Who::A), p.now);
    assert!(p.node(Who::B).ep.disconnect(now, &peer));
    p.drive();
    assert_eq!(held(&mut p), (0, 0), "connection end");
}

/// What small arguments keep alive besides the bytes the budgets count
/// (`Config::max_inbound_bytes_per_conn`): version 1's frames of one read
/// chunk copy them into one buffer they share, which the connection lets
/// go of once the chunk is done.
#[test]
fn small_arguments_of_one_chunk_share_a_buffer_the_connection_lets_go_of() {
    let mut p = pair(1 << 20, 1 << 20);
    let (peer, now) = (p.id(Who::B), p.now);
    for args in [&b"one"[..], b"two", b"three"] {
        p.node(Who::A)
            .ep
            .call(now, &peer, "echo", args, None)
            .unwrap();
    }
    p.drive();
    let (calls, _) = served(&mut p);
    let args: Vec<Bytes> = calls.iter().map(|c| c.args.clone()).collect();
    assert_eq!(args, [&b"one"[..], b"two", b"three"]);
    let end = |b: &Bytes| b.as_ptr().wrapping_add(b.len());
    assert_eq!(end(&args[0]), args[1].as_ptr(), "one buffer");
    assert_eq!(end(&args[1]), args[2].as_ptr(), "one buffer");
    let last = args[2].clone();
    drop((args, calls));
    assert!(last.is_unique(), "nothing of the connection's keeps it");
}

/// The SENDs of a peer's ended connection still run, and count against
/// the budget of its next connection until they finish (`orphans.rs`):
/// a peer that reconnected used to get a fresh budget each time.
#[test]
fn sends_that_outlive_their_connection_count_against_the_next_one() {
    let mut p = pair(3 * ARGS.len(), 1 << 20);
    p.node(Who::B).hold_sends = true;
    for _ in 0..3 {
        send(&mut p);
    }
    p.drive();
    let old: Vec<_> = p
        .take_events(Who::B)
        .into_iter()
        .filter_map(|e| match e {
            Event::Send(s) => Some((s.conn, s.args.len())),
            _ => None,
        })
        .collect();
    assert_eq!(old.len(), 3);
    // the connection ends; A connects again
    let (a, now) = (p.id(Who::A), p.now);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    p.drive();
    p.dial(Who::A);
    p.drive();
    assert!(p.node(Who::B).ep.is_connected(&a));
    p.take_events(Who::B);
    assert_eq!(held(&mut p).0, 3 * ARGS.len(), "the old sends still hold");
    send(&mut p);
    p.drive();
    assert_eq!(served(&mut p).1, 0, "no budget left for the peer");
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 1);
    // one of the old sends finishes: room for one
    let (conn, bytes) = old[0];
    p.node(Who::B).ep.send_done(conn, bytes);
    send(&mut p);
    p.drive();
    assert_eq!(served(&mut p).1, 1);
    assert_eq!(p.node(Who::B).ep.stats().sends_dropped, 1);
}
