//! Handshakes that send a large first record slowly, over loopback.
//!
//! After RESP a version-2 responder waits for the initiator's first
//! record, which may be a whole frame (1 MiB): a trusted key's INITs
//! followed by most of a 1 MiB record each, never the rest, were all
//! held until their proof deadline, up to about 1 GiB over the 1,024
//! handshake slots. Now the handshakes hold at most
//! `NodeConfig::max_handshake_bytes` together; the connections whose
//! bytes would pass it are closed at once, and a trusted peer still
//! connects and calls meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use peernet_proto::testkit::noise::{InitiatorV2, LocalStatic};
use peernet_tokio::{Identity, Node, NodeConfig, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// The node's budget here: four first records of 1 MiB.
const BUDGET: usize = 4 << 20;
/// The first record each slow peer announces (the default frame limit).
const RECORD: usize = 1 << 20;
/// Slow peers: twice what the budget holds.
const SLOW: usize = 8;
/// How long the node waits for a first record after RESP: the slow peers
/// the budget holds are closed only then.
const PROOF_DUE: Duration = Duration::from_secs(8);

/// One slow peer: an INIT with ephemeral `seed` under `key` (trusted by
/// the node), RESP read, then a header announcing a 1 MiB record and all
/// of it but 1 KiB, in 64 KiB writes. Reports on `written` once its
/// writes are done (or failed: the node closed it), then on `closed`
/// once the node closed the connection.
async fn slow_first_record(
    addr: SocketAddr,
    key: LocalStatic,
    node: PeerId,
    seed: u8,
    written: UnboundedSender<()>,
    closed: UnboundedSender<()>,
) {
    let (_, init) = InitiatorV2::start(&key, node, [seed; 32]).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut wire = (init.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&init);
    stream.write_all(&wire).await.unwrap();
    let mut resp = [0u8; 4 + 54];
    stream.read_exact(&mut resp).await.unwrap();
    let mut wire = (RECORD as u32).to_be_bytes().to_vec();
    wire.resize(4 + RECORD - 1024, 0);
    for chunk in wire.chunks(64 << 10) {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    written.send(()).unwrap();
    let mut buf = [0u8; 256];
    while let Ok(1..) = stream.read(&mut buf).await {}
    closed.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_first_records_hold_at_most_the_budget() {
    let slow_key = Identity::from_seed(&[82; 32]);
    let client_id = Identity::from_seed(&[83; 32]);
    let config = NodeConfig::new(Identity::from_seed(&[81; 32]))
        .trusting(slow_key.peer_id())
        .trusting(client_id.peer_id())
        .max_handshake_bytes(BUDGET)
        .handshake_timeout(PROOF_DUE + Duration::from_secs(2))
        .first_frame_timeout(PROOF_DUE);
    let server = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    server
        .expose("echo", |_, args| async move { Ok(args) })
        .unwrap();
    let addr = server.local_addr().unwrap();

    let (written, mut writes_done) = unbounded_channel();
    let (closed, mut closes) = unbounded_channel();
    let slow: Vec<_> = (1..=SLOW as u8)
        .map(|seed| {
            let key = LocalStatic::new(&slow_key);
            let (w, c) = (written.clone(), closed.clone());
            tokio::spawn(slow_first_record(addr, key, server.peer_id(), seed, w, c))
        })
        .collect();
    for _ in 0..SLOW {
        let done = tokio::time::timeout(Duration::from_secs(30), writes_done.recv());
        done.await.unwrap().unwrap();
        let held = server.stats().core.handshake_bytes;
        assert!(held <= BUDGET, "the handshakes hold {held} bytes");
    }

    // The trusted peer connects and calls while the slow ones hold.
    let client = Node::new(NodeConfig::new(client_id).trusting(server.peer_id()));
    let connect = client.connect(server.peer_id(), addr);
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("connected in time")
        .expect("connected");
    let reply = client
        .call(&server.peer_id(), "echo", "hi", Duration::from_secs(10))
        .await;
    assert_eq!(&reply.unwrap()[..], b"hi");

    // At most four fit: the other four are closed at once, long before
    // the proof deadline closes the rest.
    let refused = SLOW - BUDGET / RECORD;
    for _ in 0..refused {
        let close = tokio::time::timeout(PROOF_DUE / 2, closes.recv());
        close.await.expect("closed over the budget").unwrap();
    }
    let stats = server.stats();
    let held = stats.core.handshake_bytes;
    let over = stats.core.counters.handshakes_in.over_budget as usize;
    println!("{over} of {SLOW} closed over the budget, {held} bytes held");
    assert!(held <= BUDGET, "the handshakes hold {held} bytes");
    assert!(over >= refused, "{stats}");
    for task in slow {
        task.abort();
    }
    client.shutdown().await;
    server.shutdown().await;
}
