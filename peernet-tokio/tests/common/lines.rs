//! Every log line a test's subscriber writes, kept for the test to read.
//! Test files that install the process's log subscriber take it with
//! `#[path = "common/lines.rs"] mod lines;`.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line, kept; clones share them.
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    /// Installs the process's log subscriber at `level`, writing plain
    /// text (no colours) into the returned lines. Once per test binary.
    pub(crate) fn capture(level: tracing::Level) -> Lines {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        lines
    }

    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
