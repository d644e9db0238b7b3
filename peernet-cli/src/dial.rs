//! `peernet call` and `peernet send`: dial one peer, do one thing, exit.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use peernet_tokio::{
    CallError, Config, ConnectError, DialConfig, ErrorChain, HandshakeError, Node, NodeConfig,
    PeerId, ProtocolVersion, RejectCode,
};

use peernet_tokio::AddrSource;
use peernet_tokio::TrustList;
use peernet_tokio::book_file::SavedBook;

use crate::book::Target;
use crate::datadir::{IdentityArgs, IdentitySource, load_book, load_trust, open_existing};
use crate::output::{Layout, escape, peer_text, write_result};
use crate::serve::reason_detail;
use crate::{EXIT_USAGE, Failure, load, parse_protocol};

#[derive(clap::Args)]
pub(crate) struct Dial {
    #[command(flatten)]
    identity: IdentityArgs,
    /// The peer to dial, as PEERID@IP:PORT or a ticket (with --key).
    #[arg(long, value_name = "PEERID@IP:PORT|TICKET", value_parser = parse_connect,
          conflicts_with = "data_dir")]
    connect: Option<Target>,
    /// Give up after this many milliseconds, the dial and the call
    /// together (at least 1). Of several addresses, each may take an equal
    /// share of it (at least 1 s) to open its connection.
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The protocol version: 2 (encrypted, the default) or 1.
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
    /// Write the reply as it came even when stdout is a terminal, where
    /// its control characters are otherwise escaped (a hostile peer's
    /// reply could drive the terminal).
    #[arg(long)]
    raw: bool,
    /// [PEERID|TICKET] HANDLE ARGS: the peer (unless --connect names it),
    /// the handle, the arguments.
    #[arg(num_args = 2..=3, required = true, value_names = ["[PEERID|TICKET]", "HANDLE", "ARGS"])]
    words: Vec<String>,
}

/// `--connect`: a target that names its addresses.
fn parse_connect(s: &str) -> Result<Target, String> {
    match s.parse::<Target>()? {
        Target::Peer(_) => Err("expected PEERID@IP:PORT or a ticket, not a bare PeerId".into()),
        target if target.addrs().is_empty() => Err("the ticket names no address".into()),
        target => Ok(target),
    }
}

/// What to dial, whom to trust for it, and with which identity.
struct Plan {
    config: NodeConfig,
    peer: PeerId,
    /// Best first.
    addrs: Vec<(SocketAddr, AddrSource)>,
    /// The addresses are the saved book's, which the node starts with
    /// (with what worked, so it dials them in the order `serve` would).
    from_book: bool,
    handle: String,
    args: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure(EXIT_USAGE, message.into())
}

