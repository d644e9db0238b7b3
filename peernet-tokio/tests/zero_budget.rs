//! A call with no budget left fails at once and puts nothing on the wire.
//!
//! A zero timeout (or, after a wait for room, one spent) cannot be said
//! on the wire: `timeout_ms` 0 means no limit, so the core rounds it up
//! to 1 ms. `Node::call` used to send such a CALL (and its CANCEL right
//! behind it): the callee started a handler nobody waited for, with a
//! millisecond of budget of its own, which it could pass on down a chain
//! whose first caller had already given up. The Context docs offer
//! `Node::call(.., ctx.timeout())` beside `call_in`, which never sent one.

mod common;

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::CallError;

#[tokio::test]
async fn a_call_with_a_zero_timeout_times_out_unsent() {
    let (alice, bob) = common::trusting_pair(201, 202).await;
    bob.expose("echo", |_, args| async move { Ok::<Bytes, Bytes>(args) })
        .unwrap();
    alice
        .connect(bob.peer_id(), bob.local_addr().unwrap())
        .await
        .unwrap();
    let zero = alice
        .call(&bob.peer_id(), "echo", "x", Duration::ZERO)
        .await;
    assert_eq!(zero, Err(CallError::Timeout));
    // A call behind it on the same connection: once it is answered, bob
    // has read everything alice wrote before it.
    let barrier = alice
        .call(&bob.peer_id(), "echo", "y", Duration::from_secs(30))
        .await;
    assert_eq!(barrier.as_deref(), Ok(&b"y"[..]));
    let (a, b) = (alice.stats(), bob.stats());
    assert_eq!(
        b.core.counters.calls_in.started, 1,
        "bob got the zero-budget CALL: {b}"
    );
    assert_eq!(
        a.core.counters.calls_out.started, 1,
        "only the barrier: {a}"
    );
    assert_eq!(a.calls_timed_out_unsent, 1, "{a}");
    alice.shutdown().await;
    bob.shutdown().await;
}
