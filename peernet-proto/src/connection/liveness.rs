//! Liveness (PROTOCOL.md section 3.2): PING after `ping_interval` without
//! sending, give up after `idle_timeout` without receiving.

use crate::Instant;
use crate::config::Config;
use crate::ids::ConnId;
use crate::timers::Timer;

use super::Ctx;

pub(super) struct Liveness {
    conn: ConnId,
    /// When a frame last arrived.
    pub(super) last_recv: Instant,
    /// When the liveness timer is armed for, if it is.
    deadline: Option<Instant>,
    /// The nonce of our PING still waiting for its PONG.
    ping: Option<u64>,
}

/// What the liveness timer found.
pub(super) enum Check {
    /// Nothing arrived for `idle_timeout`.
    Idle,
    /// Quiet on our side for `ping_interval`: send a PING with this nonce.
    Ping(u64),
    /// Traffic moved the deadlines on; re-armed.
    Alive,
}

impl Liveness {
    pub(super) fn new(conn: ConnId, now: Instant) -> Liveness {
        Liveness {
            conn,
            last_recv: now,
            deadline: None,
            ping: None,
        }
    }

    /// The earlier of "send a PING" and "give up on the peer".
    fn due(&self, last_sent: Instant, config: &Config) -> Instant {
        let ping = last_sent + config.ping_interval;
        let idle = self.last_recv + config.idle_timeout;
        ping.min(idle)
    }

    /// Arms the liveness timer. It is not moved on every frame: when it
    /// fires early (traffic moved the real deadline on) it is re-armed,
    /// which keeps the per-frame cost at zero timer operations.
    pub(super) fn arm(&mut self, last_sent: Instant, ctx: &mut Ctx) {
        self.disarm(ctx);
        let at = self.due(last_sent, &ctx.config);
        self.deadline = Some(at);
        ctx.timers.arm(at, Timer::Liveness(self.conn));
    }

    pub(super) fn disarm(&mut self, ctx: &mut Ctx) {
        if let Some(at) = self.deadline.take() {
            ctx.timers.disarm(at, Timer::Liveness(self.conn));
        }
    }

    /// The timer fired (and so left the table). An idle peer leaves it
    /// disarmed; otherwise the caller sends the PING, if one is due, and
    /// re-arms.
    pub(super) fn fire(&mut self, last_sent: Instant, nonce: u64, ctx: &Ctx) -> Check {
        self.deadline = None;
        if ctx.now >= self.last_recv + ctx.config.idle_timeout {
            return Check::Idle;
        }
        if ctx.now >= last_sent + ctx.config.ping_interval {
            self.ping = Some(nonce);
            return Check::Ping(nonce);
        }
        Check::Alive
    }

    /// A PONG arrived.
    pub(super) fn on_pong(&mut self, nonce: u64) {
        if self.ping == Some(nonce) {
            self.ping = None;
        }
    }
}
