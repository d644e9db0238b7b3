//! One transport's state machine: its framing, its send queue, its
//! handshake or session, its liveness and the deadlines it has armed.
//!
//! A connection owns its protocol logic: [`Connection::handle_data`] takes
//! the transport's bytes through the handshake (section 2, or 6 for
//! version 2) and then the envelopes (section 3), in version 2 each
//! record opened in place first (section 7); the commands (`call`, `send`, `cancel`, `reply`)
//! and the timers act on it through its methods. It never reaches the
//! endpoint's tables: what the endpoint must do in turn comes back as a
//! [`Transition`] (established: register it; ended: remove it), and what
//! the application must hear goes straight to the shared output queue.
//!
//! Rooms: `handshake` (the handshake's states, one variant per protocol
//! version), `session` (an established connection: calls, ids, the
//! envelopes), `liveness` (PING and idle), `transmit` (the send queue,
//! which seals version 2's records), `in_flight` (the call tables),
//! `closing` (how it ends: the farewell and the last write), `pin` (what
//! an inbound argument keeps alive, charged to the byte budgets),
//! `budget` (what a handshake's split frame holds, charged to the node's
//! budget for handshakes).

use alloc::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use rand_core::CryptoRng;

use crate::Instant;
use crate::config::{Config, ProtocolVersion, fault};
use crate::counters::{Counters, HandshakeCounts};
use crate::ending::Ending;
use crate::envelope::{Arena, EnvelopeRef};
use crate::error::ConnectError;
use crate::event::{Event, OUTPUTS_BEFORE_PAUSE, Output};
use crate::exposure::Exposure;
use crate::frame::{Frame, FrameDecoder};
use crate::handshake::MAX_HANDSHAKE_FRAME;
use crate::identity::{Identity, PeerId};
use crate::ids::{ConnId, Direction};
use crate::noise::{CipherState, INIT_LEN, KeyCache, LocalStatic, ReplayCache};
use crate::orphans::Orphans;
use crate::reconnects::Reconnects;
use crate::registry::Established;
use crate::timers::{Timer, Timers};
use crate::trust::TrustList;

mod budget;
mod closing;
mod handshake;
mod in_flight;
mod liveness;
mod pin;
mod queries;
mod records;
mod replies;
mod session;
mod transmit;

use handshake::{Handshake, Step};
use liveness::{Check, Liveness};
use replies::Waiting;
pub(crate) use session::NotInFlight;
use session::Session;
use transmit::Transmit;

/// What the endpoint lends every connection to act: the limits, the
/// deadline table, the output queue and the time.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) timers: Timers,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) now: Instant,
    /// Bytes held over the whole node for what peers make us keep
    /// (arguments of calls we serve in flight, of SENDs still running,
    /// bodies of replies waiting for room): against
    /// `Config::max_inbound_bytes`.
    pub(crate) held: usize,
    /// Of those, the SENDs of ended connections, per peer (`orphans.rs`).
    pub(crate) orphans: Orphans,
    /// Bytes the connections whose handshake is not finished hold for
    /// split frames: against `Config::max_handshake_bytes` (`budget.rs`).
    pub(crate) handshake_held: usize,
    /// What happened since the endpoint started.
    pub(crate) counters: Counters,
}

impl Ctx {
    /// Whether decoding input pauses: [`OUTPUTS_BEFORE_PAUSE`] outputs wait
    /// for the driver already.
    pub(crate) fn outputs_full(&self) -> bool {
        self.outputs.len() >= OUTPUTS_BEFORE_PAUSE
    }

    /// Hands `event` to the application.
    pub(crate) fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }
}

/// What a connection may read of the node while handling input, and the
/// node's RNG for its nonces and request-id starts.
pub(crate) struct Node<'a> {
    pub(crate) identity: &'a Identity,
    pub(crate) trust: &'a TrustList,
    pub(crate) exposure: &'a Exposure,
    pub(crate) rng: &'a mut (dyn CryptoRng + Send),
    pub(crate) shutting_down: bool,
    /// Version 2: the static keys, derived once per endpoint.
    pub(crate) local: &'a LocalStatic,
    /// Version 2: the ephemeral keys of INITs answered lately.
    pub(crate) replay: &'a mut ReplayCache,
    /// Version 2: trusted peers' static keys, derived once.
    pub(crate) keys: &'a mut KeyCache,
    /// How often each trusted peer connected lately (`reconnects.rs`).
    pub(crate) reconnects: &'a Reconnects,
}

