//! The async `Node`: what an application holds. This room has the
//! `Node` and `WeakNode` types, a node's start (`bind`, `new`, `listen`
//! and their variants), its plain getters and its shutdown; each other
//! job of the `Node` has a room of its own below.

mod calls;
mod connecting;
mod expose;
mod observe;
mod trust;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peernet_proto::{Endpoint, PeerId};

use crate::config::{MAX_EVENTS_CAPACITY, NodeConfig};
use crate::error::StartError;
use crate::lifecycle::{self, Life};
use crate::rng::NodeRng;
use crate::runtime::Runtime;
use crate::shared::{Inner, Phase, Shared};
use crate::tasks;
use crate::ticket::{Ticket, TicketError};

/// One peernet node: an optional listener, its connections (at most one
/// per peer), its exposed handles.
///
/// Cheap to clone. When the last clone is dropped the node closes every
/// connection at once (GOODBYE `normal`); [`Node::shutdown`] closes it
/// gracefully (and once called, dropping the last clone does not cut it
/// short). A handler that holds a clone of its own node keeps it alive:
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
    /// [`peernet_proto::Config::validate`], [`StartError::EventsCapacity`]
    /// for an events capacity over
    /// [`MAX_EVENTS_CAPACITY`](crate::MAX_EVENTS_CAPACITY),
    /// [`StartError::Linger`] for a linger of zero,
    /// [`StartError::Lock`] when the config's data directory lock was
    /// taken by another node, [`StartError::Listen`] when `addr` cannot be
    /// bound or is a multicast or broadcast address ([`Node::listen`]),
    /// and [`StartError::Entropy`] without randomness from the OS.
    ///
    /// # Panics
    ///
    /// Where the runtime's `Default` does, as every constructor without
    /// `_with`: peernet-tokio's outside a tokio runtime (in a plain
    /// thread, or under another executor); there, give the runtime
    /// ([`Node::bind_with`] and `TokioRuntime::new(handle)`).
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
    /// Wherever [`Node::try_new`] returns an error: the operating system
    /// has no randomness to give, the protocol configuration is invalid,
    /// the events capacity is over
    /// [`MAX_EVENTS_CAPACITY`](crate::MAX_EVENTS_CAPACITY), or the data
    /// directory's lock was taken by another node; and where the
    /// runtime's `Default` panics (see [`Node::bind`]).
    pub fn new(config: NodeConfig) -> Node<R> {
        Node::new_with(R::default(), config)
    }

    /// [`Node::new`], with an error instead of a panic (see
    /// [`Node::try_new_with`]); but for the runtime's own, outside its
    /// runtime (see [`Node::bind`]).
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
    /// [`Node::shutdown`]; [`StartError::Listen`], which names `addr`,
    /// when binding fails, and,
    /// of kind [`InvalidInput`](std::io::ErrorKind::InvalidInput), for a
    /// multicast or broadcast `addr`, where no peer can connect (Linux
    /// lets a TCP socket bind one: the node would run unreachable).
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, StartError> {
        let ip = addr.ip().to_canonical();
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_multicast() || broadcast {
            return Err(StartError::Listen {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "no peer can connect to a multicast or broadcast address",
                ),
            });
        }
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
        let bound = |source| StartError::Listen { addr, source };
        let listener = self
            .shared
            .rt
            .bind(addr, self.backlog)
            .await
            .map_err(bound)?;
        let local = R::local_addr(&listener).map_err(bound)?;
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
    /// Wherever [`Node::try_new_with`] returns an error (see
    /// [`Node::new`]).
    pub fn new_with(rt: R, config: NodeConfig) -> Node<R> {
        match Node::try_new_with(rt, config) {
            Ok(node) => node,
            Err(error) => panic!("cannot start a peernet node: {}", crate::ErrorChain(&error)),
        }
    }

    /// [`Node::new_with`], with an error instead of a panic.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] when the protocol configuration breaks a
    /// rule of [`peernet_proto::Config::validate`],
    /// [`StartError::EventsCapacity`] for an events capacity over
    /// [`MAX_EVENTS_CAPACITY`](crate::MAX_EVENTS_CAPACITY),
    /// [`StartError::Linger`] for a linger of zero,
    /// [`StartError::Entropy`] when the operating system has no
    /// randomness to seed the node's RNG (nonces, request ids), and
    /// [`StartError::Lock`] when the config's data directory lock was
    /// taken by another node built from it.
    pub fn try_new_with(rt: R, config: NodeConfig) -> Result<Node<R>, StartError> {
        config.protocol.validate()?;
        if config.events_capacity > MAX_EVENTS_CAPACITY {
            return Err(StartError::EventsCapacity(config.events_capacity));
        }
        if config.linger.is_zero() {
            return Err(StartError::Linger);
        }
        let rng = NodeRng::from_os().map_err(StartError::Entropy)?;
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
            config.linger,
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

    /// The address the listener is bound to (`None` if the node never
    /// listened). Once the node is closed it is the address it was bound
    /// to (what a node restarted on the same port wants).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// This node's [`Ticket`]: its PeerId and the addresses a peer can
    /// dial it at, to hand to the other side (as text: its `Display`),
    /// which pairs from it with [`Node::pair_ticket`].
    ///
    /// The addresses are where the node listens ([`Node::local_addr`]):
    /// that address itself when it names one; for a node listening on
    /// every interface (`0.0.0.0:PORT`, which no peer can dial), the
    /// host's IPv4 interface addresses with that port, and for `[::]:PORT`
    /// its IPv4 and IPv6 ones. The address the host sends from on its
    /// default route comes first (a peer dials a ticket's addresses in
    /// order, and a VPN's or a container bridge's address would often
    /// lead), then the other interfaces that are up; loopback only on a host
    /// with no other address (another host would dial its own);
    /// IPv6 link-local addresses are left out (a ticket carries no
    /// scope), and at most [`MAX_TICKET_ADDRS`](crate::ticket::MAX_TICKET_ADDRS)
    /// are named. The host's addresses are read at each call (a laptop
    /// that changed networks gives its new ones). A node that does not
    /// listen gives a ticket with its PeerId alone: the peer can pair
    /// from it, and waits to be dialed.
    ///
    /// A host behind NAT is known by addresses of its own network only:
    /// for a peer elsewhere, make the ticket with [`Ticket::new`] and
    /// the address the peer can reach (a forwarded port).
    ///
    /// ```no_run
    /// # async fn demo<R: peernet_driver::Runtime>(
    /// #     node: peernet_driver::Node<R>,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// node.listen("0.0.0.0:7000".parse()?).await?;
    /// // e.g. peernet1… naming 192.0.2.2:7000 and the host's other addresses
    /// println!("my ticket: {}", node.ticket()?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TicketError::Undialable`] for a node listening on every
    /// interface when the host's interfaces cannot be listed or have no
    /// address (logged at warn); [`TicketError::Scoped`] for a node
    /// listening on an IPv6 address with a scope id (`[fe80::1%2]:7000`),
    /// which a ticket cannot carry.
    pub fn ticket(&self) -> Result<Ticket, TicketError> {
        let addrs = self.local_addr().map(crate::reach::reachable);
        Ticket::new(self.peer_id, addrs.unwrap_or_default())
    }

    /// The runtime handle the node runs on.
    pub fn runtime(&self) -> &R {
        &self.shared.rt
    }

    /// Shuts down gracefully. At once (before the returned future is first
    /// polled): stops accepting, and new calls from peers are answered
    /// `shutting_down`. Then, in a task of its own: writes the address book
    /// if a save is pending, lets running handlers finish within the grace
    /// period ([`NodeConfig::shutdown_grace`]), stops those left, says
    /// GOODBYE `normal` to every peer (their calls to us that were left
    /// fail with it, and so do ours to them), waits for the goodbyes to be
    /// written, and lets go of the data directory's lock.
    ///
    /// The returned future resolves once the node is closed (its
    /// handlers, access rules and event streams dropped) and the data
    /// directory's lock let go, so that a node started from the same
    /// directory next gets it. A write to the directory still in progress
    /// at the close (the book's, after a change during the shutdown) is
    /// waited for within the grace period (at least a second); one that
    /// takes longer keeps the lock until it ends, with a warning. The shutdown
    /// goes on whether or not it is polled: dropping it (a `select!`, a
    /// timeout), or the node's last handle, stops nothing, and every later
    /// call returns a future that resolves once the node is closed and its
    /// lock let go (each waiting for the lock within a grace of its own
    /// from when it sees the node closed).
    ///
    /// A handler of this node (a `stop` handle of an operator's) must not
    /// await it: the shutdown waits for the running handlers, that one
    /// too, which waits for the shutdown, until the grace ends; then the
    /// handler is stopped and its caller gets `ConnectionClosed` (GOODBYE
    /// `normal`), never its reply (with the default grace: 5 s, then the
    /// error). Call it and drop the future: the shutdown starts at once
    /// and goes on, and the handler's reply goes out before the GOODBYE.
    ///
    /// ```no_run
    /// # fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>) {
    /// let inner = node.clone();
    /// node.expose("stop", move |_caller, _args| {
    ///     // (not `.await`ed: the shutdown runs in a task of its own)
    ///     drop(inner.shutdown());
    ///     async { Ok(bytes::Bytes::from_static(b"stopping")) }
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        lifecycle::shutdown(&self.shared, &self.life, self.peer_id, self.grace)
    }
}
