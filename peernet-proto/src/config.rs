//! Limits and timeouts. Every table and queue in the core is bounded by a
//! field here.

use core::time::Duration;

use crate::frame::DEFAULT_MAX_FRAME_LEN;
use crate::reconnects::PeerConnectLimits;
use crate::sources::SourceLimits;

/// Endpoint configuration. The defaults are the protocol's (PROTOCOL.md).
///
/// `#[non_exhaustive]`: start from [`Config::default`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame body sent or accepted (section 1). Default 1 MiB.
    pub max_frame_len: u32,
    /// Inbound handshakes in progress: a connection holds a slot from
    /// accept, and a version-2 responder until the initiator's first record
    /// decrypts. When every slot is taken, a new connection takes the slot
    /// of the oldest that has not delivered a complete frame
    /// ([`HandshakeError::Evicted`](crate::HandshakeError::Evicted)); only
    /// if there is none is it left without a slot, and its HELLO or INIT
    /// is answered with REJECT `busy` unless a slot has freed by the time
    /// its bytes come (then it takes that one: PROTOCOL.md 6.1 judges
    /// `busy` at INIT). Default 1024.
    pub max_handshakes: usize,
    /// Bytes the connections whose handshake is not finished may hold,
    /// all together, for frames split across reads (above all a version-2
    /// responder's wait for the first record, which may be a whole
    /// frame). The bytes that would pass it are refused and their
    /// connection closed ([`HandshakeError::OverBudget`](crate::HandshakeError::OverBudget));
    /// established connections are never charged. Default 16 MiB, the
    /// worst case (1,024 handshakes could hold 1 GiB before); at least
    /// [`Config::MIN_FRAME_LEN`], so that a split INIT fits.
    pub max_handshake_bytes: usize,
    /// Calls in flight from one connection before a CALL is answered with
    /// `overloaded`. Default 1024.
    pub max_inbound_calls: usize,
    /// Bytes of arguments one connection may hold (what they keep alive:
    /// a large call argument that is a slice of its frame counts the
    /// whole frame): of the calls from it in flight on our side, and of
    /// its SENDs whose handlers still run
    /// (counted until the driver reports them done with
    /// [`crate::Endpoint::send_done`]), with those of SENDs from the
    /// peer's ended connections that still run: a peer that reconnects
    /// does not get a fresh budget. A CALL beyond is answered
    /// `overloaded`, a SEND beyond is dropped and counted
    /// ([`crate::Stats::sends_dropped`]). Default 16 MiB: with the
    /// default 1 MiB frames, one peer pins at most 16 MiB of arguments
    /// however many calls it keeps open. A call's bytes leave it at its
    /// reply, its CANCEL or its deadline ([`crate::Event::CallCancelled`]):
    /// the driver must drop the handler's state (which may hold the
    /// arguments) before it hands in more input, or a CANCEL storm keeps
    /// more alive (peernet-driver drops it at once, or, if a thread is
    /// polling it, as that poll returns). (Besides: an argument of at most
    /// 512 bytes may share a buffer with the other small payloads of its
    /// record, or read on version 1, and keeps it alive while its handler
    /// holds it; that buffer is at most 8 times the argument's length, so
    /// up to 7 times its length more per call or SEND held, and at most
    /// 3.5 KiB more for a 512-byte one.) The bodies of our
    /// replies that wait for room in the send queue (see `send_buffer`)
    /// are charged to it too, until they leave the wait: a result that
    /// would pass it is dropped and its call answered `overloaded`
    /// ([`crate::Counters::replies_refused`]). So a peer that stops
    /// reading makes us hold at most this in arguments and waiting
    /// results together, besides the send queue's `send_buffer` plus one
    /// frame (and refusals up to the hard send cap, which ends it).
    pub max_inbound_bytes_per_conn: usize,
    /// The same budget for the whole node, over every connection (and the
    /// SENDs still running from connections that ended), waiting results
    /// included. Default 256 MiB: sixteen peers at their full
    /// per-connection budget.
    pub max_inbound_bytes: usize,
    /// Our own calls in flight on one connection before
    /// [`crate::Endpoint::call`] refuses more. Default 4096.
    pub max_outbound_calls: usize,
    /// Bytes queued for one connection's transport beyond which new calls
    /// and sends are refused with [`crate::CallError::WouldBlock`] until
    /// the driver takes them with [`crate::Endpoint::poll_transmit`], and
    /// replies wait, as their handlers gave them, to be queued in order
    /// as the driver takes the queue (so a peer that pipelines calls for
    /// large results is served at the pace it reads). A waiting reply's
    /// body is charged to `max_inbound_bytes_per_conn` and
    /// `max_inbound_bytes`, and one that would pass either is dropped and
    /// answered `overloaded`; a call whose reply waits keeps its
    /// `max_inbound_calls` slot, and what it calls beyond is refused into
    /// the queue, whose hard cap ends it. So a peer that reads nothing
    /// makes us hold at most its byte budget in waiting results (it was
    /// `max_inbound_calls` frames, 1 GiB at the defaults). Default 1 MiB.
    pub send_buffer: usize,
    /// Bytes queued for a connection by the peer's own doing (pongs,
    /// and the last reply that found room) or by our liveness pings
    /// beyond which the peer is taken not to read and the connection is
    /// closed. Never less than `send_buffer` plus one frame. Default 16
    /// MiB.
    pub max_send_buffer: usize,
    /// The whole handshake's budget from the moment the transport exists.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// How long an accepted transport may take to deliver its first
    /// complete handshake frame before it is closed (without a word), so
    /// that sockets that send nothing free their handshake slot long
    /// before `handshake_timeout`. The frame that proves the dialer's key
    /// gets as long after the responder's answer (it is due one round
    /// trip later): version 1's PROOF after WELCOME, version 2's first
    /// record after RESP, so a HELLO naming a trusted PeerId (no key
    /// needed) or a replayed INIT holds its slot no longer: a link whose
    /// round trip is longer than this cannot complete a handshake, nor
    /// can a dialer of another implementation that puts more in its
    /// first record than its link carries in this time (ours sends it
    /// empty). At most `handshake_timeout`. Default 2 s.
    pub first_frame_timeout: Duration,
    /// Time without sending anything after which a PING is sent
    /// (PROTOCOL.md 3.2). Default 15 s.
    pub ping_interval: Duration,
    /// Time without any frame received after which the connection is
    /// closed with GOODBYE `idle_timeout`. Default 45 s. Also how long a
    /// driver lets a transport accept none of the bytes it has to write
    /// before it reports [`crate::Input::Stalled`]: a peer that keeps
    /// sending but never reads is as dead as a silent one.
    pub idle_timeout: Duration,
    /// The protocol version this node speaks, as initiator and responder:
    /// it answers the other version's first frame with REJECT
    /// `unsupported_version` (PROTOCOL.md 6.1). Default
    /// [`ProtocolVersion::V2`], encrypted; [`ProtocolVersion::V1`] is the
    /// opt-in for trusted networks and streams that are already encrypted.
    pub version: ProtocolVersion,
    /// What one source address may have of the handshakes of connections
    /// accepted with [`crate::Endpoint::accept_from`]: in progress at
    /// once, and failed per second (see [`SourceLimits`]). Default 32 in
    /// progress, 8 failures a second after a burst of 32.
    pub source_limits: SourceLimits,
    /// How often one trusted peer may establish an inbound connection
    /// (see [`PeerConnectLimits`]); a HELLO or INIT beyond gets REJECT
    /// `busy`. Default 20 a second after a burst of 64.
    pub peer_connects: PeerConnectLimits,
    /// Addresses the address book keeps per peer. Default 8.
    pub max_addresses_per_peer: usize,
    /// Addresses the address book keeps in all. Default 8192.
    pub max_addresses: usize,
    /// The dial schedule: backoff of kept peers, dial timeout.
    pub dial: DialConfig,
    /// A deliberate bug to switch on, for the simulation tests only.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

