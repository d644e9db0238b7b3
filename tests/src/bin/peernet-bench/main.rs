//! peernet-bench: peernet on tokio, async-std and smol, side by side with raw
//! TCP and tarpc, over 127.0.0.1, interleaved, medians.
//!
//! ```sh
//! cargo run --release -p peernet-tests --bin peernet-bench -- [--secs N] [--quick] [--only seq,pipe,...]
//! ```
//!
//! Prints one line per figure (`name: value unit`) and ends with the ratios
//! (`ratio_<name>: <value>`). The machine is shared and noisy: every
//! contender of a workload runs in the same process, one window at a time,
//! in rotated order (A B C, B C A, …), and each figure is the median over
//! the rounds; only the ratios are meant to be compared across runs.

mod drive;
mod measure;
mod peer;
mod profile;
mod quinn_bench;
mod raw;
mod raw_other;
mod tarpc_bench;
mod tls;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use curve25519_dalek::MontgomeryPoint;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use measure::{Contender, Sample, interleave, summarize};
use peer::{Exec, Version};
use peernet_proto::testkit::noise::dh;

#[derive(Parser, Debug)]
#[command(about = "peernet vs raw TCP, tarpc and quinn, on tokio, async-std and smol")]
struct Args {
    /// Measured seconds per contender per figure (split over the rounds).
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// Interleaved rounds per figure (default 5; 3 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Run only these workloads (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Scale counts down (peers, idle connections, handshakes) for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Number of peers for the many-connections workload (default 1000).
    #[arg(long)]
    peers: Option<usize>,
    /// Number of idle connections for the memory workload (default 10000).
    #[arg(long)]
    idle: Option<usize>,
    /// Run only the contenders whose `figure.name` contains this, e.g.
    /// `pipe64x64B.peernet-tokio` (for profiling); ending in `$`, only the
    /// one whose name ends so (`handshake.peernet-tokio$` leaves out `.v1`);
    /// several patterns separated by `|` keep a contender any of them keeps.
    #[arg(long)]
    filter: Option<String>,
    /// Timeout carried by every peernet call, in ms (0: none). The default,
    /// 10 s, is tarpc's default deadline.
    #[arg(long, default_value_t = 10_000)]
    call_timeout_ms: u64,
    /// Instead of the timed workloads, run `--count` operations of one
    /// workload on one thread, for callgrind (see profile.rs).
    #[arg(long)]
    profile: Option<profile::Profile>,
    /// Operations for `--profile`.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// `false`: the pipelined driver keeps `FuturesUnordered` from
    /// yielding after a poll that polled its whole window (one
    /// never-ready future beside it), for every contender. The default
    /// `true` is the plain loop an application would write; the README
    /// says what the difference measures.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    harness_yield: bool,
    /// Counts the yields of the pipelined loop and prints, per contender,
    /// the calls completed per yield (`….calls_per_yield`). Costs one
    /// allocation per poll of the loop, alike for every contender.
    #[arg(long)]
    count_yields: bool,
    /// Internal: run as the idle-connections child process for this system.
    #[arg(long, hide = true)]
    child_idle: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// 1. sequential 64-byte calls: round trips/s, p50/p99 latency
    Seq,
    /// 2. pipelined calls on one connection: 64/256 in flight, 64 B/1 KiB; and 4 in flight of 900 kB (bulk)
    Pipe,
    /// 3. many peers each doing sequential calls against one node
    Many,
    /// 4. full connects per second and CPU per handshake
    Handshake,
    /// 5. RSS per established idle connection
    Idle,
    /// 6. fire-and-forget 64-byte sends delivered per second
    Send,
}

/// Collected figures, printed as they are measured.
#[derive(Default)]
struct Report {
    values: BTreeMap<String, f64>,
}

impl Report {
    fn fig(&mut self, name: &str, value: f64, unit: &str) {
        let v = if value.abs() >= 100.0 || value == 0.0 {
            format!("{value:.0}")
        } else if value.abs() >= 1.0 {
            format!("{value:.2}")
        } else {
            format!("{value:.4}")
        };
        println!("{name}: {v} {unit}");
        let _ = std::io::stdout().flush();
        self.values.insert(name.to_string(), value);
    }
    fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }
}

struct Ctx {
    rounds: usize,
    win: Duration,
    peers: usize,
    idle: usize,
    handshakes_par: usize,
    filter: Option<String>,
    tk: peer::TokioExec,
    asx: peer::AsyncStdExec,
    smx: peer::SmolExec,
}

/// One version-2 fleet per peernet runtime: (tokio, async-std, smol).
macro_rules! fleets {
    ($ctx:expr, $fam:expr, $n:expr, $connected:expr) => {
        (
            peer::fleet(&$ctx.tk, $fam, $n, $connected, Version::V2),
            peer::fleet(&$ctx.asx, $fam + 0x100, $n, $connected, Version::V2),
            peer::fleet(&$ctx.smx, $fam + 0x200, $n, $connected, Version::V2),
        )
    };
}

