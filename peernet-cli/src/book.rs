//! `peernet pair`, `unpair` and `peers`: the trust list and the address
//! book of a data directory, edited without starting a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use peernet_tokio::book_file::{AddrSource, MAX_SAVED_ADDRS, SavedBook};
use peernet_tokio::{ErrorChain, Label, PeerId, Ticket};

use crate::datadir::{load_book, load_book_of, load_trust, lock, open_existing, read_trust};
use crate::output::{Layout, escape, print_result};
use crate::{EXIT_USAGE, Failure};
use peernet_tokio::text::shown_path;

/// Who to dial: a ticket, a bare PeerId (its addresses come from the
/// book), or `PEERID@IP:PORT`.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Peer(PeerId),
    At(PeerId, SocketAddr),
    Ticket(Ticket),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        // (whitespace around it, as a paste or a file's `\r\n` leaves,
        // is no part of it: a ticket is told from a PeerId by its start)
        let s = s.trim();
        let prefix = peernet_tokio::ticket::TICKET_PREFIX;
        let upper_ticket = s
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            && s.bytes().any(|b| b.is_ascii_uppercase());
        if upper_ticket {
            return Err("ticket: a ticket is written in lower case".into());
        }
        if s.starts_with(prefix) {
            return s
                .parse()
                .map(Target::Ticket)
                .map_err(|e| format!("ticket: {}", ErrorChain(&e)));
        }
        match s.split_once('@') {
            Some((peer, addr)) => {
                let peer = peer.parse::<PeerId>().map_err(|e| e.to_string())?;
                Ok(Target::At(peer, peer_addr(addr)?))
            }
            None => s.parse::<PeerId>().map(Target::Peer).map_err(|e| {
                format!(
                    "expected a ticket, a PeerId or PEERID@IP:PORT: {}",
                    ErrorChain(&e)
                )
            }),
        }
    }
}

/// A peer's IP:PORT, one a dial can reach (not port 0, not an
/// unspecified, multicast or broadcast IP, not a link-local IPv6 address
/// without its interface): what it names is saved in
/// books and tickets, where a bad one would fail only later.
pub(crate) fn peer_addr(text: &str) -> Result<SocketAddr, String> {
    let addr = text.parse::<SocketAddr>().map_err(|e| {
        format!(
            "address: {} (an IP and a port; host names and interface names are not looked up)",
            ErrorChain(&e)
        )
    })?;
    if !peernet_tokio::is_dialable(&addr) {
        return Err(format!(
            "address {addr} cannot be dialed (port 0, an unspecified, multicast or broadcast IP, \
             or a link-local IPv6 address without its interface)"
        ));
    }
    Ok(addr)
}

impl Target {
    pub(crate) fn peer(&self) -> PeerId {
        match self {
            Target::Peer(peer) | Target::At(peer, _) => *peer,
            Target::Ticket(ticket) => ticket.peer(),
        }
    }

    /// The addresses it names, with where they came from.
    pub(crate) fn addrs(&self) -> Vec<(SocketAddr, AddrSource)> {
        match self {
            Target::Peer(_) => Vec::new(),
            Target::At(_, addr) => vec![(*addr, AddrSource::Application)],
            Target::Ticket(ticket) => ticket
                .addrs()
                .iter()
                .map(|a| (*a, AddrSource::Ticket))
                .collect(),
        }
    }
}

