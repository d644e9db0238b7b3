//! Dialing by PeerId: the address book's commands, one-off dials through
//! it, the peers kept connected, and what the schedule (`crate::dial`)
//! does when a dial, a connection or its timer reports. A round itself
//! (which addresses, its next dial, its end, the backoff) is
//! `round.rs`'s.
//!
//! Rules the code below keeps:
//! - a peer connected in either direction is never dialed; a dial that
//!   finds it connected stops (the supersede rule settles the rest);
//! - at most one dial is in flight per peer;
//! - only trusted peers have addresses or a schedule; `unpair` and
//!   `shutdown` stop every dial at once.

use core::net::SocketAddr;
use core::time::Duration;

use crate::Instant;
use crate::book::{Added, AddrEntry, AddrHistory, AddrSource, BookError};
use crate::codes::RejectCode;
use crate::config::{ProtocolVersion, fault};
use crate::dial::{Dialed, PeerDial, Phase};
use crate::error::{ConnectError, DialFailure, HandshakeError};
use crate::identity::PeerId;
use crate::ids::ConnId;
use crate::timers::Timer;

use super::Endpoint;

impl Endpoint {
    // ----- the address book -----

    /// [`Endpoint::add_address`] for an address a node saved before it
    /// stopped, with what its dials had shown then ([`AddrEntry::history`]).
    /// An address that worked ranks with those that worked in this run
    /// (behind any that worked since), and one that worked and failed
    /// since with those that failed since they worked; a discovery hint
    /// that worked keeps what that earns it: it is not forgotten at its
    /// first failure, nor pushed out by other hints while it works or is
    /// among those that worked most recently. Restore a peer's addresses
    /// in the order the saved book lists them (best first): of those
    /// that worked, the order says which worked most recently (the
    /// untried hints, ranked the latest heard first, go in from the
    /// last). An address this run has dialed already keeps what it
    /// learned.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::add_address`].
    pub fn restore_address(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
        history: AddrHistory,
    ) -> Result<bool, BookError> {
        let changed = self.add_address(now, peer, addr, source)?;
        self.book.restore(&peer, addr, history, now);
        Ok(changed)
    }

    /// Adds `addr` as an address of the trusted `peer`, learned from
    /// `source` (an address known already keeps the better source). A
    /// kept peer that was waiting for an address is dialed at once.
    /// Returns whether the book changed: a new address, or a better
    /// source for a known one (false: nothing to save).
    ///
    /// # Errors
    ///
    /// [`BookError::NotTrusted`] for a peer not in the trust list (or
    /// ourselves); [`BookError::Full`] when the peer's or the book's bound
    /// is reached and no worse entry of the peer can make room.
    pub fn add_address(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
    ) -> Result<bool, BookError> {
        self.advance(now);
        let added = self.insert_address(peer, addr, source, None)?;
        let (new, changed) = (added == Added::New, added != Added::Known);
        tracing::debug!(peer = %peer, %addr, ?source, new, changed, "address added");
        let connected = self.is_connected(&peer);
        let Some(d) = self.dials.get_mut(&peer) else {
            return Ok(changed);
        };
        if new && d.kept && d.phase == Phase::Idle && !connected && !self.shutting_down {
            // After a loss this is a redial like any other, announced.
            let announce = d.lost.then_some(Duration::ZERO);
            self.start_round(peer, announce);
        }
        Ok(changed)
    }

    /// Records `addr`, through which a connection the application opened
    /// itself ([`Endpoint::connect`], not a dial of the book's) proved
    /// `peer` at `now`: added from `source` as [`Endpoint::add_address`]
    /// adds it, as an address that worked then, the most recently of the
    /// peer's (dialed first after a loss, saved as `worked`). A full peer
    /// makes room for it as for any new address of its source, any that
    /// worked longer ago included: the address that works now is kept.
    /// Returns whether the book changed.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::add_address`].
    pub fn add_connected_address(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
    ) -> Result<bool, BookError> {
        self.advance(now);
        let now = self.ctx.now;
        let added = self.insert_address(peer, addr, source, Some(now))?;
        let revision = self.book.revision();
        self.book.mark_ok(&peer, addr, now);
        let changed = added != Added::Known || self.book.revision() != revision;
        tracing::debug!(peer = %peer, %addr, ?source, changed, "connected address added");
        Ok(changed)
    }

