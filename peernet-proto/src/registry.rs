//! One connection per peer: the supersede rule of PROTOCOL.md section 4.
//!
//! Both peers apply [`survivor`] to the same two connections and reach the
//! same verdict, so a pair of peers converges on one connection without
//! exchanging a message about it.

use core::time::Duration;

use crate::Instant;
use crate::identity::PeerId;

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
