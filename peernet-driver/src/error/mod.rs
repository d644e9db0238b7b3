//! Errors of the async API. Calls fail with the core's typed
//! [`CallError`](peernet_proto::CallError); dialing has its own.
//!
//! An error that wraps another (an I/O error, the core's reason, a
//! file's damage) returns it from [`source`](std::error::Error::source)
//! and does not repeat it in its own message, so that a reporter that
//! walks the chain (anyhow's `{:#}`, eyre, [`ErrorChain`]) shows each
//! cause once: print an error with [`ErrorChain`], not with its
//! `Display` alone, to see why it happened. An error whose message shows
//! a detail (a handler's value, a peer's text, escaped) returns nothing
//! from `source`.

use std::io;
use std::net::SocketAddr;

use peernet_proto::{
    BookError, CallError, CloseReason, DialFailure, GoodbyeCode, HandshakeError, PeerId, RejectCode,
};

pub(crate) mod typed;

pub(crate) use typed::{PeerWords, TypedError, typed_error_methods};

/// Why `connect` (or a brought-in stream) did not give a connection: the
/// core's reasons as they are, plus the transport's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The transport could not be opened, where no address was dialed:
    /// the host name of a `"host:port"` did not resolve. (A dial whose
    /// TCP connection did not open is [`ConnectError::Dial`].)
    #[error("io")]
    Io(#[from] io::Error),
    /// The TCP connection to `addr` did not open (e.g. it was refused):
    /// `dial 127.0.0.1:7000`, the operating system's words its `source`.
    /// For a host name that resolved to several addresses, each was
    /// tried in turn, and this is the last one's failure.
    #[error("dial {addr}")]
    Dial {
        /// The address dialed.
        addr: std::net::SocketAddr,
        /// Why the connection did not open.
        #[source]
        source: io::Error,
    },
    /// The core would not start the handshake: the peer to dial is not in
    /// our trust list (or is ourselves), or the node is shutting down.
    #[error(transparent)]
    Start(#[from] peernet_proto::ConnectError),
    /// The handshake ran and failed: refused by either side, the wrong
    /// peer answered, it timed out (the budget `handshake_timeout` also
    /// covers opening the transport), the transport closed, or the node
    /// shut down or unpaired the peer meanwhile.
    #[error("handshake failed")]
    Handshake(#[from] HandshakeError),
    /// [`Node::connect_peer`](crate::Node::connect_peer): every address of
    /// its round was tried and none gave a connection (the book's
    /// addresses, but of the discovery hints that never worked at most
    /// [`HINTS_PER_ROUND`](peernet_proto::dial::HINTS_PER_ROUND)).
    ///
    /// A node may have answered at an address and refused the handshake
    /// with a REJECT (a peer that has not paired us answers `untrusted`,
    /// but so may another node there): the message then leads with it,
    /// naming the address, not the peer, as the one that refused (`the
    /// node at 192.0.2.7:7000 rejected the handshake for peer …
    /// (untrusted); no address tried gave a connection: …`: see
    /// [`ConnectError::rejection`] for why), and
    /// [`ConnectError::rejection`] gives its code; otherwise it reads
    /// `peer … is unreachable at every address tried: …`.
    #[error("{}", Unreachable(peer, tried))]
    Unreachable {
        /// The peer dialed.
        peer: peernet_proto::PeerId,
        /// Each address tried in the round that failed, in the order
        /// tried, with why it failed (the transport's error, no
        /// connection in time, or the handshake's: refused, rejected,
        /// another peer answered).
        tried: Vec<(std::net::SocketAddr, peernet_proto::DialFailure)>,
    },
    /// [`Node::connect_peer`](crate::Node::connect_peer): its `timeout`
    /// (this long) passed before the round gave a connection or failed.
    /// The round goes on: a connection it makes later is kept.
    #[error("no connection within {0:?}")]
    Timeout(std::time::Duration),
}

impl ConnectError {
    /// The REJECT code the node answering at the address dialed refused
    /// the handshake with, if it did: [`ConnectError::Handshake`] of
    /// [`HandshakeError::Rejected`], or, of
    /// [`ConnectError::Unreachable`], the last address of the round
    /// where one did (as [`NodeEvent::rejection`](crate::NodeEvent::rejection)
    /// of the round's event). `unexpected_peer` is not counted: the node
    /// there said it is not the peer dialed.
    ///
    /// This is what that node said, not who it is: a REJECT comes before
    /// the node answering has proved its identity, and is not
    /// authenticated (PROTOCOL.md sections 2.1 and 6; the README's
    /// threat model), so one on the path can forge it. On protocol
    /// version 1 even an honest node that is not the peer (another
    /// node now at that address, that does not trust us) answers
    /// `untrusted`, since the responder checks our key before it shows
    /// its own. On version 2 an honest node that is not the peer
    /// answers `unexpected_peer` (our INIT's `mac1` is keyed to the
    /// peer's PeerId), so `untrusted` most likely comes from the peer
    /// that has not paired us, but nothing proves it. Hence the
    /// message of [`ConnectError::Unreachable`] says the node at that
    /// address refused, not the peer.
    ///
    /// ```
    /// use peernet_driver::{ConnectError, HandshakeError, RejectCode};
    ///
    /// let refused = ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Untrusted));
    /// assert_eq!(refused.rejection(), Some(RejectCode::Untrusted));
    /// ```
    pub fn rejection(&self) -> Option<RejectCode> {
        match self {
            ConnectError::Handshake(e) => refused_by_peer(e),
            ConnectError::Unreachable { tried, .. } => rejection(tried),
            _ => None,
        }
    }
}

impl ConnectError {
    /// Whether the same connect, tried again later with nothing changed
    /// on either side (no pairing, no configuration, no code), may give
    /// a connection: as [`CallError::is_transient`] says of a call, so
    /// that a loop that retries sorts "try again later" from "a refusal
    /// or a mistake" in one call.
    ///
    /// - [`Io`](ConnectError::Io) (the host name did not resolve) and
    ///   [`Dial`](ConnectError::Dial) (the TCP connection did not open:
    ///   refused, unreachable, reset): true (a peer not started yet, a
    ///   network or resolver down), but for an error of kind
    ///   [`InvalidInput`](io::ErrorKind::InvalidInput) (a malformed
    ///   `"host:port"`, an address no one can dial),
    ///   [`Unsupported`](io::ErrorKind::Unsupported) or
    ///   [`PermissionDenied`](io::ErrorKind::PermissionDenied) (a local
    ///   firewall rule): the same input fails the same way.
    /// - [`Start`](ConnectError::Start) and
    ///   [`Handshake`](ConnectError::Handshake): as the core's
    ///   [`peernet_proto::ConnectError::is_transient`] and
    ///   [`HandshakeError::is_transient`] say. A REJECT `busy` is
    ///   transient; a REJECT `untrusted` is not: the node there has not
    ///   paired us (or is another node), and a retry alone does not
    ///   change that (it may pair us later: a peer kept connected with
    ///   [`Node::keep_connected`](crate::Node::keep_connected) is
    ///   redialed anyway, and connects once it has).
    /// - [`Unreachable`](ConnectError::Unreachable): true if any address
    ///   of the round failed for a reason of the moment
    ///   ([`DialFailure::is_transient`]): a later round may connect
    ///   there. False if every address answered with a refusal for good
    ///   (`untrusted`, another peer), or none was tried.
    /// - [`Timeout`](ConnectError::Timeout): true.
    ///
    /// ```
    /// use peernet_driver::{ConnectError, HandshakeError, RejectCode};
    ///
    /// let busy = ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Busy));
    /// assert!(busy.is_transient());
    /// let untrusted = ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Untrusted));
    /// assert!(!untrusted.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Io(error) | ConnectError::Dial { source: error, .. } => !matches!(
                error.kind(),
                io::ErrorKind::InvalidInput
                    | io::ErrorKind::Unsupported
                    | io::ErrorKind::PermissionDenied
            ),
            ConnectError::Start(error) => error.is_transient(),
            ConnectError::Handshake(error) => error.is_transient(),
            ConnectError::Unreachable { tried, .. } => {
                tried.iter().any(|(_, failure)| failure.is_transient())
            }
            ConnectError::Timeout(_) => true,
        }
    }
}

