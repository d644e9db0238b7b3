//! The test helpers' pipe readers ([`common::drain`], [`common::Said`],
//! [`common::Lines`]): a read interrupted by a signal is tried again, a
//! needle written across two reads is found, and a line that is not
//! UTF-8 is named.

mod common;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc;
use std::time::Duration;

use common::{Lines, Said, drain};

/// A pipe that answers each read with the next of its steps (a chunk, or
/// a read interrupted by a signal), then ends.
struct Scripted(VecDeque<Option<&'static [u8]>>);

impl Scripted {
    fn new(steps: &[Option<&'static [u8]>]) -> Scripted {
        Scripted(steps.iter().copied().collect())
    }
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(None) => Err(io::ErrorKind::Interrupted.into()),
            Some(Some(chunk)) => {
                buf[..chunk.len()].copy_from_slice(chunk);
                Ok(chunk.len())
            }
        }
    }
}

/// (the old readers stopped at the interrupted read, as if the pipe had
/// ended: `drain` kept "he", `Said` never saw the rest)
const INTERRUPTED: &[Option<&[u8]>] = &[Some(b"he"), None, Some(b"llo")];

#[test]
fn drain_reads_on_after_an_interrupted_read() {
    let (tx, ended) = mpsc::channel();
    let read = drain(Scripted::new(INTERRUPTED), tx);
    ended.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(&read.lock().unwrap()[..], b"hello");
}

#[test]
fn said_reads_on_after_an_interrupted_read() {
    let mut said = Said::new(Scripted::new(INTERRUPTED));
    assert!(
        said.holds_within("hello", Duration::from_secs(30)),
        "{}",
        said.text()
    );
}

#[test]
fn said_finds_a_needle_across_reads() {
    let mut said = Said::new(Scripted::new(&[Some(b"a ne"), Some(b"e"), Some(b"dle b")]));
    assert!(said.holds_within("needle", Duration::from_secs(30)));
    assert!(!said.holds_within("needles", Duration::from_secs(30)));
    assert_eq!(said.text(), "a needle b");
    assert!(said.holds_within("", Duration::from_secs(30)));
}

/// A line of `serve` that is not UTF-8 fails the test that reads it,
/// naming its bytes; the lines before it are read as they came. (The
/// reader thread panicked on it: the test saw its stdout end, or waited
/// 30 s for a line, and said neither what came nor why.)
#[test]
fn lines_name_a_line_that_is_not_utf8() {
    let lines = Lines::new(Scripted::new(&[Some(
        b"listening\r\nbad \xff line\nafter\n",
    )]));
    assert_eq!(lines.next(), "listening");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lines.next()))
        .expect_err("a line that is not UTF-8");
    let said = failed.downcast_ref::<String>().expect("a message").as_str();
    assert_eq!(
        said,
        r#"serve's stdout: a line that is not UTF-8: "bad \xff line""#
    );
    assert_eq!(lines.next(), "after");
}
