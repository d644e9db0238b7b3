//! A `handler_panicked` REPLY carries "empty, or a short UTF-8 note"
//! (PROTOCOL.md 3.1), and [`CallError::HandlerPanicked`] says so: what a
//! peer sends there is cut to the note this node would send itself (at
//! most 256 bytes of UTF-8), and copied, so that it keeps no record
//! alive. A peer could hand the caller a whole frame of bytes that are no
//! text as its "note" (up to 1 MiB per call, pinning the record it came
//! in), which a caller printing the note took as it was.

mod support;

use bytes::Bytes;
use peernet_proto::{CallError, Envelope};
use support::{Pair, Who, echo_calls_in_hand, test_config_v2};

/// B answers A's one call with a raw `handler_panicked` REPLY whose body
/// is `note`; what A's call resolves with.
fn panicked_with(note: Vec<u8>) -> Result<Bytes, CallError> {
    let mut p = Pair::with(test_config_v2(), test_config_v2(), true, true);
    let (_, ids, calls) = echo_calls_in_hand(&mut p, 1, 8);
    let (a, now) = (p.id(Who::A), p.node(Who::B).now);
    let conn = p.node(Who::B).ep.connection(&a).expect("connected");
    let reply = Envelope::Reply {
        id: calls[0].id.request_id(),
        status: 4,
        body: Bytes::from(note),
    };
    assert!(p.node(Who::B).ep.testkit_queue_envelope(now, conn, &reply));
    p.drive();
    let results = peernet_testkit::call_results(&p.take_events(Who::A));
    let [(id, result)] = &results[..] else {
        panic!("one result: {results:?}");
    };
    assert_eq!(*id, ids[0]);
    result.clone()
}

#[test]
fn a_peers_panic_note_is_short_utf8() {
    let long = vec![b'x'; 600 * 1024];
    match panicked_with(long) {
        Err(CallError::HandlerPanicked(note)) => {
            assert_eq!(note.len(), 256, "cut to the note's length");
            assert!(note.iter().all(|b| *b == b'x'));
        }
        other => panic!("{other:?}"),
    }
    let mut not_text = b"boom".to_vec();
    not_text.extend([0xff; 1000]);
    match panicked_with(not_text) {
        Err(CallError::HandlerPanicked(note)) => assert_eq!(&note[..], b"boom"),
        other => panic!("{other:?}"),
    }
    match panicked_with(Vec::new()) {
        Err(CallError::HandlerPanicked(note)) => assert!(note.is_empty()),
        other => panic!("{other:?}"),
    }
}
