//! A connection's last write (`Output::Close`'s `last`) at a close the
//! application did not ask for (here an unpair) stays within
//! [`LAST_COPIED`] bytes (`connection/closing.rs`): what is still queued
//! goes before the farewell only if both fit; otherwise it is dropped,
//! unsent, and the farewell goes alone. A driver lets such a last write
//! linger whatever else closes, so every peer that reads gets its
//! GOODBYE. It used to carry up to a send buffer and a frame, which the
//! driver's node-wide linger budget dropped whole, GOODBYE included, for
//! all but a few of the peers behind (review s40, r4). A `disconnect` or
//! `close_all`, which the application asks for, sends the whole queue
//! first: the SENDs it gave before the close arrive.

mod support;

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, CloseReason, Config, Event, GoodbyeCode, LAST_COPIED, ReplyStatus,
};
use peernet_testkit::call_results;
use support::{
    Pair, Who, a_stops_reading, answer_all, echo_calls_in_hand, test_config, test_config_v2,
};

const CALLS: usize = 40;
const ARGS: usize = 3000;

/// A and B connected with `config` and 16 KiB frames, B with 16 KiB send
/// buffers;
/// B serves `echo`. A made [`CALLS`] calls, then stopped
/// reading; B answered them all: its driver took one batch (which waits
/// in the link, as in a full socket), its queue is full again and the
/// other replies wait.
fn behind(mut config: Config) -> (Pair, Vec<CallId>) {
    config.max_frame_len = 16 << 10;
    let mut cb = config.clone();
    cb.send_buffer = 16 << 10;
    cb.max_send_buffer = 16 << 10;
    let mut p = Pair::with(config, cb, true, true);
    let (l, ids, calls) = echo_calls_in_hand(&mut p, CALLS, ARGS);
    // A reads nothing from now on: B's driver takes one batch at most
    a_stops_reading(&mut p, l);
    answer_all(&mut p, &calls);
    p.drive();
    (p, ids)
}

/// A reads what it was sent, to the end.
fn a_reads_to_the_end(p: &mut Pair) -> Vec<Event> {
    for link in &mut p.net.links {
        link.to[Who::A.index()].hold = false;
    }
    p.net.capacity = usize::MAX;
    p.drive();
    p.take_events(Who::A)
}

fn goodbye(code: GoodbyeCode) -> impl Fn(&CloseReason) -> bool {
    move |reason| matches!(reason, CloseReason::Goodbye { code: c, .. } if *c == code)
}

/// An unpair while the peer is behind: the last write is the GOODBYE
/// alone, sealed (version 2) under the nonce that follows the batch
/// already taken, so the peer opens it; the results in the batch arrive,
/// the other calls fail with the GOODBYE, each once, and the callee
/// counts the replies dropped from its queue as ended by the close, not
/// answered.
#[test]
fn a_close_behind_a_full_queue_sends_the_goodbye_alone() {
    for config in [test_config(), test_config_v2()] {
        let version = config.version;
        let (mut p, ids) = behind(config);
        let s = p.node(Who::B).ep.stats();
        assert!(
            s.queued_bytes > LAST_COPIED && s.replies_waiting > 0,
            "{s:?}"
        );
        let (a, now) = (p.id(Who::A), p.node(Who::B).now);
        let out_before = p.node(Who::B).ep.counters().bytes_out;
        assert!(p.node(Who::B).ep.unpair(now, &a));
        // (what the close hands over is counted out with it)
        let last = p.node(Who::B).ep.counters().bytes_out - out_before;
        println!(
            "{version:?}: {} bytes queued at the close, last write {last} bytes",
            s.queued_bytes
        );
        assert!(
            last <= LAST_COPIED as u64,
            "{version:?}: a last write of {last} bytes (over {LAST_COPIED})"
        );
        let events = a_reads_to_the_end(&mut p);
        let got = call_results(&events);
        let got_ids: Vec<CallId> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(got_ids, ids, "{version:?}: every call resolves once");
        let ok = got.iter().take_while(|(_, r)| r.is_ok()).count();
        assert!(ok > 0, "{version:?}: the batch taken went out");
        assert!(
            got[ok..].iter().all(|(_, r)| matches!(
                r,
                Err(CallError::ConnectionClosed(reason)) if goodbye(GoodbyeCode::Revoked)(reason)
            )),
            "{version:?}: the rest fail with the GOODBYE: {:?}",
            &got[ok..]
        );
        let reason = events.iter().find_map(|e| match e {
            Event::Disconnected { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        assert!(
            reason.as_ref().is_some_and(goodbye(GoodbyeCode::Revoked)),
            "{version:?}: A's connection ended with {reason:?}"
        );
        let c = p.node(Who::B).ep.counters().calls_in;
        assert_eq!(
            (c.by_status.get(ReplyStatus::Ok), c.connection_closed),
            (ok as u64, (CALLS - ok) as u64),
            "{version:?}: B counts as answered only the replies that left"
        );
    }
}

/// What is queued goes before the GOODBYE when both fit in a short last
/// write (a SEND queued just before an unpair); a longer queue is
/// dropped and the GOODBYE goes alone. A `disconnect` or `close_all`
/// sends the longer queue too: the application asked for the close after
/// the SEND.
#[test]
fn a_short_queue_goes_before_the_goodbye_and_a_long_one_only_at_a_disconnect() {
    #[derive(Debug, Clone, Copy)]
    enum By {
        Unpair,
        Disconnect,
        CloseAll,
    }
    for config in [test_config(), test_config_v2()] {
        let version = config.version;
        for (close, len, arrives, code) in [
            (By::Unpair, 1000, true, GoodbyeCode::Revoked),
            (By::Unpair, LAST_COPIED, false, GoodbyeCode::Revoked),
            (By::Disconnect, 4 * LAST_COPIED, true, GoodbyeCode::Normal),
            (By::CloseAll, 4 * LAST_COPIED, true, GoodbyeCode::Normal),
        ] {
            let mut p = Pair::with(config.clone(), config.clone(), true, true);
            p.node(Who::A).ep.expose("note", Access::Anyone).unwrap();
            p.dial(Who::A);
            p.drive();
            p.take_events(Who::A);
            let (a, now) = (p.id(Who::A), p.node(Who::B).now);
            let note = vec![5u8; len];
            p.node(Who::B).ep.send(now, &a, "note", &note).unwrap();
            let b = &mut p.node(Who::B).ep;
            match close {
                By::Unpair => assert!(b.unpair(now, &a)),
                By::Disconnect => assert!(b.disconnect(now, &a)),
                By::CloseAll => b.close_all(now),
            }
            let events = a_reads_to_the_end(&mut p);
            let sent: Vec<Bytes> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Send(send) => Some(send.args.clone()),
                    _ => None,
                })
                .collect();
            println!(
                "{version:?}, {close:?}: a SEND of {len} bytes queued at the close: {} arrived",
                sent.len()
            );
            assert_eq!(
                sent.len(),
                usize::from(arrives),
                "{version:?}, {close:?}, {len} bytes"
            );
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::Disconnected { reason, .. } if goodbye(code)(reason)
                )),
                "{version:?}, {close:?}: no GOODBYE: {events:?}"
            );
        }
    }
}

