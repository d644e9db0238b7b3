//! Getting started, as the README shows it (word for word below this
//! comment; a test holds the two together): two nodes create their
//! identities, pair by handing each other a ticket, one serves a
//! handle, the other calls it. `cargo run --example getting_started`.

use std::time::Duration;

use peernet_tokio::{Label, Node, NodeConfig, Ticket};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Identities: each node's data directory holds its key pair (made at
    // the first start; its public key is the PeerId, the node's address),
    // its trust list and its address book.
    let dirs = tempfile::tempdir()?;
    let alice = Node::try_new(NodeConfig::from_data_dir(dirs.path().join("alice"))?)?;
    let bob = Node::try_new(NodeConfig::from_data_dir(dirs.path().join("bob"))?)?;

    // Serve a handle: Bob exposes `greet` (everything else stays closed),
    // then listens, so that no call finds it missing.
    bob.expose("greet", |caller, name| async move {
        let name = String::from_utf8_lossy(&name);
        Ok(format!("hello {name} ({caller})").into())
    })?;
    bob.listen("127.0.0.1:0".parse()?).await?;

    // Pair: each hands the other its ticket, as text (a chat, a QR code),
    // and trusts the one it was given. Nothing crosses until both have.
    let (bob_text, alice_text) = (bob.ticket()?.to_string(), alice.ticket()?.to_string());
    let bob_ticket: Ticket = bob_text.parse()?;
    alice
        .pair_ticket(&bob_ticket, Some(Label::new("bob")?))
        .await?;
    bob.pair_ticket(&alice_text.parse()?, Some(Label::new("alice")?))
        .await?;

    // Call it: Alice dials Bob by PeerId (his ticket gave the address),
    // then calls `greet`, each with a timeout.
    let bob_id = bob_ticket.peer();
    alice.connect_peer(bob_id, Duration::from_secs(5)).await?;
    let reply = alice
        .call(&bob_id, "greet", "alice", Duration::from_secs(5))
        .await?;
    println!("{}", String::from_utf8_lossy(&reply));

    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}
