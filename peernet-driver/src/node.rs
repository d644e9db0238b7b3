//! The async `Node`: what an application holds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use peernet_proto::{
    Access, CallError, CallId, Direction, Endpoint, InvalidHandle, Label, PeerId, SendError,
    TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::access;
use crate::addr::PeerAddr;
use crate::config::{MAX_EVENTS_CAPACITY, NodeConfig};
use crate::context::Context;
use crate::error::{ConnectError, StartError};
use crate::events::EventStream;
use crate::handlers::{self, HandlerResult};
use crate::lifecycle::{self, Life};
use crate::runtime::{Runtime, WrapStream};
use crate::shared::{Inner, Phase, Shared};
use crate::stats::NodeStats;
use crate::tasks::{self, Role, first};

/// One peernet node: an optional listener, its connections (at most one
/// per peer), its exposed handles.
///
/// Cheap to clone. When the last clone is dropped the node closes every
/// connection at once (GOODBYE `normal`); [`Node::shutdown`] closes it
/// gracefully. A handler that holds a clone of its own node keeps it alive:
/// call `shutdown` then.
pub struct Node<R: Runtime> {
    pub(crate) shared: Arc<Shared<R>>,
    life: Arc<Life<R>>,
    peer_id: PeerId,
    /// The listener's backlog ([`NodeConfig::listen_backlog`]).
    backlog: u32,
    grace: Duration,
    events_capacity: usize,
}

/// A handle that does not keep its node open, for a task that serves the
/// node for as long as the application keeps it (LAN discovery): once the
/// last [`Node`] is gone the node closes, and [`WeakNode::upgrade`] says
/// so.
#[cfg(feature = "mdns")]
pub(crate) struct WeakNode<R: Runtime> {
    /// (the node's state comes with its `Life`, which holds it)
    life: std::sync::Weak<Life<R>>,
    peer_id: PeerId,
    backlog: u32,
    grace: Duration,
    events_capacity: usize,
}

#[cfg(feature = "mdns")]
impl<R: Runtime> WeakNode<R> {
    /// The node, while the application holds it.
    pub(crate) fn upgrade(&self) -> Option<Node<R>> {
        let life = self.life.upgrade()?;
        Some(Node {
            shared: life.0.clone(),
            life,
            peer_id: self.peer_id,
            backlog: self.backlog,
            grace: self.grace,
            events_capacity: self.events_capacity,
        })
    }
}

#[cfg(feature = "mdns")]
impl<R: Runtime> Node<R> {
    /// A [`WeakNode`] of this node.
    pub(crate) fn downgrade(&self) -> WeakNode<R> {
        WeakNode {
            life: Arc::downgrade(&self.life),
            peer_id: self.peer_id,
            backlog: self.backlog,
            grace: self.grace,
            events_capacity: self.events_capacity,
        }
    }
}

impl<R: Runtime> Clone for Node<R> {
    fn clone(&self) -> Self {
        Node {
            shared: self.shared.clone(),
            life: self.life.clone(),
            peer_id: self.peer_id,
            backlog: self.backlog,
            grace: self.grace,
            events_capacity: self.events_capacity,
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

/// A call in flight: if the caller stops waiting (drops the future), the
/// call is cancelled in the core and CANCEL tells the callee.
struct Pending<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    id: Option<CallId>,
}

impl<R: Runtime> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.shared.with_core(|inner, now| {
                inner.calls.forget(id);
                inner.ep.cancel(now, id)
            });
        }
    }
}

