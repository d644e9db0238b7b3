//! The trust list text format: round trips, every rejection with its line
//! number, truncation, and fuzzing.

use peernet_proto::trust::TRUST_LIST_HEADER;
use peernet_proto::{
    Identity, InvalidLabel, InvalidPeerId, Label, PeerId, TrustList, TrustListError,
    TrustListErrorKind,
};
use proptest::prelude::*;

const WEAK_KEY: &str = "0100000000000000000000000000000000000000000000000000000000000000";
/// y = 2 has no x on the curve: decompression fails.
const NOT_A_POINT: &str = "0200000000000000000000000000000000000000000000000000000000000000";

fn peer(i: u8) -> PeerId {
    Identity::from_seed(&[i; 32]).peer_id()
}

fn label(s: &str) -> Label {
    Label::new(s).unwrap()
}

/// A valid 3-entry list: one without a label, one with an ASCII label and
/// one with a multi-byte label (so truncation also cuts inside characters).
fn three() -> TrustList {
    let mut list = TrustList::new();
    list.insert(peer(1), None);
    list.insert(peer(2), Some(label("laptop")));
    list.insert(peer(3), Some(label("Zoë's phone ✓")));
    list
}

fn err(text: &str) -> TrustListError {
    match TrustList::from_text(text) {
        Ok(list) => panic!("accepted {text:?} as {list:?}"),
        Err(e) => e,
    }
}

fn assert_rejects(text: &str, line: usize, kind: TrustListErrorKind) {
    assert_eq!(err(text), TrustListError { line, kind }, "text: {text:?}");
}

/// The list text from body lines, with header and the given end line.
fn doc(body: &[&str], end: &str) -> String {
    let mut text = String::from("peernet-trust-list v1\n");
    for line in body {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(end);
    text
}

#[test]
fn round_trip_without_labels() {
    let list: TrustList = (1..=5).map(peer).collect();
    let text = list.to_text();
    assert_eq!(TrustList::from_text(&text), Ok(list.clone()));
    assert!(list.iter().all(|(_, label)| label.is_none()));
    assert_eq!(text.lines().count(), 7);
}

#[test]
fn round_trip_with_labels() {
    let list = three();
    let text = list.to_text();
    let parsed = TrustList::from_text(&text).unwrap();
    assert_eq!(parsed, list);
    assert_eq!(parsed.label(&peer(1)), None);
    assert_eq!(parsed.label(&peer(2)).map(Label::as_str), Some("laptop"));
    assert_eq!(
        parsed.label(&peer(3)).map(Label::as_str),
        Some("Zoë's phone ✓")
    );
    assert_eq!(parsed.to_text(), text);
}

#[test]
fn empty_list_round_trips() {
    let text = TrustList::new().to_text();
    assert_eq!(text, "peernet-trust-list v1\nend 0\n");
    assert_eq!(TrustList::from_text(&text), Ok(TrustList::new()));
}

#[test]
fn output_is_sorted_and_independent_of_insertion_order() {
    let mut forward = TrustList::new();
    let mut backward = TrustList::new();
    for i in 1..=8 {
        forward.insert(peer(i), Some(label(&format!("peer {i}"))));
    }
    for i in (1..=8).rev() {
        backward.insert(peer(i), Some(label(&format!("peer {i}"))));
    }
    assert_eq!(forward.to_text(), backward.to_text());

    let text = forward.to_text();
    let keys: Vec<&str> = text.lines().skip(1).take(8).map(|l| &l[..64]).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
}

#[test]
fn exact_text_form() {
    let mut expected: Vec<(PeerId, Option<&str>)> = vec![
        (peer(1), None),
        (peer(2), Some("laptop")),
        (peer(3), Some("Zoë's phone ✓")),
    ];
    expected.sort_by_key(|(p, _)| *p);
    let mut text = format!("{TRUST_LIST_HEADER}\n");
    for (p, l) in &expected {
        match l {
            Some(l) => text.push_str(&format!("{p} {l}\n")),
            None => text.push_str(&format!("{p}\n")),
        }
    }
    text.push_str("end 3\n");
    assert_eq!(three().to_text(), text);
    // Pinned so that an accidental format change is noticed: the seed
    // 0x11 key is the one identity.rs pins.
    let one: TrustList = [(
        "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"
            .parse::<PeerId>()
            .unwrap(),
        Some(label("alice")),
    )]
    .into_iter()
    .collect();
    assert_eq!(
        one.to_text(),
        "peernet-trust-list v1\n\
         d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737 alice\n\
         end 1\n"
    );
}

#[test]
fn comments_blank_lines_and_any_order_are_accepted() {
    let (a, b) = (peer(1).to_string(), peer(2).to_string());
    let text = format!(
        "peernet-trust-list v1\n\
         # my peers\n\
         \n\
         {b} second\n\
         #{a} not this one\n\
         {a}\n\
         \n\
         end 2\n"
    );
    let list = TrustList::from_text(&text).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.label(&peer(2)).map(Label::as_str), Some("second"));
    assert_eq!(list.label(&peer(1)), None);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let list = three();
    let crlf = list.to_text().replace('\n', "\r\n");
    assert_eq!(TrustList::from_text(&crlf), Ok(list.clone()));
    // Mixed endings too, line by line.
    let mixed = list.to_text().replacen('\n', "\r\n", 2);
    assert_eq!(TrustList::from_text(&mixed), Ok(list));
    // Only one \r is part of the line ending; another is in the label.
    let p = peer(1);
    assert_rejects(
        &doc(&[&format!("{p} x\r\r")], "end 1\n"),
        2,
        TrustListErrorKind::InvalidLabel(InvalidLabel::ForbiddenCharacter),
    );
    // A lone \r is not a line ending.
    assert_rejects(
        "peernet-trust-list v1\rend 0\r",
        1,
        TrustListErrorKind::MissingHeader,
    );
    // A cut right after the \r of the end line is still truncation.
    assert_rejects(
        "peernet-trust-list v1\r\nend 0\r",
        2,
        TrustListErrorKind::UnterminatedLine,
    );
}