    /// The book's insert of an address of the trusted `peer` (not this
    /// node), `worked` at that instant if a handshake proved it there;
    /// the hint a dial is under way to is not dropped to make room.
    fn insert_address(
        &mut self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
        worked: Option<Instant>,
    ) -> Result<Added, BookError> {
        if !self.trust.contains(&peer) || peer == self.peer_id() {
            return Err(BookError::NotTrusted(peer));
        }
        let dials = &self.dials;
        let dialing =
            |p: &PeerId, a: SocketAddr| dials.get(p).and_then(PeerDial::dialed_addr) == Some(a);
        self.book.insert(peer, addr, source, worked, &dialing)
    }

    /// Forgets `addr` for `peer`. Returns false if the book did not have
    /// it. A dial to it already out is not called back: if its handshake
    /// proves the peer there, the book learns it again as a discovery
    /// hint.
    pub fn remove_address(&mut self, peer: &PeerId, addr: SocketAddr) -> bool {
        self.dials.disown(peer, addr);
        self.book.remove(peer, addr)
    }

    /// The addresses of `peer`, best first (the order dials try them).
    pub fn addresses(&self, peer: &PeerId) -> impl Iterator<Item = &AddrEntry> + '_ {
        self.book.get(peer)
    }

    /// Addresses in the book, over every peer.
    pub fn address_count(&self) -> usize {
        self.book.len()
    }

    /// Changes whenever the address book changes in a way worth saving
    /// (see [`AddressBook::revision`](crate::AddressBook::revision)): a driver that keeps the book on
    /// disk saves it when this moves.
    pub fn book_revision(&self) -> u64 {
        self.book.revision()
    }

    // ----- dialing -----

    /// Keeps `peer` connected (`keep`) or stops doing so. While kept, a
    /// peer that is not connected is dialed through the address book at
    /// once (silently; in line behind others past
    /// `DialConfig::max_dials_in_flight`), and after every loss or failed round redialed
    /// with the backoff of [`crate::config::DialConfig`], each redial
    /// announced by [`Event::Reconnecting`](crate::Event::Reconnecting) as its dial starts (not while
    /// it waits in line), and each round that dialed and failed, the
    /// first one too, reported by
    /// [`Event::Unreachable`](crate::Event::Unreachable) with every
    /// address tried and why. A kept peer without an address is dialed as
    /// soon as one is added (after a loss or a failed round, at the
    /// backoff's next turn). `keep = false` stops
    /// the schedule (a handshake already running finishes on its own).
    ///
    /// # Errors
    ///
    /// [`ConnectError::Untrusted`] for a peer not in the trust list (or
    /// ourselves), [`ConnectError::ShuttingDown`] after `shutdown`.
    pub fn keep_connected(
        &mut self,
        now: Instant,
        peer: PeerId,
        keep: bool,
    ) -> Result<(), ConnectError> {
        self.advance(now);
        if !keep {
            if let Some(d) = self.dials.get_mut(&peer) {
                d.kept = false;
                if !d.report {
                    self.stop_dialing(&peer);
                }
            }
            return Ok(());
        }
        self.check_dialable(peer)?;
        let now = self.ctx.now;
        let connected = self.is_connected(&peer);
        let d = self.dials.entry(peer);
        d.kept = true;
        match d.phase {
            _ if connected => {
                if !matches!(d.phase, Phase::Connected { .. }) {
                    d.phase = Phase::Connected { since: now };
                }
            }
            Phase::Idle | Phase::Connected { .. } => {
                d.phase = Phase::Idle;
                if self.book.has(&peer) {
                    self.start_round(peer, None);
                }
            }
            Phase::Waiting { .. }
            | Phase::Queued
            | Phase::Opening { .. }
            | Phase::Handshaking { .. } => {}
        }
        tracing::debug!(peer = %peer, "keeping connected");
        Ok(())
    }

    /// Whether `peer` is kept connected.
    pub fn is_kept(&self, peer: &PeerId) -> bool {
        self.dials.get(peer).is_some_and(|d| d.kept)
    }

    /// How a call or send to `peer`, which has no connection, is refused:
    /// `NotConnected` (`WouldBlock` for a kept peer under the deliberate
    /// fault `WouldBlockWhileRedialing`).
    pub(super) fn not_connected(&self, peer: &PeerId) -> crate::SendError {
        match fault!(self.ctx.config, WouldBlockWhileRedialing) && self.is_kept(peer) {
            true => crate::SendError::WouldBlock,
            false => crate::SendError::NotConnected,
        }
    }

    /// Dials `peer` once through the address book: its addresses one at a
    /// time, best first, each after the one before failed. Ends with
    /// [`Event::Connected`](crate::Event::Connected) or [`Event::Unreachable`](crate::Event::Unreachable) (whose `tried` lists
    /// the addresses dialed). A round already
    /// under way for a kept peer is joined; a kept peer backing off is
    /// dialed now.
    ///
    /// Like a kept peer's redial, it dials at most
    /// [`HINTS_PER_ROUND`](crate::dial::HINTS_PER_ROUND) discovery hints
    /// that never worked (a joined round counts those it dialed): an
    /// application that retries a dial in a loop must not hand a LAN
    /// host that announces false hints more dials than the redials
    /// would. The other hints wait for the next dial or redial, in turn;
    /// the addresses the application or a ticket gave and the hints that
    /// worked are all dialed.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Untrusted`], [`ConnectError::ShuttingDown`],
    /// [`ConnectError::AlreadyConnected`] (nothing to do), and
    /// [`ConnectError::NoAddress`] when the book has no address for it.
    pub fn dial(&mut self, now: Instant, peer: PeerId) -> Result<(), ConnectError> {
        self.advance(now);
        self.check_dialable(peer)?;
        if self.is_connected(&peer) {
            return Err(ConnectError::AlreadyConnected(peer));
        }
        if !self.book.has(&peer) {
            return Err(ConnectError::NoAddress(peer));
        }
        let d = self.dials.entry(peer);
        d.report = true;
        if d.phase == Phase::Queued {
            // waiting in line for a background redial: asked for, it goes now
            self.next_address(peer);
            return Ok(());
        }
        if !d.dialing() {
            self.disarm_dial(&peer);
            self.start_round(peer, None);
            return Ok(());
        }
        self.join_round(peer);
        Ok(())
    }

    /// The driver opened the transport of an [`Output::Dial`](crate::Output::Dial) (or of a
    /// dial of its own) to `addr` for `peer`: starts the handshake as
    /// [`Endpoint::connect`] does, and remembers `addr` so the book marks
    /// it as worked once the connection is established (learning it again,
    /// from the source it had when dialed, as the address that worked
    /// most recently, if the book dropped it meanwhile: a hint forgotten
    /// when its dial timed out before this transport opened, or the
    /// peer's worst address pushed out by a new one; as a discovery hint
    /// if the book never held it), or as failed (and
    /// the round moves on to the next address) if the handshake fails.
    ///
    /// # Errors
    ///
    /// Those of [`Endpoint::connect`] (e.g. [`ConnectError::Untrusted`]
    /// for a peer unpaired while the transport opened),
    /// [`ConnectError::AlreadyConnected`] when the peer got connected
    /// meanwhile, and [`ConnectError::DialInFlight`] when the schedule
    /// dials the peer at another address (it gave up on this one, not
    /// reported within `dial_timeout`) or a handshake of the peer's
    /// schedule runs: close the transport. A late transport taken while
    /// the schedule backs off is its round's dial from then on.
    pub fn connect_to(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
    ) -> Result<ConnId, ConnectError> {
        self.advance(now);
        if self.is_connected(&peer) && self.trust.contains(&peer) {
            return Err(ConnectError::AlreadyConnected(peer));
        }
        // At most one dial in flight per peer: a late transport of a dial
        // the round gave up on would race the round's current one, and
        // the later handshake would supersede the earlier's connection.
        let late = fault!(self.ctx.config, LateDialTaken);
        let in_flight = self.dials.get(&peer).is_some_and(|d| match d.phase {
            Phase::Opening { addr: a, .. } => a != addr,
            Phase::Handshaking { .. } => true,
            _ => false,
        });
        if in_flight && !late {
            return Err(ConnectError::DialInFlight { peer, addr });
        }
        let conn = self.connect(now, Some(peer))?;
        // (the book may drop the address before the handshake ends, or
        // did before a late transport opened: it comes back from the
        // source it had when it was dialed)
        let dialed_as = self.dials.get(&peer).and_then(|d| d.source_of(addr));
        let source = self
            .book
            .entry(&peer, addr)
            .map(|e| e.source)
            .or(dialed_as)
            .unwrap_or(AddrSource::Discovery);
        let dialed = Dialed { peer, addr, source };
        self.dials.dialed.insert(conn, dialed);
        // The round's own dial, or a late one taken while no other is in
        // flight: the schedule waits for its handshake rather than
        // starting another (a backoff's timer is disarmed; the
        // handshake's end counts as the round's). A late one to an
        // address the book does not vouch for (a hint that never worked,
        // or one forgotten when its dial timed out) counts as one of the
        // round's hints that never worked: a dial that joins the round
        // has that much less room for them.
        let own = self.is_opening(&peer, addr);
        let vouched = self
            .book
            .entry(&peer, addr)
            .is_some_and(|e| !e.unproven_hint());
        let adopt = !late || own;
        if let Some(d) = self.dials.get_mut(&peer).filter(|_| adopt) {
            if let Some(at) = d.armed() {
                self.ctx.timers.disarm(at, Timer::Dial(peer));
            }
            if !own && !vouched {
                d.hints += 1;
            }
            d.phase = Phase::Handshaking { addr, conn };
            // (a late transport taken over counts as a dial under way,
            // whatever the bound: its socket is open already)
            self.dials.in_flight.insert(peer);
        }
        Ok(conn)
    }

    /// The driver could not open a transport to `addr` for `peer`
    /// (refused, unreachable, timed out), for the reason `cause`
    /// (usually [`DialFailure::transport`] or [`DialFailure::TimedOut`]):
    /// the book marks it failed and the round moves on to the next
    /// address, keeping `cause` for the round's
    /// [`Event::Unreachable`](crate::Event::Unreachable).
    pub fn dial_failed(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        cause: DialFailure,
    ) {
        self.advance(now);
        let now = self.ctx.now;
        self.book.mark_failed(&peer, addr, now);
        tracing::debug!(peer = %peer, %addr, %cause, "dial failed");
        let ours = self.is_opening(&peer, addr);
        if ours {
            self.disarm_dial(&peer);
            self.round_failed(peer, addr, cause);
        }
    }

    /// Whether the schedule is waiting for the driver to open `addr` for
    /// `peer` (the dial is the schedule's own, not the application's).
    fn is_opening(&self, peer: &PeerId, addr: SocketAddr) -> bool {
        self.dials
            .get(peer)
            .is_some_and(|d| matches!(d.phase, Phase::Opening { addr: a, .. } if a == addr))
    }

    // ----- what the endpoint reports to the schedule -----

    /// `Timer::Dial(peer)` fired: a backoff ran out, or a dial was not
    /// reported in time.
    pub(super) fn on_dial_timer(&mut self, peer: PeerId) {
        let now = self.ctx.now;
        let Some(d) = self.dials.get_mut(&peer) else {
            return;
        };
        match d.phase.clone() {
            Phase::Waiting { delay, .. } => {
                d.phase = Phase::Idle;
                if self.registry.get(&peer).is_some() {
                    d.phase = Phase::Connected { since: now };
                    return;
                }
                let announce = d.lost.then_some(delay);
                self.start_round(peer, announce);
            }
            Phase::Opening { addr, .. } => {
                tracing::debug!(peer = %peer, %addr, "dial not reported in time");
                self.book.mark_failed(&peer, addr, now);
                let waited = self.ctx.config.dial.dial_timeout;
                self.round_failed(peer, addr, DialFailure::TimedOut(waited));
            }
            _ => {}
        }
    }

    /// `peer`'s connection was just registered (either direction).
    pub(super) fn on_peer_connected(&mut self, peer: PeerId, conn: ConnId) {
        let now = self.ctx.now;
        if let Some(dialed) = self.dials.dialed.remove(&conn) {
            self.address_worked(dialed, now);
        }
        self.disarm_dial(&peer);
        let Some(d) = self.dials.get_mut(&peer) else {
            return;
        };
        d.report = false;
        d.lost = false;
        d.announce = None;
        d.rest.clear();
        d.tried.clear();
        // (the round is over: its count of hints is not the next one's)
        d.hints = 0;
        if !d.kept {
            self.dials.remove(&peer);
        } else if !matches!(d.phase, Phase::Connected { .. }) {
            d.phase = Phase::Connected { since: now };
        }
        // (its dial, if it had one under way, is over)
        self.start_queued();
    }

    /// A handshake at the address `dialed` by `connect_to` proved its
    /// peer: the book marks the address worked. If it no longer holds
    /// it, the book learns it again from the source it had when dialed,
    /// as the address that worked most recently (a full peer makes room
    /// for it as for [`Endpoint::add_connected_address`]'s): a hint that
    /// never worked is forgotten when its dial is not reported within
    /// `dial_timeout`, and its transport may open later (a lost SYN,
    /// retransmitted); the peer's worst address, which its round dials
    /// last, may be pushed out by a new one while the dial is out.
    /// Without it, the peer would be connected through an address the
    /// book does not hold, and after a loss redialed only at the others
    /// (or, for a hint, at its true address heard again as one untried
    /// hint among a LAN host's false ones). Learned as an untried hint,
    /// it could push out none of the application's addresses, nor hints
    /// that work: in a full peer it was lost. (An address the
    /// application removed while a dial to it was under way comes back
    /// as a discovery hint: the handshake proved it.)
    fn address_worked(&mut self, dialed: Dialed, now: Instant) {
        let Dialed { peer, addr, source } = dialed;
        if self.book.entry(&peer, addr).is_none() {
            let (source, worked) = match fault!(self.ctx.config, DialedAddressAsHint) {
                true => (AddrSource::Discovery, None),
                false => (source, Some(now)),
            };
            let added = self.insert_address(peer, addr, source, worked);
            tracing::debug!(peer = %peer, %addr, ?source, ?added, "an address the book dropped worked");
        }
        self.book.mark_ok(&peer, addr, now);
    }

    /// `peer`'s registered connection ended and no other replaced it.
    pub(super) fn on_peer_lost(&mut self, peer: PeerId) {
        let now = self.ctx.now;
        if self.shutting_down {
            return;
        }
        let cfg = &self.ctx.config.dial;
        let Some(d) = self.dials.get_mut(&peer) else {
            return;
        };
        if !d.kept || d.dialing() {
            return;
        }
        if let Phase::Connected { since } = d.phase {
            d.reset_if_lived(now.saturating_duration_since(since), cfg);
        }
        d.lost = true;
        d.phase = Phase::Idle;
        tracing::debug!(peer = %peer, "kept peer lost");
        self.back_off(peer);
    }

    /// Whether `conn` was opened by `connect_to`: its end matters to the
    /// schedule ([`Endpoint::on_handshake_ended`]).
    pub(super) fn is_dialed(&self, conn: ConnId) -> bool {
        self.dials.dialed.contains_key(&conn)
    }

    /// A connection ended before it was registered, for `error`: if
    /// `connect_to` made it, the book learns how it went (superseded:
    /// another connection to the peer won, so the address worked;
    /// abandoned by our own end: nothing) and the round moves on.
    pub(super) fn on_handshake_ended(&mut self, conn: ConnId, error: HandshakeError) {
        let Some(dialed) = self.dials.dialed.remove(&conn) else {
            return;
        };
        let Dialed { peer, addr, .. } = dialed;
        let now = self.ctx.now;
        match error {
            HandshakeError::Superseded => self.address_worked(dialed, now),
            // The peer answered: the address is right (a hint stays). So
            // does version 2's `untrusted`, sent after mac1 (PROTOCOL 6.1).
            HandshakeError::Rejected(code)
                if code == RejectCode::Busy
                    || (code == RejectCode::Untrusted
                        && self.ctx.config.version == ProtocolVersion::V2) =>
            {
                self.book.mark_busy(&peer, addr, now)
            }
            // Our own end (shutdown, unpair, disconnect) says nothing of
            // the address: a hint stays, a `worked` mark too.
            HandshakeError::Abandoned => {}
            _ => self.book.mark_failed(&peer, addr, now),
        }
        let ours = self
            .dials
            .get(&peer)
            .is_some_and(|d| d.phase == Phase::Handshaking { addr, conn });
        if ours && !self.shutting_down {
            self.round_failed(peer, addr, DialFailure::Handshake(error));
        }
    }

    /// `peer` was unpaired: its schedule and addresses go.
    pub(super) fn forget_dials(&mut self, peer: &PeerId) {
        if fault!(self.ctx.config, RedialAfterUnpair) {
            return;
        }
        self.stop_dialing(peer);
        self.book.remove_peer(peer);
    }

    /// Shutdown: every schedule stops.
    pub(super) fn stop_all_dials(&mut self) {
        let peers: alloc::vec::Vec<PeerId> = self.dials.peers.keys().copied().collect();
        for peer in peers {
            self.stop_dialing(&peer);
        }
    }

    // ----- internals -----

    fn check_dialable(&self, peer: PeerId) -> Result<(), ConnectError> {
        if self.shutting_down {
            return Err(ConnectError::ShuttingDown);
        }
        if !self.trust.contains(&peer) || peer == self.peer_id() {
            return Err(ConnectError::Untrusted(peer));
        }
        Ok(())
    }

    fn stop_dialing(&mut self, peer: &PeerId) {
        self.disarm_dial(peer);
        self.dials.remove(peer);
        self.start_queued();
    }

    fn disarm_dial(&mut self, peer: &PeerId) {
        if let Some(at) = self.dials.get(peer).and_then(PeerDial::armed) {
            self.ctx.timers.disarm(at, Timer::Dial(*peer));
        }
    }
}
