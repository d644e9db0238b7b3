//! `peernet serve`: run a node until interrupted, one stdout line per event.

use std::net::SocketAddr;
use std::time::Duration;

use peernet_tokio::{
    CloseReason, Config, ConfigError, ErrorChain, Node, NodeConfig, NodeEvent, PeerId,
    ProtocolVersion, StartError,
};

#[cfg(feature = "mdns")]
use peernet_tokio::discovery::{DiscoveryConfig, DiscoveryError};

use crate::datadir::{
    IdentityArgs, IdentitySource, load_book, lock_failure, open_existing, read_trust, start_failure,
};
use crate::output::{out, peer_text};
use crate::{EXIT_USAGE, Failure, load, parse_protocol};

/// How long, after a graceful shutdown, the events it published may take
/// to be printed before the tool exits without the rest.
const PRINTER_GRACE: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub(crate) struct Serve {
    #[command(flatten)]
    identity: IdentityArgs,
    /// The address to listen on, IP:PORT (port 0: any free port; the real
    /// one is printed on the `listening` line).
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// Dial every trusted peer that has an address and keep it connected,
    /// redialing with backoff after a loss (each redial announced as
    /// `reconnecting <PEERID> attempt <N> after <MS>ms`, MS the backoff
    /// waited before it).
    #[arg(long)]
    keep_connected: bool,
    /// Announce this node on the local network (mDNS) and learn the
    /// addresses of trusted peers that announce themselves. Only the
    /// addresses it listens on are announced, where they can be reached
    /// (`--listen 127.0.0.1:PORT`: on the loopback alone).
    #[cfg(feature = "mdns")]
    #[arg(long)]
    mdns: bool,
    /// With --mdns: only on the interface that has this address
    /// (repeatable; default every interface). The listen address must be
    /// on the network of one of them, or nothing would be announced (a
    /// usage error).
    #[cfg(feature = "mdns")]
    #[arg(long = "mdns-interface", value_name = "IP", requires = "mdns")]
    mdns_interface: Vec<std::net::IpAddr>,
    /// A peer to trust for this run (repeatable; not written to a data
    /// directory's trust list; one given twice is trusted once, with a
    /// warning). The node's own PeerId is refused.
    #[arg(long = "trust", value_name = "PEERID", value_parser = crate::book::parse_peer)]
    trust: Vec<PeerId>,
    /// A demo handle to expose: echo, fail, sleep, panic (repeatable; one
    /// given twice is exposed once, with a warning).
    #[arg(long = "expose", value_name = "HANDLE")]
    expose: Vec<String>,
    /// Whole-handshake deadline (at least 1; default 10000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: Option<u64>,
    /// PING after this long without sending (at least 1; default 15000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    ping_interval: Option<u64>,
    /// Close after this long without receiving; must exceed the ping
    /// interval (default 45000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: Option<u64>,
    /// The largest frame accepted from a peer, in bytes (at least 150, the
    /// largest handshake frame; default 1048576). Frame limits are not
    /// negotiated: a peer that sends a larger one is cut off.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(150..))]
    max_frame: Option<u32>,
    /// How many calls from one peer may run at once (at least 1; default
    /// 1024); more are answered `overloaded`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_inbound_calls: Option<u64>,
    /// Bytes the connections whose handshake is not finished may hold
    /// together for frames split across reads (at least 150, a split
    /// INIT; default 16777216); the connection whose bytes would pass it
    /// is closed.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(150..))]
    max_handshake_bytes: Option<u64>,
    /// Bytes one peer may make this node hold: the arguments of its calls
    /// and sends in progress and its results waiting to be sent (at least
    /// 1; default 16777216); a call beyond is answered `overloaded`, and so
    /// is a call whose result would pass it.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    max_inbound_bytes_per_peer: Option<u64>,
    /// The same budget for all peers together (at least 1; default
    /// 268435456).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    max_inbound_bytes: Option<u64>,
    /// The protocol version: 2 (encrypted, the default) or 1.
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
    /// Handshakes in progress from one source address (an IPv4 address or
    /// an IPv6 /64) before its further connections are closed at accept
    /// (at least 1; default 32).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    handshakes_per_source: Option<u64>,
    /// Failed handshakes one source address may cause: BURST at once, then
    /// RATE a second; beyond, its connections are closed at accept (each
    /// from 1 to 4294967295; default 8/32).
    #[arg(long, value_name = "RATE/BURST", value_parser = parse_rate_burst)]
    failed_handshakes_per_source: Option<(u32, u32)>,
    /// Failed handshakes of source addresses that have not completed a
    /// handshake lately, node-wide: BURST at once, then RATE a second;
    /// beyond, their connections are closed at accept, while addresses
    /// trusted peers connected from are still accepted (each from 1 to
    /// 4294967295; default: no node-wide limit; suggested 200/400).
    #[arg(long, value_name = "RATE/BURST", value_parser = parse_rate_burst)]
    failed_handshakes_node_wide: Option<(u32, u32)>,
    /// Inbound connections one trusted peer may establish: BURST at once,
    /// then RATE a second; beyond, its handshakes are refused `busy`
    /// (each from 1 to 4294967295; default 20/64).
    #[arg(long, value_name = "RATE/BURST", value_parser = parse_rate_burst)]
    connects_per_peer: Option<(u32, u32)>,
    /// How long the graceful shutdown after a signal lets running
    /// handlers finish before it stops them (at least 1; default 5000); a
    /// save of the address book is waited for as long, at least 1 s. A
    /// second signal stops at once, whatever is left of it.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    shutdown_grace: Option<u64>,
}

