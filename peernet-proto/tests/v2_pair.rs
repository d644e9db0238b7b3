//! Version 2 (PROTOCOL.md part B) through the endpoint: the responder is
//! established only by the initiator's first record, a replayed INIT never
//! becomes a connection, a record that does not decrypt ends its
//! connection with nothing more sent, and calls, sends, pings, goodbye and
//! supersede work over records.

mod support;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::testkit::noise::reject_v2;
use peernet_proto::{
    Access, CallError, CloseReason, Config, ConnectError, Envelope, Event, GoodbyeCode,
    HandshakeError, Input, Instant, RecordError, RejectCode, Response, Side,
};
use support::v2::*;
use support::{Pair, Who, identity, test_config, test_config_v2};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn the_first_record_establishes_the_responder() {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let (conn, mut keys, d) = handshake(&mut b, now, 7);
    assert!(!connected(&d.events, conn), "not at RESP");
    assert!(!b.is_connected(&identity(1).peer_id()));
    assert!(b.is_handshaking(conn), "pending until the first record");
    assert_eq!(b.stats().inbound_handshakes, 1, "RESP holds a slot");
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &[]));
    assert!(connected(&d.events, conn), "{:?}", d.events);
    assert!(!b.is_handshaking(conn));
    assert_eq!(b.stats().inbound_handshakes, 0);
    assert!(d.sent.is_empty(), "an empty record asks for nothing");
}

#[test]
fn a_pending_responder_times_out_without_its_first_record() {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let (conn, _keys, _) = handshake(&mut b, now, 7);
    b.handle_timeout(now + 10 * SEC);
    let d = drain(&mut b, conn);
    assert!(d.closed && d.sent.is_empty());
    assert!(failed_with(&d.events, HandshakeError::Timeout));
    assert_eq!(b.stats().inbound_handshakes, 0);
}

/// The real connection, then the same INIT replayed twice: within the
/// window (the cache closes it before any X25519 work, nothing sent) and
/// after it (RESP, then nothing, since the replayer cannot make the first
/// record). `Err` says how the replay got in.
fn replay_scenario(config: Config) -> Result<(), String> {
    let mut now = Instant::from_millis(1_000);
    let mut b = responder(config);
    let peer = identity(1).peer_id();
    let (real, mut keys, _) = handshake(&mut b, now, 7);
    feed(&mut b, now, real, &seal(&mut keys.send, &[]));
    if b.connection(&peer) != Some(real) {
        return Err("the real connection did not establish".into());
    }
    let (_, replayed) = init(7);
    let conn = b.accept(now).unwrap();
    let d = feed(&mut b, now, conn, &replayed);
    if !(d.closed && d.sent.is_empty()) {
        return Err("a replay within the window was answered".into());
    }
    if !d.events.iter().any(|e| {
        matches!(
            e,
            Event::HandshakeFailed {
                error: HandshakeError::Replayed,
                ..
            }
        )
    }) {
        return Err(format!("not reported as a replay: {:?}", d.events));
    }
    // Past the window the cache has forgotten it: RESP goes out, and the
    // connection waits for a first record that never comes.
    now = now + 11 * SEC;
    b.handle_timeout(now);
    drain(&mut b, real);
    let conn = b.accept(now).unwrap();
    let mut d = feed(&mut b, now, conn, &replayed);
    if d.sent.len() != 4 + 54 {
        return Err("no RESP past the window".into());
    }
    now = now + 10 * SEC;
    b.handle_timeout(now);
    d.events.extend(drain(&mut b, conn).events);
    if connected(&d.events, conn) || b.connection(&peer) != Some(real) || !b.is_open(real) {
        return Err(format!("the replay became a connection: {:?}", d.events));
    }
    Ok(())
}

#[test]
fn a_replayed_init_never_creates_or_supersedes_a_connection() {
    replay_scenario(test_config_v2()).unwrap();
}