#[test]
fn rejects_missing_or_wrong_header() {
    use TrustListErrorKind::MissingHeader;
    assert_rejects("", 1, MissingHeader);
    assert_rejects("\n", 1, MissingHeader);
    assert_rejects("end 0\n", 1, MissingHeader);
    assert_rejects("peernet-trust-list v2\nend 0\n", 1, MissingHeader);
    assert_rejects("peernet-trust-list v1 \nend 0\n", 1, MissingHeader);
    // (a byte-order mark before the header is named as such: the
    // header is there, and "expected the header" confused)
    assert_rejects(
        "\u{feff}peernet-trust-list v1\nend 0\n",
        1,
        TrustListErrorKind::ByteOrderMark,
    );
    assert_rejects(
        "# comment\npeernet-trust-list v1\nend 0\n",
        1,
        MissingHeader,
    );
    assert_rejects("\npeernet-trust-list v1\nend 0\n", 1, MissingHeader);
    assert_rejects(&format!("{}\nend 1\n", peer(1)), 1, MissingHeader);
    assert_rejects("{\"peers\": []}", 1, MissingHeader);
}

#[test]
fn rejects_invalid_keys() {
    let p = peer(1).to_string();
    let key = |k: &str| doc(&[&p, k], "end 2\n");
    let invalid = |e| TrustListErrorKind::InvalidKey(e);
    assert_rejects(&key(WEAK_KEY), 3, invalid(InvalidPeerId::Weak));
    assert_rejects(&key(NOT_A_POINT), 3, invalid(InvalidPeerId::NotAPoint));
    assert_rejects(
        &key(&peer(2).to_string().to_uppercase()),
        3,
        invalid(InvalidPeerId::Format),
    );
    assert_rejects(&key(&p[..63]), 3, invalid(InvalidPeerId::Format));
    assert_rejects(&key(&format!("{p}0")), 3, invalid(InvalidPeerId::Format));
    assert_rejects(
        &key(&format!("g{}", &p[1..])),
        3,
        invalid(InvalidPeerId::Format),
    );
    assert_rejects(&key(&format!(" {p}")), 3, invalid(InvalidPeerId::Format));
    assert_rejects(
        &key(&format!("{p}\tlabel")),
        3,
        invalid(InvalidPeerId::Format),
    );
    assert_rejects(&key("hello"), 3, invalid(InvalidPeerId::Format));
    assert_rejects(&key("endless"), 3, invalid(InvalidPeerId::Format));
    assert_rejects(
        &key(" # indented comment"),
        3,
        invalid(InvalidPeerId::Format),
    );
    assert_rejects(&key(" "), 3, invalid(InvalidPeerId::Format));
}

#[test]
fn weak_and_non_point_keys_are_rejected_as_peer_ids() {
    assert_eq!(WEAK_KEY.parse::<PeerId>(), Err(InvalidPeerId::Weak));
    assert_eq!(NOT_A_POINT.parse::<PeerId>(), Err(InvalidPeerId::NotAPoint));
}

#[test]
fn rejects_duplicate_keys_with_both_lines() {
    let (a, b) = (peer(1).to_string(), peer(2).to_string());
    assert_rejects(
        &doc(&[&a, "# c", &b, &format!("{a} again")], "end 3\n"),
        5,
        TrustListErrorKind::DuplicateKey { first_line: 2 },
    );
    assert_rejects(
        &doc(&[&b, &a, "", &b], "end 3\n"),
        5,
        TrustListErrorKind::DuplicateKey { first_line: 2 },
    );
}