/// `RATE/BURST`, each a number from 1 to `u32::MAX`.
fn parse_rate_burst(s: &str) -> Result<(u32, u32), String> {
    // (the bound the value is checked against, both ways: a number too
    // large for it was refused as if it were below 1)
    let expected = || {
        format!(
            "expected RATE/BURST, each from 1 to {}, not {s:?}",
            u32::MAX
        )
    };
    let (rate, burst) = s.split_once('/').ok_or_else(expected)?;
    let number = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(expected)
    };
    Ok((number(rate)?, number(burst)?))
}

/// The address to listen on, as `--listen` gave it but an IPv4 address
/// in IPv6 form (`[::ffff:0.0.0.0]`) written as IPv4, which is what it
/// binds and what a ticket names. A multicast or broadcast address is
/// refused: Linux lets a TCP socket bind one, and the node would run where
/// no peer can ever reach it.
fn listen_addr(listen: SocketAddr) -> Result<SocketAddr, Failure> {
    let listen = peernet_tokio::canonical_addr(listen);
    let broadcast = matches!(listen.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast());
    if listen.ip().is_multicast() || broadcast {
        return Err(Failure(
            EXIT_USAGE,
            format!("--listen {listen}: no peer can connect to a multicast or broadcast address"),
        ));
    }
    Ok(listen)
}

/// The values of a repeatable flag each once, in the order first given;
/// `repeated` is told of each repeat. A value named twice means what it
/// means once, and the repeat is most likely a slip (one value meant
/// another), so it is said, on stderr, rather than refused.
fn each_once<T: PartialEq>(values: Vec<T>, repeated: impl Fn(&T)) -> Vec<T> {
    let mut once: Vec<T> = Vec::with_capacity(values.len());
    for value in values {
        if once.contains(&value) {
            repeated(&value);
        } else {
            once.push(value);
        }
    }
    once
}

/// `--expose` with each handle once ([`each_once`]), with a warning.
fn exposed_once(handles: Vec<String>) -> Vec<String> {
    each_once(handles, |handle| {
        // (escaped: a log field's text is written as it is)
        let handle = crate::output::escape(handle.as_bytes(), crate::output::Layout::Line);
        tracing::warn!(%handle, "--expose given more than once: exposed once");
    })
}

