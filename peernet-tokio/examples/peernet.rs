//! `peernet`: generate an identity, run a node, call it from a shell.
//!
//! ```text
//! peernet keygen <KEYFILE>
//! peernet id <KEYFILE>
//! peernet serve --key <KEYFILE> --listen <IP:PORT> [--trust <PEERID>]... [--expose <HANDLE>]...
//!               [--handshake-timeout <MS>] [--ping-interval <MS>] [--idle-timeout <MS>]
//!               [--max-frame <BYTES>] [--max-inbound-calls <N>] [--protocol 1|2]
//! peernet call --key <KEYFILE> --connect <PEERID>@<IP:PORT> [--timeout <MS>] [--protocol 1|2]
//!              <HANDLE> <ARGS>
//! peernet send --key <KEYFILE> --connect <PEERID>@<IP:PORT> [--protocol 1|2] <HANDLE> <ARGS>
//! ```
//!
//! `--protocol` picks the wire protocol: 2 (the default) encrypts
//! everything after the handshake; 1 is the opt-in for trusted networks
//! and streams already encrypted. A node speaks only its version: the
//! other one is refused with `unsupported_version`.
//!
//! `serve` prints `listening <PEERID> <IP:PORT>` once ready, then one line
//! per event: `connected <PEERID>`, `disconnected <PEERID> <reason>`. Logs
//! go to stderr (`RUST_LOG`), coloured only when stderr is a terminal.
//!
//! Output never stalls the node: stdout and stderr are written by their own
//! threads behind bounded queues, and when a reader does not keep up the
//! lines that do not fit are dropped and counted (a warning says how many)
//! instead of blocking handshakes, calls and timers.
//!
//! Exit codes: 0 success; 1 connection, handshake, timeout or file failure
//! (`error: <cause>`, one line); 2 an error status from the callee
//! (`error: <status>`); 64 a usage error (bad flags or values, as
//! `sysexits.h` has `EX_USAGE`).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Parser, Subcommand};
use peernet_tokio::persist::{read_identity, write_identity};
use peernet_tokio::{
    CallError, CloseReason, Config, ConnectError, HandshakeError, Identity, Node, NodeConfig,
    NodeEvent, PeerId, ProtocolVersion, RejectCode, StartError,
};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

#[derive(Parser)]
#[command(
    name = "peernet",
    about = "Default-deny peer-to-peer RPC between ed25519-identified peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an identity file (mode 0600; never overwritten) and print its PeerId.
    Keygen { keyfile: PathBuf },
    /// Print the PeerId of an identity file.
    Id { keyfile: PathBuf },
    /// Run a node until SIGINT/SIGTERM.
    Serve(Serve),
    /// Dial a peer, call a handle, print the reply.
    Call(Dial),
    /// Dial a peer and send to a handle (fire-and-forget).
    Send(Dial),
}

#[derive(clap::Args)]
struct Serve {
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    listen: SocketAddr,
    /// A peer to trust (repeatable).
    #[arg(long = "trust")]
    trust: Vec<PeerId>,
    /// A demo handle to expose: echo, fail, sleep, panic (repeatable).
    #[arg(long = "expose")]
    expose: Vec<String>,
    /// Whole-handshake deadline (at least 1).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: Option<u64>,
    /// PING after this long without sending (at least 1).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    ping_interval: Option<u64>,
    /// Close after this long without receiving; must exceed the ping interval.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: Option<u64>,
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    max_frame: Option<u32>,
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_inbound_calls: Option<u64>,
    /// The protocol version: 2 (encrypted, the default) or 1.
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
}

#[derive(clap::Args)]
struct Dial {
    #[arg(long)]
    key: PathBuf,
    /// The peer to dial, as PEERID@IP:PORT.
    #[arg(long, value_parser = parse_target)]
    connect: (PeerId, SocketAddr),
    /// Give up on the call after this many milliseconds (at least 1).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The protocol version: 2 (encrypted, the default) or 1.
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
    handle: String,
    args: String,
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "1" => Ok(ProtocolVersion::V1),
        "2" => Ok(ProtocolVersion::V2),
        _ => Err("expected 1 or 2".into()),
    }
}

fn parse_target(s: &str) -> Result<(PeerId, SocketAddr), String> {
    let (peer, addr) = s.split_once('@').ok_or("expected PEERID@IP:PORT")?;
    let peer = peer.parse::<PeerId>().map_err(|e| e.to_string())?;
    let addr = addr.parse::<SocketAddr>().map_err(|e| e.to_string())?;
    Ok((peer, addr))
}

