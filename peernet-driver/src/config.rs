//! How to build a node: [`NodeConfig`].

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peernet_proto::{Config, Identity, PeerId, ProtocolVersion, TrustList};

use crate::dirlock::{DirLock, NodeLock};
use crate::error::StartError;
use crate::persist::DataDir;

/// Setters for the protocol limits most applications tune.
macro_rules! protocol_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl NodeConfig {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> NodeConfig {
                    self.protocol.$name = value;
                    self
                }
            )*
        }
    };
}

protocol_setters! {
    /// The largest frame sent or accepted. Default 1 MiB; at least 150
    /// (the largest handshake frame), else [`StartError::Config`].
    /// Frame limits are not negotiated: a CALL that fits ours but not
    /// the peer's closes the connection (GOODBYE `protocol_error`), with
    /// every call in flight on it, so peers that exchange large
    /// payloads should agree on the limit.
    max_frame_len: u32;
    /// Inbound handshakes in progress at once (a connection holds its
    /// slot from accept). When every slot is taken, a new connection takes
    /// the slot of the oldest one that has not delivered a complete frame
    /// yet; only when there is none is its HELLO or INIT answered `busy`.
    /// Default 1024.
    max_handshakes: usize;
    /// Bytes the connections whose handshake is not finished may hold
    /// together for frames split across reads (a version-2 responder
    /// waits for the first record, which may be a whole frame, from a
    /// peer that has proven nothing). The connection whose bytes would
    /// pass it is closed (`HandshakeError::OverBudget`, logged at debug
    /// as "handshake failed"); established connections are never
    /// charged. Default 16 MiB, which is also the most those buffers
    /// hold (it was up to 1 GiB: 1,024 handshakes with a 1 MiB record
    /// each). Outside it, each handshake's reads: 4 KiB at a time, one
    /// of them at most held back while the node's outputs wait. At
    /// least 150 (a split INIT), else [`StartError::Config`].
    max_handshake_bytes: usize;
    /// Calls served at once per connection before further calls are
    /// answered `overloaded`. Default 1024.
    max_inbound_calls: usize;
    /// Our own calls in flight on one connection before `call` waits for
    /// one of them to finish (within its timeout). Default 4096.
    max_outbound_calls: usize;
    /// Bytes queued per connection before `call`/`send` wait for the
    /// writer (backpressure), and replies wait, charged to the byte
    /// budgets below. Default 1 MiB.
    send_buffer: usize;
    /// How long an accepted connection may take to deliver its first
    /// complete handshake frame. Default 2 s; at most `handshake_timeout`.
    first_frame_timeout: Duration;
    /// Bytes of inbound call and send arguments, and of results waiting
    /// for room in the send queue (a peer that does not read), one
    /// connection may hold: calls beyond are answered `overloaded`, sends
    /// dropped, and a result that would pass it is dropped and its call
    /// answered `overloaded`. Default 16 MiB.
    max_inbound_bytes_per_conn: usize;
    /// The same budget over the whole node. Default 256 MiB.
    max_inbound_bytes: usize;
    /// Time without sending anything after which a PING is sent. Default
    /// 15 s.
    ping_interval: Duration;
    /// Silence after which a peer is given up (GOODBYE `idle_timeout`).
    /// Default 45 s.
    idle_timeout: Duration;
}

/// The most events a subscriber of [`Node::events`](crate::Node::events)
/// may buffer ([`NodeConfig::events_capacity`]): each subscriber's buffer
/// is allocated whole, so a capacity of `usize::MAX` would make
/// `events()` fail and a few millions cost gigabytes per subscriber.
pub const MAX_EVENTS_CAPACITY: usize = 1 << 16;

