//! Tests of how a full book makes room (`room.rs`).

use super::super::tests::{addr, at, peer, ports};
use super::super::*;

#[test]
fn hints_make_room_only_among_hints_that_are_not_working() {
    let p = peer(1);
    let mut book = AddressBook::new(3, 64);
    book.add(p, addr(1), AddrSource::Application).unwrap();
    book.add(p, addr(2), AddrSource::Discovery).unwrap();
    book.add(p, addr(3), AddrSource::Discovery).unwrap();
    // addr(2) worked once, then every address failed.
    book.mark_ok(&p, addr(2), at(1));
    for (port, t) in [(1, 2), (2, 3), (3, 4)] {
        book.mark_failed(&p, addr(port), at(t));
    }
    // The hint that never worked was forgotten at its failure: room.
    assert_eq!(book.add(p, addr(4), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&book, &p), [4, 2, 1]);
    // A flood of hints, each failing, churns that one place only.
    for port in 5..50 {
        book.mark_failed(&p, addr(port - 1), at(u64::from(port)));
        assert_eq!(book.add(p, addr(port), AddrSource::Discovery), Ok(true));
        assert_eq!(ports(&book, &p), [port, 2, 1]);
    }
    // Full: a new hint does not replace the application's; it replaces
    // the hint whose last dial failed, and is dialed before the older
    // untried one.
    assert_eq!(book.add(p, addr(50), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&book, &p), [50, 49, 1]);
    // A hint that is working is not replaced by another.
    book.mark_ok(&p, addr(50), at(60));
    book.mark_ok(&p, addr(49), at(61));
    assert_eq!(
        book.add(p, addr(51), AddrSource::Discovery),
        Err(BookError::Full)
    );
    // A ticket may replace a hint even if it works (the worst first);
    // the application its own failed address.
    assert_eq!(book.add(p, addr(60), AddrSource::Ticket), Ok(true));
    assert_eq!(ports(&book, &p), [49, 60, 1]);
    assert_eq!(book.add(p, addr(61), AddrSource::Application), Ok(true));
    assert_eq!(ports(&book, &p), [49, 61, 60]);
}

/// The peer's own announcement gets in whatever a LAN host announced
/// before it, and is dialed next: one failed dial of a hint that worked
/// (a laptop asleep) used to let a flood of false hints take its place
/// for good, since a new hint could not push out an older untried one.
#[test]
fn a_hint_heard_again_comes_back_after_a_flood() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    let truth = addr(4000);
    book.add(p, truth, AddrSource::Discovery).unwrap();
    book.mark_ok(&p, truth, at(1));
    book.mark_failed(&p, truth, at(2));
    for port in 1..=8 {
        assert_eq!(book.add(p, addr(port), AddrSource::Discovery), Ok(true));
    }
    assert!(!ports(&book, &p).contains(&4000));
    assert_eq!(book.add(p, truth, AddrSource::Discovery), Ok(true));
    assert_eq!(
        ports(&book, &p)[0],
        4000,
        "the latest heard is dialed first"
    );
    assert_eq!(book.len(), 8);
}

/// Hints of some peers filling the book's total no longer keep out what
/// the application or a ticket gives for another peer: a hint that is not
/// working makes room. A hint does not push out another peer's.
#[test]
fn hints_of_one_peer_do_not_keep_the_application_from_another() {
    let (p1, p2, p3) = (peer(1), peer(2), peer(3));
    let mut book = AddressBook::new(8, 8);
    for port in 1..=8 {
        book.add(p1, addr(port), AddrSource::Discovery).unwrap();
    }
    book.mark_ok(&p1, addr(3), at(1));
    assert_eq!(
        book.add(p3, addr(200), AddrSource::Discovery),
        Err(BookError::Full)
    );
    assert_eq!(book.add(p2, addr(100), AddrSource::Application), Ok(true));
    assert_eq!(book.add(p2, addr(101), AddrSource::Ticket), Ok(true));
    assert_eq!(book.len(), 8);
    let left = ports(&book, &p1);
    assert_eq!(left.len(), 6);
    assert!(left.contains(&3), "the hint that works stays: {left:?}");
    // when every hint works, the book is full for everyone
    for port in left {
        book.mark_ok(&p1, addr(port), at(2));
    }
    assert_eq!(
        book.add(peer(4), addr(102), AddrSource::Application),
        Err(BookError::Full)
    );
}

/// At the total bound the book's worst hint makes room: one known dead
/// (worked once, failed since) before another peer's only, untried one,
/// and before the adding peer's own working address of a worse source.
#[test]
fn at_the_total_the_worst_hint_of_the_book_makes_room() {
    let (low, high) = {
        let (a, c) = (peer(1), peer(2));
        if a < c { (a, c) } else { (c, a) }
    };
    let mut book = AddressBook::new(8, 4);
    book.add(low, addr(1), AddrSource::Discovery).unwrap();
    for port in 2..=4 {
        book.add(high, addr(port), AddrSource::Discovery).unwrap();
        book.mark_ok(&high, addr(port), at(1));
        book.mark_failed(&high, addr(port), at(2 + u64::from(port)));
    }
    assert_eq!(
        book.add(peer(3), addr(100), AddrSource::Application),
        Ok(true)
    );
    assert_eq!(ports(&book, &low), [1], "the untried only hint stays");
    assert_eq!(ports(&book, &high), [3, 4], "the longest failed went");
    // the adding peer's own working ticket address stays too
    let (p, q) = (peer(4), peer(5));
    let mut book = AddressBook::new(8, 2);
    book.add(p, addr(1), AddrSource::Ticket).unwrap();
    book.mark_ok(&p, addr(1), at(1));
    book.add(q, addr(2), AddrSource::Discovery).unwrap();
    book.mark_ok(&q, addr(2), at(1));
    book.mark_failed(&q, addr(2), at(2));
    assert_eq!(book.add(p, addr(3), AddrSource::Application), Ok(true));
    assert_eq!(ports(&book, &p), [1, 3]);
    assert!(ports(&book, &q).is_empty());
}

/// Hints kept because they answered `busy` (a REJECT anyone can send)
/// fill a peer's places as failed hints: the peer's own announcement,
/// heard after them, still gets in, pushing out the one that failed
/// last, and is dialed first; an address that worked stays.
#[test]
fn hints_kept_busy_give_way_to_the_peers_own_announcement() {
    let p = peer(1);
    let mut book = AddressBook::new(4, 64);
    book.add(p, addr(1), AddrSource::Discovery).unwrap();
    book.mark_ok(&p, addr(1), at(1));
    book.mark_failed(&p, addr(1), at(2));
    for port in 2..=4 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
        book.mark_busy(&p, addr(port), at(u64::from(port) * 10));
    }
    assert_eq!(ports(&book, &p), [1, 2, 3, 4]);
    assert_eq!(book.add(p, addr(5), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&book, &p), [5, 1, 2, 3]);
}
