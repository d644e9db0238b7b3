//! A connection's reader and writer log inside its `peernet.conn` span
//! (connection id, direction, remote address) when a subscriber wants
//! that span; the driver skips entering the span only when none does. A
//! test binary of its own: it installs the process's log subscriber.

mod common;
#[path = "common/lines.rs"]
mod lines;
#[path = "common/until.rs"]
mod until;

use lines::Lines;

#[tokio::test]
async fn a_connections_task_logs_carry_its_span() {
    let lines = Lines::capture(tracing::Level::DEBUG);
    let (a, b) = common::trusting_pair(7, 8).await;
    let b_peer = b.peer_id();
    a.connect(b_peer, b.local_addr().unwrap()).await.unwrap();
    // the writers of the connection log its end
    assert!(a.disconnect(&b_peer));
    let said = |l: &str| l.contains("transport closed");
    until::until("a writer logs the close", || lines.text().lines().any(said)).await;
    let text = lines.text();
    let line = text.lines().find(|l| said(l)).unwrap();
    assert!(
        line.contains("peernet.conn{conn=") && line.contains("direction="),
        "logged outside its connection's span: {line}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
