//! Opening and closing connections: dialing a peer at an address
//! (`connect`, `reconnect`), the handshake over a stream the application
//! opened or accepted itself, and `disconnect`.

use std::net::SocketAddr;

use peernet_proto::{Direction, PeerId};

use crate::addr::PeerAddr;
use crate::error::ConnectError;
use crate::runtime::{Runtime, WrapStream};
use crate::tasks::{self, Role};

use super::Node;

impl<R: Runtime> Node<R> {
    /// Dials `peer` at `addr` over TCP. Resolves when the handshake
    /// completes, or at once if `peer` is already connected. When both
    /// peers dial each other at once, both calls resolve `Ok` on the one
    /// connection that survives.
    ///
    /// The dialer may call at once; the peer has the connection (and
    /// reports [`NodeEvent::Connected`](crate::NodeEvent::Connected)) when
    /// our PROOF (version 1) or our first record (version 2) reaches it,
    /// half a round trip later, and until then its own calls to us fail
    /// with `NotConnected`.
    ///
    /// `addr` is a [`SocketAddr`] (IPv4 or IPv6) or a `"host:port"` string
    /// (see [`PeerAddr`]): a host name is resolved by the runtime first
    /// (the resolver's own timeouts apply), then each of its addresses is
    /// tried in turn within the handshake's budget.
    ///
    /// Once connected through it, the address is recorded in the address
    /// book (source `Application`; for a host name, the address that
    /// opened; for an unspecified address, `0.0.0.0:PORT` as a listener
    /// bound to every interface reports itself, this host's loopback
    /// address, where the operating system took the connection), as an
    /// address that worked, the most recently of the peer's (it is dialed
    /// first after a loss, and saved as `worked`; in a peer's full list
    /// it takes the place of the address of its source that worked
    /// longest ago), so that [`Node::connect_peer`] and
    /// [`Node::keep_connected`] find the peer there later. A peer
    /// connected already resolves at once, and nothing is recorded: the
    /// address was not tried.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Start`] before any I/O (the peer is not trusted, the
    /// node is shutting down, ...), [`ConnectError::Dial`], naming the
    /// address, when no TCP connection opened, [`ConnectError::Io`] when
    /// the name did not resolve, and
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
    /// suspects its connection is half-open. One exception, by the same
    /// rule: an old connection the peer dialed and established within
    /// `handshake_timeout` before the new one counts as a simultaneous
    /// dial, and the connection whose initiator has the lower PeerId
    /// stays; if that is the old one, this still resolves `Ok`, the peer
    /// connected through it. The address is recorded in the address book
    /// as [`Node::connect`] records it (the peer answered there: a peer
    /// that moved is redialed at its new address after a loss).
    ///
    /// # Errors
    ///
    /// As [`Node::connect`].
    pub async fn reconnect(
        &self,
        peer: PeerId,
        addr: impl Into<PeerAddr>,
    ) -> Result<PeerId, ConnectError> {
        let (connected, opened) = self.dial_to(peer, addr.into(), true).await?;
        if let Some(addr) = opened {
            self.learned(peer, addr);
        }
        Ok(connected)
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
    /// other end; `None` (any trusted peer) only on protocol version 1:
    /// version 2, the default, needs it (the responder's key is the first
    /// message's). Resolves with the proven peer.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Start`] before the handshake (the node is shutting
    /// down, `peer` is not trusted, or `None` on version 2:
    /// [`PeerIdRequired`](peernet_proto::ConnectError::PeerIdRequired)),
    /// [`ConnectError::Handshake`] with why it failed; the stream is
    /// dropped either way.
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
}