/// The same contender for each peernet runtime.
macro_rules! each_runtime {
    ($ctx:expr, $fl:expr, |$e:ident, $f:ident| $body:expr) => {
        [
            {
                let ($e, $f) = (&$ctx.tk, $fl.0.clone());
                $body
            },
            {
                let ($e, $f) = (&$ctx.asx, $fl.1.clone());
                $body
            },
            {
                let ($e, $f) = (&$ctx.smx, $fl.2.clone());
                $body
            },
        ]
    };
}

impl Ctx {
    /// Drops the contenders `--filter` excludes.
    fn keep(&self, fig: &str, cs: &mut Vec<Contender<'_>>) {
        if let Some(f) = &self.filter {
            cs.retain(|c| {
                let name = format!("{fig}.{}", c.name);
                f.split('|').any(|f| match f.strip_suffix('$') {
                    Some(end) => name.ends_with(end),
                    None => name.contains(f),
                })
            });
        }
    }
    fn tokio(&self) -> &tokio::runtime::Runtime {
        &self.tk.0
    }
    /// A version-1 fleet on tokio (`peernet-tokio.v1`), beside the
    /// version-2 fleets of `fleets!`.
    fn v1_fleet(
        &self,
        family: u64,
        n: usize,
        connected: usize,
    ) -> Arc<peer::Fleet<peernet_tokio::TokioRuntime>> {
        peer::fleet(&self.tk, family + 0x300, n, connected, Version::V1)
    }
}

fn main() {
    let args = Args::parse();
    let fd_limit = measure::raise_fd_limit();
    peer::set_call_timeout_ms(args.call_timeout_ms);
    drive::set_window_yield(args.harness_yield);
    if args.count_yields {
        drive::count_yields();
    }
    if let Some(what) = args.profile {
        profile::run(what, args.count);
        return;
    }
    if let Some(sys) = &args.child_idle {
        idle_child(sys);
        return;
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ctx = Ctx {
        rounds,
        win: Duration::from_secs_f64(args.secs / rounds as f64),
        peers: args.peers.unwrap_or(if args.quick { 50 } else { 1000 }),
        idle: args.idle.unwrap_or(if args.quick { 500 } else { 10_000 }),
        handshakes_par: 4,
        filter: args.filter.clone(),
        tk: peer::TokioExec(
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        ),
        asx: peer::AsyncStdExec,
        smx: peer::SmolExec::new(cores),
    };
    let want = |w: Workload| args.only.is_empty() || args.only.contains(&w);
    println!(
        "# peernet-bench: {cores} cores, {rounds} rounds x {:.3} s windows, fd limit {fd_limit}, harness yield {}",
        ctx.win.as_secs_f64(),
        args.harness_yield
    );
    let t0 = Instant::now();
    let mut r = Report::default();
    r.fig("cores", cores as f64, "");
    if want(Workload::Seq) {
        seq(&ctx, &mut r);
    }
    if want(Workload::Pipe) {
        pipe(&ctx, &mut r);
    }
    if want(Workload::Many) {
        many(&ctx, &mut r);
    }
    if want(Workload::Handshake) {
        handshake(&ctx, &mut r);
    }
    if want(Workload::Idle) {
        idle(&ctx, &mut r);
    }
    if want(Workload::Send) {
        send(&ctx, &mut r);
    }
    r.fig("bench_wall", t0.elapsed().as_secs_f64(), "s");
    ratios(&r);
}

fn payload(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>())
}

/// Prints the standard figures of one interleaved comparison.
fn report_rates(
    r: &mut Report,
    fig: &str,
    unit: &str,
    names: &[String],
    mut samples: Vec<Vec<Sample>>,
    latency: bool,
) {
    for (name, s) in names.iter().zip(samples.iter_mut()) {
        let sum = summarize(s);
        r.fig(&format!("{fig}.{name}"), sum.rate, unit);
        if latency {
            r.fig(&format!("{fig}.{name}.p50"), sum.p50_ns / 1e3, "us");
            r.fig(&format!("{fig}.{name}.p99"), sum.p99_ns / 1e3, "us");
        }
        r.fig(&format!("{fig}.{name}.cpu"), sum.cpu_ns_per_op, "ns/op");
        r.fig(&format!("{fig}.{name}.cores_busy"), sum.cores, "cores");
        r.fig(
            &format!("{fig}.{name}.ctx_switches"),
            sum.vcsw_per_op,
            "per op",
        );
        if let Some(per_yield) = sum.ops_per_yield.filter(|_| !latency) {
            r.fig(&format!("{fig}.{name}.calls_per_yield"), per_yield, "");
        }
    }
}

