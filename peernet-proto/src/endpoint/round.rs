//! A dial round of the schedule (`crate::dial`): which addresses it
//! tries, its next dial, its end, and the backoff that follows. The
//! commands and reports that start and end rounds are `dialing.rs`'s.
//!
//! A round takes the peer's addresses from the book best first, but of
//! the discovery hints that never worked at most [`HINTS_PER_ROUND`]
//! (see `crate::dial`): a LAN host announcing false hints for a kept
//! peer gets that many dials per round out of this node, not one per
//! address the book holds for the peer. The other hints wait for later
//! rounds, each in turn. The addresses a dial round takes are fixed when
//! it starts: one announced meanwhile waits for the next round, unless
//! the application's `dial` joins the round (then within the round's
//! room for hints).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::book::AddrSource;
use crate::config::fault;
use crate::dial::{HINTS_PER_ROUND, Phase, next_delay};
use crate::error::DialFailure;
use crate::event::{Event, Output};
use crate::identity::PeerId;
use crate::timers::Timer;

use super::Endpoint;

impl Endpoint {
    /// Starts a round through the peer's addresses, best first;
    /// `announce` is the redial's backoff delay, `None` for a silent
    /// first dial (the redial is announced when its first dial goes out).
    ///
    /// Of the discovery hints that never worked it takes at most
    /// [`HINTS_PER_ROUND`] ([`crate::AddressBook::round`] says which);
    /// the others wait for later rounds.
    pub(super) fn start_round(&mut self, peer: PeerId, announce: Option<Duration>) {
        let rest: VecDeque<SocketAddr> =
            self.book.round(&peer, self.hint_room(0), |_| false).into();
        let d = self.dials.entry(peer);
        d.rest = rest;
        d.tried.clear();
        d.hints = 0;
        d.announce = announce;
        self.next_address(peer);
    }

    /// A one-off dial joins the round under way: it goes on through
    /// every address not tried in it yet, those added since it began
    /// included, but with no more hints that never worked than the
    /// round has room left for: those it chose at its start first (a
    /// round that is a late transport's adopted dial has none left of
    /// its own).
    pub(super) fn join_round(&mut self, peer: PeerId) {
        let Some(d) = self.dials.get(&peer) else {
            return;
        };
        let room = self.hint_room(d.hints);
        let book = &self.book;
        let ours: Vec<SocketAddr> = d
            .rest
            .iter()
            .copied()
            .filter(|a| book.is_unproven_hint(&peer, *a))
            .take(room)
            .collect();
        let in_flight = d.dialed_addr();
        let done = |a: SocketAddr| {
            Some(a) == in_flight || d.tried.iter().any(|(t, _)| *t == a) || ours.contains(&a)
        };
        let more = book.round(&peer, room - ours.len(), done);
        let rest: VecDeque<SocketAddr> = book
            .get(&peer)
            .map(|e| e.addr)
            .filter(|a| ours.contains(a) || more.contains(a))
            .collect();
        if let Some(d) = self.dials.get_mut(&peer) {
            d.rest = rest;
        }
    }

    /// How many more discovery hints that never worked a round that has
    /// dialed `dialed` of them may dial.
    fn hint_room(&self, dialed: usize) -> usize {
        if fault!(self.ctx.config, HintsUnlimited) {
            return usize::MAX;
        }
        HINTS_PER_ROUND.saturating_sub(dialed)
    }

    /// The round's dial of `addr` failed for `cause`: kept for the
    /// round's report, and the round moves on.
    pub(super) fn round_failed(&mut self, peer: PeerId, addr: SocketAddr, cause: DialFailure) {
        if let Some(d) = self.dials.get_mut(&peer) {
            d.tried.push((addr, cause));
        }
        self.next_address(peer);
    }