/// The fault `EstablishAtResp` (the responder established at RESP) is
/// what the replay test exists to catch.
#[cfg(feature = "fault-injection")]
#[test]
fn the_replay_test_catches_establishing_at_resp() {
    let mut config = test_config_v2();
    config.fault = Some(peernet_proto::testkit::Fault::EstablishAtResp);
    let err = replay_scenario(config).unwrap_err();
    assert!(err.contains("became a connection"), "{err}");
}

/// The replay cache's known limit (README, *Replay*): it holds
/// `2 × max_handshakes` keys (at least 16), so a trusted peer that sends
/// that many fresh INITs within `handshake_timeout` flushes it, and an
/// INIT recorded before is answered again. What the replay gets: RESP,
/// then nothing: its recorded first record does not open under the keys
/// of the new RESP, which ends it at once, with nothing sent; the real
/// connection stays, never superseded. `Err` says how the replay got in.
fn flushed_replay_scenario(config: Config) -> Result<(), String> {
    let now = Instant::from_millis(1_000);
    let mut b = responder(config);
    let peer = identity(1).peer_id();
    let (real, mut keys, _) = handshake(&mut b, now, 7);
    let first_record = seal(&mut keys.send, &[]);
    feed(&mut b, now, real, &first_record);
    if b.connection(&peer) != Some(real) {
        return Err("the real connection did not establish".into());
    }
    // The flood: 16 INITs of the trusted peer itself, each answered (so
    // remembered) and dropped at once, all within the window.
    for seed in 100..116 {
        let (conn, _, _) = handshake(&mut b, now, seed);
        b.handle_input(now, Input::Closed { conn });
        drain(&mut b, conn);
    }
    // The INIT of the real connection, replayed within its window: the
    // flushed cache no longer knows it.
    let (_, replayed) = init(7);
    let conn = b.accept(now).unwrap();
    let mut d = feed(&mut b, now, conn, &replayed);
    if d.sent.len() != 4 + 54 {
        return Err("the flood did not flush the cache: no RESP to the replay".into());
    }
    // The replayer has only what it recorded: the real first record,
    // which does not open under the keys of this RESP.
    let later = feed(&mut b, now, conn, &first_record);
    d.events.extend(later.events);
    let superseded = d
        .events
        .iter()
        .any(|e| matches!(e, Event::Disconnected { conn: c, .. } if *c == real));
    if connected(&d.events, conn) || superseded {
        return Err(format!("the replay became a connection: {:?}", d.events));
    }
    if !later.closed || !later.sent.is_empty() {
        return Err(format!(
            "the recorded first record did not end it: {:?}",
            d.events
        ));
    }
    if b.connection(&peer) != Some(real) || !b.is_open(real) || b.is_open(conn) {
        return Err(format!(
            "the real connection did not stay alone: {:?}",
            d.events
        ));
    }
    Ok(())
}

#[test]
fn a_replay_after_the_cache_is_flushed_never_connects() {
    let mut config = test_config_v2();
    // (the cache's floor, 16 keys: what the flood sends)
    config.max_handshakes = 8;
    flushed_replay_scenario(config).unwrap();
}

/// With the fault `EstablishAtResp` the same flood and replay supersede
/// the real connection: the test above is what catches it.
#[cfg(feature = "fault-injection")]
#[test]
fn the_flushed_replay_test_catches_establishing_at_resp() {
    let mut config = test_config_v2();
    config.max_handshakes = 8;
    config.fault = Some(peernet_proto::testkit::Fault::EstablishAtResp);
    let err = flushed_replay_scenario(config).unwrap_err();
    assert!(err.contains("became a connection"), "{err}");
}

/// A connection established by hand with a SEND handle exposed, and one
/// record already delivered.
fn assert_record_failed(d: &Drained) {
    assert!(d.closed, "closed at once");
    assert!(d.sent.is_empty(), "nothing more sent");
    assert!(
        d.events.iter().any(|e| matches!(
            e,
            Event::Disconnected {
                reason: CloseReason::RecordFailed(RecordError::DecryptFailed),
                ..
            }
        )),
        "{:?}",
        d.events
    );
    assert!(
        !d.events.iter().any(|e| matches!(e, Event::Send(_))),
        "nothing from a bad record is handled"
    );
}

