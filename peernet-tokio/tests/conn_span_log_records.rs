//! With `tracing`'s `log` feature on and no `tracing` subscriber, the
//! `log` crate's logger gets a connection's `peernet.conn` span too: its
//! fields when it opens, and `-> peernet.conn;` / `<- peernet.conn;` as
//! its reader and writer enter and leave it (target
//! `tracing::span::active`), which is what ties their lines to the
//! connection. No subscriber enables the span, yet it is not dropped.
//! A test binary of its own: it installs the process's `log` logger.

mod common;
#[path = "common/until.rs"]
mod until;

use std::sync::Mutex;

/// Every `log` record, as `target: message`.
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{}: {}", record.target(), record.args());
        RECORDS.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

fn records() -> Vec<String> {
    RECORDS.lock().unwrap().clone()
}

#[tokio::test]
async fn a_log_logger_sees_the_tasks_enter_the_connections_span() {
    static KEEP: Keep = Keep;
    log::set_logger(&KEEP).unwrap();
    // (a span logs as it is entered once the `log` crate lets its own
    // level through, whatever the level of those lines: the logger says)
    log::set_max_level(log::LevelFilter::Info);
    let (a, b) = common::trusting_pair(7, 8).await;
    let b_peer = b.peer_id();
    // (the connection's reader has read the handshake within its span)
    a.connect(b_peer, b.local_addr().unwrap()).await.unwrap();
    let entered = |l: &String| l == "tracing::span::active: -> peernet.conn;";
    until::until(
        "a task enters the connection's span, as `log` hears it",
        || records().iter().any(entered),
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