/// How to build a [`Node`](crate::Node): its identity, whom it trusts, its limits and
/// timeouts.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub(crate) identity: Identity,
    pub(crate) trust: TrustList,
    pub(crate) protocol: Config,
    pub(crate) shutdown_grace: Duration,
    pub(crate) linger: Duration,
    pub(crate) events_capacity: usize,
    pub(crate) data_dir: Option<DataDir>,
    /// The data directory's trust list as its file holds it: what `pair`
    /// and `unpair` edit and save (not what `trust`/`trusting` add).
    pub(crate) saved_trust: TrustList,
    /// The data directory's lock, held from `from_data_dir` on, until the
    /// first node built from this config (or a clone of it) takes it: a
    /// second such node is refused, as a second process would be.
    pub(crate) dir_lock: Option<Arc<Mutex<Option<DirLock>>>>,
    pub(crate) listen_backlog: u32,
    /// Dialing by PeerId: see `dialing.rs`.
    pub(crate) dialing: crate::dialing::DialOptions,
}

impl NodeConfig {
    /// The whole handshake's budget. Default 10 s. Lowers
    /// `first_frame_timeout` to it if that was above.
    pub fn handshake_timeout(mut self, value: Duration) -> NodeConfig {
        self.protocol.handshake_timeout = value;
        let first = self.protocol.first_frame_timeout.min(value);
        self.protocol.first_frame_timeout = first;
        self
    }

    /// A node with this identity, trusting nobody yet, with the protocol's
    /// default limits and timeouts.
    pub fn new(identity: Identity) -> NodeConfig {
        NodeConfig {
            identity,
            trust: TrustList::new(),
            protocol: Config::default(),
            shutdown_grace: Duration::from_secs(5),
            linger: DEFAULT_LINGER,
            events_capacity: 1024,
            data_dir: None,
            saved_trust: TrustList::new(),
            dir_lock: None,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            dialing: crate::dialing::DialOptions::default(),
        }
    }