fn plan(dial: Dial) -> Result<Plan, Failure> {
    let mut words = dial.words.into_iter();
    let (target, handle, args) = match (words.next(), words.next(), words.next()) {
        (Some(t), Some(h), Some(a)) => (Some(t), h, a),
        (Some(h), Some(a), None) => (None, h, a),
        _ => return Err(usage("expected [PEERID|TICKET] HANDLE ARGS")),
    };
    // Two words, the first a peer: ARGS was left out (`call PEERID
    // echo`), not the peer, which was said before ("name the peer", or
    // for a ticket "invalid handle" of its length).
    if dial.connect.is_none() && handle.parse::<Target>().is_ok() {
        return Err(usage(format!(
            "expected HANDLE and ARGS after the peer, got only {:?} (give '' for empty \
             arguments)",
            args
        )));
    }
    // (a handle no peer can expose is the user's mistake: said before
    // any dial)
    peernet_tokio::Handle::new(&handle)
        .map_err(|e| usage(format!("invalid handle: {}", ErrorChain(&e))))?;
    let target = target
        .map(|t| t.parse::<Target>().map_err(usage))
        .transpose()?;
    let from_dir = matches!(dial.identity.source(), IdentitySource::DataDir(_));
    // A ticket that names no address names its peer alone: with a data
    // directory it is dialed as its bare PeerId is, through the book;
    // with a key file nothing can be dialed, a usage error, as for
    // `--connect`. (It was taken as this dial's one-off addresses, none,
    // and failed "no address known" though the book knew the peer's.)
    let target = match target {
        Some(Target::Ticket(ticket)) if ticket.addrs().is_empty() => {
            if !from_dir {
                return Err(usage(
                    "the ticket names no address: with --key, give one that does, or \
                     PEERID@IP:PORT",
                ));
            }
            Some(Target::Peer(ticket.peer()))
        }
        target => target,
    };
    let (identity, trust, book) = match dial.identity.source() {
        IdentitySource::Key(key) => (load(key)?, TrustList::new(), SavedBook::new()),
        IdentitySource::DataDir(dir) => {
            let (data, identity) = open_existing(dir)?;
            let trust = load_trust(&data, &identity.peer_id())?;
            (identity, trust, load_book(&data)?)
        }
    };
    // (a node never trusts itself, PROTOCOL.md section 2.1: the dial
    // would end "not trusted", as `serve --trust` and `pair` of the
    // node's own PeerId are refused up front)
    let own = identity.peer_id();
    if dial.connect.iter().chain(&target).any(|t| t.peer() == own) {
        return Err(usage(format!(
            "{own} is this node's own PeerId: a node cannot call itself"
        )));
    }
    let (peer, addrs, one_off) = match (dial.connect, target) {
        (Some(_), Some(_)) => {
            return Err(usage("--connect and a peer argument both name the peer"));
        }
        (None, None) => return Err(usage("name the peer: PEERID, TICKET, or --connect")),
        // a ticket is an explicit trust for this dial, like --connect
        (Some(target), None) | (None, Some(target @ (Target::Ticket(_) | Target::At(..)))) => {
            (target.peer(), target.addrs(), true)
        }
        (None, Some(Target::Peer(peer))) => {
            if !from_dir {
                return Err(usage(
                    "a bare PEERID needs --data-dir (or a ticket, or --connect)",
                ));
            }
            if !trust.contains(&peer) {
                return Err(Failure(1, format!("{peer} is not paired")));
            }
            (peer, book.get(&peer).to_vec(), false)
        }
    };
    if addrs.is_empty() {
        return Err(Failure(1, format!("no address known for {peer}")));
    }
    // Each address of a round gets a share of --timeout for its connect:
    // the default `dial_timeout` (10 s) is --timeout's default, so an
    // address that never answers (a ticket's VPN or container address
    // listed first, a book's stale one) took the whole budget, and the
    // next one, which works, was never tried.
    let mut protocol = Config::default();
    let dialed = addrs.len().min(protocol.max_addresses_per_peer);
    protocol.dial.dial_timeout = connect_share(Duration::from_millis(dial.timeout), dialed);
    let mut config = NodeConfig::new(identity)
        .protocol(protocol)
        .protocol_version(dial.protocol)
        .trust(trust);
    if one_off {
        // trusting that PeerId for this dial only (nothing is saved)
        config = config.trusting(peer);
    } else {
        config = config.address_book(book);
    }
    Ok(Plan {
        config,
        peer,
        addrs,
        from_book: !one_off,
        handle,
        args,
    })
}

/// How long one address of `dialed` may take to open its connection
/// within `timeout`: an equal share, but at least 1 s (a lost SYN is sent
/// again after 1 s) and at most the default `dial_timeout`.
fn connect_share(timeout: Duration, dialed: usize) -> Duration {
    let most = DialConfig::default().dial_timeout;
    let share = timeout / u32::try_from(dialed.max(1)).unwrap_or(u32::MAX);
    share.clamp(Duration::from_secs(1).min(most), most)
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
        other => ErrorChain(other).to_string(),
    }
}