impl<R: Runtime> Node<R> {
    /// Starts a node listening on `addr` (port 0 picks a free port; see
    /// [`Node::local_addr`]), on the runtime the caller is on.
    ///
    /// Peers can connect as soon as this returns, before the application
    /// has exposed anything: a call in between is answered
    /// `no_such_handle`. A restarted node whose peers keep it connected
    /// (they redial at once, with the calls they queued meanwhile) should
    /// therefore start with [`Node::new`], expose its handles, then
    /// [`Node::listen`].
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] for limits that break a rule of
    /// [`peernet_proto::Config::validate`], [`StartError::Lock`] when the
    /// config's data directory lock was taken by another node,
    /// [`StartError::Io`] when `addr` cannot be bound, and
    /// [`StartError::Entropy`] without randomness from the OS.
    pub async fn bind(config: NodeConfig, addr: SocketAddr) -> Result<Node<R>, StartError> {
        Node::bind_with(R::default(), config, addr).await
    }

    /// Starts a node without a listener, on the runtime the caller is on:
    /// it dials, or takes streams the application opened
    /// ([`Node::accept_stream`], [`Node::connect_stream`]), or listens
    /// later ([`Node::listen`]).
    ///
    /// # Panics
    ///
    /// If the operating system has no randomness to give, or the protocol
    /// configuration is invalid (see [`Node::try_new`] for an error
    /// instead).
    pub fn new(config: NodeConfig) -> Node<R> {
        Node::new_with(R::default(), config)
    }

    /// [`Node::new`], with an error instead of a panic (see
    /// [`Node::try_new_with`]).
    pub fn try_new(config: NodeConfig) -> Result<Node<R>, StartError> {
        Node::try_new_with(R::default(), config)
    }

    /// [`Node::bind`] on a given runtime handle.
    pub async fn bind_with(
        rt: R,
        config: NodeConfig,
        addr: SocketAddr,
    ) -> Result<Node<R>, StartError> {
        let node = Node::try_new_with(rt, config)?;
        node.listen(addr).await?;
        Ok(node)
    }

    /// Starts accepting connections on `addr` (port 0 picks a free port);
    /// returns the address bound. For a node made with [`Node::new`]:
    /// expose the handles first, then listen, and no peer can call before
    /// its handler is there.
    ///
    /// # Errors
    ///
    /// [`StartError::AlreadyListening`] when the node has a listener
    /// already (one per node); [`StartError::Closed`] after
    /// [`Node::shutdown`]; [`StartError::Io`] when binding fails.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, StartError> {
        let refused = |shared: &Shared<R>| {
            if shared.read(|inner| inner.phase) != Phase::Running {
                Some(StartError::Closed)
            } else if shared.local_addr.get().is_some() {
                Some(StartError::AlreadyListening)
            } else {
                None
            }
        };
        if let Some(error) = refused(&self.shared) {
            return Err(error);
        }
        let listener = self.shared.rt.bind(addr, self.backlog).await?;
        let local = R::local_addr(&listener)?;
        // (checked again: another `listen`, or a shutdown, while binding)
        if let Some(error) = refused(&self.shared) {
            return Err(error);
        }
        if self.shared.local_addr.set(local).is_err() {
            return Err(StartError::AlreadyListening);
        }
        let accept = tasks::accept_loop(self.shared.clone(), listener);
        self.shared.rt.spawn(accept);
        tracing::info!(peer = %self.peer_id, addr = %local, "listening");
        Ok(local)
    }

    /// [`Node::new`] on a given runtime handle.
    ///
    /// # Panics
    ///
    /// If the operating system has no randomness to give, or the protocol
    /// configuration is invalid.
    pub fn new_with(rt: R, config: NodeConfig) -> Node<R> {
        match Node::try_new_with(rt, config) {
            Ok(node) => node,
            Err(error) => panic!("cannot start a peernet node: {error}"),
        }
    }

    /// [`Node::new_with`], with an error when the protocol configuration
    /// breaks a rule of [`peernet_proto::Config::validate`] or the operating
    /// system has no randomness to seed the node's RNG (nonces, request ids).
    pub fn try_new_with(rt: R, config: NodeConfig) -> Result<Node<R>, StartError> {
        config.protocol.validate()?;
        if config.events_capacity > MAX_EVENTS_CAPACITY {
            return Err(StartError::EventsCapacity(config.events_capacity));
        }
        let rng = ChaCha20Rng::try_from_rng(&mut getrandom::SysRng).map_err(StartError::Entropy)?;
        let dir_lock = config.take_dir_lock()?;
        let peer_id = config.identity.peer_id();
        let backlog = config.listen_backlog;
        let ep = Endpoint::new(
            config.protocol,
            config.identity,
            config.trust,
            Box::new(rng),
        );
        let shared = Arc::new(Shared::new(
            rt,
            Inner::new(ep),
            config.data_dir,
            dir_lock,
            config.saved_trust,
        ));
        shared.rt.spawn(tasks::timer(shared.clone()));
        crate::dialing::start(&shared, config.dialing);
        Ok(Node {
            life: Arc::new(Life(shared.clone())),
            shared,
            peer_id,
            backlog,
            grace: config.shutdown_grace,
            events_capacity: config.events_capacity,
        })
    }

    /// This node's PeerId: its address.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The address the listener is bound to (`None` without a listener).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// The runtime handle the node runs on.
    pub fn runtime(&self) -> &R {
        &self.shared.rt
    }

    // ----- exposure -----

    /// Exposes `handle` to every trusted peer. `handler` runs for each call
    /// with the caller's proven PeerId and the arguments. `Err(bytes)`
    /// reaches the caller as `CallError::HandlerError(bytes)`; a handler
    /// that panics answers `handler_panicked` and the connection lives.
    /// For CBOR-typed arguments and results, wrap the handler in
    /// [`cbor_handler`](crate::cbor_handler); for the call's deadline and
    /// cancellation signal, expose it with [`Node::expose_ctx`].
    ///
    /// A handler that finishes on its first poll costs no task. One that
    /// waits runs as a task of its own, which a CANCEL (or the caller's
    /// timeout, or the connection's end) stops. A peer has at most
    /// `max_inbound_calls` of each running: a CALL beyond is answered
    /// `overloaded`, a SEND beyond is dropped ([`Node::dropped_sends`]).
    ///
    /// A panic is caught, but only after the process's panic hook has run
    /// on the thread that polled the handler: the default hook writes to
    /// stderr and, with `RUST_BACKTRACE` set, captures and prints a
    /// backtrace, which costs far more than answering the call (the
    /// symbols are read from the binary's debug information). A peer
    /// allowed to call a handler that can panic can make the node do that
    /// work in a loop; this node logs such panics rate-limited per peer,
    /// but the hook is the application's: install one that stays quiet
    /// for handler panics if that matters.
    ///
    /// # Errors
    ///
    /// [`InvalidHandle`] for an empty name or one over 255 bytes (the
    /// same for every `expose` method). On a node already closed (shut
    /// down, or its last handle dropped) nothing is installed: the handler
    /// (and a rule) are dropped at once, and `Ok` is returned.
    pub fn expose<F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.expose_to(handle, Access::Anyone, handler)
    }

    /// Exposes `handle` to the trusted peers `access` allows (a set, or a
    /// rule over the caller's PeerId: [`Access::rule`]); others get
    /// `forbidden`.
    ///
    /// A rule runs as each call arrives, under the node's lock: it must
    /// be quick and self-contained (capture what it needs). A rule that
    /// panics, or that calls back into the node, denies the call and is
    /// logged at `error`; the connection and the node go on serving.
    pub fn expose_to<F, Fut>(
        &self,
        handle: &str,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.install(handle, access, handlers::boxed(handler))
    }

    /// [`Node::expose`] with a handler that gets the call's [`Context`]:
    /// the caller, what is left of its timeout (to hand on to nested calls,
    /// see [`Node::call_in`]), a cancellation signal, and whether it is a
    /// CALL or a SEND.
    ///
    /// ```no_run
    /// # async fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>, store: peernet_driver::PeerId) {
    /// let inner = node.clone();
    /// node.expose_ctx("lookup", move |ctx, key| {
    ///     let node = inner.clone();
    ///     // asks `store` within what is left of our caller's budget
    ///     async move { node.call_in(&ctx, &store, "get", key).await.map_err(|_| "store".into()) }
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn expose_ctx<F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.expose_ctx_to(handle, Access::Anyone, handler)
    }

    /// [`Node::expose_to`] with a handler that gets the call's [`Context`]
    /// (see [`Node::expose_ctx`]).
    pub fn expose_ctx_to<F, Fut>(
        &self,
        handle: &str,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.install(handle, access, handlers::boxed_ctx(handler))
    }

    fn install(
        &self,
        handle: &str,
        access: Access,
        handler: handlers::DynHandler,
    ) -> Result<(), InvalidHandle> {
        peernet_proto::Handle::new(handle)?;
        let access = access::contained(handle, access);
        // (a handler replaced is dropped after the lock: its captured
        // state is the application's, and its drop may take the lock)
        let mut refused = None;
        let replaced = self.shared.with_core(|inner, _| {
            if inner.phase == Phase::Closed {
                // Nothing is served any more, and what it would keep (a
                // handle of this node, say) would keep the closed node's
                // state alive for good: it goes, after the lock.
                refused = Some((access, handler));
                return Ok(None);
            }
            inner.ep.expose(handle, access)?;
            Ok(inner.handlers.insert(handle.to_owned(), handler))
        })?;
        drop((replaced, refused));
        Ok(())
    }

    /// Closes `handle`: later calls get `no_such_handle`; calls already
    /// running finish. Returns false if it was not exposed.
    pub fn unexpose(&self, handle: &str) -> bool {
        let (removed, was) = self
            .shared
            .with_core(|inner, _| (inner.handlers.remove(handle), inner.ep.unexpose(handle)));
        // (after the lock, as in `install`)
        drop(removed);
        was
    }

    // ----- trust -----

    /// Trusts `peer` (or relabels it). With a data directory the new list
    /// is written first, atomically, on the runtime's blocking pool (the
    /// write ends with fsyncs); on a write error nothing changes. The
    /// change is made to the trust file as it is then, read again: an
    /// edit made by hand while the node runs is kept (the running node
    /// takes it in at its next start), and a file that no longer parses
    /// is left alone (the change fails, [`io::ErrorKind::InvalidData`]).
    /// Returns true if `peer` was not trusted before.
    pub async fn pair(&self, peer: PeerId, label: Option<Label>) -> io::Result<bool> {
        let saved = label.clone();
        self.change_trust(
            Commit::OnceSaved,
            move |trust| trust.insert(peer, saved),
            move |inner, _, _| inner.ep.pair(peer, label),
            move |shared| crate::dialing::after_pair(shared, peer),
        )
        .await
    }

    /// Stops trusting `peer`: its connection closes at once with GOODBYE
    /// `revoked`, its calls in flight fail with that reason
    /// ([`CallErrorExt::is_revoked`](crate::CallErrorExt::is_revoked)),
    /// the handlers of its SENDs still running are stopped (their contexts
    /// cancelled), and its addresses are forgotten. With a data directory the new
    /// list is written first, atomically, on the runtime's blocking pool,
    /// as for [`Node::pair`] (an edit made by hand meanwhile is kept). A
    /// revocation is never held up by the file: if it cannot be read or
    /// written (damaged, a FIFO, a symbolic link, a full disk), the peer
    /// is revoked in this run all the same and the error says that the
    /// file still trusts it.
    ///
    /// Returns true if `peer` was trusted by this run or by the data
    /// directory's trust file: a peer the file trusts and this run left
    /// out ([`NodeConfig::trust`](crate::NodeConfig::trust)) is taken out
    /// of the file, and its saved addresses, kept aside during the run,
    /// are dropped from the address book file too (a later `pair` starts
    /// it without them). False: nothing changed.
    pub async fn unpair(&self, peer: &PeerId) -> io::Result<bool> {
        let peer = *peer;
        self.change_trust(
            Commit::Always,
            move |trust| trust.remove(&peer),
            move |inner, now, in_file| {
                if inner.stop_sends_of(&peer) {
                    tracing::debug!(%peer, "unpaired: its send handlers stopped");
                }
                inner.ep.unpair(now, &peer) | in_file
            },
            move |shared| {
                shared.read(|inner| shared.maybe_quiet(inner));
                crate::dialing::after_unpair(shared, peer);
            },
        )
        .await
    }

    /// One trust-list change: `edit` on the list as saved (with a data
    /// directory, written by a blocking task, the directory's lock held;
    /// it returns whether it changed that list), then `apply` to the
    /// core (told whether the saved list changed: never without a data
    /// directory), then `after`. Changes are serialised by
    /// an async lock held across the write, so the file and the core
    /// always agree; and each runs as a task of its own, so that a caller
    /// that stops waiting (a timeout, a `select!`) cannot leave the file
    /// changed and the core not. Once the node is closed its data
    /// directory is no longer its own: the change fails and nothing
    /// changes.
    async fn change_trust<T: Send + 'static>(
        &self,
        commit: Commit,
        edit: impl FnOnce(&mut TrustList) -> bool + Send + 'static,
        apply: impl FnOnce(&mut Inner, peernet_proto::Instant, bool) -> T + Send + 'static,
        after: impl FnOnce(&Arc<Shared<R>>) + Send + 'static,
    ) -> io::Result<T> {
        let shared = self.shared.clone();
        let (tx, rx) = oneshot::channel();
        self.shared.rt.spawn(async move {
            let (changed, applied) = change_trust(&shared, commit, edit, apply).await;
            if applied {
                after(&shared);
            }
            let _ = tx.send(changed);
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the runtime dropped the trust change")))
    }

    /// The trust list.
    pub fn trust(&self) -> TrustList {
        self.shared.read(|inner| inner.ep.trust().clone())
    }

    // ----- connections -----

    /// Whether `peer` has an established connection.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.shared.read(|inner| inner.ep.is_connected(peer))
    }

    /// The peers with an established connection, in PeerId order.
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared.read(|inner| inner.ep.peers().collect())
    }

    /// The core's gauges and counters ([`Stats`](peernet_proto::Stats): connections, calls in
    /// flight, bytes held; handshakes and calls by outcome, refusals,
    /// bytes and records in and out, supersedes) and the driver's own
    /// counters. Its `Display` is a readable summary.
    pub fn stats(&self) -> NodeStats {
        let (core, event_streams) = self
            .shared
            .read(|inner| (inner.ep.stats(), inner.subscribers.len()));
        NodeStats {
            event_streams,
            lingering_bytes: self.shared.lingering.load(Ordering::Acquire),
            core,
            dropped_sends: self.dropped_sends(),
            dropped_events: self.dropped_events(),
            refused_connections: core.counters.refused_at_accept,
            throttled_connections: core.counters.throttled_at_accept,
            connect_waiters: self.shared.dialing.waiting(),
            calls_timed_out_unsent: self.shared.calls_timed_out_unsent.load(Ordering::Relaxed),
        }
    }

    /// A new subscription to connection events, from now on.
    pub fn events(&self) -> EventStream {
        let (tx, rx) = async_channel::bounded(self.events_capacity);
        self.shared.with_core(|inner, _| {
            // (those dropped since the last event: each holds a queue of
            // `events_capacity` slots, and a quiet node may see no event
            // for a long time)
            inner.subscribers.retain(|tx| !tx.is_closed());
            inner.subscribers.push(tx);
        });
        rx
    }

    /// Events that subscribers missed because they lagged.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// SENDs from peers that were dropped because that peer already had
    /// `max_inbound_calls` send handlers running (see [`Node::expose`]).
    /// Those dropped because a byte budget was full are counted in
    /// [`Counters::sends_dropped`](peernet_proto::Counters::sends_dropped).
    pub fn dropped_sends(&self) -> u64 {
        self.shared.dropped_sends.load(Ordering::Relaxed)
    }

    /// Accepted connections closed at once, unread, because their source
    /// address already had [`NodeConfig::handshakes_per_source`]
    /// handshakes in progress.
    pub fn refused_connections(&self) -> u64 {
        self.shared
            .read(|inner| inner.ep.counters().refused_at_accept)
    }

    /// Dials `peer` at `addr` over TCP. Resolves when the handshake
    /// completes, or at once if `peer` is already connected. When both
    /// peers dial each other at once, both calls resolve `Ok` on the one
    /// connection that survives.
    ///
    /// The dialer may call at once; the peer has the connection (and
    /// reports [`NodeEvent::Connected`](crate::NodeEvent::Connected)) when
    /// our PROOF reaches it, half a round trip later, and until then its
    /// own calls to us fail with `NotConnected`.
    ///
    /// `addr` is a [`SocketAddr`] (IPv4 or IPv6) or a `"host:port"` string
    /// (see [`PeerAddr`]): a host name is resolved by the runtime first
    /// (the resolver's own timeouts apply), then each of its addresses is
    /// tried in turn within the handshake's budget.
    ///
    /// Once connected through it, the address is recorded in the address
    /// book (source `Application`; for a host name, the address that
    /// opened), so that [`Node::connect_peer`] and
    /// [`Node::keep_connected`] find the peer there later. A peer
    /// connected already resolves at once, and nothing is recorded: the
    /// address was not tried.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Start`] before any I/O (the peer is not trusted, the
    /// node is shutting down, ...), [`ConnectError::Io`] when no TCP
    /// connection opened (or the name did not resolve), and
    /// [`ConnectError::Handshake`] with why the handshake failed (refused
    /// or rejected with a REJECT code, the wrong peer, a timeout).
    pub async fn connect(
        &self,
        peer: PeerId,
        addr: impl Into<PeerAddr>,
    ) -> Result<PeerId, ConnectError> {
        let (connected, opened) = self.dial_to(peer, addr.into(), false).await?;
        if let Some(addr) = opened {
            self.learned(peer, addr);
        }
        Ok(connected)
    }

    /// Dials `peer` at `addr` even when it is connected: when the new
    /// connection is established it replaces the old one (PROTOCOL.md
    /// section 4: same initiator, the newer survives), whose calls in
    /// flight fail with GOODBYE `superseded`. For an application that
    /// suspects its connection is half-open.
    ///
    /// # Errors
    ///
    /// As [`Node::connect`].
    pub async fn reconnect(
        &self,
        peer: PeerId,
        addr: impl Into<PeerAddr>,
    ) -> Result<PeerId, ConnectError> {
        Ok(self.dial_to(peer, addr.into(), true).await?.0)
    }

    /// Resolves `addr` (unless `peer` is connected and `again` is false),
    /// then dials. Also returns the address that opened the connection,
    /// if one did (none when the peer was connected already).
    async fn dial_to(
        &self,
        peer: PeerId,
        addr: PeerAddr,
        again: bool,
    ) -> Result<(PeerId, Option<SocketAddr>), ConnectError> {
        let addrs = match addr {
            PeerAddr::Socket(addr) => return self.dial_addrs(peer, &[addr], again).await,
            _ if !again && self.is_connected(&peer) => return Ok((peer, None)),
            addr => addr.resolve(&self.shared.rt).await?,
        };
        self.dial_addrs(peer, &addrs, again).await
    }

    /// Dials `peer` at the first of `addrs` that opens (not empty).
    async fn dial_addrs(
        &self,
        peer: PeerId,
        addrs: &[SocketAddr],
        again: bool,
    ) -> Result<(PeerId, Option<SocketAddr>), ConnectError> {
        // The core decides whether to dial (trust, shutdown) and starts the
        // handshake's budget before the transport is opened.
        let started = self.shared.with_core(|inner, now| {
            if !again && inner.ep.is_connected(&peer) {
                return Ok(None);
            }
            let conn = inner.ep.connect(now, Some(peer))?;
            let (signals, done) =
                tasks::register(inner, conn, Direction::Outbound, addrs.first().copied());
            Ok::<_, ConnectError>(Some((conn, signals, done)))
        })?;
        match started {
            None => Ok((peer, None)),
            Some((conn, signals, done)) => {
                tasks::dial_any(&self.shared, conn, signals, addrs, done).await
            }
        }
    }

    /// Runs the handshake as initiator over a stream the application
    /// opened itself (a Unix socket, a TLS stream, a relayed stream), in
    /// the runtime's own stream type. `peer` is the PeerId expected on the
    /// other end (`None`: any trusted peer). Resolves with the proven peer.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Start`] before the handshake (the node is shutting
    /// down, `peer` is not trusted), [`ConnectError::Handshake`] with why
    /// it failed; the stream is dropped either way.
    pub async fn connect_stream<S>(
        &self,
        stream: S,
        peer: Option<PeerId>,
    ) -> Result<PeerId, ConnectError>
    where
        R: WrapStream<S>,
    {
        let done = tasks::start_conn(&self.shared, R::wrap(stream), Role::Dial(peer))?;
        tasks::handshake(done).await
    }

    /// Runs the handshake as responder over a stream the application
    /// accepted itself. Resolves with the proven peer.
    ///
    /// # Errors
    ///
    /// As [`Node::connect_stream`].
    pub async fn accept_stream<S>(&self, stream: S) -> Result<PeerId, ConnectError>
    where
        R: WrapStream<S>,
    {
        let done = tasks::start_conn(&self.shared, R::wrap(stream), Role::Accept)?;
        tasks::handshake(done).await
    }

    /// Closes the connection to `peer` with GOODBYE `normal`. Returns
    /// false if there was none. A peer kept connected
    /// ([`Node::keep_connected`]) is redialed after the backoff's delay,
    /// as after any loss; stop keeping it first to close for good.
    pub fn disconnect(&self, peer: &PeerId) -> bool {
        self.shared
            .with_core(|inner, now| inner.ep.disconnect(now, peer))
    }

    // ----- calls -----

    /// Calls `handle` on `peer` and waits for the reply, at most `timeout`
    /// (a `Duration`, or `None` for no limit). When the connection's send
    /// queue is full the call first waits for room, within the same
    /// timeout; when `peer` is kept connected ([`Node::keep_connected`])
    /// but not connected at the moment, it first waits for the reconnect,
    /// within the same timeout (unless
    /// [`NodeConfig::wait_for_reconnect`](crate::NodeConfig::wait_for_reconnect)
    /// is off). Dropping the future cancels the call (CANCEL is sent).
    ///
    /// A small result (at most 512 bytes) may share a buffer of at most
    /// 4 KiB with the other payloads its record or read brought, and
    /// keeps it alive while held: to keep a few small results of many
    /// calls, copy them (`Bytes::copy_from_slice`).
    ///
    /// # Errors
    ///
    /// Before anything is sent: [`CallError::NotConnected`] (no connection
    /// to `peer`, and none awaited), [`CallError::InvalidHandle`] (empty,
    /// or over 255 bytes), [`CallError::MessageTooLarge`] (over our
    /// `max_frame_len`). From the callee: [`CallError::NoSuchHandle`] and
    /// [`CallError::Forbidden`] (not exposed at all, or not to us),
    /// [`CallError::HandlerError`],
    /// [`CallError::HandlerPanicked`], [`CallError::Overloaded`],
    /// [`CallError::ShuttingDown`], [`CallError::ResultTooLarge`]. Then
    /// [`CallError::Timeout`], and [`CallError::ConnectionClosed`] with
    /// the reason (a GOODBYE, an unpair on either side, a superseding
    /// connection, a lost transport). Frame limits are not negotiated: a
    /// call under our limit but over the peer's closes the connection
    /// (see [`NodeConfig::max_frame_len`]).
    pub async fn call(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Bytes, CallError> {
        let (args, timeout) = (args.as_ref(), timeout.into());
        let mut deadline: Option<StdInstant> = None;
        let id = loop {
            // who to wake when the result is in, registered with the call:
            // taken from this very poll (the future is ready at once), so
            // after a wait for room it is the waker of the task polling now
            let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            let attempt = self
                .shared
                .with_core_calling(&mut Vec::new(), |inner, now| {
                    let budget = match deadline {
                        Some(at) => Some(at.saturating_duration_since(self.shared.rt.now())),
                        None => timeout,
                    };
                    match inner.ep.call(now, peer, handle, args, budget) {
                        Ok(id) => {
                            // a sequential call writes its own bytes
                            // (`with_core_calling`)
                            let sequential = inner.calls.start(id, waker);
                            (Ok(Ok(id)), sequential.then(|| id.conn()))
                        }
                        Err(CallError::WouldBlock) => (Ok(Err(self.wait_for_room())), None),
                        // a kept peer being reconnected (dialing.rs)
                        Err(CallError::NotConnected) => {
                            let wait = crate::dialing::reconnect_wait(&self.shared, inner, peer);
                            (wait.map(Err).ok_or(CallError::NotConnected), None)
                        }
                        Err(error) => (Err(error), None),
                    }
                })?;
            let room = match attempt {
                Ok(call) => break call,
                Err(room) => room,
            };
            if deadline.is_none() {
                deadline = self.deadline(timeout);
            }
            match deadline {
                None => room.await,
                Some(at) => {
                    if !first(room, self.shared.rt.sleep_until(at)).await {
                        self.timed_out_unsent();
                        return Err(CallError::Timeout);
                    }
                }
            }
        };
        let mut pending = Pending {
            shared: &self.shared,
            id: Some(id),
        };
        // The first poll is the same poll that registered the waker: a
        // result can only have come with a wake-up, so the lock is not
        // taken for it.
        let mut first = true;
        let result = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                return Poll::Pending;
            }
            self.shared.calls(|calls| calls.poll(id, cx))
        })
        .await;
        pending.id = None;
        result
    }

    /// A call's timeout ran out before the core took it.
    fn timed_out_unsent(&self) {
        self.shared
            .calls_timed_out_unsent
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A nested call, made while serving the call `ctx` describes: calls
    /// with what is left of that call's budget ([`Context::timeout`]; no
    /// limit if its caller set none), and gives up as soon as that call is
    /// cancelled (CANCEL, its deadline, its connection lost), sending
    /// CANCEL on in turn. So a chain of calls shares its first caller's
    /// budget, as with tarpc's context.
    ///
    /// # Errors
    ///
    /// As [`Node::call`]; `CallError::Timeout` when the inherited budget
    /// runs out (also when it was already spent: the call is then not
    /// made), `CallError::Cancelled` when the outer call was cancelled
    /// before its deadline.
    pub async fn call_in(
        &self,
        ctx: &Context,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
    ) -> Result<Bytes, CallError> {
        let timeout = ctx.timeout();
        if timeout == Some(Duration::ZERO) {
            self.timed_out_unsent();
            return Err(CallError::Timeout);
        }
        if ctx.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        let call = self.call(peer, handle, args, timeout);
        let cancelled = ctx.cancelled();
        match futures_util::future::select(std::pin::pin!(call), std::pin::pin!(cancelled)).await {
            futures_util::future::Either::Left((result, _)) => result,
            // (the call's future is dropped here: CANCEL goes out)
            futures_util::future::Either::Right(_) if ctx.is_expired() => Err(CallError::Timeout),
            futures_util::future::Either::Right(_) => Err(CallError::Cancelled),
        }
    }

    /// Sends to `handle` on `peer`, fire-and-forget: resolves once the
    /// envelope is queued (first waiting for room if the queue is full). A
    /// refusal on the other side is silent. A [`Node::disconnect`] or
    /// [`Node::shutdown`] after it sends it before the GOODBYE, for a peer
    /// that reads it within the 2 s linger (and, while the node runs, if
    /// the connections already closed leave room in the node's linger
    /// budget: the README's "A peer that never reads"); a close
    /// the application did not ask for (an unpair, a newer connection, a
    /// timeout) before the writer took the envelope drops it when what is
    /// still queued does not fit with the GOODBYE in 4 KiB
    /// ([`peernet_proto::LAST_COPIED`]), so that every peer that reads
    /// gets its GOODBYE.
    ///
    /// # Errors
    ///
    /// [`SendError`]: not connected, the message does not fit in one frame,
    /// or the handle name is invalid. Never `WouldBlock`: a full queue is
    /// waited out.
    pub async fn send(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
    ) -> Result<(), SendError> {
        let args = args.as_ref();
        loop {
            let room = self.shared.with_core(|inner, now| {
                match inner.ep.send(now, peer, handle, args) {
                    Ok(()) => Ok(None),
                    Err(SendError::WouldBlock) => Ok(Some(self.wait_for_room())),
                    Err(error) => Err(error),
                }
            })?;
            match room {
                None => return Ok(()),
                Some(room) => room.await,
            }
        }
    }

    /// Registers for a wake-up when a send queue has room again (call with
    /// the core's lock held, right after `WouldBlock`, so no wake-up is
    /// missed).
    fn wait_for_room(&self) -> event_listener::EventListener {
        let room = self.shared.room.listen();
        self.shared.room_wanted.store(true, Ordering::Release);
        room
    }

    fn deadline(&self, timeout: Option<Duration>) -> Option<StdInstant> {
        timeout.and_then(|t| self.shared.rt.now().checked_add(t))
    }

    // ----- shutdown -----

    /// Shuts down gracefully. At once (before the returned future is first
    /// polled): stops accepting, and new calls from peers are answered
    /// `shutting_down`. Then, in a task of its own: writes the address book
    /// if a save is pending, lets running handlers finish within the grace
    /// period ([`NodeConfig::shutdown_grace`]), stops those left, says
    /// GOODBYE `normal` to every peer (their calls to us that were left
    /// fail with it, and so do ours to them), waits for the goodbyes to be
    /// written, and lets go of the data directory's lock.
    ///
    /// The returned future resolves once the node is closed and the data
    /// directory's lock let go, so that a node started from the same
    /// directory next gets it. A write to the directory still in progress
    /// at the close (the book's, after a change during the shutdown) is
    /// waited for within the grace period (at least a second); one that
    /// takes longer keeps the lock until it ends, with a warning. The shutdown
    /// goes on whether or not it is polled: dropping it (a `select!`, a
    /// timeout) stops nothing, and every later call returns a future that
    /// resolves once the node is closed and its lock let go (each waiting
    /// for the lock within a grace of its own from when it sees the node
    /// closed).
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        lifecycle::shutdown(&self.shared, self.peer_id, self.grace)
    }
}

