//! A node serving `get` with a result ready at once, and raw peers that
//! call it and read nothing: the setup of the tests of replies that wait
//! for room (`non_reader_memory.rs`, `reply_backpressure.rs`) and of the
//! goodbyes to peers that are behind (`goodbyes_at_close.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::RawPeer;
use peernet_proto::{Config, Identity};
use peernet_tokio::{Node, NodeConfig, TokioRuntime};

/// Node `bob` (seed `bob_seed`, protocol `core`) trusting the raw peers
/// (seeds `raw_seeds`, in that order), which are connected; `get`
/// answers `result()`. [`Unread::call`] makes the calls.
pub(crate) struct Unread {
    pub(crate) bob: Node,
    pub(crate) raws: Vec<RawPeer>,
    served: Arc<AtomicUsize>,
    all_served: Arc<tokio::sync::Notify>,
}

impl Unread {
    #[allow(dead_code)] // (a test binary may take only `start_with`)
    pub(crate) async fn start(
        bob_seed: u8,
        raw_seeds: &[u8],
        core: Config,
        result: impl Fn() -> Bytes + Send + Sync + 'static,
    ) -> Unread {
        Unread::start_with(bob_seed, raw_seeds, core, result, |config| config).await
    }

    /// [`Unread::start`], bob's config changed by `tune` first.
    pub(crate) async fn start_with(
        bob_seed: u8,
        raw_seeds: &[u8],
        core: Config,
        result: impl Fn() -> Bytes + Send + Sync + 'static,
        tune: impl FnOnce(NodeConfig) -> NodeConfig,
    ) -> Unread {
        let raw_ids: Vec<Identity> = raw_seeds
            .iter()
            .map(|seed| Identity::from_seed(&[*seed; 32]))
            .collect();
        let mut config = NodeConfig::new(Identity::from_seed(&[bob_seed; 32])).protocol(core);
        for id in &raw_ids {
            config = config.trusting(id.peer_id());
        }
        let bob = Node::bind(tune(config), "127.0.0.1:0".parse().unwrap())
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
        let mut raws = Vec::new();
        for id in raw_ids {
            raws.push(RawPeer::dial(&rt, id, bob.peer_id(), addr, &[]).await);
        }
        Unread {
            bob,
            raws,
            served,
            all_served,
        }
    }

    /// Every raw peer in turn makes `calls` calls and reads nothing;
    /// returns once bob has served them all (within 60 s each).
    #[allow(dead_code)] // (a test binary may call from one peer at a time)
    pub(crate) async fn call(&mut self, calls: usize) {
        for i in 0..self.raws.len() {
            self.call_from(i, calls).await;
        }
    }

    /// Raw peer `i` makes `calls` calls and reads nothing; returns once
    /// bob has served them (within 60 s).
    pub(crate) async fn call_from(&mut self, i: usize, calls: usize) {
        let bob = self.bob.peer_id();
        let want = self.served.load(Ordering::SeqCst) + calls;
        for _ in 0..calls {
            self.raws[i]
                .call(&bob, "get", b"x", Duration::from_secs(600))
                .await;
        }
        let all = async {
            while self.served.load(Ordering::SeqCst) < want {
                self.all_served.notified().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("bob serves every call");
    }
}

/// Waits (within 30 s) for `peer`'s connection to end among `events`;
/// returns why it ended.
#[allow(dead_code)] // (not every test binary waits for the end)
pub(crate) async fn disconnected(
    events: &peernet_tokio::EventStream,
    peer: peernet_proto::PeerId,
) -> peernet_proto::CloseReason {
    let closed = async {
        loop {
            match events.recv().await.expect("events") {
                peernet_tokio::NodeEvent::Disconnected { peer: p, reason } if p == peer => {
                    break reason;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("the connection ends")
}

/// What a raw peer that read everything, to the end, got.
#[allow(dead_code)] // (not every test binary reads)
#[derive(Debug)]
pub(crate) struct ReadToEnd {
    /// Its calls that succeeded.
    pub(crate) ok: usize,
    /// Its calls that failed with the close.
    pub(crate) closed: usize,
    /// Why its connection ended.
    pub(crate) reason: Option<peernet_proto::CloseReason>,
}

/// Reads what `raw` is sent until the transport ends (within 60 s).
#[allow(dead_code)] // (not every test binary reads)
pub(crate) async fn read_to_end(raw: &mut RawPeer) -> ReadToEnd {
    use peernet_proto::Event;
    use peernet_tokio::CallError;
    let read = async {
        while raw.read_once().await {}
        let mut got = ReadToEnd {
            ok: 0,
            closed: 0,
            reason: None,
        };
        while let Some(event) = raw.try_event().await {
            match event {
                Event::CallResult { result: Ok(_), .. } => got.ok += 1,
                Event::CallResult {
                    result: Err(CallError::ConnectionClosed(_)),
                    ..
                } => got.closed += 1,
                Event::Disconnected { reason, .. } => got.reason = Some(reason),
                _ => {}
            }
        }
        got
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the peer reads to the end")
}