fn run_interleaved(
    ctx: &Ctx,
    r: &mut Report,
    fig: &str,
    unit: &str,
    mut cs: Vec<Contender<'_>>,
    latency: bool,
) {
    ctx.keep(fig, &mut cs);
    let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    let samples = interleave(&mut cs, ctx.rounds, ctx.win);
    drop(cs);
    report_rates(r, fig, unit, &names, samples, latency);
}

/// Moves `state` into a task on `tk`, runs `f` on it there, and puts it
/// back: the load is driven from a runtime task, as an application would.
fn on_task<E: Exec, S, T, F, Fut>(e: &E, slot: &mut Option<S>, f: F) -> T
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnOnce(S) -> Fut,
    Fut: std::future::Future<Output = (S, T)> + Send + 'static,
{
    let state = slot.take().expect("state in use");
    let (state, out) = e.run(f(state));
    *slot = Some(state);
    out
}

/// Sequential raw TCP calls over `stream` on `e`'s executor: that
/// runtime's latency floor (`raw_other.rs`).
fn raw_pingpong<'a, E, S>(name: &str, e: &'a E, stream: S, p: &Bytes) -> Contender<'a>
where
    E: Exec,
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut slot, p) = (Some(stream), p.clone());
    Contender::new(name, move |w| {
        let p = p.clone();
        measure::window(|| {
            on_task(e, &mut slot, |mut c| async move {
                let r = raw_other::run_seq(&mut c, &p, Instant::now() + w).await;
                (c, r)
            })
        })
    })
}

/// A baseline RPC contender on tokio: `op(client, payload)` makes one call;
/// sequential (with latencies) or `inflight` calls in flight.
fn rpc<'a, C, F, Fut>(
    tk: &'a peer::TokioExec,
    name: &str,
    client: Arc<C>,
    p: Bytes,
    inflight: Option<usize>,
    op: F,
) -> Contender<'a>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>, Bytes) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Contender::new(name, move |w| {
        let (c, p) = (client.clone(), p.clone());
        measure::window(|| {
            tk.run(async move {
                let deadline = Instant::now() + w;
                let call = || op(c.clone(), p.clone());
                match inflight {
                    None => drive::sequential(deadline, call).await,
                    Some(n) => (drive::pipelined(n, deadline, call).await, vec![]),
                }
            })
        })
    })
}

async fn tarpc_call(c: Arc<tarpc_bench::EchoClient>, p: Bytes) {
    let r = tarpc_bench::call(&c, &p).await;
    debug_assert_eq!(r.len(), p.len());
}

async fn quinn_call(c: Arc<quinn_bench::Client>, p: Bytes) {
    let r = quinn_bench::call(&c, &p).await;
    debug_assert_eq!(r.len(), p.len());
}

/// The RPC baselines of the sequential and pipelined workloads: tarpc in
/// clear and over TLS, and quinn. Their servers live as long as this.
struct Baselines {
    tarpc: Arc<tarpc_bench::EchoClient>,
    tarpc_tls: Arc<tarpc_bench::EchoClient>,
    quinn: Arc<quinn_bench::Client>,
    _quinn_server: quinn::Endpoint,
}

impl Baselines {
    fn start(tk: &peer::TokioExec) -> Baselines {
        tk.block_on(async {
            let tls = tls::Tls::new();
            let taddr = tarpc_bench::start_server().await.unwrap();
            let tls_addr = tarpc_bench::start_server_tls(&tls).await.unwrap();
            let qs = quinn_bench::start_server(&tls).await.unwrap();
            let qaddr = qs.local_addr().unwrap();
            Baselines {
                tarpc: Arc::new(tarpc_bench::connect(taddr).await.unwrap()),
                tarpc_tls: Arc::new(tarpc_bench::connect_tls(tls_addr, &tls).await.unwrap()),
                quinn: Arc::new(quinn_bench::connect(qaddr, &tls).await.unwrap()),
                _quinn_server: qs,
            }
        })
    }

    fn contenders<'a>(
        &self,
        tk: &'a peer::TokioExec,
        p: &Bytes,
        inflight: Option<usize>,
    ) -> [Contender<'a>; 3] {
        let tarpc = |name, client: &Arc<tarpc_bench::EchoClient>| {
            rpc(tk, name, client.clone(), p.clone(), inflight, tarpc_call)
        };
        [
            tarpc("tarpc", &self.tarpc),
            tarpc("tarpc_tls", &self.tarpc_tls),
            rpc(
                tk,
                "quinn",
                self.quinn.clone(),
                p.clone(),
                inflight,
                quinn_call,
            ),
        ]
    }
}