/// What the endpoint must do after a connection handled input.
#[derive(Debug)]
pub(crate) enum Transition {
    /// The handshake finished: register the connection (section 4) and
    /// announce it, or end it if it loses.
    Established,
    /// End the connection.
    End(Ending),
    /// The endpoint's output queue is full ([`Ctx::outputs_full`]): keep
    /// the rest of the bytes with the connection until it empties.
    Pause,
    /// Fault `ReplyAnyConnection` only: a REPLY to be matched against every
    /// connection's calls, as if request ids were global.
    MisroutedReply {
        /// The REPLY's id.
        id: u64,
        /// Its status code.
        status: u64,
        /// Its body.
        body: Bytes,
    },
}

enum State {
    Handshake(Handshake),
    Established(Session),
}

pub(crate) struct Connection {
    id: ConnId,
    direction: Direction,
    state: State,
    decoder: FrameDecoder,
    tx: Transmit,
    liveness: Liveness,
    /// When `Timer::Handshake` is armed for, while it is.
    handshake_deadline: Option<Instant>,
    /// Version 2, once the handshake gave the keys: opens the peer's
    /// records. Every frame from then on is a record.
    recv: Option<CipherState>,
    /// Version 2: a record's plaintext not yet decoded to its end, where
    /// the next envelope starts (decoding stops to let the endpoint act on
    /// a transition, then resumes), and whether the record has a buffer of
    /// its own (`session::Pin`).
    plain: Option<(Bytes, usize, bool)>,
    /// The buffer the small payloads of the record (version 2) or read
    /// chunk (version 1) being decoded share, released when it is done
    /// (nothing stays on an idle connection).
    arena: Arena,
    /// An accepted transport that has not delivered a complete frame yet:
    /// `Timer::Handshake` is armed for the first-frame deadline, and this
    /// is the whole handshake's deadline to move it to once a frame comes
    /// (the same when `first_frame_timeout` is the whole budget).
    first_frame_pending: Option<Instant>,
    /// Bytes handed in and not handled yet, while decoding is paused
    /// ([`Transition::Pause`]); `Some` (perhaps empty, with `plain` left)
    /// from the pause until the endpoint hands them in again.
    pub(crate) stash: Option<BytesMut>,
    /// The transport ended while a pause kept input: the connection ends
    /// so once that input is handled (`endpoint/input.rs`).
    pub(crate) ended: Option<Ending>,
    /// Established: our replies waiting for room (`replies.rs`).
    waiting: Waiting,
    /// What its split frame holds, charged to `Ctx::handshake_held`
    /// while its handshake runs (`budget.rs`).
    handshake_charge: usize,
}

