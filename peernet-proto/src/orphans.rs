//! SENDs that outlive their connection, still counted against their peer.
//!
//! A SEND's handler runs on after its connection ends (only shutdown, or
//! unpairing its peer in peernet-driver, stops it), and its arguments
//! stay in the node's total until the driver reports it done
//! ([`crate::Endpoint::send_done`]). They used to leave the
//! per-connection count with their connection, so a peer that
//! reconnected got a fresh `max_inbound_bytes_per_conn` each time while
//! its old SENDs still held theirs: one trusted peer took the whole node
//! budget (16 MiB of 16) in four reconnects and starved every other peer
//! (review s40). Now they stay counted against the peer: a connection's
//! budget is what the SENDs of the peer's ended connections leave of it.
//!
//! An entry lives only while SENDs of an ended connection still run, each
//! one a handler the driver runs (at most `max_inbound_calls` per peer).

use alloc::collections::BTreeMap;

use crate::identity::PeerId;
use crate::ids::ConnId;

/// The arguments' bytes of running SENDs of ended connections.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    by_conn: BTreeMap<ConnId, (PeerId, usize)>,
    by_peer: BTreeMap<PeerId, usize>,
}

impl Orphans {
    /// Bytes that `peer`'s ended connections' SENDs still hold.
    #[inline]
    pub(crate) fn of(&self, peer: &PeerId) -> usize {
        // (most nodes have none: no lookup then)
        if self.by_peer.is_empty() {
            return 0;
        }
        self.by_peer.get(peer).copied().unwrap_or(0)
    }

    /// `conn`, of `peer`, ended while its SENDs held `bytes`.
    pub(crate) fn adopt(&mut self, conn: ConnId, peer: PeerId, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.by_conn.insert(conn, (peer, bytes));
        *self.by_peer.entry(peer).or_insert(0) += bytes;
    }

    /// A SEND of the ended connection `conn` finished: its `bytes` are
    /// no longer its peer's.
    pub(crate) fn done(&mut self, conn: ConnId, bytes: usize) {
        let Some((peer, left)) = self.by_conn.get_mut(&conn) else {
            return;
        };
        let gone = bytes.min(*left);
        *left -= gone;
        let peer = *peer;
        if *left == 0 {
            self.by_conn.remove(&conn);
        }
        if let Some(total) = self.by_peer.get_mut(&peer) {
            *total -= gone.min(*total);
            if *total == 0 {
                self.by_peer.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn a_peers_orphans_add_up_and_go_as_their_sends_finish() {
        let (p, q) = (
            Identity::from_seed(&[1; 32]).peer_id(),
            Identity::from_seed(&[2; 32]).peer_id(),
        );
        let (c1, c2, c3) = (ConnId(1), ConnId(2), ConnId(3));
        let mut o = Orphans::default();
        o.adopt(c1, p, 100);
        o.adopt(c2, p, 50);
        o.adopt(c3, q, 7);
        o.adopt(ConnId(4), q, 0);
        assert_eq!((o.of(&p), o.of(&q)), (150, 7));
        o.done(c1, 60);
        o.done(ConnId(9), 1_000);
        assert_eq!(o.of(&p), 90);
        // more than was left (never from a driver that reports each SEND
        // once): saturates
        o.done(c1, 1_000);
        o.done(c2, 50);
        o.done(c3, 7);
        assert_eq!((o.of(&p), o.of(&q)), (0, 0));
        assert!(o.by_conn.is_empty() && o.by_peer.is_empty());
    }
}