/// How the endpoint redials the peers it keeps connected
/// ([`crate::Endpoint::keep_connected`]): an exponential backoff with
/// jitter. After a loss the first redial waits a random delay in
/// `[first_min, first_max]`; each later one waits the delay before times
/// a random factor in `[growth_min_percent, growth_max_percent]` percent,
/// never more than `max_delay`; once grown to `max_delay` it is drawn in
/// its last quarter (`[max_delay * 3/4, max_delay]`,
/// [`crate::dial::CAP_JITTER_DIVISOR`]), so peers at the cap do not redial
/// in step. A connection that lived `reset_after`
/// resets the backoff (and the attempt count).
///
/// `#[non_exhaustive]`: start from [`DialConfig::default`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialConfig {
    /// Shortest first redial after a loss. Default 100 ms.
    pub first_min: Duration,
    /// Longest first redial after a loss. Default 1 s.
    pub first_max: Duration,
    /// Smallest growth of the delay from one redial to the next, in
    /// percent (at least 100). Default 150.
    pub growth_min_percent: u32,
    /// Largest growth, in percent. Default 200.
    pub growth_max_percent: u32,
    /// The delay never grows above this; at it, it is drawn in
    /// `[max_delay * 3/4, max_delay]`. Default 30 s.
    pub max_delay: Duration,
    /// A connection that lived this long resets the backoff. Default 10 s.
    pub reset_after: Duration,
    /// How long the driver may take to open a transport for an
    /// [`crate::Output::Dial`] before the dial counts as failed. Default 10 s.
    pub dial_timeout: Duration,
    /// The most dials under way at once (a transport being opened, or its
    /// handshake): each holds a socket, and keeping thousands of peers
    /// must not open thousands at once (the file descriptors run out, and
    /// that local failure would be charged to the addresses). Background
    /// redials of kept peers past it wait their turn, first come first
    /// served; a dial the application asks for
    /// ([`crate::Endpoint::dial`]) is not held back, but counts. Default
    /// 256.
    pub max_dials_in_flight: usize,
}

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            first_min: Duration::from_millis(100),
            first_max: Duration::from_secs(1),
            growth_min_percent: 150,
            growth_max_percent: 200,
            max_delay: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(10),
            max_dials_in_flight: 256,
        }
    }
}

