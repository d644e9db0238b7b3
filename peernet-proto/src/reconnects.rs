//! How often a trusted peer may connect to this node: local policy, like
//! the per-source limits (`sources/`). A trusted peer is still a
//! suspicious one, and every handshake it completes costs this node a
//! signature and two verifications (version 1) or a key generation and
//! four X25519 operations (version 2) while succeeding, so the per-source
//! failure limit never sees it: one trusted peer reconnecting in a loop
//! could keep a core busy with handshakes alone.
//!
//! Each inbound connection a peer **establishes** is charged to that peer
//! (a rate with a burst, [`PeerConnectLimits`], `rate.rs`). A HELLO or INIT
//! naming a trusted peer that owes more than its burst allows is refused
//! with REJECT `busy` (PROTOCOL.md: "try later") before this node does any
//! more work for it: in version 2 after the two X25519 operations that
//! reveal the initiator (so the RESP's three are saved), in version 1
//! before any signature. The refusal is
//! [`HandshakeError::Throttled`](crate::HandshakeError::Throttled), held
//! against the connection's source, so a peer that keeps trying is soon
//! refused at accept by its source's failure limit, with no work at all.
//!
//! Only established connections are charged, because only they prove who
//! the peer is: a version-1 HELLO names a key it has not proven, and a
//! version-2 INIT may be a replay, so nobody can spend a peer's budget by
//! naming it. A peer that opens handshakes in parallel may establish
//! more than its burst at once, as many as it has in progress when it
//! reaches its limit (those are bounded per source,
//! `SourceLimits::handshakes`).

use crate::identity::PeerId;
use crate::rate::RateTable;
use crate::time::Instant;

/// How often each trusted peer may establish an inbound connection
/// ([`Config::peer_connects`](crate::Config::peer_connects)).
/// `#[non_exhaustive]`: start from [`PeerConnectLimits::default`] and set
/// fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerConnectLimits {
    /// Inbound connections a peer may establish per second, after the
    /// burst. Default 20; 0 counts as 1, above a billion is no limit.
    pub per_second: u32,
    /// Inbound connections a peer may establish at once before the rate
    /// applies. Default 64; 0 counts as 1.
    pub burst: u32,
}

impl Default for PeerConnectLimits {
    fn default() -> Self {
        PeerConnectLimits {
            per_second: 20,
            burst: 64,
        }
    }
}

/// Peers charged at most: past this many, each with a connection too
/// recent to be forgotten, a new peer's connection is not charged (the
/// table stays bounded in bytes, about 48 bytes a peer).
const MAX_PEERS: usize = 16 * 1024;

/// Each trusted peer's inbound connections, as a rate.
pub(crate) struct Reconnects {
    table: RateTable<PeerId>,
}

impl Reconnects {
    pub(crate) fn new(limits: PeerConnectLimits, seed: u64) -> Reconnects {
        Reconnects {
            table: RateTable::new(limits.per_second, limits.burst, MAX_PEERS, seed),
        }
    }

    /// Whether a handshake naming `peer` may go on at `now`.
    pub(crate) fn admits(&self, peer: &PeerId, now: Instant) -> bool {
        self.table.has_room(peer, 0, now)
    }

    /// `peer` established an inbound connection at `now`.
    pub(crate) fn established(&mut self, peer: PeerId, now: Instant) {
        self.table.charge(peer, now);
    }
}