    /// Dials the round's next address still in the book; when none is
    /// left the round failed: report it, and back off if kept.
    pub(super) fn next_address(&mut self, peer: PeerId) {
        let now = self.ctx.now;
        let connected = self.registry.get(&peer).is_some();
        let dial = &self.ctx.config.dial;
        let (dial_timeout, max_in_flight) = (dial.dial_timeout, dial.max_dials_in_flight);
        let places = self.ctx.config.max_addresses_per_peer;
        // (its own dial, if it had one, is over: its slot is free)
        self.dials.in_flight.remove(&peer);
        let slot = self.dials.slot_free(max_in_flight);
        let Some(d) = self.dials.peers.get_mut(&peer) else {
            return;
        };
        if connected {
            d.phase = Phase::Connected { since: now };
            d.announce = None;
            d.rest.clear();
            d.tried.clear();
            self.start_queued();
            return;
        }
        d.rest
            .retain(|addr| self.book.get(&peer).any(|e| e.addr == *addr));
        // (a dial the application asked for is not held back behind the
        // background redials of kept peers; it counts against them)
        if !d.rest.is_empty() && !slot && !d.report {
            d.phase = Phase::Queued;
            self.dials.enqueue(peer);
            tracing::debug!(peer = %peer, "dial waits for a slot");
            return;
        }
        if let Some(addr) = d.rest.pop_front() {
            if self.book.is_unproven_hint(&peer, addr) {
                d.hints += 1;
            }
            if let Some(after) = d.announce.take() {
                d.attempt = d.attempt.saturating_add(1);
                let attempt = d.attempt;
                tracing::debug!(peer = %peer, attempt, ?after, "reconnecting");
                let ev = Event::Reconnecting {
                    peer,
                    attempt,
                    after,
                };
                self.ctx.emit(ev);
            }
            let deadline = now + dial_timeout;
            let source = self
                .book
                .entry(&peer, addr)
                .map_or(AddrSource::Discovery, |e| e.source);
            d.remember(addr, source, places);
            d.phase = Phase::Opening { addr, deadline };
            self.dials.in_flight.insert(peer);
            self.ctx.timers.arm(deadline, Timer::Dial(peer));
            tracing::debug!(peer = %peer, %addr, "dial");
            self.ctx.outputs.push_back(Output::Dial { peer, addr });
            return;
        }
        d.phase = Phase::Idle;
        d.announce = None;
        // (the round's count of hints ends with it: a late transport
        // adopted during the backoff is the next round's dial)
        d.hints = 0;
        let tried = core::mem::take(&mut d.tried);
        // Reported when a one-off dial waits for it, and when a kept
        // peer's round dialed something: each failed redial says why,
        // after its `Reconnecting` (a round with nothing left to dial,
        // its addresses forgotten, is as silent as its redial).
        let report = core::mem::take(&mut d.report) || (d.kept && !tried.is_empty());
        if report {
            tracing::debug!(peer = %peer, tried = tried.len(), "unreachable");
            self.ctx.emit(Event::Unreachable { peer, tried });
        }
        if d.kept {
            d.lost = true;
            self.back_off(peer);
        } else {
            self.dials.remove(&peer);
        }
        self.start_queued();
    }

    /// Starts the rounds waiting for a slot, first come first served,
    /// while slots are free. (Not reentrant: a round that ends at once
    /// lets the loop go on rather than start one more level.)
    pub(super) fn start_queued(&mut self) {
        if self.dials.starting || self.shutting_down {
            return;
        }
        self.dials.starting = true;
        let max = self.ctx.config.dial.max_dials_in_flight;
        while self.dials.slot_free(max) {
            let Some(peer) = self.dials.next_in_line() else {
                break;
            };
            self.next_address(peer);
        }
        self.dials.starting = false;
    }

    /// Arms the kept peer's next round after the backoff delay, also
    /// when the peer has no address left (its last, a false hint, was
    /// forgotten): an address heard meanwhile waits for that round, so
    /// re-announcing a hint cannot redial faster than the backoff.
    pub(super) fn back_off(&mut self, peer: PeerId) {
        let Some(d) = self.dials.get_mut(&peer) else {
            return;
        };
        let delay = match fault!(self.ctx.config, NoBackoff) {
            true => Duration::from_millis(1),
            false => next_delay(d.delay, &self.ctx.config.dial, &mut *self.rng),
        };
        d.delay = Some(delay);
        let at = self.ctx.now + delay;
        d.phase = Phase::Waiting { at, delay };
        self.ctx.timers.arm(at, Timer::Dial(peer));
    }
}