/// The REJECT code of the last address of a dial round (`tried` of
/// [`ConnectError::Unreachable`] or of
/// [`NodeEvent::Unreachable`](crate::NodeEvent::Unreachable)) where the
/// node answering refused the handshake, if any did: see
/// [`ConnectError::rejection`].
pub(crate) fn rejection(tried: &[(SocketAddr, DialFailure)]) -> Option<RejectCode> {
    rejected_at(tried).map(|(_, code)| code)
}

/// The last address of a dial round where the node answering refused
/// the handshake, with its REJECT code: see [`rejection`].
pub(crate) fn rejected_at(tried: &[(SocketAddr, DialFailure)]) -> Option<(SocketAddr, RejectCode)> {
    tried
        .iter()
        .rev()
        .find_map(|(addr, failure)| match failure {
            DialFailure::Handshake(e) => refused_by_peer(e).map(|code| (*addr, code)),
            _ => None,
        })
}

/// The code of a REJECT that the node answering at the address dialed
/// sent, but `unexpected_peer` (it said it is not the peer dialed).
fn refused_by_peer(error: &HandshakeError) -> Option<RejectCode> {
    match error {
        HandshakeError::Rejected(code) if *code != RejectCode::UnexpectedPeer => Some(*code),
        _ => None,
    }
}

