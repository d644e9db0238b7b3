//! A panicking access rule is logged at `error`, at most once a second
//! per rule, however often a peer calls (each call is denied). A test
//! binary of its own: it installs the process's log subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peernet_tokio::{Access, Bytes, CallError, Identity, Node, NodeConfig};

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
    let (a_id, b_id) = (Identity::from_seed(&[5; 32]), Identity::from_seed(&[6; 32]));
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let any = "127.0.0.1:0".parse().unwrap();
    let a = Node::bind(NodeConfig::new(a_id).trusting(b_peer), any)
        .await
        .unwrap();
    let b = Node::bind(NodeConfig::new(b_id).trusting(a_peer), any)
        .await
        .unwrap();
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