pub(crate) async fn run_dial(dial: Dial, call: bool) -> Result<(), Failure> {
    let timeout = Duration::from_millis(dial.timeout);
    let raw = dial.raw;
    let Plan {
        config,
        peer,
        addrs,
        from_book,
        handle,
        args,
    } = plan(dial)?;
    let node = Node::new(config);
    let deadline = tokio::time::Instant::now() + timeout;
    let connecting = connect_any(&node, peer, &addrs, from_book);
    let connected = tokio::time::timeout_at(deadline, connecting).await;
    match connected {
        Err(_) => return Err(Failure(1, "timeout".into())),
        Ok(Err(e)) => return Err(Failure(1, connect_cause(&e))),
        Ok(Ok(_)) => {}
    }
    // (the call has what the dial left of `--timeout`)
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if left.is_zero() {
        node.shutdown().await;
        return Err(Failure(1, "timeout".into()));
    }
    let result = if call {
        match node.call(&peer, &handle, args.into_bytes(), left).await {
            Ok(body) if raw || !std::io::stdout().is_terminal() => write_result(&body),
            Ok(body) => write_result(escape(&body, Layout::Lines).as_bytes()),
            Err(e) => Err(call_failure(&e)),
        }
    } else {
        node.send(&peer, &handle, args.into_bytes())
            .await
            .map_err(|e| Failure(1, e.to_string()))
    };
    // Flushes what is queued (the CALL's CANCEL after a timeout, a SEND)
    // and says goodbye before the process exits.
    node.shutdown().await;
    result
}

/// Dials the addresses in turn, best first, until one connects; the
/// last failure otherwise.
/// One address: dialed directly, so that a failure says why (refused,
/// `unexpected_peer`, ...). Several: through the node's address book,
/// best first, each after the one before failed.
async fn connect_any(
    node: &Node,
    peer: PeerId,
    addrs: &[(SocketAddr, AddrSource)],
    from_book: bool,
) -> Result<PeerId, ConnectError> {
    if let [(addr, _)] = addrs {
        return node.connect(peer, *addr).await;
    }
    if from_book {
        // (the node started with them, and with what worked)
        return every_round(node, peer).await;
    }
    for &(addr, source) in addrs {
        if let Err(e) = node.add_address(peer, addr, source) {
            tracing::debug!(%addr, error = %e, "address not added");
        }
    }
    node.connect_peer(peer, None).await
}

/// Dials `peer` through the book until every address in it was tried
/// (the caller bounds it by `--timeout`). One round of the node's
/// schedule dials every address but at most `HINTS_PER_ROUND` (2)
/// discovery hints that never worked: with more (a peer announced with
/// every address of its host), `serve` reaches the others in its next
/// rounds, but one round was all a call dialed, and the same two every
/// time. A hint whose dial failed leaves the book, so each next round
/// takes hints not tried yet; rounds stop once one tried nothing new.
/// The error names every address tried, in the order tried.
async fn every_round(node: &Node, peer: PeerId) -> Result<PeerId, ConnectError> {
    let mut tried = Vec::new();
    loop {
        let round = match node.connect_peer(peer, None).await {
            Err(ConnectError::Unreachable { tried: round, .. }) => round,
            done => return done,
        };
        let before = tried.len();
        for (addr, cause) in round {
            if !tried.iter().any(|(seen, _)| *seen == addr) {
                tried.push((addr, cause));
            }
        }
        let untried = node
            .addresses(&peer)
            .iter()
            .any(|entry| !tried.iter().any(|(seen, _)| *seen == entry.addr));
        if tried.len() == before || !untried {
            return Err(ConnectError::Unreachable { peer, tried });
        }
    }
}

