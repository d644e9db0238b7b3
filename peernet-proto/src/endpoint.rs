//! The endpoint: every connection of one node, the one-connection-per-peer
//! registry, the exposed handles and the calls in flight, driven through
//! one way in and one way out.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use bytes::{Buf, Bytes};
use rand_core::CryptoRng;

use crate::Instant;
use crate::config::{Config, fault};
use crate::connection::{Connection, Ctx, Session, State};
use crate::envelope::{
    Envelope, GoodbyeCode, Handle, ReplyStatus, check_handle_len, encode_call_frame,
    encode_send_frame,
};
use crate::error::{CallError, CloseReason, HandshakeError, Side};
use crate::event::{
    CallId, Direction, Event, InboundCall, InboundCallId, InboundSend, Output, Response,
};
use crate::exposure::{Access, Exposure};
use crate::frame::{Frame, FrameError, encode_frame};
use crate::handshake::{self, Failure, Initiator, RejectCode, Responder};
use crate::identity::{Identity, PeerId};
use crate::registry::{self, Survivor};
use crate::timers::Timer;
use crate::trust::{Label, TrustList};

/// Names one transport (one TCP stream) for as long as the endpoint
/// drives it. Never reused by an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number behind the id (for logs and maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Bytes or news from a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from `conn`, in any split: framing alone decides
    /// message boundaries.
    Received {
        /// The transport they came from.
        conn: ConnId,
        /// The bytes (whole read chunks; frames inside are not copied).
        data: Bytes,
    },
    /// The transport ended (EOF, reset, or a failed write).
    Closed {
        /// The transport.
        conn: ConnId,
    },
}

/// Why a transport could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint is shutting down.
    #[error("the endpoint is shutting down")]
    ShuttingDown,
    /// The dialed PeerId is not in the trust list: its WELCOME would be
    /// refused, so the dial is refused before it starts.
    #[error("peer {0} is not trusted")]
    Untrusted(PeerId),
}

/// Counters over the whole endpoint, for tests, simulation invariants and
/// metrics. Computed on demand (walks every connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Transports the endpoint drives.
    pub connections: usize,
    /// Of those, established.
    pub established: usize,
    /// Inbound handshakes counted against `max_handshakes`.
    pub inbound_handshakes: usize,
    /// Our calls in flight.
    pub outbound_calls: usize,
    /// Calls we serve in flight.
    pub inbound_calls: usize,
    /// The most inbound calls in flight on one connection.
    pub max_inbound_calls_per_conn: usize,
    /// Bytes queued for transports, not yet taken by the driver.
    pub queued_bytes: usize,
    /// The most bytes queued for one transport.
    pub max_queued_bytes_per_conn: usize,
    /// Bytes held for partial incoming frames.
    pub buffered_input: usize,
    /// The most bytes held for one transport's partial frame.
    pub max_buffered_input_per_conn: usize,
    /// Armed deadlines.
    pub timers: usize,
}

/// What to send before closing.
enum Farewell {
    Nothing,
    Goodbye(GoodbyeCode, String),
    Reject(RejectCode),
}

/// A whole peernet node, without I/O.
///
/// The endpoint never reads a clock, opens a socket or draws entropy of its
/// own: time is passed into every call and randomness comes from the RNG
/// given to [`Endpoint::new`]. Its methods fall into four groups:
///
/// - **getters**: [`peer_id`](Self::peer_id), [`is_connected`](Self::is_connected),
///   [`trust`](Self::trust), [`stats`](Self::stats), …
/// - **input**: [`connect`](Self::connect) and [`accept`](Self::accept)
///   when a transport opens, [`handle_input`](Self::handle_input) for its
///   bytes and its end, [`handle_timeout`](Self::handle_timeout) when the
///   deadline from `poll_timeout` is reached;
/// - **commands**: [`call`](Self::call), [`send`](Self::send),
///   [`reply`](Self::reply), [`cancel`](Self::cancel), [`expose`](Self::expose),
///   [`pair`](Self::pair), [`unpair`](Self::unpair), [`shutdown`](Self::shutdown), …
/// - **output**: [`poll_output`](Self::poll_output) until it returns `None`,
///   [`poll_transmit`](Self::poll_transmit) for a connection's bytes, and
///   [`poll_timeout`](Self::poll_timeout) for when to call
///   `handle_timeout` next.
///
/// The driver loop: after any input or command, drain `poll_output`; write
/// what `poll_transmit` gives for each [`Output::Transmit`] (as soon as the
/// transport can take it: holding back is how backpressure works); then
/// wait for the next input or for `poll_timeout`.
///
/// ```no_run
/// # use peernet_proto::*;
/// # fn read_some() -> (ConnId, bytes::Bytes) { unimplemented!() }
/// # fn write(_: ConnId, _: bytes::Bytes) {}
/// # fn close(_: ConnId, _: bytes::Bytes) {}
/// # fn clock() -> Instant { unimplemented!() }
/// # fn handle(_: Event) {}
/// # let mut endpoint: Endpoint = unimplemented!();
/// loop {
///     let (conn, data) = read_some(); // or a timeout
///     endpoint.handle_input(clock(), Input::Received { conn, data });
///     endpoint.handle_timeout(clock());
///     while let Some(output) = endpoint.poll_output() {
///         match output {
///             Output::Transmit(conn) => {
///                 if let Some(bytes) = endpoint.poll_transmit(conn) {
///                     write(conn, bytes);
///                 }
///             }
///             Output::Close { conn, last } => close(conn, last),
///             Output::Event(event) => handle(event),
///         }
///     }
///     let _wake_at = endpoint.poll_timeout();
/// }
/// ```
pub struct Endpoint {
    ctx: Ctx,
    identity: Identity,
    trust: TrustList,
    rng: Box<dyn CryptoRng + Send>,
    conns: BTreeMap<ConnId, Connection>,
    /// The one established connection per peer.
    registry: BTreeMap<PeerId, ConnId>,
    exposure: Exposure,
    next_conn: u64,
    inbound_handshakes: usize,
    shutting_down: bool,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("peer_id", &self.identity.peer_id())
            .field("connections", &self.conns.len())
            .field("peers", &self.registry.len())
            .finish_non_exhaustive()
    }
}

