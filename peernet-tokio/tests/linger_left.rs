//! What an inline write leaves for the writer task: counted against the
//! linger budget from the moment it is left, and written alone.
//!
//! The reader writes the reply to a lone call itself; what the socket
//! does not take at once (up to a frame) waits in the port for the writer
//! task. If the connection closed before that task ran (the peer's
//! GOODBYE in the reader's next read), those bytes used to count for
//! nothing: the connection lingered outside the budget while it held
//! them, and a peer that reconnects in a loop, calls for a large result
//! and says GOODBYE without reading could pile them up.
//!
//! A current-thread runtime makes the order deterministic: a read that
//! brings more bytes is handled in the same turn of the reader, and a
//! task woken meanwhile (the writer) runs only after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::RawPeer;
use peernet_proto::{Config, Event, Identity, PeerId};
use peernet_tokio::{EventStream, Node, NodeConfig, NodeEvent, TokioRuntime};

/// The result bob gives: far more than the loopback socket buffers take
/// from a peer that reads nothing (about 3.7 MiB measured).
const RESULT: usize = 12 << 20;

/// bob's largest frame: one reply.
const MAX_FRAME: u32 = 16 << 20;

/// The size of the reader's first buffer (`peernet-driver`'s
/// `FIRST_READ_BUF`): the handshake and the first CALL together fill it
/// exactly, so what follows comes in the next read.
const FIRST_READ_BUF: u64 = 4 << 10;

/// Bob serving `get` (a `RESULT`-byte result, at once), a raw peer
/// connected to it that reads nothing from now on, bob's events, and the
/// length of arguments that makes a CALL of `get` fill the rest of bob's
/// first read buffer.
struct Setup {
    bob: Node,
    raw: RawPeer,
    raw_peer: PeerId,
    events: EventStream,
    served: Arc<AtomicUsize>,
    served_now: Arc<tokio::sync::Notify>,
    args: usize,
}

impl Setup {
    async fn start(bob_seed: u8, raw_seed: u8) -> Setup {
        let raw_id = Identity::from_seed(&[raw_seed; 32]);
        let raw_peer = raw_id.peer_id();
        let mut protocol = Config::default();
        protocol.max_frame_len = MAX_FRAME;
        protocol.max_send_buffer = 32 << 20;
        let config = NodeConfig::new(Identity::from_seed(&[bob_seed; 32]))
            .trusting(raw_peer)
            .protocol(protocol);
        let bob = Node::bind(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let result = Bytes::from(vec![7u8; RESULT]);
        let served = Arc::new(AtomicUsize::new(0));
        let served_now = Arc::new(tokio::sync::Notify::new());
        let (count, now) = (served.clone(), served_now.clone());
        bob.expose("get", move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
            now.notify_one();
            let body = result.clone();
            async move { Ok(body) }
        })
        .unwrap();
        let events = bob.events();
        let addr = bob.local_addr().unwrap();
        let rt = TokioRuntime::default();
        let mut raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &[]).await;
        let up =
            async { while !matches!(events.recv().await.unwrap(), NodeEvent::Connected { .. }) {} };
        tokio::time::timeout(Duration::from_secs(30), up)
            .await
            .expect("bob connects");
        // What a CALL of `get` costs on the wire beyond its arguments: a
        // call of a handle of the same length that bob does not expose
        // (answered at once, an error), with arguments of the same length
        // class.
        let before = bob.stats().core.counters.bytes_in;
        raw.call(&bob.peer_id(), "gex", &[0; 300], Duration::from_secs(60))
            .await;
        let answered =
            async { while !matches!(raw.next_event().await, Event::CallResult { .. }) {} };
        tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .expect("bob answers");
        let read = bob.stats().core.counters.bytes_in;
        let overhead = read - before - 300;
        let args = (FIRST_READ_BUF - read - overhead) as usize;
        assert!(
            (256..4096).contains(&args),
            "{read} bytes read, {overhead} per call: a CALL cannot fill the first read"
        );
        Setup {
            bob,
            raw,
            raw_peer,
            events,
            served,
            served_now,
            args,
        }
    }

    /// Calls `get` with arguments that fill the rest of bob's first read.
    async fn call_filling(&mut self) {
        let args = vec![0; self.args];
        let bob = self.bob.peer_id();
        self.raw
            .call(&bob, "get", &args, Duration::from_secs(60))
            .await;
    }

    /// Waits until bob's handler served `calls` calls.
    async fn served(&self, calls: usize) {
        let all = async {
            while self.served.load(Ordering::SeqCst) < calls {
                self.served_now.notified().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("bob serves the calls");
    }

    /// Waits until bob took the raw peer's GOODBYE; returns what bob's
    /// closed connections then hold (within the 2 s linger: the writer
    /// still holds what it has not written).
    async fn lingering_after_goodbye(self) -> usize {
        let closed = async {
            loop {
                if let NodeEvent::Disconnected { peer, .. } = self.events.recv().await.unwrap() {
                    if peer == self.raw_peer {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), closed)
            .await
            .expect("bob reads the GOODBYE");
        let lingering = self.bob.stats().lingering_bytes;
        drop(self.raw);
        self.bob.shutdown().await;
        // Once every writer ended, what their closes counted is given
        // back: nothing lingers (a count never given back would shrink
        // the budget of every later close, for good).
        let after = self.bob.stats().lingering_bytes;
        assert_eq!(
            after, 0,
            "{after} bytes still counted once every writer ended"
        );
        lingering
    }
}

/// The reader reads the CALL, the handler answers at once, the reader's
/// inline write leaves most of the reply for the writer task and wakes
/// it, and the reader's next read, before that task runs, brings the
/// GOODBYE: the close counts what was left (it counted nothing).
#[tokio::test(flavor = "current_thread")]
async fn what_an_inline_write_left_counts_when_the_peer_says_goodbye() {
    let mut setup = Setup::start(90, 91).await;
    // CALL then GOODBYE, back to back, and nothing read.
    setup.call_filling().await;
    setup.raw.goodbye().await;
    let lingering = setup.lingering_after_goodbye().await;
    assert!(
        lingering >= 1 << 20,
        "{lingering} bytes lingering: the reply the reader left is not counted"
    );
}

/// What an inline write left goes out alone, not joined by what was
/// queued since: a second call comes in the reader's next read (its reply
/// is queued in the core, the port being busy), the writer task then
/// runs and blocks on the peer that reads nothing, and the peer says
/// GOODBYE. The closed connection holds at most one reply (it held the
/// rest of the first and the whole second: 20 MiB of two 12 MiB replies).
#[tokio::test(flavor = "current_thread")]
async fn what_an_inline_write_left_goes_out_alone() {
    let mut setup = Setup::start(92, 93).await;
    let bob = setup.bob.peer_id();
    setup.call_filling().await;
    setup
        .raw
        .call(&bob, "get", b"x", Duration::from_secs(60))
        .await;
    // (the writer task, woken as the first reply was left, runs before
    // the GOODBYE can be read: it is queued before the reader is woken)
    setup.served(2).await;
    setup.raw.goodbye().await;
    let lingering = setup.lingering_after_goodbye().await;
    assert!(
        (1 << 20..=MAX_FRAME as usize).contains(&lingering),
        "{lingering} bytes lingering: more than one reply (max {MAX_FRAME})"
    );
}
