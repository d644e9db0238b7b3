//! The named invariants of kept connections, and the bounds they hold
//! the core to, derived from its configuration.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use peernet_proto::dial::HINTS_PER_ROUND;
use peernet_proto::{AddrEntry, Config, DialConfig, PeerId};
use peernet_testkit::Invariant;

use super::super::Fault;
use super::NodeIx;
use super::directory::Out;

const MINUTE: u64 = 60_000_000_000;

/// An invariant of kept connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepInvariant {
    /// Every kept pair (both up, trusting and keeping each other, on the
    /// same side of any partition) is connected, on one connection,
    /// within [`reconnect_bound`] of the network healing, a restart, or
    /// the start.
    KeptPairConnectedWithinBound,
    /// Redials follow the backoff: each `Reconnecting` waited at least
    /// the delay it claims, delays obey the rules, and a peer is
    /// redialed at most [`max_rounds_in`] a minute.
    RedialsFollowBackoff,
    /// A peer is never dialed after it was unpaired.
    NoRedialAfterUnpair,
    /// At most one connection per pair is open on both ends once settled.
    OneConnectionPerPair,
    /// A node has at most one dial of a peer in flight: a connection it
    /// dialed is never superseded by another it dialed to the same peer
    /// (e.g. a transport that opened after the round gave up on it).
    OneDialInFlight,
    /// A round dials at most `HINTS_PER_ROUND` untried hints: of the
    /// false discovery hints a LAN host announces for a kept peer that is
    /// down (none of which ever works), a node dials at most that many
    /// between two `Reconnecting`s of the peer (or from its start to the
    /// first, or from a round the application's dial started), whatever
    /// else the book holds; an application's dial that joins a round
    /// counts with it.
    UntriedHintsPerRound,
    /// A peer reachable only through its own announcement is not starved
    /// by a LAN host: while its true address waits in a keeper's book as
    /// a hint that never worked, the keeper dials it within `n + 1` of
    /// the rounds that start with it there, `n` the other such hints of
    /// the peer in the book when the first of those rounds starts (at most
    /// [`true_hint_rounds`] - 1, the book's bound per peer less one),
    /// however the host interleaves fresh false hints and the true address
    /// announced again. Its dial, or its leaving the book, ends the count.
    /// And once its dial worked, the keeper dials it in every round (it is
    /// a hint that worked: false hints do not push it out, even once a
    /// partition made it fail), unless the peer connects first.
    TrueHintDialedInTime,
    /// An address a node's own dial went through, whose handshake proved
    /// the peer (it connected, or lost a race to the peer's own
    /// connection), is in the book once that handshake ends, even if the
    /// book dropped it while the dial was out (a full list that a new
    /// address reached): as the address whose last dial worked, from the
    /// source it had when dialed or a better one. Unless every place of
    /// the peer holds an address of a better source, which it may not
    /// push out.
    DialedAddressKept,
    /// A kept pair whose connection stalled (one end's reader stopped
    /// reading, for good) is connected again, on a new connection, within
    /// [`stall_bound`] of the stall: the other end's writer backs up and,
    /// having taken nothing for its `idle_timeout`, hears `Input::Stalled`,
    /// closes the connection and redials; the new connection supersedes
    /// the stalled one, which the reader still holds (its own
    /// `idle_timeout` is longer). Checked at the run's `stall` check point
    /// and every one after it.
    StalledPairRedialed,
    /// One of the invariants every harness shares
    /// ([`peernet_testkit::Invariant`]) that the keep simulation checks:
    /// those of the calls and sends its nodes make to their kept peers
    /// throughout the run (`calls.rs`).
    Shared(Invariant),
}

impl fmt::Display for KeepInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepInvariant::Shared(invariant) => fmt::Display::fmt(invariant, f),
            _ => fmt::Debug::fmt(self, f),
        }
    }
}