    /// Loads the identity (created with mode 0600 if there is none; never
    /// overwritten), the trust list and the address book from the
    /// directory `dir`; every later [`Node::pair`](crate::Node::pair) /
    /// [`Node::unpair`](crate::Node::unpair) is saved there atomically, and
    /// the address book whenever it changes (debounced). The directory
    /// is created (mode 0700) if it is missing, its parent never: a
    /// missing parent (a mistyped path) is [`StartError::Io`] of kind
    /// [`NotFound`](std::io::ErrorKind::NotFound), whose message names
    /// the path and says its parent does not exist, rather than a new
    /// node with a new identity that nobody trusts; a path that is not a
    /// directory (a file, a FIFO, a link to nothing) is refused, saying
    /// what it is ([`DataDir::open`]). `dir` is resolved now (a relative
    /// one from the working directory, every symbolic link in it
    /// followed): the node goes on using that directory if the process's
    /// working directory changes or a link in the path is re-pointed
    /// ([`DataDir::open`]).
    ///
    /// The directory's lock ([`DataDir::try_lock`]) is taken first and held
    /// by this config and then by its node, until the node has shut down
    /// (or its last handle is dropped): a second node, or a `peernet pair`
    /// next to it, gets [`StartError::Lock`] (`data directory in use`)
    /// instead of replacing the other's trust list or book. That holds for
    /// clones of this config too: the first node built from any of them
    /// takes the lock, a second one is refused.
    ///
    /// # A directory the node may not write
    ///
    /// A directory mounted read-only (a container's identity and trust
    /// list, often), or whose permissions deny this process writing it,
    /// still starts a node, if it holds an identity: the lock is taken
    /// through descriptors opened for reading (the directory's and the
    /// lock file's, see [`DataDir::try_lock`]), so a second node on it
    /// is refused all the same, and the node logs one warning. It runs
    /// with the trust list and book it loaded and saves nothing to the
    /// directory for the whole run, even if the directory becomes
    /// writable: a [`Node::pair`](crate::Node::pair) fails and changes
    /// nothing ([`TrustChangeError::File`], of kind
    /// [`ReadOnlyFilesystem`](std::io::ErrorKind::ReadOnlyFilesystem) or
    /// [`PermissionDenied`](std::io::ErrorKind::PermissionDenied): a
    /// trust granted for this run only is [`NodeConfig::trusting`]'s); a
    /// [`Node::unpair`](crate::Node::unpair) revokes the peer in this run
    /// and says its file was not updated
    /// ([`TrustChangeError::RevokedNotSaved`]); the address book's
    /// changes hold in memory, and no save of it is tried. A directory
    /// without an identity does not start a node: the identity cannot be
    /// created ([`StartError::Io`], naming the identity file).
    ///
    /// [`TrustChangeError::File`]: crate::TrustChangeError::File
    /// [`TrustChangeError::RevokedNotSaved`]: crate::TrustChangeError::RevokedNotSaved
    ///
    /// # Files edited while the node runs
    ///
    /// The node reads the trust list and the book at start, and never
    /// writes over an edit made since it read or last wrote them. A
    /// [`Node::pair`](crate::Node::pair) or `unpair` makes its change to
    /// the trust file as it is then, read again. A book save that finds
    /// the file edited reads it again: each peer whose lines the edit
    /// changed (an address added, removed or moved, a source or a
    /// `worked` or `worked failed` mark changed) keeps the
    /// operator's lines, written as they are by every later save of the
    /// run, whatever the node learns of that peer meanwhile; every other
    /// peer's lines are the running node's, and what it learns of them is
    /// saved as before. An unpair drops the operator's lines of the peer
    /// with its addresses (an edit of the peer read after the unpair
    /// too: a later `pair` starts it with what the node learns); lines of
    /// a peer that neither this run nor the trust file trusts are
    /// dropped, as at every save (the trust file as it is then, read
    /// again with the book: a peer added by hand to both keeps its
    /// lines). Comments and blank lines are not kept: every save writes
    /// the book in its own form, one line per address. The running node
    /// goes on dialing with the addresses it had: the next start loads
    /// the edit. A file that no longer loads (a line that does not parse,
    /// a FIFO, too large) is never written over: each save is refused
    /// with a warning that names the trouble, and tried again with the
    /// back-off (1 s doubling up to 5 minutes) until the file is mended;
    /// then its edit is kept as above. A book file deleted while the
    /// node runs is thrown away, not edited: the next save writes a fresh
    /// one with the addresses the running node holds, every peer's lines
    /// the node's (those an earlier edit of the run made the operator's
    /// too), and what it learns later is saved as before. To start from
    /// no saved address, delete the file while the node is stopped; to
    /// forget one peer's addresses while it runs, remove its lines (an
    /// edit: the peer keeps none for the run) or unpair it.
    ///
    /// A trust file removed while the node runs is not made again: a
    /// [`Node::pair`](crate::Node::pair) fails (naming the file, of kind
    /// [`NotFound`](std::io::ErrorKind::NotFound)) until it is put back or
    /// the node restarts, an `unpair` revokes and writes nothing; the
    /// [`persist`](crate::persist) module lists what becomes of a trust
    /// file made anything else.
    ///
    /// A trust file that names the node's own PeerId (a hand edit) does
    /// not stop the start: the entry is left out of
    /// the node's trust list, with a warning that names the file. It
    /// would do nothing (a node never trusts itself: the handshake
    /// refuses its own key), and it is not written back: the next
    /// [`Node::pair`](crate::Node::pair) or `unpair` writes the file
    /// without it.
    pub fn from_data_dir(dir: impl AsRef<Path>) -> Result<NodeConfig, StartError> {
        let data = DataDir::open(dir.as_ref())?;
        let lock = data.try_lock()?;
        if lock.read_only() {
            tracing::warn!(
                path = %crate::text::shown_path(data.path()),
                "the data directory is not writable: the node runs with the identity, trust \
                 list and address book it loads, and saves nothing to it (a pair fails, an \
                 unpair and the address book's changes hold in memory only, for this run)"
            );
        }
        let mut config = NodeConfig::new(data.load_or_create_identity()?);
        config.dir_lock = Some(Arc::new(Mutex::new(Some(lock))));
        config.trust = data.load_trust_of(&config.peer_id())?;
        config.saved_trust = config.trust.clone();
        config.dialing.book = data.load_book()?;
        config.data_dir = Some(data);
        Ok(config)
    }