const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// A panic note longer than this is cut: the spec asks for a short note.
const MAX_PANIC_NOTE: usize = 256;

impl Endpoint {
    /// A new endpoint for `identity`, trusting the peers in `trust`.
    /// `rng` supplies every nonce and request-id start.
    pub fn new(
        mut config: Config,
        identity: Identity,
        trust: TrustList,
        rng: Box<dyn CryptoRng + Send>,
    ) -> Endpoint {
        // Zero intervals would re-arm timers at `now` forever.
        config.ping_interval = config.ping_interval.max(MIN_INTERVAL);
        config.idle_timeout = config.idle_timeout.max(MIN_INTERVAL);
        config.handshake_timeout = config.handshake_timeout.max(MIN_INTERVAL);
        config.max_frame_len = config.max_frame_len.max(handshake::MAX_HANDSHAKE_FRAME);
        Endpoint {
            ctx: Ctx {
                config,
                timers: Default::default(),
                outputs: Default::default(),
                now: Instant::ZERO,
            },
            identity,
            trust,
            rng,
            conns: BTreeMap::new(),
            registry: BTreeMap::new(),
            exposure: Exposure::default(),
            next_conn: 1,
            inbound_handshakes: 0,
            shutting_down: false,
        }
    }

    // ----- getters -----

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The trust list.
    pub fn trust(&self) -> &TrustList {
        &self.trust
    }

    /// The latest time passed in (never moves backwards).
    pub fn now(&self) -> Instant {
        self.ctx.now
    }

