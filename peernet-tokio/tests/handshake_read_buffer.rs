//! A connection's read buffer stays small until its handshake is done.
//!
//! A connection's reader starts with 4 KiB and doubles its buffer, up to
//! 64 KiB, whenever a read fills it. That buffer is outside the
//! handshakes' byte budget (`NodeConfig::max_handshake_bytes`, which
//! counts the core's split frames), and a version-2 initiator may send a
//! first record of a whole frame (1 MiB) before it has proven anything:
//! such peers grew every handshake's buffer to 64 KiB, 64 MiB over the
//! 1,024 handshake slots. Now the buffer grows only once the handshake is
//! done; an established peer that fills it still grows it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use peernet_proto::testkit::noise::{InitiatorV2, LocalStatic};
use peernet_tokio::{Identity, Node, NodeConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

const FIRST_READ_BUF: usize = 4 * 1024;
const MAX_READ_BUF: usize = 64 * 1024;

/// A stream that records the most room a read of it was ever offered.
struct Offered {
    inner: DuplexStream,
    most: Arc<AtomicUsize>,
}

impl AsyncRead for Offered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.most.fetch_max(buf.remaining(), Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Offered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One end of a pipe of 64 KiB (as much as a read may take at once) for
/// the node, as an [`Offered`] stream, and the other end for its peer.
fn pipe() -> (Offered, DuplexStream, Arc<AtomicUsize>) {
    let (node_end, peer_end) = tokio::io::duplex(MAX_READ_BUF);
    let most = Arc::new(AtomicUsize::new(0));
    let node_end = Offered {
        inner: node_end,
        most: most.clone(),
    };
    (node_end, peer_end, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshakes_reads_stay_at_the_first_size() {
    let slow_key = Identity::from_seed(&[92; 32]);
    let client_id = Identity::from_seed(&[93; 32]);
    let server = Node::new(
        NodeConfig::new(Identity::from_seed(&[91; 32]))
            .trusting(slow_key.peer_id())
            .trusting(client_id.peer_id()),
    );
    server
        .expose("sink", |_, _| async { Ok(bytes::Bytes::new()) })
        .unwrap();

    // A peer that has proven nothing: INIT, RESP read, then half of a
    // 1 MiB first record, in writes that end only as the node reads
    // (the pipe holds 64 KiB).
    let (node_end, mut peer, during_handshake) = pipe();
    let accepting = tokio::spawn({
        let server = server.clone();
        async move { server.accept_stream(node_end).await }
    });
    let key = LocalStatic::new(&slow_key);
    let (_, init) = InitiatorV2::start(&key, server.peer_id(), [7; 32]).unwrap();
    let mut wire = (init.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&init);
    peer.write_all(&wire).await.unwrap();
    let mut resp = [0u8; 4 + 54];
    peer.read_exact(&mut resp).await.unwrap();
    let mut record = (1u32 << 20).to_be_bytes().to_vec();
    record.resize(4 + (512 << 10), 0);
    let written = tokio::time::timeout(Duration::from_secs(20), peer.write_all(&record));
    written.await.expect("the node reads").unwrap();
    // (all but the pipe's 64 KiB was read: 448 KiB at least)
    let most = during_handshake.load(Ordering::Relaxed);
    assert_eq!(
        most, FIRST_READ_BUF,
        "a read during the handshake was offered {most} bytes"
    );
    accepting.abort();

    // An established peer that fills its reads still grows the buffer.
    let client = Node::new(NodeConfig::new(client_id).trusting(server.peer_id()));
    let (node_end, client_end, established) = pipe();
    let accepting = tokio::spawn({
        let server = server.clone();
        async move { server.accept_stream(node_end).await }
    });
    let connect = client.connect_stream(client_end, Some(server.peer_id()));
    tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .expect("connected in time")
        .expect("connected");
    accepting.await.unwrap().unwrap();
    let args = bytes::Bytes::from(vec![5u8; 512 << 10]);
    let to = server.peer_id();
    let reply = client.call(&to, "sink", args, Duration::from_secs(20));
    reply.await.unwrap();
    assert_eq!(established.load(Ordering::Relaxed), MAX_READ_BUF);
    client.shutdown().await;
    server.shutdown().await;
}
