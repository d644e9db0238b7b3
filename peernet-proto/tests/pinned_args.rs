//! What an inbound argument keeps alive is what the byte budgets charge
//! (`max_inbound_bytes_per_conn`, `max_inbound_bytes`).
//!
//! An argument over 16 KiB that was at least a quarter of its record was
//! a slice of it, and kept the whole buffer it came in alive while the
//! call was held, charged only its own length: a peer that put each call
//! in a record with three times as much of other envelopes (REPLYs to no
//! call, dropped at once) pinned four times the budget (review s46, the
//! README's "Memory in bytes"). Now an argument is a slice only of a
//! frame that has a buffer of its own (assembled from several reads) and
//! only when it is over half of it, and it is charged that whole frame;
//! one that came in place in a bigger buffer (the driver's read buffer,
//! whose size the core cannot see) is copied.

mod support;

use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::{Access, ConnId, Endpoint, Envelope, Event, Handle, Input, Instant};
use support::v2::*;
use support::{Pair, Who, test_config};

/// A CALL to `log` whose `args` are `args_len` bytes.
fn call_body(id: u64, args_len: usize) -> Vec<u8> {
    Envelope::Call {
        id,
        handle: Handle::from_static("log"),
        args: Bytes::from(vec![1u8; args_len]),
        timeout_ms: 0,
    }
    .to_body()
}

/// A REPLY to no call (dropped at once) with a body of `len` bytes.
fn reply_to_none(id: u64, len: usize) -> Vec<u8> {
    Envelope::Reply {
        id: u64::MAX - id,
        status: 0,
        body: Bytes::from(vec![2u8; len]),
    }
    .to_body()
}

/// A CALL (see [`call_body`]) and a REPLY to no call that makes the
/// record about `record_len` bytes.
fn padded_call(id: u64, args_len: usize, record_len: usize) -> Vec<u8> {
    let mut plain = call_body(id, args_len);
    let pad = record_len.saturating_sub(plain.len() + 16);
    plain.extend(reply_to_none(id, pad));
    plain
}

/// Hands `wire` to `conn` as one chunk with a buffer of exactly its size
/// (a driver's read: the core cannot tell how big the buffer is), or cut
/// in two at `cut`, so that the frame there is assembled; returns the
/// calls' arguments.
fn hand_in(
    b: &mut Endpoint,
    now: Instant,
    conn: ConnId,
    wire: &[u8],
    cut: Option<usize>,
) -> Vec<Bytes> {
    let parts: Vec<&[u8]> = match cut {
        Some(at) => vec![&wire[..at], &wire[at..]],
        None => vec![wire],
    };
    let mut calls = Vec::new();
    for part in parts {
        let mut chunk = BytesMut::with_capacity(part.len());
        chunk.put_slice(part);
        b.handle_input(now, Input::Received { conn, data: chunk });
        for event in drain(b, conn).events {
            if let Event::Call(call) = event {
                calls.push(call.args);
            }
        }
    }
    calls
}

/// Counts this process's live heap bytes: what dropping the arguments
/// frees is what they kept alive.
#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

/// One test at a time: the count is the whole process's.
static ALONE: Mutex<()> = Mutex::new(());

/// What dropping the arguments in `held` frees (not the list's own
/// room), less the few bytes of bookkeeping a shared buffer has
/// (`bytes`' reference count: [`OVERHEAD`] an argument at most).
fn kept_alive(mut held: Vec<Bytes>) -> usize {
    let (count, before) = (held.len(), peernet_testkit::heap::live());
    held.clear();
    let freed = (before - peernet_testkit::heap::live()).max(0) as usize;
    freed.saturating_sub(count * OVERHEAD)
}

/// A shared buffer's reference count and the like.
const OVERHEAD: usize = 64;

/// Checks that `b` charges at least what the arguments in `held` keep
/// alive (`case` says which case failed); returns what it charges.
fn charged_at_least_kept(b: &Endpoint, held: Vec<Bytes>, case: &str) -> usize {
    let charged = b.stats().inbound_bytes;
    let count = held.len();
    let kept = kept_alive(held);
    assert!(
        charged >= kept,
        "{case}: {kept} bytes kept alive by {count} arguments, {charged} charged"
    );
    charged
}

