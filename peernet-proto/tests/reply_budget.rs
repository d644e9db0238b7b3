//! A reply that waits for room (`connection/replies.rs`) is charged to the
//! byte budgets that bound what a peer makes us hold
//! (`max_inbound_bytes_per_conn`, `max_inbound_bytes`), and a result that
//! would pass them is dropped and its call answered `overloaded`. Waiting
//! replies used to be bounded by `max_inbound_calls` alone: a peer that
//! pipelined calls for large results and read nothing held that many
//! results of a frame each (1 GiB per connection at the defaults).

mod support;

use bytes::Bytes;
use peernet_proto::{CallError, CallId, Config, InboundCall, Response, Stats};
use peernet_testkit::call_results;
use support::{Pair, Who, a_stops_reading, echo_calls_in_hand, test_config, test_config_v2};

/// Calls A makes, all in flight at once.
const CALLS: usize = 64;
/// Each result's bytes: 64 of them are 12 times the budget.
const RESULT: usize = 3000;
/// B's per-connection byte budget.
const BUDGET: usize = 16 * 1024;

/// B's configuration: small frames and send buffer, room for every call,
/// the byte budgets given.
fn b_config(base: Config, per_conn: usize, node: usize) -> Config {
    let mut c = base;
    c.max_frame_len = 4096;
    c.send_buffer = 2048;
    c.max_send_buffer = 8192;
    c.max_inbound_calls = CALLS;
    c.max_inbound_bytes_per_conn = per_conn;
    c.max_inbound_bytes = node;
    c
}

/// A and B connected, B with `cb`; A made [`CALLS`] calls, B holds them
/// all, then A stops reading (its link holds what B writes). Returns the
/// pair, A's link, A's call ids and B's calls.
fn a_stops_reading_with_calls_in_flight(
    cb: Config,
) -> (Pair, usize, Vec<CallId>, Vec<InboundCall>) {
    let mut ca = test_config_v2();
    ca.version = cb.version;
    let mut p = Pair::with(ca, cb, true, true);
    let (l, ids, calls) = echo_calls_in_hand(&mut p, CALLS, 8);
    a_stops_reading(&mut p, l);
    (p, l, ids, calls)
}

/// The result B gives call `i`: a buffer of its own.
fn result(i: usize) -> Bytes {
    Bytes::from(vec![i as u8; RESULT])
}

/// B answers every call with [`result`], checking after each reply that
/// what waits is within `limit` (and part of what B holds). Returns B's
/// stats once all are answered.
fn answer_within(p: &mut Pair, calls: &[InboundCall], limit: usize) -> Stats {
    let now = p.node(Who::B).now;
    for (i, call) in calls.iter().enumerate() {
        assert!(
            p.node(Who::B)
                .ep
                .reply(now, call.id, Response::Ok(result(i)))
        );
        p.drive();
        let s = p.node(Who::B).ep.stats();
        assert!(
            s.inbound_bytes <= limit && s.reply_bytes_waiting <= limit,
            "after reply {i}: {} bytes of results wait ({} replies), {} held against the \
             budget {limit}",
            s.reply_bytes_waiting,
            s.replies_waiting,
            s.inbound_bytes,
        );
        assert!(
            s.reply_bytes_waiting <= s.inbound_bytes,
            "after reply {i}: {} bytes of results wait, not charged ({} held)",
            s.reply_bytes_waiting,
            s.inbound_bytes,
        );
    }
    p.node(Who::B).ep.stats()
}

/// A reads again: what B owes it comes.
fn a_reads_again(p: &mut Pair, l: usize) {
    p.net.capacity = usize::MAX;
    p.net.links[l].to[Who::A.index()].hold = false;
    p.drive();
}

/// Every call of `ids` resolved exactly once among `got`; returns how
/// many with their result, how many `overloaded`.
fn each_once(got: &[(CallId, Result<Bytes, CallError>)], ids: &[CallId]) -> (usize, usize) {
    assert_eq!(got.len(), ids.len(), "one result per call: {got:?}");
    let (mut ok, mut overloaded) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let mine: Vec<_> = got.iter().filter(|(g, _)| g == id).collect();
        assert_eq!(mine.len(), 1, "call {i} resolved {} times", mine.len());
        match &mine[0].1 {
            Ok(body) => {
                assert_eq!(body, &result(i), "call {i} got its own result");
                ok += 1;
            }
            Err(CallError::Overloaded) => overloaded += 1,
            other => panic!("call {i}: {other:?}"),
        }
    }
    (ok, overloaded)
}