/// A failed invariant of a kept-connection run.
#[derive(Debug, Clone)]
pub struct KeepViolation {
    /// Which.
    pub invariant: KeepInvariant,
    /// The run's seed.
    pub seed: u64,
    /// The deliberate fault switched on, if any.
    pub fault: Option<Fault>,
    /// Virtual time of the failure.
    pub at: Duration,
    /// What exactly was wrong.
    pub detail: String,
}

impl fmt::Display for KeepViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant `{}` violated at t={:.3}s, seed {}{}: {}",
            self.invariant,
            self.at.as_secs_f64(),
            self.seed,
            match self.fault {
                Some(fault) => format!(", deliberate fault {fault:?}"),
                None => String::new(),
            },
            self.detail
        )
    }
}

/// How long a kept pair may take to be connected again once nothing
/// stands in the way: a dial or handshake under way when the network
/// heals ends within `max(dial_timeout, handshake_timeout)` (the core
/// enforces both); the backoff wait that follows is at most
/// `dial.max_delay`; the redial's handshake then takes at most
/// `handshake_timeout`. Defaults: 10 + 30 + 10 = 50 s.
pub fn reconnect_bound(cfg: &Config) -> Duration {
    cfg.dial.dial_timeout.max(cfg.handshake_timeout) + cfg.dial.max_delay + cfg.handshake_timeout
}

/// How long a kept pair whose connection stalls may take to be connected
/// again on a new one: the writer writes within `ping_interval` (it PINGs
/// after that long without sending) and backs up, gives up after its
/// `idle_timeout` (`Input::Stalled`), and the redial that follows is
/// connected within [`reconnect_bound`]; a second for the latencies.
/// Defaults: 15 + 45 + 50 + 1 = 111 s.
pub fn stall_bound(cfg: &Config) -> Duration {
    cfg.ping_interval + cfg.idle_timeout + reconnect_bound(cfg) + Duration::from_secs(1)
}

/// The most redial rounds the backoff allows within `window` without a
/// reset: the count of the shortest delays it can draw (the first at
/// `first_min`, each later one `growth_min_percent` of the one before,
/// capped at `max_delay`, where it may draw [`cap_floor`]) that fit in
/// `window`.
pub fn rounds_without_reset(window: Duration, dial: &DialConfig) -> u64 {
    let mut delay = dial.first_min;
    let mut spent = Duration::ZERO;
    let mut rounds = 0;
    loop {
        spent += delay;
        if spent > window {
            return rounds;
        }
        rounds += 1;
        let grown = delay.as_nanos() * u128::from(dial.growth_min_percent) / 100;
        delay = Duration::from_nanos(grown as u64);
        if delay >= dial.max_delay {
            delay = cap_floor(dial);
        }
    }
}

/// The shortest delay the backoff may draw once it has grown to
/// `max_delay`: the cap less its jitter, a quarter of it (the core's
/// `dial::CAP_JITTER_DIVISOR`, restated).
pub fn cap_floor(dial: &DialConfig) -> Duration {
    dial.max_delay - dial.max_delay / 4
}

/// The most redial rounds of one peer within `window`: each connection
/// that lived `reset_after` may start the shortest sequence over, so at
/// most `window / reset_after` resets, each followed by at most
/// [`rounds_without_reset`].
pub fn max_rounds_in(window: Duration, dial: &DialConfig) -> u64 {
    let resets = window.as_nanos() / dial.reset_after.as_nanos().max(1);
    rounds_without_reset(window, dial) * (1 + resets as u64)
}

