//! The node's budget for bytes held by handshakes in progress
//! (`Config::max_handshake_bytes`, default 16 MiB).
//!
//! After RESP a version-2 responder waits for the initiator's first
//! record (PROTOCOL.md 6.1 step 4), which may be a whole frame (1 MiB by
//! default): a peer that sent most of one and never the rest held that
//! much until its handshake timed out, outside every byte budget, up to
//! about 1 GiB over the 1,024 handshake slots. Now the handshakes'
//! buffers hold at most the budget together: the bytes that would pass
//! it close their connection (`HandshakeError::OverBudget`), established
//! connections are never charged, and a peer whose frames come whole
//! connects whatever the others hold. A counting allocator, so a test
//! binary of its own with one test (every allocation counts).

mod support;

use peernet_proto::{Access, Event, HandshakeError, Input, Instant};
use support::test_config_v2;
use support::v2::*;

#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

/// The default budget.
const BUDGET: usize = 16 << 20;

/// The first record each slow peer announces: the default frame limit.
const RECORD: usize = 1 << 20;

/// What each slow peer sends of it, in reads of 64 KiB: all but 1 KiB.
const DRIPPED: usize = RECORD - 1024;

/// Bytes allocated since `before`.
fn live_since(before: isize) -> usize {
    (peernet_testkit::heap::live() - before).max(0) as usize
}

/// 24 peers each send most of a 1 MiB first record after RESP: the
/// first 16 fill the 16 MiB budget and hold it, the next 8 are closed
/// `OverBudget` at their first read, and the node's memory grows by the
/// budget, not 24 MiB. Meanwhile a peer whose first record comes whole
/// connects, an established connection takes a split 1 MiB record, and
/// a slow peer that goes gives its room back to the next one.
#[test]
fn slow_first_records_hold_at_most_the_budget() {
    let now = Instant::from_millis(1_000);
    let config = test_config_v2();
    assert_eq!(config.max_handshake_bytes, BUDGET, "the default");
    assert_eq!(config.max_frame_len as usize, RECORD, "the default");
    let mut b = responder(config);
    b.expose("log", Access::Anyone).unwrap();
    // an established connection, before the slow peers come
    let (old, mut old_keys, _) = handshake(&mut b, now, 200);
    let first = seal(&mut old_keys.send, &send_body(b"first"));
    assert!(connected(&feed(&mut b, now, old, &first).events, old));

    let before = peernet_testkit::heap::live();
    let read = vec![0u8; 64 << 10];
    let (mut holding, mut refused) = (Vec::new(), 0);
    for seed in 1..=24u8 {
        let (conn, _keys, _) = handshake(&mut b, now, seed);
        let header = (RECORD as u32).to_be_bytes();
        assert!(!feed(&mut b, now, conn, &header).closed);
        let mut sent = 0;
        let closed = loop {
            if sent >= DRIPPED {
                break false;
            }
            let n = read.len().min(DRIPPED - sent);
            let d = feed(&mut b, now, conn, &read[..n]);
            sent += n;
            let stats = b.stats();
            assert!(
                stats.handshake_bytes <= BUDGET,
                "peer {seed}: the handshakes hold {} bytes",
                stats.handshake_bytes
            );
            let live = live_since(before);
            assert!(
                live <= BUDGET + (1 << 20),
                "peer {seed}: the node holds {live} bytes more"
            );
            if d.closed {
                assert!(d.sent.is_empty(), "closed with nothing sent");
                let refused_over_budget = d.events.iter().any(|e| {
                    matches!(
                        e,
                        Event::HandshakeFailed {
                            error: HandshakeError::OverBudget,
                            ..
                        }
                    )
                });
                assert!(refused_over_budget, "{:?}", d.events);
                break true;
            }
        };
        if closed {
            refused += 1;
        } else {
            holding.push(conn);
        }
    }
    assert_eq!(holding.len(), BUDGET / RECORD, "the budget's worth held");
    assert_eq!(refused, 24 - BUDGET / RECORD, "the rest turned away");
    let stats = b.stats();
    assert_eq!(stats.handshake_bytes, BUDGET);
    assert_eq!(
        stats.counters.handshakes_in.over_budget, refused as u64,
        "{stats}"
    );

    // An established connection is not charged: a 1 MiB record split
    // across reads is taken while the budget is full.
    let big = seal(&mut old_keys.send, &send_body(&vec![7u8; RECORD - 64]));
    let (head, tail) = big.split_at(big.len() / 2);
    assert!(!feed(&mut b, now, old, head).closed);
    let d = feed(&mut b, now, old, tail);
    assert!(!d.closed);
    let sends = d.events.iter().filter(|e| matches!(e, Event::Send(_)));
    assert_eq!(sends.count(), 1, "{:?}", d.events);

    // A peer whose first record comes whole connects: it needs no buffer
    // (and, the same key, supersedes the established connection).
    let (conn, mut keys, _) = handshake(&mut b, now, 100);
    let record = seal(&mut keys.send, &send_body(b"hello"));
    let d = feed(&mut b, now, conn, &record);
    assert!(connected(&d.events, conn), "{:?}", d.events);

    // A slow peer that goes gives its room back.
    let gone = holding.pop().unwrap();
    b.handle_input(now, Input::Closed { conn: gone });
    drain(&mut b, gone);
    assert_eq!(b.stats().handshake_bytes, BUDGET - RECORD);
    let (conn, _keys, _) = handshake(&mut b, now, 101);
    let mut wire = (RECORD as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&read);
    assert!(!feed(&mut b, now, conn, &wire).closed, "room again");
    assert!(b.stats().handshake_bytes <= BUDGET);
}
