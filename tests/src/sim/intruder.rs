//! Intruders that are not endpoints: raw byte sources.
//!
//! Each attack is one transport to a victim node, opened by a [`RawPeer`]
//! that writes a script and reacts to what it reads. None of them may
//! ever reach a handler, except the byzantine peer, which holds a key the
//! victims trust and so may call exposed handles like any peer, but must
//! not get the victim to exceed its limits or crash, whatever it sends.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use peernet_proto::frame::encode_frame;
use peernet_proto::testkit::handshake::{Initiator, MAX_HANDSHAKE_FRAME};
use peernet_proto::{Envelope, FrameDecoder, Handle, Identity, PeerId, TrustList};

use super::net::{EndKind, LinkId};
use super::node::{HANDLES, NodeIx};
use super::rng::SimRng;
use super::{Ev, Sim};

/// What a raw intruder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Random bytes, sometimes behind a plausible frame header.
    Garbage,
    /// A prefix of a real HELLO, then silence.
    TruncatedHello,
    /// A recorded first flight (HELLO + PROOF) of a real dial, replayed to
    /// the node it was meant for.
    ReplayedHandshake,
    /// A well-formed handshake under a key nobody trusts.
    UntrustedHello,
    /// A frame header announcing length 0 or more than the limit.
    BadFrameHeader,
    /// An envelope from the `invalid` vectors, sent before any handshake.
    InvalidEnvelopeEarly,
    /// The trusted byzantine key: a real handshake, then misbehaviour.
    Byzantine(Byzantine),
}

/// What the byzantine peer does once its handshake is through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends an envelope from the `invalid` vectors.
    InvalidEnvelope,
    /// Sends many CALLs and never reads the replies.
    CallFlood,
    /// Calls, sends, pings, and sends REPLYs and CANCELs for ids that do
    /// not exist; answers pings.
    Chatter,
    /// Reuses a request id still in flight, or sends id 0.
    ReuseId,
    /// Says nothing more and reads nothing.
    Mute,
    /// Starts a frame as large as the limit allows and never finishes it.
    PartialFrame,
    /// Sends only PINGs, often enough to keep the connection alive, and
    /// checks that each is answered with its PONG (it answers nothing).
    PingOnly,
    /// Trickles the bytes of one frame, a few at a time, and never
    /// finishes it: its victim must close within the idle timeout of its
    /// last complete frame (PROOF).
    HalfFrames,
}

impl Attack {
    /// A random attack (`byzantine`: whether a trusted byzantine key
    /// exists in this run).
    pub fn random(rng: &mut SimRng, byzantine: bool) -> Attack {
        let w = if byzantine { 6 } else { 0 };
        match rng.weighted(&[2, 2, 3, 2, 1, 2, w]) {
            0 => Attack::Garbage,
            1 => Attack::TruncatedHello,
            2 => Attack::ReplayedHandshake,
            3 => Attack::UntrustedHello,
            4 => Attack::BadFrameHeader,
            5 => Attack::InvalidEnvelopeEarly,
            _ => Attack::Byzantine(match rng.weighted(&[2, 2, 3, 2, 1, 1, 2, 2]) {
                0 => Byzantine::InvalidEnvelope,
                1 => Byzantine::CallFlood,
                2 => Byzantine::Chatter,
                3 => Byzantine::ReuseId,
                4 => Byzantine::Mute,
                5 => Byzantine::PartialFrame,
                6 => Byzantine::PingOnly,
                _ => Byzantine::HalfFrames,
            }),
        }
    }
}

/// The bodies of `envelopes.json` `invalid`: each must be refused as a
/// protocol error.
pub fn invalid_envelopes() -> &'static [Vec<u8>] {
    static CELL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let text = include_str!("../../../vectors/envelopes.json");
        let json: serde_json::Value = serde_json::from_str(text).expect("envelopes.json parses");
        json["invalid"]
            .as_array()
            .expect("an `invalid` array")
            .iter()
            .map(|v| hex::decode(v["cbor"].as_str().expect("cbor hex")).expect("hex"))
            .collect()
    })
}

/// What a raw peer wants done after it was told something.
#[derive(Debug, Default)]
pub struct RawAction {
    /// Bytes to write, in order.
    pub writes: Vec<Bytes>,
    /// Stop reading for good (its victim's window fills).
    pub stop_reading: bool,
    /// Close (FIN) after the writes.
    pub close: bool,
}

