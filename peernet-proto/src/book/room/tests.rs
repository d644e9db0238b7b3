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
    // Full: a new hint does not replace the application's, nor the hint
    // that worked last though it failed since (one kept of 3 places): it
    // replaces the older untried one.
    assert_eq!(book.add(p, addr(50), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&book, &p), [50, 2, 1]);
    // Once another works, that one may go.
    book.mark_ok(&p, addr(50), at(60));
    assert_eq!(book.add(p, addr(51), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&book, &p), [50, 51, 1]);
    // A hint that is working is not replaced by another.
    book.mark_ok(&p, addr(51), at(61));
    assert_eq!(
        book.add(p, addr(52), AddrSource::Discovery),
        Err(BookError::Full)
    );
    // A ticket may replace a hint even if it works (the worst first);
    // the application its own failed address.
    assert_eq!(book.add(p, addr(60), AddrSource::Ticket), Ok(true));
    assert_eq!(ports(&book, &p), [51, 60, 1]);
    assert_eq!(book.add(p, addr(61), AddrSource::Application), Ok(true));
    assert_eq!(ports(&book, &p), [51, 61, 60]);
}

/// Of the hints that worked and failed since, a flood of false hints
/// pushes out all but the two that worked last (a roaming peer's old
/// addresses go in turn); the peer's own announcement of a new address
/// still gets in, and is dialed first. Once it works, the one that worked
/// longest ago of the two may go.
#[test]
fn the_hints_kept_are_those_that_worked_last() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    for (port, t) in [(4001, 1), (4002, 3), (4003, 5)] {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
        book.mark_ok(&p, addr(port), at(t));
        book.mark_failed(&p, addr(port), at(t + 1));
    }
    for port in 1..=8 {
        assert_eq!(book.add(p, addr(port), AddrSource::Discovery), Ok(true));
    }
    let left = ports(&book, &p);
    assert_eq!(left[6..], [4003, 4002], "{left:?}");
    assert_eq!(book.len(), 8);
    let round = book.round(&p, 2, |_| false);
    assert!(round.contains(&addr(4002)) && round.contains(&addr(4003)));
    // the peer's new address
    assert_eq!(book.add(p, addr(4004), AddrSource::Discovery), Ok(true));
    assert_eq!(book.round(&p, 2, |_| false)[0], addr(4004));
    book.mark_ok(&p, addr(4004), at(10));
    assert_eq!(book.add(p, addr(9), AddrSource::Discovery), Ok(true));
    let left = ports(&book, &p);
    assert!(!left.contains(&4002) && left.contains(&4003), "{left:?}");
    // With one place a peer, none is kept: a new hint takes it.
    let mut one = AddressBook::new(1, 64);
    one.add(p, addr(4001), AddrSource::Discovery).unwrap();
    one.mark_ok(&p, addr(4001), at(1));
    one.mark_failed(&p, addr(4001), at(2));
    assert_eq!(one.add(p, addr(4002), AddrSource::Discovery), Ok(true));
    assert_eq!(ports(&one, &p), [4002]);
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

/// How many rounds a keeper takes to dial a peer's true hint that worked
/// and then failed (a partition) while a LAN host floods fresh false
/// hints: one a round in the partition, as the sim's host does, then
/// the peer's own announcement at the heal, a fresh false hint right
/// after it, and after each failed dial of a false hint the true address
/// and a fresh one (one for one: no hint older than the true one is
/// pushed out). Returns the round that dials it.
fn rounds_to_redial_a_worked_hint(book: &mut AddressBook) -> Option<u64> {
    let p = peer(1);
    let truth = addr(4000);
    let mut fresh = 100;
    let mut announce = |book: &mut AddressBook| {
        let _ = book.add(p, addr(fresh), AddrSource::Discovery);
        fresh += 1;
    };
    book.add(p, truth, AddrSource::Discovery).unwrap();
    book.mark_ok(&p, truth, at(1));
    // while connected, the host's hints pile up
    for _ in 0..7 {
        announce(book);
    }
    // the partition: every dial fails, the host goes on announcing
    for round in 2..12 {
        for a in book.round(&p, 2, |_| false) {
            book.mark_failed(&p, a, at(round));
            announce(book);
            announce(book);
        }
    }
    // the heal
    let _ = book.add(p, truth, AddrSource::Discovery);
    announce(book);
    (1..=20u64).find(|round| {
        let dialed = book.round(&p, 2, |_| false);
        if dialed.contains(&truth) {
            return true;
        }
        for a in dialed {
            book.mark_failed(&p, a, at(100 + round));
            let _ = book.add(p, truth, AddrSource::Discovery);
            announce(book);
        }
        false
    })
}

/// A hint that worked and then failed is dialed in the first round after
/// the heal, however many false hints a LAN host announced meanwhile.
#[test]
fn a_hint_that_worked_is_dialed_at_once_after_a_flood() {
    let mut book = AddressBook::new(8, 64);
    let rounds = rounds_to_redial_a_worked_hint(&mut book);
    assert_eq!(rounds, Some(1), "{:?}", ports(&book, &peer(1)));
}