/// `--trust` with each peer once ([`each_once`]), with a warning, as
/// `--expose`: a peer named twice is trusted once, and the repeat may be
/// a slip where another peer's id was meant (that peer is then not
/// trusted).
fn trusted_once(peers: Vec<PeerId>) -> Vec<PeerId> {
    each_once(peers, |peer| {
        tracing::warn!(peer = %peer, "--trust given more than once: trusted once");
    })
}

/// Refuses `--trust` of the node's own PeerId, as `pair` does: a node
/// never trusts itself (a handshake that offers its own key is refused,
/// PROTOCOL.md section 2.1), so the flag would do nothing, and the
/// operator most likely pasted this node's id where the other's belongs.
fn trust_others(trust: &[PeerId], own: PeerId) -> Result<(), Failure> {
    match trust.contains(&own) {
        true => Err(Failure(
            EXIT_USAGE,
            format!("--trust {own}: cannot trust this node itself (that is its own PeerId)"),
        )),
        false => Ok(()),
    }
}

/// The library's rule `error` ([`Config::validate`]), broken by the
/// command line `serve`, said with its flags (the library's names its
/// fields: `idle_timeout`, `ping_interval`) and in milliseconds, as the
/// flags take them; a value not given is named as the flag's default.
fn config_usage(error: ConfigError, serve: &Serve) -> String {
    let ms = |d: Duration, given: bool| {
        let default = if given { "" } else { ", the default" };
        format!("{} ms{default}", d.as_millis())
    };
    match error {
        ConfigError::IdleNotAbovePing { idle, ping } => format!(
            "--idle-timeout ({}) must be above --ping-interval ({})",
            ms(idle, serve.idle_timeout.is_some()),
            ms(ping, serve.ping_interval.is_some())
        ),
        e => e.to_string(),
    }
}

