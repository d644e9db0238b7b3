//! What a version-2 responder waiting for the first record commits to a
//! peer that has proven nothing: a replayed INIT gets RESP too, from
//! someone who holds no key. A counting allocator, so a test binary of
//! its own.

mod support;

use peernet_proto::Instant;
use support::test_config_v2;
use support::v2::*;

#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

/// After RESP, five bytes (a header announcing a megabyte, and one byte
/// of it) used to make the responder hold a 64 KiB buffer until
/// `handshake_timeout`: 64 MiB over the 1,024 handshake slots, for a
/// replayer holding no key. Now a few KiB, growing only with the bytes
/// that come; the first record, once open, restores the usual room.
#[test]
fn a_header_before_the_first_record_commits_little() {
    let now = Instant::from_millis(1_000);
    let mut b = responder(test_config_v2());
    let (conn, _keys, _) = handshake(&mut b, now, 9);
    let before = peernet_testkit::heap::live();
    let mut five = (1u32 << 20).to_be_bytes().to_vec();
    five.push(0);
    let d = feed(&mut b, now, conn, &five);
    assert!(!d.closed);
    let held = peernet_testkit::heap::live() - before;
    assert!(
        held <= 8 * 1024,
        "5 bytes from a keyless peer hold {held} bytes"
    );
    // the honest initiator's first record, a megabyte and split, still
    // opens (the buffer grows as its bytes come)
    let mut b = responder(test_config_v2());
    b.expose("log", peernet_proto::Access::Anyone).unwrap();
    let (conn, mut honest, _) = handshake(&mut b, now, 9);
    let big = send_body(&vec![7u8; 1 << 19]);
    let record = seal(&mut honest.send, &big);
    let (head, tail) = record.split_at(100);
    assert!(!feed(&mut b, now, conn, head).closed);
    let d = feed(&mut b, now, conn, tail);
    assert!(connected(&d.events, conn), "{:?}", d.events);
}
