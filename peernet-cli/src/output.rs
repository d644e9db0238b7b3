//! Where the tool's lines go: event lines to stdout and logs to stderr,
//! each written by its own thread behind a bounded, lossy queue; a
//! command's one result (a PeerId, a ticket, a reply) to stdout directly,
//! where a failure to write it fails the command.

use std::io::Write;
use std::sync::OnceLock;

use crate::Failure;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// How many lines stdout and stderr each hold for a slow reader before
/// dropping (and counting) the rest.
pub(crate) const OUTPUT_QUEUE_LINES: usize = 1024;

/// Event lines for stdout, written by their own thread (see `out`).
pub(crate) static STDOUT: OnceLock<NonBlocking> = OnceLock::new();

pub(crate) fn non_blocking<W: Write + Send + 'static>(
    writer: W,
    name: &str,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(OUTPUT_QUEUE_LINES)
        .thread_name(name)
        .finish(writer)
}

/// Prints one event line. Never blocks: a line that does not fit in the
/// queue because stdout is not being read is dropped and counted.
pub(crate) fn out(mut line: String) {
    line.push('\n');
    match STDOUT.get() {
        // One `write` is one queued line.
        Some(stdout) => {
            let _ = stdout.clone().write(line.as_bytes());
        }
        None => {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }
}

/// Writes a command's result to stdout, whole, before the command
/// succeeds: a stdout that cannot take it (a full disk, a closed pipe)
/// fails the command with one `error:` line, never a panic or an exit 0
/// with the result lost.
pub(crate) fn write_result(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure(1, format!("stdout: {e}")))
}

/// [`write_result`] of one line.
pub(crate) fn print_result(line: &str) -> Result<(), Failure> {
    write_result(format!("{line}\n").as_bytes())
}

/// How text from a peer is laid out where it is shown, which decides
/// the little that [`escape`] keeps beyond ordinary characters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    /// A whole reply written to a terminal: newlines and tabs are kept.
    Lines,
    /// Part of one line (an `error:` line): newlines and tabs are escaped.
    Line,
    /// One field of a line that splits on whitespace (a label on a
    /// `peers` line): every whitespace character is escaped too.
    Field,
}

/// The most characters of a peer's words that [`peer_text`] shows.
pub(crate) const PEER_TEXT_CHARS: usize = 200;

