//! One simulated node: a real [`Endpoint`] (absent while the node is down),
//! the model the invariants compare it with, and the simulated
//! application's rules for answering calls.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::{
    Access, CallId, Config, ConnId, Endpoint, Identity, InboundCallId, Instant, PeerId, TrustList,
};

use super::net::LinkId;
use super::rng::SimRng;

/// Index of a node in the simulation.
pub type NodeIx = usize;

/// The handles the simulated applications expose and call. `nope` is
/// never exposed.
pub const HANDLES: [&str; 5] = ["h0", "h1", "h2", "h3", "nope"];

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A regular node, trusted by (most of) the others.
    Honest,
    /// An intruder running a real endpoint under a key nobody trusts. It
    /// trusts everyone, dials and calls like the others, and must never
    /// get through.
    Untrusted,
}

/// Whether a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// `shutdown` called; `close_all` follows.
    ShuttingDown,
    /// Crashed or stopped; restarts later with the same identity.
    Down,
}

/// Who may call a handle, in the model (mirrors [`Access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposed {
    /// Every trusted peer.
    Anyone,
    /// Only these.
    Only(BTreeSet<PeerId>),
}

impl Exposed {
    /// Whether `peer` may call.
    pub fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Exposed::Anyone => true,
            Exposed::Only(set) => set.contains(peer),
        }
    }

    /// The core's form.
    pub fn access(&self) -> Access {
        match self {
            Exposed::Anyone => Access::Anyone,
            Exposed::Only(set) => Access::only(set.iter().copied()),
        }
    }
}

/// The model of one connection of a node, from `connect`/`accept` until
/// its `Disconnected` or `HandshakeFailed` event.
#[derive(Debug, Clone)]
pub struct ConnModel {
    /// The simulated transport.
    pub link: LinkId,
    /// This node's side of the link (0: dialed, 1: accepted).
    pub side: usize,
    /// When it was opened, on the node's clock.
    pub opened: Instant,
    /// The PeerId the dial named (`None`: accepted, or any trusted
    /// responder).
    pub expected: Option<PeerId>,
    /// The proven peer and when `Connected` came, on the node's clock.
    pub established: Option<(PeerId, Instant)>,
    /// The peer was unpaired while this connection was established.
    pub revoked: bool,
    /// The peer unpaired us and sent its GOODBYE `revoked` on this
    /// connection: it must end with that GOODBYE.
    pub peer_revoked: bool,
    /// `Output::Close` came: the core is done with it.
    pub closed: bool,
}

/// One of a node's own calls, from `call` until its `CallResult`.
#[derive(Debug, Clone)]
pub struct PendingCall {
    /// Unique over the run; carried in the args, echoed in the reply.
    pub token: u64,
    /// The node called.
    pub callee: NodeIx,
    /// The handle called.
    pub handle: &'static str,
    /// When it times out, on the caller's clock.
    pub deadline: Option<Instant>,
    /// Cancelled with `Endpoint::cancel`.
    pub cancelled: bool,
}

/// A simulated node.
pub struct Node {
    /// Its index.
    pub ix: NodeIx,
    /// What it is.
    pub role: Role,
    /// Its identity's secret seed (kept to restart with the same key).
    pub seed: [u8; 32],
    /// Its PeerId.
    pub peer: PeerId,
    /// The endpoint, while the node is up.
    pub ep: Option<Endpoint>,
    /// Bumped at every crash or stop: events of an earlier life are stale.
    pub inc: u32,
    /// Whether it runs.
    pub state: NodeState,
    /// How far its clock is ahead of virtual time (clock steps), ns.
    pub offset: u64,
    /// The global time of the `handle_timeout` wake-up queued for it.
    pub timer_at: Option<u64>,
    /// When its clock last stepped (global time, ns).
    pub last_clock_step: Option<u64>,
    /// The trust list, as the model knows it (persists across restarts).
    pub trust: BTreeSet<PeerId>,
    /// The exposed handles, as the model knows them (re-exposed after a
    /// restart).
    pub exposure: BTreeMap<&'static str, Exposed>,
    /// Connections the core drives.
    pub conns: BTreeMap<ConnId, ConnModel>,
    /// Our calls in flight.
    pub calls: BTreeMap<CallId, PendingCall>,
    /// Calls we serve, in flight.
    pub serving: BTreeSet<InboundCallId>,
    /// What this life admitted from each source address.
    pub sources: super::sources::Ledger,
    /// What this life's handshake slots hold (`slots.rs`).
    pub slots: super::slots::Slots,
    /// Each dialer identity's inbound connections in this life
    /// (`reconnects.rs`).
    pub reconnects: super::reconnects::Ledger,
}

