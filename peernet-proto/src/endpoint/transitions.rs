//! What the endpoint does with what a connection reports after input or
//! a timer ([`Transition`]): register a newly established connection under
//! the section-4 rule, route a misrouted reply (fault only), and carry out
//! an [`Ending`] (the one way a connection leaves the endpoint).

use bytes::Bytes;

use crate::config::fault;
use crate::connection::{Connection, Transition};
use crate::ending::Ending;
use crate::ids::{ConnId, Direction};
use crate::registry::Registry;

use super::Endpoint;

impl Endpoint {
    /// Does what a connection asked for after handling input.
    pub(super) fn on_transition(&mut self, conn: ConnId, transition: Transition) {
        match transition {
            Transition::Established => {
                let inbound = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.direction() == Direction::Inbound);
                if inbound {
                    self.inbound_handshakes = self.inbound_handshakes.saturating_sub(1);
                    self.sources.completed(conn, self.ctx.now);
                }
                self.register(conn, inbound);
            }
            Transition::End(ending) => self.end(conn, ending),
            // (kept by `receive`, which alone hands input in)
            Transition::Pause => {}
            Transition::MisroutedReply { id, status, body } => {
                self.misrouted_reply(conn, id, status, body)
            }
        }
    }

    /// Fault `ReplyAnyConnection`: the REPLY's id is looked up on every
    /// connection, in ConnId order, as if request ids were global.
    pub(super) fn misrouted_reply(&mut self, conn: ConnId, id: u64, status: u64, body: Bytes) {
        let owner = self
            .conns
            .iter()
            .find(|(_, c)| c.has_outbound_call(id))
            .map_or(conn, |(owner, _)| *owner);
        if let Some(c) = self.conns.get_mut(&owner) {
            c.resolve_reply(id, status, body, &mut self.ctx);
        }
    }

    /// A connection just became established: charge it to its peer if it
    /// is `inbound` (`reconnects.rs`: proven now), then make it the peer's
    /// one connection, or let the rule of section 4 pick between it and
    /// the one already there.
    pub(super) fn register(&mut self, conn: ConnId, inbound: bool) {
        let Some((peer, newer)) = self.conns.get(&conn).and_then(Connection::established) else {
            return;
        };
        if inbound && !fault!(self.ctx.config, ReconnectsUncharged) {
            self.reconnects.established(peer, self.ctx.now);
        }
        let older = self.registry.get(&peer).and_then(|old| {
            let (_, older) = self.conns.get(&old)?.established()?;
            Some((old, older))
        });
        let keep_newest = fault!(self.ctx.config, SupersedeNewest);
        let timeout = self.ctx.config.handshake_timeout;
        if let Some(loser) = Registry::contest(conn, newer, older, timeout, keep_newest) {
            self.ctx.counters.superseded += 1;
            tracing::debug!(conn = %loser, peer = %peer, "superseded");
            if loser == conn {
                self.end(conn, Ending::Superseded);
                return;
            }
            // Registered first, so the older one's end is no loss of the
            // peer (the dial schedule must not back off for it).
            self.registry.insert(peer, conn);
            if !fault!(self.ctx.config, SupersedeKeepsBoth) {
                self.end(loser, Ending::Superseded);
            }
        }
        self.registry.insert(peer, conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.announce(&mut self.ctx);
        }
        self.on_peer_connected(peer, conn);
    }

    /// Ends a connection: the one way a connection ever leaves the
    /// endpoint. The connection sends its farewell and resolves what it
    /// held ([`Connection::close`]).
    pub(super) fn end(&mut self, conn: ConnId, ending: Ending) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if c.counts_against_handshake_limit() {
            self.inbound_handshakes = self.inbound_handshakes.saturating_sub(1);
        }
        let announced = c.is_announced();
        let peer = c.peer();
        // (why a dial's handshake failed, for its round's report)
        let dial_error =
            (!announced && self.is_dialed(conn)).then(|| ending.clone().handshake_error());
        // (fault `StalledNotLost`: a stalled transport's end is no loss)
        let lost =
            !(fault!(self.ctx.config, StalledNotLost) && matches!(ending, Ending::Stalled(_)));
        if announced {
            if let Some(peer) = peer {
                self.registry.remove(&peer, conn);
            }
        } else {
            let held = ending.held_against_source() && !fault!(self.ctx.config, FailuresUncharged);
            self.sources.ended(conn, held, self.ctx.now);
        }
        c.close(ending, &mut self.ctx);
        // (after `close`: its `HandshakeFailed`, the cause, comes before
        // the dial schedule's `Unreachable`, its consequence)
        if let Some(error) = dial_error {
            self.on_handshake_ended(conn, error);
        }
        if let Some(peer) = peer.filter(|p| lost && announced && self.registry.get(p).is_none()) {
            self.on_peer_lost(peer);
        }
    }
}