/// A label as the CLI takes it: a valid trust-list label without
/// whitespace (so that `peers` lines split on spaces), and not `-` (which
/// `peers` prints for "no label").
fn parse_label(s: &str) -> Result<Label, String> {
    if s == "-" {
        return Err("`-` is reserved for \"no label\"".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("a label has no whitespace".into());
    }
    Label::new(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Target, label_field};

    /// Review s48: `unpair DIR PEERID` and `serve --trust PEERID` took
    /// the argument as it came: `PEERID\r` (a file with `\r\n`) or a
    /// pasted `PEERID ` was "not a PeerId".
    #[test]
    fn whitespace_around_a_peer_id_argument_is_no_part_of_it() {
        use clap::Parser;
        let peer = peernet_tokio::Identity::from_seed(&[7; 32]).peer_id();
        for args in [
            vec![
                "peernet".to_string(),
                "unpair".into(),
                "dir".into(),
                format!("{peer}\r"),
            ],
            vec![
                "peernet".to_string(),
                "serve".into(),
                "--key".into(),
                "key".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--trust".into(),
                format!(" {peer} "),
            ],
        ] {
            if let Err(e) = crate::Cli::try_parse_from(&args) {
                panic!("{args:?}: {e}");
            }
        }
        assert!(super::parse_peer("not a peer").is_err());
    }

    /// Review s48: a ticket with whitespace before it (a quoted paste, a
    /// line read with its indent) was not told from a PeerId, and one
    /// with a `\r` after it (a file with `\r\n`) failed as mistyped.
    #[test]
    fn whitespace_around_a_target_is_no_part_of_it() {
        let peer = peernet_tokio::Identity::from_seed(&[7; 32]).peer_id();
        let addr: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let ticket = peernet_tokio::Ticket::new(peer, [addr]).unwrap();
        for text in [
            format!(" {ticket}"),
            format!("{ticket}\r"),
            format!("\t{ticket} \n"),
        ] {
            match text.parse::<Target>() {
                Ok(Target::Ticket(read)) => assert_eq!(read, ticket, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        match format!(" {peer}@{addr}\r").parse::<Target>() {
            Ok(Target::At(p, a)) => assert_eq!((p, a), (peer, addr)),
            other => panic!("{other:?}"),
        }
        match format!("{peer} ").parse::<Target>() {
            Ok(Target::Peer(p)) => assert_eq!(p, peer),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_label_is_one_field_of_a_peers_line() {
        assert_eq!(label_field("laptop"), "laptop");
        assert_eq!(label_field("my laptop"), r"my\u{20}laptop");
        // (a backslash was `\u{5c}` before the tool had one escaper)
        assert_eq!(label_field("a\u{a0}b\\c"), r"a\u{a0}b\\c");
        assert_eq!(label_field("-"), r"\u{2d}");
        assert_eq!(label_field("é-ü"), "é-ü");
    }
}

#[derive(clap::Args)]
pub(crate) struct Pair {
    dir: PathBuf,
    /// TICKET, PEERID or PEERID@IP:PORT.
    #[arg(value_name = "TICKET|PEERID|PEERID@IP:PORT")]
    target: Target,
    /// A label (no whitespace; `-` is reserved). Kept from before when
    /// not given.
    #[arg(long, value_parser = parse_label)]
    label: Option<Label>,
}

/// Trusts the peer; new addresses replace the ones it had.
pub(crate) fn run_pair(pair: Pair) -> Result<(), Failure> {
    let (data, identity) = open_existing(&pair.dir)?;
    let peer = pair.target.peer();
    if peer == identity.peer_id() {
        return Err(Failure(
            EXIT_USAGE,
            "cannot pair with this node itself".into(),
        ));
    }
    let _lock = lock(&data)?;
    let mut trust = load_trust(&data, &identity.peer_id())?;
    let label = pair.label.or_else(|| trust.label(&peer).cloned());
    trust.insert(peer, label);
    let addrs = pair.target.addrs();
    let new_addrs = !addrs.is_empty();
    if let Target::Ticket(ticket) = &pair.target {
        // (a stranger's ticket can name a service of this host: said,
        // not refused, as a ticket of a peer on this host names one)
        for addr in ticket.local_addrs() {
            tracing::warn!(
                %peer,
                %addr,
                "the ticket names an address on this host or its link (loopback or link-local): \
                 a node of this directory dials the service there for this peer"
            );
        }
    }
    // (a bare PeerId changes no address: the book is not read, so a
    // damaged one does not stand in the way of a trust change; with
    // addresses, its error names the file and the line)
    let mut book = SavedBook::new();
    if new_addrs {
        book = load_book_of(&data, &identity.peer_id())?;
        // A book at its bound (`MAX_SAVED_ADDRS`, as a node whose
        // `max_addresses` is above it saves it) keeps none of the new
        // peer's addresses, or not all of them: said, before anything is
        // saved, rather than a pair that exits 0 with its addresses lost.
        let mut alone = SavedBook::new();
        alone.set(peer, addrs.iter().copied());
        book.set(peer, addrs);
        let (kept, given) = (book.get(&peer).len(), alone.get(&peer).len());
        if kept < given {
            return Err(Failure(
                1,
                format!(
                    "{}: the address book is full ({MAX_SAVED_ADDRS} addresses): {kept} of \
                     {peer}'s {given} addresses fit; nothing saved (unpair a peer first)",
                    shown_path(&data.book_path())
                ),
            ));
        }
    }
    // The trust list first: a crash in between leaves a trusted peer
    // without its new addresses, never addresses of an untrusted one.
    data.save_trust(&trust)
        .map_err(|e| Failure(1, ErrorChain(&e).to_string()))?;
    if new_addrs {
        // (said, or the error line reads as if the pair had failed)
        data.save_book(&book).map_err(|e| {
            Failure(
                1,
                format!(
                    "{peer} is paired, but its addresses are not saved ({})",
                    ErrorChain(&e)
                ),
            )
        })?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct Unpair {
    dir: PathBuf,
    #[arg(value_parser = parse_peer)]
    peer: PeerId,
}

/// A PeerId argument: whitespace around it (a paste, a file's `\r\n`)
/// is no part of it, as for a [`Target`].
pub(crate) fn parse_peer(s: &str) -> Result<PeerId, String> {
    s.trim().parse::<PeerId>().map_err(|e| e.to_string())
}

/// Stops trusting the peer and forgets its addresses; exit 1 if it was not
/// paired. The node's own PeerId names the entry of the node itself that
/// a hand edit may have put in the file (which the node ignores): it is
/// removed.
///
/// The trust list is saved first: a revocation is not held up by the
/// book. If the book cannot be read or saved (damaged, a symbolic link,
/// a full disk, a crash in between), the error says the peer is
/// unpaired, and `unpair` run again, once the book is mended, forgets
/// the addresses of the peer no longer trusted, which a later `pair`
/// would otherwise take back.
pub(crate) fn run_unpair(unpair: Unpair) -> Result<(), Failure> {
    let (data, identity) = open_existing(&unpair.dir)?;
    let _lock = lock(&data)?;
    let own = identity.peer_id();
    let peer = unpair.peer;
    let mut trust = match peer == own {
        true => read_trust(&data)?,
        false => load_trust(&data, &own)?,
    };
    // (the node's own lines are the peer's, unpaired, when it is the
    // node itself; otherwise left out as a `pair` leaves them)
    let book = match peer == own {
        true => load_book(&data),
        false => load_book_of(&data, &own),
    };
    let trusted = trust.remove(&peer);
    if trusted {
        data.save_trust(&trust)
            .map_err(|e| Failure(1, ErrorChain(&e).to_string()))?;
    }
    let unforgotten = |cause: String| match trusted {
        true => Failure(
            1,
            format!(
                "{peer} is unpaired, but its addresses are not forgotten ({cause}): run \
                 `peernet unpair` again once the book is mended"
            ),
        ),
        false => Failure(1, cause),
    };
    let mut book = book.map_err(|Failure(_, cause)| unforgotten(cause))?;
    if book.remove(&peer) {
        data.save_book(&book)
            .map_err(|e| unforgotten(ErrorChain(&e).to_string()))?;
    } else if !trusted {
        return Err(Failure(1, format!("{peer} is not paired")));
    }
    Ok(())
}

/// `peernet peers DIR`: `<PEERID> <label or -> <addresses or ->`, one
/// line per trusted peer, in PeerId order.
///
/// A book that does not load (damaged, not a regular file) does not hide
/// the trust list: every trusted peer is listed, its addresses `?`
/// (unknown, which `-`, none, is not), and then the book's error, which
/// names the file and the line, ends the run with exit 1.
pub(crate) fn run_peers(dir: PathBuf) -> Result<(), Failure> {
    let (data, identity) = open_existing(&dir)?;
    let trust = load_trust(&data, &identity.peer_id())?;
    let book = load_book(&data);
    for (peer, label) in trust.iter() {
        let label = label.map_or("-".to_string(), |l| label_field(l.as_str()));
        let addrs = match &book {
            Err(_) => "?".to_string(),
            Ok(book) if book.get(peer).is_empty() => "-".to_string(),
            Ok(book) => {
                let addrs: Vec<String> =
                    book.get(peer).iter().map(|(a, _)| a.to_string()).collect();
                addrs.join(",")
            }
        };
        print_result(&format!("{peer} {label} {addrs}"))?;
    }
    book.map(drop)
}

/// A label as one field of a `peers` line ([`Layout::Field`]): its
/// whitespace shown as `\u{..}` and its backslashes as `\\`, and a label
/// that is `-` as `\u{2d}`, so that every line splits on spaces into three
/// fields, whoever wrote the label (the library's `Node::pair` takes one
/// with inner spaces).
fn label_field(label: &str) -> String {
    if label == "-" {
        return r"\u{2d}".into();
    }
    escape(label.as_bytes(), Layout::Field)
}
