use super::*;
use crate::Identity;

pub(super) fn peer(n: u8) -> PeerId {
    Identity::from_seed(&[n; 32]).peer_id()
}

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn ports(book: &AddressBook, p: &PeerId) -> Vec<u16> {
    book.get(p).map(|e| e.addr.port()).collect()
}

pub(super) fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn an_address_no_dial_can_reach_is_refused() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    for text in [
        "127.0.0.1:0",
        "0.0.0.0:4000",
        "[::]:4000",
        "[::ffff:0.0.0.0]:4000",
        "224.0.0.251:5353",
        "[ff02::fb]:5353",
        "255.255.255.255:4000",
    ] {
        let bad: SocketAddr = text.parse().unwrap();
        assert!(!is_dialable(&bad), "{text}");
        assert_eq!(
            book.add(p, bad, AddrSource::Ticket),
            Err(BookError::Undialable(bad))
        );
    }
    assert_eq!(book.len(), 0);
    for text in [
        "127.0.0.1:1",
        "192.0.2.7:4000",
        "[::1]:4000",
        "[fe80::1%2]:9",
    ] {
        let good: SocketAddr = text.parse().unwrap();
        assert!(is_dialable(&good), "{text}");
        assert_eq!(book.add(p, good, AddrSource::Ticket), Ok(true));
    }
}

#[test]
fn ranks_worked_then_untried_then_hints_then_failed() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    book.add(p, addr(1), AddrSource::Discovery).unwrap();
    book.add(p, addr(2), AddrSource::Application).unwrap();
    book.add(p, addr(3), AddrSource::Ticket).unwrap();
    book.add(p, addr(4), AddrSource::Application).unwrap();
    book.add(p, addr(5), AddrSource::Application).unwrap();
    // Untried: application and ticket before the discovery hint.
    assert_eq!(ports(&book, &p), [2, 4, 5, 3, 1]);
    book.mark_ok(&p, addr(4), at(10));
    book.mark_ok(&p, addr(5), at(20));
    book.mark_failed(&p, addr(2), at(30));
    // 5 worked last, then 4; 2 failed: last.
    assert_eq!(ports(&book, &p), [5, 4, 3, 1, 2]);
    // 5 fails now: below the untried ones, but before 2, which
    // never worked.
    book.mark_failed(&p, addr(5), at(40));
    assert_eq!(ports(&book, &p), [4, 3, 1, 5, 2]);
    // A false hint fails once and is forgotten.
    book.mark_failed(&p, addr(1), at(50));
    assert_eq!(ports(&book, &p), [4, 3, 5, 2]);
    assert_eq!(book.len(), 4);
    // Working again after a failure puts it first.
    book.mark_ok(&p, addr(2), at(60));
    assert_eq!(ports(&book, &p), [2, 4, 3, 5]);
    // A hint that worked once is kept when it fails.
    book.add(p, addr(6), AddrSource::Discovery).unwrap();
    book.mark_ok(&p, addr(6), at(70));
    book.mark_failed(&p, addr(6), at(80));
    assert_eq!(ports(&book, &p), [2, 4, 3, 6, 5]);
}

#[test]
fn an_ipv4_mapped_address_is_its_ipv4_form() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    let v4: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().unwrap();
    assert_eq!(book.add(p, mapped, AddrSource::Discovery), Ok(true));
    assert_eq!(book.add(p, v4, AddrSource::Ticket), Ok(false));
    assert_eq!(book.len(), 1);
    let e = book.get(&p).next().unwrap();
    assert_eq!((e.addr, e.source), (v4, AddrSource::Ticket));
    book.mark_ok(&p, mapped, at(1));
    assert!(book.get(&p).next().unwrap().last_ok.is_some());
    assert!(book.remove(&p, mapped));
    assert!(book.is_empty());
    // any other IPv6 address is kept as it is, a link-local one's
    // scope id included
    let scoped: SocketAddr = "[fe80::1%2]:9".parse().unwrap();
    book.add(p, scoped, AddrSource::Discovery).unwrap();
    assert_eq!(book.get(&p).next().unwrap().addr, scoped);
    let SocketAddr::V6(kept) = book.get(&p).next().unwrap().addr else {
        panic!("an IPv6 address")
    };
    assert_eq!(kept.scope_id(), 2);
}