/// A raw intruder's side of a link.
pub struct RawPeer {
    /// Its attack.
    pub attack: Attack,
    /// How long it stays before it closes, ns.
    pub lifetime: u64,
    identity: Option<Identity>,
    victim: PeerId,
    initiator: Option<Initiator>,
    decoder: FrameDecoder,
    opening: Vec<u8>,
    payload: Vec<Bytes>,
    stop_reading: bool,
    answers_pings: bool,
    established: bool,
    /// Bytes written so far.
    written: u64,
    /// Bytes written up to the end of the last complete frame.
    complete_upto: u64,
    /// `PingOnly`: the PINGs not answered yet, (nonce, sent at).
    pings: VecDeque<(u64, u64)>,
    /// `HalfFrames`: body bytes the frame under way still announces
    /// (`None`: its header is not written yet).
    trickle_left: Option<usize>,
    /// `HalfFrames`: its victim was told when to close it.
    pub(super) trickle_obliged: bool,
}

/// What a raw peer's own timer ([`RawPeer::on_tick`]) asks for.
#[derive(Debug, Default)]
pub struct Tick {
    /// What to write.
    pub action: RawAction,
    /// A PING unanswered for too long: (nonce, sent at).
    pub late_ping: Option<(u64, u64)>,
    /// The next tick, this long from now (ns); `None`: no more ticks.
    pub next: Option<u64>,
}

fn frame(body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(body, &mut out);
    out.freeze()
}

fn envelope(e: &Envelope) -> Bytes {
    frame(&e.to_body())
}

fn call(id: u64, handle: &str, rng: &mut SimRng) -> Bytes {
    envelope(&Envelope::Call {
        id,
        handle: Handle::new(handle).expect("valid"),
        args: {
            let len = rng.below(24) as usize;
            rng.bytes(len).into()
        },
        timeout_ms: 0,
    })
}