/// In how many rounds a keeper dials a peer's true address, waiting in
/// its book as a discovery hint that never worked, at most, counted from
/// a round that starts with it there: `max_addresses_per_peer` (P).
///
/// Why: a round dials the latest heard of those hints first, then the
/// one with the earliest turn (its place in line, taken when first heard
/// or answered `busy`, kept when heard again). Let W be the hints whose
/// turn is earlier than the true one's: when a round starts, W is among
/// the peer's `n` other hints that never worked, and `n <= P - 1` (the
/// book holds at most P addresses of the peer). A round that does not
/// dial the true hint gives its second place to a member of W (the true
/// hint is behind it), which leaves W: dialed, it fails and is forgotten
/// (heard again, it is a new hint with a later turn), or answers `busy`
/// and takes a later turn; or it was pushed out of the book. Nothing joins
/// W: every new turn is later than the true hint's. So at most `n` rounds
/// miss it, and one of the first `n + 1 <= P` dials it (the check uses
/// `n`, the tighter bound).
pub fn true_hint_rounds(cfg: &Config) -> u32 {
    cfg.max_addresses_per_peer as u32
}

/// One keeper-life's view of a peer's true hint.
#[derive(Debug)]
struct TrueHint {
    /// From the round that started with it waiting in the book: the
    /// other hints that never worked then, and the rounds since that
    /// ended without its dial.
    count: Option<(u32, u32)>,
    /// Its dial worked (in this keeper-life): every round dials it.
    worked: bool,
    /// Since the last round began (or the keeper started), the true hint
    /// was dialed or the peer connected.
    dialed: bool,
}

impl Default for TrueHint {
    fn default() -> TrueHint {
        TrueHint {
            count: None,
            worked: false,
            dialed: true,
        }
    }
}

/// One node-life's view of one peer, for the backoff checks.
#[derive(Debug, Default)]
struct PeerLog {
    /// The last `Reconnecting`: (time, attempt, after).
    last: Option<(u64, u32, Duration)>,
    /// Times of the `Reconnecting`s of the last minute.
    rounds: VecDeque<u64>,
    /// Times of the dials of the last minute.
    dials: VecDeque<u64>,
    /// False hints dialed since the last `Reconnecting` (or the start).
    hints: usize,
}

/// What the checks remember.
#[derive(Debug)]
pub struct Checker {
    pub(super) seed: u64,
    pub(super) fault: Option<Fault>,
    dial: DialConfig,
    max_addresses: u64,
    /// Per (node, life, peer).
    logs: BTreeMap<(NodeIx, u32, PeerId), PeerLog>,
    /// (node, peer) pairs where the node unpaired the peer.
    pub(super) unpaired: BTreeSet<(NodeIx, PeerId)>,
    /// Per unordered pair of nodes: when it last became connected.
    pub(super) connected_at: BTreeMap<(NodeIx, NodeIx), u64>,
    /// `Reconnecting` events seen.
    pub(super) reconnects: u64,
    /// Dials seen.
    pub(super) dials: u64,
    /// Dials of false hints seen.
    pub(super) hint_dials: u64,
    /// Per (node, life, peer reachable only through its announcement).
    true_hints: BTreeMap<(NodeIx, u32, PeerId), TrueHint>,
    /// The most rounds a true hint waited before its dial.
    pub(super) true_hint_waited: u32,
    /// Dials of a true hint that had worked before, in the same
    /// keeper-life (after a loss: a partition, most often).
    pub(super) worked_true_dials: u64,
    /// Dials that worked through an address the book had dropped while
    /// they were out.
    pub(super) dropped_worked: u64,
    pub(super) violation: Option<KeepViolation>,
}

impl Checker {
    pub(super) fn new(seed: u64, fault: Option<Fault>, cfg: &Config) -> Checker {
        Checker {
            seed,
            fault,
            dial: cfg.dial.clone(),
            max_addresses: cfg.max_addresses_per_peer as u64,
            logs: BTreeMap::new(),
            unpaired: BTreeSet::new(),
            connected_at: BTreeMap::new(),
            reconnects: 0,
            dials: 0,
            hint_dials: 0,
            true_hints: BTreeMap::new(),
            true_hint_waited: 0,
            worked_true_dials: 0,
            dropped_worked: 0,
            violation: None,
        }
    }