pub(crate) async fn run_serve(mut serve: Serve) -> Result<(), Failure> {
    serve.listen = listen_addr(serve.listen)?;
    serve.expose = exposed_once(std::mem::take(&mut serve.expose));
    serve.trust = trusted_once(std::mem::take(&mut serve.trust));
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
    if let Some(v) = serve.max_handshake_bytes {
        protocol.max_handshake_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = serve.max_inbound_bytes_per_peer {
        protocol.max_inbound_bytes_per_conn = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = serve.max_inbound_bytes {
        protocol.max_inbound_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    protocol.version = serve.protocol;
    // (before anything starts, in the command line's words)
    protocol
        .validate()
        .map_err(|e| Failure(EXIT_USAGE, config_usage(e, &serve)))?;
    // (a typo would leave a node that announces and hears nothing: the
    // library's check, made before the node starts)
    #[cfg(feature = "mdns")]
    let lan = serve
        .mdns_interface
        .iter()
        .fold(DiscoveryConfig::new(), |lan, ip| lan.interface(*ip));
    #[cfg(feature = "mdns")]
    lan.check().map_err(|e| match e {
        DiscoveryError::NoSuchInterface(ip) => Failure(
            EXIT_USAGE,
            format!("--mdns-interface {ip}: no interface has this address"),
        ),
        e => Failure::because(EXIT_USAGE, "--mdns-interface", &e),
    })?;
    #[cfg(feature = "mdns")]
    if serve.mdns && crate::reach::announced_nowhere(serve.listen.ip(), &serve.mdns_interface) {
        // (mDNS sends an address only on an interface whose network holds
        // it: the node would browse, and no peer would hear of it)
        return Err(Failure(
            EXIT_USAGE,
            format!(
                "--listen {}: on the network of no --mdns-interface, this node would be announced nowhere",
                serve.listen.ip()
            ),
        ));
    }
    // (the node holds the directory's lock until it has shut down)
    let config = match serve.identity.source() {
        IdentitySource::Key(key) => NodeConfig::new(load(key)?),
        IdentitySource::DataDir(dir) => {
            // (read first by the tool's own loaders, which say an
            // identity that is not there as the other commands do; the
            // library's errors name the file they are about)
            let (data, _) = open_existing(dir)?;
            read_trust(&data)?;
            load_book(&data)?;
            NodeConfig::from_data_dir(dir).map_err(|e| match e {
                StartError::Lock(e) => lock_failure(dir, e),
                e => start_failure(dir, &e),
            })?
        }
    };
    trust_others(&serve.trust, config.peer_id())?;
    let mut config = config
        .protocol(protocol)
        .keep_trusted_connected(serve.keep_connected);
    if let Some(n) = serve.handshakes_per_source {
        config = config.handshakes_per_source(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some((rate, burst)) = serve.failed_handshakes_per_source {
        config = config.failed_handshakes_per_source(rate, burst);
    }
    if let Some((rate, burst)) = serve.failed_handshakes_node_wide {
        config = config.failed_handshakes_node_wide(rate, burst);
    }
    if let Some((rate, burst)) = serve.connects_per_peer {
        config = config.connects_per_peer(rate, burst);
    }
    if let Some(v) = serve.shutdown_grace {
        config = config.shutdown_grace(ms(v));
    }
    for peer in serve.trust {
        config = config.trusting(peer);
    }
    // (caught from the start: a signal that comes while the node starts
    // stops it as one that comes later does)
    let mut signals = Signals::new();
    let node = Node::try_new(config).map_err(|e| match e {
        // The library's rules (Config::validate): a usage error here.
        StartError::Config(e) => Failure(EXIT_USAGE, e.to_string()),
        e => Failure::because(1, "start", &e),
    })?;
    // Handles first, then the port: a peer that keeps us connected redials
    // the moment it opens, with the calls it queued.
    for handle in &serve.expose {
        expose_demo(&node, handle)?;
    }
    let events = node.events();
    // (the library's error names the address: `listen 127.0.0.1:7000:
    // Address already in use`; a script starting several nodes can tell
    // which port was taken)
    node.listen(serve.listen).await.map_err(|e| match e {
        StartError::Listen { .. } => Failure(1, ErrorChain(&e).to_string()),
        e => Failure::because(1, "listen", &e),
    })?;
    #[cfg(feature = "mdns")]
    let _discovery = match serve.mdns {
        true => {
            let discovery = node
                .discover_lan(lan)
                .map_err(|e| Failure::because(1, "--mdns", &e))?;
            Some(discovery)
        }
        false => None,
    };
    let addr = node.local_addr().expect("bound");
    out(format!("listening {} {addr}", node.peer_id()));
    // (on 0.0.0.0 or [::], the host's interface addresses with its port)
    match node.ticket() {
        Ok(ticket) => out(format!("ticket {ticket}")),
        Err(e) => tracing::warn!(error = %ErrorChain(&e), "no ticket"),
    }

    let mut printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                NodeEvent::Connected { peer, .. } => out(format!("connected {peer}")),
                NodeEvent::Disconnected { peer, reason } => {
                    out(format!("disconnected {peer} {}", reason_name(&reason)))
                }
                NodeEvent::Reconnecting {
                    peer,
                    attempt,
                    after,
                } => out(format!(
                    "reconnecting {peer} attempt {attempt} after {}ms",
                    after.as_millis()
                )),
                _ => {}
            }
        }
    });
    signals.next().await;
    // A second signal stops at once: the shutdown waits up to its grace
    // for the handlers running, then for the goodbyes, and an operator
    // who asks twice means now.
    let forced = tokio::select! {
        () = node.shutdown() => false,
        () = signals.next() => true,
    };
    if !forced {
        // The event stream ends once the close has published its own
        // events (the `disconnected` of each connection it ended): print
        // them all, within a bound in case stdout does not take them.
        let _ = tokio::time::timeout(PRINTER_GRACE, &mut printer).await;
    }
    printer.abort();
    match forced {
        true => Err(Failure(
            130,
            "stopped before the shutdown had finished".into(),
        )),
        false => Ok(()),
    }
}

/// The signals that stop `serve`: Ctrl-C everywhere; on Unix SIGTERM, and
/// SIGHUP too (a closed terminal or SSH session: the node still says
/// goodbye and saves its book). On Unix, SIGINT and SIGHUP ignored when
/// `serve` started stay ignored.
///
/// On Unix each handler is installed by [`Signals::new`], and its
/// receiver kept from then on: a signal that comes before [`Signals::next`]
/// is polled (while the node starts, or between the first signal and the
/// wait for a second) is seen by the next `next`. (`tokio::signal::ctrl_c`,
/// called in `next`, installed SIGINT's handler only there, so an
/// interrupt while the node started killed the process, and each call's
/// new receiver missed an interrupt that came before it.)
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind, name| {
                signal(kind)
                    .inspect_err(|e| tracing::warn!(error = %e, "no {name} handler"))
                    .ok()
            };
            // (`nohup`, `trap '' HUP`; SIGINT in a background job of a
            // non-interactive shell: whoever started us asked for it to
            // be ignored, and it stays so)
            let unless_ignored = |signal, kind, name| match ignored_at_start(signal) {
                true => None,
                false => listen(kind, name),
            };
            Signals {
                int: unless_ignored(libc::SIGINT, SignalKind::interrupt(), "Ctrl-C"),
                term: listen(SignalKind::terminate(), "SIGTERM"),
                hup: unless_ignored(libc::SIGHUP, SignalKind::hangup(), "SIGHUP"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal to stop.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            () = unix_signal(&mut self.int) => {}
            () = unix_signal(&mut self.term) => {}
            () = unix_signal(&mut self.hup) => {}
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "no Ctrl-C handler");
            std::future::pending::<()>().await;
        }
    }
}

