//! The endpoint: every connection of one node, routed by [`ConnId`], and
//! what they share: the identity, the trust list, the exposed handles, the
//! RNG, the registry of one connection per peer, the deadline table and
//! the output queue. The protocol itself runs in each
//! [`Connection`](crate::connection); the endpoint hands it input and acts
//! on the [`Transition`] it returns.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use bytes::Bytes;
use rand_core::CryptoRng;

use crate::Instant;
use crate::book::AddressBook;
use crate::config::{Config, fault};
use crate::connection::{Connection, Ctx, Node, NotInFlight};
use crate::counters::Counters;
use crate::dial::DialSchedule;
use crate::ending::Ending;
use crate::envelope::{Handle, InvalidHandle, check_handle_len};
use crate::error::{CallError, ConnectError, SendError};
#[cfg(doc)]
use crate::event::{Event, InboundCall};
use crate::event::{Input, Output, Response};
use crate::exposure::{Access, Exposure};
use crate::handshake;
use crate::identity::{Identity, PeerId};
use crate::ids::{CallId, ConnId, InboundCallId};
use crate::noise::{INIT_LEN, KeyCache, LocalStatic, ReplayCache};
use crate::reconnects::Reconnects;
use crate::registry::Registry;
use crate::sources::{Source, SourceRefusal, Sources};
use crate::stats::Stats;
use crate::timers::Timer;
use crate::trust::{Label, TrustList};