/// 1. Sequential 64-byte calls.
fn seq(ctx: &Ctx, r: &mut Report) {
    let rt = ctx.tokio();
    let tk = &ctx.tk;
    let p = payload(64);
    let server = rt.block_on(raw::RawServer::start()).unwrap();
    let base = Baselines::start(tk);
    let mut pp = Some(rt.block_on(raw::PingPong::connect(server.addr)).unwrap());
    let mux = Arc::new(rt.block_on(raw::Mux::connect(server.addr)).unwrap());
    let fl = fleets!(ctx, 0x11, 1, 1);
    let fl1 = ctx.v1_fleet(0x11, 1, 1);
    let mut cs = vec![
        Contender::new("rawtcp.pingpong", |w| {
            let p = p.clone();
            measure::window(|| {
                on_task(tk, &mut pp, |mut c| async move {
                    let r = c.run_seq(&p, Instant::now() + w).await;
                    (c, r)
                })
            })
        }),
        raw_pingpong(
            "rawtcp.pingpong.smol",
            &ctx.smx,
            raw_other::smol_pair(&ctx.smx.0),
            &p,
        ),
        raw_pingpong(
            "rawtcp.pingpong.async-std",
            &ctx.asx,
            raw_other::async_std_pair(),
            &p,
        ),
        Contender::new("rawtcp.mux", |w| {
            let (m, p) = (mux.clone(), p.clone());
            measure::window(|| {
                tk.run(async move {
                    drive::sequential(Instant::now() + w, || async {
                        m.call(p.clone()).await.unwrap();
                    })
                    .await
                })
            })
        }),
    ];
    cs.extend(base.contenders(tk, &p, None));
    cs.extend(each_runtime!(ctx, fl, |e, f| peer::seq(e, f, p.clone())));
    cs.push(peer::seq(tk, fl1, p.clone()));
    run_interleaved(ctx, r, "seq64", "calls/s", cs, true);
}

/// 2. Pipelined calls on one connection.
fn pipe(ctx: &Ctx, r: &mut Report) {
    let rt = ctx.tokio();
    let tk = &ctx.tk;
    let server = rt.block_on(raw::RawServer::start()).unwrap();
    let base = Baselines::start(tk);
    let mut rp = Some(rt.block_on(raw::Pipe::connect(server.addr)).unwrap());
    let mux = Arc::new(rt.block_on(raw::Mux::connect(server.addr)).unwrap());
    let fl = fleets!(ctx, 0x12, 1, 1);
    let fl1 = ctx.v1_fleet(0x12, 1, 1);
    // (the last: bulk, large calls that fill the socket buffers)
    for (inflight, size) in [(64, 64), (256, 64), (64, 1024), (256, 1024), (4, 900_000)] {
        let p = payload(size);
        let rp = &mut rp;
        let mut cs = vec![
            Contender::new("rawtcp.pipe", |w| {
                let p = p.clone();
                measure::window(|| {
                    let n = on_task(tk, rp, |mut c| async move {
                        let n = c.run(inflight, p, Instant::now() + w).await;
                        (c, n)
                    });
                    (n, vec![])
                })
            }),
            Contender::new("rawtcp.mux", |w| {
                let (m, p) = (mux.clone(), p.clone());
                measure::window(|| {
                    let n = tk.run(async move {
                        drive::pipelined(inflight, Instant::now() + w, || async {
                            m.call(p.clone()).await.unwrap();
                        })
                        .await
                    });
                    (n, vec![])
                })
            }),
        ];
        cs.extend(base.contenders(tk, &p, Some(inflight)));
        cs.extend(each_runtime!(ctx, fl, |e, f| peer::pipe(
            e,
            f,
            inflight,
            p.clone()
        )));
        cs.push(peer::pipe(tk, fl1.clone(), inflight, p.clone()));
        let fig = format!("pipe{inflight}x{size}B");
        run_interleaved(ctx, r, &fig, "calls/s", cs, false);
    }
}

/// Workload 3: many connections, each doing sequential calls against one node; each
/// connection is driven by its own task.
fn many(ctx: &Ctx, r: &mut Report) {
    let rt = ctx.tokio();
    let tk = &ctx.tk;
    let p = payload(64);
    let server = rt.block_on(raw::RawServer::start()).unwrap();
    let mut conns: Vec<Option<raw::PingPong>> = rt.block_on(async {
        let mut v = Vec::with_capacity(ctx.peers);
        for _ in 0..ctx.peers {
            v.push(Some(raw::PingPong::connect(server.addr).await.unwrap()));
        }
        v
    });
    let fl = fleets!(ctx, 0x13, ctx.peers, ctx.peers);
    let fl1 = ctx.v1_fleet(0x13, ctx.peers, ctx.peers);
    let mut cs = vec![Contender::new("rawtcp.pingpong", |w| {
        measure::window(|| {
            let deadline = Instant::now() + w;
            let tasks: Vec<_> = conns
                .iter_mut()
                .map(|slot| {
                    let mut c = slot.take().unwrap();
                    let p = p.clone();
                    async move {
                        let mut n = 0;
                        while Instant::now() < deadline {
                            c.call(&p).await.unwrap();
                            n += 1;
                        }
                        (c, n)
                    }
                })
                .collect();
            let mut n = 0;
            for (slot, (c, k)) in conns.iter_mut().zip(tk.run_all(tasks)) {
                *slot = Some(c);
                n += k;
            }
            (n, vec![])
        })
    })];
    cs.extend(each_runtime!(ctx, fl, |e, f| peer::many(e, f, p.clone())));
    cs.push(peer::many(tk, fl1, p.clone()));
    let fig = format!("many{}", ctx.peers);
    run_interleaved(ctx, r, &fig, "calls/s", cs, false);
}