/// The message of [`ConnectError::Unreachable`] (and of
/// [`NodeEvent::Unreachable`](crate::NodeEvent::Unreachable)): its
/// [`Lead`], then its [`Causes`].
pub(crate) struct Unreachable<'a>(
    pub(crate) &'a PeerId,
    pub(crate) &'a [(SocketAddr, DialFailure)],
);

impl std::fmt::Display for Unreachable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Unreachable(peer, tried) = *self;
        write!(f, "{}{}", Lead(peer, tried), Causes(tried))
    }
}

/// How the message of [`ConnectError::Unreachable`] begins: with the
/// handshake's refusal if a node answering at an address refused it
/// (something was reached, not nothing), said of that address, not of
/// the peer: a REJECT does not prove who sent it
/// ([`ConnectError::rejection`]).
struct Lead<'a>(&'a PeerId, &'a [(SocketAddr, DialFailure)]);

impl std::fmt::Display for Lead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Lead(peer, tried) = self;
        match rejected_at(tried) {
            Some((addr, code)) => write!(
                f,
                "the node at {addr} rejected the handshake for peer {peer} ({}); \
                 no address tried gave a connection",
                code.name()
            ),
            None => write!(f, "peer {peer} is unreachable at every address tried"),
        }
    }
}

/// `tried` of [`ConnectError::Unreachable`], as its message ends.
struct Causes<'a>(&'a [(std::net::SocketAddr, peernet_proto::DialFailure)]);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (addr, cause)) in self.0.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{addr}: {cause}")?;
        }
        Ok(())
    }
}

/// Questions about a failed call that would otherwise need a nested
/// match on [`CallError::ConnectionClosed`] and [`CloseReason`].
///
/// ```
/// use peernet_driver::{CallError, CallErrorExt};
///
/// fn describe(error: &CallError) -> &'static str {
///     match error {
///         e if e.is_revoked() => "one side unpaired the other",
///         CallError::Timeout => "no reply in time",
///         _ => "something else",
///     }
/// }
/// assert_eq!(describe(&CallError::Timeout), "no reply in time");
/// ```
pub trait CallErrorExt {
    /// Why the connection ended, if the call failed because it did.
    fn close_reason(&self) -> Option<&CloseReason>;
    /// The GOODBYE code the connection ended with, if any.
    fn goodbye_code(&self) -> Option<GoodbyeCode> {
        self.close_reason().and_then(CloseReason::goodbye_code)
    }
    /// Whether the call failed because one side removed the other from its
    /// trust list (GOODBYE `revoked`, sent or received).
    fn is_revoked(&self) -> bool {
        self.goodbye_code() == Some(GoodbyeCode::Revoked)
    }
}

