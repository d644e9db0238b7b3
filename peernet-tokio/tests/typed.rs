//! Typed services over serde: a checked call and expose, the handler's
//! own error, a request the callee cannot decode reported as its own
//! error, and a typed nested call within the caller's budget.

use std::time::Duration;

use peernet_tokio::{CallError, Identity, Node, NodeConfig, PeerId, Service, ServiceError};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Add {
    a: u32,
    b: u32,
}

struct Adder;
impl Service for Adder {
    const HANDLE: &'static str = "add";
    type Request = Add;
    type Response = u32;
    type Error = String;
}

/// The same handle with other types: what a caller out of date with the
/// callee would send.
struct OldAdder;
impl Service for OldAdder {
    const HANDLE: &'static str = "add";
    type Request = (String, bool);
    type Response = u32;
    type Error = String;
}

struct Missing;
impl Service for Missing {
    const HANDLE: &'static str = "missing";
    type Request = ();
    type Response = ();
    type Error = ();
}

const CALL: Duration = Duration::from_secs(10);

async fn pair() -> (Node, Node, PeerId) {
    let (a_id, b_id) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let any = "127.0.0.1:0".parse().unwrap();
    let a = Node::bind(NodeConfig::new(a_id).trusting(b_peer), any)
        .await
        .unwrap();
    let b = Node::bind(NodeConfig::new(b_id).trusting(a_peer), any)
        .await
        .unwrap();
    b.expose_service(Adder, |ctx, Add { a, b }| async move {
        assert!(ctx.is_call());
        a.checked_add(b)
            .ok_or_else(|| format!("{a} + {b} overflows"))
    })
    .unwrap();
    a.connect(b_peer, b.local_addr().unwrap()).await.unwrap();
    (a, b, b_peer)
}

#[tokio::test]
async fn a_typed_call_is_checked_both_ways() {
    let (a, b, peer) = pair().await;
    let sum = a
        .call_service(Adder, &peer, &Add { a: 2, b: 3 }, CALL)
        .await;
    assert_eq!(sum.unwrap(), 5);

    let overflow = a
        .call_service(Adder, &peer, &Add { a: u32::MAX, b: 1 }, CALL)
        .await;
    assert!(
        matches!(&overflow, Err(ServiceError::Handler(e)) if e == "4294967295 + 1 overflows"),
        "{overflow:?}"
    );

    let stale = a
        .call_service(OldAdder, &peer, &("two".into(), true), CALL)
        .await;
    assert!(
        matches!(stale, Err(ServiceError::BadRequest(_))),
        "{stale:?}"
    );

    let missing = a.call_service(Missing, &peer, &(), CALL).await;
    assert!(
        matches!(missing, Err(ServiceError::Call(CallError::NoSuchHandle))),
        "{missing:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
