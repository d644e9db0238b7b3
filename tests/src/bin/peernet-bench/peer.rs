//! peernet contenders, written once over `peernet_driver::Runtime`; each
//! runtime crate supplies the `Runtime` and this file a way to block on a
//! future (`Exec`).
//!
//! Every peer has its own identity from a seeded key; the server trusts
//! exactly the peers that dial it and exposes `echo` (returns its
//! arguments) and `sink` (counts fire-and-forget deliveries). Calls carry a
//! 10 s timeout, like tarpc's default deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use peernet_driver::{Identity, Node, NodeConfig, PeerId, ProtocolVersion, Runtime};

use crate::drive;
use crate::measure::{self, Contender};

/// The timeout every call carries (`--call-timeout-ms`, 0 for none).
static TIMEOUT_MS: std::sync::atomic::AtomicU64 = AtomicU64::new(10_000);

pub fn set_call_timeout_ms(ms: u64) {
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

fn timeout() -> Option<Duration> {
    match TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// How the bench runs work on a runtime.
pub trait Exec: Sync {
    type R: Runtime;
    fn name(&self) -> &'static str;
    /// The runtime handle the nodes are started on.
    fn rt(&self) -> Self::R;
    /// Runs `f` to completion on this thread (setup).
    fn block_on<F: Future>(&self, f: F) -> F::Output;
    /// Runs `f` as a task of the runtime and waits for it: the load is
    /// driven from a runtime task, as an application would.
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Runs every future as its own task and waits for all.
    fn run_all<F>(&self, fs: Vec<F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

pub struct TokioExec(pub tokio::runtime::Runtime);

impl Exec for TokioExec {
    type R = peernet_tokio::TokioRuntime;
    fn name(&self) -> &'static str {
        "peernet-tokio"
    }
    fn rt(&self) -> Self::R {
        peernet_tokio::TokioRuntime::new(self.0.handle().clone())
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.block_on(self.0.spawn(f)).expect("task panicked")
    }
    fn run_all<F>(&self, fs: Vec<F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.block_on(async {
            let hs: Vec<_> = fs.into_iter().map(|f| self.0.spawn(f)).collect();
            let mut out = Vec::with_capacity(hs.len());
            for h in hs {
                out.push(h.await.expect("task panicked"));
            }
            out
        })
    }
}

/// async-std: its global executor (one worker thread per core by default).
pub struct AsyncStdExec;

impl Exec for AsyncStdExec {
    type R = peernet_async_std::AsyncStdRuntime;
    fn name(&self) -> &'static str {
        "peernet-async-std"
    }
    fn rt(&self) -> Self::R {
        Self::R::default()
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        async_std::task::block_on(f)
    }
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_std::task::block_on(async_std::task::spawn(f))
    }
    fn run_all<F>(&self, fs: Vec<F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_std::task::block_on(async {
            let hs: Vec<_> = fs.into_iter().map(async_std::task::spawn).collect();
            let mut out = Vec::with_capacity(hs.len());
            for h in hs {
                out.push(h.await);
            }
            out
        })
    }
}

/// smol: an executor with one thread per core, like tokio's and
/// async-std's defaults (smol's global executor has one thread unless
/// `SMOL_THREADS` says otherwise).
pub struct SmolExec(pub Arc<smol::Executor<'static>>);

impl SmolExec {
    pub fn new(threads: usize) -> SmolExec {
        let ex = Arc::new(smol::Executor::new());
        for i in 0..threads {
            let ex = ex.clone();
            std::thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn(move || smol::block_on(ex.run(smol::future::pending::<()>())))
                .expect("smol thread");
        }
        SmolExec(ex)
    }
}

impl Exec for SmolExec {
    type R = peernet_smol::SmolRuntime;
    fn name(&self) -> &'static str {
        "peernet-smol"
    }
    fn rt(&self) -> Self::R {
        peernet_smol::SmolRuntime::with_executor(self.0.clone())
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        smol::block_on(f)
    }
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::block_on(self.0.spawn(f))
    }
    fn run_all<F>(&self, fs: Vec<F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::block_on(async {
            let hs: Vec<_> = fs.into_iter().map(|f| self.0.spawn(f)).collect();
            let mut out = Vec::with_capacity(hs.len());
            for h in hs {
                out.push(h.await);
            }
            out
        })
    }
}

/// A deterministic identity: `role` picks the family, `i` the member.
pub fn identity(role: u8, i: u64) -> Identity {
    let mut seed = [0u8; 32];
    seed[0] = 0x9e;
    seed[1] = role;
    seed[8..16].copy_from_slice(&i.to_le_bytes());
    Identity::from_seed(&seed)
}

/// The peernet protocol version a contender runs: version 2 (encrypted,
/// the default) is named after its runtime (`peernet-tokio`), version 1
/// gets a suffix (`peernet-tokio.v1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The suffix of the contender's name.
    pub fn suffix(self) -> &'static str {
        match self {
            Version::V1 => ".v1",
            Version::V2 => "",
        }
    }
}

