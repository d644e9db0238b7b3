//! A kept connection that stalls ([`Step::Stall`](super::Step::Stall)): one end's reader stops
//! reading, for good, with its window full, while its timers, writer and
//! listener go on. The other end's writer backs up at its next write (it
//! PINGs within `ping_interval` of its last write) and takes nothing from
//! its core; having waited its node's `idle_timeout`, it reports
//! `Input::Stalled`, as a driver's writer does, and writes nothing more.
//! The node must close the connection and, the peer being kept, redial
//! it; the new connection supersedes the stalled one at the reader, whose
//! own `idle_timeout` is longer ([`KeepConfig::patient`]).
//! `StalledPairRedialed` checks the pair is on a new connection within
//! [`stall_bound`].
//!
//! [`KeepConfig::patient`]: super::KeepConfig::patient

use std::time::Duration;

use peernet_proto::{ConnId, Input, PeerId};

use super::{Ev, KeepSim, NodeIx, Stall, Supersede, stall_bound};

impl KeepSim {
    /// The reader of `reader`'s connection with `writer` stops reading.
    pub(super) fn stall_reader(&mut self, reader: NodeIx, writer: NodeIx) {
        let peer = self.nodes[writer].peer;
        let link = self.nodes[reader]
            .ep
            .as_ref()
            .and_then(|ep| ep.connection(&peer))
            .and_then(|c| self.nodes[reader].conns.get(&c).copied());
        if let Some((id, side)) = link
            && let Some(l) = self.links.get_mut(&id)
        {
            l.dirs[side].reader_stalled = true;
        }
        self.stall = Some(Stall {
            reader,
            writer,
            at: self.now,
            link: link.map(|(id, _)| id),
            reconnected: None,
            superseded: None,
        });
    }

    /// Whether node `n`'s writer of `conn` waits on a full window (its
    /// reader stalled): it takes nothing, and its patience starts at its
    /// first wait.
    pub(super) fn window_full(&mut self, n: NodeIx, conn: ConnId) -> bool {
        let Some(&(link, side)) = self.nodes[n].conns.get(&conn) else {
            return false;
        };
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        let dir = &mut l.dirs[1 - side];
        if !dir.reader_stalled {
            return false;
        }
        if dir.blocked_since.is_none() {
            dir.blocked_since = Some(self.now);
            let patience = self.nodes[n]
                .ep
                .as_ref()
                .map_or(Duration::MAX, |ep| ep.config().idle_timeout);
            let at = self.now.saturating_add(patience.as_nanos() as u64);
            let since = self.now;
            self.push(at, Ev::WriterStalled { link, side, since });
        }
        true
    }

    /// Side `side` of `link` has waited on its full window since `since`:
    /// if it still waits, its node hears `Input::Stalled`.
    pub(super) fn writer_stalled(&mut self, link: u64, side: usize, since: u64) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        if l.dirs[1 - side].blocked_since != Some(since) {
            return;
        }
        let (node, inc, conn) = l.ends[side];
        let now = self.instant();
        let n = &mut self.nodes[node];
        if n.inc != inc {
            return;
        }
        let Some(ep) = n.ep.as_mut().filter(|ep| ep.is_open(conn)) else {
            return;
        };
        self.stalls_heard += 1;
        ep.handle_input(now, Input::Stalled { conn });
        self.after(node);
    }

    /// Side `side` of `link` closes its end: if the link is stalled,
    /// nothing it writes is read (the writer gave up, or it is the reader
    /// that stopped), so nothing is sent; returns whether so. The reader's
    /// close drops what it left unread.
    pub(super) fn close_stalled(&mut self, link: u64, side: usize) -> bool {
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        if !l.dirs.iter().any(|d| d.reader_stalled) {
            return false;
        }
        l.dirs[side].done = true;
        if l.dirs[side].reader_stalled {
            l.dirs[side].queue.clear();
        }
        true
    }

    /// Node `n` connected `conn` to `peer`: if it is a new connection of
    /// the stalled pair, the pair is connected again.
    pub(super) fn stall_connected(&mut self, n: NodeIx, conn: ConnId, peer: PeerId) {
        let link = self.nodes[n].conns.get(&conn).map(|(l, _)| *l);
        let Some(&m) = self.ix_of.get(&peer) else {
            return;
        };
        let now = self.now;
        if !self.is_stalled_pair(n, m) {
            return;
        }
        if let Some(s) = self.stall.as_mut()
            && s.reconnected.is_none()
            && link.is_some()
            && link != s.link
        {
            s.reconnected = Some(now);
        }
    }

    /// Node `n` (in life `inc`) ended `conn` as superseded by `survivor`:
    /// if `conn` is the stalled connection at its reader, notes which rule
    /// of section 4 ended it (by who dialed each).
    pub(super) fn stall_superseded(
        &mut self,
        n: NodeIx,
        inc: u32,
        conn: ConnId,
        survivor: Option<ConnId>,
    ) {
        let Some(s) = self.stall.filter(|s| s.reader == n) else {
            return;
        };
        let dialer = |id: u64| self.links.get(&id).map(|l| l.ends[0].0);
        let stalled = s.link.and_then(|id| self.links.get(&id));
        if !stalled.is_some_and(|l| l.ends.contains(&(n, inc, conn))) {
            return;
        }
        let new = survivor
            .and_then(|c| self.nodes[n].conns.get(&c))
            .map(|(id, _)| *id);
        let rule = match new.and_then(dialer) == s.link.and_then(dialer) {
            true => Supersede::SameInitiator,
            false => Supersede::HalfOpen,
        };
        if let Some(s) = self.stall.as_mut() {
            s.superseded = Some(rule);
        }
    }

    /// Whether `a` and `b` (either way round) are the stalled pair.
    pub(super) fn is_stalled_pair(&self, a: NodeIx, b: NodeIx) -> bool {
        self.stall.is_some_and(|s| {
            (s.reader.min(s.writer), s.reader.max(s.writer)) == (a.min(b), a.max(b))
        })
    }

    /// Whether `a` and `b` are the stalled pair within [`stall_bound`] of
    /// the stall: a loss of their connection then is the stall's doing.
    pub(super) fn stall_settling(&self, a: NodeIx, b: NodeIx) -> bool {
        let bound = stall_bound(&self.config).as_nanos() as u64;
        self.is_stalled_pair(a, b) && self.stall.is_some_and(|s| self.now < s.at + bound)
    }
}
