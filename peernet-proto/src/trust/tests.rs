use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

use crate::identity::Identity;

fn peer(i: u8) -> PeerId {
    Identity::from_seed(&[i; 32]).peer_id()
}

#[test]
fn label_limits() {
    assert_eq!(Label::new(""), Err(InvalidLabel::Empty));
    assert!(Label::new(&"a".repeat(128)).is_ok());
    assert_eq!(
        Label::new(&"a".repeat(129)),
        Err(InvalidLabel::TooLong { len: 129 })
    );
    // 64 two-byte characters are 128 bytes; one more is too long even
    // though it is only 65 characters.
    assert!(Label::new(&"é".repeat(64)).is_ok());
    assert_eq!(
        Label::new(&"é".repeat(65)),
        Err(InvalidLabel::TooLong { len: 130 })
    );
    for bad in ["a\tb", "a\nb", "a\rb", "a\u{7f}", "a\u{85}b", "a\u{2028}b"] {
        assert_eq!(
            Label::new(bad),
            Err(InvalidLabel::ForbiddenCharacter),
            "{bad:?}"
        );
    }
    for bad in [" a", "a ", " ", "\u{a0}a", "a\u{3000}"] {
        assert_eq!(
            Label::new(bad),
            Err(InvalidLabel::SurroundingWhitespace),
            "{bad:?}"
        );
    }
    // Invisible and bidirectional formatting: "admin" with a hidden
    // override or a zero-width space would list as another label.
    for (bad, c) in [
        ("nimda\u{202E}", '\u{202E}'),
        ("ad\u{200B}min", '\u{200B}'),
        ("a\u{2066}b\u{2069}", '\u{2066}'),
        ("a\u{FEFF}b", '\u{FEFF}'),
        ("a\u{AD}b", '\u{AD}'),
        ("a\u{200F}b", '\u{200F}'),
        ("a\u{61C}b", '\u{61C}'),
        ("admin\u{E0020}", '\u{E0020}'),
        ("a\u{34F}b", '\u{34F}'),
        ("\u{3164}admin", '\u{3164}'),
        ("bob\u{17B4}", '\u{17B4}'),
        ("bob\u{17B5}", '\u{17B5}'),
    ] {
        assert_eq!(
            Label::new(bad),
            Err(InvalidLabel::FormattingCharacter(c)),
            "{bad:?}"
        );
    }
    assert_eq!(
        InvalidLabel::FormattingCharacter('\u{202E}').to_string(),
        "a label must not contain the invisible formatting character U+202E"
    );
    // Every format character (Cf) of Unicode 15.0 (from its
    // UnicodeData.txt), each alone between two letters, but the joiners
    // and the prepended concatenation marks, which are visible (a trust
    // list that holds one, valid before the rule, still loads).
    let format: [(u32, u32); 21] = [
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let prepended = |c: char| {
        matches!(
            c,
            '\u{0600}'..='\u{0605}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{110BD}'
                | '\u{110CD}'
        )
    };
    for c in format.iter().flat_map(|&(a, b)| a..=b) {
        let c = char::from_u32(c).unwrap();
        let label = alloc::format!("a{c}b");
        if c == '\u{200C}' || c == '\u{200D}' || prepended(c) {
            assert!(Label::new(&label).is_ok(), "U+{:04X}", u32::from(c));
        } else {
            assert_eq!(
                Label::new(&label),
                Err(InvalidLabel::FormattingCharacter(c)),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }
    // the joiners that emoji sequences and some scripts need stay
    assert!(Label::new("dev 👩\u{200D}💻").is_ok());
    assert!(Label::new("می\u{200C}خواهم").is_ok());
    assert!(Label::new("home \u{2764}\u{FE0F}").is_ok());
    let ok = Label::new("laptop (Ada) — 🔑").unwrap();
    assert_eq!(ok.as_str(), "laptop (Ada) — 🔑");
    assert_eq!(ok.to_string(), "laptop (Ada) — 🔑");
    assert_eq!(Label::try_from("x"), Label::new("x"));
    assert_eq!(Label::try_from(String::from("x")), Label::new("x"));
    assert_eq!("x".parse::<Label>(), Label::new("x"));
    assert_eq!(
        alloc::format!("{:?}", Label::new("x").unwrap()),
        "Label(\"x\")"
    );
}

#[test]
fn end_line_parsing() {
    assert_eq!(parse_end_line("end 0"), Some(Some(0)));
    assert_eq!(parse_end_line("end 12"), Some(Some(12)));
    for bad in [
        "end", "end ", "end 01", "end +1", "end -1", "end 1 ", "end  1", "end x",
    ] {
        assert_eq!(parse_end_line(bad), Some(None), "{bad:?}");
    }
    assert_eq!(parse_end_line("end 99999999999999999999999999"), Some(None));
    assert_eq!(parse_end_line("endless"), None);
    assert_eq!(parse_end_line("ende 1"), None);
}

#[test]
fn lines_report_termination() {
    let lines: Vec<(usize, &str, bool)> = Lines::new("a\r\n\nb\rc\n\rd")
        .map(|l| (l.number, l.text, l.terminated))
        .collect();
    assert_eq!(
        lines,
        [
            (1, "a", true),
            (2, "", true),
            (3, "b\rc", true),
            (4, "\rd", false)
        ]
    );
    assert_eq!(Lines::new("").count(), 0);
}

#[test]
fn set_operations() {
    let mut list = TrustList::new();
    assert!(list.is_empty());
    assert!(list.insert(peer(1), None));
    assert!(!list.insert(peer(1), Some(Label::new("one").unwrap())));
    assert_eq!(list.label(&peer(1)).map(Label::as_str), Some("one"));
    assert!(!list.insert(peer(1), None));
    assert_eq!(list.label(&peer(1)), None);
    assert!(list.contains(&peer(1)));
    assert!(!list.contains(&peer(2)));
    assert_eq!(list.len(), 1);
    assert!(list.remove(&peer(1)));
    assert!(!list.remove(&peer(1)));
    assert!(list.is_empty());

    let mut list: TrustList = [peer(3), peer(1), peer(3)].into_iter().collect();
    assert_eq!(list.len(), 2);
    list.insert(peer(1), Some(Label::new("kept").unwrap()));
    list.extend([peer(1), peer(2)]);
    assert_eq!(list.label(&peer(1)).map(Label::as_str), Some("kept"));
    let order: Vec<PeerId> = list.iter().map(|(p, _)| *p).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert_eq!(list.iter().len(), 3);
    assert_eq!(list.iter().rev().count(), 3);
}
