//! The simulated network: TCP-like links between two ends.
//!
//! A link carries two byte streams, ordered and reliable while the link
//! lives. Whatever one side writes is cut into random pieces that arrive
//! after a random latency (never reordered); the reader takes one or
//! several arrived pieces at a time, so bytes arrive split and coalesced
//! at random. Each direction has a window: a writer only takes bytes from
//! its core (`poll_transmit`) while less than a window is unread, so a
//! reader that stalls makes the core queue and refuse calls with
//! `WouldBlock` (backpressure); a node's writer that waits on a full
//! window for its `idle_timeout`, having taken nothing, reports
//! `Input::Stalled`, as the driver does.
//!
//! Faults: a reset (both sides learn at once), a half-open link (one side
//! forgets it, the other hears nothing more), a partition (both keep it,
//! nothing arrives), a crashed node (all its links go half-open), a dial
//! refused because nobody listens.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use peernet_proto::{ConnId, ConnectError, Input, PeerId, Source};

use super::intruder::RawPeer;
use super::invariants::Invariant;
use super::invariants::Obligation;
use super::node::{ConnModel, NodeIx};
use super::sources;
use super::{Ev, Owner, Phase, Sim};

/// Names one simulated transport for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A dial's first flight is kept for replay attacks: its first two frames
/// (version 1: HELLO and PROOF; version 2: INIT and the first record), if
/// they fit in this many bytes.
pub const MAX_FLIGHT: usize = 4 * 1024;

/// Where the first two frames of `bytes` end, once both are there.
fn two_frames_end(bytes: &[u8]) -> Option<usize> {
    let len_at = |at: usize| -> Option<usize> {
        let h = bytes.get(at..at + 4)?;
        Some(u32::from_be_bytes(h.try_into().ok()?) as usize)
    };
    let second = 4 + len_at(0)?;
    let end = second + 4 + len_at(second)?;
    (bytes.len() >= end).then_some(end)
}

/// One end of a link.
pub enum EndKind {
    /// A node's endpoint; `conn` once it has connected or accepted.
    Node {
        /// The node.
        node: NodeIx,
        /// Its life the connection belongs to.
        inc: u32,
        /// The endpoint's id for it.
        conn: Option<ConnId>,
    },
    /// A raw intruder.
    Raw(Box<RawPeer>),
}

impl EndKind {
    /// The node, its life and its id for the connection, when this end is
    /// a node's and it has connected or accepted.
    pub fn node_conn(&self) -> Option<(NodeIx, u32, ConnId)> {
        match *self {
            EndKind::Node {
                node,
                inc,
                conn: Some(conn),
            } => Some((node, inc, conn)),
            _ => None,
        }
    }
}

/// One end and whether it still reads and writes.
pub struct End {
    /// Who is there.
    pub kind: EndKind,
    /// False once it closed, vanished or crashed.
    pub open: bool,
}

enum Seg {
    Data(Bytes),
    Fin,
}

/// One direction of a link: what side `s` wrote, for side `1 - s`.
#[derive(Default)]
pub struct Dir {
    segs: VecDeque<(u64, Seg)>,
    /// Bytes written and not yet read.
    in_flight: usize,
    /// The writer has bytes to take when the window opens.
    want: bool,
    /// Since when the writer has waited for the window, having taken
    /// nothing since (a node's driver reports `Input::Stalled` after
    /// `idle_timeout` of it).
    blocked_since: Option<u64>,
    /// The writer gave up (`Input::Stalled`): like the driver's, it writes
    /// nothing more, not even the GOODBYE of the close that follows.
    gave_up: bool,
    /// The reader reads nothing before this instant.
    pub(super) stalled_until: u64,
    /// The pending Deliver event.
    wake: Option<u64>,
    /// The latest arrival time queued (arrivals never reorder).
    last_at: u64,
    /// FIN written.
    pub(super) fin: bool,
    /// Bytes written so far.
    pub(super) written: u64,
    /// The last write (a whole `poll_transmit`), for an on-path replay.
    pub(super) last_write: Option<Bytes>,
    /// An on-path attacker broke the stream: by this offset the reader
    /// has read the broken bytes and must have ended the connection.
    pub(super) bad_end: Option<u64>,
}