#[test]
fn a_held_argument_is_charged_what_it_keeps_alive() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for halves in [false, true] {
        let (mut b, conn, mut keys, now) = established();
        let mut held = Vec::new();
        for id in 1..=8u64 {
            // 17 KiB of arguments in a record of 64 KiB: over a quarter
            let record = seal(&mut keys.send, &padded_call(id, 17 * 1024, 64 * 1024));
            let cut = halves.then_some(record.len() / 2);
            let calls = hand_in(&mut b, now, conn, &record, cut);
            assert_eq!(calls.len(), 1, "the call is held (halves: {halves})");
            held.extend(calls);
        }
        charged_at_least_kept(&b, held, &format!("halves: {halves}"));
    }
}

/// A large argument alone in its record (bulk calls), assembled from two
/// reads, is charged about its size: over half of its frame, it is
/// charged the frame, no more.
#[test]
fn a_large_argument_alone_in_its_record_is_charged_about_its_size() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut b, conn, mut keys, now) = established();
    let record = seal(&mut keys.send, &padded_call(1, 600 * 1024, 0));
    let calls = hand_in(&mut b, now, conn, &record, Some(record.len() / 2));
    assert_eq!(calls.len(), 1);
    let charged = charged_at_least_kept(&b, calls, "bulk");
    assert!(
        (600 * 1024..600 * 1024 + 64).contains(&charged),
        "{charged} charged for 600 KiB"
    );
}

/// An argument over half of a record assembled from two reads, but well
/// short of all of it, is a slice that keeps the whole record alive: it
/// is charged the record (`connection/pin.rs`), not its own length.
#[test]
fn an_argument_over_half_of_its_record_is_charged_the_record() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut b, conn, mut keys, now) = established();
    let record = seal(&mut keys.send, &padded_call(1, 300 * 1024, 550 * 1024));
    let calls = hand_in(&mut b, now, conn, &record, Some(1000));
    assert_eq!(calls.len(), 1);
    let charged = charged_at_least_kept(&b, calls, "over half");
    assert!(
        charged >= 550 * 1024,
        "{charged} charged for a 550 KiB record"
    );
}

/// Version 1 the same: a frame that came in place in a bigger chunk
/// (the rest of a read) is not sliced, one assembled from two reads is,
/// and charged whole.
#[test]
fn a_held_v1_argument_is_charged_what_it_keeps_alive() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for halves in [false, true] {
        let mut p = Pair::with(test_config(), test_config(), true, true);
        p.dial(Who::A);
        p.drive();
        p.node(Who::B).ep.expose("log", Access::Anyone).unwrap();
        let a = p.id(Who::A);
        let now = p.node(Who::B).now;
        let b = &mut p.node(Who::B).ep;
        let conn = b.connection(&a).expect("connected");
        let mut held = Vec::new();
        for id in 1..=8u64 {
            // a CALL of 17 KiB, and 47 KiB more of a REPLY to no call
            let mut wire = frame(&call_body(id, 17 * 1024));
            wire.extend(frame(&reply_to_none(id, 47 * 1024)));
            // (cut inside the CALL's frame: it is assembled)
            let calls = hand_in(b, now, conn, &wire, halves.then_some(1000));
            assert_eq!(calls.len(), 1, "the call is held (halves: {halves})");
            held.extend(calls);
        }
        charged_at_least_kept(b, held, &format!("halves: {halves}"));
    }
}

