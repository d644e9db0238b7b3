//! A panicking access rule is logged at `error`, at most once a second
//! per rule, however often a peer calls (each call is denied). A test
//! binary of its own: it installs the process's log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peernet_tokio::{Access, Bytes, CallError};

/// Every log line, kept.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_rule_is_logged_at_most_once_a_second() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(move || writer.clone())
        .init();
    // (the rule's panics are expected: keep them off the test's output)
    std::panic::set_hook(Box::new(|_| {}));
    let (a, b) = common::trusting_pair(5, 6).await;
    let b_peer = b.peer_id();
    let rule = Access::rule(|_| panic!("a bug in the rule"));
    b.expose_to("guarded", rule, |_, _| async { Ok(Bytes::new()) })
        .unwrap();
    a.connect(b_peer, b.local_addr().unwrap()).await.unwrap();
    let started = Instant::now();
    for _ in 0..50 {
        let denied = a
            .call(&b_peer, "guarded", b"", Duration::from_secs(5))
            .await;
        assert_eq!(denied, Err(CallError::Forbidden));
    }
    let seconds = started.elapsed().as_secs();
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let logged = text.matches("the access rule panicked").count() as u64;
    assert!(
        (1..=1 + seconds).contains(&logged),
        "{logged} lines for 50 denials in {seconds} s:\n{text}"
    );
}