impl Connection {
    /// A transport we dialed: HELLO is queued.
    pub(crate) fn dial(
        id: ConnId,
        expected: Option<PeerId>,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Result<Connection, ConnectError> {
        let mut tx = Transmit::new(id, ctx.now);
        let handshake = Handshake::dial(node, expected, &mut tx, ctx)?;
        let deadline = Connection::arm_handshake(id, ctx);
        Ok(Connection::new(
            id,
            Direction::Outbound,
            handshake,
            tx,
            deadline,
            ctx,
        ))
    }

    /// A transport we accepted; `busy` refuses its HELLO. Until its first
    /// complete frame it has `first_frame_timeout`, not the whole
    /// `handshake_timeout`: sockets that send nothing must not hold
    /// handshake slots for long.
    pub(crate) fn accept(id: ConnId, busy: bool, ctx: &mut Ctx) -> Connection {
        let whole = ctx.now + ctx.config.handshake_timeout;
        let first = (ctx.now + ctx.config.first_frame_timeout).min(whole);
        ctx.timers.arm(first, Timer::Handshake(id));
        let tx = Transmit::new(id, ctx.now);
        let mut conn = Connection::new(
            id,
            Direction::Inbound,
            Handshake::accept(busy, ctx.config.version),
            tx,
            first,
            ctx,
        );
        conn.first_frame_pending = Some(whole);
        conn
    }

    /// A responder has answered, and the frame that proves the dialer's
    /// key (version 1's PROOF, version 2's first record) is due one round
    /// trip later: the handshake gets `first_frame_timeout` from now, if
    /// that is sooner than its deadline (local policy, which PROTOCOL.md
    /// 2.1 and 6.1 leave to the node).
    fn proof_due(&mut self, ctx: &mut Ctx) {
        let due = ctx.now + ctx.config.first_frame_timeout;
        if let Some(at) = self.handshake_deadline.filter(|at| due < *at) {
            ctx.timers.disarm(at, Timer::Handshake(self.id));
            ctx.timers.arm(due, Timer::Handshake(self.id));
            self.handshake_deadline = Some(due);
        }
    }

    /// The whole handshake's budget starts with the transport.
    fn arm_handshake(id: ConnId, ctx: &mut Ctx) -> Instant {
        let deadline = ctx.now + ctx.config.handshake_timeout;
        ctx.timers.arm(deadline, Timer::Handshake(id));
        deadline
    }

    fn new(
        id: ConnId,
        direction: Direction,
        handshake: Handshake,
        tx: Transmit,
        deadline: Instant,
        ctx: &Ctx,
    ) -> Connection {
        // Version 2's INIT is the largest handshake frame, on both
        // versions: a version-1 node reads a whole INIT to answer it with
        // REJECT `unsupported_version` (PROTOCOL.md 2.1 step 2: the
        // version is checked before the length), not a frame error.
        let limit = match ctx.config.version {
            ProtocolVersion::V1 if fault!(ctx.config, SmallHandshakeFrames) => MAX_HANDSHAKE_FRAME,
            ProtocolVersion::V1 | ProtocolVersion::V2 => INIT_LEN as u32,
        };
        Connection {
            id,
            direction,
            state: State::Handshake(handshake),
            decoder: FrameDecoder::new(limit),
            tx,
            liveness: Liveness::new(id, ctx.now),
            handshake_deadline: Some(deadline),
            recv: None,
            plain: None,
            arena: Arena::default(),
            first_frame_pending: None,
            stash: None,
            ended: None,
            waiting: Waiting::default(),
            handshake_charge: 0,
        }
    }

    // ----- input -----

    /// Bytes from the transport: handles whole frames until one asks the
    /// endpoint for something, or the bytes run out. `data` keeps what is
    /// left, to be handed in again once the endpoint acted (if the
    /// connection still exists). During the handshake, a split frame may
    /// hold only what the node's budget leaves (`budget.rs`).
    pub(crate) fn handle_data(
        &mut self,
        data: &mut BytesMut,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        self.room_for_input(ctx);
        let transition = self.input(data, node, ctx);
        self.charge_handshake_bytes(ctx);
        transition
    }

    /// [`Connection::handle_data`] within the room it was given.
    fn input(
        &mut self,
        data: &mut BytesMut,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        // The handshake's budget covers its last frame (PROTOCOL.md 6):
        // one handed in once it ran out ends it, even before the timer
        // fires.
        if let (State::Handshake(_), Some(at)) = (&self.state, self.handshake_deadline) {
            if ctx.now >= at && !data.is_empty() && !fault!(ctx.config, NoHandshakeTimeout) {
                return Some(Transition::End(Ending::HandshakeTimeout));
            }
        }
        if fault!(ctx.config, HalfFrameResetsIdle) && matches!(self.state, State::Established(_)) {
            self.liveness.last_recv = ctx.now;
        }
        loop {
            if self.recv.is_some() {
                // Records are opened in place in the chunk itself.
                return self.handle_records(data, node, ctx);
            }
            // Plaintext frames (version 1, every handshake) lend their
            // envelopes slices of the chunk: read from it frozen. What is
            // left once a transition stops them, or once the handshake
            // gave the keys mid-chunk, goes back as it was (copied only if
            // an envelope still shares the chunk: at most once per
            // connection, as the steady state consumes every byte).
            let mut frames = core::mem::take(data).freeze();
            let transition = self.handle_frames(&mut frames, node, ctx);
            if !frames.is_empty() {
                *data = frames.into();
            } else {
                // the chunk is done: its buffer is its payloads' alone
                self.arena.release();
            }
            if transition.is_some() || data.is_empty() {
                return transition;
            }
        }
    }

    /// Plaintext frames: handles them until one asks the endpoint for
    /// something, the bytes run out, or the handshake gave the keys (the
    /// rest of `data` is then records).
    fn handle_frames(
        &mut self,
        data: &mut Bytes,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        loop {
            if self.recv.is_some() {
                return None;
            }
            if !data.is_empty() && ctx.outputs_full() {
                return Some(Transition::Pause);
            }
            let transition = match self.decoder.decode_in_place(data) {
                Ok(Some(Frame::InPlace(len))) => {
                    self.liveness.last_recv = ctx.now;
                    let transition = self.handle_frame(data, len, false, node, ctx);
                    data.advance(len);
                    transition
                }
                Ok(Some(Frame::Assembled(body))) => {
                    self.liveness.last_recv = ctx.now;
                    let body = body.freeze();
                    self.handle_frame(&body, body.len(), true, node, ctx)
                }
                Ok(None) => return None,
                Err(error) => return Some(self.frame_failed(error)),
            };
            if transition.is_some() {
                return transition;
            }
        }
    }

    /// One frame's body: `data[..len]`; `own`: `data` is the frame alone,
    /// in a buffer of its own (assembled from several reads).
    fn handle_frame(
        &mut self,
        data: &Bytes,
        len: usize,
        own: bool,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        let State::Handshake(handshake) = &mut self.state else {
            return self.on_envelope(data, len, own, node, ctx);
        };
        if let Some(whole) = self.first_frame_pending.take() {
            // The first complete frame: the rest of the handshake has the
            // whole budget.
            if let Some(at) = self.handshake_deadline.replace(whole) {
                if at != whole {
                    ctx.timers.disarm(at, Timer::Handshake(self.id));
                    ctx.timers.arm(whole, Timer::Handshake(self.id));
                }
            }
        }
        match handshake.on_frame(&data[..len], node, &mut self.tx, ctx) {
            Step::Continue => {
                if handshake.awaits_proof() {
                    // Version 1: PROOF is due one round trip after
                    // WELCOME, as version 2's first record after RESP.
                    // A HELLO needs no key, only a trusted PeerId (and
                    // PeerIds are public): it must not hold its slot
                    // longer than a silent socket.
                    self.proof_due(ctx);
                }
                None
            }
            Step::Failed(failure) => Some(Transition::End(Ending::HandshakeFailed(failure))),
            Step::Keyed { keys, .. } => {
                self.start_records(keys, ctx);
                None
            }
            Step::Done {
                peer,
                initiator,
                keys,
            } => {
                let first_record = keys.is_some() && self.direction == Direction::Outbound;
                if let Some(keys) = keys {
                    self.start_records(keys, ctx);
                }
                self.establish(peer, initiator, node, ctx);
                if first_record {
                    // Step 3: the initiator's first record goes out at
                    // once, sealed now and empty: what is queued later
                    // cannot delay it (`Transmit::push_empty_record`).
                    self.tx.push_empty_record(ctx);
                }
                Some(Transition::Established)
            }
        }
    }

    /// Leaves the handshake: disarms its deadline, lifts the frame limit
    /// and starts the liveness clock.
    fn establish(&mut self, peer: PeerId, initiator: PeerId, node: &mut Node<'_>, ctx: &mut Ctx) {
        let first_id = node.rng.next_u64();
        let first_id = if fault!(ctx.config, ReplyAnyConnection) {
            1
        } else {
            first_id
        };
        let seed = node.rng.next_u64();
        let established = Established {
            initiator,
            at: ctx.now,
        };
        let session = Session::new(self.id, peer, established, first_id, seed);
        if let Some(at) = self.handshake_deadline.take() {
            ctx.timers.disarm(at, Timer::Handshake(self.id));
        }
        self.decoder.set_max_frame_len(ctx.config.max_frame_len);
        self.decoder.set_max_room(usize::MAX);
        self.state = State::Established(session);
        self.liveness.arm(self.tx.last_sent, ctx);
    }

    /// The endpoint registered this connection as its peer's one: tells
    /// the application.
    pub(crate) fn announce(&mut self, ctx: &mut Ctx) {
        let State::Established(s) = &mut self.state else {
            return;
        };
        s.announced = true;
        let (conn, peer, direction) = (self.id, s.peer, self.direction);
        handshakes(ctx, direction).established += 1;
        tracing::debug!(conn = %conn, peer = %peer, ?direction, "connected");
        ctx.emit(Event::Connected {
            conn,
            peer,
            direction,
        });
    }

    /// Fault `ReplyAnyConnection`: a REPLY that another connection's
    /// [`Transition::MisroutedReply`] matched to a call of ours.
    pub(crate) fn resolve_reply(&mut self, id: u64, status: u64, body: Bytes, ctx: &mut Ctx) {
        if let State::Established(s) = &mut self.state {
            s.resolve_reply(self.id, id, status, body, ctx);
        }
    }

    // ----- timers -----

    /// One of this connection's timers fired. `nonce` is for a PING, if
    /// one is due.
    pub(crate) fn handle_timer(
        &mut self,
        timer: Timer,
        nonce: u64,
        ctx: &mut Ctx,
    ) -> Option<Ending> {
        match timer {
            Timer::Handshake(_) if fault!(ctx.config, NoHandshakeTimeout) => None,
            Timer::Handshake(_) => Some(Ending::HandshakeTimeout),
            Timer::Liveness(_) => self.on_liveness(nonce, ctx),
            Timer::Outbound(_) => {
                if !fault!(ctx.config, NoCallDeadline) {
                    self.on_call_deadlines(ctx);
                }
                None
            }
            Timer::Inbound(_) => {
                self.on_served_deadlines(ctx);
                None
            }
            // The endpoint's own, never routed to a connection.
            Timer::Dial(_) => None,
        }
    }

    fn on_liveness(&mut self, nonce: u64, ctx: &mut Ctx) -> Option<Ending> {
        match self.liveness.fire(self.tx.last_sent, nonce, ctx) {
            Check::Idle if !fault!(ctx.config, NoIdleTimeout) => {
                return Some(Ending::Idle(ctx.config.idle_timeout));
            }
            Check::Idle => {}
            Check::Ping(_) if fault!(ctx.config, NoPing) => self.liveness.arm(ctx.now, ctx),
            Check::Ping(nonce) => {
                let _ = self.tx.push(EnvelopeRef::Ping { nonce }, ctx);
                self.liveness.arm(self.tx.last_sent, ctx);
            }
            Check::Alive => self.liveness.arm(self.tx.last_sent, ctx),
        }
        // Our PINGs count against the hard cap too: a peer that keeps
        // sending but never reads must not grow the queue one PING per
        // interval without bound.
        self.enforce_send_cap(ctx)
    }

    /// Version 2: moves the record nonces of both directions (tests of
    /// the end of the nonce space); `false` before the keys exist.
    #[cfg(feature = "testkit")]
    pub(crate) fn set_record_nonces(&mut self, send: u64, recv: u64) -> bool {
        match self.recv.as_mut() {
            Some(rx) if self.tx.set_send_nonce(send) => {
                rx.set_nonce(recv);
                true
            }
            _ => false,
        }
    }

    // ----- output -----

    /// Everything queued, as one buffer: one write per wake-up; replies
    /// waiting for room fill the queue before and after (`replies.rs`).
    /// `Err` when a record could not be sealed: the connection must end.
    pub(crate) fn take_transmit(&mut self, ctx: &mut Ctx) -> Result<Option<Bytes>, Ending> {
        self.refill(ctx);
        let keep = transmit::room_kept(&ctx.config);
        let taken = self.tx.take(keep).map_err(Ending::RecordFailed)?;
        if !fault!(ctx.config, NoRefillAfterTake) {
            self.refill(ctx);
        }
        Ok(taken)
    }
}

/// The handshake counters of one direction.
fn handshakes(ctx: &mut Ctx, direction: Direction) -> &mut HandshakeCounts {
    match direction {
        Direction::Inbound => &mut ctx.counters.handshakes_in,
        Direction::Outbound => &mut ctx.counters.handshakes_out,
    }
}
