//! What an operator or an application types: PeerIds, tickets, labels,
//! handles, trust lists and address books as text. Any text gives a
//! value or a typed error, never a panic; and what is accepted has one
//! text form, read back as the same value.

use peernet_driver::book_file::SavedBook;
use peernet_driver::{Label, PeerId, Ticket, TrustList};
use proptest::prelude::*;

/// Books that loaded, over every case (the property reaches its branch).
static LOADED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A peer id's text: valid, or one of the ways a paste goes wrong.
fn peer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<[u8; 32]>().prop_map(|seed| peernet_driver::Identity::from_seed(&seed)
            .peer_id()
            .to_string()),
        1 => "[0-9a-fA-F]{62,66}",
        1 => any::<String>(),
    ]
}

/// A line of an address book: the right shape with odd fields, or noise.
fn book_line() -> impl Strategy<Value = String> {
    let addr = prop_oneof![
        4 => "(1|127|0|255|224)\\.[0-9]{1,3}\\.[0-9]\\.[0-9]{1,3}:[0-9]{1,5}",
        2 => "\\[(::1|::|::ffff:1\\.2\\.3\\.4|fe80::1(%[0-9])?|2001:db8::[0-9a-f]{1,4})\\]:[0-9]{1,5}",
        1 => any::<String>(),
    ];
    let source = prop_oneof![
        Just("application".to_string()),
        Just("ticket".to_string()),
        Just("discovery".to_string()),
        ".{0,12}",
    ];
    let worked = prop_oneof![Just(""), Just(" worked"), Just(" worked "), Just("  ")];
    prop_oneof![
        6 => (peer_text(), addr, source, worked)
            .prop_map(|(p, a, s, w)| format!("{p} {a} {s}{w}")),
        1 => Just(String::new()),
        1 => Just("# a comment".to_string()),
        1 => "end [0-9 +-]{0,22}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_peer_id_text_is_read_back_or_refused(text in peer_text()) {
        if let Ok(peer) = text.parse::<PeerId>() {
            prop_assert_eq!(peer.to_string(), text);
        }
    }

    #[test]
    fn any_ticket_text_is_read_back_or_refused(text in prop_oneof![
        any::<String>(),
        "peernet1.{0,400}",
        "[pP][eE][eE][rR][nN][eE][tT]1[a-zA-Z2-7]{0,320}",
    ]) {
        if let Ok(ticket) = text.parse::<Ticket>() {
            prop_assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
        }
    }

    #[test]
    fn any_label_or_handle_text_is_taken_or_refused(text in any::<String>()) {
        if let Ok(label) = Label::new(&text) {
            prop_assert_eq!(label.as_str(), text.as_str());
        }
        let _ = peernet_driver::Handle::new(&text);
    }

    #[test]
    fn any_trust_list_text_is_read_back_or_refused(
        lines in prop::collection::vec(prop_oneof![peer_text(), peer_text().prop_map(|p| format!("{p} a label")), any::<String>(), "end [0-9]{1,3}".prop_map(String::from)], 0..6),
        crlf in any::<bool>(),
    ) {
        let ending = if crlf { "\r\n" } else { "\n" };
        let text: String = std::iter::once(peernet_proto::trust::TRUST_LIST_HEADER.to_string())
            .chain(lines)
            .map(|l| l + ending)
            .collect();
        if let Ok(list) = TrustList::from_text(&text) {
            prop_assert_eq!(TrustList::from_text(&list.to_text()), Ok(list));
        }
    }

    #[test]
    fn any_book_text_is_read_back_or_refused(
        lines in prop::collection::vec(book_line(), 0..8),
        crlf in any::<bool>(),
        count in prop_oneof![Just(None), Just(Some(None)), (0usize..10).prop_map(|n| Some(Some(n)))],
    ) {
        let ending = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("{}{ending}", peernet_driver::book_file::BOOK_HEADER);
        for line in &lines {
            text.push_str(line);
            text.push_str(ending);
        }
        // (`Some(None)`: the end line counts the lines that may be
        // address lines, so that some of these books load)
        let entries = lines
            .iter()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("end "))
            .count();
        if let Some(n) = count {
            text.push_str(&format!("end {}{ending}", n.unwrap_or(entries)));
        }
        if let Ok(book) = SavedBook::from_text(&text) {
            LOADED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let again = SavedBook::from_text(&book.to_text());
            prop_assert_eq!(again.as_ref(), Ok(&book), "{}", book.to_text());
        }
    }
}

/// The book property above loads books, not only refuses text: run after
/// it in the same process (alphabetical test order is not promised, so
/// this runs the property itself when it has not).
#[test]
fn some_generated_books_load() {
    if LOADED.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        any_book_text_is_read_back_or_refused();
    }
    assert!(LOADED.load(std::sync::atomic::Ordering::Relaxed) > 0);
}