impl Node {
    /// A node that is not started yet.
    pub fn new(ix: NodeIx, role: Role, seed: [u8; 32]) -> Node {
        let peer = Identity::from_seed(&seed).peer_id();
        Node {
            ix,
            role,
            seed,
            peer,
            ep: None,
            inc: 0,
            state: NodeState::Down,
            offset: 0,
            timer_at: None,
            last_clock_step: None,
            trust: BTreeSet::new(),
            exposure: BTreeMap::new(),
            conns: BTreeMap::new(),
            calls: BTreeMap::new(),
            serving: BTreeSet::new(),
            sources: Default::default(),
            slots: Default::default(),
            reconnects: Default::default(),
        }
    }

    /// The node's clock at virtual time `now`.
    pub fn clock(&self, now: u64) -> Instant {
        Instant::from_nanos(now.saturating_add(self.offset))
    }

    /// Virtual time at which the node's clock reads `at`.
    pub fn global(&self, at: Instant) -> u64 {
        at.as_nanos().saturating_sub(self.offset)
    }

    /// Starts (or restarts) the endpoint with the model's trust list and
    /// exposures.
    pub fn start(&mut self, config: &Config, rng: &mut SimRng) {
        let mut trust = TrustList::new();
        for peer in &self.trust {
            trust.insert(*peer, None);
        }
        let identity = Identity::from_seed(&self.seed);
        let mut ep = Endpoint::new(config.clone(), identity, trust, Box::new(rng.fork()));
        for (handle, exposed) in &self.exposure {
            ep.expose(handle, exposed.access()).expect("valid handle");
        }
        self.ep = Some(ep);
        self.state = NodeState::Up;
        self.timer_at = None;
    }

    /// Forgets everything of the current life (crash or stop).
    pub fn stop(&mut self) {
        self.ep = None;
        self.state = NodeState::Down;
        self.inc += 1;
        self.timer_at = None;
        self.conns.clear();
        self.calls.clear();
        self.serving.clear();
        self.sources = Default::default();
        self.slots = Default::default();
        self.reconnects = Default::default();
    }

    /// Whether the node is up and accepts commands.
    pub fn is_up(&self) -> bool {
        self.state == NodeState::Up && self.ep.is_some()
    }

    /// The established connection models to `peer` (at most one, says
    /// the invariant).
    pub fn established_to(&self, peer: &PeerId) -> impl Iterator<Item = (&ConnId, &ConnModel)> {
        self.conns
            .iter()
            .filter(move |(_, c)| !c.closed && c.established.is_some_and(|(p, _)| p == *peer))
    }
}

// ----- what the simulated application puts in calls and replies -----

/// Call arguments: `token (8) | caller (2) | padding`.
pub fn call_args(token: u64, caller: NodeIx, pad: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(10 + pad);
    b.put_u64(token);
    b.put_u16(caller as u16);
    b.put_bytes(0xA5, pad);
    b.freeze()
}

/// The token a call carried (0 for args the simulated caller did not
/// write, e.g. an intruder's).
pub fn token_of(args: &[u8]) -> u64 {
    args.get(..8)
        .map_or(0, |t| u64::from_be_bytes(t.try_into().expect("8 bytes")))
}

/// A reply body: `"R" | token (8) | callee (2) | caller's PeerId as the
/// callee saw it (32) | padding`. The checker reads it back to prove the
/// reply is the callee's answer to that very call.
pub fn reply_body(token: u64, callee: NodeIx, caller: &PeerId, pad: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(43 + pad);
    b.put_u8(b'R');
    b.put_u64(token);
    b.put_u16(callee as u16);
    b.put_slice(caller.as_bytes());
    b.put_bytes(0x5A, pad);
    b.freeze()
}

/// What a reply body says: (token, callee, caller).
pub fn read_reply(body: &[u8]) -> Option<(u64, NodeIx, [u8; 32])> {
    if body.len() < 43 || body[0] != b'R' {
        return None;
    }
    let token = u64::from_be_bytes(body[1..9].try_into().ok()?);
    let callee = usize::from(u16::from_be_bytes(body[9..11].try_into().ok()?));
    let caller: [u8; 32] = body[11..43].try_into().ok()?;
    Some((token, callee, caller))
}

/// The note of a simulated handler panic.
pub fn panic_note(token: u64, callee: NodeIx) -> String {
    format!("panic t{token} n{callee}")
}