/// Bytes a peer sent (or any text not ours), made harmless for a
/// terminal: the one escaper of the tool.
///
/// Shown as an escape: every control character (escape sequences that
/// would set the title, clear the screen, write the clipboard; newline
/// and tab are kept in [`Layout::Lines`]), every bidirectional control
/// ([`is_bidi_control`]: text that reads other than it is), the line and
/// paragraph separators, every other character Rust's `Debug` does not
/// print as itself (the invisible format characters such as U+200B,
/// private use, unassigned), a backslash (so that every `\` shown begins
/// an escape), and in [`Layout::Field`] every whitespace character.
/// Spaces, quotes and combining marks are shown as they are. The forms
/// are Rust's: `\n`, `\t`, `\r`, `\0`, `\\`, else `\u{..}`; a byte that is
/// not UTF-8 is shown as `\xNN`.
pub(crate) fn escape(bytes: &[u8], layout: Layout) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if !escaped(c, layout) {
                out.push(c);
                continue;
            }
            let debug = c.escape_debug();
            match debug.len() {
                // (a character `Debug` prints as itself: a space in a field)
                1 => out.extend(c.escape_unicode()),
                _ => out.extend(debug),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The tool's own `error:` line made one line that a terminal shows as
/// it is, whatever the text it quotes (a path, a file's line): a newline
/// or carriage return becomes a space, and every other character
/// [`escape`] escapes on a line is escaped, but for a backslash, which
/// is left as it is (what came from a peer is already escaped in it,
/// with its own backslashes doubled, and stays as it was).
pub(crate) fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' => out.push(c),
            _ if escaped(c, Layout::Line) => {
                out.push_str(&escape(c.to_string().as_bytes(), Layout::Line))
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether [`escape`] shows `c` as an escape.
fn escaped(c: char, layout: Layout) -> bool {
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
    match std::str::from_utf8(&buf[..len]) {
        Ok(text) => text.escape_debug().nth(1) == Some('\\'),
        Err(_) => true,
    }
}

/// The tool's one cutter: the start of `bytes` that holds at most `max`
/// characters (each byte that is not UTF-8 counting as one, as [`escape`]
/// shows it), never cutting a character in two; and whether anything was
/// left out.
pub(crate) fn cut(bytes: &[u8], max: usize) -> (&[u8], bool) {
    let (mut end, mut count) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        let lens = chunk.valid().chars().map(char::len_utf8);
        for len in lens.chain(chunk.invalid().iter().map(|_| 1)) {
            if count == max {
                return (&bytes[..end], true);
            }
            end += len;
            count += 1;
        }
    }
    (bytes, false)
}

/// A peer's words (a handler's error, a GOODBYE's reason) for one line
/// of a terminal: [`cut`] to [`PEER_TEXT_CHARS`] characters, with `…`
/// when cut, and escaped ([`Layout::Line`]).
pub(crate) fn peer_text(bytes: &[u8]) -> String {
    let (kept, cut_off) = cut(bytes, PEER_TEXT_CHARS);
    let mut text = escape(kept, Layout::Line);
    if cut_off {
        text.push('…');
    }
    text
}

/// The characters of Unicode's `Bidi_Control` property (PropList.txt,
/// the same twelve since Unicode 6.3): the Arabic letter mark U+061C, the
/// left-to-right and right-to-left marks U+200E and U+200F, the
/// embeddings, pops and overrides U+202A to U+202E, and the isolates
/// U+2066 to U+2069. Each is invisible and reorders the text around it
/// ("Trojan Source"): a peer's text that holds one can show a line other
/// than the bytes it is. The marks (U+061C, U+200E, U+200F) used to be
/// let through.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::{Layout, cut, escape, is_bidi_control, one_line, peer_text};

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
            assert_eq!(
                peer_text(format!("a{c}b").as_bytes()),
                format!("a\\u{{{code:x}}}b")
            );
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

    /// A carriage return is shown as `\r` (it was `\u{d}` in a reply, and
    /// `\r` on an `error:` line, before the two escapers were made one).
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

    /// A byte that is not UTF-8 is shown as `\xNN` (it was U+FFFD on an
    /// `error:` line before the two escapers were made one).
    #[test]
    fn a_peers_words_are_escaped_and_cut_to_200_characters() {
        assert_eq!(peer_text(b"ok"), "ok");
        assert_eq!(peer_text(b"\x1b[2J\r\n\x00"), r"\u{1b}[2J\r\n\0");
        assert_eq!(peer_text(&[0xff, b'a']), r"\xffa");
        let long = peer_text("é".repeat(300).as_bytes());
        assert_eq!(long, format!("{}…", "é".repeat(200)));
        // the cut is made before the escapes, so none is cut in two
        let long = peer_text("\x1b".repeat(300).as_bytes());
        assert_eq!(long, format!("{}…", r"\u{1b}".repeat(200)));
        assert_eq!(peer_text("é".repeat(200).as_bytes()), "é".repeat(200));
    }

    /// What the merged escaper adds to what each of the two it replaces
    /// showed: a backslash is escaped (a peer cannot write what reads as
    /// an escape), and so are the invisible characters `Debug` escapes
    /// (a zero-width space, a byte-order mark, a tag character, private
    /// use, the line separator), in a reply too; quotes, combining marks
    /// and spaces of every width are shown as they are (an `error:` line
    /// used to show `\'` and escape combining marks).
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

    #[test]
    fn the_cut_counts_characters_and_never_splits_one() {
        assert_eq!(cut(b"abc", 2), (&b"ab"[..], true));
        assert_eq!(cut(b"abc", 3), (&b"abc"[..], false));
        assert_eq!(cut("éé".as_bytes(), 1), ("é".as_bytes(), true));
        // a byte that is not UTF-8 counts as one, as it is shown as one
        assert_eq!(cut(&[0xff, 0xfe, b'a'], 2), (&[0xff, 0xfe][..], true));
        assert_eq!(cut(b"", 0), (&b""[..], false));
        assert_eq!(cut(b"a", 0), (&b""[..], true));
    }

    /// The tool's `error:` line is one line with nothing a terminal acts
    /// on, and what was escaped in it already (a peer's words) is left as
    /// it was: its backslashes are not doubled again.
    #[test]
    fn an_error_line_is_one_harmless_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        assert_eq!(
            one_line("\u{1b}[31mred\t\u{202e}"),
            r"\u{1b}[31mred\t\u{202e}"
        );
        let peer = escape("\u{1b}\\".as_bytes(), Layout::Line);
        assert_eq!(one_line(&peer), peer);
        assert_eq!(one_line(r"C:\keys"), r"C:\keys");
    }
}