/// [`Node::change_trust`]'s task.
/// When a trust change reaches the running node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Only once the data directory's file has it (`pair`: a peer is
    /// trusted only as the file says, and on a failed write nothing
    /// changes).
    OnceSaved,
    /// Whatever becomes of the file (`unpair`: a revocation is never held
    /// up by a file that cannot be read or written; the error says the
    /// file still trusts the peer).
    Always,
}

/// [`Node::change_trust`]'s task: the result, and whether the change
/// reached the core.
async fn change_trust<R: Runtime, T>(
    shared: &Arc<Shared<R>>,
    commit: Commit,
    edit: impl FnOnce(&mut TrustList) -> bool + Send + 'static,
    apply: impl FnOnce(&mut Inner, peernet_proto::Instant, bool) -> T,
) -> (io::Result<T>, bool) {
    let mut saved = shared.persist.lock().await;
    let mut edited = false;
    let mut failed = None;
    if let Some(dir) = &shared.data_dir {
        let Some(lock) = shared.dir_lock() else {
            let closed = "the node is closed: its data directory is no longer locked for it";
            return (Err(io::Error::other(closed)), false);
        };
        let (dir, own) = (dir.clone(), shared.read(|inner| inner.ep.peer_id()));
        let was = saved.clone();
        // The change is made to the file's list as it is now, read again:
        // an edit an operator made while the node runs (a peer taken out
        // by hand) is kept, not written over. (The running node does not
        // take the edit in; a restart does.) A peer trusted for this run
        // only is not written.
        let save = move || {
            let result = load_for_change(&dir, &own).and_then(|mut next| {
                if next != was {
                    tracing::info!(
                        "the trust file changed on disk while the node runs: the change is \
                         made to it as it is now (restart the node to take the edit in)"
                    );
                }
                let edited = edit(&mut next);
                dir.save_trust(&next).map(|()| (next, edited))
            });
            drop(lock);
            result
        };
        match shared.rt.spawn_blocking(save).await {
            Ok((next, changed)) => {
                edited = changed;
                *saved = next;
            }
            Err(e) if commit == Commit::Always => {
                tracing::warn!(error = %e, "revoked in this run; the trust file was not updated");
                failed = Some(io::Error::new(
                    e.kind(),
                    format!("revoked in this run, but the trust file was not updated: {e}"),
                ));
            }
            Err(e) => return (Err(e), false),
        }
    }
    let out = shared.with_core(|inner, now| apply(inner, now, edited));
    (failed.map_or(Ok(out), Err), true)
}

/// The data directory's trust list as it is now, for a change: an error
/// that names the file if it cannot be read or parsed (a damaged list is
/// never written over). An entry of the node itself (`own`) is left out.
fn load_for_change(dir: &crate::DataDir, own: &PeerId) -> io::Result<TrustList> {
    dir.load_trust_of(own).map_err(|e| match e {
        StartError::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    })
}
