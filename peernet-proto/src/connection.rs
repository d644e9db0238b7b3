//! One transport's state: its framing, its send queue, its handshake or
//! session, and the deadlines it has armed.
//!
//! Everything that touches a connection's timers goes through here, so a
//! closed connection can disarm all of them in one place.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use crate::Instant;
use crate::config::Config;
use crate::endpoint::ConnId;
use crate::envelope::{Envelope, EnvelopeTooLarge};
use crate::event::{Direction, Output};
use crate::frame::{FrameDecoder, encode_frame};
use crate::handshake::{Initiator, MAX_HANDSHAKE_FRAME, Responder};
use crate::identity::PeerId;
use crate::in_flight::InFlight;
use crate::timers::{Timer, Timers};

/// What the endpoint shares with every connection while handling input.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) timers: Timers,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) now: Instant,
}

pub(crate) enum State {
    /// Accepted; waiting for HELLO. `busy` when accepted beyond
    /// `max_handshakes`: its HELLO gets REJECT `busy`.
    AwaitHello { busy: bool },
    /// Dialed; HELLO sent, waiting for WELCOME.
    AwaitWelcome(Initiator),
    /// WELCOME sent, waiting for PROOF.
    AwaitProof(Box<Responder>),
    /// Handshake done.
    Established(Session),
}

/// An established connection's bookkeeping.
pub(crate) struct Session {
    pub(crate) peer: PeerId,
    pub(crate) initiator: PeerId,
    pub(crate) established_at: Instant,
    /// Whether the peer has sent an envelope yet. Until it has, an
    /// initiator still accepts the responder's REJECT of its PROOF.
    pub(crate) heard_envelope: bool,
    /// Whether the endpoint announced this connection with `Connected`.
    pub(crate) announced: bool,
    next_id: u64,
    /// Our calls in flight.
    pub(crate) outbound: InFlight,
    /// Calls we serve in flight.
    pub(crate) inbound: InFlight,
    pub(crate) ping: Option<u64>,
}

impl Session {
    /// `first_id` and `seed` come from the endpoint's RNG: the first is
    /// where our request ids start, the second keys the in-flight tables.
    pub(crate) fn new(
        conn: ConnId,
        peer: PeerId,
        initiator: PeerId,
        at: Instant,
        first_id: u64,
        seed: u64,
    ) -> Session {
        Session {
            peer,
            initiator,
            established_at: at,
            heard_envelope: false,
            announced: false,
            next_id: first_id,
            outbound: InFlight::new(seed, Timer::Outbound(conn)),
            inbound: InFlight::new(seed.rotate_left(32), Timer::Inbound(conn)),
            ping: None,
        }
    }

    /// The next request id: non-zero and not in flight. Counting up from
    /// a random start means ids are not reused on a connection in
    /// practice; the loop only guards the wrap.
    pub(crate) fn next_request_id(&mut self) -> u64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && !self.outbound.contains(id) {
                return id;
            }
        }
    }
}

pub(crate) struct Connection {
    pub(crate) id: ConnId,
    pub(crate) direction: Direction,
    pub(crate) state: State,
    pub(crate) decoder: FrameDecoder,
    out: BytesMut,
    transmit_signalled: bool,
    pub(crate) last_recv: Instant,
    last_sent: Instant,
    handshake_deadline: Option<Instant>,
    liveness_deadline: Option<Instant>,
}

