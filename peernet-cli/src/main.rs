//! `peernet`, the command-line tool: generate an identity, run a node, call it from a shell.
//!
//! ```text
//! peernet keygen <KEYFILE>
//! peernet id <KEYFILE>
//! peernet init <DIR>
//! peernet ticket <DIR> --addr <IP:PORT> [--addr <IP:PORT>]...
//! peernet pair <DIR> <TICKET|PEERID|PEERID@IP:PORT> [--label <L>]
//! peernet unpair <DIR> <PEERID>
//! peernet peers <DIR>
//! peernet serve (--key <KEYFILE> | --data-dir <DIR>) --listen <IP:PORT> [--keep-connected]
//!               [--mdns [--mdns-interface <IP>]...]
//!               [--trust <PEERID>]... [--expose <HANDLE>]...
//!               [--handshake-timeout <MS>] [--ping-interval <MS>] [--idle-timeout <MS>]
//!               [--max-frame <BYTES>] [--max-inbound-calls <N>] [--max-handshake-bytes <BYTES>]
//!               [--max-inbound-bytes-per-peer <BYTES>] [--max-inbound-bytes <BYTES>]
//!               [--protocol 1|2]
//!               [--handshakes-per-source <N>] [--failed-handshakes-per-source <RATE/BURST>]
//!               [--failed-handshakes-node-wide <RATE/BURST>]
//!               [--connects-per-peer <RATE/BURST>] [--shutdown-grace <MS>]
//! peernet call --key <KEYFILE> --connect <PEERID@IP:PORT|TICKET> [--timeout <MS>] [--protocol 1|2]
//!              [--raw] <HANDLE> <ARGS>
//! peernet call --key <KEYFILE> <TICKET> <HANDLE> <ARGS>
//! peernet call --data-dir <DIR> [--timeout <MS>] <PEERID|TICKET> <HANDLE> <ARGS>
//! peernet send (the same forms as call) <HANDLE> <ARGS>
//! ```
//!
//! A data directory (`init`, which makes the directory and its missing
//! parents) holds the identity, the trust list and the address book;
//! every other command needs one that init made. `pair` trusts a peer and records the addresses a ticket
//! or `PEERID@IP:PORT` gives (replacing the ones it had; the label is
//! kept unless `--label` is given; a book too full to keep them all, at
//! its 29,000 addresses, is an error and nothing is saved); `peers` prints one line per trusted
//! peer, `<PEERID> <label or -> <addresses comma-separated, or ->` (a
//! book that does not load: addresses `?`, then the error, exit 1; `pair`
//! of a bare PeerId does not read the book). A ticket that names a
//! loopback or link-local address is paired with a warning naming it. A
//! directory is written by one process at a time: while `serve
//! --data-dir` runs, `pair` and `unpair` on it are refused with `error:
//! data directory DIR in use` (stop the node, pair, start it again); readers
//! (`peers`, `ticket`, `call`/`send`) always work, though a `call
//! --data-dir` speaks with the node's identity, so its connection
//! supersedes the running node's connection to the same peer.
//!
//! Like ssh, the tool refuses a key file (`--key` or the directory's
//! `identity`) that anyone but its owner may read or write, and a data
//! directory, trust list or address book that every user may write (one
//! its group may write is used with a warning); the error names the
//! `chmod` that mends it.
//!
//! `--mdns` (cargo feature `mdns`, on by default) announces the node on
//! the local network and adds the addresses of trusted peers that announce
//! themselves to the address book; an untrusted peer's announcement is
//! ignored, and a false one costs one failed dial, then is forgotten. Only
//! the addresses the node listens on are announced, where they can be
//! reached: with `--listen 127.0.0.1:PORT`, on the loopback alone (a
//! warning says other hosts cannot find it). `--mdns-interface` limits
//! discovery to the interfaces with the addresses given; one whose
//! network does not hold the listen address announces nothing there, so
//! a listen address on none of their networks is a usage error.
//!
//! `--protocol` picks the wire protocol: 2 (the default) encrypts
//! everything after the handshake; 1 is the opt-in for trusted networks
//! and streams already encrypted. A node speaks only its version: the
//! other one is refused with `unsupported_version`.
//!
//! `serve` prints `listening <PEERID> <IP:PORT>` once ready, then
//! `ticket <TICKET>` (the listen address, or for `0.0.0.0`/`[::]` the
//! host's interface addresses), then one line per event: `connected
//! <PEERID>`, `disconnected <PEERID> <reason>` (`record_failed`: a
//! version-2 record failed to decrypt, which is tampering), and with
//! `--keep-connected` `reconnecting <PEERID> attempt <N> after <MS>ms`
//! right before each redial after a loss (MS: the backoff waited). Logs
//! go to stderr (`RUST_LOG`; unset, empty or not understood: warnings
//! and errors, the last with a warning saying so; field values match as
//! text, not as regular expressions), coloured only when stderr is a
//! terminal.
//!
//! Output never stalls the node: stdout and stderr are written by their own
//! threads behind bounded queues, and when a reader does not keep up the
//! lines that do not fit are dropped (a warning says how many event lines
//! were) instead of blocking handshakes, calls and timers. A command's one
//! result (a PeerId, a ticket, `peers`' lines, a call's reply) is written
//! whole or the command fails: exit 1, `error: stdout: …`.
//!
//! Exit codes: 0 success; 1 connection, handshake, timeout, file or
//! stdout failure (`error: <cause>`, one line: the error, then each of its
//! causes after a colon); 2 an error status from the
//! callee (`error: <status>`); 64 a usage error (bad flags or values, as
//! `sysexits.h` has `EX_USAGE`); 130 `serve` stopped by a second signal
//! before its graceful shutdown had finished. A command exits once its
//! work is done, though a write to a data directory hangs (a disk that
//! does not answer): `serve` waits for it only within its shutdown's
//! grace, then abandons it (the files are replaced atomically: at worst
//! a temporary file is left, removed at the next start).

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use peernet_tokio::persist::{read_identity, write_identity};
use peernet_tokio::{ErrorChain, Identity, ProtocolVersion};