/// Whether `signal` was ignored when `serve` started (asked before its
/// handler is installed).
#[cfg(unix)]
#[allow(unsafe_code)]
fn ignored_at_start(signal: libc::c_int) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, `sigaction` changes nothing and only
    // writes the signal's current action into `current`, valid for writes.
    let queried = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) } == 0;
    // SAFETY: all-zero bytes are a valid `sigaction` (plain integers and
    // a signal set), which the call above filled on success.
    let current = unsafe { current.assume_init() };
    queried && current.sa_sigaction == libc::SIG_IGN
}

/// The next delivery of a Unix signal; never, without its handler.
#[cfg(unix)]
async fn unix_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    let delivered = match signal {
        Some(signal) => signal.recv().await.is_some(),
        None => false,
    };
    if !delivered {
        std::future::pending::<()>().await;
    }
}

/// The demo handles, each reachable only when named by `--expose`.
pub(crate) fn expose_demo(node: &Node, handle: &str) -> Result<(), Failure> {
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
                EXIT_USAGE,
                format!("no demo handle named {other:?} (echo, fail, sleep, panic)"),
            ));
        }
    };
    exposed.map_err(|e| Failure::because(1, handle, &e))
}

/// `reason_name`, and the peer's own words when its GOODBYE gave any
/// (escaped, at most 200 characters: they come from the peer).
pub(crate) fn reason_detail(reason: &CloseReason) -> String {
    let name = reason_name(reason);
    match reason {
        CloseReason::Goodbye { reason: text, .. } if !text.is_empty() => {
            format!("{name} ({})", peer_text(text.as_bytes()))
        }
        _ => name,
    }
}

