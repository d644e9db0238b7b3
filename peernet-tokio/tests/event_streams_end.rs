//! A subscription to a node's events ends with the node (review s46,
//! revo): the subscribers' senders used to live as long as any `Node`
//! handle, so an application's `while let Ok(event) = events.recv().await`
//! loop waited for good after `shutdown`, and a subscription made after
//! the shutdown never ended either.

mod common;

use std::time::Duration;

use peernet_tokio::NodeEvent;

/// Bounded: the old code never ends the stream.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("10 s without: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_ends_after_the_close_and_its_events() {
    let (a, b) = common::trusting_pair(61, 62).await;
    let events = a.events();
    a.connect(b.peer_id(), b.local_addr().unwrap())
        .await
        .unwrap();
    a.shutdown().await;
    // `a` is still held: the stream ends because the node closed
    let got = within("the stream's end", async {
        let mut got = Vec::new();
        while let Ok(event) = events.recv().await {
            got.push(event);
        }
        got
    })
    .await;
    // the close's own event came first
    assert!(
        got.iter().any(|e| matches!(
            e,
            NodeEvent::Disconnected { peer, .. } if *peer == b.peer_id()
        )),
        "{got:?}"
    );
    // a subscription made once the node is closed has ended already
    let late = a.events();
    within("a late stream's end", late.recv())
        .await
        .expect_err("a closed node sends no event");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_ends_when_the_last_handle_goes() {
    let (a, b) = common::trusting_pair(63, 64).await;
    let events = b.events();
    a.connect(b.peer_id(), b.local_addr().unwrap())
        .await
        .unwrap();
    drop(b);
    within("the stream's end", async {
        while events.recv().await.is_ok() {}
    })
    .await;
    a.shutdown().await;
}
