//! Two nodes on async-std joined by a stream the application opened
//! itself, here a Unix socket pair, instead of a TCP connection the node
//! dials (a TLS stream or a relayed one goes the same way): one side
//! accepts it as responder, the other runs the handshake over it as
//! initiator, and the handshake still proves each PeerId and checks each
//! against the other's trust list. The TCP version of this program is
//! `peernet-smol/examples/hello_smol.rs`; it runs here unchanged but for
//! the crate's name and `block_on`.
//!
//! ```text
//! cargo run -p peernet-async-std --example hello_async_std
//! ```

#[cfg(not(unix))]
fn main() {
    eprintln!("this example joins its nodes by a Unix socket pair");
}

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Duration;

    use async_std::os::unix::net::UnixStream;
    use peernet_async_std::{Bytes, Identity, Node, NodeConfig};

    async_std::task::block_on(async {
        // Fixed seeds keep the example short; a real node keeps a generated
        // identity in its data directory (`NodeConfig::from_data_dir`).
        let (alice_id, bob_id) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
        let (alice_peer, bob_peer) = (alice_id.peer_id(), bob_id.peer_id());
        // Neither node listens on TCP: the stream is their only way in.
        let alice = Node::new(NodeConfig::new(alice_id).trusting(bob_peer));
        let bob = Node::new(NodeConfig::new(bob_id).trusting(alice_peer));
        bob.expose_ctx("hello", |ctx, name| async move {
            let name = String::from_utf8_lossy(&name);
            Ok(Bytes::from(format!("hello {name}, you are {}", ctx.peer())))
        })?;

        let (alice_end, bob_end) = UnixStream::pair()?;
        // The two ends of the handshake run at once; naming the peer
        // expected makes the initiator refuse any other key at the far end.
        let accepting = async_std::task::spawn({
            let bob = bob.clone();
            async move { bob.accept_stream(bob_end).await }
        });
        let dialed = alice.connect_stream(alice_end, Some(bob_peer)).await?;
        let accepted = accepting.await?;
        assert_eq!((dialed, accepted), (bob_peer, alice_peer));

        let reply = alice
            .call(&bob_peer, "hello", "alice", Duration::from_secs(5))
            .await?;
        println!("{}", String::from_utf8_lossy(&reply));

        alice.shutdown().await;
        bob.shutdown().await;
        Ok(())
    })
}