impl CallErrorExt for CallError {
    fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            CallError::ConnectionClosed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Reading the data directory failed. An
    /// error of one of its files (not a regular file, too large, open to
    /// other users, unreadable) names the file: the [`io::Error`], of its
    /// own kind, carries a [`FileError`](crate::persist::FileError)
    /// ([`FileError::find`](crate::persist::FileError::find)), which
    /// [`ErrorChain`] shows (`io: trust list /var/lib/node/trust: not a
    /// regular file`).
    #[error("io")]
    Io(#[from] io::Error),
    /// [`Node::listen`](crate::Node::listen) (or [`Node::bind`](crate::Node::bind))
    /// could not bind `addr`: `listen 127.0.0.1:7000`, the operating
    /// system's words its `source` (`Address already in use`), or, of
    /// kind [`InvalidInput`](io::ErrorKind::InvalidInput), a multicast
    /// or broadcast address, where no peer can connect.
    #[error("listen {addr}")]
    Listen {
        /// The address that was to be bound.
        addr: std::net::SocketAddr,
        /// Why it could not be.
        #[source]
        source: io::Error,
    },
    /// The identity file is damaged: which file, and why (its `source`).
    #[error(transparent)]
    Identity(#[from] crate::persist::FileError<peernet_proto::InvalidIdentity>),
    /// The trust list file is damaged (never read as an empty list):
    /// which file, and its first bad line (its `source`).
    #[error(transparent)]
    TrustList(#[from] crate::persist::FileError<peernet_proto::TrustListError>),
    /// The address book file is damaged (never read as an empty book) or
    /// unreadable; the error names it.
    #[error(transparent)]
    Book(#[from] crate::book_file::LoadBookError),
    /// The protocol configuration breaks a rule ([`peernet_proto::Config::validate`]):
    /// a zero duration or count, an idle timeout not above the ping
    /// interval, a first-frame timeout above the handshake timeout, a
    /// frame limit below the largest handshake frame, dial settings that
    /// shrink or invert ([`peernet_proto::ConfigError`]).
    #[error("configuration")]
    Config(#[from] peernet_proto::ConfigError),
    /// The data directory is in use by another node or process
    /// ([`LockError::InUse`](crate::LockError::InUse)), or its lock file
    /// could not be opened (the error names it).
    #[error(transparent)]
    Lock(#[from] crate::dirlock::LockError),
    /// The operating system gave no randomness to seed the node's RNG.
    #[error("no entropy from the operating system")]
    Entropy(#[source] getrandom::Error),
    /// [`NodeConfig::events_capacity`](crate::NodeConfig::events_capacity)
    /// over [`MAX_EVENTS_CAPACITY`](crate::MAX_EVENTS_CAPACITY):
    /// every subscriber's buffer is allocated whole when it subscribes.
    #[error(
        "events_capacity {0} is over the {max} events a subscriber may buffer",
        max = crate::MAX_EVENTS_CAPACITY
    )]
    EventsCapacity(usize),
    /// [`NodeConfig::linger`](crate::NodeConfig::linger) of zero: a closed
    /// connection would stop its writer before the GOODBYE.
    #[error("linger of zero: a closing connection needs time to write its GOODBYE")]
    Linger,
    /// [`Node::listen`](crate::Node::listen) on a node that has a listener
    /// already.
    #[error("the node is listening already")]
    AlreadyListening,
    /// [`Node::listen`](crate::Node::listen) after
    /// [`Node::shutdown`](crate::Node::shutdown).
    #[error("the node is shut down")]
    Closed,
}

/// Why [`Node::pair`](crate::Node::pair) or
/// [`Node::unpair`](crate::Node::unpair) failed, and what became of the
/// change: each variant says whether it was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustChangeError {
    /// `pair` of the node's own PeerId: a node never trusts itself.
    /// Nothing was written, nothing changed.
    #[error("a node cannot pair with itself: {0} is this node's own PeerId")]
    OwnPeerId(PeerId),
    /// The node is closed (shut down, or its last handle dropped): it
    /// takes no trust change, and nothing changed. (`unpair` says so
    /// only of a node closed before its future was first polled: one
    /// that closes later finds the peer revoked already,
    /// [`TrustChangeError::RevokedNotSaved`].)
    #[error("the node is closed: it takes no trust change")]
    Closed,
    /// The data directory's trust file could not be read, parsed or
    /// written (damaged, edited into a list that does not parse, a FIFO,
    /// a symbolic link, a list too large, a full disk, removed while the
    /// node runs: [`io::ErrorKind::NotFound`]): it was left as it
    /// was, and nothing changed in this run either. The source says why
    /// (its kind: [`io::ErrorKind::InvalidData`] for a file that does not
    /// parse, [`io::ErrorKind::FileTooLarge`] for a list too large to
    /// save, ...).
    #[error("the trust file was not changed")]
    File(#[source] io::Error),
    /// `unpair` only: the peer is revoked in this run (its connection
    /// closed, its calls failed), but the trust file was not updated and
    /// still trusts it: it could not be read, parsed or written, or the
    /// node closed before the change's turn to write it came (a closed
    /// node writes no more to its data directory). The next start would
    /// trust the peer again unless the file is mended. A revocation is
    /// never held up by the file.
    #[error("revoked in this run, but the trust file was not updated")]
    RevokedNotSaved {
        /// What `unpair` would have returned: whether this run trusted
        /// the peer (the file's list is not known).
        changed: bool,
        /// Why the file was not updated.
        #[source]
        source: io::Error,
    },
    /// The change was made, in this run and in the trust file, but the
    /// file's directory could not be synced afterwards: a crash or a
    /// power loss may yet take it back.
    #[error("the trust change was made, but may not be durable")]
    NotDurable {
        /// What `pair` or `unpair` would have returned: whether the list
        /// changed (`pair`: the peer was not trusted before; `unpair`: it
        /// was, by the run or by the file).
        changed: bool,
        /// The file replaced, and why its directory was not synced.
        #[source]
        source: crate::persist::NotDurable,
    },
    /// The runtime dropped the change before it finished (it is shutting
    /// down): the trust file may or may not have it. In this run a `pair`
    /// was not made (the run trusts the peer as it did before the call)
    /// and an `unpair` was (the peer was revoked when its future was
    /// first polled).
    #[error("the runtime dropped the trust change before its file was written")]
    Dropped,
}

/// Why [`Node::pair_ticket`](crate::Node::pair_ticket) failed: which of
/// its two steps did, each variant saying what was made. The steps run
/// in order (trust the peer, then record its addresses), and the second
/// runs only once the first holds, so the variant alone tells what is
/// left to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairTicketError {
    /// Trusting the ticket's peer failed, as
    /// [`Node::pair`](crate::Node::pair) says (its ticket names this very
    /// node, the node is closed, the trust file could not be written...).
    /// No address of the ticket was recorded, but for
    /// [`TrustChangeError::NotDurable`]: that pairing was made, and every
    /// address recorded, only the trust file's directory was not synced
    /// (a crash may take the pairing back).
    #[error("trusting the ticket's peer {peer} failed")]
    Trust {
        /// The ticket's peer.
        peer: PeerId,
        /// Why, as `pair` says it.
        #[source]
        source: TrustChangeError,
    },
    /// The peer is trusted (the pairing was made, in this run and in a
    /// data directory's trust file), but the address book refused the
    /// ticket's address `addr`
    /// ([`Node::add_address`](crate::Node::add_address): the peer has
    /// its most addresses, all better, or the book is full; or an
    /// `unpair` of the peer came between the two steps). The ticket's
    /// addresses before `addr` were recorded; `addr` and those after it
    /// were not.
    #[error("{peer} is trusted, but its ticket address {addr} was not recorded")]
    Address {
        /// The ticket's peer.
        peer: PeerId,
        /// The address refused.
        addr: SocketAddr,
        /// Why the book refused it.
        #[source]
        source: BookError,
    },
}

impl PairTicketError {
    /// Whether the peer is trusted in this run despite the error: the
    /// first step held ([`PairTicketError::Address`], or a pairing made
    /// but not durable), and only the rest needs mending.
    ///
    /// ```
    /// use peernet_driver::{BookError, Identity, PairTicketError, TrustChangeError};
    ///
    /// let peer = Identity::from_seed(&[2; 32]).peer_id();
    /// let addr = "192.0.2.7:7000".parse().unwrap();
    /// let full = PairTicketError::Address { peer, addr, source: BookError::Full };
    /// assert!(full.is_paired());
    /// let closed = PairTicketError::Trust { peer, source: TrustChangeError::Closed };
    /// assert!(!closed.is_paired());
    /// ```
    pub fn is_paired(&self) -> bool {
        match self {
            PairTicketError::Trust { source, .. } => {
                matches!(source, TrustChangeError::NotDurable { .. })
            }
            PairTicketError::Address { .. } => true,
        }
    }
}

/// The [`io::Error`] `pair` and `unpair` returned before they had a type
/// of their own, for code that handles trust changes as I/O: the file's
/// errors as they were ([`TrustChangeError::File`]) or with their kind
/// ([`TrustChangeError::RevokedNotSaved`]), a [`NotDurable`] that
/// [`NotDurable::is`] finds, [`io::ErrorKind::InvalidInput`] for the
/// node's own PeerId, [`io::ErrorKind::Other`] for a closed node or a
/// change the runtime dropped; each says what the variant says.
///
/// [`NotDurable`]: crate::persist::NotDurable
/// [`NotDurable::is`]: crate::persist::NotDurable::is
impl From<TrustChangeError> for io::Error {
    fn from(error: TrustChangeError) -> io::Error {
        let kind = match &error {
            TrustChangeError::File(e) | TrustChangeError::RevokedNotSaved { source: e, .. } => {
                e.kind()
            }
            TrustChangeError::NotDurable { source, .. } => source.source.kind(),
            TrustChangeError::OwnPeerId(_) => io::ErrorKind::InvalidInput,
            TrustChangeError::Closed | TrustChangeError::Dropped => io::ErrorKind::Other,
        };
        match error {
            TrustChangeError::File(e) => e,
            TrustChangeError::NotDurable { source, .. } => io::Error::new(kind, source),
            // (the change's error itself, whose cause stays its source)
            error => io::Error::new(kind, error),
        }
    }
}

/// An error with its causes, as one line: its message, then each
/// [`source`](std::error::Error::source)'s after a `": "` (`handshake
/// failed: rejected by the remote node (busy): it is busy, try again
/// later`). An error of this crate or the
/// core does not repeat its source in its own message (see
/// [`ConnectError`]), so its `Display` alone may not say why; this does,
/// each cause once. For logs (`error = %ErrorChain(&e)`) and for a
/// tool's `error:` line.
///
/// ```
/// use peernet_driver::{ConnectError, ErrorChain};
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let addr = "127.0.0.1:7000".parse().unwrap();
/// let error = ConnectError::Dial { addr, source: refused };
/// assert_eq!(error.to_string(), "dial 127.0.0.1:7000");
/// assert_eq!(ErrorChain(&error).to_string(), "dial 127.0.0.1:7000: refused");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
