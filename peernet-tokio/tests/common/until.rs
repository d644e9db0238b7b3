//! Waiting for what no event announces (a file written in the
//! background), bounded.

use std::time::Duration;

/// Waits (at most 20 s) until `done` holds, looking every 20 ms.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !done() {
            tick.tick().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("20 s without: {what}"));
}