/// A whole peernet node, without I/O.
///
/// The endpoint never reads a clock, opens a socket or draws entropy of its
/// own: time is passed into every call and randomness comes from the RNG
/// given to [`Endpoint::new`]. Its methods fall into four groups:
///
/// - **getters**: [`peer_id`](Self::peer_id), [`is_connected`](Self::is_connected),
///   [`trust`](Self::trust), [`stats`](Self::stats), …
/// - **input**: [`connect`](Self::connect) and [`accept`](Self::accept)
///   when a transport opens ([`connect_to`](Self::connect_to) for an
///   [`Output::Dial`], or [`dial_failed`](Self::dial_failed) when it could
///   not be opened), [`handle_input`](Self::handle_input) for its
///   bytes and its end, [`handle_timeout`](Self::handle_timeout) when the
///   deadline from `poll_timeout` is reached;
/// - **commands**: [`call`](Self::call), [`send`](Self::send),
///   [`reply`](Self::reply), [`cancel`](Self::cancel), [`expose`](Self::expose),
///   [`pair`](Self::pair), [`unpair`](Self::unpair), [`shutdown`](Self::shutdown),
///   dialing by PeerId: [`add_address`](Self::add_address),
///   [`dial`](Self::dial), [`keep_connected`](Self::keep_connected), …
/// - **output**: [`poll_output`](Self::poll_output) until it returns `None`,
///   [`poll_transmit`](Self::poll_transmit) for a connection's bytes, and
///   [`poll_timeout`](Self::poll_timeout) for when to call
///   `handle_timeout` next.
///
/// The driver loop: after any input or command, drain `poll_output`; write
/// what `poll_transmit` gives for each [`Output::Transmit`] (as soon as the
/// transport can take it: holding back is how backpressure works); then
/// wait for the next input or for `poll_timeout`. Input that the output
/// bound keeps waiting ([`crate::OUTPUTS_BEFORE_PAUSE`]) is handled as
/// the outputs are taken: what happens before that (a timer due, a
/// command) happens before it.
///
/// ```no_run
/// # use peernet_proto::*;
/// # fn read_some() -> (ConnId, bytes::BytesMut) { unimplemented!() }
/// # fn write(_: ConnId, _: bytes::Bytes) {}
/// # fn close(_: ConnId, _: bytes::Bytes) {}
/// # fn open(_: PeerId, _: std::net::SocketAddr) {}
/// # fn clock() -> Instant { unimplemented!() }
/// # fn handle(_: Event) {}
/// # let mut endpoint: Endpoint = unimplemented!();
/// fn drain(endpoint: &mut Endpoint) {
///     while let Some(output) = endpoint.poll_output() {
///         match output {
///             Output::Transmit(conn) => {
///                 if let Some(bytes) = endpoint.poll_transmit(conn) {
///                     write(conn, bytes);
///                 }
///             }
///             Output::Close { conn, last } => close(conn, last),
///             Output::Event(event) => handle(event),
///             // later: `connect_to` once open, or `dial_failed`
///             Output::Dial { peer, addr } => open(peer, addr),
///         }
///     }
/// }
/// loop {
///     let (conn, data) = read_some(); // or a timeout
///     endpoint.handle_input(clock(), Input::Received { conn, data });
///     drain(&mut endpoint);
///     endpoint.handle_timeout(clock());
///     drain(&mut endpoint);
///     let _wake_at = endpoint.poll_timeout();
/// }
/// ```
pub struct Endpoint {
    ctx: Ctx,
    identity: Identity,
    /// Version 2's static keys, derived once from `identity`.
    local: LocalStatic,
    /// Version 2: the ephemeral keys of the INITs answered within
    /// `handshake_timeout`, so a replayed INIT is closed before any X25519
    /// work.
    replay: ReplayCache,
    /// Version 2: the static keys of trusted peers met lately, each
    /// derived once (bounded, `noise/key_cache.rs`).
    keys: KeyCache,
    trust: TrustList,
    rng: Box<dyn CryptoRng + Send>,
    conns: BTreeMap<ConnId, Connection>,
    /// The one established connection per peer.
    registry: Registry,
    exposure: Exposure,
    next_conn: u64,
    inbound_handshakes: usize,
    /// Inbound connections that took a handshake slot, in accept order,
    /// while they may not have delivered a complete frame yet (those that
    /// since did, or ended, are skipped and dropped as they come up; see
    /// `transports.rs`).
    silent: VecDeque<ConnId>,
    /// Per source address: handshakes in progress, failures charged.
    sources: Sources,
    /// Each trusted peer's inbound connections lately (`reconnects.rs`).
    reconnects: Reconnects,
    shutting_down: bool,
    /// Where each trusted peer may be dialed.
    book: AddressBook,
    /// The peers being dialed through the book or kept connected.
    dials: DialSchedule,
    /// Connections whose input waits for the output queue to empty
    /// (`input.rs`).
    paused: BTreeSet<ConnId>,
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

/// What a connection may read of the endpoint, borrowed field by field so
/// the connection map stays borrowable beside it.
macro_rules! node {
    ($ep:ident) => {
        Node {
            identity: &$ep.identity,
            trust: &$ep.trust,
            exposure: &$ep.exposure,
            rng: &mut *$ep.rng,
            shutting_down: $ep.shutting_down,
            local: &$ep.local,
            replay: &mut $ep.replay,
            keys: &mut $ep.keys,
            reconnects: &$ep.reconnects,
        }
    };
}

impl Endpoint {
    /// A new endpoint for `identity`, trusting the peers in `trust`
    /// but itself: an entry of its own PeerId is left out (a node never
    /// trusts itself, PROTOCOL.md 2.1; see [`Endpoint::pair`]).
    /// `rng` supplies every nonce, ephemeral key and request-id start.
    /// A value of `config` that [`Config::validate`] refuses is taken as
    /// the nearest workable one (a zero duration as 1 ms, a zero count or
    /// budget as 1; see there).
    pub fn new(
        mut config: Config,
        identity: Identity,
        mut trust: TrustList,
        mut rng: Box<dyn CryptoRng + Send>,
    ) -> Endpoint {
        trust.remove(&identity.peer_id());
        // (what `Config::validate` refuses, made workable)
        config = config.workable();
        #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
        let mut book = AddressBook::new(config.max_addresses_per_peer, config.max_addresses);
        // (the book has no config: it is handed the fault it checks)
        #[cfg(feature = "fault-injection")]
        {
            book.fault = config.fault;
        }
        config.max_frame_len = config
            .max_frame_len
            .max(handshake::MAX_HANDSHAKE_FRAME)
            .max(INIT_LEN as u32);
        // Every INIT answered within the window, up to twice the
        // handshakes that may be in progress at once.
        // One secret seed for the hash tables keyed by what peers choose
        // (one draw, so the RNG's stream is what it was before `sources`).
        let table_seed = rng.next_u64();
        let replay = ReplayCache::new(
            config.max_handshakes.saturating_mul(2).max(16),
            config.handshake_timeout,
            table_seed,
        );
        let local = LocalStatic::new(&identity);
        let sources = Sources::new(config.source_limits, table_seed.rotate_left(32));
        let reconnects = Reconnects::new(config.peer_connects, table_seed.rotate_left(48));
        Endpoint {
            ctx: Ctx {
                config,
                timers: Default::default(),
                outputs: Default::default(),
                now: Instant::ZERO,
                held: 0,
                orphans: crate::orphans::Orphans::default(),
                handshake_held: 0,
                counters: Counters::default(),
            },
            identity,
            local,
            replay,
            keys: KeyCache::new(),
            trust,
            rng,
            conns: BTreeMap::new(),
            registry: Registry::default(),
            exposure: Exposure::default(),
            next_conn: 1,
            inbound_handshakes: 0,
            silent: VecDeque::new(),
            sources,
            reconnects,
            shutting_down: false,
            book,
            dials: DialSchedule::default(),
            paused: BTreeSet::new(),
        }
    }