/// What each handshake side cannot avoid: sign once, decode the peer's key,
/// verify once (strictly). As in peernet-proto/benches/handshake.rs.
struct Floor {
    key: SigningKey,
    peer: [u8; 32],
    msg: Vec<u8>,
    sig: ed25519_dalek::Signature,
}

impl Floor {
    fn new() -> Floor {
        let key = SigningKey::from_bytes(&[3; 32]);
        let peer = key.verifying_key().to_bytes();
        // as long as the longest signed handshake string: label + HELLO + WELCOME
        let msg = vec![0x5a; 16 + 70 + 134];
        let sig = key.sign(&msg);
        Floor {
            key,
            peer,
            msg,
            sig,
        }
    }
    fn once(&self) {
        use std::hint::black_box;
        black_box(self.key.sign(black_box(&self.msg)));
        let vk = VerifyingKey::from_bytes(black_box(&self.peer)).unwrap();
        vk.verify_strict(black_box(&self.msg), black_box(&self.sig))
            .unwrap();
    }
}

/// The X25519 work of one version-2 handshake side (PROTOCOL.md part B,
/// Noise IK): one ephemeral key generation and four Diffie-Hellman (ee, es,
/// se and ss, computed once on each side), through the core's own X25519
/// (`testkit::noise::dh`, the Edwards-form multiplication it uses for
/// honest keys), so the floor is what the handshake cannot do without.
/// Ephemeral secrets come from a counter (no RNG cost in the floor).
struct X25519Floor {
    secret: [u8; 32],
    peer: MontgomeryPoint,
    n: u64,
}

impl X25519Floor {
    fn new() -> X25519Floor {
        X25519Floor {
            secret: [7; 32],
            peer: MontgomeryPoint::mul_base_clamped([9; 32]),
            n: 0,
        }
    }
    fn once(&mut self) {
        use std::hint::black_box;
        self.n += 1;
        self.secret[..8].copy_from_slice(&self.n.to_le_bytes());
        black_box(MontgomeryPoint::mul_base_clamped(black_box(self.secret)));
        for _ in 0..4 {
            let _ = black_box(dh(black_box(&self.secret), black_box(&self.peer.0)));
        }
    }
}

/// A loop of `once` until the window ends, 16 at a time.
fn cpu_loop(w: Duration, mut once: impl FnMut()) -> (u64, Vec<u64>) {
    let deadline = Instant::now() + w;
    let mut n = 0;
    while Instant::now() < deadline {
        for _ in 0..16 {
            once();
        }
        n += 16;
    }
    (n, vec![])
}

/// 4. Handshakes: full connects per second, CPU per handshake side.
fn handshake(ctx: &Ctx, r: &mut Report) {
    let rt = ctx.tokio();
    let server = rt.block_on(raw::RawServer::start()).unwrap();
    let floor = Floor::new();
    let mut x25519 = X25519Floor::new();
    let par = ctx.handshakes_par;
    let fl = fleets!(ctx, 0x14, 256, 0);
    let fl1 = ctx.v1_fleet(0x14, 256, 0);
    let mut cs = vec![
        Contender::new("crypto_floor", |w| {
            measure::window(|| cpu_loop(w, || floor.once()))
        }),
        Contender::new("x25519_floor", |w| {
            measure::window(|| cpu_loop(w, || x25519.once()))
        }),
        // The harness sleeps through a window: whatever CPU the process
        // spends meanwhile (work the contenders before left running) is
        // charged to every contender's window alike.
        Contender::new("background", |w| {
            measure::window(|| {
                std::thread::sleep(w);
                (1, vec![])
            })
        }),
        Contender::new("rawtcp.connect", |w| {
            measure::window(|| {
                let deadline = Instant::now() + w;
                let mut n = 0;
                while Instant::now() < deadline {
                    n += ctx.tk.run(raw::connect_close(server.addr, 64, par));
                }
                (n, vec![])
            })
        }),
    ];
    cs.extend(each_runtime!(ctx, fl, |e, f| peer::handshake(e, f, par)));
    cs.push(peer::handshake(&ctx.tk, fl1, par));
    ctx.keep("handshake", &mut cs);
    let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    let mut samples = interleave(&mut cs, ctx.rounds, ctx.win);
    drop(cs);
    for (name, s) in names.iter().zip(samples.iter_mut()) {
        let sum = summarize(s);
        if name.ends_with("_floor") {
            r.fig(&format!("handshake.{name}"), sum.cpu_ns_per_op / 1e3, "us");
        } else if name == "background" {
            let share = sum.cpu_ns_per_op / ctx.win.as_nanos() as f64;
            r.fig("handshake.background", share, "cores");
        } else {
            r.fig(&format!("handshake.{name}"), sum.rate, "connects/s");
            // Both sides live in this process: CPU per side is half.
            r.fig(
                &format!("handshake.{name}.cpu_per_side"),
                sum.cpu_ns_per_op / 2e3,
                "us",
            );
        }
    }
    // Version 2's floor per side: TCP alone plus the handshake's X25519.
    let v = r.get("handshake.rawtcp.connect.cpu_per_side") + r.get("handshake.x25519_floor");
    if !v.is_nan() {
        r.fig("handshake.v2_floor", v, "us");
    }
}

