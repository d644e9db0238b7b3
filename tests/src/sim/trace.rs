//! The run's trace: a readable line per thing that happened, of which the
//! last few are kept for failure reports, and a running hash of all of
//! them, which the determinism check compares between two runs.

use std::collections::VecDeque;
use std::fmt::{self, Write};

/// How many of the latest lines a failure report shows.
pub const KEPT_LINES: usize = 60;

/// A bounded ring of trace lines and an FNV-1a hash over every line ever
/// written.
pub struct Trace {
    ring: VecDeque<String>,
    spare: Vec<String>,
    hash: u64,
    lines: u64,
    /// Also print every line to stderr (`PEERNET_SIM_TRACE=1`).
    pub echo: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Default for Trace {
    fn default() -> Self {
        Trace {
            ring: VecDeque::with_capacity(KEPT_LINES),
            spare: Vec::new(),
            hash: FNV_OFFSET,
            lines: 0,
            echo: std::env::var_os("PEERNET_SIM_TRACE").is_some_and(|v| v == "1"),
        }
    }
}

impl Trace {
    /// Writes one line at virtual time `now` (nanoseconds).
    pub fn line(&mut self, now: u64, args: fmt::Arguments<'_>) {
        let mut buf = if self.ring.len() == KEPT_LINES {
            self.ring.pop_front().unwrap_or_default()
        } else {
            self.spare.pop().unwrap_or_default()
        };
        buf.clear();
        let _ = write!(buf, "{} ", Time(now));
        let _ = buf.write_fmt(args);
        for b in buf.bytes().chain(std::iter::once(b'\n')) {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        if self.echo {
            eprintln!("{buf}");
        }
        self.ring.push_back(buf);
    }

    /// The hash of every line written so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many lines were written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The latest lines, oldest first.
    pub fn last(&self) -> Vec<String> {
        self.ring.iter().cloned().collect()
    }
}

/// Virtual time, printed as seconds with microseconds.
#[derive(Clone, Copy)]
pub struct Time(pub u64);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 / 1_000;
        write!(f, "{:>3}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}
