//! Where the tool's lines go: event lines to stdout and logs to stderr,
//! each written by its own thread behind a bounded, lossy queue.

use std::io::Write;
use std::sync::OnceLock;

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
        None => print!("{line}"),
    }
}
