//! A trusted peer whose TCP connection ends badly, over real TCP: it
//! shuts down its write side (a half-close) or resets the connection,
//! right after the handshake or in the middle of a record, while a call
//! goes each way. Bob ends the connection at once (not at `idle_timeout`):
//! his own call fails `ConnectionClosed` exactly once, the handler of the
//! peer's call is dropped, nothing is left in his tables, and a
//! half-closed peer reads the end of Bob's stream.

use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use peernet_conformance::RawPeer;
use peernet_driver::WrapStream;
use peernet_tokio::{CallError, Identity, Node, NodeConfig, TokioRuntime};

#[path = "common/loopback.rs"]
mod loopback;
#[path = "common/until.rs"]
mod until;

/// How the peer's stream ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `shutdown(Write)` with nothing more written.
    HalfClose,
    /// `shutdown(Write)` after the first bytes of a record.
    HalfCloseMidRecord,
    /// A reset (`SO_LINGER` 0, then close).
    Reset,
    /// A reset after the first bytes of a record.
    ResetMidRecord,
}

/// Drops its count when the handler's state is dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn scenario(seed: u8, end: End) {
    let raw_id = Identity::from_seed(&[seed; 32]);
    let bob = loopback::bound(
        NodeConfig::new(Identity::from_seed(&[seed + 1; 32])).trusting(raw_id.peer_id()),
    )
    .await;
    let bob_peer = bob.peer_id();
    let live = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let live = live.clone();
        bob.expose("hang", move |_, _| {
            live.fetch_add(1, Ordering::SeqCst);
            let guard = Live(live.clone());
            let _ = started_tx.send(());
            async move {
                let _guard = guard;
                std::future::pending().await
            }
        })
        .unwrap();
    }
    // The peer's socket, and a second handle on it to end it with.
    let std_stream = std::net::TcpStream::connect(bob.local_addr().unwrap()).unwrap();
    let ctl = std_stream.try_clone().unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let stream = tokio::net::TcpStream::from_std(std_stream).unwrap();
    let transport = <TokioRuntime as WrapStream<_>>::wrap(stream);
    let mut raw = RawPeer::over(transport, raw_id, bob_peer, &["x"]).await;
    let raw_peer = raw.peer_id();

    // A call each way: Bob's to the peer, which never answers, and the
    // peer's to Bob's handler, which never finishes.
    raw.call(&bob_peer, "hang", b"", Duration::from_secs(600))
        .await;
    started.recv().await.expect("the handler starts");
    // (Bob has the connection now: his call goes out on it)
    let bobs_call = {
        let bob: Node = bob.clone();
        tokio::spawn(async move { bob.call(&raw_peer, "x", b"", None).await })
    };
    until::until("Bob's call in flight", || {
        bob.stats().core.outbound_calls == 1
    })
    .await;

    if matches!(end, End::HalfCloseMidRecord | End::ResetMidRecord) {
        // A record's length prefix (1,000 bytes) and 10 of them.
        let mut part = 1_000u32.to_be_bytes().to_vec();
        part.extend_from_slice(&[0x42; 10]);
        raw.write_bytes(&part).await;
    }
    let ended = Instant::now();
    // (the half-closed peer stays, to read Bob's end; the reset one is
    // gone: the reset leaves as the last handle on its socket closes)
    let half_closed = match end {
        End::HalfClose | End::HalfCloseMidRecord => {
            ctl.shutdown(Shutdown::Write).unwrap();
            Some(raw)
        }
        End::Reset | End::ResetMidRecord => {
            socket2::SockRef::from(&ctl)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop((ctl, raw));
            None
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(20), bobs_call)
        .await
        .unwrap_or_else(|_| panic!("{end:?}: Bob's call still waits after 20 s"))
        .unwrap();
    let took = ended.elapsed();
    assert!(
        matches!(result, Err(CallError::ConnectionClosed(_))),
        "{end:?}: {result:?}"
    );
    until::until("the peer's handler dropped", || {
        live.load(Ordering::SeqCst) == 0
    })
    .await;
    until::until("Bob's tables empty", || {
        let s = bob.stats().core;
        s.connections == 0 && s.inbound_calls == 0 && s.outbound_calls == 0 && s.inbound_bytes == 0
    })
    .await;
    if let Some(mut raw) = half_closed {
        // Bob closes his side too: the peer reads to the end of his
        // stream (whatever Bob wrote before it) within the bound.
        let eof = async { while raw.read_once().await {} };
        tokio::time::timeout(Duration::from_secs(20), eof)
            .await
            .unwrap_or_else(|_| panic!("{end:?}: Bob's stream still open after 20 s"));
    }
    println!(
        "{end:?}: Bob's call failed {:.1} ms after the end",
        took.as_secs_f64() * 1e3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_right_after_the_handshake_ends_the_connection() {
    scenario(101, End::HalfClose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_mid_record_ends_the_connection() {
    scenario(103, End::HalfCloseMidRecord).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_right_after_the_handshake_ends_the_connection() {
    scenario(105, End::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_record_ends_the_connection() {
    scenario(107, End::ResetMidRecord).await;
}
