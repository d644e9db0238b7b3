//! Version 2 at its edges: a version-1 node meeting a version-2 INIT
//! (PROTOCOL.md 2.1 step 2 and 6.1 step 2.1), the end of the record
//! nonce space on a live connection (section 7), and the GOODBYE to a
//! peer that does not read, after records it never got (sections 3, 7).

mod support;

use bytes::{Bytes, BytesMut};
use peernet_proto::testkit::handshake as hs1;
use peernet_proto::testkit::noise::INIT_LEN;
use peernet_proto::{
    Envelope, Event, GoodbyeCode, HandshakeError, Input, Instant, Output, RecordError, RejectCode,
};
use support::v2::*;
use support::{Pair, Who, identity, test_config, test_config_v2};

// ----- a version-1 node and a version-2 INIT -----

/// PROTOCOL.md 2.1 step 2 checks the version before the length ("else
/// REJECT `unsupported_version`, whatever the length; its own header
/// still says version 1"), and 6.1 step 2.1 has a version-2 initiator
/// recognise that REJECT: so a version-1 node reads the whole 150-byte
/// INIT (its handshake frame limit is INIT's, not WELCOME's 134) and
/// answers `PNET|01|04|02`.
#[test]
fn a_v1_node_answers_a_v2_init_with_unsupported_version() {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config());
    let conn = b.accept(now).unwrap();
    let (_, init) = init(7);
    assert_eq!(init.len(), 4 + INIT_LEN);
    let d = feed(&mut b, now, conn, &init);
    assert!(d.closed, "{d:?}");
    assert_eq!(d.sent, frame(b"PNET\x01\x04\x02"), "a version-1 REJECT");
    assert_failed(&d, HandshakeError::Refused(RejectCode::UnsupportedVersion));
}

#[test]
fn a_v2_dial_to_a_v1_node_fails_with_unsupported_version() {
    let mut p = Pair::with(test_config_v2(), test_config(), true, true);
    p.dial(Who::A);
    p.drive();
    let (a, b) = (p.take_events(Who::A), p.take_events(Who::B));
    let unsupported = RejectCode::UnsupportedVersion;
    assert!(
        failed_with(&a, HandshakeError::Rejected(unsupported)),
        "{a:?}"
    );
    assert!(
        failed_with(&b, HandshakeError::Refused(unsupported)),
        "{b:?}"
    );
}

/// Past INIT's 150 bytes a handshake frame is refused at its header, on
/// version 1 as on version 2 (PROTOCOL.md 6.1: "larger than 150 is
/// `malformed` at once"), with no byte of its body read.
#[test]
fn a_handshake_frame_over_150_bytes_is_refused_at_its_header() {
    for config in [test_config(), test_config_v2()] {
        let now = Instant::from_millis(1_000);
        let mut b = responder(config);
        let conn = b.accept(now).unwrap();
        let d = feed(&mut b, now, conn, &(INIT_LEN as u32 + 1).to_be_bytes());
        assert!(d.closed, "{d:?}");
        assert!(failed_with(&d.events, HandshakeError::Frame), "{d:?}");
    }
}

/// Section 2.1 step 2: the version is checked "whatever the length", so
/// a first frame cut short after its version byte still learns that the
/// node speaks version 1; shorter, or with version 1 and no more, it is
/// `malformed`.
#[test]
fn a_v1_node_checks_the_version_of_a_short_first_frame() {
    let now = Instant::from_millis(1_000);
    for (body, answer) in [
        (&b"PNET\x02"[..], &b"PNET\x01\x04\x02"[..]),
        (b"PNET\x03\x01", b"PNET\x01\x04\x02"),
        (b"PNET\x01", b"PNET\x01\x04\x06"),
        (b"PNET", b"PNET\x01\x04\x06"),
        (b"PNE", b"PNET\x01\x04\x06"),
    ] {
        let mut b = responder(test_config());
        let conn = b.accept(now).unwrap();
        let d = feed(&mut b, now, conn, &frame(body));
        assert!(d.closed, "{body:?}: {d:?}");
        assert_eq!(d.sent, frame(answer), "{body:?}");
    }
}