/// The revision moves with what a saved book holds, and only then.
#[test]
fn the_revision_moves_with_what_is_worth_saving() {
    let mut book = AddressBook::new(8, 64);
    let p = peer(1);
    let mut last = book.revision();
    let mut moved = |book: &AddressBook| {
        let now = book.revision();
        let moved = now != last;
        last = now;
        moved
    };
    book.add(p, addr(1), AddrSource::Discovery).unwrap();
    assert!(moved(&book), "an address added");
    book.add(p, addr(1), AddrSource::Discovery).unwrap();
    assert!(!moved(&book), "known already");
    book.add(p, addr(1), AddrSource::Ticket).unwrap();
    assert!(moved(&book), "a better source");
    book.mark_ok(&p, addr(1), at(5));
    assert!(moved(&book), "worked for the first time");
    book.mark_ok(&p, addr(1), at(6));
    assert!(!moved(&book), "worked again");
    book.mark_failed(&p, addr(1), at(7));
    assert!(moved(&book), "failed after it had worked");
    book.mark_failed(&p, addr(1), at(8));
    assert!(!moved(&book), "failed again");
    book.mark_ok(&p, addr(1), at(9));
    assert!(moved(&book), "worked again after failing");
    book.add(p, addr(2), AddrSource::Discovery).unwrap();
    moved(&book);
    book.mark_failed(&p, addr(2), at(8));
    assert!(moved(&book), "a false hint forgotten");
    book.remove(&p, addr(1));
    assert!(moved(&book), "an address removed");
    book.add(p, addr(3), AddrSource::Application).unwrap();
    moved(&book);
    book.remove_peer(&p);
    assert!(moved(&book), "a peer removed");
    book.remove_peer(&p);
    assert!(!moved(&book), "nothing left to remove");
}

#[test]
fn a_second_source_keeps_the_better_one() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    assert_eq!(book.add(p, addr(1), AddrSource::Discovery), Ok(true));
    assert_eq!(book.add(p, addr(1), AddrSource::Ticket), Ok(false));
    assert_eq!(book.add(p, addr(1), AddrSource::Discovery), Ok(false));
    assert_eq!(book.get(&p).next().unwrap().source, AddrSource::Ticket);
    assert_eq!(book.len(), 1);
}

#[test]
fn bounded_per_peer_and_in_total() {
    let (p, q) = (peer(1), peer(2));
    let mut book = AddressBook::new(2, 3);
    book.add(p, addr(1), AddrSource::Application).unwrap();
    book.add(p, addr(2), AddrSource::Application).unwrap();
    book.mark_ok(&p, addr(1), at(1));
    // A hint does not push out an application address, untried or
    // failed.
    assert_eq!(
        book.add(p, addr(3), AddrSource::Discovery),
        Err(BookError::Full)
    );
    book.mark_failed(&p, addr(2), at(2));
    assert_eq!(
        book.add(p, addr(3), AddrSource::Discovery),
        Err(BookError::Full)
    );
    // A failed one makes room for a new untried one of its source.
    assert_eq!(book.add(p, addr(3), AddrSource::Application), Ok(true));
    assert_eq!(ports(&book, &p), [1, 3]);
    book.add(q, addr(9), AddrSource::Ticket).unwrap();
    assert_eq!(book.len(), 3);
    // Total full: a new peer gets nothing, and no empty entry lingers.
    let r = peer(3);
    assert_eq!(
        book.add(r, addr(7), AddrSource::Application),
        Err(BookError::Full)
    );
    assert!(!book.has(&r));
    book.remove_peer(&p);
    assert_eq!(book.len(), 1);
    assert!(book.remove(&q, addr(9)));
    assert!(!book.remove(&q, addr(9)));
    assert!(book.is_empty());
    assert!(!book.has(&q));
}

/// A hint heard again while still untried is the latest heard again:
/// dialed first.
#[test]
fn an_untried_hint_heard_again_is_dialed_first() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    let revision = |b: &AddressBook| b.revision();
    book.add(p, addr(4000), AddrSource::Discovery).unwrap();
    for port in 1..=3 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    let before = revision(&book);
    assert_eq!(book.add(p, addr(4000), AddrSource::Discovery), Ok(false));
    assert_eq!(ports(&book, &p), [4000, 3, 2, 1]);
    assert_eq!(revision(&book), before, "no save for an order of hints");
}

#[test]
fn a_sources_name_reads_back_as_it() {
    // (exhaustive: a new source fails to compile here, a reminder to add
    // it to `AddrSource::ALL`, whose every entry must read back)
    let listed = |source: AddrSource| match source {
        AddrSource::Application | AddrSource::Ticket | AddrSource::Discovery => {
            AddrSource::ALL.contains(&source)
        }
    };
    for source in AddrSource::ALL {
        assert!(listed(source));
        assert_eq!(AddrSource::from_name(source.name()), Some(source));
    }
    let names: alloc::vec::Vec<_> = AddrSource::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["application", "ticket", "discovery"]);
    for other in ["", "Application", "app", "ticket ", "discovery\0"] {
        assert_eq!(AddrSource::from_name(other), None, "{other:?}");
    }
}

