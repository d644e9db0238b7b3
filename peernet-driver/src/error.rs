//! Errors of the async API. Calls fail with the core's typed
//! [`CallError`](peernet_proto::CallError); dialing has its own.

use std::io;

use peernet_proto::{CallError, CloseReason, GoodbyeCode, HandshakeError, PeerId};

/// Why `connect` (or a brought-in stream) did not give a connection: the
/// core's reasons as they are, plus the transport's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The transport could not be opened (e.g. the TCP connection was
    /// refused).
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The core would not start the handshake: the peer to dial is not in
    /// our trust list (or is ourselves), or the node is shutting down.
    #[error(transparent)]
    Start(#[from] peernet_proto::ConnectError),
    /// The handshake ran and failed: refused by either side, the wrong
    /// peer answered, it timed out (the budget `handshake_timeout` also
    /// covers opening the transport), the transport closed, or the node
    /// shut down or unpaired the peer meanwhile.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// [`Node::connect_peer`](crate::Node::connect_peer): every address of
    /// its round was tried and none gave a connection (the book's
    /// addresses, but of the discovery hints that never worked at most
    /// [`HINTS_PER_ROUND`](peernet_proto::dial::HINTS_PER_ROUND)).
    #[error("peer {peer} is unreachable at every address tried{}", Causes(tried))]
    Unreachable {
        /// The peer dialed.
        peer: peernet_proto::PeerId,
        /// Each address tried in the round that failed, in the order
        /// tried, with why it failed (the transport's error, no
        /// connection in time, or the handshake's: refused, rejected,
        /// another peer answered).
        tried: Vec<(std::net::SocketAddr, peernet_proto::DialFailure)>,
    },
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

/// A handler's error value, as a typed call's error message ends: its
/// `Debug` form (which escapes the peer's text), cut after
/// [`HANDLER_ERROR_SHOWN`] bytes so that a peer's long value cannot
/// flood a log line.
pub(crate) struct HandlerValue<'a, E>(pub(crate) &'a E);

/// The most of a handler's error value a message shows, in bytes.
const HANDLER_ERROR_SHOWN: usize = 256;

