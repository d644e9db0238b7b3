//! Handshakes in progress per source address: the local policy that keeps
//! one address from taking every handshake slot with idle sockets
//! (PROTOCOL.md section 6.1 leaves it to each node).
//!
//! A source is an IPv4 address or an IPv6 /64 (one host or one subnet
//! hands out a /64). An accepted connection counts against its source
//! from accept until its handshake ends either way; one more from a source
//! at its limit is closed at once, before the core sees it (a bare close,
//! no REJECT, no work).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use peernet_proto::ConnId;
use rustc_hash::FxHashMap as FastMap;

/// Where a connection came from, as far as the per-source limit cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl Source {
    pub(crate) fn of(addr: SocketAddr) -> Source {
        match addr.ip() {
            IpAddr::V4(ip) => Source::V4(ip.octets()),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&ip.octets()[..8]);
                    Source::V6(prefix)
                }
            },
        }
    }
}

/// The counts, and which connection (`C`, a [`ConnId`] in the node)
/// counts against which source.
#[derive(Debug)]
pub(crate) struct Sources<C = ConnId> {
    limit: usize,
    counts: FastMap<Source, usize>,
    by_conn: FastMap<C, Source>,
    /// Connections closed at accept because their source was at its limit.
    pub(crate) refused: u64,
}

impl<C: Copy + Eq + Hash> Sources<C> {
    pub(crate) fn new(limit: usize) -> Sources<C> {
        Sources {
            limit,
            counts: FastMap::default(),
            by_conn: FastMap::default(),
            refused: 0,
        }
    }

    /// Whether one more handshake from `source` fits; counts a refusal.
    pub(crate) fn has_room(&mut self, source: Source) -> bool {
        let room = self.counts.get(&source).copied().unwrap_or(0) < self.limit;
        if !room {
            self.refused += 1;
        }
        room
    }

    /// `conn`, accepted from `source`, counts until [`Sources::release`].
    pub(crate) fn track(&mut self, conn: C, source: Source) {
        *self.counts.entry(source).or_insert(0) += 1;
        self.by_conn.insert(conn, source);
    }

    /// `conn`'s handshake ended (or the connection did): it no longer
    /// counts. Harmless for a connection that never counted.
    pub(crate) fn release(&mut self, conn: C) {
        let Some(source) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(n) = self.counts.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn ipv4_by_address_ipv6_by_slash_64() {
        assert_eq!(source("127.0.0.1:1"), source("127.0.0.1:2"));
        assert_ne!(source("127.0.0.1:1"), source("127.0.0.2:1"));
        assert_eq!(
            source("[2001:db8:1:2::1]:1"),
            source("[2001:db8:1:2:ff::9]:7")
        );
        assert_ne!(source("[2001:db8:1:2::1]:1"), source("[2001:db8:1:3::1]:1"));
        assert_eq!(source("[::ffff:10.0.0.1]:1"), source("10.0.0.1:9"));
    }

    #[test]
    fn a_source_at_its_limit_is_refused_until_one_ends() {
        let mut s = Sources::<u64>::new(2);
        let a = source("127.0.0.1:1");
        let b = source("127.0.0.2:1");
        let conns = [1u64, 2, 3];
        assert!(s.has_room(a));
        s.track(conns[0], a);
        assert!(s.has_room(a));
        s.track(conns[1], a);
        assert!(!s.has_room(a), "third from one source");
        assert!(s.has_room(b), "another source is not affected");
        s.release(conns[0]);
        s.release(conns[0]); // twice is harmless
        assert!(s.has_room(a));
        s.release(conns[2]); // never counted
        assert_eq!(s.refused, 1);
    }
}
