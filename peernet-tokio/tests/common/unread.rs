//! A node serving `get` with a result ready at once, and a raw peer that
//! calls it and reads nothing: the setup of the tests of replies that
//! wait for room (`non_reader_memory.rs`, `reply_backpressure.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::RawPeer;
use peernet_proto::{Config, Identity};
use peernet_tokio::{Node, NodeConfig, TokioRuntime};

/// Node `bob` (seed `bob_seed`, protocol `core`) trusting the raw peer
/// (seed `raw_seed`), which is connected; `get` answers `result()`.
/// [`Unread::call`] makes the calls.
pub(crate) struct Unread {
    pub(crate) bob: Node,
    pub(crate) raw: RawPeer,
    served: Arc<AtomicUsize>,
    all_served: Arc<tokio::sync::Notify>,
}

impl Unread {
    pub(crate) async fn start(
        bob_seed: u8,
        raw_seed: u8,
        core: Config,
        result: impl Fn() -> Bytes + Send + Sync + 'static,
    ) -> Unread {
        let raw_id = Identity::from_seed(&[raw_seed; 32]);
        let bob = Node::bind(
            NodeConfig::new(Identity::from_seed(&[bob_seed; 32]))
                .trusting(raw_id.peer_id())
                .protocol(core),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let all_served = Arc::new(tokio::sync::Notify::new());
        let (count, done) = (served.clone(), all_served.clone());
        bob.expose("get", move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
            done.notify_one();
            let body = result();
            async move { Ok(body) }
        })
        .unwrap();
        let rt = TokioRuntime::default();
        let addr = bob.local_addr().unwrap();
        let raw = RawPeer::dial(&rt, raw_id, bob.peer_id(), addr, &[]).await;
        Unread {
            bob,
            raw,
            served,
            all_served,
        }
    }

    /// The raw peer makes `calls` calls and reads nothing; returns once
    /// bob has served them all (within 60 s).
    pub(crate) async fn call(&mut self, calls: usize) {
        let bob = self.bob.peer_id();
        for _ in 0..calls {
            self.raw
                .call(&bob, "get", b"x", Duration::from_secs(600))
                .await;
        }
        let all = async {
            while self.served.load(Ordering::SeqCst) < calls {
                self.all_served.notified().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("bob serves every call");
    }
}