#[test]
fn results_for_a_peer_that_does_not_read_wait_within_its_byte_budget() {
    for base in [test_config(), test_config_v2()] {
        let cb = b_config(base, BUDGET, 1 << 30);
        let (mut p, l, ids, calls) = a_stops_reading_with_calls_in_flight(cb);
        let s = answer_within(&mut p, &calls, BUDGET);
        println!(
            "{CALLS} results of {RESULT} bytes for a peer that reads nothing: {} wait ({} bytes, \
             budget {BUDGET}), {} refused",
            s.replies_waiting, s.reply_bytes_waiting, s.counters.replies_refused
        );
        let refused = s.counters.replies_refused as usize;
        assert!(
            refused > CALLS / 2,
            "the results past the budget are refused: {s:?}"
        );
        assert!(
            s.reply_bytes_waiting > BUDGET / 2,
            "the budget is used: {s:?}"
        );
        a_reads_again(&mut p, l);
        let got = call_results(&p.take_events(Who::A));
        let (ok, overloaded) = each_once(&got, &ids);
        assert_eq!((ok, overloaded), (CALLS - refused, refused));
        let s = p.node(Who::B).ep.stats();
        assert_eq!((s.inbound_bytes, s.reply_bytes_waiting), (0, 0), "{s:?}");
        let a = p.id(Who::A);
        assert!(p.node(Who::B).ep.is_connected(&a));
    }
}

/// The node-wide budget bounds waiting results too.
#[test]
fn waiting_results_count_against_the_node_budget() {
    let node = 8 * 1024;
    let cb = b_config(test_config_v2(), 1 << 30, node);
    let (mut p, l, ids, calls) = a_stops_reading_with_calls_in_flight(cb);
    let s = answer_within(&mut p, &calls, node);
    assert!(s.counters.replies_refused > 0, "{s:?}");
    a_reads_again(&mut p, l);
    let (_, overloaded) = each_once(&call_results(&p.take_events(Who::A)), &ids);
    assert_eq!(overloaded as u64, s.counters.replies_refused);
    assert_eq!(p.node(Who::B).ep.stats().inbound_bytes, 0);
}

/// A stopped reading, and B's results for it wait (version 2, the
/// per-connection budget [`BUDGET`]): the pair, A's link and call ids.
fn results_waiting() -> (Pair, usize, Vec<CallId>) {
    let cb = b_config(test_config_v2(), BUDGET, 1 << 30);
    let (mut p, l, ids, calls) = a_stops_reading_with_calls_in_flight(cb);
    let s = answer_within(&mut p, &calls, BUDGET);
    assert!(s.reply_bytes_waiting > 0, "{s:?}");
    (p, l, ids)
}

/// CANCELs of the calls whose results wait give their bytes back.
#[test]
fn cancels_give_the_waiting_bytes_back() {
    let (mut p, l, ids) = results_waiting();
    let now = p.node(Who::A).now;
    for id in &ids {
        p.node(Who::A).ep.cancel(now, *id);
    }
    p.drive();
    let s = p.node(Who::B).ep.stats();
    assert_eq!(
        (s.replies_waiting, s.reply_bytes_waiting, s.inbound_bytes),
        (0, 0, 0),
        "{s:?}"
    );
    a_reads_again(&mut p, l);
    let got = call_results(&p.take_events(Who::A));
    assert_eq!(got.len(), CALLS, "each call resolves once: {got:?}");
    assert!(
        got.iter()
            .all(|(_, r)| matches!(r, Err(CallError::Cancelled)))
    );
    assert_eq!(p.node(Who::B).ep.stats().inbound_bytes, 0);
}

/// The connection's end gives the waiting bytes back.
#[test]
fn the_close_gives_the_waiting_bytes_back() {
    let (mut p, l, ids) = results_waiting();
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    assert!(p.node(Who::B).ep.disconnect(now, &a));
    let s = p.node(Who::B).ep.stats();
    assert_eq!((s.reply_bytes_waiting, s.inbound_bytes), (0, 0), "{s:?}");
    a_reads_again(&mut p, l);
    let got = call_results(&p.take_events(Who::A));
    assert_eq!(got.len(), CALLS, "each call resolves once: {got:?}");
    for id in &ids {
        assert_eq!(got.iter().filter(|(g, _)| g == id).count(), 1);
    }
}