mod book;
mod datadir;
mod dial;
mod output;
#[cfg(feature = "mdns")]
mod reach;
mod serve;

use output::{Layout, STDOUT, non_blocking, print_result};

#[derive(Parser)]
#[command(
    name = "peernet",
    version,
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
    /// Create a data directory (mode 0700): a new identity, an empty trust
    /// list and address book. Prints the PeerId; exit 1 if DIR already
    /// holds an identity, or holds anything but a data directory's files.
    /// The identity is written last: an init that failed can be run again.
    Init { dir: PathBuf },
    /// Print this node's ticket for the given addresses, without starting it.
    Ticket(datadir::TicketCmd),
    /// Trust a peer, and record the addresses a ticket or PEERID@IP:PORT gives.
    Pair(book::Pair),
    /// Stop trusting a peer and forget its addresses (exit 1 if not paired
    /// and no address is left of it).
    Unpair(book::Unpair),
    /// List the trusted peers: PEERID LABEL|- ADDRESSES|-.
    Peers { dir: PathBuf },
    /// Run a node until interrupted (Ctrl-C; SIGTERM and SIGHUP too on
    /// Unix), then shut it down gracefully (a second signal: at once, exit
    /// 130).
    Serve(serve::Serve),
    /// Dial a peer, call a handle, print the reply.
    #[command(override_usage = "peernet call [OPTIONS] [PEERID|TICKET] HANDLE ARGS")]
    Call(dial::Dial),
    /// Dial a peer and send to a handle (fire-and-forget).
    #[command(override_usage = "peernet send [OPTIONS] [PEERID|TICKET] HANDLE ARGS")]
    Send(dial::Dial),
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "1" => Ok(ProtocolVersion::V1),
        "2" => Ok(ProtocolVersion::V2),
        _ => Err("expected 1 or 2".into()),
    }
}

/// A failure and its exit code.
pub(crate) struct Failure(pub(crate) u8, pub(crate) String);

impl Failure {
    /// Exit `code` with `error: <what>: <error>`, the error followed by
    /// each of its causes ([`ErrorChain`]): the library's errors leave
    /// their causes to `source`, and the line says why.
    pub(crate) fn because(code: u8, what: impl Display, error: &dyn std::error::Error) -> Failure {
        Failure(code, format!("{what}: {}", ErrorChain(error)))
    }
}

