//! One input makes the endpoint queue at most about
//! `OUTPUTS_BEFORE_PAUSE` outputs: decoding pauses there and resumes as
//! `poll_output` empties the queue, in order, losing nothing. A record of
//! `max_frame_len` bytes of tiny envelopes used to queue every one of its
//! events at once (about 150,000 SENDs, 19 MB, from one megabyte).

mod support;

use bytes::Bytes;
use peernet_proto::{Envelope, Event, Handle, Input, Instant, OUTPUTS_BEFORE_PAUSE, SendError};
use peernet_testkit::{Action, Node};
use support::v2::*;
use support::{test_config, test_config_v2};

/// What one input leaves queued at most: the pause's threshold and the
/// outputs of the envelope that crossed it (one each here).
const BOUND: usize = OUTPUTS_BEFORE_PAUSE + 1;

/// Hands `data` to B without taking any output.
fn hand_in(
    b: &mut peernet_proto::Endpoint,
    now: Instant,
    conn: peernet_proto::ConnId,
    data: &[u8],
) {
    b.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::copy_from_slice(data).into(),
        },
    );
}

/// Plaintext of `one` repeated to fill a record of `max_frame_len`.
fn filled(one: &[u8], max_frame_len: u32) -> Vec<u8> {
    let room = max_frame_len as usize - 16;
    one.iter()
        .copied()
        .cycle()
        .take(room / one.len() * one.len())
        .collect()
}

fn numbered_send(n: u32) -> Vec<u8> {
    send_body(&n.to_be_bytes())
}

fn send_numbers(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send(s) => Some(u32::from_be_bytes(s.args[..].try_into().unwrap())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_record_of_empty_sends_queues_a_bounded_number_of_events_and_loses_none() {
    let config = test_config_v2();
    let (mut b, conn, mut keys, now) = established();
    let one = send_body(b"");
    let plain = filled(&one, config.max_frame_len);
    let expected = plain.len() / one.len();
    assert!(expected > 100 * OUTPUTS_BEFORE_PAUSE, "{expected} SENDs");
    hand_in(&mut b, now, conn, &seal(&mut keys.send, &plain));
    let queued = b.stats().outputs;
    assert!(
        queued <= BOUND,
        "one record queued {queued} outputs (bound {BOUND})"
    );
    let d = drain(&mut b, conn);
    assert!(!d.closed);
    let sends = d
        .events
        .iter()
        .filter(|e| matches!(e, Event::Send(_)))
        .count();
    assert_eq!(sends, expected, "every SEND is delivered");
    let stats = b.stats();
    assert_eq!((stats.outputs, stats.paused_input), (0, 0));
}

#[test]
fn call_and_cancel_pairs_are_bounded_per_input_too() {
    let config = test_config_v2();
    let (mut b, conn, mut keys, now) = established();
    let mut pair = Envelope::Call {
        id: 1,
        handle: Handle::new("log").unwrap(),
        args: Bytes::new(),
        timeout_ms: 0,
    }
    .to_body();
    pair.extend(Envelope::Cancel { id: 1 }.to_body());
    let plain = filled(&pair, config.max_frame_len);
    let pairs = plain.len() / pair.len();
    hand_in(&mut b, now, conn, &seal(&mut keys.send, &plain));
    let queued = b.stats().outputs;
    assert!(queued <= BOUND, "one record queued {queued} outputs");
    let d = drain(&mut b, conn);
    assert!(!d.closed);
    let calls = d
        .events
        .iter()
        .filter(|e| matches!(e, Event::Call(_)))
        .count();
    let cancels = d
        .events
        .iter()
        .filter(|e| matches!(e, Event::CallCancelled(_)))
        .count();
    assert_eq!((calls, cancels), (pairs, pairs));
}

/// Bytes handed in while decoding is paused wait behind what was kept:
/// the events come in the order the peer sent their envelopes.
#[test]
fn input_handed_in_during_a_pause_keeps_its_order() {
    let (mut b, conn, mut keys, now) = established();
    let record = |keys: &mut peernet_proto::testkit::noise::Transport, from: u32| {
        let plain: Vec<u8> = (from..from + 3_000).flat_map(numbered_send).collect();
        seal(&mut keys.send, &plain)
    };
    let (first, second) = (record(&mut keys, 0), record(&mut keys, 3_000));
    hand_in(&mut b, now, conn, &first);
    assert!(b.stats().outputs <= BOUND);
    // more bytes, the output queue untouched: kept behind the first
    hand_in(&mut b, now, conn, &second);
    assert!(b.stats().outputs <= BOUND);
    assert!(b.stats().paused_input >= second.len());
    let d = drain(&mut b, conn);
    assert_eq!(send_numbers(&d.events), (0..6_000).collect::<Vec<_>>());
    // and the same as one chunk taken whole
    let (mut whole, conn2, mut keys2, now2) = established();
    let mut both = record(&mut keys2, 0);
    both.extend(record(&mut keys2, 3_000));
    let d2 = feed(&mut whole, now2, conn2, &both);
    assert_eq!(d.events, d2.events);
}

/// Version 1: a read chunk of many small frames pauses the same way.
#[test]
fn version_1_frames_of_one_chunk_are_bounded_too() {
    let (mut a, mut b) = Node::checked_pair(test_config(), test_config());
    b.expose("log", peernet_testkit::Rule::Anyone);
    let dial = a.connect(Some(b.me())).unwrap();
    let conn = b.accept().unwrap();
    assert!(a.shake(dial, &mut b, conn));
    let peer = b.me();
    let count = 4 * OUTPUTS_BEFORE_PAUSE as u32;
    for n in 0..count {
        let sent = a.ep.send(a.now, &peer, "log", &n.to_be_bytes());
        assert_eq!(sent, Ok::<(), SendError>(()));
    }
    a.pump();
    let chunk = a.take(dial).expect("the SENDs, in one chunk");
    b.receive(conn, chunk);
    let queued = b.ep.stats().outputs;
    assert!(queued <= BOUND, "one chunk queued {queued} outputs");
    let events: Vec<Event> = b
        .pump()
        .into_iter()
        .filter_map(|action| match action {
            Action::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(send_numbers(&events), (0..count).collect::<Vec<_>>());
}

/// The transport's end handed in while a pause keeps the peer's last
/// bytes waits for them: every SEND arrives and the peer's GOODBYE is the
/// connection's reason. (The end used to drop the kept bytes: 1,024
/// SENDs, and `TransportLost`.)
#[test]
fn a_transport_end_waits_for_the_input_a_pause_kept() {
    use peernet_proto::CloseReason;
    let (mut b, conn, mut keys, now) = established();
    let mut plain: Vec<u8> = (0..2_000u32).flat_map(numbered_send).collect();
    let goodbye = Envelope::Goodbye {
        code: 0,
        reason: "bye".into(),
    };
    plain.extend(goodbye.to_body());
    hand_in(&mut b, now, conn, &seal(&mut keys.send, &plain));
    b.handle_input(now, Input::Closed { conn });
    let d = drain(&mut b, conn);
    assert_eq!(send_numbers(&d.events), (0..2_000).collect::<Vec<_>>());
    let reason = d.events.iter().find_map(|e| match e {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        matches!(&reason, Some(CloseReason::Goodbye { reason, .. }) if reason == "bye"),
        "{reason:?}"
    );
}
