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

/// Bytes a peer sent, made harmless for a terminal, lines kept: newline
/// and tab stay, every other control character (escape sequences that
/// would set the title, clear the screen, write the clipboard) and every
/// bidirectional control ([`is_bidi_control`]: text that reads other
/// than it is) are shown as `\u{..}`, and bytes that are not UTF-8 as
/// `\xNN`.
pub(crate) fn for_terminal(bytes: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c) {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.into_bytes()
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
    use super::{for_terminal, is_bidi_control};

    /// Every bidirectional control, each on its own and between letters, is
    /// shown as its escape; its neighbours in the Unicode tables are not
    /// (they are ordinary or visible characters: a hyphen, a quotation mark,
    /// U+2065 is unassigned, U+206A and on are deprecated no-ops).
    #[test]
    fn every_bidirectional_control_is_escaped() {
        let controls = [
            0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068,
            0x2069,
        ];
        for code in controls {
            let c = char::from_u32(code).unwrap();
            assert!(is_bidi_control(c), "U+{code:04X}");
            let shown = String::from_utf8(for_terminal(format!("a{c}b").as_bytes())).unwrap();
            assert_eq!(shown, format!("a\\u{{{code:x}}}b"), "U+{code:04X}");
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

    #[test]
    fn a_reply_for_a_terminal_keeps_its_lines_and_loses_its_controls() {
        let shown = |b: &[u8]| String::from_utf8(for_terminal(b)).unwrap();
        assert_eq!(shown(b"two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(shown("é ✓".as_bytes()), "é ✓");
        // a title, a cleared screen, a carriage return, DEL, a C1 control
        assert_eq!(
            shown("\x1b]0;PWNED\x07\x1b[2J\r\x7f\u{9b}".as_bytes()),
            r"\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{d}\u{7f}\u{9b}"
        );
        assert_eq!(shown("a\u{202e}b".as_bytes()), r"a\u{202e}b");
        assert_eq!(shown(&[b'a', 0xff, 0xc3]), r"a\xff\xc3");
    }
}