    pub(super) fn fail(&mut self, now: u64, invariant: KeepInvariant, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(KeepViolation {
                invariant,
                seed: self.seed,
                fault: self.fault,
                at: Duration::from_nanos(now),
                detail,
            });
        }
    }

    /// Node `n` (in life `inc`) asked to dial `peer`, at a false
    /// discovery hint if `hint`.
    pub(super) fn on_dial(&mut self, now: u64, n: NodeIx, inc: u32, peer: PeerId, hint: bool) {
        self.dials += 1;
        self.hint_dials += u64::from(hint);
        if self.unpaired.contains(&(n, peer)) {
            self.fail(
                now,
                KeepInvariant::NoRedialAfterUnpair,
                format!("node {n} dialed {peer} after unpairing it"),
            );
        }
        let per_minute =
            (max_rounds_in(Duration::from_nanos(MINUTE), &self.dial) + 1) * self.max_addresses;
        let log = self.logs.entry((n, inc, peer)).or_default();
        log.dials.push_back(now);
        log.hints += usize::from(hint);
        let hints = log.hints;
        while log.dials.front().is_some_and(|t| now - t > MINUTE) {
            log.dials.pop_front();
        }
        if log.dials.len() as u64 > per_minute {
            let count = log.dials.len();
            self.fail(
                now,
                KeepInvariant::RedialsFollowBackoff,
                format!("node {n} dialed {peer} {count} times in a minute (at most {per_minute})"),
            );
        }
        if hints > HINTS_PER_ROUND {
            self.fail(
                now,
                KeepInvariant::UntriedHintsPerRound,
                format!(
                    "node {n} dialed {hints} false hints of {peer} in one round \
                     (at most {HINTS_PER_ROUND})"
                ),
            );
        }
    }

    /// Node `n`'s dial `out` proved its peer; `entries` are the peer's
    /// addresses in the book now, which holds `places` a peer.
    pub(super) fn on_dial_worked(
        &mut self,
        now: u64,
        n: NodeIx,
        out: Out,
        entries: &[AddrEntry],
        places: usize,
    ) {
        self.dropped_worked += u64::from(out.dropped);
        let Out { peer, addr, .. } = out;
        // (`AddrSource` orders the better source first)
        let found = entries.iter().find(|e| e.addr == addr);
        let wrong = match found {
            Some(e) if e.worked_last() && e.source <= out.source => return,
            Some(e) => format!("as {e:?}"),
            None if entries.len() >= places && entries.iter().all(|e| e.source < out.source) => {
                return;
            }
            None => "not at all".to_string(),
        };
        let detail = format!(
            "node {n}'s dial of {peer} at {addr} (source {:?}{}) worked, but its book holds \
             it {wrong}: {entries:?}",
            out.source,
            match out.dropped {
                true => ", dropped while the dial was out",
                false => "",
            }
        );
        self.fail(now, KeepInvariant::DialedAddressKept, detail);
    }

    /// Node `n` dialed the true address of `peer` (reachable only through
    /// its announcement): the count ends.
    pub(super) fn on_true_dial(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        let log = self.true_hints.entry((n, inc, peer)).or_default();
        log.dialed = true;
        self.worked_true_dials += u64::from(log.worked);
        if let Some((_, missed)) = log.count.take() {
            self.true_hint_waited = self.true_hint_waited.max(missed);
        }
    }

    /// Node `n`'s dial of the true address of `peer` worked (its book
    /// says so): from now on every round of this life dials it.
    pub(super) fn true_hint_worked(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        self.true_hints.entry((n, inc, peer)).or_default().worked = true;
    }

    /// Node `n` connected to `peer`: the round under way needs no dial.
    pub(super) fn on_connected(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        if let Some(log) = self.true_hints.get_mut(&(n, inc, peer)) {
            log.dialed = true;
        }
    }

    /// The true address of `peer` no longer waits in node `n`'s book as a
    /// hint that never worked (forgotten, pushed out, or it worked): the
    /// count ends.
    pub(super) fn true_hint_gone(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        if let Some(log) = self.true_hints.get_mut(&(n, inc, peer)) {
            log.count = None;
        }
    }

    /// Node `n` started a round of `peer` (its `Reconnecting`): the round
    /// before ended. `ahead` is, if the peer's true address waits in the
    /// book, how many other hints of the peer that never worked it holds.
    pub(super) fn on_true_round(
        &mut self,
        now: u64,
        (n, inc, peer): (NodeIx, u32, PeerId),
        ahead: Option<u32>,
    ) {
        let log = self.true_hints.entry((n, inc, peer)).or_default();
        let skipped = log.worked && !log.dialed;
        log.dialed = false;
        let mut late = None;
        if let Some((bound, missed)) = log.count.as_mut() {
            *missed += 1;
            if *missed > *bound {
                late = Some((*bound, *missed));
            }
        }
        match ahead {
            None => log.count = None,
            Some(ahead) => {
                log.count.get_or_insert((ahead, 0));
            }
        }
        if let Some((bound, missed)) = late {
            let detail = format!(
                "node {n} left {peer}'s true address undialed in {missed} rounds that \
                 started with it in the book ({bound} hints ahead of it at most)"
            );
            self.fail(now, KeepInvariant::TrueHintDialedInTime, detail);
        }
        if skipped {
            let detail = format!(
                "node {n}'s round of {peer} ended without a dial of its true address, \
                 which had worked"
            );
            self.fail(now, KeepInvariant::TrueHintDialedInTime, detail);
        }
    }

    /// Node `n` started a round of `peer` for the application's dial
    /// (not announced by `Reconnecting`): its hints are its own.
    pub(super) fn on_app_round(&mut self, n: NodeIx, inc: u32, peer: PeerId) {
        self.logs.entry((n, inc, peer)).or_default().hints = 0;
    }

    /// Node `n` announced a redial of `peer`.
    pub(super) fn on_reconnecting(
        &mut self,
        now: u64,
        (n, inc, peer): (NodeIx, u32, PeerId),
        attempt: u32,
        after: Duration,
    ) {
        self.reconnects += 1;
        let dial = self.dial.clone();
        let per_minute = max_rounds_in(Duration::from_nanos(MINUTE), &dial);
        let log = self.logs.entry((n, inc, peer)).or_default();
        let last = log.last.replace((now, attempt, after));
        log.hints = 0;
        log.rounds.push_back(now);
        while log.rounds.front().is_some_and(|t| now - t > MINUTE) {
            log.rounds.pop_front();
        }
        let rounds = log.rounds.len() as u64;
        let mut wrong = None;
        if after > dial.max_delay {
            wrong = Some(format!("delay {after:?} above {:?}", dial.max_delay));
        } else if attempt == 1 {
            if after < dial.first_min || after > dial.first_max {
                wrong = Some(format!("first delay {after:?} outside the first range"));
            }
        } else {
            match last {
                Some((t, a, prev)) if a + 1 == attempt => {
                    let floor = prev.as_nanos() * u128::from(dial.growth_min_percent) / 100;
                    if after.as_nanos() < floor && after < cap_floor(&dial) {
                        wrong = Some(format!("delay {after:?} after {prev:?}: grew too little"));
                    } else if Duration::from_nanos(now - t) < after {
                        wrong = Some(format!(
                            "redialed {:?} after the last one, claims {after:?}",
                            Duration::from_nanos(now - t)
                        ));
                    }
                }
                _ => wrong = Some(format!("attempt {attempt} does not follow {last:?}")),
            }
        }
        if wrong.is_none() && rounds > per_minute {
            wrong = Some(format!(
                "{rounds} redials in a minute (at most {per_minute})"
            ));
        }
        if let Some(what) = wrong {
            self.fail(
                now,
                KeepInvariant::RedialsFollowBackoff,
                format!("node {n} redialing {peer} (attempt {attempt}): {what}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::Identity;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn the_bounds_follow_the_backoff() {
        let cfg = Config::default();
        assert_eq!(reconnect_bound(&cfg), Duration::from_secs(50));
        // 0.1 s growing by 1.5: 14 delays fit in a minute (58.2 s).
        assert_eq!(rounds_without_reset(Duration::from_secs(60), &cfg.dial), 14);
        assert_eq!(
            rounds_without_reset(Duration::from_millis(99), &cfg.dial),
            0
        );
        // Up to 6 resets a minute, each starting the sequence over.
        assert_eq!(max_rounds_in(Duration::from_secs(60), &cfg.dial), 14 * 7);
    }

    #[test]
    fn a_dial_storm_is_caught_even_when_each_claim_is_right() {
        let cfg = Config::default();
        let peer = Identity::from_seed(&[3; 32]).peer_id();
        let mut c = Checker::new(0, None, &cfg);
        let limit = (max_rounds_in(Duration::from_secs(60), &cfg.dial) + 1) * 8;
        for i in 0..=limit {
            c.on_dial(i * SEC / 100, 0, 0, peer, false);
        }
        let v = c.violation.expect("caught");
        assert_eq!(v.invariant, KeepInvariant::RedialsFollowBackoff);
    }

    /// Three false hints between two `Reconnecting`s are caught; two per
    /// round, round after round, are not.
    #[test]
    fn a_third_hint_in_a_round_is_caught() {
        let cfg = Config::default();
        let peer = Identity::from_seed(&[3; 32]).peer_id();
        let mut c = Checker::new(0, None, &cfg);
        for round in 1..5u32 {
            let t = u64::from(round) * 100 * SEC;
            let after = Duration::from_millis(500) * 2u32.pow(round - 1);
            c.on_reconnecting(t, (0, 0, peer), round, after);
            for i in 0..HINTS_PER_ROUND as u64 {
                c.on_dial(t + i, 0, 0, peer, true);
            }
            c.on_dial(t + 9, 0, 0, peer, false);
        }
        assert!(c.violation.is_none(), "{:?}", c.violation);
        c.on_dial(400 * SEC + 10, 0, 0, peer, true);
        let v = c.violation.expect("caught");
        assert_eq!(v.invariant, KeepInvariant::UntriedHintsPerRound);
    }

    /// Once the true hint worked, a round that ends without its dial is
    /// caught, unless the peer connected meanwhile.
    #[test]
    fn a_round_without_the_true_hint_that_worked_is_caught() {
        let cfg = Config::default();
        let peer = Identity::from_seed(&[3; 32]).peer_id();
        let mut c = Checker::new(0, None, &cfg);
        let key = (0, 0, peer);
        c.on_true_round(0, key, None);
        c.on_true_dial(0, 0, peer);
        c.true_hint_worked(0, 0, peer);
        c.on_true_round(SEC, key, None);
        c.on_true_dial(0, 0, peer);
        c.on_true_round(2 * SEC, key, None);
        c.on_connected(0, 0, peer);
        c.on_true_round(3 * SEC, key, None);
        assert!(c.violation.is_none(), "{:?}", c.violation);
        c.on_true_round(4 * SEC, key, None);
        let v = c.violation.expect("caught");
        assert_eq!(v.invariant, KeepInvariant::TrueHintDialedInTime);
    }

    #[test]
    fn a_redial_sooner_than_its_claimed_delay_is_caught() {
        let cfg = Config::default();
        let peer = Identity::from_seed(&[3; 32]).peer_id();
        let mut c = Checker::new(0, None, &cfg);
        let second = Duration::from_secs(1);
        c.on_reconnecting(0, (0, 0, peer), 1, second / 2);
        c.on_reconnecting(SEC, (0, 0, peer), 2, second);
        assert!(c.violation.is_none());
        // Claims 2 s but came 1 s after the last one.
        c.on_reconnecting(2 * SEC, (0, 0, peer), 3, 2 * second);
        let v = c.violation.expect("caught");
        assert_eq!(v.invariant, KeepInvariant::RedialsFollowBackoff);
        assert!(v.detail.contains("claims"), "{}", v.detail);
    }
}
