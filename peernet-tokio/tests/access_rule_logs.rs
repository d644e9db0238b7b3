//! A panicking access rule is logged at `error`, at most once a second
//! per rule, however often a peer calls (each call is denied). A test
//! binary of its own: it installs the process's log subscriber.

mod common;
#[path = "common/lines.rs"]
mod lines;

use std::time::{Duration, Instant};

use lines::Lines;
use peernet_tokio::{Access, Bytes, CallError};

#[tokio::test]
async fn a_panicking_rule_is_logged_at_most_once_a_second() {
    let lines = Lines::capture(tracing::Level::ERROR);
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
    let text = lines.text();
    let logged = text.matches("the access rule panicked").count() as u64;
    assert!(
        (1..=1 + seconds).contains(&logged),
        "{logged} lines for 50 denials in {seconds} s:\n{text}"
    );
}
