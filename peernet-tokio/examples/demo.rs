//! Two nodes pair and call each other; a third, untrusted node is turned
//! away. Run from the repository root: `cargo run --example demo`.

use std::time::Duration;

use peernet_tokio::{
    Bytes, CallError, ConnectError, HandlerResult, HandshakeError, Identity, Node, NodeConfig,
    NodeEvent, PeerId, RejectCode,
};

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Ends the demo with an error (a non-zero exit: CI runs the demo) when
/// what it shows did not happen.
fn check(held: bool, claim: &str) -> Result<(), Box<dyn std::error::Error>> {
    match held {
        true => Ok(()),
        false => Err(format!("the demo went wrong: {claim}").into()),
    }
}

fn short(peer: &peernet_tokio::PeerId) -> String {
    peer.to_string()[..12].to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port = "127.0.0.1:0".parse()?;
    let mut os_rng = rand_core::UnwrapErr(getrandom::SysRng);

    step("Alice and Bob each generate an ed25519 identity: the public key is the address");
    let alice_id = Identity::generate(&mut os_rng);
    let bob_id = Identity::generate(&mut os_rng);
    let (alice_peer, bob_peer) = (alice_id.peer_id(), bob_id.peer_id());
    println!("    alice = {alice_peer}");
    println!("    bob   = {bob_peer}");

    step("They pair: each puts the other's PeerId in its trust list");
    let alice = Node::bind(NodeConfig::new(alice_id).trusting(bob_peer), any_port).await?;
    let bob = Node::bind(
        NodeConfig::new(bob_id.clone()).trusting(alice_peer),
        any_port,
    )
    .await?;
    println!(
        "    alice listens on {}, bob on {}",
        alice.local_addr().unwrap(),
        bob.local_addr().unwrap()
    );
    let mut bob_events = bob.events();

    step(
        "Every handle is closed until exposed: Bob exposes `greet`, Alice exposes `echo` and `chat`",
    );
    bob.expose("greet", greet)?;
    alice.expose("echo", |_caller, args| async move { Ok(args) })?;
    let (chat_tx, chat_rx) = tokio::sync::mpsc::unbounded_channel();
    alice.expose("chat", move |caller, args| {
        let chat_tx = chat_tx.clone();
        async move {
            let _ = chat_tx.send((caller, args));
            Ok(Bytes::new())
        }
    })?;

    step("Alice dials Bob: the handshake proves both keys against both trust lists");
    alice.connect(bob_peer, bob.local_addr().unwrap()).await?;
    if let Ok(NodeEvent::Connected { peer, direction }) = bob_events.recv().await {
        println!("    bob sees: connected {} ({direction:?})", short(&peer));
    }

    step("Alice calls Bob's `greet`");
    let reply = alice
        .call(&bob_peer, "greet", "alice", Duration::from_secs(5))
        .await?;
    println!("    reply: {}", String::from_utf8_lossy(&reply));

    step("Bob calls Alice's `echo` over the same connection");
    let reply = bob
        .call(&alice_peer, "echo", "ping from bob", Duration::from_secs(5))
        .await?;
    println!("    reply: {}", String::from_utf8_lossy(&reply));

    step("Bob calls a handle Alice never exposed");
    let refused = bob
        .call(&alice_peer, "admin", "", Duration::from_secs(5))
        .await;
    println!("    result: {refused:?}");
    check(
        matches!(refused, Err(CallError::NoSuchHandle)),
        "a handle never exposed answers no_such_handle",
    )?;

    step("Bob sends to Alice's `chat` (fire-and-forget: no reply)");
    bob.send(&alice_peer, "chat", "see you").await?;
    let mut chat_rx = chat_rx;
    let Some((from, text)) = chat_rx.recv().await else {
        return Err("the demo went wrong: alice's `chat` never got the SEND".into());
    };
    println!(
        "    alice got {:?} from {}",
        String::from_utf8_lossy(&text),
        short(&from)
    );

    step("Alice keeps Bob connected; Bob is killed and restarted on the same address");
    // connect() recorded Bob's address in Alice's book: the PeerId is enough now
    alice.keep_connected(bob_peer, true)?;
    let alice_events = alice.events();
    let bob_addr = bob.local_addr().unwrap();
    bob.shutdown().await;
    drop(bob);
    println!("    bob is down");
    // a call made during the outage waits for the reconnect, within its timeout
    let caller = alice.clone();
    let call = tokio::spawn(async move {
        caller
            .call(&bob_peer, "greet", "alice again", Duration::from_secs(10))
            .await
    });
    // Each redial is announced, and each that fails says why: every
    // address tried, with its cause.
    while let Ok(event) = alice_events.recv().await {
        match event {
            NodeEvent::Reconnecting { attempt, after, .. } => {
                println!("    alice sees: reconnecting bob, attempt {attempt} after {after:?}");
            }
            NodeEvent::Unreachable { .. } => {
                println!("    alice sees: {event}");
                break;
            }
            NodeEvent::Disconnected { reason, .. } => {
                println!("    alice sees: disconnected bob ({reason})")
            }
            _ => {}
        }
    }
    // Expose, and listen to events, before listening: alice redials the
    // moment the port opens, with her call queued.
    let bob = Node::try_new(NodeConfig::new(bob_id).trusting(alice_peer))?;
    bob.expose("greet", greet)?;
    bob_events = bob.events();
    bob.listen(bob_addr).await?;
    println!("    bob is back on {bob_addr}");
    if let Ok(NodeEvent::Connected { direction, .. }) = bob_events.recv().await {
        println!("    bob sees: connected alice ({direction:?}), no application code redialed");
    }
    let reply = call.await??;
    println!(
        "    the call made during the outage: {}",
        String::from_utf8_lossy(&reply)
    );

    step("Mallory, whom nobody trusts, dials Bob");
    let mallory_id = Identity::generate(&mut os_rng);
    let mallory = Node::new(NodeConfig::new(mallory_id).trusting(bob_peer));
    match mallory.connect(bob_peer, bob.local_addr().unwrap()).await {
        Err(ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Untrusted))) => {
            println!("    rejected: untrusted (Bob refused before sending anything keyed)")
        }
        other => return Err(format!("the demo went wrong: mallory got {other:?}").into()),
    }
    if let Ok(NodeEvent::HandshakeFailed { error, .. }) = bob_events.recv().await {
        println!("    bob sees: handshake failed: {error}");
    }

    step("Bob unpairs Alice: the connection closes at once");
    bob.unpair(&alice_peer).await?;
    while let Ok(event) = bob_events.recv().await {
        match event {
            NodeEvent::Disconnected { peer, reason } => {
                println!("    bob sees: disconnected {} ({reason})", short(&peer));
                break;
            }
            other => println!("    bob sees: {other}"),
        }
    }
    let after = alice
        .call(&bob_peer, "greet", "again", Duration::from_secs(5))
        .await;
    println!("    alice calls again: {after:?}");
    check(after.is_err(), "an unpaired peer's calls fail")?;

    step("Both shut down with GOODBYE normal");
    alice.shutdown().await;
    bob.shutdown().await;
    println!("    done");

    step("What Bob counted (Node::stats)");
    for line in bob.stats().to_string().lines() {
        println!("    {line}");
    }
    Ok(())
}

/// Bob's `greet` handler: greets the caller by the name it sends and by
/// its proven PeerId.
async fn greet(caller: PeerId, args: Bytes) -> HandlerResult {
    let name = String::from_utf8_lossy(&args).into_owned();
    Ok(Bytes::from(format!(
        "hello {name}, you are {}",
        short(&caller)
    )))
}