#[test]
fn a_tampered_record_ends_the_connection() {
    let (mut b, conn, mut keys, now) = established();
    let mut record = seal(&mut keys.send, &send_body(b"x"));
    record[6] ^= 1;
    assert_record_failed(&feed(&mut b, now, conn, &record));
}

#[test]
fn a_replayed_record_ends_the_connection() {
    let (mut b, conn, mut keys, now) = established();
    let record = seal(&mut keys.send, &send_body(b"x"));
    let d = feed(&mut b, now, conn, &record);
    assert!(!d.closed);
    assert_record_failed(&feed(&mut b, now, conn, &record));
}

#[test]
fn a_reordered_record_ends_the_connection() {
    let (mut b, conn, mut keys, now) = established();
    let _first = seal(&mut keys.send, &send_body(b"x"));
    let second = seal(&mut keys.send, &send_body(b"y"));
    assert_record_failed(&feed(&mut b, now, conn, &second));
}

#[test]
fn a_truncated_or_short_record_ends_the_connection() {
    let (mut b, conn, mut keys, now) = established();
    let record = seal(&mut keys.send, &send_body(b"x"));
    let cut = frame(&record[4..record.len() - 1]);
    assert_record_failed(&feed(&mut b, now, conn, &cut));
    let (mut b, conn, _, now) = established();
    assert_record_failed(&feed(&mut b, now, conn, &frame(&[0; 15])));
}

