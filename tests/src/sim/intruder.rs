//! Intruders that are not endpoints: raw byte sources.
//!
//! Each attack is one transport to a victim node, opened by a [`RawPeer`]
//! that writes a script and reacts to what it reads. None of them may
//! ever reach a handler, except the byzantine peer, which holds a key the
//! victims trust and so may call exposed handles like any peer, but must
//! not get the victim to exceed its limits or crash, whatever it sends.

mod v2;

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use peernet_proto::frame::encode_frame;
use peernet_proto::testkit::handshake::{HELLO_LEN, Initiator, MAX_HANDSHAKE_FRAME, WELCOME_LEN};
use peernet_proto::testkit::noise::INIT_LEN;
use peernet_proto::{Envelope, FrameDecoder, Handle, Identity, PeerId, ProtocolVersion, TrustList};

pub use v2::MARK;

use super::net::{EndKind, LinkId};
use super::node::{HANDLES, NodeIx};
use super::rng::SimRng;
use super::{Ev, Sim};

/// What a raw intruder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Random bytes, sometimes behind a plausible frame header.
    Garbage,
    /// A prefix of a real HELLO (or INIT), then silence.
    TruncatedHello,
    /// A recorded first flight of a real dial (version 1: HELLO + PROOF;
    /// version 2: INIT + the first record), replayed to the node it was
    /// meant for: it must never become a connection.
    ReplayedHandshake,
    /// A well-formed handshake under a key nobody trusts.
    UntrustedHello,
    /// A version-2 INIT whose `mac1` is wrong for its victim (a bit
    /// flipped, or made for another PeerId): REJECT `unexpected_peer`.
    WrongMac1,
    /// A frame header announcing length 0 or more than the limit.
    BadFrameHeader,
    /// An envelope from the `invalid` vectors, sent before any handshake.
    InvalidEnvelopeEarly,
    /// The trusted byzantine key: a real handshake, then misbehaviour.
    Byzantine(Byzantine),
    /// Version 1: a HELLO naming the trusted byzantine key, which it does
    /// not hold, then a PROOF that is not that key's: REJECT
    /// `bad_signature`, never a connection as that key.
    ForgedKey,
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
    /// last complete frame (PROOF, or version 2's first record).
    HalfFrames,
    /// Version 2: a record with one bit flipped (ciphertext or tag).
    TamperedRecord,
    /// Version 2: a valid record sent twice.
    ReplayedRecord,
    /// Version 2: two valid records in the wrong order.
    ReorderedRecord,
    /// Version 2: a record cut short (sometimes below the tag's 16 bytes)
    /// and framed again.
    TruncatedRecord,
    /// Version 2: a valid record whose plaintext ends inside an envelope.
    CutEnvelope,
    /// Sends a few CALLs, then a PING every 20 to 60 ms (so it never
    /// looks idle), and reads nothing: what its victim owes it (replies,
    /// PONGs) fills the window, and the victim's writer must give up on
    /// it after its patience (`Input::Stalled`), unless the hard send cap
    /// ends it first.
    DeafPinger,
    /// Version 2: after RESP, most of a first record as large as the
    /// limit allows instead of the real one, never the rest: its victim
    /// holds it while the handshake lasts, within
    /// `Config::max_handshake_bytes` over all its handshakes. Only in the
    /// scenarios that launch it (not drawn by [`Attack::random`]).
    SlowFirstRecord,
    /// Sends CALLs whose arguments ask for results as large as a frame
    /// allows ([`LARGE`]), and reads nothing over a small window: its
    /// results wait for room in its victim's send queue, charged to the
    /// victim's byte budgets, and those past them are answered
    /// `overloaded`. Only in the scenarios that launch it (not drawn by
    /// [`Attack::random`]).
    UnreadResults,
}

/// The start of the arguments of a call that asks the simulated
/// application for a result as large as a frame allows
/// ([`Byzantine::UnreadResults`]).
pub const LARGE: &[u8] = b"peernet-sim/large-result";