impl RawPeer {
    /// Builds the attack on `victim`. `replay` is a recorded first
    /// flight, `byzantine` the seed of the trusted byzantine key.
    pub fn new(
        attack: Attack,
        victim: PeerId,
        replay: Option<&[u8]>,
        byzantine: Option<[u8; 32]>,
        rng: &mut SimRng,
    ) -> RawPeer {
        let mut raw = RawPeer {
            attack,
            lifetime: rng.range(200_000_000, 8_000_000_000),
            identity: None,
            victim,
            initiator: None,
            decoder: FrameDecoder::new(1 << 16),
            opening: Vec::new(),
            payload: Vec::new(),
            stop_reading: false,
            answers_pings: false,
            established: false,
            written: 0,
            complete_upto: 0,
            pings: VecDeque::new(),
            trickle_left: None,
            trickle_obliged: false,
        };
        match attack {
            Attack::Garbage => {
                let len = rng.range(1, 200) as usize;
                let mut bytes = rng.bytes(len);
                if rng.chance(0.5) && len > 4 {
                    let body = (len - 4) as u32;
                    bytes[..4].copy_from_slice(&body.to_be_bytes());
                    if rng.chance(0.5) && len > 10 {
                        bytes[4..10].copy_from_slice(b"PNET\x01\x01");
                    }
                }
                raw.opening = bytes;
            }
            Attack::TruncatedHello => {
                let hello = match replay {
                    Some(flight) => flight[..74].to_vec(),
                    None => {
                        let id = Identity::from_seed(&rng.array32());
                        frame(Initiator::start(&id, &rng.array32(), Some(victim)).hello()).to_vec()
                    }
                };
                let cut = rng.range(1, hello.len() as u64 - 1) as usize;
                raw.opening = hello[..cut].to_vec();
            }
            Attack::ReplayedHandshake => {
                raw.opening = replay.map(<[u8]>::to_vec).unwrap_or_default();
            }
            Attack::UntrustedHello => {
                raw.start_handshake(Identity::from_seed(&rng.array32()), rng);
                raw.answers_pings = true;
                raw.payload = (0..3)
                    .map(|i| call(i + 1, HANDLES[i as usize], rng))
                    .collect();
            }
            Attack::BadFrameHeader => {
                let len: u32 = match rng.below(3) {
                    0 => 0,
                    1 => MAX_HANDSHAKE_FRAME + 1 + rng.below(1000) as u32,
                    _ => u32::MAX,
                };
                raw.opening = len.to_be_bytes().to_vec();
                let len = rng.below(16) as usize;
                raw.opening.extend(rng.bytes(len));
            }
            Attack::InvalidEnvelopeEarly => {
                let invalid = invalid_envelopes();
                raw.opening = frame(&invalid[rng.index(invalid.len())]).to_vec();
            }
            Attack::Byzantine(what) => {
                let seed = byzantine.expect("a byzantine key in this run");
                raw.start_handshake(Identity::from_seed(&seed), rng);
                match what {
                    Byzantine::InvalidEnvelope => {
                        let invalid = invalid_envelopes();
                        raw.payload = vec![frame(&invalid[rng.index(invalid.len())])];
                    }
                    Byzantine::CallFlood => {
                        let n = rng.range(20, 80);
                        raw.payload = (1..=n)
                            .map(|id| call(id, HANDLES[rng.index(4)], rng))
                            .collect();
                        raw.stop_reading = true;
                    }
                    Byzantine::Chatter => {
                        let base = rng.u64() | 1;
                        for i in 0..rng.range(1, 5) {
                            let handle = HANDLES[rng.index(HANDLES.len())];
                            raw.payload.push(call(base.wrapping_add(i), handle, rng));
                        }
                        raw.payload.push(envelope(&Envelope::Send {
                            handle: Handle::new(HANDLES[rng.index(4)]).expect("valid"),
                            args: Bytes::from_static(b"byzantine"),
                        }));
                        raw.payload
                            .push(envelope(&Envelope::Ping { nonce: rng.u64() }));
                        raw.payload.push(envelope(&Envelope::Reply {
                            id: rng.u64(),
                            status: rng.below(10),
                            body: Bytes::from_static(b"forged"),
                        }));
                        raw.payload
                            .push(envelope(&Envelope::Cancel { id: rng.u64() }));
                        if rng.chance(0.3) {
                            raw.payload.push(envelope(&Envelope::Goodbye {
                                code: rng.below(7),
                                reason: "bye".into(),
                            }));
                        }
                        raw.answers_pings = true;
                    }
                    Byzantine::ReuseId => {
                        if rng.chance(0.5) {
                            raw.payload.push(call(0, "h0", rng));
                        } else {
                            let id = rng.u64() | 1;
                            raw.payload.push(call(id, "h1", rng));
                            raw.payload.push(call(id, "h1", rng));
                        }
                    }
                    Byzantine::Mute => raw.stop_reading = true,
                    Byzantine::PartialFrame => {
                        let mut partial = 4096u32.to_be_bytes().to_vec();
                        let len = rng.below(4096) as usize;
                        partial.extend(rng.bytes(len));
                        raw.payload = vec![partial.into()];
                    }
                    // Long enough to outlive the idle timeout (3 s) of
                    // the simulated endpoints by far.
                    Byzantine::PingOnly | Byzantine::HalfFrames => {
                        raw.lifetime = rng.range(5_500_000_000, 9_000_000_000);
                    }
                }
            }
        }
        raw
    }

    fn start_handshake(&mut self, identity: Identity, rng: &mut SimRng) {
        let initiator = Initiator::start(&identity, &rng.array32(), Some(self.victim));
        self.opening = frame(initiator.hello()).to_vec();
        self.decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
        self.initiator = Some(initiator);
        self.identity = Some(identity);
    }

    /// Whether it finished its handshake and will not write again (not
    /// even a PONG): its victim must find out by idle timeout.
    pub fn silent(&self) -> bool {
        self.established && !self.answers_pings && !self.ticks()
    }

    /// Whether it acts on its own timer ([`RawPeer::on_tick`]).
    pub fn ticks(&self) -> bool {
        matches!(
            self.attack,
            Attack::Byzantine(Byzantine::PingOnly | Byzantine::HalfFrames)
        )
    }

    /// Whether it is a `PingOnly` peer: well-behaved as far as its victim
    /// can tell (it sends nothing but valid PINGs).
    pub fn pings_only(&self) -> bool {
        self.attack == Attack::Byzantine(Byzantine::PingOnly)
    }

    /// `HalfFrames` only: the stream offset after its last complete frame
    /// (PROOF), once its handshake is through.
    pub fn trickle_from(&self) -> Option<u64> {
        (self.established && self.attack == Attack::Byzantine(Byzantine::HalfFrames))
            .then_some(self.complete_upto)
    }