/// The wire protocol a node speaks (PROTOCOL.md parts A and B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// Version 1: an ed25519 handshake, then envelopes in clear.
    V1,
    /// Version 2: a Noise IK handshake, then envelopes in encrypted
    /// records. The default.
    #[default]
    V2,
}

#[cfg(feature = "fault-injection")]
pub use crate::fault::Fault;
pub(crate) use crate::fault::fault;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_handshakes: 1024,
            max_handshake_bytes: 16 << 20,
            max_inbound_calls: 1024,
            max_outbound_calls: 4096,
            max_inbound_bytes_per_conn: 16 << 20,
            max_inbound_bytes: 256 << 20,
            send_buffer: 1 << 20,
            max_send_buffer: 16 << 20,
            handshake_timeout: Duration::from_secs(10),
            first_frame_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            version: ProtocolVersion::V2,
            source_limits: SourceLimits::default(),
            peer_connects: PeerConnectLimits::default(),
            max_addresses_per_peer: 8,
            max_addresses: 8192,
            dial: DialConfig::default(),
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

/// A [`Config`] value that makes no sense, found by [`Config::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero (a zero ping interval
    /// would PING every idle peer as fast as the driver can loop).
    #[error("{0} must be above zero")]
    Zero(&'static str),
    /// `idle_timeout` is not above `ping_interval`: an idle but healthy
    /// peer would be closed before it is ever pinged.
    #[error("idle_timeout ({idle:?}) must be above ping_interval ({ping:?})")]
    IdleNotAbovePing {
        /// The idle timeout given.
        idle: Duration,
        /// The ping interval given.
        ping: Duration,
    },
    /// `max_frame_len` is below [`Config::MIN_FRAME_LEN`]: no handshake
    /// frame would fit.
    #[error("max_frame_len ({0}) must be at least {min}", min = Config::MIN_FRAME_LEN)]
    FrameTooSmall(u32),
    /// `first_frame_timeout` is above `handshake_timeout`: the whole
    /// handshake's deadline would always come first.
    #[error("first_frame_timeout ({first:?}) must not be above handshake_timeout ({handshake:?})")]
    FirstFrameAboveHandshake {
        /// The first-frame timeout given.
        first: Duration,
        /// The handshake timeout given.
        handshake: Duration,
    },
    /// Two dial settings are the wrong way round (`low` is above `high`,
    /// e.g. `dial.first_min` above `dial.first_max`).
    #[error("{low} must not be above {high}")]
    Inverted {
        /// The setting that must be the lower.
        low: &'static str,
        /// The setting that must be the higher.
        high: &'static str,
    },
    /// `max_handshake_bytes` is below [`Config::MIN_FRAME_LEN`]: an INIT
    /// split across reads would not fit.
    #[error("max_handshake_bytes ({0}) must be at least {min}", min = Config::MIN_FRAME_LEN)]
    HandshakeBytesTooSmall(usize),
    /// `dial.growth_min_percent` is below 100: the backoff would shrink.
    #[error("dial.growth_min_percent ({0}) must be at least 100")]
    BackoffShrinks(u32),
}