impl Connection {
    pub(crate) fn new(id: ConnId, direction: Direction, state: State, ctx: &mut Ctx) -> Connection {
        let deadline = ctx.now + ctx.config.handshake_timeout;
        ctx.timers.arm(deadline, Timer::Handshake(id));
        Connection {
            id,
            direction,
            state,
            decoder: FrameDecoder::new(MAX_HANDSHAKE_FRAME),
            out: BytesMut::new(),
            transmit_signalled: false,
            last_recv: ctx.now,
            last_sent: ctx.now,
            handshake_deadline: Some(deadline),
            liveness_deadline: None,
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.state {
            State::Established(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.state {
            State::Established(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn peer(&self) -> Option<PeerId> {
        match &self.state {
            State::AwaitHello { .. } => None,
            State::AwaitWelcome(i) => i.expected(),
            State::AwaitProof(r) => Some(r.peer()),
            State::Established(s) => Some(s.peer),
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }

    /// The send queue, for a final message that needs no wake-up: the
    /// connection is closing and its bytes leave with `Output::Close`.
    pub(crate) fn out_mut(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Drops everything queued (a peer that does not read gets no more).
    pub(crate) fn discard_queue(&mut self) {
        self.out.clear();
    }

    /// Queues a handshake message.
    pub(crate) fn push_handshake(&mut self, body: &[u8], ctx: &mut Ctx) {
        encode_frame(body, &mut self.out);
        self.wrote(ctx);
    }

    /// Queues an envelope. Fails only if it does not fit in a frame, and
    /// then queues nothing.
    pub(crate) fn push(&mut self, envelope: &Envelope, ctx: &mut Ctx) -> Result<(), ()> {
        self.push_encoded(ctx, |out, max| envelope.encode_frame(out, max))
    }

    /// Queues the frame `encode` appends given the frame limit; `encode`
    /// must leave the queue untouched when it fails.
    pub(crate) fn push_encoded(
        &mut self,
        ctx: &mut Ctx,
        encode: impl FnOnce(&mut BytesMut, u32) -> Result<(), EnvelopeTooLarge>,
    ) -> Result<(), ()> {
        encode(&mut self.out, ctx.config.max_frame_len).map_err(|_| ())?;
        self.wrote(ctx);
        Ok(())
    }

    fn wrote(&mut self, ctx: &mut Ctx) {
        self.last_sent = ctx.now;
        if !self.transmit_signalled {
            self.transmit_signalled = true;
            ctx.outputs.push_back(Output::Transmit(self.id));
        }
    }

    /// Everything queued, as one buffer: one write per wake-up.
    pub(crate) fn take_transmit(&mut self) -> Option<Bytes> {
        self.transmit_signalled = false;
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Leaves the handshake: disarms its deadline, lifts the frame limit
    /// and starts the liveness clock.
    pub(crate) fn establish(&mut self, session: Session, ctx: &mut Ctx) {
        if let Some(at) = self.handshake_deadline.take() {
            ctx.timers.disarm(at, Timer::Handshake(self.id));
        }
        self.decoder.set_max_frame_len(ctx.config.max_frame_len);
        self.state = State::Established(session);
        self.arm_liveness(ctx);
    }

    /// The earlier of "send a PING" and "give up on the peer".
    fn liveness_due(&self, config: &Config) -> Instant {
        let ping = self.last_sent + config.ping_interval;
        let idle = self.last_recv + config.idle_timeout;
        ping.min(idle)
    }

    /// Arms the liveness timer. It is not moved on every frame: when it
    /// fires early (traffic moved the real deadline on) it is re-armed,
    /// which keeps the per-frame cost at zero timer operations.
    pub(crate) fn arm_liveness(&mut self, ctx: &mut Ctx) {
        if let Some(at) = self.liveness_deadline.take() {
            ctx.timers.disarm(at, Timer::Liveness(self.id));
        }
        let at = self.liveness_due(&ctx.config);
        self.liveness_deadline = Some(at);
        ctx.timers.arm(at, Timer::Liveness(self.id));
    }

    /// Liveness timer fired. Returns true if the peer went idle.
    pub(crate) fn on_liveness(&mut self, ping_nonce: u64, ctx: &mut Ctx) -> bool {
        self.liveness_deadline = None;
        if ctx.now >= self.last_recv + ctx.config.idle_timeout {
            return true;
        }
        if ctx.now >= self.last_sent + ctx.config.ping_interval {
            if let Some(session) = self.session_mut() {
                session.ping = Some(ping_nonce);
            }
            let _ = self.push(&Envelope::Ping { nonce: ping_nonce }, ctx);
        }
        self.arm_liveness(ctx);
        false
    }

    /// Disarms every timer this connection holds and hands back what was
    /// left: the queued bytes and the calls in flight either way, so the
    /// endpoint can resolve each of them exactly once.
    pub(crate) fn teardown(&mut self, ctx: &mut Ctx) -> Leftovers {
        if let Some(at) = self.handshake_deadline.take() {
            ctx.timers.disarm(at, Timer::Handshake(self.id));
        }
        if let Some(at) = self.liveness_deadline.take() {
            ctx.timers.disarm(at, Timer::Liveness(self.id));
        }
        let mut left = Leftovers {
            last: self.out.split().freeze(),
            outbound: Vec::new(),
            inbound: Vec::new(),
        };
        if let State::Established(session) = &mut self.state {
            left.outbound = session.outbound.drain_sorted(&mut ctx.timers);
            left.inbound = session.inbound.drain_sorted(&mut ctx.timers);
        }
        left
    }
}

/// What a closed connection left behind.
pub(crate) struct Leftovers {
    pub(crate) last: Bytes,
    /// Our calls that were in flight, in id order.
    pub(crate) outbound: Vec<u64>,
    /// The calls we were serving, in id order.
    pub(crate) inbound: Vec<u64>,
}