/// A failure and its exit code.
struct Failure(u8, String);

/// `EX_USAGE` of `sysexits.h`: the command line was wrong.
const EXIT_USAGE: u8 = 64;

/// How many lines stdout and stderr each hold for a slow reader before
/// dropping (and counting) the rest.
const OUTPUT_QUEUE_LINES: usize = 1024;

/// Event lines for stdout, written by their own thread (see `out`).
static STDOUT: OnceLock<NonBlocking> = OnceLock::new();

fn non_blocking<W: Write + Send + 'static>(writer: W, name: &str) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(OUTPUT_QUEUE_LINES)
        .thread_name(name)
        .finish(writer)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::from(EXIT_USAGE),
                false => ExitCode::SUCCESS, // --help, --version
            };
        }
    };
    // A handler panic is caught by the node and logged, rate-limited per
    // peer; the default hook would also print every one of them (a peer
    // calling a panicking handler in a loop grew stderr by ~0.5 MB/s).
    // Print at most one panic report every 10 s.
    let default_hook = std::panic::take_hook();
    let last_report = std::sync::Mutex::new(None::<std::time::Instant>);
    std::panic::set_hook(Box::new(move |info| {
        let mut last = last_report.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *last = Some(std::time::Instant::now());
            default_hook(info);
        }
    }));
    let (stderr, _stderr_guard) = non_blocking(std::io::stderr(), "peernet-stderr");
    let (stdout, _stdout_guard) = non_blocking(std::io::stdout(), "peernet-stdout");
    let _ = STDOUT.set(stdout);
    tracing_subscriber::fmt()
        .with_writer(stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli.command));
    if let Some(dropped) = STDOUT.get().map(|o| o.error_counter().dropped_lines()) {
        if dropped > 0 {
            tracing::warn!(dropped, "stdout was not read: event lines dropped");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            // One line, whatever the cause's text holds.
            let message = message.replace(['\n', '\r'], " ");
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen { keyfile } => {
            let identity = Identity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
            write_identity(&keyfile, &identity)
                .map_err(|e| Failure(1, format!("{}: {e}", keyfile.display())))?;
            println!("{}", identity.peer_id());
            Ok(())
        }
        Command::Id { keyfile } => {
            println!("{}", load(&keyfile)?.peer_id());
            Ok(())
        }
        Command::Serve(serve) => run_serve(serve).await,
        Command::Call(dial) => run_dial(dial, true).await,
        Command::Send(dial) => run_dial(dial, false).await,
    }
}

fn load(keyfile: &Path) -> Result<Identity, Failure> {
    read_identity(keyfile).map_err(|e| Failure(1, format!("{}: {e}", keyfile.display())))
}

/// Prints one event line. Never blocks: a line that does not fit in the
/// queue because stdout is not being read is dropped and counted.
fn out(mut line: String) {
    line.push('\n');
    match STDOUT.get() {
        // One `write` is one queued line.
        Some(stdout) => {
            let _ = stdout.clone().write(line.as_bytes());
        }
        None => print!("{line}"),
    }
}

async fn run_serve(serve: Serve) -> Result<(), Failure> {
    let mut protocol = Config::default();
    let ms = Duration::from_millis;
    if let Some(v) = serve.handshake_timeout {
        protocol.handshake_timeout = ms(v);
        // The first-frame deadline may not be above the whole handshake's.
        protocol.first_frame_timeout = protocol.first_frame_timeout.min(ms(v));
    }
    if let Some(v) = serve.ping_interval {
        protocol.ping_interval = ms(v);
    }
    if let Some(v) = serve.idle_timeout {
        protocol.idle_timeout = ms(v);
    }
    if let Some(v) = serve.max_frame {
        protocol.max_frame_len = v;
    }
    if let Some(v) = serve.max_inbound_calls {
        protocol.max_inbound_calls = usize::try_from(v).unwrap_or(usize::MAX);
    }
    protocol.version = serve.protocol;
    let mut config = NodeConfig::new(load(&serve.key)?).protocol(protocol);
    for peer in serve.trust {
        config = config.trusting(peer);
    }
    let node = Node::bind(config, serve.listen)
        .await
        .map_err(|e| match e {
            // The library's rules (Config::validate): a usage error here.
            StartError::Config(e) => Failure(EXIT_USAGE, e.to_string()),
            e => Failure(1, format!("listen: {e}")),
        })?;
    for handle in &serve.expose {
        expose_demo(&node, handle)?;
    }
    let events = node.events();
    let addr = node.local_addr().expect("bound");
    out(format!("listening {} {addr}", node.peer_id()));

    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                NodeEvent::Connected { peer, .. } => out(format!("connected {peer}")),
                NodeEvent::Disconnected { peer, reason } => {
                    out(format!("disconnected {peer} {}", reason_name(&reason)))
                }
                _ => {}
            }
        }
    });
    wait_for_signal().await;
    node.shutdown().await;
    printer.abort();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The demo handles, each reachable only when named by `--expose`.
