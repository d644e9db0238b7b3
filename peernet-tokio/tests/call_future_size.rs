//! `Node::call`'s future stays small. A pipelined caller moves every
//! call's future (into a `FuturesUnordered`, a task, a join), so each
//! byte of it is copied per call: at 304 bytes (release), moving it cost
//! about 300 instructions of a pipelined call's 8,040 (the bench README,
//! day 17). The rare wait (for room in a full queue, for a reconnect) is
//! boxed, and the wait for the result holds only the call's id: 152
//! bytes now, in a debug build as in a release one (320 before in a
//! debug build).

mod common;

use std::time::Duration;

use bytes::Bytes;

#[tokio::test]
async fn a_call_future_is_small() {
    let (a, b) = common::trusting_pair(1, 2).await;
    let peer = b.peer_id();
    let call = a.call(&peer, "echo", Bytes::new(), None::<Duration>);
    let size = std::mem::size_of_val(&call);
    eprintln!("Node::call future: {size} bytes");
    assert!(size <= 160, "Node::call's future is {size} bytes");
    drop(call);
}