    // ----- input -----

    /// Bytes arrived on a transport, or it ended.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Received { conn, data } => {
                self.ctx.counters.bytes_in += data.len() as u64;
                self.receive(conn, data);
            }
            Input::Closed { conn } => self.transport_ended(conn, Ending::TransportLost),
            Input::Stalled { .. } if fault!(self.ctx.config, IgnoreStalled) => {}
            Input::Stalled { conn } => {
                let idle = self.ctx.config.idle_timeout;
                self.transport_ended(conn, Ending::Stalled(idle));
            }
        }
    }

    /// Fires every deadline due at `now`. Harmless to call early or often.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.ctx.now;
        while let Some((_, timer)) = self.ctx.timers.pop_due(now) {
            // Drawn whether or not a PING goes out, so the RNG's sequence
            // depends on the timers alone.
            let nonce = match timer {
                Timer::Liveness(_) => self.rng.next_u64(),
                _ => 0,
            };
            let Some(conn) = timer.conn() else {
                if let Timer::Dial(peer) = timer {
                    self.on_dial_timer(peer);
                }
                continue;
            };
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if let Some(ending) = c.handle_timer(timer, nonce, &mut self.ctx) {
                self.end(conn, ending);
            }
        }
    }

    // ----- commands -----

    /// Calls `handle` on `peer` over its established connection. The call
    /// resolves later, exactly once, with [`Event::CallResult`]; an `Err`
    /// here means nothing was sent and no event will follow. The refusals
    /// are those of [`SendError`], as the matching [`CallError`] variants
    /// (`NotConnected`, `WouldBlock`, `MessageTooLarge`, `InvalidHandle`):
    /// one error type then covers a call from request to resolution.
    ///
    /// `timeout` is carried in the CALL so the callee can stop work it no
    /// longer needs to do; when it runs out the call fails with
    /// [`CallError::Timeout`] and CANCEL is sent. The wire carries whole
    /// milliseconds and 0 there means no limit (PROTOCOL.md 3.1), so a
    /// timeout is rounded up: 500 µs goes out as 1 ms (the callee never
    /// gives up before us) while the call still times out here after
    /// 500 µs. A zero timeout (`Some(Duration::ZERO)`: a budget already
    /// spent) sends nothing at all: it is refused where any call would
    /// be, and otherwise gets its id and resolves with
    /// [`CallError::Timeout`] at the next [`Endpoint::poll_output`],
    /// counted as timed out, holding no slot.
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
        let (c, ctx) = self.established(peer, handle)?;
        Ok(c.call(handle, args, timeout, ctx)?)
    }

    /// Sends to `handle` on `peer`, fire-and-forget: no id, no reply, and a
    /// refusal on the other side is silent. `Ok` means it is queued; an
    /// `Err` means nothing was.
    pub fn send(
        &mut self,
        now: Instant,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
    ) -> Result<(), SendError> {
        self.advance(now);
        let (c, ctx) = self.established(peer, handle)?;
        c.send(handle, args, ctx)
    }

    /// Gives up on one of our calls: it resolves now with
    /// [`CallError::Cancelled`] and CANCEL is sent. Returns false if the
    /// call had already resolved.
    pub fn cancel(&mut self, now: Instant, call: CallId) -> bool {
        self.advance(now);
        let Some(c) = self.conns.get_mut(&call.conn) else {
            return false;
        };
        c.cancel(call.id, &mut self.ctx)
    }

    /// A SEND's handler finished (or will never run): gives the `bytes` of
    /// its arguments (`args.len()` of its [`Event::Send`]) back to the
    /// byte budgets of its connection `conn` (if still open) and of the
    /// node. Call it exactly once per [`Event::Send`]: until then its
    /// arguments count as held, so that a peer cannot pin memory with
    /// sends whose handlers never finish.
    pub fn send_done(&mut self, conn: ConnId, bytes: usize) {
        match self.conns.get_mut(&conn) {
            Some(c) => c.send_done(bytes),
            None => self.ctx.orphans.done(conn, bytes),
        }
        self.ctx.held = self.ctx.held.saturating_sub(bytes);
    }

    /// Answers a call from [`Event::Call`]. Returns false (and sends
    /// nothing) if the call is no longer in flight: cancelled, timed out,
    /// or its connection ended. A result too large for one frame is
    /// answered with status `too_large`.
    pub fn reply(&mut self, now: Instant, call: InboundCallId, response: Response) -> bool {
        self.advance(now);
        let Some(c) = self.conns.get_mut(&call.conn) else {
            return false;
        };
        match c.reply(call, response, &mut self.ctx) {
            Err(NotInFlight) => false,
            Ok(None) => true,
            Ok(Some(ending)) => {
                self.end(call.conn, ending);
                true
            }
        }
    }

    /// Opens `handle` to the peers `access` allows (replacing an earlier
    /// rule for the same handle).
    pub fn expose(&mut self, handle: &str, access: Access) -> Result<(), InvalidHandle> {
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

    /// Closes every handle, as [`Endpoint::unexpose`] each, and returns
    /// their access rules for the caller to drop where it may: a rule may
    /// hold what must not be dropped under the caller's lock (a driver's
    /// handle of its own node, whose last drop closes the node).
    pub fn unexpose_all(&mut self) -> Vec<Access> {
        self.exposure.take_all()
    }

    /// Trusts `peer` (or relabels it). Returns true if it was not trusted.
    /// The endpoint's own PeerId is never trusted: pairing it changes
    /// nothing and returns false (it could only make the endpoint dial
    /// itself, which the handshake refuses).
    pub fn pair(&mut self, peer: PeerId, label: Option<Label>) -> bool {
        if peer == self.identity.peer_id() {
            return false;
        }
        self.trust.insert(peer, label)
    }

    /// Stops trusting `peer`: its connection is closed at once with
    /// GOODBYE `revoked` (its calls fail with that reason), its
    /// handshakes in progress are abandoned, its dials stop and its
    /// addresses are forgotten. Returns true if it was trusted.
    pub fn unpair(&mut self, now: Instant, peer: &PeerId) -> bool {
        self.advance(now);
        let was = self.trust.remove(peer);
        self.keys.remove(peer);
        self.forget_dials(peer);
        let doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer() == Some(*peer))
            .filter(|_| !fault!(self.ctx.config, KeepRevokedConnections))
            .map(|(id, _)| *id)
            .collect();
        for conn in doomed {
            let revoked = !fault!(self.ctx.config, RevokedAsNormal);
            self.end(
                conn,
                if revoked {
                    Ending::Unpaired
                } else {
                    Ending::Disconnected
                },
            );
        }
        was
    }

    /// Closes the connection to `peer` on purpose, with GOODBYE `normal`
    /// after everything still queued for it: the SENDs the application
    /// gave before the close, and the replies in the queue (those still
    /// waiting for room behind a full queue are dropped, and their calls
    /// fail with the close). Every other close (an unpair,
    /// a newer connection, a timeout, a broken protocol) keeps its last
    /// write within [`crate::LAST_COPIED`] bytes and drops a longer queue.
    /// Returns false if there was none.
    pub fn disconnect(&mut self, now: Instant, peer: &PeerId) -> bool {
        self.advance(now);
        let Some(conn) = self.connection(peer) else {
            return false;
        };
        self.end(conn, Ending::Disconnected);
        true
    }

    /// Starts shutting down: no new transports, no more dials, and new
    /// calls are answered with `shutting_down`, while calls already
    /// running may still reply. Finish with [`Endpoint::close_all`].
    pub fn shutdown(&mut self, now: Instant) {
        self.advance(now);
        self.shutting_down = true;
        self.stop_all_dials();
    }

    /// Closes every connection: GOODBYE `normal` on established ones (their
    /// calls fail; what is still queued goes first, as for
    /// [`Endpoint::disconnect`]), abandoning handshakes in progress.
    pub fn close_all(&mut self, now: Instant) {
        self.advance(now);
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.end(conn, Ending::ShuttingDown);
        }
    }

    /// Queues `envelope` on `conn` as it is, whatever the connection's
    /// state of calls (sealed in a record in version 2): for tests that
    /// make a peer misbehave, e.g. answer a call it no longer serves.
    /// False if `conn` is not established or the envelope does not fit.
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn testkit_queue_envelope(
        &mut self,
        now: Instant,
        conn: ConnId,
        envelope: &crate::Envelope,
    ) -> bool {
        self.advance(now);
        match self.conns.get_mut(&conn) {
            Some(c) => c.queue_raw(envelope, &mut self.ctx),
            None => false,
        }
    }

    // ----- output -----

    /// The next thing for the driver to do, or `None` when there is
    /// nothing until the next input or `poll_timeout`. Input handed in
    /// while [`crate::OUTPUTS_BEFORE_PAUSE`] outputs waited is decoded
    /// here, once the queue is empty: taking every output gets every event.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.ctx.outputs.pop_front() {
            return Some(output);
        }
        if self.paused.is_empty() {
            return None;
        }
        self.resume_paused();
        self.ctx.outputs.pop_front()
    }

    /// Everything queued for `conn`, as one buffer to write in one go.
    /// Taking it frees room in the connection's send queue.
    /// In version 2 the envelopes queued are sealed into records here.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Bytes> {
        match self.conns.get_mut(&conn)?.take_transmit(&mut self.ctx) {
            Ok(bytes) => {
                let sent = bytes.as_ref().map_or(0, Bytes::len);
                self.ctx.counters.bytes_out += sent as u64;
                bytes
            }
            Err(ending) => {
                self.end(conn, ending);
                None
            }
        }
    }

    /// Test hook (`testkit` only): the next record `conn` seals uses nonce
    /// `send`, the next it opens `recv`. `false` if `conn` has no record
    /// keys (version 1, or before the handshake gave them).
    #[cfg(feature = "testkit")]
    pub fn testkit_set_record_nonces(&mut self, conn: ConnId, send: u64, recv: u64) -> bool {
        self.conns
            .get_mut(&conn)
            .is_some_and(|c| c.set_record_nonces(send, recv))
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

    /// The established connection to `peer`, for a message to `handle`.
    fn established(
        &mut self,
        peer: &PeerId,
        handle: &str,
    ) -> Result<(&mut Connection, &mut Ctx), SendError> {
        check_handle_len(handle.len()).map_err(SendError::InvalidHandle)?;
        let conn = self.registry.get(peer);
        let conn = conn.ok_or_else(|| self.not_connected(peer))?;
        let c = self.conns.get_mut(&conn).ok_or(SendError::NotConnected)?;
        Ok((c, &mut self.ctx))
    }
}

// The endpoint's reactions to what its connections report: a new
// connection to register, an ending to carry out.
mod transitions;
// Dialing by PeerId: the address book, one-off dials, kept peers.
mod dialing;
mod input;
mod queries;
mod round;
mod transports;
