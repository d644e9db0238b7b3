//! Text that is not ours (a peer's GOODBYE reason, a handle name it
//! called, a decoder's message that quotes it, a line of a file an
//! operator edited) made harmless for a terminal or a log line: the one
//! escaper of the core, the driver and the `peernet` tool.
//!
//! [`escaped`] is a [`Display`](fmt::Display) adaptor that writes the
//! escaped text without allocating; [`escape`] collects it into a
//! `String`.
//!
//! ```
//! use peernet_proto::text::{Layout, escape, escaped};
//!
//! let said = "unknown variant `\u{1b}[2J`, expected \"up\"\u{202e}";
//! assert_eq!(
//!     escape(said.as_bytes(), Layout::Line),
//!     r#"unknown variant `\u{1b}[2J`, expected "up"\u{202e}"#
//! );
//! assert_eq!(format!("({})", escaped("a\nb", Layout::Line)), r"(a\nb)");
//! ```

use alloc::string::{String, ToString};
use core::fmt;

/// How the text is laid out where it is shown, which decides the little
/// that [`escape`] keeps beyond ordinary characters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Layout {
    /// A whole text written to a terminal (a reply): newlines and tabs
    /// are kept.
    Lines,
    /// Part of one line (an error message, a log field): newlines and
    /// tabs are escaped.
    Line,
    /// One field of a line that splits on whitespace (a label on a list's
    /// line): every whitespace character is escaped too.
    Field,
}

/// `text` shown harmless for a terminal, laid out as `layout` says: a
/// [`Display`](fmt::Display) that writes [`escape`]'s text, without
/// allocating. A `&str`, a `String`, a `&[u8]` or a handle all do.
pub fn escaped<T: AsRef<[u8]> + ?Sized>(text: &T, layout: Layout) -> Escaped<'_> {
    Escaped {
        bytes: text.as_ref(),
        layout,
    }
}

