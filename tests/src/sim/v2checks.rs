//! Version 2 in the simulation: an on-path attacker that breaks records
//! on a live link between two honest nodes, and the checks of the
//! version-2 invariants (`replayed_init_never_connects`,
//! `bad_records_end_the_connection`, `versions_never_mix`) that need the
//! links and the raw intruders.

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::{ConnId, ProtocolVersion};

use super::intruder::Attack;
use super::net::{EndKind, LinkId};
use super::node::NodeIx;
use super::{Invariant, Sim};

/// How an on-path attacker breaks the byte stream of a live version-2
/// link, at a frame boundary (after a whole write of the sender's core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// A frame of random bytes where a record belongs (a forged or
    /// tampered record: it does not decrypt).
    Forged,
    /// A record of the stream sent again (its nonce is spent).
    Replayed,
    /// A frame too short to hold a tag (a truncated record).
    Short,
}

impl Sim {
    /// An on-path attacker breaks direction `dir` (what side `dir` writes)
    /// of `link`, if it joins two honest version-2 nodes that are both
    /// established on it: the reader must end the connection as soon as
    /// it reads the broken bytes. Returns whether it did.
    pub fn tamper(&mut self, link: LinkId, dir: usize, how: Tamper) -> bool {
        let Some(l) = self.links.get(&link) else {
            return false;
        };
        let (
            EndKind::Node {
                node: a,
                inc: ia,
                conn: Some(ca),
            },
            EndKind::Node {
                node: b,
                inc: ib,
                conn: Some(cb),
            },
        ) = (&l.ends[0].kind, &l.ends[1].kind)
        else {
            return false;
        };
        let (a, b, ia, ib, ca, cb) = (*a, *b, *ia, *ib, *ca, *cb);
        let live = |n: NodeIx, inc: u32, c: ConnId| {
            self.nodes[n].inc == inc
                && self.cfg.version_of(n) == ProtocolVersion::V2
                && self.nodes[n]
                    .conns
                    .get(&c)
                    .is_some_and(|m| !m.closed && m.established.is_some())
        };
        let d = &l.dirs[dir];
        if l.dead
            || !l.ends[0].open
            || !l.ends[1].open
            || d.fin
            || !live(a, ia, ca)
            || !live(b, ib, cb)
        {
            return false;
        }
        let bytes: Bytes = match (how, d.last_write.as_ref()) {
            (Tamper::Replayed, Some(last)) if last.len() >= 4 => {
                let len = u32::from_be_bytes(last[..4].try_into().expect("4 bytes")) as usize;
                last.slice(..(4 + len).min(last.len()))
            }
            (Tamper::Short, _) => {
                let n = 1 + self.rng.index(15);
                framed(&self.rng.bytes(n))
            }
            _ => {
                let n = 16 + self.rng.index(64);
                framed(&self.rng.bytes(n))
            }
        };
        tr!(
            self,
            "{link} on-path attacker: {how:?} record ({}B) from side {dir}",
            bytes.len()
        );
        self.counters.faults += 1;
        self.write(link, dir, bytes);
        if let Some(l) = self.links.get_mut(&link) {
            l.tampered = true;
            l.dirs[dir].bad_end = Some(l.dirs[dir].written);
        }
        true
    }

    /// Invariant `bad_records_end_the_connection`, after the reader of
    /// direction `dir` of `link` read more: once it read the broken bytes
    /// an on-path attacker wrote, its connection must be over.
    pub(super) fn check_tampered(&mut self, link: LinkId, dir: usize) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let (delivered, reader) = (l.delivered[dir], 1 - dir);
        if l.dirs[dir].bad_end.is_none_or(|end| delivered < end) {
            return;
        }
        l.dirs[dir].bad_end = None;
        let Some((node, inc, conn)) = l.ends[reader].kind.node_conn() else {
            return;
        };
        self.bad_record_read(node, inc, conn, || {
            format!("n{node}: {conn} ({link}) still open after reading a record an on-path attacker broke")
        });
    }

    /// Whether an on-path attacker broke a record on `link`: what its
    /// reader then reports (a local protocol error) is expected.
    pub(super) fn tampered(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| l.tampered)
    }

    /// The attack of the raw intruder that dialed `link`, if one did.
    pub(super) fn raw_attack(&self, link: LinkId) -> Option<Attack> {
        match &self.links.get(&link)?.ends[0].kind {
            EndKind::Raw(raw) => Some(raw.attack),
            EndKind::Node { .. } => None,
        }
    }

    /// The versions of the two nodes on `link` (dialer first), when both
    /// ends are nodes.
    pub(super) fn node_versions(&self, link: LinkId) -> Option<(ProtocolVersion, ProtocolVersion)> {
        let l = self.links.get(&link)?;
        match (&l.ends[0].kind, &l.ends[1].kind) {
            (EndKind::Node { node: a, .. }, EndKind::Node { node: b, .. }) => {
                Some((self.cfg.version_of(*a), self.cfg.version_of(*b)))
            }
            _ => None,
        }
    }

    /// Invariant `bad_records_end_the_connection`, after its victim read
    /// more of a raw intruder's stream: once the broken record is read,
    /// the connection must be over.
    pub(super) fn check_bad_record(&mut self, link: LinkId) {
        let Some(r) = self.raw_against_node(link) else {
            return;
        };
        if r.raw.bad_record_end.is_none_or(|end| r.delivered < end) {
            return;
        }
        r.raw.bad_record_end = None;
        let (node, inc, conn, attack) = (r.node, r.inc, r.conn, r.raw.attack);
        self.bad_record_read(node, inc, conn, || {
            format!("n{node}: {conn} ({link}) still open after reading the record of {attack:?}")
        });
    }

    /// Node `node` (in its life `inc`) has read a broken record on `conn`:
    /// the connection must be over (`what` says otherwise).
    fn bad_record_read(
        &mut self,
        node: NodeIx,
        inc: u32,
        conn: ConnId,
        what: impl FnOnce() -> String,
    ) {
        if self.nodes[node].inc != inc {
            return;
        }
        self.counters.bad_records += 1;
        if self.nodes[node].conns.get(&conn).is_some_and(|c| !c.closed) {
            self.fail(Invariant::BadRecordsEndTheConnection, what());
        }
    }

    /// Invariant `bad_records_end_the_connection`: node `n` handed a
    /// [`MARK`] SEND to a handler; more often than valid records carried
    /// one means a broken record delivered it.
    pub(super) fn check_marked_send(&mut self, n: NodeIx, conn: ConnId) {
        let Some(link) = self.nodes[n].conns.get(&conn).map(|c| c.link) else {
            return;
        };
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let EndKind::Raw(raw) = &mut l.ends[0].kind else {
            return;
        };
        raw.marks_seen += 1;
        let (seen, allowed, attack) = (raw.marks_seen, raw.marks_allowed, raw.attack);
        if seen > allowed {
            self.fail(
                Invariant::BadRecordsEndTheConnection,
                format!(
                    "n{n}: {conn} ({link}) handed out {seen} SENDs of {attack:?}, only {allowed} came in a valid record"
                ),
            );
        }
    }
}

fn framed(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.freeze()
}