const IDLE_SYSTEMS: &[&str] = &[
    "rawtcp",
    "peernet-tokio",
    "peernet-async-std",
    "peernet-smol",
];

/// 5. Idle connections: a child process holds them; we read its RSS.
fn idle(ctx: &Ctx, r: &mut Report) {
    let n = ctx.idle;
    for sys in IDLE_SYSTEMS {
        match idle_measure(ctx, sys, n) {
            Ok(per) => r.fig(&format!("idle{n}.{sys}"), per, "bytes/conn"),
            Err(e) => println!("# idle {sys}: {e}"),
        }
    }
}

/// Spawns this binary as `--child-idle <sys>`, dials `n` connections to it
/// and returns the child's RSS growth per connection.
fn idle_measure(ctx: &Ctx, sys: &str, n: usize) -> Result<f64, String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // /proc/self/exe still works when the file was rebuilt meanwhile (the
    // target directory is shared).
    let exe = match std::path::Path::new("/proc/self/exe").exists() {
        true => std::path::PathBuf::from("/proc/self/exe"),
        false => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let mut child = Command::new(exe)
        .args(["--child-idle", sys, "--idle", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    let mut read = |out: &mut BufReader<_>| -> Result<String, String> {
        line.clear();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim().to_string())
    };
    // "ready <addr> <rss>"
    let ready = read(&mut out)?;
    let parts: Vec<&str> = ready.split_whitespace().collect();
    if parts.len() != 3 || parts[0] != "ready" {
        return Err(format!("child said {ready:?}"));
    }
    let addr: std::net::SocketAddr = parts[1].parse().map_err(|_| "bad addr")?;
    let rss0: f64 = parts[2].parse().map_err(|_| "bad rss")?;
    let held = idle_dial(ctx, sys, addr, n)?;
    writeln!(stdin, "measure").map_err(|e| e.to_string())?;
    let m = read(&mut out)?;
    let parts: Vec<&str> = m.split_whitespace().collect();
    if parts.len() != 3 || parts[0] != "rss" {
        return Err(format!("child said {m:?}"));
    }
    let conns: f64 = parts[1].parse().map_err(|_| "bad count")?;
    let rss1: f64 = parts[2].parse().map_err(|_| "bad rss")?;
    drop(stdin);
    let _ = child.wait();
    drop(held);
    if conns < n as f64 {
        return Err(format!("child holds {conns} of {n} connections"));
    }
    Ok((rss1 - rss0) / n as f64)
}

/// What keeps the dialing side of the idle connections open.
type Held = Box<dyn std::any::Any>;

fn idle_dial(ctx: &Ctx, sys: &str, addr: std::net::SocketAddr, n: usize) -> Result<Held, String> {
    if sys == "rawtcp" {
        let rt = ctx.tokio();
        let v = rt.block_on(async {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(raw::dial(addr).await?);
            }
            Ok::<_, std::io::Error>(v)
        });
        let v = v.map_err(|e| e.to_string())?;
        // let the server accept them all
        rt.block_on(raw::pause(Duration::from_millis(200)));
        return Ok(Box::new(v));
    }
    match sys {
        "peernet-tokio" => Ok(Box::new(peer::idle_dial(&ctx.tk, addr, n))),
        "peernet-async-std" => Ok(Box::new(peer::idle_dial(&ctx.asx, addr, n))),
        "peernet-smol" => Ok(Box::new(peer::idle_dial(&ctx.smx, addr, n))),
        _ => Err(format!("unknown system {sys}")),
    }
}