/// What a close drops from the queue never left, so it is not counted
/// out: after an unpair that drops a long queue, the callee's counters of
/// bytes and records out match what the caller read (version 1 counted
/// the envelope frames dropped as sent; version 2 gives back the records
/// sealed and dropped).
#[test]
fn what_a_close_drops_is_not_counted_sent() {
    for config in [test_config(), test_config_v2()] {
        let version = config.version;
        let (mut p, _) = behind(config);
        let (a, now) = (p.id(Who::A), p.node(Who::B).now);
        assert!(p.node(Who::B).ep.unpair(now, &a));
        a_reads_to_the_end(&mut p);
        let (ca, cb) = (p.node(Who::A).ep.counters(), p.node(Who::B).ep.counters());
        println!(
            "{version:?}: B out {} bytes, {} records; A in {} bytes, {} records",
            cb.bytes_out, cb.records_out, ca.bytes_in, ca.records_in
        );
        assert_eq!(cb.bytes_out, ca.bytes_in, "{version:?}: bytes");
        assert_eq!(cb.records_out, ca.records_in, "{version:?}: records");
    }
}

/// A `disconnect` or `close_all` while the peer is behind: the whole
/// queue goes before the GOODBYE, after the batch the driver already
/// took (version 2: sealed under the nonces that follow it, so the peer
/// opens every record), but the replies still waiting for room are
/// dropped: their calls fail with the GOODBYE, each once, and count as
/// ended by the close on the callee's side. (What the application gave
/// before the close goes only as far as it was queued.)
#[test]
fn a_disconnect_behind_sends_the_queue_but_not_the_replies_waiting() {
    for config in [test_config(), test_config_v2()] {
        for close_all in [false, true] {
            let version = config.version;
            let (mut p, ids) = behind(config.clone());
            let s = p.node(Who::B).ep.stats();
            let (queued, waiting) = (s.queued_bytes, s.replies_waiting as u64);
            assert!(queued > LAST_COPIED && waiting > 0, "{s:?}");
            let (a, now) = (p.id(Who::A), p.node(Who::B).now);
            let out_before = p.node(Who::B).ep.counters().bytes_out;
            if close_all {
                p.node(Who::B).ep.close_all(now);
            } else {
                assert!(p.node(Who::B).ep.disconnect(now, &a));
            }
            let last = p.node(Who::B).ep.counters().bytes_out - out_before;
            assert!(last as usize > queued, "{version:?}: the queue went");
            let events = a_reads_to_the_end(&mut p);
            let got = call_results(&events);
            let got_ids: Vec<CallId> = got.iter().map(|(id, _)| *id).collect();
            assert_eq!(got_ids, ids, "{version:?}: every call resolves once");
            let ok = got.iter().take_while(|(_, r)| r.is_ok()).count() as u64;
            let closed = got[ok as usize..]
                .iter()
                .filter(|(_, r)| {
                    matches!(r, Err(CallError::ConnectionClosed(reason))
                        if goodbye(GoodbyeCode::Normal)(reason))
                })
                .count() as u64;
            println!(
                "{version:?}, close_all {close_all}: {ok} results, {closed} closed, {waiting} waited"
            );
            assert_eq!(
                (ok, closed),
                (CALLS as u64 - waiting, waiting),
                "{version:?}: the queued replies arrive, the waiting ones fail with the GOODBYE"
            );
            let c = p.node(Who::B).ep.counters().calls_in;
            assert_eq!(
                (c.by_status.get(ReplyStatus::Ok), c.connection_closed),
                (ok, closed),
                "{version:?}: B counts as answered only the replies that left"
            );
            let (ca, cb) = (p.node(Who::A).ep.counters(), p.node(Who::B).ep.counters());
            assert_eq!(cb.records_out, ca.records_in, "{version:?}: records");
        }
    }
}