fn expose_demo(node: &Node, handle: &str) -> Result<(), Failure> {
    let exposed = match handle {
        "echo" => node.expose("echo", |_peer, args| async move { Ok(args) }),
        "fail" => node.expose("fail", |_peer, args| async move { Err(args) }),
        "sleep" => node.expose("sleep", |_peer, args| async move {
            let ms = std::str::from_utf8(&args)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| bytes::Bytes::from_static(b"sleep takes decimal milliseconds"))?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(bytes::Bytes::from_static(b"slept"))
        }),
        "panic" => node.expose("panic", |_peer, _args| async move {
            panic!("the demo handler panicked on purpose")
        }),
        other => {
            return Err(Failure(
                1,
                format!("no demo handle named {other:?} (echo, fail, sleep, panic)"),
            ));
        }
    };
    exposed.map_err(|e| Failure(1, format!("{handle}: {e}")))
}

fn reason_name(reason: &CloseReason) -> String {
    match reason {
        CloseReason::Goodbye { code, .. } => code.name().to_string(),
        CloseReason::Rejected(code) => format!("rejected_{}", code.name()),
        _ => "transport_lost".to_string(),
    }
}

fn connect_cause(error: &ConnectError) -> String {
    match error {
        // Version 1: the dialer saw another PeerId. Version 2: the
        // responder refused an INIT keyed for another PeerId.
        ConnectError::Handshake(
            HandshakeError::UnexpectedPeer { .. }
            | HandshakeError::Rejected(RejectCode::UnexpectedPeer),
        ) => "unexpected_peer".into(),
        ConnectError::Handshake(HandshakeError::Rejected(code)) => {
            format!("rejected: {}", code.name())
        }
        ConnectError::Handshake(HandshakeError::Refused(code)) => {
            format!("refused: {}", code.name())
        }
        ConnectError::Handshake(HandshakeError::Timeout) => "timeout".into(),
        other => other.to_string(),
    }
}

async fn run_dial(dial: Dial, call: bool) -> Result<(), Failure> {
    let (peer, addr) = dial.connect;
    // trusting that PeerId for this dial only (nothing is saved)
    let config = NodeConfig::new(load(&dial.key)?)
        .protocol_version(dial.protocol)
        .trusting(peer);
    let node = Node::new(config);
    let timeout = Duration::from_millis(dial.timeout);
    let connected = tokio::time::timeout(timeout, node.connect(peer, addr)).await;
    match connected {
        Err(_) => return Err(Failure(1, "timeout".into())),
        Ok(Err(e)) => return Err(Failure(1, connect_cause(&e))),
        Ok(Ok(_)) => {}
    }
    let result = if call {
        match node
            .call(&peer, &dial.handle, dial.args.into_bytes(), timeout)
            .await
        {
            Ok(body) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&body);
                let _ = stdout.flush();
                Ok(())
            }
            Err(e) => Err(call_failure(&e)),
        }
    } else {
        node.send(&peer, &dial.handle, dial.args.into_bytes())
            .await
            .map_err(|e| Failure(1, e.to_string()))
    };
    // Flushes what is queued (the CALL's CANCEL after a timeout, a SEND)
    // and says goodbye before the process exits.
    node.shutdown().await;
    result
}

fn call_failure(error: &CallError) -> Failure {
    let status = match error {
        CallError::NoSuchHandle => "no_such_handle",
        CallError::Forbidden => "forbidden",
        CallError::HandlerError(_) => "handler_error",
        CallError::HandlerPanicked(_) => "handler_panicked",
        CallError::Overloaded => "overloaded",
        CallError::ShuttingDown => "shutting_down",
        CallError::ResultTooLarge => "too_large",
        CallError::Timeout => return Failure(1, "timeout".into()),
        CallError::ConnectionClosed(reason) => {
            return Failure(1, format!("closed: {}", reason_name(reason)));
        }
        other => return Failure(1, other.to_string()),
    };
    Failure(2, status.into())
}