    /// The data directory's lock for the node being built, taken out of
    /// the config (and its clones): [`LockError::InUse`] if a node built
    /// from one of them already took it.
    ///
    /// [`LockError::InUse`]: crate::LockError::InUse
    pub(crate) fn take_dir_lock(&self) -> Result<Option<Arc<NodeLock>>, StartError> {
        // (a lock slot comes with its directory: both from `from_data_dir`)
        let Some((slot, data)) = self.dir_lock.as_ref().zip(self.data_dir.as_ref()) else {
            return Ok(None);
        };
        let lock = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match lock {
            Some(lock) => Ok(Some(Arc::new(NodeLock::new(lock)))),
            None => Err(StartError::Lock(data.in_use())),
        }
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// The trust list the node starts with.
    pub fn trust_list(&self) -> &TrustList {
        &self.trust
    }

    /// Replaces the trust list, for this run: with a data directory,
    /// [`Node::pair`](crate::Node::pair) and `unpair` save the
    /// directory's own list with their change, never this one. An entry
    /// of the node's own PeerId is left out (a node never trusts itself).
    pub fn trust(mut self, mut trust: TrustList) -> NodeConfig {
        trust.remove(&self.peer_id());
        self.trust = trust;
        self
    }

    /// Trusts one more peer, for this run: with a data directory,
    /// [`Node::pair`](crate::Node::pair) and `unpair` save the
    /// directory's own list with their change, so this peer is never
    /// written to its trust file. The node's own PeerId is left out (a
    /// node never trusts itself), here and in [`NodeConfig::trust`]: it
    /// changes nothing, and [`NodeConfig::trust_list`] does not show it.
    /// A peer trusted already (by the data directory's trust file, or
    /// [`NodeConfig::trust`]) keeps its label.
    pub fn trusting(mut self, peer: PeerId) -> NodeConfig {
        if peer != self.peer_id() && !self.trust.contains(&peer) {
            self.trust.insert(peer, None);
        }
        self
    }

    /// All protocol limits and timeouts at once (see [`Config`]). It
    /// replaces every one of them, the protocol version included: call it
    /// before the setters of single limits (`max_frame_len`,
    /// `protocol_version`, ...), whose values it would otherwise undo.
    pub fn protocol(mut self, protocol: Config) -> NodeConfig {
        self.protocol = protocol;
        self
    }

    /// The protocol version the node speaks, dialing and accepting.
    /// Default [`ProtocolVersion::V2`] (encrypted); version 1 is the opt-in
    /// for trusted networks and streams that are already encrypted. A node
    /// answers the other version with REJECT `unsupported_version`.
    pub fn protocol_version(mut self, version: ProtocolVersion) -> NodeConfig {
        self.protocol.version = version;
        self
    }

    /// How long [`Node::shutdown`](crate::Node::shutdown) lets running handlers finish. Default
    /// 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> NodeConfig {
        self.shutdown_grace = grace;
        self
    }

