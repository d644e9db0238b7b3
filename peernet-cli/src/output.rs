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
/// would set the title, clear the screen, write the clipboard) and the
/// bidirectional overrides (text that reads other than it is) are shown
/// as `\u{..}`, and bytes that are not UTF-8 as `\xNN`.
pub(crate) fn for_terminal(bytes: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && c != '\n' && c != '\t') || bidi {
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

#[cfg(test)]
mod tests {
    use super::for_terminal;

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