/// The one place a contender's protocol version reaches its node.
fn versioned(cfg: NodeConfig, v: Version) -> NodeConfig {
    cfg.protocol_version(match v {
        Version::V1 => ProtocolVersion::V1,
        Version::V2 => ProtocolVersion::V2,
    })
}

const ROLE_SERVER: u8 = 1;
const ROLE_CLIENT: u8 = 2;

/// A server node trusting `clients`, exposing `echo` and `sink`.
pub async fn server<R: Runtime>(
    rt: R,
    tag: u64,
    clients: &[PeerId],
    v: Version,
) -> (Node<R>, Arc<AtomicU64>) {
    // Every client dials from 127.0.0.1: lift the per-source limits
    // (defences against idle sockets and failing handshakes from one
    // address, both charging every handshake in progress), or the fleets'
    // 32 concurrent dials plus handshakes not yet confirmed (a version-2
    // responder counts one until the first record) would be refused. The
    // handshake workload reconnects each client in a loop on purpose:
    // lift the limit per peer too.
    let mut cfg = versioned(NodeConfig::new(identity(ROLE_SERVER, tag)), v)
        .handshakes_per_source(usize::MAX)
        .failed_handshakes_per_source(u32::MAX, u32::MAX)
        .connects_per_peer(u32::MAX, u32::MAX);
    for c in clients {
        cfg = cfg.trusting(*c);
    }
    let node = Node::bind_with(rt, cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    node.expose("echo", |_caller, args| async move { Ok(args) })
        .unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let d = delivered.clone();
    node.expose("sink", move |_caller, _args| {
        d.fetch_add(1, Ordering::Relaxed);
        async { Ok(Bytes::new()) }
    })
    .unwrap();
    (node, delivered)
}

/// A dialing node (no listener) trusting `server`.
pub fn client<R: Runtime>(rt: R, family: u64, i: u64, server: PeerId, v: Version) -> Node<R> {
    let cfg = NodeConfig::new(identity(ROLE_CLIENT, family << 32 | i)).trusting(server);
    Node::new_with(rt, versioned(cfg, v))
}

pub fn client_ids(family: u64, n: usize) -> Vec<PeerId> {
    (0..n as u64)
        .map(|i| identity(ROLE_CLIENT, family << 32 | i).peer_id())
        .collect()
}

/// One server and `n` connected clients.
pub struct Fleet<R: Runtime> {
    pub server: Node<R>,
    pub sid: PeerId,
    pub addr: SocketAddr,
    pub delivered: Arc<AtomicU64>,
    pub clients: Vec<Node<R>>,
    pub version: Version,
}

/// A fleet of `n` clients (see [`Fleet::new`]) on `e`'s runtime, set up
/// on this thread.
pub fn fleet<E: Exec>(
    e: &E,
    family: u64,
    n: usize,
    connected: usize,
    version: Version,
) -> Arc<Fleet<E::R>> {
    Arc::new(e.block_on(Fleet::new(e.rt(), family, n, connected, version)))
}

/// Adds `op` to `inflight`; then, with `par` or more in flight, waits for
/// one to finish. Returns how many finished (0 or 1).
pub async fn push_within<F: Future>(
    inflight: &mut futures::stream::FuturesUnordered<F>,
    op: F,
    par: usize,
) -> u64 {
    inflight.push(op);
    if inflight.len() >= par {
        inflight.next().await;
        1
    } else {
        0
    }
}

impl<R: Runtime> Fleet<R> {
    /// One full connect (TCP + handshake) of client `i` (round-robin over
    /// the clients) to the server, followed by a disconnect.
    pub async fn connect_cycle(&self, i: usize) {
        let c = &self.clients[i % self.clients.len()];
        c.connect(self.sid, self.addr).await.expect("connect");
        c.disconnect(&self.sid);
    }

    /// `n` clients; the first `connected` of them dial the server now.
    pub async fn new(rt: R, family: u64, n: usize, connected: usize, version: Version) -> Fleet<R> {
        let ids = client_ids(family, n);
        let (server, delivered) = server(rt.clone(), family, &ids, version).await;
        let sid = server.peer_id();
        let addr = server.local_addr().unwrap();
        let clients: Vec<Node<R>> = (0..n as u64)
            .map(|i| client(rt.clone(), family, i, sid, version))
            .collect();
        futures::stream::iter(clients.iter().take(connected))
            .map(|c| async move { c.connect(sid, addr).await.expect("connect") })
            .buffer_unordered(32)
            .count()
            .await;
        Fleet {
            server,
            sid,
            addr,
            delivered,
            clients,
            version,
        }
    }

    /// The name of a contender on `e` running this fleet.
    pub fn name<E: Exec>(&self, e: &E) -> String {
        format!("{}{}", e.name(), self.version.suffix())
    }
}

/// 1. Sequential calls from one client.
pub fn seq<'a, E: Exec>(e: &'a E, f: Arc<Fleet<E::R>>, p: Bytes) -> Contender<'a> {
    Contender::new(f.name(e), move |w| {
        let (f, p) = (f.clone(), p.clone());
        measure::window(|| {
            e.run(async move {
                let c = &f.clients[0];
                drive::sequential(Instant::now() + w, || async {
                    let r = c.call(&f.sid, "echo", p.clone(), timeout()).await.unwrap();
                    debug_assert_eq!(r.len(), p.len());
                })
                .await
            })
        })
    })
}