/// The unproven hints of `p` that `round(p, room)` takes, by port.
fn round_hints(book: &AddressBook, p: &PeerId, room: usize) -> Vec<u16> {
    let round = book.round(p, room, |_| false);
    let unproven = |a: &SocketAddr| book.get(p).any(|e| e.addr == *a && e.unproven_hint());
    round
        .iter()
        .filter(|a| unproven(a))
        .map(|a| a.port())
        .collect()
}

/// A round takes every address the application or a ticket gave and
/// every hint that worked, but of the hints that never worked only
/// `room`: the latest heard, then the one heard longest ago; in the
/// book's order.
#[test]
fn a_round_takes_few_unproven_hints_and_every_other_address() {
    let p = peer(1);
    let mut book = AddressBook::new(16, 64);
    book.add(p, addr(1), AddrSource::Application).unwrap();
    book.add(p, addr(2), AddrSource::Ticket).unwrap();
    book.add(p, addr(20), AddrSource::Discovery).unwrap();
    book.mark_ok(&p, addr(20), at(1));
    for port in 10..16 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    let round: Vec<u16> = book
        .round(&p, 2, |_| false)
        .iter()
        .map(|a| a.port())
        .collect();
    assert_eq!(round, [20, 1, 2, 15, 10]);
    assert_eq!(round_hints(&book, &p, 1), [15]);
    assert_eq!(round_hints(&book, &p, 0), Vec::<u16>::new());
    assert_eq!(
        book.round(&p, usize::MAX, |_| false).len(),
        9,
        "no room limit"
    );
    // One address a peer: a hint is dialed.
    let mut one = AddressBook::new(1, 64);
    one.add(p, addr(7), AddrSource::Discovery).unwrap();
    assert_eq!(round_hints(&one, &p, 2), [7]);
}

/// A LAN host that re-announces every false hint as it is forgotten, and
/// a fresh one besides, every round, cannot keep the peer's own hint
/// (heard once, among the first) from its turn: the second place goes to
/// the hint that has waited longest.
#[test]
fn every_hint_gets_its_turn_while_more_are_announced() {
    let p = peer(1);
    let truth = addr(500);
    let mut book = AddressBook::new(64, 256);
    for port in 1..4 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    book.add(p, truth, AddrSource::Discovery).unwrap();
    let mut fresh = 100;
    for port in 4..8 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    let hints = book.get(&p).count();
    let turn = (1..=hints).find(|round| {
        let dialed = book.round(&p, 2, |_| false);
        assert_eq!(dialed.len(), 2, "round {round}: {dialed:?}");
        if dialed.contains(&truth) {
            return true;
        }
        for a in dialed {
            book.mark_failed(&p, a, at(*round as u64));
            // heard again, and a fresh one
            book.add(p, a, AddrSource::Discovery).unwrap();
            book.add(p, addr(fresh), AddrSource::Discovery).unwrap();
            fresh += 1;
        }
        false
    });
    assert!(turn.is_some(), "the true hint waited {hints} rounds");
}

/// A hint heard again keeps its place in the line: a LAN host that
/// announces the peer's own hint again before each round, between fresh
/// hints of its own (one older, one newer than it), cannot send it to
/// the back and keep it there. Before, a hint heard again joined the
/// back of the line, and the true hint was never dialed.
#[test]
fn a_hint_heard_again_keeps_its_place_in_line() {
    let p = peer(1);
    let truth = addr(500);
    let mut book = AddressBook::new(8, 64);
    for port in 1..4 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    book.add(p, truth, AddrSource::Discovery).unwrap();
    let mut fresh = 100;
    let dialed_in = (1..=20u64).find(|round| {
        book.add(p, addr(fresh), AddrSource::Discovery).unwrap();
        book.add(p, truth, AddrSource::Discovery).unwrap();
        book.add(p, addr(fresh + 1), AddrSource::Discovery).unwrap();
        fresh += 2;
        let dialed = book.round(&p, 2, |_| false);
        if dialed.contains(&truth) {
            return true;
        }
        for a in dialed {
            book.mark_failed(&p, a, at(*round));
        }
        false
    });
    let rounds = dialed_in.expect("the true hint was never dialed in 20 rounds");
    assert!(rounds <= 8, "the true hint waited {rounds} rounds");
}

/// Hints that answer `busy` stay (the address answered as the peer) and
/// take turns: with room for two, each of three is dialed at least every
/// other round.
#[test]
fn hints_that_answer_busy_take_turns() {
    let p = peer(1);
    let mut book = AddressBook::new(8, 64);
    for port in 1..4 {
        book.add(p, addr(port), AddrSource::Discovery).unwrap();
    }
    let mut last = [0u64; 4];
    for round in 1..=12u64 {
        for a in book.round(&p, 2, |_| false) {
            book.mark_busy(&p, a, at(round));
            last[usize::from(a.port())] = round;
        }
        for port in 1..4 {
            assert!(round - last[port] < 2, "round {round}: {last:?}");
        }
    }
}
