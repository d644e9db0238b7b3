//! Two nodes on smol: each pairs with the other, one exposes `hello`, the
//! other calls it and prints the reply. The same program runs on
//! async-std (with `async_std::task::block_on`) and, with
//! `#[tokio::main]`, on tokio; `peernet-async-std/examples/hello_async_std.rs`
//! joins two nodes by a stream the application opened instead.
//!
//! ```text
//! cargo run -p peernet-smol --example hello_smol
//! ```

use std::time::Duration;

use peernet_smol::{Bytes, Identity, Node, NodeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let any_port = "127.0.0.1:0".parse()?;
        // Fixed seeds keep the example short; a real node keeps a generated
        // identity in its data directory (`NodeConfig::from_data_dir`).
        let (alice_id, bob_id) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
        let alice = Node::bind(NodeConfig::new(alice_id), any_port).await?;
        let bob = Node::bind(NodeConfig::new(bob_id), any_port).await?;

        // Default-deny: each side trusts the other by PeerId, nobody else.
        alice.pair(bob.peer_id(), None).await?;
        bob.pair(alice.peer_id(), None).await?;

        // The handler learns who called (proven by the handshake) and how
        // long they wait.
        bob.expose_ctx("hello", |ctx, name| async move {
            let name = String::from_utf8_lossy(&name);
            let reply = format!("hello {name}, you are {}", ctx.peer());
            Ok(Bytes::from(reply))
        })?;

        alice
            .connect(bob.peer_id(), bob.local_addr().unwrap())
            .await?;
        let reply = alice
            .call(&bob.peer_id(), "hello", "alice", Duration::from_secs(5))
            .await?;
        println!("{}", String::from_utf8_lossy(&reply));

        alice.shutdown().await;
        bob.shutdown().await;
        Ok(())
    })
}