/// Child side of the idle workload: holds the server, reports RSS.
fn idle_child(sys: &str) {
    use std::io::BufRead;
    let args = Args::parse();
    let n = args.idle.unwrap_or(10_000);
    let tk = peer::TokioExec(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let rt = &tk.0;
    let (addr, count): (std::net::SocketAddr, Box<dyn Fn() -> u64>) = if sys == "rawtcp" {
        let s = rt.block_on(raw::RawServer::start()).unwrap();
        let c = s.conns.clone();
        (
            s.addr,
            Box::new(move || c.load(std::sync::atomic::Ordering::Relaxed)),
        )
    } else {
        match sys {
            "peernet-tokio" => peer::idle_server(&tk, n),
            "peernet-async-std" => peer::idle_server(&peer::AsyncStdExec, n),
            "peernet-smol" => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                peer::idle_server(&peer::SmolExec::new(cores), n)
            }
            _ => panic!("unknown system {sys}"),
        }
    };
    println!("ready {addr} {}", measure::rss_bytes());
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    // Let stragglers finish their handshakes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < n as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("rss {} {}", count(), measure::rss_bytes());
}

/// 6. Fire-and-forget 64-byte sends, counted where they are delivered.
fn send(ctx: &Ctx, r: &mut Report) {
    let rt = ctx.tokio();
    let p = payload(64);
    let server = rt.block_on(raw::RawServer::start()).unwrap();
    let mut pp = Some(rt.block_on(raw::PingPong::connect(server.addr)).unwrap());
    let delivered = server.sends.clone();
    let fl = fleets!(ctx, 0x16, 1, 1);
    let fl1 = ctx.v1_fleet(0x16, 1, 1);
    let mut cs = vec![Contender::new("rawtcp", |w| {
        let p = p.clone();
        measure::window(|| {
            let d0 = delivered.load(std::sync::atomic::Ordering::Relaxed);
            let sent = on_task(&ctx.tk, &mut pp, |mut c| async move {
                let n = c.run_sends(&p, 64, Instant::now() + w).await;
                (c, n)
            });
            wait_delivered(&delivered, d0 + sent);
            (
                delivered.load(std::sync::atomic::Ordering::Relaxed) - d0,
                vec![],
            )
        })
    })];
    cs.extend(each_runtime!(ctx, fl, |e, f| peer::send(e, f, p.clone())));
    cs.push(peer::send(&ctx.tk, fl1, p.clone()));
    run_interleaved(ctx, r, "send64", "sends/s", cs, false);
}

/// Waits until `counter` reaches `target`, or stops moving for 200 ms.
fn wait_delivered(counter: &std::sync::atomic::AtomicU64, target: u64) {
    let mut last = counter.load(std::sync::atomic::Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        let now = counter.load(std::sync::atomic::Ordering::Relaxed);
        if now >= target {
            return;
        }
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(200) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn ratio_line(name: &str, v: f64, goal: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    };
    println!("ratio_{name}: {v:.3} (goal {goal}: {verdict})");
}

fn ratios(r: &Report) {
    let ge = |v: f64, g: f64| (!v.is_nan()).then_some(v >= g);
    let le = |v: f64, g: f64| (!v.is_nan()).then_some(v <= g);
    let pt = r.get("pipe64x64B.peernet-tokio");
    let v = pt / r.get("pipe64x64B.rawtcp.mux");
    ratio_line("pipelined64_vs_rawmux", v, ">= 0.8", ge(v, 0.8));
    let v = pt / r.get("pipe64x64B.tarpc");
    ratio_line("pipelined64_vs_tarpc", v, ">= 4.0", ge(v, 4.0));
    let v = r.get("seq64.peernet-tokio.p50") / r.get("seq64.rawtcp.pingpong.p50");
    ratio_line("latency_p50_vs_rawtcp", v, "<= 1.2", le(v, 1.2));
    // The ed25519 floor is version 1's: compare the version-1 handshake.
    let v = r.get("handshake.peernet-tokio.v1.cpu_per_side") / r.get("handshake.crypto_floor");
    ratio_line("handshake_vs_crypto_floor", v, "<= 1.2", le(v, 1.2));
    // The same with what TCP alone costs per side (connect, accept, a few
    // bytes, close: rawtcp.connect) taken out: what peernet adds to TCP.
    let v = (r.get("handshake.peernet-tokio.v1.cpu_per_side")
        - r.get("handshake.rawtcp.connect.cpu_per_side"))
        / r.get("handshake.crypto_floor");
    ratio_line(
        "handshake_minus_tcp_vs_crypto_floor",
        v,
        "<= 1.2 (context)",
        None,
    );
    let v = r.get("pipe64x64B.peernet-async-std") / pt;
    ratio_line("asyncstd_vs_tokio", v, ">= 0.8", ge(v, 0.8));
    let v = r.get("pipe64x64B.peernet-smol") / pt;
    ratio_line("smol_vs_tokio", v, ">= 0.8", ge(v, 0.8));
    // Anchors, for context.
    let v = r.get("pipe64x64B.rawtcp.mux") / r.get("pipe64x64B.rawtcp.pipe");
    ratio_line("anchor_rawmux_vs_rawpipe", v, "~0.15 (anchor)", None);
    let v = r.get("pipe64x64B.tarpc") / r.get("pipe64x64B.rawtcp.mux");
    ratio_line("anchor_tarpc_vs_rawmux", v, "~0.19 (anchor)", None);
    let v = r.get("seq64.tarpc.p50") / r.get("seq64.rawtcp.pingpong.p50");
    ratio_line("anchor_tarpc_p50_vs_rawtcp", v, "~1.7 (anchor)", None);
    // Each runtime's peernet latency against that runtime's raw TCP.
    for (name, rt) in [("smol", "smol"), ("asyncstd", "async-std")] {
        let v = r.get(&format!("seq64.peernet-{rt}.p50"))
            / r.get(&format!("seq64.rawtcp.pingpong.{rt}.p50"));
        let ratio = format!("{name}_latency_p50_vs_raw{name}");
        ratio_line(&ratio, v, "(context)", None);
    }
    for (name, num, den, goal) in V2_RATIOS {
        let v = r.get(num) / r.get(den);
        let met = match goal {
            Goal::AtLeast(g) => (!v.is_nan()).then_some(v >= *g),
            Goal::AtMost(g) => (!v.is_nan()).then_some(v <= *g),
            Goal::Anchor => None,
        };
        ratio_line(name, v, &goal.to_string(), met);
    }
    println!(
        "cpu_ns_per_call: peernet-tokio {:.0} rawtcp.mux {:.0} (pipelined 64 in flight, 64 B; both sides)",
        r.get("pipe64x64B.peernet-tokio.cpu"),
        r.get("pipe64x64B.rawtcp.mux.cpu")
    );
    let (v2, v1) = (
        r.get("pipe64x64B.peernet-tokio.cpu"),
        r.get("pipe64x64B.peernet-tokio.v1.cpu"),
    );
    println!(
        "cpu_ns_per_call_v2_minus_v1: {:.0} (v2 {v2:.0}, v1 {v1:.0}; pipelined 64 in flight, 64 B; both sides)",
        v2 - v1
    );
}

/// What a ratio is held to.
enum Goal {
    AtLeast(f64),
    AtMost(f64),
    /// Context only.
    Anchor,
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::AtLeast(g) => write!(f, ">= {g}"),
            Goal::AtMost(g) => write!(f, "<= {g}"),
            Goal::Anchor => f.write_str("(anchor)"),
        }
    }
}

