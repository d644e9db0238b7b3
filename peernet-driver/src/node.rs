//! The async `Node`: what an application holds.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::AsyncReadExt;
use futures_util::future::select;
use peernet_proto::{
    Access, CallError, CallId, Config, Endpoint, Identity, InvalidHandle, Label, PeerId, TrustList,
};

use crate::error::{ConnectError, StartError};
use crate::events::EventStream;
use crate::handler::{self, HandlerResult};
use crate::persist::DataDir;
use crate::runtime::Runtime;
use crate::shared::{Inner, Shared};
use crate::tasks::{self, Role};

/// How to build a [`Node`]: its identity, whom it trusts, its limits.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    identity: Identity,
    trust: TrustList,
    protocol: Config,
    shutdown_grace: Duration,
    events_capacity: usize,
    data_dir: Option<DataDir>,
}

impl NodeConfig {
    /// A node with this identity, trusting nobody yet, with the protocol's
    /// default limits and timeouts.
    pub fn new(identity: Identity) -> NodeConfig {
        NodeConfig {
            identity,
            trust: TrustList::new(),
            protocol: Config::default(),
            shutdown_grace: Duration::from_secs(5),
            events_capacity: 1024,
            data_dir: None,
        }
    }

    /// Loads the identity (created, mode 0600, if missing) and the trust
    /// list from `dir`; every later `pair`/`unpair` is saved there
    /// atomically.
    pub fn from_data_dir(dir: impl AsRef<Path>) -> Result<NodeConfig, StartError> {
        let data = DataDir::open(dir.as_ref())?;
        let mut config = NodeConfig::new(data.load_or_create_identity()?);
        config.trust = data.load_trust()?;
        config.data_dir = Some(data);
        Ok(config)
    }

    /// Replaces the trust list.
    pub fn trust(mut self, trust: TrustList) -> NodeConfig {
        self.trust = trust;
        self
    }

    /// Trusts one more peer.
    pub fn trusting(mut self, peer: PeerId) -> NodeConfig {
        self.trust.insert(peer, None);
        self
    }

    /// Limits and timeouts: max frame, max inbound calls, handshake
    /// timeout, ping interval, idle timeout, … (see [`Config`]).
    pub fn protocol(mut self, protocol: Config) -> NodeConfig {
        self.protocol = protocol;
        self
    }

    /// How long `shutdown` lets running handlers finish. Default 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> NodeConfig {
        self.shutdown_grace = grace;
        self
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }
}

/// One peernet node: a listener (optional), its connections, its exposed
/// handles. Cheap to clone; the node stops when the last clone is dropped
/// (use [`Node::shutdown`] to stop gracefully).
pub struct Node<R: Runtime> {
    shared: Arc<Shared<R>>,
    life: Arc<Life<R>>,
    local_addr: Option<SocketAddr>,
    grace: Duration,
    events_capacity: usize,
}

impl<R: Runtime> Clone for Node<R> {
    fn clone(&self) -> Self {
        Node {
            shared: self.shared.clone(),
            life: self.life.clone(),
            local_addr: self.local_addr,
            grace: self.grace,
            events_capacity: self.events_capacity,
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Stops the node's tasks when the last `Node` handle goes away.
struct Life<R: Runtime>(Arc<Shared<R>>);

impl<R: Runtime> Drop for Life<R> {
    fn drop(&mut self) {
        let work = {
            let mut inner = self.0.lock();
            let now = self.0.now();
            inner.ep.shutdown(now);
            inner.ep.close_all(now);
            self.0.drain(&mut inner)
        };
        drop(work);
        self.0.halt(true);
    }
}

/// A call's guard: if the caller stops waiting (its future is dropped),
/// the call is cancelled in the core, so the callee may stop too.
struct Pending<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    id: Option<CallId>,
}

impl<R: Runtime> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let work = {
                let mut inner = self.shared.lock();
                inner.calls.remove(&id);
                let now = self.shared.now();
                inner.ep.cancel(now, id);
                self.shared.drain(&mut inner)
            };
            self.shared.run(work);
        }
    }
}

impl<R: Runtime> Node<R> {
    /// Starts a node listening on `addr` (port 0 picks a free port; see
    /// [`Node::local_addr`]).
    pub async fn bind(config: NodeConfig, addr: SocketAddr) -> Result<Node<R>, StartError> {
        let rt = R::default();
        let listener = rt.bind(addr).await?;
        let local = R::local_addr(&listener)?;
        let mut node = Node::start(rt, config);
        node.local_addr = Some(local);
        node.shared
            .rt
            .spawn(Box::pin(tasks::accept_loop(node.shared.clone(), listener)));
        tracing::info!(peer = %node.peer_id(), addr = %local, "listening");
        Ok(node)
    }