#[test]
fn an_envelope_cut_by_the_record_end_is_a_protocol_error() {
    let (mut b, conn, mut keys, now) = established();
    let mut plain = send_body(b"whole");
    let next = send_body(b"cut");
    plain.extend_from_slice(&next[..next.len() - 2]);
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &plain));
    assert!(d.closed);
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e, Event::Send(s) if &s.args[..] == b"whole")),
        "the whole envelope before the cut is handled"
    );
    // The GOODBYE travels in a record.
    let records = open_all(&mut keys.recv, &d.sent);
    assert_eq!(records.len(), 1);
    match Envelope::decode(&Bytes::from(records[0].clone())).unwrap() {
        Envelope::Goodbye { code, .. } => assert_eq!(code, GoodbyeCode::ProtocolError.code()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_envelopes_go_out_in_one_record() {
    let (mut b, conn, mut keys, now) = established();
    let peer = identity(1).peer_id();
    for i in 0..10u8 {
        b.send(now, &peer, "log", &[i; 100]).unwrap();
    }
    let d = drain(&mut b, conn);
    let records = open_all(&mut keys.recv, &d.sent);
    assert_eq!(records.len(), 1, "one AEAD for the whole write");
    assert_eq!(records[0].len(), 10 * send_body(&[0; 100]).len());
}

#[test]
fn envelopes_never_span_records_and_the_limit_is_the_record_plaintext() {
    let mut config = test_config_v2();
    config.max_frame_len = 1024;
    let now = Instant::from_millis(1_000);
    let mut b = responder(config);
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    feed(&mut b, now, conn, &seal(&mut keys.send, &[]));
    let peer = identity(1).peer_id();
    let one = send_body(&[0; 300]).len();
    for _ in 0..5 {
        b.send(now, &peer, "log", &[0; 300]).unwrap();
    }
    let d = drain(&mut b, conn);
    let records = open_all(&mut keys.recv, &d.sent);
    assert_eq!(
        records.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3 * one, 2 * one]
    );
    // An envelope over max_frame_len - 16 fails locally.
    let fits = 1024 - 16 - (send_body(&[]).len() + 2);
    assert!(b.send(now, &peer, "log", &vec![0; fits]).is_ok());
    assert_eq!(
        b.send(now, &peer, "log", &vec![0; fits + 1]),
        Err(peernet_proto::SendError::MessageTooLarge)
    );
}

/// A reply is checked against the record's plaintext (`max_frame_len -
/// 16`), not the frame: one byte over it goes back as `result_too_large`,
/// one that just fits arrives whole.
#[test]
fn a_reply_over_the_record_limit_is_answered_too_large() {
    let mut config = test_config_v2();
    config.max_frame_len = 1024;
    let mut p = Pair::with(config.clone(), config, true, true);
    p.dial(Who::A);
    p.drive();
    p.b.ep.expose("echo", Access::Anyone).unwrap();
    p.take_events(Who::B);
    let (now, bid) = (p.now, p.id(Who::B));
    let mut calls = Vec::new();
    let mut fits = 0;
    for over in [0, 1] {
        let id = p.a.ep.call(now, &bid, "echo", b"", None).unwrap();
        p.drive();
        let call = p
            .take_events(Who::B)
            .into_iter()
            .find_map(|e| match e {
                Event::Call(c) => Some(c),
                _ => None,
            })
            .expect("call arrives");
        // what the REPLY's CBOR adds to a body of about this size
        let probe = Envelope::Reply {
            id: call.id.request_id(),
            status: 0,
            body: Bytes::from(vec![0; 1000]),
        };
        fits = 1024 - 16 - (probe.to_body().len() - 1000);
        let body = vec![7u8; fits + over];
        assert!(p.b.ep.reply(now, call.id, Response::Ok(body.into())));
        calls.push(id);
    }
    p.drive();
    let mut results: Vec<_> = p
        .take_events(Who::A)
        .into_iter()
        .filter_map(|e| match e {
            Event::CallResult { id, result } => Some((id, result)),
            _ => None,
        })
        .collect();
    results.sort_by_key(|(id, _)| *id);
    assert_eq!(
        results,
        vec![
            (calls[0], Ok(Bytes::from(vec![7u8; fits]))),
            (calls[1], Err(CallError::ResultTooLarge)),
        ]
    );
    assert!(p.a.ep.is_connected(&bid), "the connection goes on");
}

#[test]
fn calls_sends_pings_and_goodbye_over_v2() {
    let mut p = Pair::with(test_config_v2(), test_config_v2(), true, true);
    p.dial(Who::A);
    p.drive();
    assert!(p.a.ep.is_connected(&p.id(Who::B)) && p.b.ep.is_connected(&p.id(Who::A)));
    p.a.ep.expose("echo", Access::Anyone).unwrap();
    p.b.ep.expose("echo", Access::Anyone).unwrap();
    p.take_events(Who::A);
    p.take_events(Who::B);
    let (now, bid, aid) = (p.now, p.id(Who::B), p.id(Who::A));
    let id = p.a.ep.call(now, &bid, "echo", b"hi", None).unwrap();
    p.a.ep.send(now, &bid, "echo", b"fire").unwrap();
    p.drive();
    let events = p.take_events(Who::B);
    let call = events
        .iter()
        .find_map(|e| match e {
            Event::Call(c) => Some(c.clone()),
            _ => None,
        })
        .expect("call arrives");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Send(s) if &s.args[..] == b"fire"))
    );
    assert!(p.b.ep.reply(now, call.id, Response::Ok(call.args.clone())));
    p.drive();
    let results: Vec<_> = p
        .take_events(Who::A)
        .into_iter()
        .filter_map(|e| match e {
            Event::CallResult { id: i, result } if i == id => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec![Ok(Bytes::from_static(b"hi"))]);
    // Pings keep a quiet connection alive well past idle_timeout.
    p.advance(120 * SEC);
    assert!(p.a.ep.is_connected(&bid) && p.b.ep.is_connected(&aid));
    // A call in flight when B says goodbye fails with it.
    let now = p.now;
    let pending = p.a.ep.call(now, &bid, "echo", b"late", None).unwrap();
    p.drive();
    assert!(p.b.ep.disconnect(now, &aid));
    p.drive();
    let a = p.take_events(Who::A);
    assert!(
        a.iter().any(|e| matches!(
            e,
            Event::Disconnected {
                reason: CloseReason::Goodbye {
                    by: Side::Remote,
                    code: GoodbyeCode::Normal,
                    ..
                },
                ..
            }
        )),
        "{a:?}"
    );
    assert!(a.iter().any(|e| matches!(
        e,
        Event::CallResult { id, result: Err(CallError::ConnectionClosed(_)) } if *id == pending
    )));
}

