//! A transport opens: the handshake starts as initiator ([`Endpoint::connect`])
//! or as responder ([`Endpoint::accept`], and [`Endpoint::accept_from`]
//! with the per-source limits of `sources/` checked first). When every
//! handshake slot is taken, an accepted connection takes the slot of the
//! oldest one that has not delivered a complete frame yet.

use super::*;

impl Endpoint {
    /// A transport we dialed is open: starts the handshake as initiator
    /// (HELLO or INIT is queued). `expected` is the PeerId dialed; `None`
    /// accepts any trusted responder in version 1, and is refused with
    /// [`ConnectError::PeerIdRequired`] in version 2.
    pub fn connect(
        &mut self,
        now: Instant,
        expected: Option<PeerId>,
    ) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        if let Some(peer) = expected {
            if !self.trust.contains(&peer) || peer == self.peer_id() {
                return Err(ConnectError::Untrusted(peer));
            }
        }
        let id = ConnId(self.next_conn);
        let expected = match fault!(self.ctx.config, IgnoreExpectedPeer) {
            true => None,
            false => expected,
        };
        let conn = Connection::dial(id, expected, &mut node!(self), &mut self.ctx)?;
        self.next_conn += 1;
        self.conns.insert(id, conn);
        tracing::debug!(conn = %id, peer = ?expected, "dialing");
        Ok(id)
    }

    /// A transport was accepted from an address nobody else shares (or
    /// none: a pipe, a test): starts the handshake as responder, with no
    /// per-source limit. A driver that knows the remote address uses
    /// [`Endpoint::accept_from`].
    pub fn accept(&mut self, now: Instant) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        Ok(self.accept_inbound())
    }

    /// A transport was accepted from `source`: starts the handshake as
    /// responder, unless the source is over one of its limits
    /// ([`Config::source_limits`]): then
    /// [`ConnectError::SourceLimited`] (counted in
    /// [`Counters::refused_at_accept`](crate::Counters::refused_at_accept)),
    /// and the driver closes the transport unread: the per-source limits,
    /// and the node-wide limit on strangers' failures if one is set
    /// ([`SourceLimits::node_failures`](crate::SourceLimits::node_failures)). The connection counts
    /// against its source until its handshake ends; a handshake that
    /// fails by the source's doing keeps its charge.
    pub fn accept_from(&mut self, now: Instant, source: Source) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        let admitted = match self.sources.admit(source, self.ctx.now) {
            Err(_) if fault!(self.ctx.config, SourceUnlimited) => Ok(()),
            Err(SourceRefusal::NodeFailing) if fault!(self.ctx.config, NodeWideUnlimited) => Ok(()),
            other => other,
        };
        if let Err(refusal) = admitted {
            let counters = &mut self.ctx.counters;
            counters.refused_at_accept += 1;
            match refusal {
                SourceRefusal::Failing => counters.throttled_at_accept += 1,
                SourceRefusal::NodeFailing => {
                    counters.throttled_at_accept += 1;
                    counters.refused_node_wide += 1;
                }
                SourceRefusal::Busy => {}
            }
            tracing::debug!(?source, %refusal, "refused at accept");
            return Err(ConnectError::SourceLimited(refusal));
        }
        let id = self.accept_inbound();
        self.sources.track(id, source, self.ctx.now);
        Ok(id)
    }

    /// Starts an accepted connection's handshake as responder, in a slot
    /// of `max_handshakes`: a free one, or else the slot of the oldest
    /// connection that has delivered no complete frame (evicted, and
    /// charged to its source); `busy` if there is none.
    ///
    /// Sockets that say nothing (from many sources, each within its
    /// limits) could otherwise hold every slot and turn every peer away
    /// `busy`, each for `first_frame_timeout`. With eviction, a connection
    /// is turned away only if all the slots are held by handshakes that
    /// have spoken, or lost only if `max_handshakes` newer connections
    /// come before its first frame does.
    fn accept_inbound(&mut self) -> ConnId {
        let max = self.ctx.config.max_handshakes;
        if self.inbound_handshakes >= max && !fault!(self.ctx.config, NoEviction) {
            self.evict_oldest_silent();
        }
        let busy = self.inbound_handshakes >= max;
        let id = self.new_conn_id();
        if !busy {
            self.inbound_handshakes += 1;
            self.silent.push_back(id);
        }
        let conn = Connection::accept(id, busy, &mut self.ctx);
        self.conns.insert(id, conn);
        tracing::debug!(conn = %id, busy, "accepted");
        if self.silent.len() > self.inbound_handshakes.max(1).saturating_mul(2) {
            // (the ids of connections that spoke or ended since: at most
            // twice the slots in use are kept, so the queue stays bounded
            // by the handshakes under way, not by `max_handshakes`, which
            // may be `usize::MAX`, no limit: a bound of twice that kept
            // the id of every connection accepted, for good; each pass
            // takes out at least half of what it reads)
            let conns = &self.conns;
            self.silent
                .retain(|c| conns.get(c).is_some_and(Connection::is_evictable));
        }
        id
    }

    /// Ends the oldest connection that holds a handshake slot without
    /// having delivered a complete frame, if there is one.
    fn evict_oldest_silent(&mut self) {
        while let Some(oldest) = self.silent.pop_front() {
            if self
                .conns
                .get(&oldest)
                .is_some_and(Connection::is_evictable)
            {
                tracing::debug!(conn = %oldest, "evicted: every handshake slot is taken");
                self.end(oldest, Ending::Evicted);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::{Config, Endpoint, Identity, Input, Instant, TrustList};

    /// With no handshake limit (`max_handshakes = usize::MAX`), the queue
    /// of connections that may be evicted forgets those that ended: it
    /// kept every accepted connection's id for the node's life (review
    /// s46, revs).
    #[test]
    fn the_silent_queue_forgets_ended_connections_without_a_limit() {
        let config = Config {
            max_handshakes: usize::MAX,
            ..Config::default()
        };
        let rng = Box::new(ChaCha20Rng::seed_from_u64(1));
        let identity = Identity::from_seed(&[1; 32]);
        let mut ep = Endpoint::new(config, identity, TrustList::new(), rng);
        let now = Instant::from_millis(1);
        // (one stays silent throughout: it is still evictable)
        let kept = ep.accept(now).unwrap();
        for _ in 0..10_000 {
            let conn = ep.accept(now).unwrap();
            ep.handle_input(now, Input::Closed { conn });
            while ep.poll_output().is_some() {}
        }
        assert!(ep.silent.len() <= 3, "{} ids kept", ep.silent.len());
        assert!(ep.silent.contains(&kept));
    }
}