/// A SEND's arguments are never a slice: the driver gives back the
/// length of its arguments when its handler is done
/// (`Endpoint::send_done`), so that must be all they keep alive, even
/// when they are most of a record of their own.
#[test]
fn a_sends_arguments_keep_alive_their_own_bytes() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut b, conn, mut keys, now) = established();
    let before = b.stats().inbound_bytes;
    // (over half of its record, with a REPLY to no call beside it)
    let mut plain = send_body(&[3u8; 300 * 1024]);
    plain.extend(reply_to_none(1, 250 * 1024));
    let record = seal(&mut keys.send, &plain);
    let mut sends = Vec::new();
    for half in [&record[..1000], &record[1000..]] {
        let data = BytesMut::from(half);
        b.handle_input(now, Input::Received { conn, data });
        for e in drain(&mut b, conn).events {
            if let Event::Send(send) = e {
                sends.push(send.args);
            }
        }
    }
    let len = sends.iter().map(Bytes::len).sum::<usize>();
    assert_eq!(len, 300 * 1024);
    assert_eq!(b.stats().inbound_bytes - before, len, "charged");
    let kept = kept_alive(sends);
    assert!(kept <= len, "{kept} bytes kept alive by {len} of arguments");
    b.send_done(conn, len);
    assert_eq!(b.stats().inbound_bytes, before, "all given back");
}

/// A small argument is a copy, into the buffer its record's small
/// payloads share (`envelope/arena.rs`): a 1-byte argument followed in
/// its record by 8 KiB of a REPLY to no call used to get a buffer of
/// 4 KiB to itself and keep it all alive while its call was held,
/// charged 1 byte: 64 such calls pinned 256 KiB against a charge of 64
/// bytes, 4,096 times the budget. Now a payload shares only a buffer of
/// at most 8 times its length.
#[test]
fn a_small_argument_keeps_alive_about_its_own_bytes() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut b, conn, mut keys, now) = established();
    let mut held = Vec::new();
    for id in 1..=64u64 {
        let record = seal(&mut keys.send, &padded_call(id, 1, 8 * 1024));
        let calls = hand_in(&mut b, now, conn, &record, None);
        assert_eq!(calls.len(), 1, "the call is held");
        held.extend(calls);
    }
    charged_at_least_kept(&b, held, "1-byte arguments");
}

/// What the core keeps of the `calls` CALLs of `records` records, each a
/// CALL of `handle` with no arguments, once their events are dropped
/// (as the driver drops a call's handle when its handler starts).
fn kept_by_held_calls(handle: &str, records: u64, calls: u64) -> isize {
    let (mut b, conn, mut keys, now) = established();
    b.expose(handle, Access::Anyone).unwrap();
    let before = peernet_testkit::heap::live();
    let mut held = 0;
    for r in 0..records {
        let mut plain = Vec::new();
        for i in 1..=calls {
            plain.extend(
                Envelope::Call {
                    id: r * calls + i,
                    handle: Handle::new(handle).unwrap(),
                    args: Bytes::new(),
                    timeout_ms: 0,
                }
                .to_body(),
            );
        }
        let record = seal(&mut keys.send, &plain);
        held += hand_in(&mut b, now, conn, &record, None).len();
    }
    assert_eq!(held as u64, records * calls, "every call is held");
    let kept = peernet_testkit::heap::live() - before;
    drop(b);
    kept
}

/// A handle name of 24 to 255 bytes is a heap allocation (shorter ones
/// are inline, `envelope/handle.rs`), made for each CALL and not charged
/// to the byte budgets. It lives in the call's event only: the core
/// keeps nothing of it for a call it holds, so 512 held calls of a
/// 255-byte name keep what 512 held calls of a 3-byte name keep (their
/// entries in the table of calls in flight). What holds the names is
/// the queue of events, at most `OUTPUTS_BEFORE_PAUSE` of them before
/// decoding pauses, and the driver, which drops the name when the
/// handler starts (`peernet-driver`'s `handlers.rs`).
#[test]
fn a_held_call_keeps_nothing_of_a_long_handle_name() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let long = "h".repeat(255);
    let short = kept_by_held_calls("log", 8, 64);
    let long = kept_by_held_calls(&long, 8, 64);
    assert!(
        long - short < 1024,
        "512 held calls: {long} bytes kept with a 255-byte name, {short} with a 3-byte one"
    );
}