pub(crate) fn reason_name(reason: &CloseReason) -> String {
    match reason {
        CloseReason::Goodbye { code, .. } => code.name().to_string(),
        CloseReason::Rejected(code) => format!("rejected_{}", code.name()),
        CloseReason::TransportLost => "transport_lost".to_string(),
        // (version 2: tampered, replayed, reordered or cut records)
        CloseReason::RecordFailed(_) => "record_failed".to_string(),
        _ => "closed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    /// Review s47 (revo2): an interrupt (Ctrl-C) that comes after
    /// `Signals::new`, while the node starts, stops it as a SIGTERM
    /// does. Ctrl-C's handler was installed only when `next` was first
    /// polled, after the node had started: an interrupt before that
    /// killed the process (SIGINT's default action: no goodbyes, no book
    /// saved; this test process died), and one between the first
    /// signal and the second wait was lost.
    ///
    /// It runs in a process of its own, this test binary started again
    /// for this test alone: it sends SIGINT to its process (which, if the
    /// handler were missing, would kill every test running beside it),
    /// and the handler it installs stays for the life of the process (a
    /// Ctrl-C would no longer stop the other tests, and any of them that
    /// counted on SIGINT's default action would see it caught).
    #[cfg(unix)]
    #[test]
    fn an_interrupt_while_the_node_starts_is_caught() {
        const ALONE: &str = "PEERNET_TEST_SIGINT_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let (_, module) = module_path!().split_once("::").unwrap();
            let name = format!("{module}::an_interrupt_while_the_node_starts_is_caught");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([&name, "--exact", "--nocapture", "--test-threads=1"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "the test alone: {:?}\n{stdout}\n{stderr}",
                out.status
            );
            return;
        }
        // A test run started as a script's background job (or `.ci/run &`)
        // has SIGINT ignored, which `serve` would leave so: the default
        // action, as from a terminal.
        // SAFETY: `signal` with a valid signal number and `SIG_DFL`.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut signals = super::Signals::new();
            let interrupt = || {
                let status = std::process::Command::new("kill")
                    .args(["-INT", &std::process::id().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            };
            // (delivered before `next` is polled: the node starting)
            interrupt();
            let waited = std::time::Duration::from_secs(10);
            tokio::time::timeout(waited, signals.next())
                .await
                .expect("the interrupt sent while the node started was not seen");
            // (and between the first signal and the wait for a second)
            interrupt();
            tokio::time::timeout(waited, signals.next())
                .await
                .expect("the second interrupt was not seen");
        });
    }

    /// The interrupt test leaves this process's SIGINT as it found it:
    /// no handler of tokio's catching a Ctrl-C meant for the test run, nor
    /// SIGINT's action changed for the tests beside it. (Run in this
    /// process, it left both.)
    #[cfg(unix)]
    #[test]
    #[allow(unsafe_code)]
    fn the_interrupt_test_leaves_this_process_alone() {
        let action = || {
            let mut now = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: as in `ignored_at_start`: a query, into valid memory.
            let queried =
                unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), now.as_mut_ptr()) };
            assert_eq!(queried, 0);
            // SAFETY: zeroed, then filled by the successful call above.
            unsafe { now.assume_init() }.sa_sigaction
        };
        let before = action();
        an_interrupt_while_the_node_starts_is_caught();
        assert_eq!(action(), before, "SIGINT's action changed in this process");
    }

    /// Review s54 (review): a RATE or BURST too large for its type was
    /// refused as "each at least 1": the bound it broke is said.
    #[test]
    fn a_rate_or_burst_too_large_names_the_bound_it_broke() {
        let too_large = super::parse_rate_burst("4294967296/32").unwrap_err();
        assert!(too_large.contains("from 1 to 4294967295"), "{too_large}");
        assert_eq!(super::parse_rate_burst("4294967295/1"), Ok((u32::MAX, 1)));
        assert!(super::parse_rate_burst("0/1").is_err());
    }

    /// Review s38, finding 7: a record that failed to decrypt (tampering,
    /// PROTOCOL.md section 7: a protocol error) is not a lost transport.
    #[test]
    fn a_record_failure_is_not_named_transport_lost() {
        use peernet_tokio::{CloseReason, RecordError};
        let name = super::reason_name(&CloseReason::RecordFailed(RecordError::DecryptFailed));
        assert_ne!(name, "transport_lost");
    }
}