impl Dir {
    /// Whether bytes (or FIN) are still on their way.
    pub fn has_pending(&self) -> bool {
        !self.segs.is_empty()
    }
}

/// A simulated transport.
pub struct Link {
    /// Its id.
    pub id: LinkId,
    /// Side 0 dialed, side 1 accepted.
    pub ends: [End; 2],
    /// `dirs[s]` carries what side `s` wrote.
    pub dirs: [Dir; 2],
    /// Base one-way latency, ns.
    pub latency: u64,
    /// Unread bytes a writer may have outstanding.
    pub window: usize,
    /// The dialed side accepted.
    pub accepted: bool,
    /// Reset, half-open or partitioned: nothing arrives any more.
    pub dead: bool,
    /// Until when a reader of this link was stalled (global ns): before
    /// then, quiet on it proves nothing about the endpoints.
    pub disturbed_until: u64,
    /// Bytes read so far in each direction (`delivered[s]`: what side `s`
    /// wrote and the other side read).
    pub delivered: [u64; 2],
    /// The dialer's first bytes, for the replay pool.
    record: Option<Vec<u8>>,
    /// An on-path attacker broke a record on it.
    pub tampered: bool,
    /// The address the dialer dials from (`sources.rs`).
    pub source: IpAddr,
}

impl Sim {
    fn new_link(&mut self, dialer: EndKind, target: NodeIx, source: Option<IpAddr>) -> LinkId {
        self.next_link += 1;
        let id = LinkId(self.next_link);
        let source = source.unwrap_or(match &dialer {
            EndKind::Node { node, .. } => sources::of_node(*node),
            EndKind::Raw(_) => sources::of_intruder(id.0),
        });
        let latency = self.rng.range(200_000, 30_000_000);
        let window = match self.rng.below(4) {
            0 => self.rng.range(256, 2_048),
            _ => self.rng.range(4_096, 65_536),
        } as usize;
        let record = matches!(dialer, EndKind::Node { .. }).then(Vec::new);
        let link = Link {
            id,
            ends: [
                End {
                    kind: dialer,
                    open: true,
                },
                End {
                    kind: EndKind::Node {
                        node: target,
                        inc: 0,
                        conn: None,
                    },
                    open: true,
                },
            ],
            dirs: Default::default(),
            latency,
            window,
            accepted: false,
            dead: false,
            disturbed_until: 0,
            delivered: [0; 2],
            record,
            tampered: false,
            source,
        };
        self.links.insert(id, link);
        let connect_delay = latency + self.rng.below(2_000_000);
        self.schedule(self.now + connect_delay, Ev::Accept { link: id });
        id
    }

    /// Node `a` dials node `b`, expecting the PeerId `expected` (`None`:
    /// any trusted responder). The transport opens at once on `a`'s side;
    /// `b` accepts after the link's latency.
    pub fn dial(&mut self, a: NodeIx, b: NodeIx, expected: Option<PeerId>) -> Option<LinkId> {
        let now = self.nodes[a].clock(self.now);
        let ep = self.nodes[a].ep.as_mut()?;
        let conn = match ep.connect(now, expected) {
            Ok(conn) => conn,
            Err(e) => {
                tr!(self, "n{a} dial n{b} refused locally: {e}");
                return None;
            }
        };
        self.counters.dials += 1;
        let inc = self.nodes[a].inc;
        let link = self.new_link(
            EndKind::Node {
                node: a,
                inc,
                conn: Some(conn),
            },
            b,
            None,
        );
        let named = expected.map(|p| self.who(&p));
        tr!(
            self,
            "n{a} dials n{b} ({link}, {conn}, expecting {named:?})"
        );
        self.add_conn(a, conn, link, 0);
        if let Some(cm) = self.nodes[a].conns.get_mut(&conn) {
            cm.expected = expected;
        }
        self.touch(a);
        Some(link)
    }