    /// How long a closed connection may take to let go of its socket:
    /// it goes on writing what it still means to (its last bytes, the
    /// GOODBYE last), and then reading and discarding until the peer ends
    /// its side, so that the peer reads our GOODBYE before the socket
    /// closes under bytes still arriving (which would reset it). When the
    /// linger ends the writer and the reader stop wherever they are, and
    /// the socket, its descriptor and every queued byte are released: a
    /// peer that never reads cannot hold them longer. Default 2 s.
    ///
    /// Longer, a peer behind a full queue on a slow link has more time to
    /// read its GOODBYE, and closed connections hold their sockets (and
    /// their share of the linger budget) longer; shorter, the reverse. A
    /// connection that closes cleanly (the peer reads our GOODBYE and ends
    /// its side) holds nothing for the linger, whatever it is. Zero is
    /// refused at start ([`StartError::Linger`]): a close would stop the
    /// writer before its GOODBYE.
    ///
    /// Only an established connection lingers longer than the default: one
    /// closed in its handshake (a stranger refused, a handshake that
    /// failed) lingers at most 2 s whatever this is, so that a long linger
    /// gives nobody the node has not trusted a longer hold on its sockets
    /// (a source may fail handshakes at 8 a second, each socket held for
    /// the linger by a peer that keeps its end open).
    ///
    /// [`Node::shutdown`](crate::Node::shutdown) does not cut it short: it
    /// waits for the goodbyes to be written, not for the peers to end
    /// their side, so a connection whose peer keeps its end open lingers
    /// on after the shutdown returned, for as long as the runtime runs.
    pub fn linger(mut self, linger: Duration) -> NodeConfig {
        self.linger = linger;
        self
    }

    /// Events buffered per subscriber of [`Node::events`](crate::Node::events),
    /// allocated whole when it subscribes. Default 1024; 0 is taken as 1;
    /// over [`MAX_EVENTS_CAPACITY`] the node refuses to start
    /// ([`StartError::EventsCapacity`]).
    pub fn events_capacity(mut self, capacity: usize) -> NodeConfig {
        self.events_capacity = capacity.max(1);
        self
    }

    /// The listener's accept queue: connections the kernel completes and
    /// holds until the node accepts them ([`Node::bind`](crate::Node::bind)).
    /// A burst beyond it is refused by the kernel. Default 1,024 (the
    /// operating system's default is often 128); at least 1; the kernel
    /// may cap it (`net.core.somaxconn` on Linux).
    pub fn listen_backlog(mut self, backlog: u32) -> NodeConfig {
        self.listen_backlog = backlog.max(1);
        self
    }

    /// Accepted handshakes in progress from one source (an IPv4 address or
    /// an IPv6 /64) before further connections from it are closed at once,
    /// unread, with a TCP reset (no `TIME_WAIT` is left behind; see
    /// [`Socket::reset`](crate::Socket::reset)). Keeps one address holding idle sockets from taking every
    /// one of the `max_handshakes` slots and locking every other peer out.
    /// Default 32; at least 1. Each handshake in progress also counts
    /// against [`NodeConfig::failed_handshakes_per_source`]'s burst until
    /// it ends (it may yet fail), so to let one source have more in
    /// parallel, raise both.
    pub fn handshakes_per_source(mut self, limit: usize) -> NodeConfig {
        self.protocol.source_limits.handshakes = limit.max(1);
        self
    }

    /// Failed handshakes one source (an IPv4 address or an IPv6 /64) may
    /// cause: `burst` at once, then `per_second`. Each handshake that
    /// fails is charged to its source, and each one still in progress
    /// counts as a charge it may yet owe; a source that owes `burst`
    /// charges has further connections reset at once, unread, and its
    /// charges are paid off at `per_second` (one more connection
    /// `1 / per_second` later; a rate above a billion per second is
    /// no limit). So however many connections a source opens, in parallel or
    /// in a loop, at most `burst + per_second × seconds` of its handshakes
    /// fail, while a source whose handshakes succeed is held back only by
    /// [`NodeConfig::handshakes_per_source`], so that many peers behind
    /// one NAT are not. Counted in
    /// [`NodeStats::throttled_connections`](crate::NodeStats).
    ///
    /// A failure is any accepted handshake that does not give a
    /// connection, except those this node caused (`busy`, shutdown, an
    /// unpairing, a connection superseded). The limit bounds the
    /// handshake work one address can make the node do for nothing: an
    /// untrusted peer that knows our PeerId costs two X25519 operations
    /// per attempt, and could otherwise repeat them as fast as it can open
    /// connections. Default 8 per second after a burst of 32; each at
    /// least 1.
    pub fn failed_handshakes_per_source(mut self, per_second: u32, burst: u32) -> NodeConfig {
        self.protocol.source_limits.failures_per_second = per_second.max(1);
        self.protocol.source_limits.failure_burst = burst.max(1);
        self
    }