/// The encrypted baselines' anchors and the goals of protocol version 2
/// (issue 12): `ratio_<name>` = figure / figure. `peernet-tokio` is version
/// 2, `peernet-tokio.v1` version 1.
const V2_RATIOS: &[(&str, &str, &str, Goal)] = &[
    (
        "anchor_quinn_vs_rawmux",
        "pipe64x64B.quinn",
        "pipe64x64B.rawtcp.mux",
        Goal::Anchor,
    ),
    (
        "anchor_tarpc_tls_vs_tarpc",
        "pipe64x64B.tarpc_tls",
        "pipe64x64B.tarpc",
        Goal::Anchor,
    ),
    (
        "v2_pipelined64_vs_rawmux",
        "pipe64x64B.peernet-tokio",
        "pipe64x64B.rawtcp.mux",
        Goal::AtLeast(0.75),
    ),
    (
        "v2_vs_v1_pipelined64",
        "pipe64x64B.peernet-tokio",
        "pipe64x64B.peernet-tokio.v1",
        Goal::AtLeast(0.9),
    ),
    (
        "v2_latency_p50_vs_rawtcp",
        "seq64.peernet-tokio.p50",
        "seq64.rawtcp.pingpong.p50",
        Goal::AtMost(1.25),
    ),
    (
        "v2_pipelined64_vs_quinn",
        "pipe64x64B.peernet-tokio",
        "pipe64x64B.quinn",
        Goal::AtLeast(5.0),
    ),
    (
        "v2_pipelined64_vs_tarpc_tls",
        "pipe64x64B.peernet-tokio",
        "pipe64x64B.tarpc_tls",
        Goal::AtLeast(2.5),
    ),
    // Bulk, for context: ChaCha20-Poly1305 in software against TLS's
    // AES-GCM, which rustls takes where the CPU has AES instructions.
    (
        "v2_bulk_vs_tarpc_tls",
        "pipe4x900000B.peernet-tokio",
        "pipe4x900000B.tarpc_tls",
        Goal::Anchor,
    ),
    (
        "v2_vs_v1_bulk",
        "pipe4x900000B.peernet-tokio",
        "pipe4x900000B.peernet-tokio.v1",
        Goal::Anchor,
    ),
    (
        "v2_handshake_vs_floor",
        "handshake.peernet-tokio.cpu_per_side",
        "handshake.v2_floor",
        Goal::AtMost(1.3),
    ),
];
