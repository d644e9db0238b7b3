//! Callers blocked on a peer that reads nothing sleep while calls to
//! other peers complete.
//!
//! A call (or send) that finds its connection's send queue full waits for
//! room. The wake-up was one broadcast for the whole node, notified at
//! every call that completed and every write on any connection: a peer
//! that stops reading (and so keeps the callers to it blocked, up to its
//! `idle_timeout`) made each of those callers wake, take the node's lock
//! and find its queue still full, once per call completed with anyone
//! else. With some sixty callers blocked, 500 calls to another peer
//! polled each of them 758 to 894 times (each poll a turn through the
//! node's lock). Now each connection wakes its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peernet_tokio::{Identity, Node, NodeConfig};

#[path = "common/counted.rs"]
mod counted;
#[path = "common/deaf.rs"]
mod deaf;
#[path = "common/until.rs"]
mod until;
use counted::Counted;
use until::until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_blocked_on_a_peer_that_reads_nothing_are_not_woken_by_others() {
    let (alice_id, bob_peer) = (
        Identity::from_seed(&[1; 32]),
        Identity::from_seed(&[2; 32]).peer_id(),
    );
    let alice_peer = alice_id.peer_id();
    let alice = Node::bind(
        NodeConfig::new(alice_id).trusting(bob_peer),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    alice
        .expose("echo", |_, args| async move { Ok(args) })
        .unwrap();
    // The raw peer connects and then reads nothing.
    let (bob, _raw, raw_peer) = deaf::bob_and_deaf_peer(|c| c.trusting(alice_peer)).await;
    bob.connect(alice_peer, alice.local_addr().unwrap())
        .await
        .unwrap();

    // Calls to it, more than its connection takes: bob's send queue to it
    // fills, and the calls beyond wait for room.
    let args = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    let mut callers = Vec::new();
    for _ in 0..64 {
        let polls = Arc::new(AtomicUsize::new(0));
        let (bob, args) = (bob.clone(), args.clone());
        let call = async move {
            bob.call(&raw_peer, "x", args, Duration::from_secs(60))
                .await
        };
        let counted = Counted {
            fut: Box::pin(call),
            polls: polls.clone(),
        };
        callers.push((tokio::spawn(counted), polls));
    }
    let send_buffer = peernet_proto::Config::default().send_buffer;
    until("bob's queue to the raw peer is full", || {
        bob.stats().core.queued_bytes >= send_buffer
    })
    .await;
    // (every caller has had its turn: queued, or waiting for room)
    until("every caller polled", || {
        callers.iter().all(|(_, p)| p.load(Ordering::SeqCst) > 0)
    })
    .await;
    let before: Vec<usize> = callers
        .iter()
        .map(|(_, p)| p.load(Ordering::SeqCst))
        .collect();

    for i in 0..500u32 {
        let reply = bob
            .call(
                &alice_peer,
                "echo",
                i.to_be_bytes(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(&reply[..], i.to_be_bytes());
    }
    assert!(
        bob.stats().core.queued_bytes >= send_buffer,
        "callers still wait for room"
    );
    for ((task, polls), before) in callers.iter().zip(before) {
        assert!(!task.is_finished(), "still waiting");
        let woken = polls.load(Ordering::SeqCst) - before;
        assert!(
            woken < 20,
            "a caller blocked on the raw peer was polled {woken} times during 500 calls to alice"
        );
    }
    for (task, _) in callers {
        task.abort();
    }
    bob.shutdown().await;
    alice.shutdown().await;
}