impl<E: std::fmt::Debug> std::fmt::Display for HandlerValue<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Passes on at most `left` bytes, cut on a character boundary.
        struct Cut<'a, 'b> {
            out: &'a mut std::fmt::Formatter<'b>,
            left: usize,
            cut: bool,
        }
        impl std::fmt::Write for Cut<'_, '_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                if self.cut {
                    return Ok(());
                }
                let mut end = s.len().min(self.left);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                self.left -= end;
                self.cut = end < s.len();
                self.out.write_str(&s[..end])
            }
        }
        let mut cut = Cut {
            out: f,
            left: HANDLER_ERROR_SHOWN,
            cut: false,
        };
        std::fmt::write(&mut cut, format_args!("{:?}", self.0))?;
        if cut.cut {
            f.write_str("…")?;
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
    /// Binding the listener, or reading the data directory, failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The identity file is damaged.
    #[error("identity file: {0}")]
    Identity(#[from] peernet_proto::InvalidIdentity),
    /// The trust list file is damaged (never read as an empty list).
    #[error("trust list file: {0}")]
    TrustList(#[from] peernet_proto::TrustListError),
    /// The address book file is damaged (never read as an empty book) or
    /// unreadable.
    #[error(transparent)]
    Book(#[from] crate::book_file::LoadBookError),
    /// The protocol configuration breaks a rule ([`peernet_proto::Config::validate`]):
    /// a zero duration or count, an idle timeout not above the ping
    /// interval, a first-frame timeout above the handshake timeout, a
    /// frame limit below the largest handshake frame, dial settings that
    /// shrink or invert ([`peernet_proto::ConfigError`]).
    #[error("configuration: {0}")]
    Config(#[from] peernet_proto::ConfigError),
    /// The data directory is in use by another node or process
    /// ([`LockError::InUse`](crate::LockError::InUse)), or its lock file
    /// could not be opened.
    #[error(transparent)]
    Lock(#[from] crate::dirlock::LockError),
    /// The operating system gave no randomness to seed the node's RNG.
    #[error("no entropy from the operating system: {0}")]
    Entropy(getrandom::Error),
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
    /// takes no trust change, and nothing changed.
    #[error("the node is closed: it takes no trust change")]
    Closed,
    /// The data directory's trust file could not be read, parsed or
    /// written (damaged, edited into a list that does not parse, a FIFO,
    /// a symbolic link, a list too large, a full disk): it was left as it
    /// was, and nothing changed in this run either. The source says why
    /// (its kind: [`io::ErrorKind::InvalidData`] for a file that does not
    /// parse, [`io::ErrorKind::FileTooLarge`] for a list too large to
    /// save, ...).
    #[error("the trust file was not changed: {0}")]
    File(#[source] io::Error),
    /// `unpair` only: the peer is revoked in this run (its connection
    /// closed, its calls failed), but the trust file could not be read,
    /// parsed or written, and still trusts it: the next start would
    /// trust it again unless the file is mended. A revocation is never
    /// held up by the file.
    #[error("revoked in this run, but the trust file was not updated: {0}")]
    RevokedNotSaved(#[source] io::Error),
    /// The change was made, in this run and in the trust file, but the
    /// file's directory could not be synced afterwards: a crash or a
    /// power loss may yet take it back.
    #[error(transparent)]
    NotDurable(#[from] crate::persist::NotDurable),
    /// The runtime dropped the change before it finished (it is shutting
    /// down): the trust file may or may not have it.
    #[error("the runtime dropped the trust change before it finished")]
    Dropped,
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
        let text = error.to_string();
        match error {
            TrustChangeError::File(e) => e,
            TrustChangeError::RevokedNotSaved(e) => io::Error::new(e.kind(), text),
            TrustChangeError::NotDurable(e) => io::Error::new(e.source.kind(), e),
            TrustChangeError::OwnPeerId(_) => io::Error::new(io::ErrorKind::InvalidInput, text),
            TrustChangeError::Closed | TrustChangeError::Dropped => io::Error::other(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::TypedCallError;

    /// A trust change's error converts to the `io::Error` `pair` and
    /// `unpair` returned before `TrustChangeError`, so that code written
    /// for `io::Result` keeps its `?` and its checks: the kinds, and a
    /// `NotDurable` that `NotDurable::is` finds.
    #[test]
    fn a_trust_change_error_converts_to_the_io_error_it_was() {
        use super::TrustChangeError;
        use crate::persist::NotDurable;
        use std::io;
        let own = peernet_proto::Identity::from_seed(&[3; 32]).peer_id();
        let io_of = |e: TrustChangeError| -> io::Error { e.into() };
        let e = io_of(TrustChangeError::OwnPeerId(own));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(&own.to_string()), "{e}");
        let e = io_of(TrustChangeError::File(io::Error::new(
            io::ErrorKind::InvalidData,
            "line 3",
        )));
        assert_eq!(
            (e.kind(), e.to_string()),
            (io::ErrorKind::InvalidData, "line 3".into())
        );
        let e = io_of(TrustChangeError::RevokedNotSaved(
            io::ErrorKind::StorageFull.into(),
        ));
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(e.to_string().starts_with("revoked in this run"), "{e}");
        let unsynced = NotDurable {
            path: "trust".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        };
        let e = io_of(TrustChangeError::NotDurable(unsynced));
        assert!(NotDurable::is(&e), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        for closed in [TrustChangeError::Closed, TrustChangeError::Dropped] {
            let text = closed.to_string();
            let e = io_of(closed);
            assert_eq!((e.kind(), e.to_string()), (io::ErrorKind::Other, text));
        }
    }

    /// A handler's error value is in the message (it used to say only
    /// "handler error"), escaped, and cut after 256 bytes on a character
    /// boundary, however long the peer made it.
    #[test]
    fn a_handler_error_says_its_value_escaped_and_cut() {
        let shown = |value: &str| TypedCallError::Handler(value.to_owned()).to_string();
        assert_eq!(
            shown("no such user"),
            "the handler answered with an error: \"no such user\""
        );
        assert_eq!(
            shown("x\n\u{1b}[31m"),
            "the handler answered with an error: \"x\\n\\u{1b}[31m\""
        );
        let long = shown(&"é".repeat(10_000));
        let value = long
            .strip_prefix("the handler answered with an error: ")
            .unwrap();
        let kept = value.strip_suffix('…').unwrap();
        assert_eq!(kept.len(), 255, "{kept}");
        assert_eq!(kept, format!("\"{}", "é".repeat(127)));
        #[cfg(feature = "serde")]
        assert_eq!(
            crate::ServiceError::Handler(7u8).to_string(),
            "the handler answered with an error: 7"
        );
    }
}
