//! A connection that closed cleanly leaves nothing running behind it.
//! Each closed connection starts a close deadline (`tasks::LINGER`, 2 s)
//! that stops a writer still blocked on a peer that does not read. It
//! used to wait out the whole linger even when both halves had already
//! ended: a task and a timer per closed connection, for 2 s, which a
//! server with many short connections paid for all the time.

mod common;

use std::time::Duration;

/// The linger every close deadline is armed with (`tasks::LINGER`).
const LINGER: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_leaves_no_task_for_the_linger() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (alice, bob) = common::trusting_pair(91, 92).await;
    let idle = metrics.num_alive_tasks();
    for _ in 0..4 {
        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await
            .unwrap();
        assert!(alice.disconnect(&bob.peer_id()));
    }
    // Both halves of each connection end within milliseconds of the close
    // (each side reads the other's GOODBYE and end of stream); then
    // nothing of them should be left, well within the linger.
    let back = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while metrics.num_alive_tasks() > idle {
            tick.tick().await;
        }
    };
    tokio::time::timeout(LINGER * 3 / 4, back)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} tasks alive {:?} after the closes, {idle} before the connects",
                metrics.num_alive_tasks(),
                LINGER * 3 / 4
            )
        });
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
}