    /// A raw intruder dials node `victim`, from `source` (`None`: the
    /// intruders' shared ones).
    pub(crate) fn dial_raw(
        &mut self,
        raw: RawPeer,
        victim: NodeIx,
        source: Option<IpAddr>,
    ) -> LinkId {
        let lifetime = raw.lifetime;
        let ticks = raw.ticks();
        let link = self.new_link(EndKind::Raw(Box::new(raw)), victim, source);
        self.schedule(self.now + lifetime, Ev::RawWake { link });
        if ticks {
            self.schedule(self.now + 50_000_000, Ev::RawTick { link });
        }
        link
    }

    fn add_conn(&mut self, n: NodeIx, conn: ConnId, link: LinkId, side: usize) {
        let node = &mut self.nodes[n];
        let opened = node.clock(self.now);
        node.conns.insert(
            conn,
            ConnModel {
                link,
                side,
                opened,
                expected: None,
                established: None,
                revoked: false,
                peer_revoked: false,
                closed: false,
            },
        );
        let deadline = opened + self.cfg.endpoint.handshake_timeout;
        let at = self.nodes[n].global(deadline);
        let inc = self.nodes[n].inc;
        self.model
            .obligations
            .insert((at, n, inc, conn, Obligation::HandshakeEnds));
    }

    pub(super) fn accept(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        if link.dead || !link.ends[0].open {
            tr!(self, "{id} dialer gone before accept");
            return self.forget_link(id);
        }
        let EndKind::Node { node: b, .. } = link.ends[1].kind else {
            return;
        };
        let now = self.nodes[b].clock(self.now);
        let source = link.source;
        let accepted = match self.nodes[b].ep.as_mut() {
            None => Err("nobody listens".to_string()),
            Some(ep) => ep.accept_from(now, Source::from(source)).map_err(|e| {
                if matches!(e, ConnectError::SourceLimited(_)) {
                    self.counters.source_refusals += 1;
                }
                // (with its cause: which of the source's limits)
                peernet_driver::ErrorChain(&e).to_string()
            }),
        };
        let conn = match accepted {
            Ok(conn) => conn,
            Err(why) => {
                tr!(self, "{id} refused by n{b}: {why}");
                if let Some(link) = self.links.get_mut(&id) {
                    link.dead = true;
                }
                self.end_learns_closed(id, 0);
                return self.forget_link(id);
            }
        };
        let inc = self.nodes[b].inc;
        let link = self.links.get_mut(&id).expect("checked");
        link.ends[1].kind = EndKind::Node {
            node: b,
            inc,
            conn: Some(conn),
        };
        link.accepted = true;
        tr!(self, "n{b} accepts {id} as {conn}");
        let limits = self.cfg.endpoint.source_limits;
        if let Err(detail) = self.nodes[b].sources.admitted(conn, source, now, &limits) {
            self.fail(Invariant::SourceLimitsHold, format!("n{b}: {detail}"));
        }
        let slots = self.cfg.endpoint.max_handshakes;
        if let Err(detail) = self.nodes[b].slots.accepted(conn, slots) {
            self.fail(
                Invariant::BusyOnlyWhenEverySlotSpoke,
                format!("n{b}: {detail}"),
            );
        }
        let dialer = match self.links.get(&id).map(|l| &l.ends[0].kind) {
            Some(EndKind::Node { node, .. }) => Some(self.nodes[*node].peer),
            Some(EndKind::Raw(raw)) => raw.key(),
            _ => None,
        };
        self.reconnect_accepted(b, conn, dialer);
        self.add_conn(b, conn, id, 1);
        self.touch(b);
        // A raw dialer starts talking now.
        let opened = match self.links.get_mut(&id).map(|l| &mut l.ends[0].kind) {
            Some(EndKind::Raw(raw)) => Some(raw.on_open(&mut self.rng)),
            _ => None,
        };
        if let Some(action) = opened {
            self.raw_act(id, action);
        }
        for dir in 0..2 {
            self.wake_dir(id, dir);
        }
    }

