//! An `Access::rule` is application code that runs under the node's lock:
//! one that panics, or that calls back into its node, denies the call
//! (`forbidden`) and leaves the connection and the node serving.

#[path = "common/own_thread.rs"]
mod own_thread;

use std::time::Duration;

use peernet_tokio::{Access, Bytes, CallError, Identity, Node, NodeConfig, PeerId, TrustList};

const CALL: Duration = Duration::from_secs(5);

/// Node 4, trusting node 3 (labelled), on a runtime of its own that the
/// test leaves behind: were the rule to deadlock the node, its workers
/// would not hang the test's end. `rule` gets the node itself.
async fn callee(rule: impl Fn(&Node, &PeerId) -> bool + Send + Sync + 'static) -> Node {
    let (a_id, b_id) = (Identity::from_seed(&[3; 32]), Identity::from_seed(&[4; 32]));
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = own_thread::runtime();
        rt.block_on(async move {
            let label = peernet_tokio::Label::new("admin-alice").unwrap();
            let trust: TrustList = [(a_peer, Some(label))].into_iter().collect();
            let any = "127.0.0.1:0".parse().unwrap();
            let b = Node::bind(NodeConfig::new(b_id).trust(trust), any)
                .await
                .unwrap();
            let me = b.clone();
            let access = Access::rule(move |peer| rule(&me, peer));
            b.expose_to("guarded", access, |_, _| async {
                Ok(Bytes::from_static(b"yes"))
            })
            .unwrap();
            b.expose("echo", |_, args| async move { Ok(args) }).unwrap();
            tx.send(b.local_addr().unwrap()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addr = rx.await.unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let a = Node::bind(NodeConfig::new(a_id).trusting(b_peer), any)
        .await
        .unwrap();
    a.connect(b_peer, addr).await.unwrap();
    a
}

/// The call is refused, and the same connection serves the next call.
async fn denied_then_served(a: &Node) {
    let b = a.trust().iter().next().map(|(p, _)| *p).unwrap();
    let first = a.call(&b, "guarded", b"", CALL).await;
    assert_eq!(first, Err(CallError::Forbidden), "{first:?}");
    let second = a.call(&b, "echo", b"hi", CALL).await;
    assert_eq!(second.as_deref(), Ok(&b"hi"[..]));
    let again = a.call(&b, "guarded", b"", CALL).await;
    assert_eq!(again, Err(CallError::Forbidden));
}

#[tokio::test]
async fn a_rule_that_panics_denies_the_call() {
    let a = callee(|_, _| panic!("a bug in the rule")).await;
    denied_then_served(&a).await;
}

/// The natural label rule, written against the node: it would wait for
/// the lock its own thread holds, for ever.
#[tokio::test]
async fn a_rule_that_calls_its_node_denies_the_call_without_a_deadlock() {
    let a = callee(|node, peer| {
        node.trust()
            .label(peer)
            .is_some_and(|l| l.as_str().starts_with("admin"))
    })
    .await;
    denied_then_served(&a).await;
}