#[test]
fn a_redial_supersedes_over_v2() {
    let mut p = Pair::with(test_config_v2(), test_config_v2(), true, true);
    p.dial(Who::A);
    p.drive();
    let bid = p.id(Who::B);
    let old = p.a.ep.connection(&bid).unwrap();
    p.take_events(Who::A);
    p.advance(20 * SEC);
    p.dial(Who::A);
    p.drive();
    let new = p.a.ep.connection(&bid).expect("connected");
    assert_ne!(new, old);
    assert!(!p.a.ep.is_open(old));
    let a = p.take_events(Who::A);
    assert!(a.iter().any(|e| matches!(
        e,
        Event::Disconnected { conn, reason: CloseReason::Goodbye { code: GoodbyeCode::Superseded, .. }, .. } if *conn == old
    )), "{a:?}");
}

#[test]
fn a_v2_node_answers_a_v1_hello_with_unsupported_version() {
    let mut p = Pair::with(test_config(), test_config_v2(), true, true);
    p.dial(Who::A);
    p.drive();
    let a = p.take_events(Who::A);
    assert!(
        failed_with(&a, HandshakeError::Rejected(RejectCode::UnsupportedVersion)),
        "{a:?}"
    );
}

#[test]
fn a_v2_responder_rejects_an_init_for_another_peer_as_unexpected_peer() {
    // A dials identity 3 but reaches B: mac1 is keyed for 3.
    let mut p = Pair::with(test_config_v2(), test_config_v2(), true, true);
    let c = identity(3).peer_id();
    p.a.ep.pair(c, None);
    p.dial_expecting(Who::A, Some(c));
    p.drive();
    let a = p.take_events(Who::A);
    assert!(
        failed_with(&a, HandshakeError::Rejected(RejectCode::UnexpectedPeer)),
        "{a:?}"
    );
}

#[test]
fn a_v2_dial_needs_the_peer_id() {
    let mut b = responder(test_config_v2());
    assert_eq!(
        b.connect(Instant::ZERO, None),
        Err(ConnectError::PeerIdRequired)
    );
    assert_eq!(b.stats().connections, 0);
}

/// Receive copies as little as it may: a record is decrypted where it
/// lies, and a large argument that is most of a record with a buffer of
/// its own (assembled from two chunks) is a slice of that very buffer
/// (a copy anywhere between input and event would give it a buffer of
/// its own). One that came in place in a chunk is copied out of it: the
/// chunk may be split off a larger read buffer, as the driver's reader
/// does, and a slice would keep all of that alive, charged only its own
/// size (`pinned_args.rs`).
#[test]
fn records_are_opened_where_they_lie() {
    let (mut b, conn, mut keys, now) = established();
    for split_off_a_buffer in [false, true] {
        let args = vec![0xa5; 40 * 1024];
        let record = seal(&mut keys.send, &send_body(&args));
        let mut read_buf = BytesMut::with_capacity(64 * 1024);
        read_buf.put_slice(&record);
        let chunk = if split_off_a_buffer {
            read_buf.put_bytes(0, 1024);
            read_buf.split_to(record.len())
        } else {
            read_buf
        };
        let span = chunk.as_ptr() as usize..chunk.as_ptr() as usize + chunk.len();
        b.handle_input(now, Input::Received { conn, data: chunk });
        let d = drain(&mut b, conn);
        let got = d.events.iter().find_map(|e| match e {
            Event::Send(s) => Some(s.args.clone()),
            _ => None,
        });
        let got = got.expect("the SEND is delivered");
        assert_eq!(got[..], args[..]);
        assert!(
            !span.contains(&(got.as_ptr() as usize)),
            "the arguments pin the chunk (split off a buffer: {split_off_a_buffer})"
        );
    }
    let args = vec![0x5a; 40 * 1024];
    let call = Envelope::Call {
        id: 1,
        handle: peernet_proto::Handle::from_static("log"),
        args: Bytes::from(args.clone()),
        timeout_ms: 0,
    };
    let record = seal(&mut keys.send, &call.to_body());
    let mut calls = Vec::new();
    for half in [&record[..1000], &record[1000..]] {
        let data = BytesMut::from(half);
        b.handle_input(now, Input::Received { conn, data });
        for e in drain(&mut b, conn).events {
            if let Event::Call(call) = e {
                calls.push(call.args);
            }
        }
    }
    let [got] = &calls[..] else {
        panic!("one call: {calls:?}");
    };
    assert_eq!(got[..], args[..]);
    let got = calls.pop().unwrap();
    // (a slice of the record's buffer runs on into its tag; a copy's
    // buffer is its own bytes)
    let room = got.try_into_mut().expect("held once").capacity();
    assert!(room > args.len(), "copied out of its record: {room} bytes");
}