/// As the book was before it kept the hints that worked last (the
/// deliberate fault `WorkedHintEvictable`): the true hint, pushed out by
/// false hints in the partition and heard again at the heal, waits behind
/// the 6 false ones heard before it, dialed in the 7th round (2.5 to 3
/// minutes at the backoff's cap).
#[cfg(feature = "fault-injection")]
#[test]
fn without_the_kept_places_a_worked_hint_waits_its_turn() {
    let mut book = AddressBook::new(8, 64);
    book.fault = Some(crate::fault::Fault::WorkedHintEvictable);
    assert_eq!(rounds_to_redial_a_worked_hint(&mut book), Some(7));
}

/// Restores `p`'s `port`, from `source`, as a saved book's line says:
/// `history`, at the restart's one instant.
fn restore(book: &mut AddressBook, p: PeerId, port: u16, source: AddrSource, history: AddrHistory) {
    book.add(p, addr(port), source).unwrap();
    book.restore(&p, addr(port), history, at(1));
}

/// A saved book's addresses that worked are restored at one instant, in
/// the order the file lists them, best first: they rank in that order,
/// whatever their source (an application's address ranked before a hint
/// the file listed first), and of those that failed since, the hints
/// kept from hints that never worked are the first listed, those that
/// worked most recently (the last listed were kept).
#[test]
fn restored_addresses_keep_the_files_order() {
    use AddrHistory::{Worked, WorkedThenFailed};
    use AddrSource::{Application, Discovery};
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    restore(&mut book, p, 4, Discovery, Worked);
    restore(&mut book, p, 5, Application, Worked);
    restore(&mut book, p, 1, Discovery, WorkedThenFailed);
    restore(&mut book, p, 6, Application, WorkedThenFailed);
    restore(&mut book, p, 2, Discovery, WorkedThenFailed);
    restore(&mut book, p, 3, Discovery, WorkedThenFailed);
    assert_eq!(ports(&book, &p), [4, 5, 1, 6, 2, 3]);
    // hints that never worked fill the peer's places: of the two kept
    // places, the hint that works takes one, the first listed of those
    // that failed since the other
    for port in 10..30 {
        book.add(p, addr(port), Discovery).unwrap();
    }
    assert_eq!(ports(&book, &p), [4, 5, 29, 28, 27, 26, 1, 6]);
}

/// At the book's total, what the application gives takes the place of
/// the worst hint: of hints restored alike, the one the file listed last
/// (it was the first, which had worked most recently).
#[test]
fn at_the_total_a_restored_book_loses_its_last_hint() {
    let (p, q) = (peer(1), peer(2));
    let mut book = AddressBook::new(8, 3);
    for port in [1, 2, 3] {
        restore(
            &mut book,
            p,
            port,
            AddrSource::Discovery,
            AddrHistory::WorkedThenFailed,
        );
    }
    assert_eq!(book.add(q, addr(9), AddrSource::Application), Ok(true));
    assert_eq!(ports(&book, &p), [1, 2]);
}

/// An address restored as having worked then failed is not working
/// (nor is it forgotten at a failure, as a hint that never worked is),
/// and once a dial to it works it is, even at the very instant of the
/// restore: the success is reported after the restored failure.
#[test]
fn a_restored_failure_gives_way_to_a_success() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    restore(
        &mut book,
        p,
        1,
        AddrSource::Discovery,
        AddrHistory::WorkedThenFailed,
    );
    let entry = *book.get(&p).next().unwrap();
    assert_eq!(entry.history(), AddrHistory::WorkedThenFailed);
    assert!(!entry.worked_last() && !entry.unproven_hint());
    book.mark_failed(&p, addr(1), at(1));
    assert_eq!(ports(&book, &p), [1]);
    let before = book.revision();
    book.mark_ok(&p, addr(1), at(1));
    assert_eq!(book.get(&p).next().unwrap().history(), AddrHistory::Worked);
    assert_ne!(book.revision(), before, "no save owed");
    // and a restore does not undo what this run learned
    book.restore(&p, addr(1), AddrHistory::WorkedThenFailed, at(1));
    assert_eq!(book.get(&p).next().unwrap().history(), AddrHistory::Worked);
}

/// Review s54 (review): an address a handshake proved just now (the
/// application's own connection through it) takes the place of the one
/// of its source that worked longest ago in a full peer; as an untried
/// address it could push out none of them (`Full`), and the address
/// that works now was not recorded. One of a lesser source still cannot
/// push out a better one.
#[test]
fn an_address_that_worked_now_makes_room_among_those_that_worked() {
    let p = peer(1);
    let app = AddrSource::Application;
    let mut book = AddressBook::new(3, 64);
    for port in 1..=3 {
        book.add(p, addr(port), app).unwrap();
        book.mark_ok(&p, addr(port), at(u64::from(port)));
    }
    assert_eq!(book.add(p, addr(4), app), Err(BookError::Full));
    assert_eq!(
        book.insert(p, addr(4), app, Some(at(10)), &|_, _| false),
        Ok(Added::New)
    );
    assert_eq!(ports(&book, &p), [4, 3, 2]);
    let hint = book.insert(p, addr(5), AddrSource::Discovery, Some(at(11)), &|_, _| {
        false
    });
    assert_eq!(hint, Err(BookError::Full));
    assert_eq!(ports(&book, &p), [4, 3, 2]);
}