/// 2. `inflight` calls in flight from one client on its one connection.
pub fn pipe<'a, E: Exec>(
    e: &'a E,
    f: Arc<Fleet<E::R>>,
    inflight: usize,
    p: Bytes,
) -> Contender<'a> {
    Contender::new(f.name(e), move |w| {
        let (f, p) = (f.clone(), p.clone());
        measure::window(|| {
            let n = e.run(async move {
                let c = &f.clients[0];
                drive::pipelined(inflight, Instant::now() + w, || async {
                    let r = c.call(&f.sid, "echo", p.clone(), timeout()).await.unwrap();
                    debug_assert_eq!(r.len(), p.len());
                })
                .await
            });
            (n, vec![])
        })
    })
}

/// 3. Every client doing sequential calls at once, each from its own task.
pub fn many<'a, E: Exec>(e: &'a E, f: Arc<Fleet<E::R>>, p: Bytes) -> Contender<'a> {
    Contender::new(f.name(e), move |w| {
        measure::window(|| {
            let deadline = Instant::now() + w;
            let tasks: Vec<_> = (0..f.clients.len())
                .map(|i| {
                    let (f, p) = (f.clone(), p.clone());
                    async move {
                        let c = &f.clients[i];
                        drive::sequential_count(deadline, || async {
                            c.call(&f.sid, "echo", p.clone(), timeout()).await.unwrap();
                        })
                        .await
                    }
                })
                .collect();
            (e.run_all(tasks).iter().sum(), vec![])
        })
    })
}

/// Workload 4: full connects (TCP + handshake), `par` at a time, each followed by a
/// disconnect; the clients are used round-robin so a client's previous
/// connection is long gone when it dials again. The window ends when the
/// server holds no connection any more, so both sides' work is inside it.
pub fn handshake<'a, E: Exec>(e: &'a E, f: Arc<Fleet<E::R>>, par: usize) -> Contender<'a> {
    let mut next = 0usize;
    Contender::new(f.name(e), move |w| {
        measure::window(|| {
            let deadline = Instant::now() + w;
            let f2 = f.clone();
            let start = next;
            let (n, end) = e.run(async move {
                let f = &f2;
                let mut n = 0u64;
                let mut next = start;
                let mut inflight = futures::stream::FuturesUnordered::new();
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        n += push_within(&mut inflight, f.connect_cycle(next), par).await;
                        next += 1;
                    }
                }
                while inflight.next().await.is_some() {
                    n += 1;
                }
                (n, next)
            });
            next = end;
            let t = Instant::now();
            while !f.server.peers().is_empty() && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_micros(200));
            }
            (n, vec![])
        })
    })
}

/// 6. Fire-and-forget sends from one client, counted where delivered.
pub fn send<'a, E: Exec>(e: &'a E, f: Arc<Fleet<E::R>>, p: Bytes) -> Contender<'a> {
    Contender::new(f.name(e), move |w| {
        let (f2, p) = (f.clone(), p.clone());
        measure::window(|| {
            let d0 = f.delivered.load(Ordering::Relaxed);
            let sent = e.run(async move {
                let c = &f2.clients[0];
                drive::sequential_count(Instant::now() + w, || async {
                    c.send(&f2.sid, "sink", p.clone()).await.unwrap();
                })
                .await
            });
            crate::wait_delivered(&f.delivered, d0 + sent);
            (f.delivered.load(Ordering::Relaxed) - d0, vec![])
        })
    })
}

/// 5, server side (in the child process): a server trusting `n` clients of
/// family 0; returns its address and a live connection count.
pub fn idle_server<E: Exec>(e: &E, n: usize) -> (SocketAddr, Box<dyn Fn() -> u64>)
where
    E::R: Runtime,
{
    let ids = client_ids(0, n);
    let (node, _) = e.block_on(server(e.rt(), 0, &ids, Version::V2));
    let addr = node.local_addr().unwrap();
    (addr, Box::new(move || node.peers().len() as u64))
}

/// 5, client side: `n` client nodes of family 0 connected to `addr`.
pub fn idle_dial<E: Exec>(e: &E, addr: SocketAddr, n: usize) -> Vec<Node<E::R>> {
    let sid = identity(ROLE_SERVER, 0).peer_id();
    e.block_on(async {
        let clients: Vec<Node<E::R>> = (0..n as u64)
            .map(|i| client(e.rt(), 0, i, sid, Version::V2))
            .collect();
        futures::stream::iter(clients.iter())
            .map(|c| async move { c.connect(sid, addr).await.expect("connect") })
            .buffer_unordered(64)
            .count()
            .await;
        clients
    })
}