    /// Its own timer, at `now` (global ns): a `PingOnly` peer reports a
    /// PING unanswered for `pong_within` and sends the next PING; a
    /// `HalfFrames` peer writes a few more bytes of its frame.
    pub fn on_tick(&mut self, now: u64, pong_within: u64, rng: &mut SimRng) -> Tick {
        let mut tick = Tick::default();
        if !self.established {
            tick.next = Some(50_000_000);
            return tick;
        }
        match self.attack {
            Attack::Byzantine(Byzantine::PingOnly) => {
                tick.late_ping = self
                    .pings
                    .front()
                    .copied()
                    .filter(|&(_, sent)| now > sent + pong_within);
                let nonce = rng.u64();
                self.pings.push_back((nonce, now));
                tick.action.writes.push(envelope(&Envelope::Ping { nonce }));
                tick.next = Some(rng.range(300_000_000, 900_000_000));
            }
            Attack::Byzantine(Byzantine::HalfFrames) => {
                let left = match self.trickle_left {
                    None => {
                        let len = rng.range(512, 4096) as u32;
                        tick.action
                            .writes
                            .push(Bytes::from(len.to_be_bytes().to_vec()));
                        len as usize
                    }
                    Some(left) => {
                        // Never the last byte: the frame stays unfinished.
                        let n = (rng.range(1, 3) as usize).min(left - 1);
                        tick.action.writes.push(rng.bytes(n).into());
                        left - n
                    }
                };
                self.trickle_left = Some(left);
                tick.next = (left > 1).then(|| rng.range(150_000_000, 600_000_000));
            }
            _ => {}
        }
        self.count(&tick.action);
        tick
    }

    fn count(&mut self, action: &RawAction) {
        self.written += action.writes.iter().map(|b| b.len() as u64).sum::<u64>();
    }

    /// The key it holds, if any.
    pub fn identity(&self) -> Option<PeerId> {
        self.identity.as_ref().map(Identity::peer_id)
    }

    /// The transport is open: the opening bytes, split at random.
    pub fn on_open(&mut self, rng: &mut SimRng) -> RawAction {
        let mut action = RawAction::default();
        let mut rest = Bytes::from(std::mem::take(&mut self.opening));
        while !rest.is_empty() {
            let take = rng.range(1, rest.len() as u64) as usize;
            action.writes.push(rest.split_to(take));
        }
        self.count(&action);
        action
    }

    /// Bytes from the victim.
    pub fn on_bytes(&mut self, mut data: Bytes, _rng: &mut SimRng) -> RawAction {
        let mut action = RawAction::default();
        loop {
            let body = match self.decoder.decode(&mut data) {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(_) => {
                    action.close = true;
                    break;
                }
            };
            if !self.established {
                let (Some(initiator), Some(identity)) = (&self.initiator, &self.identity) else {
                    continue; // replayed or garbage: it does not care
                };
                let mut trust = TrustList::new();
                trust.insert(self.victim, None);
                match initiator.on_welcome(identity, &trust, &body) {
                    Ok((_, proof)) => {
                        self.established = true;
                        self.decoder.set_max_frame_len(1 << 20);
                        action.writes.push(frame(&proof));
                        action.writes.append(&mut self.payload);
                        action.stop_reading = self.stop_reading;
                        self.count(&action);
                        self.complete_upto = self.written;
                        continue;
                    }
                    Err(_) => {
                        action.close = true;
                        break;
                    }
                }
            } else if self.answers_pings {
                if let Ok(Envelope::Ping { nonce }) = Envelope::decode(&body) {
                    let pong = envelope(&Envelope::Pong { nonce });
                    self.written += pong.len() as u64;
                    action.writes.push(pong);
                }
            } else if self.pings_only()
                && let Ok(Envelope::Pong { nonce }) = Envelope::decode(&body)
            {
                self.pings.retain(|&(n, _)| n != nonce);
            }
        }
        action
    }
}

impl Sim {
    /// Opens a raw intruder's transport to `victim`.
    pub fn attack(&mut self, victim: NodeIx, attack: Attack) -> Option<LinkId> {
        let attack = match attack {
            Attack::Byzantine(_) if self.byzantine.is_none() => Attack::UntrustedHello,
            Attack::ReplayedHandshake if self.replays.is_empty() => Attack::Garbage,
            a => a,
        };
        let replay = if self.replays.is_empty() {
            None
        } else {
            Some(self.rng.index(self.replays.len()))
        };
        // A replay goes to the node the flight was meant for, if it runs.
        let victim = match (attack, replay) {
            (Attack::ReplayedHandshake, Some(r)) => {
                let target = self.replays[r].0;
                match self.owners.get(&target) {
                    Some(super::Owner::Node(n)) => *n,
                    _ => victim,
                }
            }
            _ => victim,
        };
        let peer = self.nodes[victim].peer;
        let flight = replay.map(|r| self.replays[r].1.clone());
        let raw = RawPeer::new(
            attack,
            peer,
            flight.as_deref(),
            self.byzantine,
            &mut self.rng,
        );
        self.counters.attacks += 1;
        let link = self.dial_raw(raw, victim);
        tr!(self, "intruder {attack:?} dials n{victim} ({link})");
        Some(link)
    }

