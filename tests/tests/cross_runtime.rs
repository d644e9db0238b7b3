//! Three nodes on three runtimes in one test, over loopback TCP: a tokio
//! node, a smol node and an async-std node, each calling the other two and
//! receiving sends from them. They dial in a ring, so each runtime both
//! dials and accepts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use peernet_driver::{
    Bytes, Direction, Identity, Node, NodeConfig, NodeEvent, PeerId, ProtocolVersion, Runtime,
};
use tokio::sync::mpsc::UnboundedSender;

const CALL: Duration = Duration::from_secs(10);

fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A node named `name` (its runtime), trusting the other two, answering
/// `who` with its name and the caller, and reporting sends to `inbox` on
/// `arrivals`.
async fn start<R: Runtime>(
    name: &'static str,
    seed: u8,
    others: [u8; 2],
    arrivals: UnboundedSender<(&'static str, PeerId, Bytes)>,
) -> Node<R> {
    // Version 2, named although it is the default: the runtimes must
    // agree on the encrypted protocol.
    let mut config = NodeConfig::new(identity(seed)).protocol_version(ProtocolVersion::V2);
    for other in others {
        config = config.trusting(identity(other).peer_id());
    }
    let node = Node::<R>::bind(config, loopback()).await.expect("bind");
    node.expose("who", move |caller: PeerId, _args| async move {
        Ok(Bytes::from(format!("{name} answers {caller}")))
    })
    .unwrap();
    node.expose("inbox", move |caller, args| {
        let _ = arrivals.send((name, caller, args));
        async { Ok(Bytes::new()) }
    })
    .unwrap();
    node
}

/// `from` calls `who` on `to` and sends to its `inbox`.
async fn talk<A: Runtime, B: Runtime>(from: &Node<A>, to: &Node<B>, to_name: &str) {
    let reply = from
        .call(&to.peer_id(), "who", "", CALL)
        .await
        .unwrap_or_else(|e| panic!("{} -> {to_name}: {e}", from.peer_id()));
    assert_eq!(reply, format!("{to_name} answers {}", from.peer_id()));
    from.send(&to.peer_id(), "inbox", format!("to {to_name}"))
        .await
        .expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_smol_and_async_std_nodes_call_and_send_to_each_other() {
    let (tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let body = async {
        let on_tokio = start::<peernet_tokio::TokioRuntime>("tokio", 1, [2, 3], tx.clone()).await;
        let on_smol = start::<peernet_smol::SmolRuntime>("smol", 2, [1, 3], tx.clone()).await;
        let on_async_std =
            start::<peernet_async_std::AsyncStdRuntime>("async-std", 3, [1, 2], tx.clone()).await;

        // a ring of dials: tokio -> smol -> async-std -> tokio
        let accepted = [on_smol.events(), on_async_std.events(), on_tokio.events()];
        let (p, a) = (on_smol.peer_id(), on_smol.local_addr().unwrap());
        assert_eq!(on_tokio.connect(p, a).await.expect("tokio dials smol"), p);
        let (p, a) = (on_async_std.peer_id(), on_async_std.local_addr().unwrap());
        assert_eq!(
            on_smol.connect(p, a).await.expect("smol dials async-std"),
            p
        );
        let (p, a) = (on_tokio.peer_id(), on_tokio.local_addr().unwrap());
        assert_eq!(
            on_async_std
                .connect(p, a)
                .await
                .expect("async-std dials tokio"),
            p
        );
        // a dial resolves once our PROOF is sent; the side that accepted
        // has the connection when the PROOF arrives
        for events in accepted {
            loop {
                let event = events.recv().await.unwrap();
                if let NodeEvent::Connected {
                    direction: Direction::Inbound,
                    ..
                } = event
                {
                    break;
                }
            }
        }

        talk(&on_tokio, &on_smol, "smol").await;
        talk(&on_tokio, &on_async_std, "async-std").await;
        talk(&on_smol, &on_tokio, "tokio").await;
        talk(&on_smol, &on_async_std, "async-std").await;
        talk(&on_async_std, &on_tokio, "tokio").await;
        talk(&on_async_std, &on_smol, "smol").await;

        let mut got = BTreeSet::new();
        for _ in 0..6 {
            let (to, from, args) = arrivals.recv().await.unwrap();
            assert_eq!(args, format!("to {to}"));
            got.insert((to, from));
        }
        let (t, s, a) = (
            on_tokio.peer_id(),
            on_smol.peer_id(),
            on_async_std.peer_id(),
        );
        let want = BTreeSet::from([
            ("smol", t),
            ("async-std", t),
            ("tokio", s),
            ("async-std", s),
            ("tokio", a),
            ("smol", a),
        ]);
        assert_eq!(got, want);
        for node_peers in [on_tokio.peers(), on_smol.peers(), on_async_std.peers()] {
            assert_eq!(node_peers.len(), 2);
        }

        on_tokio.shutdown().await;
        on_smol.shutdown().await;
        on_async_std.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("the test is stuck");
}