impl Config {
    /// The smallest `max_frame_len` accepted: the largest handshake frame
    /// (a version-2 INIT, 150 bytes).
    pub const MIN_FRAME_LEN: u32 = 150;

    /// Checks the rules every field must follow: durations above zero,
    /// `idle_timeout` above `ping_interval`, counts and buffers above
    /// zero, `max_frame_len` and `max_handshake_bytes` at least
    /// [`Config::MIN_FRAME_LEN`],
    /// `first_frame_timeout` not above `handshake_timeout`, and the dial
    /// schedule's growth at least 100 % with its bounds the right way
    /// round (`first_min` <= `first_max` <= `max_delay`,
    /// `growth_min_percent` <= `growth_max_percent`). A count, buffer
    /// or rate may be as large as its type holds (`usize::MAX`: no limit
    /// in effect) and a duration as long as `Duration::MAX` (its
    /// deadlines saturate: never). The
    /// driver refuses to start a node whose configuration fails this;
    /// [`crate::Endpoint::new`] itself clamps such values to the nearest
    /// workable ones rather than spin or refuse everything: a zero
    /// duration to 1 ms, a zero count or budget to 1, an `idle_timeout`
    /// not above `ping_interval` to 1 ms above it, and the rest as the
    /// rules above want.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("handshake_timeout", self.handshake_timeout),
            ("first_frame_timeout", self.first_frame_timeout),
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
            ("dial.first_min", self.dial.first_min),
            ("dial.first_max", self.dial.first_max),
            ("dial.max_delay", self.dial.max_delay),
            ("dial.reset_after", self.dial.reset_after),
            ("dial.dial_timeout", self.dial.dial_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        let counts = [
            ("max_handshakes", self.max_handshakes),
            ("max_handshake_bytes", self.max_handshake_bytes),
            ("max_inbound_calls", self.max_inbound_calls),
            ("max_outbound_calls", self.max_outbound_calls),
            (
                "max_inbound_bytes_per_conn",
                self.max_inbound_bytes_per_conn,
            ),
            ("max_inbound_bytes", self.max_inbound_bytes),
            ("send_buffer", self.send_buffer),
            ("max_send_buffer", self.max_send_buffer),
            ("max_addresses_per_peer", self.max_addresses_per_peer),
            ("max_addresses", self.max_addresses),
            ("dial.max_dials_in_flight", self.dial.max_dials_in_flight),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.idle_timeout <= self.ping_interval {
            return Err(ConfigError::IdleNotAbovePing {
                idle: self.idle_timeout,
                ping: self.ping_interval,
            });
        }
        if self.max_frame_len < Config::MIN_FRAME_LEN {
            return Err(ConfigError::FrameTooSmall(self.max_frame_len));
        }
        if self.max_handshake_bytes < Config::MIN_FRAME_LEN as usize {
            return Err(ConfigError::HandshakeBytesTooSmall(
                self.max_handshake_bytes,
            ));
        }
        if self.first_frame_timeout > self.handshake_timeout {
            return Err(ConfigError::FirstFrameAboveHandshake {
                first: self.first_frame_timeout,
                handshake: self.handshake_timeout,
            });
        }
        self.dial.validate()
    }

    /// This configuration as [`crate::Endpoint::new`] takes it: each
    /// value [`Config::validate`] refuses moved to the nearest workable
    /// one, so that the endpoint neither spins nor refuses everything. A
    /// zero duration becomes 1 ms (a zero interval would re-arm its timer
    /// at `now` forever), an `idle_timeout` not above `ping_interval`
    /// 1 ms above it, a zero count or byte budget 1 (a zero
    /// `send_buffer` made every call wait for room that never came, a
    /// zero `max_handshakes` answered every handshake `busy`),
    /// `first_frame_timeout` at most `handshake_timeout`,
    /// `max_handshake_bytes` at least [`Config::MIN_FRAME_LEN`], and the
    /// dial schedule's growth at least 100 % with its bounds in order. (The
    /// endpoint raises `max_frame_len` to its largest handshake frame.)
    /// A valid configuration is returned as it is.
    pub(crate) fn workable(mut self) -> Config {
        const MIN: Duration = Duration::from_millis(1);
        let c = &mut self;
        for duration in [
            &mut c.ping_interval,
            &mut c.idle_timeout,
            &mut c.handshake_timeout,
            &mut c.dial.first_min,
            &mut c.dial.reset_after,
            &mut c.dial.dial_timeout,
        ] {
            *duration = (*duration).max(MIN);
        }
        if c.idle_timeout <= c.ping_interval {
            c.ping_interval = c.ping_interval.min(Duration::MAX - MIN);
            c.idle_timeout = c.ping_interval + MIN;
        }
        c.first_frame_timeout = c.first_frame_timeout.clamp(MIN, c.handshake_timeout);
        for count in [
            &mut c.max_handshakes,
            &mut c.max_inbound_calls,
            &mut c.max_outbound_calls,
            &mut c.max_inbound_bytes_per_conn,
            &mut c.max_inbound_bytes,
            &mut c.send_buffer,
            &mut c.max_send_buffer,
            &mut c.max_addresses_per_peer,
            &mut c.max_addresses,
            &mut c.dial.max_dials_in_flight,
        ] {
            *count = (*count).max(1);
        }
        c.max_handshake_bytes = c.max_handshake_bytes.max(Config::MIN_FRAME_LEN as usize);
        let dial = &mut c.dial;
        dial.first_max = dial.first_max.max(dial.first_min);
        dial.max_delay = dial.max_delay.max(dial.first_max);
        dial.growth_min_percent = dial.growth_min_percent.max(100);
        dial.growth_max_percent = dial.growth_max_percent.max(dial.growth_min_percent);
        self
    }

    /// The hard cap actually enforced on a connection's send queue:
    /// `max_send_buffer`, but never less than `send_buffer` plus one frame
    /// (a peer that makes us queue more is cut off).
    pub fn hard_send_cap(&self) -> usize {
        self.max_send_buffer.max(
            // (`max_frame_len + 4` overflows a 32-bit `usize` at
            // `u32::MAX`: saturated too)
            self.send_buffer
                .saturating_add((self.max_frame_len as usize).saturating_add(4)),
        )
    }
}

impl DialConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let d = self;
        if d.growth_min_percent < 100 {
            return Err(ConfigError::BackoffShrinks(d.growth_min_percent));
        }
        let inverted = |low, high| Err(ConfigError::Inverted { low, high });
        if d.first_min > d.first_max {
            return inverted("dial.first_min", "dial.first_max");
        }
        if d.first_max > d.max_delay {
            return inverted("dial.first_max", "dial.max_delay");
        }
        if d.growth_min_percent > d.growth_max_percent {
            return inverted("dial.growth_min_percent", "dial.growth_max_percent");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