/// `EX_USAGE` of `sysexits.h`: the command line was wrong.
pub(crate) const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version: the tool's own text, as clap styles it
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            usage_error(e);
            return ExitCode::from(EXIT_USAGE);
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
    let (stderr, stderr_guard) = non_blocking(std::io::stderr(), "peernet-stderr");
    let (stdout, stdout_guard) = non_blocking(std::io::stdout(), "peernet-stdout");
    let _ = STDOUT.set(stdout);
    let (filter, misread) = log_filter();
    tracing_subscriber::fmt()
        .with_writer(stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Some(error) = misread {
        tracing::warn!(%error, "RUST_LOG not understood: logging warnings and errors only");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli.command));
    // What the command started is over (`serve`: the node's shutdown let
    // a write to the data directory that hangs go after its grace). A
    // runtime dropped waits for its blocking tasks without bound: a save
    // stuck on a disk that hangs kept `serve` running as long as the disk
    // did, its signals caught and ignored. Such a write is abandoned
    // here, at worst leaving a temporary file (removed when the
    // directory is next locked): the files are replaced atomically.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(dropped) = STDOUT.get().map(|o| o.error_counter().dropped_lines()) {
        if dropped > 0 {
            tracing::warn!(dropped, "stdout was not read: event lines dropped");
        }
    }
    // The queued event lines and logs go out first (each guard waits for
    // its writer thread, at most a second), so that the `error:` line
    // below is the last one, after every log line.
    drop(stdout_guard);
    drop(stderr_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            // One line, whatever the cause's text holds, and nothing in
            // it that a terminal acts on (a path or a file's text the
            // operator gave).
            let message = output::one_line(&message);
            // (not `eprintln!`, which panics when stderr is gone too, as
            // `cmd 2>&1 | head` leaves it)
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Writes clap's usage error. It quotes the operator's argument
/// (`invalid value '…' for '--label <LABEL>'`, `unrecognized subcommand
/// '…'`) as it came: on a terminal (or with `CLICOLOR_FORCE`) a value
/// holding escape sequences would colour, retitle or clear it, and
/// clap's own stripping of them, elsewhere, hid what was typed. When the
/// quoted text holds anything [`output::escape`] escapes, the same
/// arguments are parsed again without styles, so that every escape
/// sequence in the message is the operator's, and the message is written
/// escaped, without colours; otherwise clap writes it as usual.
fn usage_error(e: clap::Error) {
    use clap::CommandFactory;
    let plain = Cli::command()
        .styles(clap::builder::Styles::plain())
        .try_get_matches()
        .err()
        .map(|plain| plain.render().ansi().to_string());
    match plain {
        Some(text) if output::escape(text.as_bytes(), Layout::Lines) != text => {
            let text = output::escape(text.as_bytes(), Layout::Lines);
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        _ => {
            let _ = e.print();
        }
    }
}

/// The log filter `RUST_LOG` asks for: warnings and errors when it is
/// unset or empty (an empty one, as `RUST_LOG=$UNSET` leaves it, used to
/// show nothing but errors, hiding the warnings about a group-writable
/// trust list or a book not saved); the same, with the parse error to
/// log, when it does not parse. A field value is matched as text, never
/// compiled as a regular expression: tracing-subscriber builds a regex
/// into a DFA of unbounded size before anything runs (`[{x=(a|b)*a`
/// followed by 20 `(a|b)` took 116 s and 836 MB before `peernet id`
/// printed its line).
fn log_filter() -> (
    tracing_subscriber::EnvFilter,
    Option<tracing_subscriber::filter::FromEnvError>,
) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    let builder = EnvFilter::builder()
        .with_regex(false)
        .with_default_directive(LevelFilter::WARN.into());
    match builder.from_env() {
        Ok(filter) => (filter, None),
        Err(error) => (builder.parse_lossy(""), Some(error)),
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen { keyfile } => {
            let identity = Identity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
            // (the library names the file)
            write_identity(&keyfile, &identity)
                .map_err(|e| Failure(1, ErrorChain(&e).to_string()))?;
            print_result(&identity.peer_id().to_string())
        }
        Command::Id { keyfile } => print_result(&load(&keyfile)?.peer_id().to_string()),
        Command::Init { dir } => datadir::run_init(&dir),
        Command::Ticket(cmd) => datadir::run_ticket(cmd),
        Command::Pair(pair) => book::run_pair(pair),
        Command::Unpair(unpair) => book::run_unpair(unpair),
        Command::Peers { dir } => book::run_peers(dir),
        Command::Serve(serve) => serve::run_serve(serve).await,
        Command::Call(dial) => dial::run_dial(dial, true).await,
        Command::Send(dial) => dial::run_dial(dial, false).await,
    }
}

fn load(keyfile: &Path) -> Result<Identity, Failure> {
    read_identity(keyfile).map_err(|e| datadir::start_failure(keyfile, &e))
}