    /// Carries out what a raw peer (always side 0) wants.
    pub(super) fn raw_act(&mut self, link: LinkId, action: RawAction) {
        for bytes in action.writes {
            self.write(link, 0, bytes);
        }
        if action.stop_reading
            && let Some(l) = self.links.get_mut(&link)
        {
            tr!(self, "{link} intruder stops reading");
            l.dirs[1].stalled_until = u64::MAX;
        }
        if action.close {
            self.raw_close(link);
        }
    }

    /// The last bytes of a raw peer that went silent just arrived: its
    /// victim must close the connection within the idle timeout plus one
    /// ping.
    pub(super) fn oblige_if_silent(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let EndKind::Raw(raw) = &l.ends[0].kind else {
            return;
        };
        if l.dirs[0].has_pending() {
            return;
        }
        let EndKind::Node {
            node,
            inc,
            conn: Some(conn),
        } = l.ends[1].kind
        else {
            return;
        };
        if !raw.silent() || !l.ends[0].open {
            return;
        }
        let c = &self.cfg.endpoint;
        let grace = (c.idle_timeout + c.ping_interval).as_nanos() as u64;
        let at = self.now + grace;
        self.model.obligations.insert((
            at,
            node,
            inc,
            conn,
            super::invariants::Obligation::NoticeDeadPeer,
        ));
    }

    /// A `HalfFrames` peer's complete frames have all been read: its
    /// victim must close the connection within the idle timeout plus one
    /// ping of now, whatever partial bytes follow.
    pub(super) fn oblige_if_trickling(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let delivered = l.delivered[0];
        let EndKind::Node {
            node,
            inc,
            conn: Some(conn),
        } = l.ends[1].kind
        else {
            return;
        };
        let EndKind::Raw(raw) = &mut l.ends[0].kind else {
            return;
        };
        if raw.trickle_obliged || raw.trickle_from().is_none_or(|from| delivered < from) {
            return;
        }
        raw.trickle_obliged = true;
        let c = &self.cfg.endpoint;
        let grace = (c.idle_timeout + c.ping_interval).as_nanos() as u64;
        tr!(
            self,
            "{link} intruder's last complete frame read by n{node}"
        );
        self.model.obligations.insert((
            self.now + grace,
            node,
            inc,
            conn,
            super::invariants::Obligation::CloseTrickler,
        ));
    }

    /// A raw peer's own timer.
    pub(super) fn raw_tick(&mut self, link: LinkId) {
        let now = self.now;
        let pong_within = self.cfg.endpoint.ping_interval.as_nanos() as u64;
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.dead || !l.ends[0].open || !l.ends[1].open {
            return;
        }
        let disturbed = l.disturbed_until;
        let EndKind::Raw(raw) = &mut l.ends[0].kind else {
            return;
        };
        let tick = raw.on_tick(now, pong_within, &mut self.rng);
        if let Some((nonce, sent)) = tick.late_ping
            && disturbed <= sent
        {
            let EndKind::Node { node, .. } = l.ends[1].kind else {
                return;
            };
            return self.fail(
                super::Invariant::PingsAreAnswered,
                format!(
                    "n{node}: no PONG on {link} for the intruder's PING {nonce:#x} sent at {}s",
                    super::Time(sent)
                ),
            );
        }
        self.raw_act(link, tick.action);
        if let Some(after) = tick.next {
            self.schedule(now + after, Ev::RawTick { link });
        }
    }

    pub(super) fn raw_wake(&mut self, link: LinkId) {
        self.raw_close(link);
    }

    fn raw_close(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.ends[0].open || !matches!(l.ends[0].kind, EndKind::Raw(_)) {
            return;
        }
        l.ends[0].open = false;
        tr!(self, "{link} intruder closes");
        self.write_fin(link, 0);
    }
}