#[test]
fn rejects_invalid_labels() {
    let p = peer(1);
    let with = |l: &str| doc(&[&format!("{p} {l}")], "end 1\n");
    let invalid = |e| TrustListErrorKind::InvalidLabel(e);
    assert_rejects(&with(""), 2, invalid(InvalidLabel::Empty));
    assert_rejects(&with(" x"), 2, invalid(InvalidLabel::SurroundingWhitespace));
    assert_rejects(&with("x "), 2, invalid(InvalidLabel::SurroundingWhitespace));
    assert_rejects(&with("a\tb"), 2, invalid(InvalidLabel::ForbiddenCharacter));
    assert_rejects(
        &with("a\u{1b}[31m"),
        2,
        invalid(InvalidLabel::ForbiddenCharacter),
    );
    assert_rejects(
        &with("admin\u{202E}"),
        2,
        invalid(InvalidLabel::FormattingCharacter('\u{202E}')),
    );
    assert_rejects(
        &with(&"x".repeat(129)),
        2,
        invalid(InvalidLabel::TooLong { len: 129 }),
    );
    assert!(TrustList::from_text(&with(&"x".repeat(128))).is_ok());
}

#[test]
fn rejects_missing_end() {
    let (a, b) = (peer(1).to_string(), peer(2).to_string());
    use TrustListErrorKind::MissingEnd;
    assert_rejects("peernet-trust-list v1\n", 2, MissingEnd);
    assert_rejects(&doc(&[&a, &b], ""), 4, MissingEnd);
    assert_rejects(&doc(&[&a, "# end 1", ""], ""), 5, MissingEnd);
}

#[test]
fn rejects_malformed_end_lines() {
    let a = peer(1).to_string();
    for end in [
        "end", "end ", "end 01", "end +1", "end 1 ", "end  1", "end one",
    ] {
        assert_rejects(
            &doc(&[&a], &format!("{end}\n")),
            3,
            TrustListErrorKind::InvalidEnd,
        );
    }
    assert_rejects(
        &doc(&[&a], "end 999999999999999999999999999999\n"),
        3,
        TrustListErrorKind::InvalidEnd,
    );
}

#[test]
fn rejects_count_mismatch() {
    let (a, b) = (peer(1).to_string(), peer(2).to_string());
    assert_rejects(
        &doc(&[&a, &b], "end 3\n"),
        4,
        TrustListErrorKind::CountMismatch {
            declared: 3,
            found: 2,
        },
    );
    assert_rejects(
        &doc(&[&a, "", &b], "end 1\n"),
        5,
        TrustListErrorKind::CountMismatch {
            declared: 1,
            found: 2,
        },
    );
    assert_rejects(
        &doc(&[], "end 1\n"),
        2,
        TrustListErrorKind::CountMismatch {
            declared: 1,
            found: 0,
        },
    );
    // A middle entry deleted: caught by the count.
    let text = three().to_text();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    let damaged = lines.join("\n") + "\n";
    assert_rejects(
        &damaged,
        4,
        TrustListErrorKind::CountMismatch {
            declared: 3,
            found: 2,
        },
    );
}

#[test]
fn rejects_trailing_content() {
    let a = peer(1).to_string();
    use TrustListErrorKind::TrailingContent;
    let valid = doc(&[&a], "end 1\n");
    assert_rejects(&format!("{valid}\n"), 4, TrailingContent);
    assert_rejects(&format!("{valid}# comment\n"), 4, TrailingContent);
    assert_rejects(&format!("{valid}x"), 4, TrailingContent);
    assert_rejects(&format!("{valid}{a}\n"), 4, TrailingContent);
    assert_rejects(&format!("{valid}{valid}"), 4, TrailingContent);
    assert_rejects(&format!("{valid}\r\n"), 4, TrailingContent);
}

#[test]
fn rejects_unterminated_last_line() {
    let a = peer(1).to_string();
    use TrustListErrorKind::UnterminatedLine;
    assert_rejects("peernet-trust-list v1", 1, UnterminatedLine);
    assert_rejects(&doc(&[&a], "end 1"), 3, UnterminatedLine);
    assert_rejects(&doc(&[], &a), 2, UnterminatedLine);
    assert_rejects(&doc(&[&a], "# comment"), 3, UnterminatedLine);
}

