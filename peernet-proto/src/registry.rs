//! One connection per peer: the supersede rule of PROTOCOL.md section 4
//! and the PeerId → connection map it guards.
//!
//! Both peers apply [`survivor`] to the same two connections and reach the
//! same verdict, so a pair of peers converges on one connection without
//! exchanging a message about it.

use alloc::collections::BTreeMap;
use core::time::Duration;

use crate::Instant;
use crate::identity::PeerId;
use crate::ids::ConnId;

/// The one announced connection per peer. Entered only through
/// [`Registry::contest`] and [`Registry::insert`], so the rule of section 4
/// decides every pair of connections to the same peer.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    peers: BTreeMap<PeerId, ConnId>,
}

impl Registry {
    /// The connection registered for `peer`.
    pub(crate) fn get(&self, peer: &PeerId) -> Option<ConnId> {
        self.peers.get(peer).copied()
    }

    /// The registered peers, in PeerId order.
    pub(crate) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// How many peers are registered.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Which of `conn` (just established, as `newer`) and the connection
    /// already registered for the same peer (`older`, with its
    /// [`Established`]) must end: `None` if there is no other.
    pub(crate) fn contest(
        conn: ConnId,
        newer: Established,
        older: Option<(ConnId, Established)>,
        handshake_timeout: Duration,
        keep_newest: bool,
    ) -> Option<ConnId> {
        let (old, older) = older?;
        Some(match survivor(older, newer, handshake_timeout) {
            _ if keep_newest => old,
            Survivor::Newer => old,
            Survivor::Older => conn,
        })
    }

    /// Makes `conn` the connection of `peer` (after [`Registry::contest`]
    /// ended any other).
    pub(crate) fn insert(&mut self, peer: PeerId, conn: ConnId) {
        self.peers.insert(peer, conn);
    }

    /// Forgets `peer` if `conn` is its registered connection.
    pub(crate) fn remove(&mut self, peer: &PeerId, conn: ConnId) {
        if self.peers.get(peer) == Some(&conn) {
            self.peers.remove(peer);
        }
    }
}

/// What the rule needs to know about an established connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    /// The PeerId of the side that dialed it.
    pub initiator: PeerId,
    /// When it became established, on the local clock.
    pub at: Instant,
}

/// Which of two connections to the same peer survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    /// The connection established first.
    Older,
    /// The connection established just now.
    Newer,
}

/// Applies section 4 to connection `older` (established first) and
/// `newer` (just established).
pub fn survivor(older: Established, newer: Established, handshake_timeout: Duration) -> Survivor {
    // 1. Same initiator: a redial replaces the connection the dialer lost.
    if older.initiator == newer.initiator {
        return Survivor::Newer;
    }
    // 2. Long after: the older one is taken to be half-open.
    if newer.at.saturating_duration_since(older.at) > handshake_timeout {
        return Survivor::Newer;
    }
    // 3. Simultaneous dials: the lower initiator's connection wins.
    if newer.initiator < older.initiator {
        Survivor::Newer
    } else {
        Survivor::Older
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn ids() -> (PeerId, PeerId) {
        let a = Identity::from_seed(&[1; 32]).peer_id();
        let b = Identity::from_seed(&[2; 32]).peer_id();
        if a < b { (a, b) } else { (b, a) }
    }

    #[test]
    fn the_three_rules() {
        let (low, high) = ids();
        let t = Duration::from_secs(10);
        let at = |s: u64| Instant::from_millis(s * 1000);
        let e = |initiator, s| Established {
            initiator,
            at: at(s),
        };
        // 1. same initiator, even at the same moment
        assert_eq!(survivor(e(high, 0), e(high, 0), t), Survivor::Newer);
        // 2. different initiators, more than the handshake timeout apart
        assert_eq!(survivor(e(low, 0), e(high, 11), t), Survivor::Newer);
        // exactly the timeout apart is still "simultaneous"
        assert_eq!(survivor(e(low, 0), e(high, 10), t), Survivor::Older);
        // 3. simultaneous: lower initiator wins, whichever came first
        assert_eq!(survivor(e(high, 0), e(low, 1), t), Survivor::Newer);
        // a clock that stepped back never makes the newer look later
        assert_eq!(survivor(e(low, 20), e(high, 5), t), Survivor::Older);
    }
}
