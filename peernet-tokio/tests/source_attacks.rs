//! Issue 13, limit 5: idle sockets from one address must not lock every
//! other peer out. Handshake slots were taken at accept, so 1,024 idle TCP
//! connections that send nothing filled `max_handshakes` and every HELLO
//! after them got REJECT `busy` for the whole handshake timeout.
//!
//! Here one source address (127.0.0.1) holds 1,500 idle sockets and
//! re-opens every one that is closed, while a trusted peer dialing from
//! another address (127.0.0.2) connects and calls again and again; it must
//! complete at least 95 % of its calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use peernet_tokio::{Identity, Node, NodeConfig};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const IDLE_SOCKETS: usize = 1_500;
const ROUNDS: usize = 40;
const CALLS_PER_ROUND: usize = 5;

/// One attacker socket: connect, send nothing, and when the node closes
/// it, connect again, until the task is aborted.
async fn idle_socket(
    addr: SocketAddr,
    opened: Arc<AtomicU64>,
    first: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut buf = [0u8; 64];
    loop {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::task::yield_now().await;
            continue;
        };
        if opened.fetch_add(1, Ordering::Relaxed) < IDLE_SOCKETS as u64 {
            let _ = first.send(());
        }
        // Wait for the node to close it (EOF or reset).
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    }
}

async fn dial_from(local: &str, node: &Node, server: &Node) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(local.parse().unwrap()).unwrap();
    let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_secs(5),
        socket.connect(server.local_addr().unwrap()),
    )
    .await
    else {
        return false;
    };
    stream.set_nodelay(true).unwrap();
    let handshake = node.connect_stream(stream, Some(server.peer_id()));
    matches!(
        tokio::time::timeout(Duration::from_secs(5), handshake).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_do_not_lock_out_another() {
    let server_id = Identity::from_seed(&[71; 32]);
    let client_id = Identity::from_seed(&[72; 32]);
    let server = Node::bind(
        NodeConfig::new(server_id.clone()).trusting(client_id.peer_id()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    server
        .expose("echo", |_, args| async move { Ok(args) })
        .unwrap();
    let client = Node::new(NodeConfig::new(client_id).trusting(server_id.peer_id()));
    let addr = server.local_addr().unwrap();

    let opened = Arc::new(AtomicU64::new(0));
    let (first, mut up) = tokio::sync::mpsc::unbounded_channel();
    let attackers: Vec<_> = (0..IDLE_SOCKETS)
        .map(|_| tokio::spawn(idle_socket(addr, opened.clone(), first.clone())))
        .collect();
    // The attack is on (1,500 sockets opened) before the first legitimate
    // dial.
    for _ in 0..IDLE_SOCKETS {
        up.recv().await.unwrap();
    }

    let mut ok = 0;
    for _ in 0..ROUNDS {
        if dial_from("127.0.0.2:0", &client, &server).await {
            for _ in 0..CALLS_PER_ROUND {
                let reply = client
                    .call(&server.peer_id(), "echo", "hi", Duration::from_secs(5))
                    .await;
                ok += usize::from(matches!(reply, Ok(body) if &body[..] == b"hi"));
            }
        }
        client.disconnect(&server.peer_id());
    }
    for a in &attackers {
        a.abort();
    }
    let total = ROUNDS * CALLS_PER_ROUND;
    let refused = server.refused_connections();
    println!(
        "legit calls completed: {ok}/{total}; attacker sockets opened: {}; refused at accept: {refused}",
        opened.load(Ordering::Relaxed)
    );
    assert!(ok * 100 >= total * 95, "only {ok}/{total} calls completed");
    assert!(refused > 0, "the per-source limit never fired");
    client.shutdown().await;
    server.shutdown().await;
}