/// A version-1 node with no handshake slot free checks magic and version
/// before it answers `busy` (as version 2 does, 6.1 step 2): a
/// version-2 INIT learns `unsupported_version`, which its dialer does not
/// retry, rather than `busy`, which it would; a version-1 HELLO gets
/// `busy`.
#[test]
fn a_busy_v1_node_still_tells_a_v2_init_its_version() {
    let now = Instant::from_millis(1_000);
    let mut config = test_config();
    config.max_handshakes = 1;
    let mut b = responder(config);
    let holder = b.accept(now).unwrap();
    // the holder's HELLO came (identity 1, trusted): it keeps its slot
    let dialer = hs1::Initiator::start(&identity(1), &[5; 32], Some(identity(2).peer_id()));
    let d = feed(&mut b, now, holder, &frame(dialer.hello()));
    assert!(!d.closed, "{d:?}");
    let busy = b.accept(now).unwrap();
    assert!(b.is_open(holder), "the holder was not evicted");
    let (_, init) = init(7);
    let d = feed(&mut b, now, busy, &init);
    assert!(d.closed, "{d:?}");
    assert_eq!(d.sent, frame(b"PNET\x01\x04\x02"), "unsupported_version");
}

// ----- the end of the nonce space -----

/// Section 7: "A side that would reach 2^64 - 1 closes instead." B seals
/// its last record under nonce 2^64 - 2; the next envelope it has to send
/// ends the connection (`RecordFailed(NonceExhausted)`) with nothing more
/// on the wire: no record under a reused or the reserved nonce.
#[test]
fn a_sender_at_the_end_of_the_nonce_space_closes_instead_of_sealing() {
    let (mut b, conn, mut keys, now) = established();
    assert!(b.testkit_set_record_nonces(conn, u64::MAX - 1, keys.send.nonce()));
    keys.recv.set_nonce(u64::MAX - 1);
    assert!(b.testkit_queue_envelope(now, conn, &Envelope::Ping { nonce: 1 }));
    let d = drain(&mut b, conn);
    assert!(!d.closed, "{d:?}");
    let mut record = d.sent[4..].to_vec();
    let plain = keys
        .recv
        .open_record(&mut record)
        .expect("the last record opens");
    assert_eq!(
        Envelope::decode(&Bytes::copy_from_slice(plain)),
        Ok(Envelope::Ping { nonce: 1 })
    );
    assert_eq!(keys.recv.nonce(), u64::MAX);

    assert!(b.testkit_queue_envelope(now, conn, &Envelope::Ping { nonce: 2 }));
    let d = drain(&mut b, conn);
    assert!(d.closed, "{d:?}");
    assert!(d.sent.is_empty(), "nothing sealed: {:?}", d.sent);
    assert!(
        closed_by(&d.events, RecordError::NonceExhausted),
        "{:?}",
        d.events
    );
    assert!(!b.is_open(conn));
}

/// The receiving side: once its counter stands at 2^64 - 1 no record can
/// be valid (a sender never uses that nonce); the next one ends the
/// connection and nothing in it is handled.
#[test]
fn a_receiver_at_the_end_of_the_nonce_space_closes_on_the_next_record() {
    let (mut b, conn, mut keys, now) = established();
    assert!(b.testkit_set_record_nonces(conn, 0, u64::MAX));
    keys.send.set_nonce(u64::MAX - 1);
    let send = Envelope::Send {
        handle: peernet_proto::Handle::new("log").unwrap(),
        args: Bytes::from_static(b"late"),
    };
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &send.to_body()));
    assert!(d.closed, "{d:?}");
    assert!(d.sent.is_empty(), "nothing more sent: {:?}", d.sent);
    assert!(
        closed_by(&d.events, RecordError::NonceExhausted),
        "{:?}",
        d.events
    );
    assert!(!d.events.iter().any(|e| matches!(e, Event::Send(_))));
}

/// The hook refuses a connection without record keys.
#[test]
fn nonces_exist_only_once_the_keys_do() {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let conn = b.accept(now).unwrap();
    assert!(!b.testkit_set_record_nonces(conn, 0, 0));
}

// ----- a peer that does not read -----