pub(crate) fn call_failure(error: &CallError) -> Failure {
    let status = match error {
        CallError::NoSuchHandle => "no_such_handle",
        CallError::Forbidden => "forbidden",
        // (the handler's own words, if it gave any)
        CallError::HandlerError(body) if !body.is_empty() => {
            return Failure(2, format!("handler_error: {}", peer_text(body)));
        }
        CallError::HandlerError(_) => "handler_error",
        CallError::HandlerPanicked(_) => "handler_panicked",
        CallError::Overloaded => "overloaded",
        CallError::ShuttingDown => "shutting_down",
        CallError::ResultTooLarge => "too_large",
        CallError::Timeout => return Failure(1, "timeout".into()),
        CallError::ConnectionClosed(reason) => {
            return Failure(1, format!("closed: {}", reason_detail(reason)));
        }
        other => return Failure(1, other.to_string()),
    };
    Failure(2, status.into())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use peernet_tokio::book_file::SavedBook;
    use peernet_tokio::{AddrSource, DataDir, Identity, Ticket, TrustList};

    use crate::{Cli, Command};

    /// The plan of `args` (`call ...`).
    fn plan_of(args: &[&str]) -> Result<super::Plan, crate::Failure> {
        let mut argv = vec!["peernet"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Call(dial) => super::plan(dial),
            _ => unreachable!("a call"),
        }
    }

    /// Review s54 (review): `call PEERID echo`, the arguments left out,
    /// took the PeerId for the handle and said "name the peer", which
    /// the operator had; with a ticket, "invalid handle" (a ticket is
    /// longer than a handle may be). It says ARGS is missing.
    #[test]
    fn a_call_without_its_arguments_says_so() {
        let peer = Identity::from_seed(&[9; 32]).peer_id().to_string();
        let ticket = Ticket::new(
            Identity::from_seed(&[9; 32]).peer_id(),
            ["192.0.2.7:4000".parse().unwrap()],
        )
        .unwrap()
        .to_string();
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("key");
        peernet_tokio::persist::write_identity(&key, &Identity::from_seed(&[3; 32])).unwrap();
        let key = key.to_str().unwrap();
        for target in [peer.clone(), ticket, format!("{peer}@192.0.2.7:4000")] {
            match plan_of(&["call", "--key", key, &target, "echo"]) {
                Err(crate::Failure(code, why)) => {
                    assert_eq!(code, crate::EXIT_USAGE, "{why}");
                    assert!(why.contains("HANDLE and ARGS"), "{target}: {why}");
                }
                Ok(_) => panic!("a plan without arguments"),
            }
        }
        // a handle and its arguments, the peer left out, are as before
        match plan_of(&["call", "--key", key, "echo", "hi"]) {
            Err(crate::Failure(_, why)) => assert!(why.contains("name the peer"), "{why}"),
            Ok(_) => panic!("a plan without a peer"),
        }
    }

    /// Review s51 (revd): a ticket that names no address (a PeerId
    /// alone, as `Ticket::new(peer, [])` makes) was taken as this dial's
    /// addresses, none: `call --data-dir` failed "no address known"
    /// though the book held the peer's, and with `--key` it was exit 1,
    /// where `--connect` of the same ticket is a usage error.
    #[test]
    fn a_ticket_without_addresses_dials_through_the_book() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let data = DataDir::open(&dir).unwrap();
        data.load_or_create_identity().unwrap();
        let peer = Identity::from_seed(&[9; 32]).peer_id();
        let mut trust = TrustList::new();
        trust.insert(peer, None);
        data.save_trust(&trust).unwrap();
        let addr = "192.0.2.7:4000".parse().unwrap();
        let mut book = SavedBook::new();
        book.set(peer, [(addr, AddrSource::Ticket)]);
        data.save_book(&book).unwrap();
        let bare = Ticket::new(peer, []).unwrap().to_string();
        let dir = dir.to_str().unwrap();
        let plan = match plan_of(&["call", "--data-dir", dir, &bare, "echo", "x"]) {
            Ok(plan) => plan,
            Err(crate::Failure(code, why)) => panic!("exit {code}: {why}"),
        };
        assert_eq!(plan.peer, peer);
        assert_eq!(plan.addrs, [(addr, AddrSource::Ticket)]);
        assert!(plan.from_book);
        // with a key file: a usage error, as with --connect
        let key = tmp.path().join("key");
        peernet_tokio::persist::write_identity(&key, &Identity::from_seed(&[3; 32])).unwrap();
        let key = key.to_str().unwrap();
        match plan_of(&["call", "--key", key, &bare, "echo", "x"]) {
            Err(crate::Failure(code, why)) => {
                assert_eq!(code, crate::EXIT_USAGE, "{why}");
                assert!(why.contains("names no address"), "{why}");
            }
            Ok(_) => panic!("a plan without an address"),
        }
    }
}