/// Text shown escaped: made by [`escaped`]; its `Display` writes what
/// [`escape`] returns.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    layout: Layout,
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes.utf8_chunks() {
            let valid = chunk.valid();
            // (runs of characters shown as they are go out whole)
            let mut plain = 0;
            for (at, c) in valid.char_indices() {
                if !escapes(c, self.layout) {
                    continue;
                }
                f.write_str(&valid[plain..at])?;
                plain = at + c.len_utf8();
                let debug = c.escape_debug();
                match debug.len() {
                    // (a character `Debug` prints as itself: a space in a
                    // field, a character that renders blank)
                    1 => write!(f, "{}", c.escape_unicode())?,
                    _ => write!(f, "{debug}")?,
                }
            }
            f.write_str(&valid[plain..])?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// `bytes` made harmless for a terminal, laid out as `layout` says.
///
/// Shown as an escape: every control character (escape sequences that
/// would set the title, clear the screen, write the clipboard; newline
/// and tab are kept in [`Layout::Lines`]), every bidirectional control
/// ([`is_bidi_control`]: text that reads other than it is), the line and
/// paragraph separators, every other character Rust's `Debug` does not
/// print as itself (the invisible format characters such as U+200B,
/// private use, unassigned) or that renders blank, a backslash (so that
/// every `\` shown begins an escape), and in [`Layout::Field`] every
/// whitespace character. Spaces, quotes and combining marks are shown as
/// they are. The forms are Rust's: `\n`, `\t`, `\r`, `\0`, `\\`, else
/// `\u{..}`; a byte that is not UTF-8 is shown as `\xNN`.
pub fn escape(bytes: &[u8], layout: Layout) -> String {
    escaped(bytes, layout).to_string()
}

/// Whether [`escape`] shows `c` as an escape in `layout`.
pub fn escapes(c: char, layout: Layout) -> bool {
    match c {
        '\n' | '\t' => layout != Layout::Lines,
        '\\' | '\u{2028}' | '\u{2029}' => true,
        '\'' | '"' => false,
        _ if c.is_control() || is_bidi_control(c) => true,
        _ if c.is_whitespace() => layout == Layout::Field,
        _ => unprintable(c) || renders_blank(c),
    }
}

/// Characters that Rust's `Debug` prints as themselves (past a string's
/// first character) but that render as nothing or as a blank, so that
/// text could hide in them or a name look like another: the Hangul
/// fillers, the blank Braille pattern, the combining grapheme joiner and
/// Khmer's inherent vowels. (Variation selectors are left alone: they
/// change the character before them, as in emoji, and hide nothing on
/// their own.)
fn renders_blank(c: char) -> bool {
    matches!(
        c,
        '\u{115f}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{ffa0}'
            | '\u{2800}'
            | '\u{034f}'
            | '\u{17b4}'
            | '\u{17b5}'
    )
}

/// Whether Rust's `Debug` of a string shows `c`, past its first
/// character, as an escape: a format character, a separator, private
/// use, unassigned (the standard library's own tables, which follow
/// Unicode's). Past the first character, a combining mark is shown as
/// itself, as it should be: it is part of the character before it.
fn unprintable(c: char) -> bool {
    let mut buf = [b' '; 5];
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    match core::str::from_utf8(&buf[..len]) {
        Ok(text) => text.escape_debug().nth(1) == Some('\\'),
        Err(_) => true,
    }
}

/// The characters of Unicode's `Bidi_Control` property (PropList.txt,
/// the same twelve since Unicode 6.3): the Arabic letter mark U+061C, the
/// left-to-right and right-to-left marks U+200E and U+200F, the
/// embeddings, pops and overrides U+202A to U+202E, and the isolates
/// U+2066 to U+2069. Each is invisible and reorders the text around it
/// ("Trojan Source"): a peer's text that holds one can show a line other
/// than the bytes it is.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::String;

    use super::{Layout, escape, escaped, is_bidi_control};

    /// Every bidirectional control, each on its own and between letters, is
    /// shown as its escape, in every layout; its neighbours in the Unicode
    /// tables are not bidirectional controls (they are ordinary or visible
    /// characters: a hyphen, a quotation mark, U+2065 is unassigned,
    /// U+206A and on are deprecated no-ops).
    #[test]
    fn every_bidirectional_control_is_escaped() {
        let controls = [
            0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068,
            0x2069,
        ];
        for code in controls {
            let c = char::from_u32(code).unwrap();
            assert!(is_bidi_control(c), "U+{code:04X}");
            for layout in [Layout::Lines, Layout::Line, Layout::Field] {
                let shown = escape(format!("a{c}b").as_bytes(), layout);
                assert_eq!(shown, format!("a\\u{{{code:x}}}b"), "U+{code:04X}");
            }
        }
        for code in [0x061b, 0x061d, 0x2010, 0x2029, 0x202f, 0x2065] {
            let c = char::from_u32(code).unwrap();
            assert!(!is_bidi_control(c), "U+{code:04X}");
        }
        // Unicode's whole `Bidi_Control` set, and nothing else
        let all = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|c| is_bidi_control(*c))
            .count();
        assert_eq!(all, controls.len());
    }

    /// A carriage return is shown as `\r`.
    #[test]
    fn a_reply_for_a_terminal_keeps_its_lines_and_loses_its_controls() {
        let shown = |b: &[u8]| escape(b, Layout::Lines);
        assert_eq!(shown(b"two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(shown("é ✓".as_bytes()), "é ✓");
        // a title, a cleared screen, a carriage return, DEL, a C1 control
        assert_eq!(
            shown("\x1b]0;PWNED\x07\x1b[2J\r\x7f\u{9b}".as_bytes()),
            r"\u{1b}]0;PWNED\u{7}\u{1b}[2J\r\u{7f}\u{9b}"
        );
        assert_eq!(shown("a\u{202e}b".as_bytes()), r"a\u{202e}b");
        assert_eq!(shown(&[b'a', 0xff, 0xc3]), r"a\xff\xc3");
    }

    /// A backslash is escaped (a peer cannot write what reads as an
    /// escape), and so are the invisible characters `Debug` escapes (a
    /// zero-width space, a byte-order mark, a tag character, private use,
    /// the line separator), in every layout; quotes, combining marks and
    /// spaces of every width are shown as they are.
    #[test]
    fn one_escaper_for_every_layout() {
        for layout in [Layout::Lines, Layout::Line, Layout::Field] {
            let shown = |s: &str| escape(s.as_bytes(), layout);
            assert_eq!(shown(r"a\u{1b}"), r"a\\u{1b}", "{layout:?}");
            assert_eq!(
                shown("a\u{200b}b\u{feff}\u{e0041}\u{e000}\u{2028}"),
                r"a\u{200b}b\u{feff}\u{e0041}\u{e000}\u{2028}",
                "{layout:?}"
            );
            // e + U+0301 COMBINING ACUTE ACCENT, a Devanagari vowel sign
            assert_eq!(shown("it's\"e\u{301}\"कि"), "it's\"e\u{301}\"कि");
            // characters that render blank, which Debug prints as they are
            // (review s45), and a variation selector, which is left alone
            assert_eq!(
                shown("a\u{3164}b\u{2800}c\u{115f}\u{ffa0}\u{34f}\u{17b4}d"),
                r"a\u{3164}b\u{2800}c\u{115f}\u{ffa0}\u{34f}\u{17b4}d",
                "{layout:?}"
            );
            assert_eq!(shown("\u{2764}\u{fe0f}"), "\u{2764}\u{fe0f}");
        }
        assert_eq!(
            escape("a b\u{3000}c".as_bytes(), Layout::Line),
            "a b\u{3000}c"
        );
        assert_eq!(escape(b"a\nb\tc", Layout::Line), r"a\nb\tc");
        // a field: every whitespace character too, so that a line splits
        assert_eq!(
            escape("a b\u{a0}c\u{3000}d".as_bytes(), Layout::Field),
            r"a\u{20}b\u{a0}c\u{3000}d"
        );
    }

    /// The adaptor, which writes runs of plain text whole, writes what
    /// escaping one character at a time gives: plain text before, between
    /// and after escapes, and bytes that are not UTF-8 at the start,
    /// between runs and at the end.
    #[test]
    fn the_adaptor_escapes_as_one_character_at_a_time_would() {
        fn one_at_a_time(bytes: &[u8], layout: Layout) -> String {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match (super::escapes(c, layout), c.escape_debug().len()) {
                        (false, _) => out.push(c),
                        (true, 1) => out.extend(c.escape_unicode()),
                        (true, _) => out.extend(c.escape_debug()),
                    }
                }
                for byte in chunk.invalid() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            out
        }
        let cases: [&[u8]; 7] = [
            b"",
            b"plain",
            b"\x1b",
            b"a\x1bb\nc d",
            &[0xff, b'a', 0xc3, b'"', 0xe2, 0x80],
            "\u{202e}x\u{3164}\u{e9} \u{2800}\\".as_bytes(),
            "\u{301}e\u{301}\u{2764}\u{fe0f}\u{200b}".as_bytes(),
        ];
        for bytes in cases {
            for layout in [Layout::Lines, Layout::Line, Layout::Field] {
                let shown = format!("{}", escaped(bytes, layout));
                assert_eq!(shown, one_at_a_time(bytes, layout), "{bytes:?}");
            }
        }
        assert_eq!(
            format!("<{}>", escaped(&[0xff, b'a', 0xc3, b'"'][..], Layout::Line)),
            r#"<\xffa\xc3">"#
        );
    }
}