/// B cuts off a peer that sends PINGs and never reads (the hard send
/// cap), after sealing several records of PONGs that never left. Its
/// GOODBYE `protocol_error` goes in a record (section 7) under the nonce
/// the peer expects next, the first B ever sent it: the dropped records
/// gave their nonces back, so the peer reads why it was cut off.
#[test]
fn the_goodbye_to_a_peer_that_does_not_read_opens_at_its_next_nonce() {
    let mut c = test_config_v2();
    c.max_frame_len = 4096;
    c.send_buffer = 2048;
    c.max_send_buffer = 4096;
    let now = Instant::from_millis(1_000);
    let mut b = responder(c);
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &[]));
    assert!(connected(&d.events, conn));
    let ping = Envelope::Ping { nonce: 1 }.to_body();
    let pings = ping.repeat((4096 - 16) / ping.len());
    let mut last = None;
    for _ in 0..8 {
        let data = BytesMut::from(&seal(&mut keys.send, &pings)[..]);
        b.handle_input(now, Input::Received { conn, data });
        // (the transmits are not taken: the peer does not read)
        while let Some(output) = b.poll_output() {
            if let Output::Close { last: bytes, .. } = output {
                last = Some(bytes);
            }
        }
        if last.is_some() {
            break;
        }
    }
    let last = last.expect("B cut the peer off");
    let records = open_all(&mut keys.recv, &last);
    assert_eq!(records.len(), 1, "one record, the GOODBYE's");
    let goodbye = Envelope::decode(&Bytes::copy_from_slice(&records[0]));
    assert!(
        matches!(&goodbye, Ok(Envelope::Goodbye { code, .. })
            if *code == GoodbyeCode::ProtocolError.code()),
        "{goodbye:?}"
    );
    assert_eq!(keys.recv.nonce(), 1, "opened under nonce 0");
}

// ----- a responder waiting for the first record -----

/// After RESP the responder holds record keys and its peer's next frame
/// is a record (6.1 step 4, section 7). A frame error there (length 0,
/// or over `max_frame_len`) closes the connection with nothing sent: no
/// plaintext REJECT into a stream of records, and no record before step 4.
#[test]
fn a_pending_responder_closes_on_a_frame_error_without_a_word() {
    let now = Instant::from_millis(1_000);
    for bad_header in [0u32.to_be_bytes(), u32::MAX.to_be_bytes()] {
        let mut b = responder(test_config_v2());
        let (conn, _keys, d) = handshake(&mut b, now, 9);
        assert!(!d.closed);
        let d = feed(&mut b, now, conn, &bad_header);
        assert!(d.closed, "{d:?}");
        assert_eq!(d.sent, Vec::<u8>::new(), "sent {:02x?}", d.sent);
    }
}

/// Section 6: `handshake_timeout` covers everything up to step 4. A first
/// record handed in after the deadline, before the timer fired, ends the
/// handshake; it does not establish.
#[test]
fn a_first_record_after_the_handshake_deadline_does_not_establish() {
    let now = Instant::from_millis(1_000);
    let config = test_config_v2();
    let mut b = responder(config.clone());
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    let late = now + config.handshake_timeout + std::time::Duration::from_secs(5);
    let d = feed(&mut b, late, conn, &seal(&mut keys.send, &[]));
    assert!(
        !connected(&d.events, conn),
        "established after its deadline"
    );
    assert!(d.closed);
    assert_failed(&d, HandshakeError::Timeout);
}

/// 6.1 step 3: an initiator whose RESP check fails may send REJECT and
/// close; the waiting responder reports that code, as version 1 does
/// (a 7-byte REJECT can never be a record, which is at least 16).
#[test]
fn a_pending_responder_reports_the_initiators_reject() {
    use peernet_proto::testkit::noise::reject_v2;
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let (conn, _keys, _) = handshake(&mut b, now, 9);
    let d = feed(
        &mut b,
        now,
        conn,
        &frame(&reject_v2(RejectCode::BadSignature)),
    );
    assert!(d.closed);
    assert!(d.sent.is_empty(), "{:02x?}", d.sent);
    assert_failed(&d, HandshakeError::Rejected(RejectCode::BadSignature));
}