    /// Whether an established connection to `peer` exists.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.registry.contains_key(peer)
    }

    /// The established connection to `peer`.
    pub fn connection(&self, peer: &PeerId) -> Option<ConnId> {
        self.registry.get(peer).copied()
    }

    /// The peers with an established connection, in PeerId order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.registry.keys().copied()
    }

    /// The peer on `conn`, once known (dialed, named by HELLO, or proven).
    pub fn peer_of(&self, conn: ConnId) -> Option<PeerId> {
        self.conns.get(&conn).and_then(Connection::peer)
    }

    /// Whether `conn` is driven by this endpoint (not yet closed).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Bytes queued for `conn` and not yet taken.
    pub fn queued_bytes(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, Connection::queued)
    }

    /// Whether [`Endpoint::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Counters over every connection.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            connections: self.conns.len(),
            inbound_handshakes: self.inbound_handshakes,
            timers: self.ctx.timers.len(),
            ..Stats::default()
        };
        for c in self.conns.values() {
            s.queued_bytes += c.queued();
            s.max_queued_bytes_per_conn = s.max_queued_bytes_per_conn.max(c.queued());
            s.buffered_input += c.decoder.buffered_len();
            s.max_buffered_input_per_conn =
                s.max_buffered_input_per_conn.max(c.decoder.buffered_len());
            if let Some(session) = c.session() {
                s.established += 1;
                s.outbound_calls += session.outbound.len();
                s.inbound_calls += session.inbound.len();
                s.max_inbound_calls_per_conn =
                    s.max_inbound_calls_per_conn.max(session.inbound.len());
            }
        }
        s
    }

    // ----- input -----

    /// A transport we dialed is open: starts the handshake as initiator
    /// (HELLO is queued). `expected` is the PeerId dialed; `None` accepts
    /// any trusted responder.
    pub fn connect(
        &mut self,
        now: Instant,
        expected: Option<PeerId>,
    ) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        if let Some(peer) = expected {
            if !self.trust.contains(&peer) || peer == self.peer_id() {
                return Err(ConnectError::Untrusted(peer));
            }
        }
        let id = self.new_conn_id();
        let nonce = self.nonce();
        let initiator = Initiator::start(&self.identity, &nonce, expected);
        let hello = *initiator.hello();
        let mut conn = Connection::new(
            id,
            Direction::Outbound,
            State::AwaitWelcome(initiator),
            &mut self.ctx,
        );
        conn.push_handshake(&hello, &mut self.ctx);
        self.conns.insert(id, conn);
        tracing::debug!(conn = %id, peer = ?expected, "dialing");
        Ok(id)
    }

    /// A transport was accepted: starts the handshake as responder.
    pub fn accept(&mut self, now: Instant) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        let busy = self.inbound_handshakes >= self.ctx.config.max_handshakes;
        if !busy {
            self.inbound_handshakes += 1;
        }
        let id = self.new_conn_id();
        let conn = Connection::new(
            id,
            Direction::Inbound,
            State::AwaitHello { busy },
            &mut self.ctx,
        );
        self.conns.insert(id, conn);
        tracing::debug!(conn = %id, busy, "accepted");
        Ok(id)
    }

    /// Bytes arrived on a transport, or it ended.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Received { conn, mut data } => loop {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match c.decoder.decode_in_place(&mut data) {
                    Ok(Some(Frame::InPlace(len))) => {
                        c.last_recv = self.ctx.now;
                        self.on_frame(conn, &data, len);
                        data.advance(len);
                    }
                    Ok(Some(Frame::Assembled(body))) => {
                        c.last_recv = self.ctx.now;
                        self.on_frame(conn, &body, body.len());
                    }
                    Ok(None) => return,
                    Err(error) => return self.on_frame_error(conn, error),
                }
            },
            Input::Closed { conn } => self.end(
                conn,
                Farewell::Nothing,
                CloseReason::TransportLost,
                HandshakeError::TransportLost,
            ),
        }
    }

    /// Fires every deadline due at `now`. Harmless to call early or often.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.ctx.now;
        while let Some((_, timer)) = self.ctx.timers.pop_due(now) {
            match timer {
                Timer::Handshake(conn) => self.end(
                    conn,
                    Farewell::Nothing,
                    CloseReason::TransportLost,
                    HandshakeError::Timeout,
                ),
                Timer::Liveness(conn) => {
                    let nonce = self.rng.next_u64();
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if c.on_liveness(nonce, &mut self.ctx)
                        && !fault!(self.ctx.config, NoIdleTimeout)
                    {
                        let idle = self.ctx.config.idle_timeout;
                        let reason = format!("no frame received for {idle:?}");
                        self.end(
                            conn,
                            Farewell::Goodbye(GoodbyeCode::IdleTimeout, reason.clone()),
                            CloseReason::local(GoodbyeCode::IdleTimeout, reason),
                            HandshakeError::Timeout,
                        );
                    } else {
                        // Our PINGs count against the hard cap too: a peer
                        // that keeps sending but never reads must not grow
                        // the queue one PING per interval without bound.
                        self.enforce_send_cap(conn);
                    }
                }
                Timer::Outbound(conn) => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    let Some(s) = c.session_mut() else { continue };
                    let due = s.outbound.take_due(now, &mut self.ctx.timers);
                    for &id in &due {
                        let _ = c.push(&Envelope::Cancel { id }, &mut self.ctx);
                    }
                    for id in due {
                        self.emit(Event::CallResult {
                            id: CallId { conn, id },
                            result: Err(CallError::Timeout),
                        });
                    }
                }
                Timer::Inbound(conn) => {
                    let Some(s) = self.conns.get_mut(&conn).and_then(Connection::session_mut)
                    else {
                        continue;
                    };
                    let due = s.inbound.take_due(now, &mut self.ctx.timers);
                    for id in due {
                        self.emit(Event::CallCancelled(InboundCallId { conn, id }));
                    }
                }
            }
        }
    }

    // ----- commands -----

    /// Calls `handle` on `peer` over its established connection. The call
    /// resolves later, exactly once, with [`Event::CallResult`]; an `Err`
    /// here means nothing was sent and no event will follow.
    ///
    /// `timeout` (rounded up to whole milliseconds) is carried in the CALL
    /// so the callee can stop work it no longer needs to do; when it runs
    /// out the call fails with [`CallError::Timeout`] and CANCEL is sent.
    ///
    /// `args` is copied into the connection's send queue (the frame is
    /// written there at once), so on [`CallError::WouldBlock`] the caller
    /// still holds them and can retry.
    pub fn call(
        &mut self,
        now: Instant,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, CallError> {
        self.advance(now);
        check_handle_len(handle.len()).map_err(CallError::InvalidHandle)?;
        let conn = *self.registry.get(peer).ok_or(CallError::NotConnected)?;
        let c = self.conns.get_mut(&conn).ok_or(CallError::NotConnected)?;
        let queued = c.queued();
        let s = c.session_mut().ok_or(CallError::NotConnected)?;
        if s.outbound.len() >= self.ctx.config.max_outbound_calls
            || queued >= self.ctx.config.send_buffer
        {
            return Err(CallError::WouldBlock);
        }
        let timeout_ms = timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1)
        });
        let id = s.next_request_id();
        let call = (id, handle, args, timeout_ms);
        c.push_encoded(&mut self.ctx, |out, max| encode_call_frame(out, max, call))
            .map_err(|()| CallError::MessageTooLarge)?;
        let deadline = timeout.map(|t| self.ctx.now + t);
        if let Some(s) = c.session_mut() {
            s.outbound.insert(id, deadline, &mut self.ctx.timers);
        }
        Ok(CallId { conn, id })
    }

    /// Sends to `handle` on `peer`, fire-and-forget: no id, no reply, and a
    /// refusal on the other side is silent. `Ok` means it is queued.
    pub fn send(
        &mut self,
        now: Instant,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
    ) -> Result<(), CallError> {
        self.advance(now);
        check_handle_len(handle.len()).map_err(CallError::InvalidHandle)?;
        let conn = *self.registry.get(peer).ok_or(CallError::NotConnected)?;
        let c = self.conns.get_mut(&conn).ok_or(CallError::NotConnected)?;
        if c.queued() >= self.ctx.config.send_buffer {
            return Err(CallError::WouldBlock);
        }
        c.push_encoded(&mut self.ctx, |out, max| {
            encode_send_frame(out, max, handle, args)
        })
        .map_err(|()| CallError::MessageTooLarge)
    }

    /// Gives up on one of our calls: it resolves now with
    /// [`CallError::Cancelled`] and CANCEL is sent. Returns false if the
    /// call had already resolved.
    pub fn cancel(&mut self, now: Instant, call: CallId) -> bool {
        self.advance(now);
        let Some(c) = self.conns.get_mut(&call.conn) else {
            return false;
        };
        let Some(s) = c.session_mut() else {
            return false;
        };
        if !s.outbound.remove(call.id, &mut self.ctx.timers) {
            return false;
        }
        let _ = c.push(&Envelope::Cancel { id: call.id }, &mut self.ctx);
        self.emit(Event::CallResult {
            id: call,
            result: Err(CallError::Cancelled),
        });
        true
    }

    /// Answers a call from [`Event::Call`]. Returns false (and sends
    /// nothing) if the call is no longer in flight: cancelled, timed out,
    /// or its connection ended. A result too large for one frame is
    /// answered with status `too_large`.
    pub fn reply(&mut self, now: Instant, call: InboundCallId, response: Response) -> bool {
        self.advance(now);
        let max = self.ctx.config.max_frame_len as usize;
        let Some(c) = self.conns.get_mut(&call.conn) else {
            return false;
        };
        let Some(s) = c.session_mut() else {
            return false;
        };
        if !s.inbound.remove(call.id, &mut self.ctx.timers) {
            return false;
        }
        let (status, body) = match response {
            Response::Ok(body) => (ReplyStatus::Ok, body),
            Response::Error(body) => (ReplyStatus::HandlerError, body),
            Response::Panicked(note) => (
                ReplyStatus::HandlerPanicked,
                utf8_prefix(note, MAX_PANIC_NOTE),
            ),
        };
        let mut envelope = Envelope::Reply {
            id: call.id,
            status: status.code(),
            body,
        };
        if envelope.encoded_len() > max {
            envelope = Envelope::Reply {
                id: call.id,
                status: ReplyStatus::TooLarge.code(),
                body: Bytes::new(),
            };
        }
        let _ = c.push(&envelope, &mut self.ctx);
        self.enforce_send_cap(call.conn);
        true
    }

    /// Opens `handle` to the peers `access` allows (replacing an earlier
    /// rule for the same handle).
    pub fn expose(&mut self, handle: &str, access: Access) -> Result<(), crate::InvalidHandle> {
        Handle::new(handle)?;
        self.exposure.expose(handle, access);
        Ok(())
    }

    /// Closes `handle` again: later calls get `no_such_handle`. Calls
    /// already handed out are not affected. Returns false if it was not
    /// exposed.
    pub fn unexpose(&mut self, handle: &str) -> bool {
        self.exposure.unexpose(handle)
    }

    /// Trusts `peer` (or relabels it). Returns true if it was not trusted.
    pub fn pair(&mut self, peer: PeerId, label: Option<Label>) -> bool {
        self.trust.insert(peer, label)
    }

    /// Stops trusting `peer`: its connection is closed at once with
    /// GOODBYE `revoked` (its calls fail with that reason) and its
    /// handshakes in progress are abandoned. Returns true if it was
    /// trusted.
    pub fn unpair(&mut self, now: Instant, peer: &PeerId) -> bool {
        self.advance(now);
        let was = self.trust.remove(peer);
        let doomed: Vec<ConnId> = self
            .conns
            .values()
            .filter(|c| c.peer() == Some(*peer))
            .filter(|_| !fault!(self.ctx.config, KeepRevokedConnections))
            .map(|c| c.id)
            .collect();
        for conn in doomed {
            self.end(
                conn,
                Farewell::Goodbye(GoodbyeCode::Revoked, "unpaired".into()),
                CloseReason::local(GoodbyeCode::Revoked, "unpaired"),
                HandshakeError::Abandoned,
            );
        }
        was
    }

    /// Closes the connection to `peer` on purpose, with GOODBYE `normal`.
    /// Returns false if there was none.
    pub fn disconnect(&mut self, now: Instant, peer: &PeerId) -> bool {
        self.advance(now);
        let Some(conn) = self.connection(peer) else {
            return false;
        };
        self.end(
            conn,
            Farewell::Goodbye(GoodbyeCode::Normal, "closed".into()),
            CloseReason::local(GoodbyeCode::Normal, "closed"),
            HandshakeError::Abandoned,
        );
        true
    }

    /// Starts shutting down: no new transports, and new calls are answered
    /// with `shutting_down`, while calls already running may still reply.
    /// Finish with [`Endpoint::close_all`].
    pub fn shutdown(&mut self, now: Instant) {
        self.advance(now);
        self.shutting_down = true;
    }

    /// Closes every connection: GOODBYE `normal` on established ones (their
    /// calls fail), abandoning handshakes in progress.
    pub fn close_all(&mut self, now: Instant) {
        self.advance(now);
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.end(
                conn,
                Farewell::Goodbye(GoodbyeCode::Normal, "shutting down".into()),
                CloseReason::local(GoodbyeCode::Normal, "shutting down"),
                HandshakeError::Abandoned,
            );
        }
    }

    // ----- output -----

    /// The next thing for the driver to do, or `None` when there is
    /// nothing until the next input or `poll_timeout`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.ctx.outputs.pop_front()
    }

    /// Everything queued for `conn`, as one buffer to write in one go.
    /// Taking it frees room in the connection's send queue.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Bytes> {
        self.conns.get_mut(&conn)?.take_transmit()
    }

    /// When to call [`Endpoint::handle_timeout`] next. It only moves
    /// forward as deadlines are handled: it is never a past instant that
    /// `handle_timeout` would leave in place.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ctx.timers.next()
    }

    // ----- internals -----

    fn advance(&mut self, now: Instant) {
        // A clock that steps back must not fire anything early or undo a
        // deadline: keep the latest reading.
        if now > self.ctx.now {
            self.ctx.now = now;
        }
    }

    fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn nonce(&mut self) -> handshake::Nonce {
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        nonce
    }

    fn emit(&mut self, event: Event) {
        self.ctx.outputs.push_back(Output::Event(event));
    }

    fn on_frame_error(&mut self, conn: ConnId, error: FrameError) {
        let established = self.conns.get(&conn).is_some_and(|c| c.session().is_some());
        let reason = format!("frame: {error}");
        let farewell = if established {
            Farewell::Goodbye(GoodbyeCode::ProtocolError, reason.clone())
        } else {
            Farewell::Reject(RejectCode::Malformed)
        };
        self.end(
            conn,
            farewell,
            CloseReason::local(GoodbyeCode::ProtocolError, reason),
            HandshakeError::Frame,
        );
    }

    /// One frame's body: `data[..len]`.
    fn on_frame(&mut self, conn: ConnId, data: &Bytes, len: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let body = &data[..len];
        match &c.state {
            State::AwaitHello { busy } => {
                let busy = *busy;
                self.on_hello(conn, body, busy)
            }
            State::AwaitWelcome(initiator) => {
                let initiator = initiator.clone();
                self.on_welcome(conn, body, initiator)
            }
            State::AwaitProof(responder) => {
                let responder = (**responder).clone();
                self.on_proof(conn, body, responder)
            }
            State::Established(_) => self.on_envelope(conn, data, len),
        }
    }

    fn fail_handshake(&mut self, conn: ConnId, failure: Failure) {
        let farewell = failure.send.map_or(Farewell::Nothing, Farewell::Reject);
        self.end(conn, farewell, CloseReason::TransportLost, failure.error);
    }

    fn on_hello(&mut self, conn: ConnId, body: &[u8], busy: bool) {
        if busy {
            return self.fail_handshake(
                conn,
                Failure {
                    send: Some(RejectCode::Busy),
                    error: HandshakeError::Refused(RejectCode::Busy),
                },
            );
        }
        let hello = handshake::read_hello(&self.identity, &self.trust, body);
        #[cfg(feature = "fault-injection")]
        let hello = hello.or_else(|failure| self.fault_skip_trust_check(body, failure));
        match hello {
            Err(failure) => self.fail_handshake(conn, failure),
            Ok(dialer) => {
                let nonce = self.nonce();
                let responder = Responder::welcome(&self.identity, dialer, body, &nonce);
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.push_handshake(responder.welcome_body(), &mut self.ctx);
                c.state = State::AwaitProof(Box::new(responder));
            }
        }
    }

    fn on_welcome(&mut self, conn: ConnId, body: &[u8], initiator: Initiator) {
        match initiator.on_welcome(&self.identity, &self.trust, body) {
            Err(failure) => self.fail_handshake(conn, failure),
            Ok((peer, proof)) => {
                let first_id = self.rng.next_u64();
                let first_id = if fault!(self.ctx.config, ReplyAnyConnection) {
                    1
                } else {
                    first_id
                };
                let seed = self.rng.next_u64();
                let me = self.identity.peer_id();
                let session = Session::new(conn, peer, me, self.ctx.now, first_id, seed);
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.push_handshake(&proof, &mut self.ctx);
                c.establish(session, &mut self.ctx);
                self.register(conn);
            }
        }
    }

    fn on_proof(&mut self, conn: ConnId, body: &[u8], responder: Responder) {
        match responder.on_proof(body) {
            Err(failure) => self.fail_handshake(conn, failure),
            // Trust is checked again here: the peer may have been unpaired
            // while it was proving itself.
            Ok(peer) if !self.trust.contains(&peer) && !fault!(self.ctx.config, SkipTrustCheck) => {
                self.fail_handshake(
                    conn,
                    Failure {
                        send: Some(RejectCode::Untrusted),
                        error: HandshakeError::Refused(RejectCode::Untrusted),
                    },
                )
            }
            Ok(peer) => {
                let first_id = self.rng.next_u64();
                let first_id = if fault!(self.ctx.config, ReplyAnyConnection) {
                    1
                } else {
                    first_id
                };
                let seed = self.rng.next_u64();
                let session = Session::new(conn, peer, peer, self.ctx.now, first_id, seed);
                self.inbound_handshakes = self.inbound_handshakes.saturating_sub(1);
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.establish(session, &mut self.ctx);
                self.register(conn);
            }
        }
    }

    /// A connection just became established: make it the peer's one
    /// connection, or let the rule of section 4 pick between it and the
    /// one already there.
    fn register(&mut self, conn: ConnId) {
        let Some(new) = self.conns.get(&conn).and_then(Connection::session) else {
            return;
        };
        let peer = new.peer;
        let newer = registry::Established {
            initiator: new.initiator,
            at: new.established_at,
        };
        let older = self.registry.get(&peer).and_then(|old| {
            let s = self.conns.get(old)?.session()?;
            Some((
                *old,
                registry::Established {
                    initiator: s.initiator,
                    at: s.established_at,
                },
            ))
        });
        if let Some((old, older)) = older {
            let loser = match registry::survivor(older, newer, self.ctx.config.handshake_timeout) {
                _ if fault!(self.ctx.config, SupersedeNewest) => old,
                Survivor::Newer => old,
                Survivor::Older => conn,
            };
            self.end(
                loser,
                Farewell::Goodbye(GoodbyeCode::Superseded, "superseded".into()),
                CloseReason::local(GoodbyeCode::Superseded, "superseded"),
                HandshakeError::Superseded,
            );
            if loser == conn {
                return;
            }
        }
        self.registry.insert(peer, conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let direction = c.direction;
        if let Some(s) = c.session_mut() {
            s.announced = true;
        }
        tracing::debug!(conn = %conn, peer = %peer, ?direction, "connected");
        self.emit(Event::Connected {
            conn,
            peer,
            direction,
        });
    }

    /// Fault `SkipTrustCheck`: a HELLO refused only because its key is
    /// untrusted is taken as if the key were trusted.
    #[cfg(feature = "fault-injection")]
    fn fault_skip_trust_check(
        &self,
        hello: &[u8],
        failure: Failure,
    ) -> Result<handshake::Dialer, Failure> {
        let untrusted = failure.error == HandshakeError::Refused(RejectCode::Untrusted);
        match hello.get(6..6 + 32).map(PeerId::from_slice) {
            Some(Ok(key)) if untrusted && fault!(self.ctx.config, SkipTrustCheck) => {
                let mut trust = self.trust.clone();
                trust.insert(key, None);
                handshake::read_hello(&self.identity, &trust, hello)
            }
            _ => Err(failure),
        }
    }

    /// Fault `ReplyAnyConnection`: the REPLY's id is looked up on every
    /// connection, in ConnId order, as if request ids were global.
    #[cfg(feature = "fault-injection")]
    fn fault_reply_any_connection(&self, conn: ConnId, id: u64) -> ConnId {
        let owner = match fault!(self.ctx.config, ReplyAnyConnection) {
            true => self
                .conns
                .iter()
                .find(|(_, c)| c.session().is_some_and(|s| s.outbound.contains(id))),
            false => None,
        };
        owner.map_or(conn, |(owner, _)| *owner)
    }

    fn protocol_error(&mut self, conn: ConnId, reason: String) {
        self.end(
            conn,
            Farewell::Goodbye(GoodbyeCode::ProtocolError, reason.clone()),
            CloseReason::local(GoodbyeCode::ProtocolError, reason),
            HandshakeError::Frame,
        );
    }

    fn on_envelope(&mut self, conn: ConnId, data: &Bytes, len: usize) {
        let body = &data[..len];
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let direction = c.direction;
        let Some(s) = c.session_mut() else { return };
        if !s.heard_envelope && direction == Direction::Outbound {
            // The responder's verdict on our PROOF can arrive after we
            // started using the connection.
            if let Some(code) = handshake::parse_reject(body) {
                return self.end(
                    conn,
                    Farewell::Nothing,
                    CloseReason::Rejected(code),
                    HandshakeError::Rejected(code),
                );
            }
        }
        let envelope = match Envelope::decode_prefix(data, len) {
            Ok(envelope) => envelope,
            Err(error) => return self.protocol_error(conn, format!("{error}")),
        };
        s.heard_envelope = true;
        let peer = s.peer;
        match envelope {
            Envelope::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => self.on_call(conn, peer, id, handle, args, timeout_ms),
            Envelope::Reply { id, status, body } => {
                #[cfg(feature = "fault-injection")]
                let (conn, s) = {
                    let conn = self.fault_reply_any_connection(conn, id);
                    let s = self.conns.get_mut(&conn).and_then(Connection::session_mut);
                    (conn, s.expect("the connection is established"))
                };
                if !s.outbound.remove(id, &mut self.ctx.timers) {
                    // A late reply to a call that timed out or was
                    // cancelled, or any unknown id: dropped (3.1).
                    return;
                }
                let result = match ReplyStatus::from_code(status) {
                    ReplyStatus::Ok => Ok(body),
                    ReplyStatus::NoSuchHandle => Err(CallError::NoSuchHandle),
                    ReplyStatus::Forbidden => Err(CallError::Forbidden),
                    ReplyStatus::HandlerPanicked => Err(CallError::HandlerPanicked(body)),
                    ReplyStatus::Overloaded => Err(CallError::Overloaded),
                    ReplyStatus::ShuttingDown => Err(CallError::ShuttingDown),
                    ReplyStatus::TooLarge => Err(CallError::ResultTooLarge),
                    _ => Err(CallError::HandlerError(body)),
                };
                self.emit(Event::CallResult {
                    id: CallId { conn, id },
                    result,
                });
            }
            Envelope::Send { handle, args } => {
                if self.exposure.check(handle.as_str(), &peer).is_ok() && !self.shutting_down {
                    self.emit(Event::Send(InboundSend { peer, handle, args }));
                }
            }
            Envelope::Ping { nonce } => {
                let _ = c.push(&Envelope::Pong { nonce }, &mut self.ctx);
                self.enforce_send_cap(conn);
            }
            Envelope::Pong { nonce } => {
                if s.ping == Some(nonce) {
                    s.ping = None;
                }
            }
            Envelope::Goodbye { code, reason } => self.end(
                conn,
                Farewell::Nothing,
                CloseReason::Goodbye {
                    by: Side::Remote,
                    code: GoodbyeCode::from_code(code),
                    reason,
                },
                HandshakeError::TransportLost,
            ),
            Envelope::Cancel { id } => {
                if s.inbound.remove(id, &mut self.ctx.timers) {
                    self.emit(Event::CallCancelled(InboundCallId { conn, id }));
                }
            }
        }
    }

    fn on_call(
        &mut self,
        conn: ConnId,
        peer: PeerId,
        id: u64,
        handle: Handle,
        args: Bytes,
        timeout_ms: u64,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(s) = c.session_mut() else { return };
        if id == 0 {
            return self.protocol_error(conn, "CALL with request id 0".into());
        }
        if s.inbound.contains(id) {
            return self.protocol_error(
                conn,
                format!("CALL reuses request id {id}, still in flight"),
            );
        }
        let verdict = if self.shutting_down {
            Err(ReplyStatus::ShuttingDown)
        } else {
            let full = s.inbound.len() >= self.ctx.config.max_inbound_calls
                && !fault!(self.ctx.config, IgnoreInboundLimit);
            let exposed = self.exposure.check(handle.as_str(), &peer);
            let exposed = exposed.or_else(|e| match fault!(self.ctx.config, SkipExposureCheck) {
                true => Ok(()),
                false => Err(e),
            });
            exposed.and(if full {
                Err(ReplyStatus::Overloaded)
            } else {
                Ok(())
            })
        };
        match verdict {
            Err(status) => {
                let _ = c.push(
                    &Envelope::Reply {
                        id,
                        status: status.code(),
                        body: Bytes::new(),
                    },
                    &mut self.ctx,
                );
                self.enforce_send_cap(conn);
            }
            Ok(()) => {
                let deadline =
                    (timeout_ms > 0).then(|| self.ctx.now + Duration::from_millis(timeout_ms));
                s.inbound.insert(id, deadline, &mut self.ctx.timers);
                let id = InboundCallId { conn, id };
                self.emit(Event::Call(InboundCall {
                    id,
                    peer,
                    handle,
                    args,
                    deadline,
                }));
            }
        }
    }

    /// A peer that makes us queue replies and pongs it never reads would
    /// grow our memory without bound: past the hard cap it is cut off.
    fn enforce_send_cap(&mut self, conn: ConnId) {
        let cap = self.ctx.config.hard_send_cap();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.queued() <= cap {
            return;
        }
        c.discard_queue();
        let reason = format!("peer does not read: over {cap} bytes queued");
        self.protocol_error(conn, reason);
    }

    /// Ends a connection: sends its farewell, resolves every call still in
    /// flight on it, disarms its timers and tells the driver and the
    /// application. The one way a connection ever leaves the endpoint.
    fn end(
        &mut self,
        conn: ConnId,
        farewell: Farewell,
        reason: CloseReason,
        handshake_error: HandshakeError,
    ) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        let counted = c.direction == Direction::Inbound
            && matches!(
                c.state,
                State::AwaitHello { busy: false } | State::AwaitProof(_)
            );
        if counted {
            self.inbound_handshakes = self.inbound_handshakes.saturating_sub(1);
        }
        let peer = c.peer();
        let announced = c.session().is_some_and(|s| s.announced);
        if announced {
            if let Some(peer) = peer {
                if self.registry.get(&peer) == Some(&conn) {
                    self.registry.remove(&peer);
                }
            }
        }
        // A handshake in progress is abandoned without a GOODBYE: the peer
        // would read an envelope where it expects a handshake frame.
        let farewell = match farewell {
            Farewell::Goodbye(..) if c.session().is_none() => Farewell::Nothing,
            other => other,
        };
        match farewell {
            Farewell::Nothing => {}
            Farewell::Goodbye(code, reason) => {
                let goodbye = Envelope::Goodbye {
                    code: code.code(),
                    reason,
                };
                let _ = goodbye.encode_frame(c.out_mut(), self.ctx.config.max_frame_len);
            }
            Farewell::Reject(code) => encode_frame(&handshake::reject(code), c.out_mut()),
        }
        let left = c.teardown(&mut self.ctx);
        for id in left.outbound {
            self.emit(Event::CallResult {
                id: CallId { conn, id },
                result: Err(CallError::ConnectionClosed(reason.clone())),
            });
        }
        for id in left.inbound {
            self.emit(Event::CallCancelled(InboundCallId { conn, id }));
        }
        self.ctx.outputs.push_back(Output::Close {
            conn,
            last: left.last,
        });
        match (announced, peer) {
            (true, Some(peer)) => {
                tracing::debug!(conn = %conn, peer = %peer, reason = %reason, "disconnected");
                self.emit(Event::Disconnected { conn, peer, reason });
            }
            _ => {
                tracing::debug!(conn = %conn, peer = ?peer, error = %handshake_error, "handshake failed");
                self.emit(Event::HandshakeFailed {
                    conn,
                    peer,
                    error: handshake_error,
                });
            }
        }
    }
}

/// At most `max` bytes of `note`, cut on a UTF-8 boundary (the note must
/// stay valid UTF-8); anything that is not UTF-8 is dropped.
fn utf8_prefix(note: Bytes, max: usize) -> Bytes {
    let valid = match core::str::from_utf8(&note) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let mut end = valid.min(max);
    while end > 0 && core::str::from_utf8(&note[..end]).is_err() {
        end -= 1;
    }
    note.slice(..end)
}