    /// A node-wide limit on the failed handshakes of sources (IPv4
    /// addresses, IPv6 /64s) that have not completed a handshake within
    /// a week: `burst` at once, then `per_second`; off by default
    /// ([`SourceLimits::node_failures`](peernet_proto::SourceLimits::node_failures)).
    /// [`NodeConfig::failed_handshakes_per_source`] bounds what one
    /// address costs, not what many cost together: a refused version-2
    /// INIT costs about 300 µs of X25519 and AEAD work, so a flood from
    /// some 700 addresses at the per-source default keeps a core busy, and
    /// one host with an IPv6 /48 has 65,536 sources. With this limit, once
    /// strangers' failures reach it, a connection from a stranger is reset
    /// at accept, unread, as the per-source limits do, while sources a
    /// trusted peer completed a handshake from (up to 4,096, the least
    /// recent forgotten first) are accepted as before.
    ///
    /// What it costs: during such a flood, a trusted peer dialing from an
    /// address it has not connected from lately (its first connection, a
    /// new address) is refused like the flood until the flood's rate falls
    /// under the limit. Suggested: 200 a second after 400
    /// ([`NodeFailureLimit::SUGGESTED`](peernet_proto::NodeFailureLimit::SUGGESTED),
    /// about 6 % of one core). Each at least 1 (0 counts as 1). Counted in
    /// [`NodeStats::throttled_connections`](crate::NodeStats) and, alone,
    /// in `NodeStats::core.counters.refused_node_wide`.
    pub fn failed_handshakes_node_wide(mut self, per_second: u32, burst: u32) -> NodeConfig {
        self.protocol.source_limits.node_failures = Some(peernet_proto::NodeFailureLimit::new(
            per_second.max(1),
            burst.max(1),
        ));
        self
    }

    /// Inbound connections one trusted peer may establish: `burst` at
    /// once, then `per_second`. A peer is trusted, not harmless: each
    /// handshake it completes costs this node a key generation and four
    /// X25519 operations (version 2; a signature and two verifications in
    /// version 1), and success is never charged to its source, so one
    /// peer reconnecting in a loop could keep a core busy. Past its burst
    /// its HELLO or INIT is refused with REJECT `busy` (the peer's dial
    /// fails with `Rejected(busy)`: try later) before any more work, and
    /// the refusal counts as a failure of its source
    /// ([`NodeConfig::failed_handshakes_per_source`]), so a peer that
    /// keeps trying is soon reset at accept. Only established connections
    /// are charged, so nobody can spend a peer's budget by naming it.
    /// Counted in `HandshakeCounts::throttled` ([`crate::Node::stats`]:
    /// `core.counters.handshakes_in.throttled`).
    /// Default 20 per second after a burst of 64 (a rate above a billion
    /// per second is no limit); each at least 1.
    pub fn connects_per_peer(mut self, per_second: u32, burst: u32) -> NodeConfig {
        self.protocol.peer_connects.per_second = per_second.max(1);
        self.protocol.peer_connects.burst = burst.max(1);
        self
    }
}

/// The default of [`NodeConfig::linger`].
pub(crate) const DEFAULT_LINGER: Duration = Duration::from_secs(2);

/// The default of [`NodeConfig::listen_backlog`].
pub(crate) const DEFAULT_LISTEN_BACKLOG: u32 = 1024;