/// A peer's GOODBYE reason may be as long as a record; what the close
/// event (and every log line showing it) carries is its first
/// `MAX_PEER_REASON` bytes, cut at a character boundary.
#[test]
fn a_peers_long_goodbye_reason_is_cut() {
    use peernet_proto::{CloseReason, Side};
    let (mut b, conn, mut keys, now) = established();
    let reason = "é".repeat(100_000);
    let goodbye = Envelope::Goodbye { code: 0, reason }.to_body();
    let d = feed(&mut b, now, conn, &seal(&mut keys.send, &goodbye));
    let kept = d.events.iter().find_map(|e| match e {
        Event::Disconnected {
            reason:
                CloseReason::Goodbye {
                    by: Side::Remote,
                    reason,
                    ..
                },
            ..
        } => Some(reason.clone()),
        _ => None,
    });
    let kept = kept.expect("closed by the GOODBYE");
    assert_eq!(kept, "é".repeat(CloseReason::MAX_PEER_REASON / 2));
}

/// The first record is due one round trip after RESP: a responder waits
/// for it `first_frame_timeout` (2 s), not what is left of the 10 s
/// handshake budget, so a replayed INIT holds its handshake slot no
/// longer than a silent socket does.
#[test]
fn a_responder_waits_first_frame_timeout_for_the_first_record() {
    let now = Instant::from_millis(1_000);
    let config = test_config_v2();
    assert!(config.first_frame_timeout < config.handshake_timeout);
    let mut b = responder(config.clone());
    let (conn, _keys, _) = handshake(&mut b, now, 9);
    assert_eq!(b.poll_timeout(), Some(now + config.first_frame_timeout));
    b.handle_timeout(now + config.first_frame_timeout);
    let d = drain(&mut b, conn);
    assert!(d.closed && d.sent.is_empty(), "{d:?}");
    assert_failed(&d, HandshakeError::Timeout);
    assert_eq!(b.stats().inbound_handshakes, 0, "the slot is free");
    // an honest first record just before the deadline establishes
    let mut b = responder(config.clone());
    let (conn, mut keys, _) = handshake(&mut b, now, 9);
    let just = now + config.first_frame_timeout - std::time::Duration::from_millis(1);
    let d = feed(&mut b, just, conn, &seal(&mut keys.send, &[]));
    assert!(connected(&d.events, conn));
}

/// 6.1 step 3: the initiator sends its first record at once, and the
/// responder gives it `first_frame_timeout` (2 s), as it gives a silent
/// socket. What the application queues once `Connected` is out, before
/// its driver takes the queue (a writer task woken after the event), must
/// not ride in that first record: a 600 KiB call made then, over a link
/// that carries 100 KiB every 500 ms, used to keep the responder from
/// step 4 past its 2 s, and the connection ended as a handshake timeout
/// (charged to its source) instead of carrying the call.
#[test]
fn a_call_queued_at_connected_does_not_hold_back_the_first_record() {
    use peernet_proto::{Access, Output};
    let mut now = Instant::from_millis(1_000);
    let (ida, idb) = (identity(1).peer_id(), identity(2).peer_id());
    let mut a = peernet_testkit::setup::endpoint(test_config_v2(), identity(1), &[idb], 1);
    let mut b = responder(test_config_v2());
    b.expose("echo", Access::Anyone).unwrap();
    let ca = a.connect(now, Some(idb)).unwrap();
    let cb = b.accept(now).unwrap();
    let init = drain(&mut a, ca);
    let resp = feed(&mut b, now, cb, &init.sent);
    // RESP in: A is established; the application calls on `Connected`,
    // before A's driver takes the queue
    a.handle_input(
        now,
        Input::Received {
            conn: ca,
            data: Bytes::copy_from_slice(&resp.sent).into(),
        },
    );
    let mut connected_a = false;
    while let Some(out) = a.poll_output() {
        connected_a |= matches!(out, Output::Event(Event::Connected { .. }));
    }
    assert!(connected_a);
    a.call(now, &idb, "echo", &vec![7; 600 << 10], None)
        .unwrap();
    let wire = a.poll_transmit(ca).expect("A's first record");
    let mut events = Vec::new();
    for chunk in wire.chunks(100 << 10) {
        events.extend(feed(&mut b, now, cb, chunk).events);
        now = now + std::time::Duration::from_millis(500);
        b.handle_timeout(now);
        events.extend(drain(&mut b, cb).events);
    }
    assert!(
        !failed_with(&events, HandshakeError::Timeout),
        "the first record waited for the call: {events:?}"
    );
    assert!(connected(&events, cb), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Call(c) if c.peer == ida && c.args.len() == 600 << 10)),
        "{events:?}"
    );
}