/// The small payloads of one record share one buffer of their own (an
/// allocation per record rather than per payload), neither the read chunk
/// nor each other's neighbours beyond the record; a large one gets its own.
#[test]
fn small_payloads_of_a_record_share_a_buffer_of_their_own() {
    let (mut b, conn, mut keys, now) = established();
    let big = [9u8; 600];
    let mut plain = send_body(b"one");
    plain.extend(send_body(b"two"));
    plain.extend(send_body(&big));
    plain.extend(send_body(b"three"));
    let data = BytesMut::from(&seal(&mut keys.send, &plain)[..]);
    // (where the chunk lies, for after it was handed over)
    let read = data.as_ptr_range();
    b.handle_input(now, Input::Received { conn, data });
    let d = drain(&mut b, conn);
    let args: Vec<Bytes> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Send(s) => Some(s.args.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(args.len(), 4, "{:?}", d.events);
    assert_eq!((&args[0][..], &args[1][..]), (&b"one"[..], &b"two"[..]));
    assert_eq!((&args[2][..], &args[3][..]), (&big[..], &b"three"[..]));
    let end = |b: &Bytes| b.as_ptr().wrapping_add(b.len());
    assert_eq!(end(&args[0]), args[1].as_ptr(), "shared");
    assert_eq!(
        end(&args[1]),
        args[3].as_ptr(),
        "shared, past the large one"
    );
    let large = args[2].as_ptr_range();
    assert!(!large.contains(&args[1].as_ptr()) && !large.contains(&args[3].as_ptr()));
    assert!(
        args.iter().all(|a| !read.contains(&a.as_ptr())),
        "none pins the read chunk"
    );
    // The record is done, so the connection let go of the buffer: once
    // the others are dropped, the last payload holds it alone.
    let (one, three) = (args[0].clone(), args[3].clone());
    drop((args, d));
    assert!(!three.is_unique(), "`one` shares it");
    drop(one);
    assert!(three.is_unique(), "nothing of the connection's keeps it");
}

/// B keeps identity 1's static key after their handshake (its key cache);
/// unpairing forgets it and the next INIT is refused `untrusted`, and
/// pairing again lets the next one in: trust is read at every INIT,
/// whatever is kept.
#[test]
fn unpair_and_pair_again_with_a_warm_key_cache() {
    let mut now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let a = identity(1).peer_id();
    handshake(&mut b, now, 9);
    now = now + SEC * 60;
    assert!(b.unpair(now, &a));
    let conn = b.accept(now).unwrap();
    let d = feed(&mut b, now, conn, &init(10).1);
    assert_eq!(d.sent, frame(&reject_v2(RejectCode::Untrusted)), "unpaired");
    assert!(d.closed);
    assert!(b.pair(a, None));
    now = now + SEC * 60;
    // (asserts the RESP)
    handshake(&mut b, now, 11);
}
