//! Where the tool's lines go: event lines to stdout and logs to stderr,
//! each written by its own thread behind a bounded, lossy queue; a
//! command's one result (a PeerId, a ticket, a reply) to stdout directly,
//! where a failure to write it fails the command.

use std::io::Write;
use std::sync::OnceLock;

use crate::Failure;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use peernet_tokio::text::escapes;
/// The one escaper of the tool, shared with the library's error messages.
pub(crate) use peernet_tokio::text::{Layout, escape};

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
        .map_err(|e| Failure::because(1, "stdout", &e))
}

/// [`write_result`] of one line.
pub(crate) fn print_result(line: &str) -> Result<(), Failure> {
    write_result(format!("{line}\n").as_bytes())
}

/// The most characters of a peer's words that [`peer_text`] shows.
pub(crate) const PEER_TEXT_CHARS: usize = 200;

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
            _ if escapes(c, Layout::Line) => {
                out.push_str(&escape(c.to_string().as_bytes(), Layout::Line))
            }
            _ => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{Layout, cut, escape, one_line, peer_text};

    /// Every bidirectional control in a peer's words is shown as its
    /// escape (the escaper's own tests are in `peernet_proto::text`).
    #[test]
    fn a_peers_words_show_no_bidirectional_control() {
        for c in ['\u{061c}', '\u{200e}', '\u{202e}', '\u{2069}'] {
            assert_eq!(
                peer_text(format!("a{c}b").as_bytes()),
                format!("a\\u{{{:x}}}b", u32::from(c))
            );
        }
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