    /// Side `side` of `link` takes bytes from its core if its window has
    /// room; otherwise it remembers to when the window opens.
    pub(super) fn try_transmit(&mut self, id: LinkId, side: usize) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let dir = &mut link.dirs[side];
        if !link.ends[side].open {
            return;
        }
        let node_end = link.ends[side].kind.node_conn();
        if dir.in_flight >= link.window {
            if !dir.want
                && let Some((node, _, _)) = node_end
            {
                // The driver's writer starts its patience.
                let since = self.now;
                dir.blocked_since = Some(since);
                let patience = self.nodes[node]
                    .ep
                    .as_ref()
                    .map_or(Duration::MAX, |ep| ep.config().idle_timeout);
                let patience = u64::try_from(patience.as_nanos()).unwrap_or(u64::MAX);
                let at = since.saturating_add(patience);
                self.schedule(
                    at,
                    Ev::Stalled {
                        link: id,
                        side,
                        since,
                    },
                );
            }
            let dir = &mut self.links.get_mut(&id).expect("present").dirs[side];
            dir.want = true;
            return;
        }
        dir.want = false;
        dir.blocked_since = None;
        let Some((node, _, conn)) = node_end else {
            return;
        };
        let bytes = self.nodes[node]
            .ep
            .as_mut()
            .and_then(|ep| ep.poll_transmit(conn));
        if let Some(bytes) = bytes {
            self.write(id, side, bytes);
        }
    }

    /// Side `side` of `link` has waited to write since `since`: if it has
    /// taken nothing since, its node's driver gives up on the transport
    /// (`Input::Stalled`), and the connection must end at once.
    pub(super) fn on_stalled(&mut self, id: LinkId, side: usize, since: u64) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        if link.dirs[side].blocked_since != Some(since) || !link.ends[side].open {
            return;
        }
        let Some((node, inc, conn)) = link.ends[side].kind.node_conn() else {
            return;
        };
        let open = |sim: &Self| {
            sim.nodes[node].inc == inc
                && sim.nodes[node]
                    .ep
                    .as_ref()
                    .is_some_and(|ep| ep.is_open(conn))
        };
        if !open(self) {
            return;
        }
        tr!(self, "{id} n{node} took nothing for its patience: stalled");
        self.counters.stalls += 1;
        if let Some(link) = self.links.get_mut(&id) {
            link.dirs[side].gave_up = true;
        }
        self.input(node, Input::Stalled { conn });
        if open(self) {
            self.fail(
                Invariant::StalledTransportsEnd,
                format!("n{node}: {conn} ({id}) still open after Input::Stalled"),
            );
        }
    }

    /// Side `side` writes `bytes` (cut into random pieces).
    pub(super) fn write(&mut self, id: LinkId, side: usize, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if side == 0
            && let Some(rec) = link.record.as_mut()
        {
            let take = (MAX_FLIGHT - rec.len()).min(bytes.len());
            rec.extend_from_slice(&bytes[..take]);
            let end = two_frames_end(rec);
            if end.is_none() && rec.len() == MAX_FLIGHT {
                link.record = None;
            }
            if let Some(end) = end {
                let mut rec = link.record.take().expect("some");
                rec.truncate(end);
                if let EndKind::Node { node, .. } = link.ends[1].kind {
                    let responder = self.nodes[node].peer;
                    if self.replays.len() >= 16 {
                        self.replays.remove(0);
                    }
                    self.replays.push((responder, rec));
                }
            }
        }
        let link = self.links.get_mut(&id).expect("present");
        let dir = &mut link.dirs[side];
        dir.in_flight += bytes.len();
        dir.written += bytes.len() as u64;
        dir.last_write = Some(bytes.clone());
        let mut rest = bytes;
        let pieces = match self.rng.below(3) {
            0 => 1,
            _ => 1 + self.rng.below(4),
        };
        for i in 0..pieces {
            if rest.is_empty() {
                break;
            }
            let piece = if i + 1 == pieces || rest.len() == 1 {
                rest.split_to(rest.len())
            } else {
                let cut = 1 + self.rng.below(rest.len() as u64 - 1) as usize;
                rest.split_to(cut)
            };
            let at =
                (self.now + link.latency + self.rng.below(link.latency / 2 + 1)).max(dir.last_at);
            dir.last_at = at;
            dir.segs.push_back((at, Seg::Data(piece)));
        }
        self.wake_dir(id, side);
    }

    pub(super) fn write_fin(&mut self, id: LinkId, side: usize) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let dir = &mut link.dirs[side];
        if dir.fin {
            return;
        }
        dir.fin = true;
        let at = (self.now + link.latency).max(dir.last_at);
        dir.last_at = at;
        dir.segs.push_back((at, Seg::Fin));
        self.wake_dir(id, side);
    }

    /// Queues the Deliver event for direction `dir` if one is due earlier
    /// than any already queued.
    fn wake_dir(&mut self, id: LinkId, dir: usize) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.accepted {
            return;
        }
        let d = &mut link.dirs[dir];
        let Some((at, _)) = d.segs.front() else {
            return;
        };
        let at = (*at).max(d.stalled_until).max(self.now);
        if d.wake.is_some_and(|w| w <= at) {
            return;
        }
        d.wake = Some(at);
        self.schedule(at, Ev::Deliver { link: id, dir });
    }

    /// The reader of direction `dir` takes one or several arrived pieces.
    pub(super) fn deliver(&mut self, id: LinkId, dir: usize) {
        let now = self.now;
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let d = &mut link.dirs[dir];
        if d.wake != Some(now) {
            return; // superseded by an earlier wake-up
        }
        d.wake = None;
        if link.dead {
            d.segs.clear();
            return;
        }
        if now < d.stalled_until {
            return self.wake_dir(id, dir);
        }
        let ready = d.segs.iter().take_while(|(at, _)| *at <= now).count();
        if ready == 0 {
            return self.wake_dir(id, dir);
        }
        let take = if self.rng.chance(0.5) {
            1
        } else {
            1 + self.rng.index(ready)
        };
        let mut data = BytesMut::new();
        let mut first: Option<Bytes> = None;
        let mut fin = false;
        for _ in 0..take {
            match d.segs.pop_front() {
                Some((_, Seg::Data(b))) => {
                    if first.is_none() && data.is_empty() {
                        first = Some(b);
                    } else {
                        if let Some(f) = first.take() {
                            data.extend_from_slice(&f);
                        }
                        data.extend_from_slice(&b);
                    }
                }
                Some((_, Seg::Fin)) => {
                    fin = true;
                    break;
                }
                None => break,
            }
        }
        let data = first.unwrap_or_else(|| data.freeze());
        d.in_flight -= data.len();
        let reader = 1 - dir;
        if !data.is_empty() && link.ends[reader].open {
            link.delivered[dir] += data.len() as u64;
            self.receive(id, reader, data);
            self.check_tampered(id, dir);
            if dir == 0 {
                self.check_bad_record(id);
                self.oblige_if_silent(id);
                self.oblige_if_trickling(id);
            }
        }
        if fin {
            self.end_learns_closed(id, reader);
        }
        // The writer may take more now.
        let want = self.links.get(&id).is_some_and(|l| l.dirs[dir].want);
        if want {
            self.try_transmit(id, dir);
        }
        self.wake_dir(id, dir);
        self.gc_link(id);
    }

    fn receive(&mut self, id: LinkId, side: usize, data: Bytes) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let end = &mut link.ends[side].kind;
        if let Some((node, _, conn)) = end.node_conn() {
            tr!(self, "n{node} <- {id} {}B", data.len());
            let slots = self.cfg.endpoint.max_handshakes;
            self.nodes[node].slots.received(conn, &data, slots);
            self.input(
                node,
                Input::Received {
                    conn,
                    data: data.into(),
                },
            );
        } else if let EndKind::Raw(raw) = end {
            let action = raw.on_bytes(data, &mut self.rng);
            self.raw_act(id, action);
        }
    }

    /// The end on `side` learns that the transport ended (FIN, reset or
    /// refused dial).
    fn end_learns_closed(&mut self, id: LinkId, side: usize) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.ends[side].open {
            return;
        }
        let end = &mut link.ends[side];
        if let Some((node, _, conn)) = end.kind.node_conn() {
            tr!(self, "n{node} <- {id} EOF");
            self.input(node, Input::Closed { conn });
        } else if let EndKind::Raw(_) = end.kind {
            end.open = false;
            self.write_fin(id, side);
        }
    }

    /// The core is done with `conn`: write `last`, then FIN.
    pub(super) fn on_close(&mut self, n: NodeIx, conn: ConnId, last: Bytes) {
        self.check_close(n, conn);
        let Some(c) = self.nodes[n].conns.get_mut(&conn) else {
            return;
        };
        c.closed = true;
        let (id, side) = (c.link, c.side);
        tr!(self, "n{n} closes {conn} ({id}, {}B last)", last.len());
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.ends[side].open {
            return;
        }
        if !link.dirs[side].gave_up {
            self.write(id, side, last);
        }
        self.write_fin(id, side);
        if let Some(link) = self.links.get_mut(&id) {
            link.ends[side].open = false;
        }
        self.gc_link(id);
    }

    /// Node `n`'s end of `link` vanishes without a word (crash, stop, or
    /// the half of a half-open link): nothing more arrives from or at it,
    /// and a live end on the other side must find out by itself.
    pub(super) fn vanish_end(&mut self, id: LinkId, n: NodeIx) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.dead = true;
        for side in 0..2 {
            if matches!(link.ends[side].kind, EndKind::Node { node, .. } if node == n) {
                link.ends[side].open = false;
            }
        }
        self.oblige_open_ends(id);
        self.forget_link(id);
    }

    /// Every end still open on the dead link `id` must notice within
    /// `idle_timeout` plus one ping interval.
    fn oblige_open_ends(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let mut due = Vec::new();
        for end in &link.ends {
            if let (true, Some(node_end)) = (end.open, end.kind.node_conn()) {
                due.push(node_end);
            }
        }
        for (node, inc, conn) in due {
            if self.nodes[node].inc != inc {
                continue;
            }
            self.oblige_within_idle_grace(node, inc, conn, Obligation::NoticeDeadPeer);
        }
    }

    /// Marks the link `id` dead and counts the fault; false if there is
    /// no such link (it was gone already).
    fn break_link(&mut self, id: LinkId) -> bool {
        let Some(link) = self.links.get_mut(&id) else {
            return false;
        };
        link.dead = true;
        self.counters.faults += 1;
        true
    }

    /// Both sides learn at once that the link died (RST).
    pub fn reset(&mut self, id: LinkId) {
        if !self.break_link(id) {
            return;
        }
        tr!(self, "{id} RESET");
        for side in 0..2 {
            self.end_learns_closed(id, side);
        }
        self.forget_link(id);
    }

    /// Side `side` of the link forgets it (its core hears EOF); the other
    /// side hears nothing more, ever.
    pub fn half_open(&mut self, id: LinkId, side: usize) {
        if !self.break_link(id) {
            return;
        }
        tr!(self, "{id} HALF-OPEN: side {side} forgets it");
        self.end_learns_closed(id, side);
        self.oblige_open_ends(id);
        self.forget_link(id);
    }

    /// Nothing arrives any more, either way; both sides keep the link.
    pub fn partition(&mut self, id: LinkId) {
        if !self.break_link(id) {
            return;
        }
        tr!(self, "{id} PARTITION");
        self.oblige_open_ends(id);
        self.forget_link(id);
    }

    /// The reader of direction `dir` stops reading for `d` (a slow
    /// reader): its writer's window fills.
    pub fn stall(&mut self, id: LinkId, dir: usize, d: Duration) {
        let until = self.now.saturating_add(d.as_nanos() as u64);
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.dirs[dir].stalled_until = until;
        link.disturbed_until = link.disturbed_until.max(until);
        self.counters.faults += 1;
        tr!(
            self,
            "{id} reader of side {dir}'s bytes stalls until {}",
            super::Time(until)
        );
    }

    pub(super) fn unstall_all(&mut self) {
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            for dir in 0..2 {
                if let Some(link) = self.links.get_mut(&id) {
                    link.dirs[dir].stalled_until = 0;
                    link.dirs[dir].wake = None;
                    link.disturbed_until = link.disturbed_until.min(self.now);
                }
                self.wake_dir(id, dir);
            }
        }
    }

    /// Whether `id` carried bytes both ways undisturbed since `since`
    /// (global ns): alive, accepted, no reader stalled after then, and
    /// the end opposite `side` still open.
    pub(super) fn healthy_since(&self, id: LinkId, side: usize, since: u64) -> bool {
        self.links.get(&id).is_some_and(|l| {
            !l.dead && l.accepted && l.disturbed_until <= since && l.ends[1 - side].open
        })
    }

    /// The node end opposite `side` of `id`: (node, life, connection).
    pub(super) fn other_node_end(&self, id: LinkId, side: usize) -> Option<(NodeIx, u32, ConnId)> {
        let (node, inc, conn) = self.links.get(&id)?.ends[1 - side].kind.node_conn()?;
        (self.nodes[node].inc == inc).then_some((node, inc, conn))
    }

    /// The links of node `n`'s open connections.
    pub fn links_of(&self, n: NodeIx) -> Vec<LinkId> {
        self.nodes[n]
            .conns
            .values()
            .filter(|c| !c.closed)
            .map(|c| c.link)
            .collect()
    }

    /// The true holder of the key on side `side` (None: a raw source with
    /// no key of its own).
    pub(super) fn holder(&self, id: LinkId, side: usize) -> Option<(Owner, PeerId)> {
        let link = self.links.get(&id)?;
        match &link.ends[side].kind {
            EndKind::Node { node, .. } => Some((Owner::Node(*node), self.nodes[*node].peer)),
            EndKind::Raw(raw) => raw.identity().map(|p| (Owner::Byzantine, p)),
        }
    }

    /// The PeerId of the side that dialed `id`, if it holds a key.
    pub(super) fn initiator_of(&self, id: LinkId) -> Option<PeerId> {
        self.holder(id, 0).map(|(_, p)| p)
    }

    /// Drops a dead link once no end on it is open any more.
    fn forget_link(&mut self, id: LinkId) {
        self.gc_link(id);
    }

    fn gc_link(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let closed = !link.ends[0].open && !link.ends[1].open;
        let drained = link.dirs.iter().all(|d| d.segs.is_empty());
        if closed && (drained || link.dead) {
            self.links.remove(&id);
        } else if link.dead && !link.accepted {
            // A dial that never got accepted and died: nothing to wait for.
            if !link.ends[0].open {
                self.links.remove(&id);
            }
        }
    }

    /// Whether the quiet phase has begun.
    pub fn is_quiet(&self) -> bool {
        self.phase == Phase::Quiet
    }
}
