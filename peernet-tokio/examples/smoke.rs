use peernet_tokio::{Identity, Node, NodeConfig};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
    let (ap, bp) = (a.peer_id(), b.peer_id());
    let bob = Node::bind(NodeConfig::new(b).trusting(ap), "127.0.0.1:0".parse()?).await?;
    bob.expose("echo", |_c, args| async move { Ok(args) })?;
    let alice = Node::bind(NodeConfig::new(a).trusting(bp), "127.0.0.1:0".parse()?).await?;
    alice.connect(bp, bob.local_addr().unwrap()).await?;
    let r = alice
        .call(&bp, "echo", &b"hi"[..], Duration::from_secs(5))
        .await?;
    println!("reply {:?}", r);
    let t = Instant::now();
    let n = 20000;
    for _ in 0..n {
        alice
            .call(&bp, "echo", &[0u8; 64][..], Duration::from_secs(5))
            .await?;
    }
    println!(
        "sequential: {:.0} calls/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let futs: Vec<_> = (0..64)
        .map(|_| {
            let alice = alice.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    alice
                        .call(&bp, "echo", &[0u8; 64][..], Duration::from_secs(5))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for f in futs {
        f.await?;
    }
    println!(
        "64 in flight: {:.0} calls/s",
        64000.0 / t.elapsed().as_secs_f64()
    );
    alice.shutdown().await;
    Ok(())
}
