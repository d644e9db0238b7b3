//! The application's directory, and what the world remembers of each
//! dial, for `DialedAddressKept`.
//!
//! In a share of the random runs ([`KeepConfig::directory`]) nodes listen
//! at several addresses, the book holds fewer places per peer than that,
//! and at each dial the application looks the peer up in a directory,
//! whose answer (one of the peer's addresses, at random) comes while the
//! dial is out, most often, and goes into the book as the application's.
//! The peer's list is full, so the new address pushes out the worst: the
//! one a round dials last when it failed before, often the very one
//! being dialed. Its dial then works: the book must hold it again, as the
//! address that worked, from its source.
//!
//! [`KeepConfig::directory`]: super::KeepConfig::directory

use std::net::SocketAddr;
use std::time::Duration;

use peernet_proto::{AddrSource, ConnId, PeerId};

use super::{Ev, KeepSim, NodeIx};

/// The longest a directory answer takes: about a dial's round trip and
/// handshake over the slowest links (30 ms a way).
pub const DIRECTORY_DELAY: Duration = Duration::from_millis(120);

/// One of a node's dials, from its `Output::Dial` until its handshake
/// ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Out {
    pub(super) peer: PeerId,
    pub(super) addr: SocketAddr,
    /// The address's source in the book when the dial went out (the
    /// book's when its transport opened, if the book held it then).
    pub(super) source: AddrSource,
    /// The book dropped the address while the dial was out.
    pub(super) dropped: bool,
}

impl KeepSim {
    /// Node `n` (life `inc`) dials `addr` for `peer`: remembers the
    /// address's source; with a directory, looks the peer up.
    pub(super) fn dial_out(&mut self, n: NodeIx, inc: u32, peer: PeerId, addr: SocketAddr) {
        let ep = self.nodes[n].ep.as_ref().expect("up");
        let source = ep
            .addresses(&peer)
            .find(|e| e.addr == addr)
            .map_or(AddrSource::Discovery, |e| e.source);
        let out = Out {
            peer,
            addr,
            source,
            dropped: false,
        };
        self.nodes[n].out.push(out);
        if self.directory && self.ix_of.contains_key(&peer) {
            let delay = self.crowd.range(0, DIRECTORY_DELAY.as_nanos() as u64);
            self.push(self.now + delay, Ev::Directory { node: n, inc, peer });
        }
    }

    /// The directory's answer to node `n`'s look-up of `peer`: one of its
    /// addresses (of its current port, even while it is down), which the
    /// application adds.
    pub(super) fn directory_answer(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        if self.nodes[n].inc != inc || !self.up(n) {
            return;
        }
        let m = self.ix_of[&peer];
        let k = self.crowd.index(usize::from(self.addresses));
        let addr = self.nodes[m].addrs(m, self.addresses)[k];
        let now = self.instant();
        let ep = self.nodes[n].ep.as_mut().expect("up");
        // (full of better addresses: the answer is dropped)
        let _ = ep.add_address(now, peer, addr, AddrSource::Application);
        self.after(n);
    }

    /// Marks the dials of node `n` whose address its book no longer
    /// holds (called whenever its book may have changed).
    pub(super) fn note_dropped(&mut self, n: NodeIx) {
        let node = &mut self.nodes[n];
        let Some(ep) = node.ep.as_ref() else { return };
        let gone = |o: &Out| !ep.addresses(&o.peer).any(|e| e.addr == o.addr);
        for o in node.out.iter_mut().chain(node.dialed.values_mut()) {
            o.dropped |= gone(o);
        }
    }

    /// The outcome of node `n`'s dial of `addr` for `peer` arrived: its
    /// record, if any (the oldest dial of it).
    pub(super) fn dial_done(&mut self, n: NodeIx, peer: PeerId, addr: SocketAddr) -> Option<Out> {
        let out = &mut self.nodes[n].out;
        let at = out.iter().position(|o| o.peer == peer && o.addr == addr)?;
        Some(out.remove(at))
    }

    /// Node `n` opened the transport `conn` of its dial `out`: the source
    /// the core records is the book's now, if it holds the address.
    pub(super) fn dial_opened(&mut self, n: NodeIx, conn: ConnId, mut out: Out) {
        let ep = self.nodes[n].ep.as_ref().expect("up");
        match ep.addresses(&out.peer).find(|e| e.addr == out.addr) {
            Some(e) => out.source = e.source,
            None => out.dropped = true,
        }
        self.nodes[n].dialed.insert(conn, out);
    }

    /// The handshake of node `n`'s dialed `conn` proved its peer (it
    /// connected, or lost a race to the peer's own connection): the book
    /// must hold the address.
    pub(super) fn dial_worked(&mut self, n: NodeIx, conn: ConnId) {
        let Some(out) = self.nodes[n].dialed.get(&conn).copied() else {
            return;
        };
        let ep = self.nodes[n].ep.as_ref().expect("up");
        let entries: Vec<_> = ep.addresses(&out.peer).copied().collect();
        let places = self.config.max_addresses_per_peer;
        self.check
            .on_dial_worked(self.now, n, out, &entries, places);
    }
}