#[test]
fn error_display_names_the_line() {
    let e = err(&doc(&[WEAK_KEY], "end 1\n"));
    assert_eq!(
        e.to_string(),
        "line 2: invalid key: the key is a weak (small-order) ed25519 point"
    );
    assert_eq!(
        err("").to_string(),
        "line 1: expected the header `peernet-trust-list v1`"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let text = three().to_text();
    assert_eq!(TrustList::from_text(&text), Ok(three()));
    let lines = text.lines().count();
    assert_eq!(lines, 5);

    let mut checked = 0;
    for cut in 0..text.len() {
        if !text.is_char_boundary(cut) {
            continue;
        }
        let result = TrustList::from_text(&text[..cut]);
        assert!(result.is_err(), "cut at byte {cut} accepted: {result:?}");
        checked += 1;
    }
    assert!(checked > 200);

    // At every line boundary, the error says where the end line was due.
    let mut boundary = 0;
    for kept in 0..lines {
        let prefix = &text[..boundary];
        let expected = match kept {
            0 => TrustListError {
                line: 1,
                kind: TrustListErrorKind::MissingHeader,
            },
            _ => TrustListError {
                line: kept + 1,
                kind: TrustListErrorKind::MissingEnd,
            },
        };
        assert_eq!(TrustList::from_text(prefix), Err(expected), "{prefix:?}");
        boundary += text[boundary..].find('\n').unwrap() + 1;
    }
    assert_eq!(boundary, text.len());

    // The same for the CRLF form.
    let crlf = text.replace('\n', "\r\n");
    for cut in (0..crlf.len()).filter(|&c| crlf.is_char_boundary(c)) {
        assert!(TrustList::from_text(&crlf[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn single_byte_damage_is_never_a_smaller_list() {
    // Dropping any one line, or any one byte, never yields a valid list
    // with fewer entries.
    let text = three().to_text();
    let lines: Vec<&str> = text.lines().collect();
    for drop in 0..lines.len() {
        let mut damaged: Vec<&str> = lines.clone();
        damaged.remove(drop);
        let damaged = damaged.join("\n") + "\n";
        assert!(TrustList::from_text(&damaged).is_err(), "{damaged:?}");
    }
    for (i, _) in text.char_indices() {
        let mut damaged = text.clone();
        damaged.remove(i);
        if let Ok(list) = TrustList::from_text(&damaged) {
            assert_eq!(list.len(), 3, "{damaged:?}");
        }
    }
}

fn arb_label() -> impl Strategy<Value = Option<Label>> {
    prop::option::of(
        "[^\\p{Cc}\\u{2028}\\u{2029}]{1,40}"
            .prop_filter_map("not a label", |s| Label::new(&s).ok()),
    )
}

proptest! {
    #[test]
    fn arbitrary_lists_round_trip(
        entries in prop::collection::vec((any::<[u8; 32]>(), arb_label()), 0..20)
    ) {
        let list: TrustList = entries
            .iter()
            .map(|(seed, label)| (Identity::from_seed(seed).peer_id(), label.clone()))
            .collect();
        let text = list.to_text();
        prop_assert_eq!(TrustList::from_text(&text), Ok(list.clone()));
        prop_assert_eq!(TrustList::from_text(&text.replace('\n', "\r\n")), Ok(list.clone()));
        // Every proper prefix is refused.
        for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)).step_by(7) {
            prop_assert!(TrustList::from_text(&text[..cut]).is_err());
        }
        let peers: Vec<&PeerId> = list.iter().map(|(p, _)| p).collect();
        prop_assert!(peers.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = TrustList::from_text(&text);
        let _ = Label::new(&text);
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        body in prop::collection::vec(
            prop_oneof![
                Just(String::new()),
                Just(String::from("# c")),
                "end [0-9 +a]{0,4}",
                "[0-9a-f]{60,66}( .{0,10})?",
                any::<String>(),
            ],
            0..8,
        ),
        crlf in any::<bool>(),
    ) {
        let ending = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("{TRUST_LIST_HEADER}{ending}");
        for line in &body {
            text.push_str(line);
            text.push_str(ending);
        }
        if let Ok(list) = TrustList::from_text(&text) {
            prop_assert_eq!(TrustList::from_text(&list.to_text()), Ok(list));
        }
    }
}

/// A label with a prepended concatenation mark (visible: it spans the
/// digits that follow), valid before labels refused format characters,
/// still loads: one such label used to fail the whole trust list, and
/// with it the node's start and `unpair`.
#[test]
fn a_label_with_a_prepended_mark_still_loads() {
    let p = peer(1);
    for label in ["\u{0600}\u{0661}\u{0662}", "آية\u{06DD}"] {
        let text = doc(&[&format!("{p} {label}")], "end 1\n");
        let list = TrustList::from_text(&text).unwrap_or_else(|e| panic!("{label:?}: {e}"));
        assert_eq!(list.label(&p).map(Label::as_str), Some(label));
    }
}
