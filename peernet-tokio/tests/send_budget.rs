//! One trusted peer cannot hold more than its per-connection byte budget
//! by reconnecting, nor keep it after it is unpaired.
//!
//! A SEND's handler keeps running after its connection ends, and its
//! bytes stay in the node's total. The per-connection count used to go
//! with the connection, so a peer that filled its budget with SENDs to a
//! slow handler and reconnected (superseding its own connection, within
//! `connects_per_peer`) got a fresh budget each time, until the node-wide
//! budget was full and every other peer's calls were answered
//! `overloaded` (review s40: 16 MiB of 16 after four reconnects). Now the
//! SENDs of a peer's ended connections count against its next one
//! (the core's `orphans.rs`), and unpairing the peer stops them.

use std::time::Duration;

use bytes::Bytes;
use peernet_tokio::{CallError, Identity, Node, NodeConfig};

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_one_budget_across_reconnects_and_none_once_unpaired() {
    let (bob_id, eve_id, alice_id) = (
        Identity::from_seed(&[46; 32]),
        Identity::from_seed(&[47; 32]),
        Identity::from_seed(&[48; 32]),
    );
    let (bob_peer, eve_peer, alice_peer) = (bob_id.peer_id(), eve_id.peer_id(), alice_id.peer_id());
    // Per connection 4 MiB, the node 16 MiB: four peers' worth.
    let (per_conn, node_wide) = (4 * MIB, 16 * MIB);
    let bob = Node::bind(
        NodeConfig::new(bob_id)
            .trusting(eve_peer)
            .trusting(alice_peer)
            .max_inbound_bytes_per_conn(per_conn)
            .max_inbound_bytes(node_wide),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = bob.local_addr().unwrap();
    // A slow SEND handler (here: one that never finishes).
    bob.expose("sink", |_, _| std::future::pending()).unwrap();
    bob.expose("echo", |_, args| async move { Ok(args) })
        .unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let eve = Node::bind(NodeConfig::new(eve_id).trusting(bob_peer), any)
        .await
        .unwrap();
    let alice = Node::bind(NodeConfig::new(alice_id).trusting(bob_peer), any)
        .await
        .unwrap();
    eve.connect(bob_peer, addr).await.unwrap();

    let args = Bytes::from(vec![0x5a; 512 * 1024]);
    for round in 0..5 {
        if round > 0 {
            // a new connection supersedes the old one; the old one's SEND
            // handlers run on
            eve.reconnect(bob_peer, addr).await.unwrap();
        }
        for _ in 0..(per_conn / args.len()) {
            eve.send(&bob_peer, "sink", args.clone()).await.unwrap();
        }
        // A call after the sends: bob handles a connection's envelopes in
        // order, so once it is answered each send was admitted or dropped.
        let barrier = eve.call(&bob_peer, "echo", "", Duration::from_secs(60));
        match barrier.await {
            Ok(_) | Err(CallError::Overloaded) => {}
            Err(other) => panic!("the barrier call failed: {other}"),
        }
    }
    let held = bob.stats().core.inbound_bytes;
    // Another peer, with a small call.
    alice.connect(bob_peer, addr).await.unwrap();
    let other = alice
        .call(
            &bob_peer,
            "echo",
            vec![1u8; 64 * 1024],
            Duration::from_secs(30),
        )
        .await;
    println!(
        "one peer, 5 connections of sends to a slow handler: bob holds {:.1} MiB of its \
         arguments (per-connection budget {} MiB, node {} MiB); another peer's 64 KiB call: {:?}",
        held as f64 / MIB as f64,
        per_conn / MIB,
        node_wide / MIB,
        other.as_ref().map(|b| b.len()),
    );
    assert!(
        held <= per_conn,
        "one peer holds {:.1} MiB, over its {} MiB budget",
        held as f64 / MIB as f64,
        per_conn / MIB
    );
    assert!(other.is_ok(), "another peer is starved: {other:?}");
    // unpairing eve stops her send handlers, and gives their bytes back
    assert!(bob.unpair(&eve_peer).await.unwrap());
    let left = bob.stats().core.inbound_bytes;
    assert_eq!(left, 0, "an unpaired peer's sends still hold {left} bytes");
    eve.shutdown().await;
    alice.shutdown().await;
    bob.shutdown().await;
}