impl Byzantine {
    /// Whether it breaks version 2's records (needs a version-2 victim).
    pub fn breaks_records(self) -> bool {
        matches!(
            self,
            Byzantine::TamperedRecord
                | Byzantine::ReplayedRecord
                | Byzantine::ReorderedRecord
                | Byzantine::TruncatedRecord
                | Byzantine::CutEnvelope
        )
    }
}

impl Attack {
    /// A random attack (`byzantine`: whether a trusted byzantine key
    /// exists in this run).
    pub fn random(rng: &mut SimRng, byzantine: bool) -> Attack {
        let (w, f) = if byzantine { (8, 2) } else { (0, 0) };
        match rng.weighted(&[2, 2, 3, 2, 1, 1, 2, w, f]) {
            8 => Attack::ForgedKey,
            0 => Attack::Garbage,
            1 => Attack::TruncatedHello,
            2 => Attack::ReplayedHandshake,
            3 => Attack::UntrustedHello,
            4 => Attack::WrongMac1,
            5 => Attack::BadFrameHeader,
            6 => Attack::InvalidEnvelopeEarly,
            _ => Attack::Byzantine(
                match rng.weighted(&[2, 2, 3, 2, 1, 1, 2, 2, 1, 1, 1, 1, 1, 3]) {
                    0 => Byzantine::InvalidEnvelope,
                    1 => Byzantine::CallFlood,
                    2 => Byzantine::Chatter,
                    3 => Byzantine::ReuseId,
                    4 => Byzantine::Mute,
                    5 => Byzantine::PartialFrame,
                    6 => Byzantine::PingOnly,
                    7 => Byzantine::HalfFrames,
                    8 => Byzantine::TamperedRecord,
                    9 => Byzantine::ReplayedRecord,
                    10 => Byzantine::ReorderedRecord,
                    11 => Byzantine::TruncatedRecord,
                    12 => Byzantine::CutEnvelope,
                    _ => Byzantine::DeafPinger,
                },
            ),
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

/// What a raw peer writes once its handshake is through.
enum Out {
    /// An envelope body: one frame (version 1), or sealed into a record
    /// (version 2).
    Envelope(Vec<u8>),
    /// Bytes written as they are (a frame never finished).
    Raw(Bytes),
}

/// A raw intruder's side of a link.
pub struct RawPeer {
    /// Its attack.
    pub attack: Attack,
    /// The version its handshake speaks.
    pub version: ProtocolVersion,
    /// How long it stays before it closes, ns.
    pub lifetime: u64,
    identity: Option<Identity>,
    victim: PeerId,
    initiator: Option<Initiator>,
    /// `ForgedKey`: the HELLO it sent, naming a key it does not hold.
    forged: Option<[u8; HELLO_LEN]>,
    session: Option<v2::Session>,
    decoder: FrameDecoder,
    opening: Vec<u8>,
    payload: Vec<Out>,
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
    /// A record attack: the stream offset by which its victim has read
    /// the broken record, and must have ended the connection.
    pub(super) bad_record_end: Option<u64>,
    /// A record attack: how often the [`MARK`] SEND travelled in a
    /// record that opens (its victim may hand it out that often).
    pub(super) marks_allowed: u32,
    /// How often its victim handed the [`MARK`] SEND to a handler.
    pub(super) marks_seen: u32,
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

fn envelope(e: &Envelope) -> Out {
    Out::Envelope(e.to_body())
}

fn call(id: u64, handle: &str, rng: &mut SimRng) -> Out {
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

/// The victims' frame limit less the tag: the most plaintext one record
/// may hold.
const MAX_PLAIN: usize = 4096 - 16;

impl RawPeer {
    /// The key its handshake names, if it makes one of its own.
    pub fn key(&self) -> Option<PeerId> {
        self.identity.as_ref().map(Identity::peer_id)
    }

    /// Builds the attack on `victim`, speaking `version`. `replay` is a
    /// recorded first flight, `byzantine` the seed of the trusted
    /// byzantine key.
    pub fn new(
        attack: Attack,
        version: ProtocolVersion,
        victim: PeerId,
        replay: Option<&[u8]>,
        byzantine: Option<[u8; 32]>,
        rng: &mut SimRng,
    ) -> RawPeer {
        let mut raw = RawPeer {
            attack,
            version,
            lifetime: rng.range(200_000_000, 8_000_000_000),
            identity: None,
            victim,
            initiator: None,
            forged: None,
            session: None,
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
            bad_record_end: None,
            marks_allowed: 0,
            marks_seen: 0,
        };
        match attack {
            Attack::Garbage => {
                let len = rng.range(1, 200) as usize;
                let mut bytes = rng.bytes(len);
                if rng.chance(0.5) && len > 4 {
                    let body = (len - 4) as u32;
                    bytes[..4].copy_from_slice(&body.to_be_bytes());
                    if rng.chance(0.5) && len > 10 {
                        let v = if version == ProtocolVersion::V1 { 1 } else { 2 };
                        bytes[4..10].copy_from_slice(&[b'P', b'N', b'E', b'T', v, 1]);
                    }
                }
                raw.opening = bytes;
            }
            Attack::TruncatedHello => {
                let first = match replay {
                    Some(flight) => first_frame(flight).to_vec(),
                    None if version == ProtocolVersion::V2 => {
                        let id = Identity::from_seed(&rng.array32());
                        v2::start(&id, victim, rng).1
                    }
                    None => {
                        let id = Identity::from_seed(&rng.array32());
                        frame(Initiator::start(&id, &rng.array32(), Some(victim)).hello()).to_vec()
                    }
                };
                let cut = rng.range(1, first.len() as u64 - 1) as usize;
                raw.opening = first[..cut].to_vec();
            }
            Attack::ReplayedHandshake => {
                raw.opening = replay.map(<[u8]>::to_vec).unwrap_or_default();
            }
            Attack::ForgedKey => {
                // (the world sends it only to a version-1 victim, and only
                // when the byzantine key exists)
                let claimed = Identity::from_seed(&byzantine.expect("a byzantine key")).peer_id();
                let own = Identity::from_seed(&rng.array32());
                let mut hello = *Initiator::start(&own, &rng.array32(), Some(victim)).hello();
                hello[6..6 + 32].copy_from_slice(claimed.as_bytes());
                raw.opening = frame(&hello).to_vec();
                raw.decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
                raw.forged = Some(hello);
                raw.identity = Some(own);
                raw.answers_pings = true;
                raw.payload = (0..3)
                    .map(|i| call(i + 1, HANDLES[i as usize], rng))
                    .collect();
            }
            Attack::UntrustedHello => {
                raw.start_handshake(Identity::from_seed(&rng.array32()), rng);
                raw.answers_pings = true;
                raw.payload = (0..3)
                    .map(|i| call(i + 1, HANDLES[i as usize], rng))
                    .collect();
            }
            Attack::WrongMac1 => {
                raw.opening = match replay.map(first_frame) {
                    // A recorded INIT (for this victim or another) with
                    // one bit flipped: its mac1 is wrong, for free.
                    Some(init) if init.len() == 4 + INIT_LEN && init[8] == 2 => {
                        let mut init = init.to_vec();
                        let at = 4 + 6 + rng.index(INIT_LEN - 6);
                        init[at] ^= 1 << rng.below(8);
                        init
                    }
                    _ => v2::wrong_mac1_init(victim, rng),
                };
            }
            Attack::BadFrameHeader => {
                let len: u32 = match rng.below(3) {
                    0 => 0,
                    // Over the handshake frame limit of both versions.
                    1 => INIT_LEN as u32 + 1 + rng.below(1000) as u32,
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
                raw.byzantine_payload(what, rng);
            }
        }
        raw
    }

    fn byzantine_payload(&mut self, what: Byzantine, rng: &mut SimRng) {
        match what {
            Byzantine::InvalidEnvelope => {
                let invalid = invalid_envelopes();
                self.payload = vec![Out::Envelope(invalid[rng.index(invalid.len())].clone())];
            }
            Byzantine::UnreadResults => {
                let n = rng.range(16, 32);
                self.payload = (1..=n)
                    .map(|id| {
                        envelope(&Envelope::Call {
                            id,
                            handle: Handle::new(HANDLES[rng.index(4)]).expect("valid"),
                            args: Bytes::from_static(LARGE),
                            timeout_ms: 0,
                        })
                    })
                    .collect();
                self.stop_reading = true;
                // (past its victim's idle timeout, 3 s)
                self.lifetime = rng.range(4_000_000_000, 6_000_000_000);
            }
            Byzantine::CallFlood | Byzantine::DeafPinger => {
                let deaf = what == Byzantine::DeafPinger;
                let n = if deaf {
                    rng.range(3, 12)
                } else {
                    rng.range(20, 80)
                };
                self.payload = (1..=n)
                    .map(|id| call(id, HANDLES[rng.index(4)], rng))
                    .collect();
                self.stop_reading = true;
                if deaf {
                    // (long enough for a window to fill and the patience,
                    // 3 s, to run out)
                    self.lifetime = rng.range(6_000_000_000, 12_000_000_000);
                }
            }
            Byzantine::Chatter => {
                let base = rng.u64() | 1;
                for i in 0..rng.range(1, 5) {
                    let handle = HANDLES[rng.index(HANDLES.len())];
                    self.payload.push(call(base.wrapping_add(i), handle, rng));
                }
                self.payload.push(envelope(&Envelope::Send {
                    handle: Handle::new(HANDLES[rng.index(4)]).expect("valid"),
                    args: Bytes::from_static(b"byzantine"),
                }));
                self.payload
                    .push(envelope(&Envelope::Ping { nonce: rng.u64() }));
                self.payload.push(envelope(&Envelope::Reply {
                    id: rng.u64(),
                    status: rng.below(10),
                    body: Bytes::from_static(b"forged"),
                }));
                self.payload
                    .push(envelope(&Envelope::Cancel { id: rng.u64() }));
                if rng.chance(0.3) {
                    self.payload.push(envelope(&Envelope::Goodbye {
                        code: rng.below(7),
                        reason: "bye".into(),
                    }));
                }
                self.answers_pings = true;
            }
            Byzantine::ReuseId => {
                if rng.chance(0.5) {
                    self.payload.push(call(0, "h0", rng));
                } else {
                    let id = rng.u64() | 1;
                    self.payload.push(call(id, "h1", rng));
                    self.payload.push(call(id, "h1", rng));
                }
            }
            Byzantine::Mute => self.stop_reading = true,
            Byzantine::PartialFrame => {
                let mut partial = 4096u32.to_be_bytes().to_vec();
                let len = rng.below(4096) as usize;
                partial.extend(rng.bytes(len));
                self.payload = vec![Out::Raw(partial.into())];
            }
            // Long enough to outlive the idle timeout (3 s) of the
            // simulated endpoints by far.
            Byzantine::PingOnly | Byzantine::HalfFrames => {
                self.lifetime = rng.range(5_500_000_000, 9_000_000_000);
            }
            // (written in place of the first record: `on_handshake_done`;
            // it stays past its victim's proof deadline, 2 s)
            Byzantine::SlowFirstRecord => {
                self.lifetime = rng.range(3_000_000_000, 5_000_000_000);
            }
            // Built once the keys are there (`on_bytes`).
            Byzantine::TamperedRecord
            | Byzantine::ReplayedRecord
            | Byzantine::ReorderedRecord
            | Byzantine::TruncatedRecord
            | Byzantine::CutEnvelope => {}
        }
    }

    fn start_handshake(&mut self, identity: Identity, rng: &mut SimRng) {
        match self.version {
            ProtocolVersion::V1 => {
                let initiator = Initiator::start(&identity, &rng.array32(), Some(self.victim));
                self.opening = frame(initiator.hello()).to_vec();
                self.decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
                self.initiator = Some(initiator);
            }
            _ => {
                let (session, init) = v2::start(&identity, self.victim, rng);
                self.opening = init;
                self.decoder = FrameDecoder::new(INIT_LEN as u32);
                self.session = Some(session);
            }
        }
        self.identity = Some(identity);
    }

    /// Turns what it wants to write into bytes: frames (version 1) or
    /// records, one envelope each or batched (version 2).
    fn encode(&mut self, outs: Vec<Out>, rng: &mut SimRng) -> Vec<Bytes> {
        let Some(session) = self.session.as_mut() else {
            return outs
                .into_iter()
                .map(|o| match o {
                    Out::Envelope(body) => frame(&body),
                    Out::Raw(bytes) => bytes,
                })
                .collect();
        };
        let batch = rng.chance(0.5);
        let mut writes = Vec::new();
        let mut bodies = Vec::new();
        for o in outs {
            match o {
                Out::Envelope(body) => bodies.push(body),
                Out::Raw(bytes) => {
                    writes.extend(session.seal_all(&bodies, batch, MAX_PLAIN));
                    bodies.clear();
                    writes.push(bytes);
                }
            }
        }
        writes.extend(session.seal_all(&bodies, batch, MAX_PLAIN));
        writes
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
            Attack::Byzantine(Byzantine::PingOnly | Byzantine::HalfFrames | Byzantine::DeafPinger)
        )
    }

    /// Whether it is a `PingOnly` peer: well-behaved as far as its victim
    /// can tell (it sends nothing but valid PINGs).
    pub fn pings_only(&self) -> bool {
        self.attack == Attack::Byzantine(Byzantine::PingOnly)
    }

    /// `HalfFrames` only: the stream offset after its last complete frame
    /// (PROOF, or the first record), once its handshake is through.
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
                let ping = envelope(&Envelope::Ping { nonce });
                tick.action.writes = self.encode(vec![ping], rng);
                tick.next = Some(rng.range(300_000_000, 900_000_000));
            }
            Attack::Byzantine(Byzantine::DeafPinger) => {
                let ping = envelope(&Envelope::Ping { nonce: rng.u64() });
                tick.action.writes = self.encode(vec![ping], rng);
                tick.next = Some(rng.range(20_000_000, 60_000_000));
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

    /// The handshake answer (WELCOME or RESP) checks out: the last
    /// handshake message (PROOF, or version 2's first record), then the
    /// payload, then (a record attack) the broken records.
    fn on_handshake_done(&mut self, proof: Option<Bytes>, rng: &mut SimRng) -> RawAction {
        let mut action = RawAction::default();
        self.established = true;
        self.decoder.set_max_frame_len(1 << 20);
        let payload = std::mem::take(&mut self.payload);
        match proof {
            Some(proof) => {
                action.writes.push(proof);
                action.writes.extend(self.encode(payload, rng));
            }
            None if self.attack == Attack::Byzantine(Byzantine::SlowFirstRecord) => {
                // Most of a first record of 4,096 bytes, never the rest.
                let mut partial = 4096u32.to_be_bytes().to_vec();
                partial.extend(rng.bytes(4000));
                action.writes.push(partial.into());
            }
            None => {
                // Version 2: the first record goes at once; it carries the
                // payload's first envelopes, or nothing.
                if !matches!(payload.first(), Some(Out::Envelope(_))) {
                    let session = self.session.as_mut().expect("version 2");
                    action.writes.push(session.seal(&[]));
                }
                action.writes.extend(self.encode(payload, rng));
            }
        }
        action.stop_reading = self.stop_reading;
        self.count(&action);
        self.complete_upto = self.written;
        if let (Attack::Byzantine(what), Some(session)) = (self.attack, self.session.as_mut())
            && what.breaks_records()
        {
            let (writes, bad, allowed) = session.bad_records(what, rng);
            let upto: u64 = writes[..=bad].iter().map(|b| b.len() as u64).sum();
            self.bad_record_end = Some(self.written + upto);
            self.marks_allowed = allowed;
            self.written += writes.iter().map(|b| b.len() as u64).sum::<u64>();
            action.writes.extend(writes);
        }
        action
    }

    /// Bytes from the victim.
    pub fn on_bytes(&mut self, mut data: Bytes, rng: &mut SimRng) -> RawAction {
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
            if let (false, Some(hello)) = (self.established, self.forged) {
                // A WELCOME: answer it with a PROOF the claimed key never
                // made (its header right, its signature random).
                if body.len() != WELCOME_LEN || body[..5] != hello[..5] || body[5] != 2 {
                    action.close = true;
                    break;
                }
                let mut proof = hello[..6].to_vec();
                proof[5] = 3;
                proof.extend(rng.bytes(64));
                let done = self.on_handshake_done(Some(frame(&proof)), rng);
                action.writes.extend(done.writes);
                continue;
            }
            if !self.established {
                let proof = match (&self.initiator, &self.identity, self.session.as_mut()) {
                    (Some(initiator), Some(identity), _) => {
                        let mut trust = TrustList::new();
                        trust.insert(self.victim, None);
                        match initiator.on_welcome(identity, &trust, &body) {
                            Ok((_, proof)) => Some(Some(frame(&proof))),
                            Err(_) => None,
                        }
                    }
                    (None, _, Some(session)) => session.read_resp(&body).then_some(None),
                    // Replayed or garbage: it does not care.
                    _ => continue,
                };
                match proof {
                    Some(proof) => {
                        let done = self.on_handshake_done(proof, rng);
                        action.writes.extend(done.writes);
                        action.stop_reading |= done.stop_reading;
                        continue;
                    }
                    None => {
                        action.close = true;
                        break;
                    }
                }
            }
            let envelopes = match self.session.as_mut() {
                Some(session) => match session.open(&body) {
                    Some(envelopes) => envelopes,
                    None => {
                        action.close = true;
                        break;
                    }
                },
                None => Envelope::decode(&body).into_iter().collect(),
            };
            for e in envelopes {
                if self.answers_pings {
                    if let Envelope::Ping { nonce } = e {
                        let pong = self.encode(vec![envelope(&Envelope::Pong { nonce })], rng);
                        self.written += pong.iter().map(|b| b.len() as u64).sum::<u64>();
                        action.writes.extend(pong);
                    }
                } else if self.pings_only()
                    && let Envelope::Pong { nonce } = e
                {
                    self.pings.retain(|&(n, _)| n != nonce);
                }
            }
        }
        action
    }
}

/// The first frame of a recorded flight (HELLO or INIT, with its header).
fn first_frame(flight: &[u8]) -> &[u8] {
    let len = flight.get(..4).map_or(0, |h| {
        u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize
    });
    &flight[..(4 + len).min(flight.len())]
}

/// A raw intruder's link to a node (see [`Sim::raw_against_node`]).
pub(super) struct RawAgainstNode<'a> {
    /// How many of the intruder's bytes the node has read.
    pub delivered: u64,
    /// The node.
    pub node: NodeIx,
    /// The node's life the connection belongs to.
    pub inc: u32,
    /// The node's id for the connection.
    pub conn: peernet_proto::ConnId,
    /// The intruder.
    pub raw: &'a mut RawPeer,
}

impl Sim {
    /// Opens a raw intruder's transport to `victim`.
    pub fn attack(&mut self, victim: NodeIx, attack: Attack) -> Option<LinkId> {
        self.attack_from(victim, attack, None)
    }

    /// [`Sim::attack`] from `source` (`None`: one the intruders share).
    pub fn attack_from(
        &mut self,
        victim: NodeIx,
        attack: Attack,
        source: Option<std::net::IpAddr>,
    ) -> Option<LinkId> {
        let attack = match attack {
            Attack::Byzantine(_) if self.byzantine.is_none() => Attack::UntrustedHello,
            Attack::ForgedKey
                if self.byzantine.is_none()
                    || self.cfg.version_of(victim) != ProtocolVersion::V1 =>
            {
                Attack::UntrustedHello
            }
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
        // Mostly the victim's version; now and then a handshake of the
        // other one, which must be refused with `unsupported_version`.
        let theirs = self.cfg.version_of(victim);
        let version = match attack {
            Attack::WrongMac1 => ProtocolVersion::V2,
            Attack::Byzantine(_) | Attack::ReplayedHandshake | Attack::ForgedKey => theirs,
            _ if self.rng.chance(0.15) => match theirs {
                ProtocolVersion::V1 => ProtocolVersion::V2,
                _ => ProtocolVersion::V1,
            },
            _ => theirs,
        };
        // Records exist on version 2 only.
        let attack = match attack {
            Attack::Byzantine(b)
                if (b.breaks_records() || b == Byzantine::SlowFirstRecord)
                    && version == ProtocolVersion::V1 =>
            {
                Attack::Byzantine(Byzantine::InvalidEnvelope)
            }
            a => a,
        };
        let peer = self.nodes[victim].peer;
        let flight = replay.map(|r| self.replays[r].1.clone());
        let raw = RawPeer::new(
            attack,
            version,
            peer,
            flight.as_deref(),
            self.byzantine,
            &mut self.rng,
        );
        self.counters.attacks += 1;
        if attack == Attack::ReplayedHandshake && version == ProtocolVersion::V2 {
            self.counters.replayed_inits += 1;
        }
        let link = self.dial_raw(raw, victim, source);
        if matches!(
            attack,
            Attack::Byzantine(Byzantine::DeafPinger | Byzantine::UnreadResults)
        ) && let Some(l) = self.links.get_mut(&link)
        {
            // A real socket's buffers fill too, given time: a small window
            // fills within the intruder's life.
            l.window = l.window.min(512);
        }
        tr!(
            self,
            "intruder {attack:?} ({version:?}) dials n{victim} ({link})"
        );
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
        if l.dirs[0].has_pending() || !l.ends[0].open {
            return;
        }
        let Some(r) = self.raw_against_node(link) else {
            return;
        };
        if !r.raw.silent() {
            return;
        }
        let (node, inc, conn) = (r.node, r.inc, r.conn);
        self.oblige_within_idle_grace(
            node,
            inc,
            conn,
            super::invariants::Obligation::NoticeDeadPeer,
        );
    }

    /// The raw intruder on `link` and the node it talks to, if the node's
    /// end has a connection.
    pub(super) fn raw_against_node(&mut self, link: LinkId) -> Option<RawAgainstNode<'_>> {
        let l = self.links.get_mut(&link)?;
        let delivered = l.delivered[0];
        let (node, inc, conn) = l.ends[1].kind.node_conn()?;
        let EndKind::Raw(raw) = &mut l.ends[0].kind else {
            return None;
        };
        Some(RawAgainstNode {
            delivered,
            node,
            inc,
            conn,
            raw,
        })
    }

    /// A `HalfFrames` peer's complete frames have all been read: its
    /// victim must close the connection within the idle timeout plus one
    /// ping of now, whatever partial bytes follow.
    pub(super) fn oblige_if_trickling(&mut self, link: LinkId) {
        let Some(r) = self.raw_against_node(link) else {
            return;
        };
        if r.raw.trickle_obliged || r.raw.trickle_from().is_none_or(|from| r.delivered < from) {
            return;
        }
        r.raw.trickle_obliged = true;
        let (node, inc, conn) = (r.node, r.inc, r.conn);
        tr!(
            self,
            "{link} intruder's last complete frame read by n{node}"
        );
        self.oblige_within_idle_grace(
            node,
            inc,
            conn,
            super::invariants::Obligation::CloseTrickler,
        );
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