    /// Starts a node without a listener: it dials, or takes streams the
    /// application opened ([`Node::accept_stream`], [`Node::connect_stream`]).
    pub fn new(config: NodeConfig) -> Node<R> {
        Node::start(R::default(), config)
    }

    fn start(rt: R, config: NodeConfig) -> Node<R> {
        let rng = Box::new(rand_core::UnwrapErr(getrandom::SysRng));
        let ep = Endpoint::new(config.protocol, config.identity, config.trust, rng);
        let inner = Inner {
            ep,
            conns: HashMap::new(),
            calls: HashMap::new(),
            dials: HashMap::new(),
            handlers: HashMap::new(),
            subscribers: Vec::new(),
            timer_armed: None,
            data_dir: config.data_dir,
            dropped_events: 0,
        };
        let shared = Arc::new(Shared::new(rt, inner));
        shared.rt.spawn(Box::pin(tasks::timer(shared.clone())));
        Node {
            life: Arc::new(Life(shared.clone())),
            shared,
            local_addr: None,
            grace: config.shutdown_grace,
            events_capacity: config.events_capacity,
        }
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.shared.lock().ep.peer_id()
    }

    /// The address the listener is bound to (`None` without a listener).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Exposes `handle` to every trusted peer. `handler` runs for each call
    /// with the caller's proven PeerId and the arguments; a handler that
    /// panics answers `handler_panicked` and the connection lives.
    pub fn expose<F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.expose_to(handle, Access::Anyone, handler)
    }

    /// Exposes `handle` to the trusted peers `access` allows; others get
    /// `forbidden`.
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
        let mut inner = self.shared.lock();
        inner.ep.expose(handle, access)?;
        inner
            .handlers
            .insert(handle.to_owned(), handler::boxed(handler));
        Ok(())
    }

    /// Closes `handle`: later calls get `no_such_handle`.
    pub fn unexpose(&self, handle: &str) -> bool {
        let mut inner = self.shared.lock();
        inner.handlers.remove(handle);
        inner.ep.unexpose(handle)
    }

    /// Trusts `peer` (saved atomically when the node has a data dir).
    pub fn pair(&self, peer: PeerId, label: Option<Label>) -> io::Result<bool> {
        let mut inner = self.shared.lock();
        let added = inner.ep.pair(peer, label);
        if let Some(dir) = &inner.data_dir {
            dir.save_trust(inner.ep.trust())?;
        }
        Ok(added)
    }

    /// Stops trusting `peer`: its connection closes at once with GOODBYE
    /// `revoked`, and its calls fail with that reason.
    pub fn unpair(&self, peer: &PeerId) -> io::Result<bool> {
        let (removed, saved, work) = {
            let mut inner = self.shared.lock();
            let now = self.shared.now();
            let removed = inner.ep.unpair(now, peer);
            let saved = match &inner.data_dir {
                Some(dir) => dir.save_trust(inner.ep.trust()),
                None => Ok(()),
            };
            (removed, saved, self.shared.drain(&mut inner))
        };
        self.shared.run(work);
        saved.map(|()| removed)
    }

    /// The trust list.
    pub fn trust(&self) -> TrustList {
        self.shared.lock().ep.trust().clone()
    }

    /// Whether `peer` has an established connection.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.shared.lock().ep.is_connected(peer)
    }

    /// The peers with an established connection.
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared.lock().ep.peers().collect()
    }

    /// A new subscription to connection events.
    pub fn events(&self) -> EventStream {
        let (tx, rx) = async_channel::bounded(self.events_capacity);
        self.shared.lock().subscribers.push(tx);
        rx
    }

    /// Dials `peer` at `addr`; resolves when the handshake completes (at
    /// once if `peer` is already connected).
    pub async fn connect(&self, peer: PeerId, addr: SocketAddr) -> Result<PeerId, ConnectError> {
        {
            let inner = self.shared.lock();
            if inner.ep.is_connected(&peer) {
                return Ok(peer);
            }
            if !inner.ep.trust().contains(&peer) {
                return Err(ConnectError::Untrusted(peer));
            }
        }
        let (read, write) = self.shared.rt.connect(addr).await?;
        let rx = tasks::start_conn(&self.shared, read, write, Role::Dial(Some(peer)))?;
        rx.await.unwrap_or(Err(ConnectError::Abandoned))
    }

    /// Runs the handshake as initiator over a stream the application
    /// opened (a Unix socket, a TLS stream, a relay…), expecting `peer`
    /// (or any trusted peer with `None`). Returns the proven peer.
    pub async fn connect_stream<S>(
        &self,
        stream: S,
        peer: Option<PeerId>,
    ) -> Result<PeerId, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (read, write) = stream.split();
        let rx = tasks::start_conn(
            &self.shared,
            Box::new(read),
            Box::new(write),
            Role::Dial(peer),
        )?;
        rx.await.unwrap_or(Err(ConnectError::Abandoned))
    }

    /// Runs the handshake as responder over a stream the application
    /// accepted itself. Resolves with the proven peer.
    pub async fn accept_stream<S>(&self, stream: S) -> Result<PeerId, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (read, write) = stream.split();
        let rx = tasks::start_conn(&self.shared, Box::new(read), Box::new(write), Role::Accept)?;
        rx.await.unwrap_or(Err(ConnectError::Abandoned))
    }

    /// Calls `handle` on `peer` and waits for the reply, at most `timeout`
    /// (`None`: no limit). When the send queue is full, waits for room
    /// first. Dropping the future cancels the call.
    pub async fn call(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl Into<Bytes>,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Bytes, CallError> {
        let (args, timeout) = (args.into(), timeout.into());
        let (rx, work) = loop {
            let room = self.shared.writable.listen();
            let attempt = {
                let mut inner = self.shared.lock();
                let now = self.shared.now();
                match inner.ep.call(now, peer, handle, args.clone(), timeout) {
                    Ok(id) => {
                        let (tx, rx) = oneshot::channel();
                        inner.calls.insert(id, tx);
                        Ok(((id, rx), self.shared.drain(&mut inner)))
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt {
                Ok(done) => break done,
                Err(CallError::WouldBlock) => room.await,
                Err(e) => return Err(e),
            }
        };
        self.shared.run(work);
        let (id, rx) = rx;
        let mut guard = Pending {
            shared: &self.shared,
            id: Some(id),
        };
        let result = rx.await;
        guard.id = None;
        result.unwrap_or(Err(CallError::Cancelled))
    }

    /// Sends to `handle` on `peer`, fire-and-forget: resolves once the
    /// envelope is queued (waiting for room if the queue is full).
    pub async fn send(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl Into<Bytes>,
    ) -> Result<(), CallError> {
        let args = args.into();
        loop {
            let room = self.shared.writable.listen();
            let attempt = {
                let mut inner = self.shared.lock();
                let now = self.shared.now();
                inner
                    .ep
                    .send(now, peer, handle, args.clone())
                    .map(|()| self.shared.drain(&mut inner))
            };
            match attempt {
                Ok(work) => {
                    self.shared.run(work);
                    return Ok(());
                }
                Err(CallError::WouldBlock) => room.await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the connection to `peer` with GOODBYE `normal`.
    pub fn disconnect(&self, peer: &PeerId) -> bool {
        let (closed, work) = {
            let mut inner = self.shared.lock();
            let now = self.shared.now();
            let closed = inner.ep.disconnect(now, peer);
            (closed, self.shared.drain(&mut inner))
        };
        self.shared.run(work);
        closed
    }

    /// Shuts down gracefully: stops accepting, answers new calls with
    /// `shutting_down`, lets running handlers finish within the grace
    /// period, then says GOODBYE `normal` to every peer (failing what is
    /// left) and waits for the goodbyes to be written.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        let deadline = shared.rt.now() + self.grace;
        {
            let mut inner = shared.lock();
            let now = shared.now();
            inner.ep.shutdown(now);
            drop(shared.drain(&mut inner));
        }
        shared.halt(false);
        loop {
            let quiet = shared.quiet.listen();
            let busy = shared.lock().ep.stats().inbound_calls > 0;
            if !busy || shared.rt.now() >= deadline {
                break;
            }
            select(quiet, shared.rt.sleep_until(deadline)).await;
        }
        let work = {
            let mut inner = shared.lock();
            let now = shared.now();
            inner.ep.close_all(now);
            shared.drain(&mut inner)
        };
        drop(work);
        let flush_deadline = shared.rt.now() + self.grace;
        loop {
            let ended = shared.writer_ended.listen();
            if shared.writers.load(Ordering::Acquire) == 0 || shared.rt.now() >= flush_deadline {
                break;
            }
            select(ended, pin!(shared.rt.sleep_until(flush_deadline))).await;
        }
        shared.halt(true);
        tracing::info!(peer = %self.peer_id(), "shut down");
    }
}
