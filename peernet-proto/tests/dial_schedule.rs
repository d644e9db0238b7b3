//! Dialing by PeerId in the core: the address book's commands, one-off
//! dials through it, and the backoff of kept peers (issue 15: the first
//! redial 0.1–1 s after a loss, each later delay at least 1.5 times the
//! one before, never above 30 s, reset once a connection lived 10 s;
//! `unpair` stops everything at once).

use std::net::SocketAddr;
use std::time::Duration;

use peernet_proto::AddrEntry;
use peernet_proto::config::Fault;
use peernet_proto::dial::{CAP_JITTER_DIVISOR, HINTS_PER_ROUND, next_delay};
use peernet_proto::{
    AddrHistory, AddrSource, BookError, Config, ConnId, ConnectError, DialConfig, DialFailure,
    Endpoint, Event, HandshakeError, Identity, Input, Instant, Output, PeerId, ProtocolVersion,
    RejectCode, TrustList,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod support;

use support::dialing::*;
use support::identity;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
/// The least delay at the cap: 30 s less its jitter (a quarter).
const CAP_FLOOR: Duration = Duration::from_millis(22_500);

/// Gives `peer` the discovery hints at `ports` (as a LAN host announces
/// them), in that order.
fn add_hints(a: &mut Endpoint, now: Instant, peer: PeerId, ports: std::ops::Range<u16>) {
    for port in ports {
        a.add_address(now, peer, addr(port), AddrSource::Discovery)
            .unwrap();
    }
}

/// During a backoff, `peer`'s transport to `at` opens late and is
/// adopted, an application's dial joins its round, and the handshake on
/// that transport fails (the transport closes).
fn late_transport_joined_and_lost(a: &mut Endpoint, now: Instant, peer: PeerId, at: SocketAddr) {
    let late = a.connect_to(now, peer, at).unwrap();
    a.dial(now, peer).unwrap();
    a.handle_input(now, Input::Closed { conn: late });
}

/// Node 1 keeping node 2, known only by five discovery hints (ports 10
/// to 14), at 1 ms: its round's first dial, to the latest heard, is out.
fn kept_by_five_hints() -> (Endpoint, PeerId, Instant) {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    add_hints(&mut a, now, b, 10..15);
    a.keep_connected(now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(14))]);
    (a, b, now)
}

/// Node 1 trusting node 2, which has two addresses from the
/// application, at 1 ms.
fn with_two_addresses() -> (Endpoint, PeerId, Instant) {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    for port in [1, 2] {
        a.add_address(now, b, addr(port), AddrSource::Application)
            .unwrap();
    }
    (a, b, now)
}

/// Fires the next deadline of `ep`; returns when it was.
fn next_deadline(ep: &mut Endpoint) -> Instant {
    let at = ep.poll_timeout().expect("a deadline is armed");
    ep.handle_timeout(at);
    at
}

proptest! {
    /// Every delay sequence the backoff can draw obeys the rules.
    #[test]
    fn backoff_delays_obey_the_rules(seed in any::<u64>(), len in 1usize..40) {
        let cfg = DialConfig::default();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut prev = None;
        for _ in 0..len {
            let d = next_delay(prev, &cfg, &mut rng);
            prop_assert!(d <= Duration::from_secs(30));
            match prev {
                None => prop_assert!(d >= 100 * MS && d <= SEC, "first {d:?}"),
                Some(p) => {
                    // At least 1.5 times the one before, unless capped
                    // (then in the cap's last quarter, 22.5 to 30 s).
                    let floor = (p.as_nanos() * 3).div_ceil(2);
                    prop_assert!(
                        d.as_nanos() >= floor || d >= CAP_FLOOR,
                        "{p:?} then {d:?}"
                    );
                }
            }
            prev = Some(d);
        }
    }
}

#[test]
fn the_backoff_is_jittered() {
    let cfg = DialConfig::default();
    let firsts: std::collections::BTreeSet<Duration> = (0..20)
        .map(|seed| next_delay(None, &cfg, &mut ChaCha20Rng::seed_from_u64(seed)))
        .collect();
    assert!(firsts.len() > 15, "{firsts:?}");
}

#[test]
fn the_book_takes_only_trusted_peers_and_unpair_empties_it() {
    let b = identity(2).peer_id();
    let stranger = identity(9).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    assert_eq!(
        a.add_address(now, stranger, addr(1), AddrSource::Application),
        Err(BookError::NotTrusted(stranger))
    );
    let me = a.peer_id();
    assert_eq!(
        a.add_address(now, me, addr(1), AddrSource::Application),
        Err(BookError::NotTrusted(me))
    );
    a.add_address(now, b, addr(1), AddrSource::Discovery)
        .unwrap();
    a.add_address(now, b, addr(2), AddrSource::Ticket).unwrap();
    let ports: Vec<u16> = a.addresses(&b).map(|e| e.addr.port()).collect();
    assert_eq!(ports, [2, 1], "the ticket before the discovery hint");
    assert!(a.remove_address(&b, addr(1)));
    assert!(!a.remove_address(&b, addr(1)));
    assert!(a.unpair(now, &b));
    assert_eq!(a.addresses(&b).count(), 0);
    assert_eq!(a.address_count(), 0);
    // Nothing was dialed: only keep_connected and dial do.
    assert!(dials(&drain(&mut a)).is_empty());
}

/// A node never trusts itself: an entry of its own PeerId in the list it
/// starts with is left out, and pairing it changes nothing, so it can
/// neither learn addresses of itself nor dial itself.
#[test]
fn a_node_never_trusts_itself() {
    let mut a = endpoint(1, &[1, 2]);
    let me = a.peer_id();
    let now = Instant::from_millis(1);
    assert!(!a.trust().contains(&me), "left out of the starting list");
    assert!(a.trust().contains(&identity(2).peer_id()));
    assert!(!a.pair(me, None), "pairing itself changes nothing");
    assert!(!a.trust().contains(&me));
    assert_eq!(
        a.add_address(now, me, addr(1), AddrSource::Application),
        Err(BookError::NotTrusted(me))
    );
    assert!(a.keep_connected(now, me, true).is_err());
    assert!(a.dial(now, me).is_err());
    assert!(dials(&drain(&mut a)).is_empty());
}

#[test]
fn a_one_off_dial_tries_each_address_then_reports_unreachable() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    assert_eq!(a.dial(now, b), Err(ConnectError::NoAddress(b)));
    let stranger = identity(9).peer_id();
    assert_eq!(
        a.dial(now, stranger),
        Err(ConnectError::Untrusted(stranger))
    );
    a.add_address(now, b, addr(1), AddrSource::Application)
        .unwrap();
    a.add_address(now, b, addr(2), AddrSource::Discovery)
        .unwrap();
    a.dial(now, b).unwrap();
    let out = drain(&mut a);
    assert_eq!(dials(&out), [(b, addr(1))]);
    assert!(events(&out).is_empty(), "the first dial is silent");
    // Refused: the next address at once.
    a.dial_failed(now, b, addr(1), refused());
    let out = drain(&mut a);
    assert_eq!(dials(&out), [(b, addr(2))]);
    // The transport opens but the handshake ends: the round is over.
    let conn = a.connect_to(now, b, addr(2)).unwrap();
    a.handle_input(now, Input::Closed { conn });
    let out = drain(&mut a);
    assert!(dials(&out).is_empty());
    // The report names each address tried, in order, with why.
    let tried = vec![
        (addr(1), refused()),
        (
            addr(2),
            DialFailure::Handshake(HandshakeError::TransportLost),
        ),
    ];
    assert!(
        events(&out).contains(&Event::Unreachable { peer: b, tried }),
        "{:?}",
        events(&out)
    );
    assert!(!a.is_kept(&b));
    // Both failed: the application's is marked, the discovery hint that
    // never worked is forgotten.
    let e: Vec<_> = a.addresses(&b).collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].addr, addr(1));
    assert!(e[0].last_failed.is_some());
    assert_eq!(a.poll_timeout(), None, "no schedule left behind");
}

#[test]
fn a_dial_not_reported_in_time_counts_as_failed() {
    let (mut a, b, now) = with_two_addresses();
    a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(1))]);
    let at = next_deadline(&mut a);
    assert_eq!(at, now + a.config().dial.dial_timeout);
    assert_eq!(dials(&drain(&mut a)), [(b, addr(2))]);
    // A late report of the first is harmless, and not a cause twice.
    a.dial_failed(at, b, addr(1), refused());
    assert!(dials(&drain(&mut a)).is_empty());
    // A driver's overlong words are cut, on a character boundary.
    let long = "é".repeat(DialFailure::MAX_TRANSPORT_TEXT);
    a.dial_failed(at, b, addr(2), DialFailure::transport(&long));
    let kept = "é".repeat(DialFailure::MAX_TRANSPORT_TEXT / 2);
    let tried = vec![
        (addr(1), DialFailure::TimedOut(a.config().dial.dial_timeout)),
        (addr(2), DialFailure::Transport(kept)),
    ];
    assert_eq!(
        events(&drain(&mut a)),
        [Event::Unreachable { peer: b, tried }]
    );
}

/// Keeps peer 2 with one address that always refuses; returns the
/// `Reconnecting` events of `rounds` redials with the time each came.
fn refused_redials(a: &mut Endpoint, rounds: usize) -> Vec<(Instant, u32, Duration)> {
    let b = identity(2).peer_id();
    let start = Instant::from_millis(1);
    a.add_address(start, b, addr(1), AddrSource::Application)
        .unwrap();
    a.keep_connected(start, b, true).unwrap();
    let out = drain(a);
    assert_eq!(dials(&out), [(b, addr(1))]);
    assert!(events(&out).is_empty(), "the first dial is silent");
    a.dial_failed(start, b, addr(1), refused());
    said_why(a, b);
    let mut seen = Vec::new();
    let mut failed_at = start;
    for _ in 0..rounds {
        let at = next_deadline(a);
        let out = drain(a);
        let Some(Event::Reconnecting {
            peer,
            attempt,
            after,
        }) = events(&out).first().cloned()
        else {
            panic!("no Reconnecting before the redial: {out:?}");
        };
        assert_eq!(peer, b);
        assert_eq!(at, failed_at + after, "redialed exactly after the delay");
        // Reconnecting comes right before its Dial.
        assert!(matches!(out.last(), Some(Output::Dial { .. })));
        assert_eq!(dials(&out), [(b, addr(1))]);
        seen.push((at, attempt, after));
        a.dial_failed(at, b, addr(1), refused());
        said_why(a, b);
        failed_at = at;
    }
    seen
}

/// Brief s57 (api): a kept peer's failed round was silent (only a
/// one-off `dial` got its `Unreachable`), so nothing said why a kept
/// peer kept being redialed. Each round that dialed and failed, the
/// first one included, now ends with its `Unreachable`: each address
/// tried, with why.
fn said_why(a: &mut Endpoint, b: PeerId) {
    let tried = vec![(addr(1), refused())];
    assert_eq!(
        events(&drain(a)),
        [Event::Unreachable { peer: b, tried }],
        "a kept peer's failed round says why"
    );
}

#[test]
fn a_kept_peer_that_stays_down_is_redialed_with_the_backoff() {
    let mut a = endpoint(1, &[2]);
    let seen = refused_redials(&mut a, 14);
    let mut prev: Option<Duration> = None;
    for (i, (_, attempt, after)) in seen.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1);
        assert!(*after <= 30 * SEC);
        match prev {
            None => assert!(*after >= 100 * MS && *after <= SEC),
            // (at the cap: drawn in its last quarter)
            Some(p) => assert!(
                *after >= p * 3 / 2 || *after >= CAP_FLOOR,
                "{p:?} {after:?}"
            ),
        }
        prev = Some(*after);
    }
    let last = prev.expect("14 rounds");
    assert!(last >= CAP_FLOOR, "capped after 14 rounds: {last:?}");
    // Stopping: no deadline is left, nothing more is dialed.
    let b = identity(2).peer_id();
    a.keep_connected(a.now(), b, false).unwrap();
    assert!(!a.is_kept(&b));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn unpair_stops_a_kept_peer_at_once() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    refused_redials(&mut a, 2);
    assert!(a.poll_timeout().is_some(), "backing off");
    a.unpair(a.now(), &b);
    assert!(!a.is_kept(&b));
    assert_eq!(a.poll_timeout(), None);
    a.handle_timeout(a.now() + Duration::from_secs(120));
    assert!(dials(&drain(&mut a)).is_empty());
    assert_eq!(
        a.keep_connected(a.now(), b, true),
        Err(ConnectError::Untrusted(b))
    );
}

#[test]
fn a_dial_in_flight_when_unpaired_is_refused() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    a.add_address(now, b, addr(1), AddrSource::Application)
        .unwrap();
    a.keep_connected(now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut a)).len(), 1);
    a.unpair(now, &b);
    assert_eq!(
        a.connect_to(now, b, addr(1)),
        Err(ConnectError::Untrusted(b))
    );
    a.dial_failed(now, b, addr(1), refused());
    assert!(dials(&drain(&mut a)).is_empty());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn shutdown_stops_every_dial() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    refused_redials(&mut a, 1);
    a.shutdown(a.now());
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(
        a.keep_connected(a.now(), b, true),
        Err(ConnectError::ShuttingDown)
    );
    assert_eq!(a.dial(a.now(), b), Err(ConnectError::ShuttingDown));
}

/// Two endpoints joined by hand: A dials B through `connect_to`.
struct Pair {
    a: Endpoint,
    b: Endpoint,
    /// A's connection and B's end of it.
    link: Option<(ConnId, ConnId)>,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            a: endpoint(1, &[2]),
            b: endpoint(2, &[1]),
            link: None,
            now: Instant::from_millis(1),
        }
    }

    /// A opens the transport of its dial; moves bytes until quiet.
    /// Returns A's outputs on the way.
    fn open(&mut self, to: SocketAddr) -> Vec<Output> {
        let b = self.b.peer_id();
        let ca = self.a.connect_to(self.now, b, to).unwrap();
        let cb = self.b.accept(self.now).unwrap();
        self.link = Some((ca, cb));
        self.pump()
    }

    fn pump(&mut self) -> Vec<Output> {
        let mut seen = Vec::new();
        loop {
            let mut moved = false;
            while let Some(out) = self.a.poll_output() {
                if let (Output::Transmit(c), Some((ca, cb))) = (&out, self.link) {
                    if *c == ca {
                        if let Some(data) = self.a.poll_transmit(ca) {
                            let input = Input::Received {
                                conn: cb,
                                data: data.into(),
                            };
                            self.b.handle_input(self.now, input);
                            moved = true;
                        }
                    }
                }
                seen.push(out);
            }
            while let Some(out) = self.b.poll_output() {
                let Some((ca, cb)) = self.link else { continue };
                match out {
                    Output::Transmit(c) if c == cb => {
                        if let Some(data) = self.b.poll_transmit(cb) {
                            let input = Input::Received {
                                conn: ca,
                                data: data.into(),
                            };
                            self.a.handle_input(self.now, input);
                            moved = true;
                        }
                    }
                    // b closes: its last bytes (a GOODBYE, a REJECT) reach
                    // a, then the end of the transport
                    Output::Close { conn, last } if conn == cb => {
                        if !last.is_empty() {
                            let input = Input::Received {
                                conn: ca,
                                data: last.into(),
                            };
                            self.a.handle_input(self.now, input);
                        }
                        self.a.handle_input(self.now, Input::Closed { conn: ca });
                        self.link = None;
                        moved = true;
                    }
                    _ => {}
                }
            }
            if !moved {
                return seen;
            }
        }
    }

    /// The transport breaks (both ends see it).
    fn cut(&mut self) -> Vec<Output> {
        let (ca, cb) = self.link.take().expect("a link");
        self.a.handle_input(self.now, Input::Closed { conn: ca });
        self.b.handle_input(self.now, Input::Closed { conn: cb });
        self.pump()
    }

    /// A learns B's address `addr(1)` as a discovery hint, dials it, and
    /// B refuses the handshake with `code`.
    fn dial_hint_refused(&mut self, code: RejectCode) {
        let b = self.b.peer_id();
        self.a
            .add_address(self.now, b, addr(1), AddrSource::Discovery)
            .unwrap();
        self.a.dial(self.now, b).unwrap();
        assert_eq!(dials(&self.pump()), [(b, addr(1))]);
        let out = self.open(addr(1));
        let refused = HandshakeError::Rejected(code);
        assert!(
            events(&out)
                .iter()
                .any(|e| matches!(e, Event::HandshakeFailed { error, .. } if *error == refused)),
            "{out:?}"
        );
    }

    /// Moves time to `at` on both and fires what is due.
    fn advance_to(&mut self, at: Instant) -> Vec<Output> {
        self.now = at;
        self.a.handle_timeout(at);
        self.b.handle_timeout(at);
        self.pump()
    }
}

#[test]
fn a_lost_connection_is_redialed_and_the_backoff_resets_after_ten_seconds() {
    let mut p = Pair::new();
    let b = p.b.peer_id();
    p.a.add_address(p.now, b, addr(1), AddrSource::Application)
        .unwrap();
    p.a.keep_connected(p.now, b, true).unwrap();
    assert_eq!(dials(&p.pump()), [(b, addr(1))]);
    let out = p.open(addr(1));
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    );
    assert!(p.a.addresses(&b).next().unwrap().last_ok.is_some());
    // It lives 2 s, then breaks: redial 1.
    let mut afters = Vec::new();
    for lived in [2, 3] {
        p.advance_to(p.now + lived * SEC);
        p.cut();
        let at = p.a.poll_timeout().unwrap();
        let out = p.advance_to(at);
        let ev = events(&out);
        let Some(Event::Reconnecting { attempt, after, .. }) = ev.first() else {
            panic!("{ev:?}");
        };
        afters.push((*attempt, *after));
        assert_eq!(dials(&out), [(b, addr(1))]);
        p.open(addr(1));
        assert!(p.a.is_connected(&b));
    }
    // Short lives: the backoff grew and the attempts counted on.
    assert_eq!(afters[0].0, 1);
    assert_eq!(afters[1].0, 2);
    assert!(afters[0].1 >= 100 * MS && afters[0].1 <= SEC);
    assert!(afters[1].1 >= afters[0].1 * 3 / 2);
    // This one lives 10 s: the next loss starts over.
    p.advance_to(p.now + 10 * SEC);
    p.cut();
    let at = p.a.poll_timeout().unwrap();
    let ev = events(&p.advance_to(at));
    let Some(Event::Reconnecting { attempt, after, .. }) = ev.first() else {
        panic!("{ev:?}");
    };
    assert_eq!(*attempt, 1);
    assert!(*after >= 100 * MS && *after <= SEC, "{after:?}");
}

/// A discovery hint whose peer answers `busy` is the peer's address: it
/// stays in the book, marked failed, and the next round dials it again.
/// It used to be forgotten as a false hint, and mDNS reports an
/// announcement again only when it changes: a kept peer heard on the
/// LAN that was busy at the first dial stayed unreachable until it
/// restarted.
#[test]
fn a_hint_whose_peer_answers_busy_is_kept() {
    let mut p = Pair::new();
    let mut trust = TrustList::new();
    trust.insert(p.a.peer_id(), None);
    // b lets a peer connect once, then once a second
    let mut config = Config::default();
    config.peer_connects.burst = 1;
    config.peer_connects.per_second = 1;
    p.b = Endpoint::new(
        config,
        identity(2),
        trust,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
    );
    let b = p.b.peer_id();
    p.open(addr(9));
    assert!(p.a.is_connected(&b));
    p.cut();
    // (the book learned the address that connection proved: forgotten,
    // so that the hint is the peer's only address)
    assert!(p.a.remove_address(&b, addr(9)));
    p.dial_hint_refused(RejectCode::Busy);
    let kept: Vec<_> = p.a.addresses(&b).collect();
    assert_eq!(kept.len(), 1, "the hint was forgotten");
    assert!(kept[0].last_failed.is_some() && kept[0].last_ok.is_none());
    // a refused transport to it is still the end of a hint that never
    // worked
    p.a.dial(p.now, b).unwrap();
    assert_eq!(dials(&p.pump()), [(b, addr(1))]);
    p.a.dial_failed(p.now, b, addr(1), DialFailure::transport("refused"));
    assert_eq!(p.a.addresses(&b).count(), 0);
}

/// A discovery hint whose peer answers version 2's `untrusted` is the
/// peer's address too: the REJECT comes only after the INIT's mac1
/// named that PeerId. The hint stays for when the peer pairs us (mDNS
/// would not report it again). Version 1's `untrusted` answers a HELLO
/// before anything names the responder: there a hint that never worked
/// is still forgotten.
#[test]
fn a_hint_whose_peer_answers_untrusted_is_kept_on_version_2_only() {
    for (version, kept) in [(ProtocolVersion::V2, 1), (ProtocolVersion::V1, 0)] {
        let mut config = Config::default();
        config.version = version;
        let mut p = Pair::new();
        p.a = endpoint_with(config.clone(), 1, &[2]);
        p.b = endpoint_with(config, 2, &[]);
        p.dial_hint_refused(RejectCode::Untrusted);
        let book: Vec<_> = p.a.addresses(&p.b.peer_id()).collect();
        assert_eq!(book.len(), kept, "{version:?}: {book:?}");
        if let Some(e) = book.first() {
            assert!(e.last_failed.is_some() && e.last_ok.is_none(), "{e:?}");
        }
    }
}

#[test]
fn a_connected_peer_is_never_dialed() {
    let mut p = Pair::new();
    let b = p.b.peer_id();
    p.a.add_address(p.now, b, addr(1), AddrSource::Application)
        .unwrap();
    p.a.dial(p.now, b).unwrap();
    assert_eq!(dials(&p.pump()), [(b, addr(1))]);
    p.open(addr(1));
    assert!(p.a.is_connected(&b));
    assert_eq!(p.a.dial(p.now, b), Err(ConnectError::AlreadyConnected(b)));
    assert_eq!(
        p.a.connect_to(p.now, b, addr(1)),
        Err(ConnectError::AlreadyConnected(b))
    );
    p.a.keep_connected(p.now, b, true).unwrap();
    assert!(dials(&p.pump()).is_empty());
    // Only the dial's deadline was ever armed for the schedule; the
    // connection's own timers remain.
    p.a.keep_connected(p.now, b, false).unwrap();
    p.cut();
    p.advance_to(p.now + 60 * SEC);
    assert!(!p.a.is_connected(&b));
    assert!(dials(&p.pump()).is_empty(), "no longer kept");
}

/// What happens to a kept peer's dial before the next loss.
#[derive(Debug, Clone)]
enum Outcome {
    /// The transport could not be opened.
    Fail,
    /// It connected and lived this many seconds.
    Live(u64),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Through the endpoint, whatever mix of failed dials and short or
    /// long connections: every redial is announced with its attempt and
    /// delay right before its Dial, comes exactly that delay after the
    /// loss, and the delays obey the rules; a connection that lived 10 s
    /// starts the count and the delays over.
    #[test]
    fn redials_follow_the_backoff_through_any_history(
        outcomes in proptest::collection::vec(
            prop_oneof![Just(Outcome::Fail), (0u64..25).prop_map(Outcome::Live)],
            1..14,
        )
    ) {
        let mut p = Pair::new();
        let b = p.b.peer_id();
        p.a.add_address(p.now, b, addr(1), AddrSource::Application).unwrap();
        p.a.keep_connected(p.now, b, true).unwrap();
        prop_assert_eq!(dials(&p.pump()), [(b, addr(1))]);
        let mut prev: Option<(u32, Duration)> = None;
        for outcome in outcomes {
            let reset = match outcome {
                Outcome::Fail => {
                    p.a.dial_failed(p.now, b, addr(1), refused());
                    // (the round says why it failed, as it fails)
                    let said = events(&p.pump());
                    let why = matches!(said.as_slice(), [Event::Unreachable { .. }]);
                    prop_assert!(why, "{:?}", said);
                    false
                }
                Outcome::Live(secs) => {
                    p.open(addr(1));
                    prop_assert!(p.a.is_connected(&b));
                    for _ in 0..secs {
                        let at = p.now + SEC;
                        p.advance_to(at);
                    }
                    p.cut();
                    secs >= 10
                }
            };
            let lost_at = p.now;
            let at = p.a.poll_timeout().expect("the backoff is armed");
            let out = p.advance_to(at);
            let ev = events(&out);
            let Some(Event::Reconnecting { attempt, after, .. }) = ev.first().cloned() else {
                return Err(TestCaseError::fail(format!("no Reconnecting: {out:?}")));
            };
            let dial_last = matches!(out.last(), Some(Output::Dial { .. }));
            prop_assert!(dial_last, "the Dial follows its Reconnecting");
            prop_assert_eq!(at, lost_at + after);
            prop_assert!(after <= 30 * SEC);
            match prev {
                Some((n, last)) if !reset => {
                    prop_assert_eq!(attempt, n + 1);
                    let floor = (last.as_nanos() * 3).div_ceil(2);
                    prop_assert!(after.as_nanos() >= floor || after >= CAP_FLOOR);
                }
                _ => {
                    prop_assert_eq!(attempt, 1);
                    prop_assert!(after >= 100 * MS && after <= SEC);
                }
            }
            prev = Some((attempt, after));
        }
    }
}

/// A LAN host announces fresh addresses for a trusted peer that is down
/// for a while: the address the application gave (the only true one)
/// fails once, ranks last, and still is never evicted by a discovery
/// hint, the least trusted source.
#[test]
fn a_discovery_hint_never_evicts_an_application_address() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let mut now = Instant::from_millis(1);
    let tick = |now: &mut Instant| *now = *now + Duration::from_millis(10);
    let real = addr(1);
    a.add_address(now, b, real, AddrSource::Application)
        .unwrap();
    // Round 1: B is down (restarting).
    a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, real)]);
    tick(&mut now);
    a.dial_failed(now, b, real, refused());
    // The attacker announces seven addresses for B.
    add_hints(&mut a, now, b, 100..107);
    // Round 2: the hints go first (untried), the real address last.
    a.dial(now, b).unwrap();
    loop {
        let d = dials(&drain(&mut a));
        let Some(&(_, at)) = d.first() else { break };
        tick(&mut now);
        a.dial_failed(now, b, at, refused());
    }
    // One more announcement.
    let _ = a.add_address(now, b, addr(200), AddrSource::Discovery);
    let kept: Vec<_> = a.addresses(&b).map(|e| (e.addr, e.source)).collect();
    assert!(
        kept.contains(&(real, AddrSource::Application)),
        "the application's address was evicted by a discovery hint: {kept:?}"
    );
}

/// At most one dial per peer is in flight: a transport that opens after
/// the round gave up on it (not reported within `dial_timeout`) is
/// refused while the round dials elsewhere, and taken as the round's own
/// while the schedule backs off, so no second handshake races it (the
/// later of two would supersede the earlier's connection).
#[test]
fn a_late_transport_never_runs_beside_the_rounds_dial() {
    let (mut a, b, now) = with_two_addresses();
    a.keep_connected(now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(1))]);
    let at = next_deadline(&mut a);
    assert_eq!(dials(&drain(&mut a)), [(b, addr(2))]);
    // addr(1) opens late, while the round dials addr(2): refused.
    let refused = Err(ConnectError::DialInFlight {
        peer: b,
        addr: addr(1),
    });
    assert_eq!(a.connect_to(at, b, addr(1)), refused);
    // addr(2) opens: its handshake runs; addr(1) is refused still.
    let conn = a.connect_to(at, b, addr(2)).unwrap();
    assert_eq!(a.connect_to(at, b, addr(1)), refused);
    // The handshake fails: the round is over, the schedule backs off.
    a.handle_input(at, Input::Closed { conn });
    drain(&mut a);
    assert!(a.poll_timeout().is_some(), "backing off");
    // addr(1) opens now, during the backoff: it is the round's dial, so
    // the backoff's end starts no second one beside it.
    let late = a.connect_to(at, b, addr(1)).unwrap();
    let past_backoff = at + a.config().dial.first_max + MS;
    assert!(past_backoff < at + a.config().handshake_timeout);
    a.handle_timeout(past_backoff);
    assert!(dials(&drain(&mut a)).is_empty());
    assert_eq!(
        a.connect_to(past_backoff, b, addr(2)),
        Err(ConnectError::DialInFlight {
            peer: b,
            addr: addr(2)
        })
    );
    // Its end is the round's: the schedule backs off again, then dials.
    a.handle_input(past_backoff, Input::Closed { conn: late });
    drain(&mut a);
    let next = next_deadline(&mut a);
    assert!(next > past_backoff);
    // (addr(2) failed longest ago: first)
    assert_eq!(dials(&drain(&mut a)), [(b, addr(2))]);
}

/// A false discovery hint costs one failed dial, not one per round: a
/// hint that fails before it ever worked is forgotten.
#[test]
fn a_false_hint_costs_at_most_one_failed_dial() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    a.add_address(now, b, addr(1), AddrSource::Application)
        .unwrap();
    a.add_address(now, b, addr(99), AddrSource::Discovery)
        .unwrap();
    let mut hint_dials = 0;
    for round in 0..5u64 {
        let now = Instant::from_millis(10 + round * 1000);
        a.dial(now, b).unwrap();
        loop {
            let d = dials(&drain(&mut a));
            let Some(&(_, at)) = d.first() else { break };
            if at == addr(99) {
                hint_dials += 1;
            }
            a.dial_failed(now, b, at, refused());
        }
    }
    assert_eq!(
        hint_dials, 1,
        "the false hint was dialed {hint_dials} times"
    );
    assert!(a.addresses(&b).all(|e| e.addr != addr(99)));
}

/// A kept peer known only by a false hint: the hint is forgotten at its
/// failure, and the same hint heard again waits for the backoff instead
/// of being dialed at once, so a LAN host re-announcing it cannot drive
/// the redial rate.
#[test]
fn a_re_announced_false_hint_waits_for_the_backoff() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    let hint = addr(9);
    a.add_address(now, b, hint, AddrSource::Discovery).unwrap();
    a.keep_connected(now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, hint)]);
    let mut at = now;
    for round in 0..4 {
        a.dial_failed(at, b, hint, refused());
        assert_eq!(a.address_count(), 0, "round {round}: the hint is forgotten");
        drain(&mut a);
        let turn = a.poll_timeout().expect("the backoff is armed");
        // heard again at once: a new hint, dialed at the backoff's turn
        assert_eq!(a.add_address(at, b, hint, AddrSource::Discovery), Ok(true));
        assert!(
            dials(&drain(&mut a)).is_empty(),
            "round {round}: dialed at once"
        );
        at = next_deadline(&mut a);
        assert_eq!(at, turn);
        assert_eq!(dials(&drain(&mut a)), [(b, hint)]);
    }
}

/// A one-off dial that joins a round under way goes through every address
/// the round has not tried, one added since it began included; so does
/// one that joins a late transport the schedule adopted during its
/// backoff (that round has no addresses left of its own).
#[test]
fn a_dial_joining_a_round_tries_every_address_left() {
    let (mut a, b, now) = with_two_addresses();
    a.keep_connected(now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(1))]);
    a.add_address(now, b, addr(3), AddrSource::Ticket).unwrap();
    a.dial(now, b).unwrap();
    for (failed, next) in [(1, Some(2)), (2, Some(3)), (3, None)] {
        a.dial_failed(now, b, addr(failed), refused());
        let out = drain(&mut a);
        match next {
            Some(n) => assert_eq!(dials(&out), [(b, addr(n))]),
            None => {
                let Some(Event::Unreachable { tried, .. }) = events(&out).pop() else {
                    panic!("{out:?}")
                };
                let addrs: Vec<_> = tried.iter().map(|(a, _)| a.port()).collect();
                assert_eq!(addrs, [1, 2, 3]);
            }
        }
    }
    // The round failed; during its backoff addr(2)'s transport opens
    // late and is adopted; a dial joins it, and goes on to the others.
    late_transport_joined_and_lost(&mut a, now, b, addr(2));
    let out = drain(&mut a);
    assert_eq!(dials(&out), [(b, addr(1))], "{out:?}");
}

/// A discovery hint saved as having worked keeps, after a restart, what
/// working earned it: it is dialed before untried addresses, other hints
/// cannot push it out while it works, and a failure does not forget it.
/// Restored as not working, the same hint is forgotten at its first
/// failure.
#[test]
fn a_hint_restored_as_worked_keeps_its_standing() {
    let b = identity(2).peer_id();
    let now = Instant::from_millis(1);
    let restored = |history: AddrHistory| {
        let mut a = endpoint(1, &[2]);
        let never = AddrHistory::NeverWorked;
        a.restore_address(now, b, addr(1), AddrSource::Application, never)
            .unwrap();
        a.restore_address(now, b, addr(7), AddrSource::Discovery, history)
            .unwrap();
        a
    };
    let mut a = restored(AddrHistory::Worked);
    let ranked: Vec<_> = a.addresses(&b).map(|e| e.addr).collect();
    assert_eq!(ranked, [addr(7), addr(1)], "it worked: dialed first");
    // a LAN host announcing more hints than the peer has room for
    for k in 20..40 {
        let _ = a.add_address(now, b, addr(k), AddrSource::Discovery);
    }
    assert!(a.addresses(&b).any(|e| e.addr == addr(7)), "pushed out");
    a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(7))]);
    a.dial_failed(now, b, addr(7), refused());
    assert!(a.addresses(&b).any(|e| e.addr == addr(7)), "forgotten");

    let mut a = restored(AddrHistory::NeverWorked);
    let ranked: Vec<_> = a.addresses(&b).map(|e| e.addr).collect();
    assert_eq!(ranked, [addr(1), addr(7)]);
    a.dial_failed(now, b, addr(7), refused());
    assert!(a.addresses(&b).all(|e| e.addr != addr(7)));
}

/// A discovery hint saved as having worked, then failed (a node
/// restarted during a partition, or while its peer slept) is restored as
/// such: not working, yet hints that never worked, filling the peer's
/// places, do not push it out, and every round after the restart dials
/// it, the first too, beside the few untried hints a round takes; a
/// failure does not forget it.
#[test]
fn a_hint_restored_as_worked_then_failed_keeps_its_place_and_is_dialed() {
    let b = identity(2).peer_id();
    let now = Instant::from_millis(1);
    let mut a = endpoint(1, &[2]);
    let history = AddrHistory::WorkedThenFailed;
    a.restore_address(now, b, addr(7), AddrSource::Discovery, history)
        .unwrap();
    let restored = *a.addresses(&b).next().unwrap();
    assert_eq!(restored.history(), history);
    assert!(
        !restored.worked_last(),
        "a failing address restored as working"
    );
    // a LAN host announcing more hints than the peer has places
    add_hints(&mut a, now, b, 20..40);
    assert!(a.addresses(&b).any(|e| e.addr == addr(7)), "pushed out");
    let (dialed, _) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [39, 33, 7]);
    let (dialed, _) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [38, 34, 7]);
}

/// Our own shutdown abandons a dial's handshake in progress: that says
/// nothing of the address. A discovery hint that had not yet had the time
/// to work (the peer's true address) stays, and the book does not change,
/// so nothing is saved for it.
#[test]
fn a_shutdown_mid_handshake_leaves_the_book_alone() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    a.add_address(now, b, addr(1), AddrSource::Discovery)
        .unwrap();
    a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(1))]);
    // the transport opened: the handshake is under way
    a.connect_to(now, b, addr(1)).unwrap();
    let before = a.book_revision();
    a.shutdown(now);
    a.close_all(now);
    let left: Vec<_> = a.addresses(&b).map(|e| e.addr).collect();
    assert_eq!(
        left,
        [addr(1)],
        "the hint was forgotten by our own shutdown"
    );
    assert_eq!(a.book_revision(), before, "a save would be owed");
}

/// A LAN host that keeps a kept peer's hint places full of false
/// addresses (refilling each as its dial fails) no longer keeps the
/// peer's own announcement out: it gets in when heard and is dialed next.
#[test]
fn a_hint_flood_does_not_keep_the_true_hint_out() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let mut now = Instant::from_millis(1);
    a.keep_connected(now, b, true).unwrap();
    let truth = SocketAddr::from(([192, 0, 2, 7], 4000));
    let mut next_false = 1u16;
    let mut announce_false = |a: &mut Endpoint, now| {
        while a.addresses(&b).count() < 8 {
            let _ = a.add_address(now, b, addr(next_false), AddrSource::Discovery);
            next_false += 1;
        }
    };
    announce_false(&mut a, now);
    let mut dialed_truth = false;
    for _ in 0..50 {
        // the peer announces itself
        let _ = a.add_address(now, b, truth, AddrSource::Discovery);
        for (_, to) in dials(&drain(&mut a)) {
            dialed_truth |= to == truth;
            a.dial_failed(now, b, to, refused());
            announce_false(&mut a, now);
        }
        if dialed_truth {
            break;
        }
        if let Some(at) = a.poll_timeout() {
            now = at;
            a.handle_timeout(at);
        }
        announce_false(&mut a, now);
    }
    assert!(dialed_truth, "every dial went to the false hints");
}

/// Keeping many peers dials at most `max_dials_in_flight` of them at
/// once (each dial holds a socket until its transport opens and its
/// handshake ends); the others wait their turn, first come first served,
/// and start as dials end. It used to dial every kept peer at once.
#[test]
fn dials_under_way_are_bounded_and_the_others_wait_their_turn() {
    let peers: Vec<u8> = (10..30).collect();
    let mut config = Config::default();
    config.dial.max_dials_in_flight = 4;
    let mut trust = TrustList::new();
    for p in &peers {
        trust.insert(identity(*p).peer_id(), None);
    }
    let mut a = Endpoint::new(
        config,
        identity(1),
        trust,
        Box::new(ChaCha20Rng::seed_from_u64(1)),
    );
    let now = Instant::from_millis(1);
    for (i, p) in peers.iter().enumerate() {
        let peer = identity(*p).peer_id();
        a.add_address(now, peer, addr(1000 + i as u16), AddrSource::Application)
            .unwrap();
        a.keep_connected(now, peer, true).unwrap();
    }
    let first = dials(&drain(&mut a));
    assert_eq!(first.len(), 4, "{first:?}");
    // one transport opens: its handshake still holds the slot
    let (p0, addr0) = first[0];
    a.connect_to(now, p0, addr0).unwrap();
    assert!(dials(&drain(&mut a)).is_empty());
    // one fails: its round ends, the next peer in line starts
    let (p1, addr1) = first[1];
    a.dial_failed(now, p1, addr1, refused());
    let next = dials(&drain(&mut a));
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(
        next[0].0,
        identity(peers[4]).peer_id(),
        "first come first served"
    );
    // unkeeping a peer that is dialing frees its slot too
    a.keep_connected(now, first[2].0, false).unwrap();
    let freed = dials(&drain(&mut a));
    assert_eq!(freed.len(), 1, "{freed:?}");
    // every peer gets its dial as the others fail
    let mut dialed: std::collections::BTreeSet<PeerId> = first.iter().map(|d| d.0).collect();
    let mut out: Vec<(PeerId, SocketAddr)> = next.into_iter().chain(freed).collect();
    for _ in 0..100 {
        let Some((p, at)) = out.pop() else { break };
        dialed.insert(p);
        a.dial_failed(now, p, at, refused());
        out.extend(dials(&drain(&mut a)));
    }
    assert_eq!(dialed.len(), peers.len());
    // zero is refused
    let mut zero = Config::default();
    zero.dial.max_dials_in_flight = 0;
    assert_eq!(
        zero.validate(),
        Err(peernet_proto::ConfigError::Zero("dial.max_dials_in_flight"))
    );
}

/// The default bound: 300 kept peers, 256 dials at first.
#[test]
fn keeping_300_peers_dials_256_at_first() {
    let ids: Vec<PeerId> = (0..300u16)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..2].copy_from_slice(&i.to_be_bytes());
            Identity::from_seed(&seed).peer_id()
        })
        .collect();
    let mut trust = TrustList::new();
    for id in &ids {
        trust.insert(*id, None);
    }
    let rng = Box::new(ChaCha20Rng::seed_from_u64(1));
    let mut a = Endpoint::new(Config::default(), identity(1), trust, rng);
    let now = Instant::from_millis(1);
    for (i, id) in ids.iter().enumerate() {
        a.add_address(now, *id, addr(1000 + i as u16), AddrSource::Application)
            .unwrap();
        a.keep_connected(now, *id, true).unwrap();
    }
    assert_eq!(dials(&drain(&mut a)).len(), 256);
}

/// At the book's total, an application address takes the place of
/// another peer's hint, but not of one a dial is under way to: if that
/// dial works, the book must still hold the address that worked.
#[test]
fn a_hint_being_dialed_does_not_make_room() {
    let [b, c, d] = [2, 3, 4].map(|n| identity(n).peer_id());
    let mut trust = TrustList::new();
    for p in [b, c, d] {
        trust.insert(p, None);
    }
    let mut config = Config::default();
    config.max_addresses = 2;
    let rng = Box::new(ChaCha20Rng::seed_from_u64(1));
    let mut a = Endpoint::new(config, identity(1), trust, rng);
    let now = Instant::from_millis(1);
    // b's hint, heard first (the book's worst), is being dialed
    a.add_address(now, b, addr(1), AddrSource::Discovery)
        .unwrap();
    a.add_address(now, c, addr(2), AddrSource::Discovery)
        .unwrap();
    a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(b, addr(1))]);
    a.add_address(now, d, addr(9), AddrSource::Application)
        .unwrap();
    assert!(
        a.addresses(&b).any(|e| e.addr == addr(1)),
        "the hint being dialed stays"
    );
    assert_eq!(a.addresses(&c).count(), 0, "the other hint made room");
}

/// What a LAN host that announces a kept peer's PeerId with addresses of
/// its choosing can make this node do, over ten minutes in which it
/// re-announces false addresses after every dial: each round dials at
/// most `HINTS_PER_ROUND` of them, one at a time (the book holds
/// `max_addresses_per_peer`, 8; the others wait, and those heard during
/// a round wait for the next); each is forgotten at its failure; and the
/// rounds are the backoff apart, which grows to `max_delay` (its last
/// quarter, with jitter). So at most `HINTS_PER_ROUND` connection
/// attempts per 22.5 s in the long run (2 by default), for each kept
/// peer that is not connected. A round used to dial all 8.
#[test]
fn a_lan_host_gets_at_most_one_round_of_dials_per_backoff() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let per_peer = a.config().max_addresses_per_peer;
    let dial = a.config().dial.clone();
    let start = Instant::from_millis(1);
    a.keep_connected(start, b, true).unwrap();
    let mut next_false = 1u16;
    let mut announce = |a: &mut Endpoint, now| {
        while a.addresses(&b).count() < per_peer {
            let _ = a.add_address(now, b, addr(next_false), AddrSource::Discovery);
            next_false += 1;
        }
    };
    let mut now = start;
    announce(&mut a, now);
    let minutes = Duration::from_secs(600);
    let mut rounds: Vec<(Instant, usize)> = Vec::new();
    while now.saturating_duration_since(start) < minutes {
        let mut dialed = 0;
        loop {
            let d = dials(&drain(&mut a));
            assert!(d.len() <= 1, "dials at once: {d:?}");
            let Some(&(_, to)) = d.first() else { break };
            dialed += 1;
            a.dial_failed(now, b, to, refused());
            assert!(a.addresses(&b).all(|e| e.addr != to), "kept after failing");
            announce(&mut a, now);
        }
        rounds.push((now, dialed));
        now = next_deadline(&mut a);
    }
    for (at, dialed) in &rounds {
        assert!(
            *dialed <= HINTS_PER_ROUND,
            "{dialed} dials in the round at {at:?}"
        );
    }
    for pair in rounds.windows(2) {
        let gap = pair[1].0.saturating_duration_since(pair[0].0);
        assert!(gap >= dial.first_min, "rounds {gap:?} apart");
    }
    let (last, before) = (rounds[rounds.len() - 1].0, rounds[rounds.len() - 2].0);
    let cap_floor = dial.max_delay - dial.max_delay / CAP_JITTER_DIVISOR;
    let gap = last.saturating_duration_since(before);
    assert!((cap_floor..=dial.max_delay).contains(&gap), "{gap:?}");
    let total: usize = rounds.iter().map(|r| r.1).sum();
    let steady = (minutes.as_nanos() / cap_floor.as_nanos()) as usize;
    assert!(
        total <= HINTS_PER_ROUND * (steady + 10),
        "{total} dials in {} rounds",
        rounds.len()
    );
}

/// Dials `peer` through `a` once and fails every dial it makes; the
/// ports dialed, in order, and the `Unreachable` report's.
fn dial_and_fail_all(a: &mut Endpoint, peer: PeerId, now: Instant) -> (Vec<u16>, Vec<u16>) {
    a.dial(now, peer).unwrap();
    let mut dialed = Vec::new();
    loop {
        let out = drain(a);
        if let Some(Event::Unreachable { tried, .. }) = events(&out).pop() {
            return (dialed, tried.iter().map(|(t, _)| t.port()).collect());
        }
        let &[(_, to)] = dials(&out).as_slice() else {
            panic!("{out:?}")
        };
        dialed.push(to.port());
        a.dial_failed(now, peer, to, refused());
    }
}

/// A round, the application's own dial too, dials every address the
/// application or a ticket gave and every hint that worked, but only
/// `HINTS_PER_ROUND` of the hints that never worked: the latest heard and
/// the one heard longest ago. The others are dialed by the next rounds,
/// none twice. A dial that joins a round under way counts the hints the
/// round dialed. It used to dial every hint in every round.
#[test]
fn a_round_dials_few_untried_hints_and_every_given_address() {
    let b = identity(2).peer_id();
    let mut a = endpoint(1, &[2]);
    let now = Instant::from_millis(1);
    a.add_address(now, b, addr(1), AddrSource::Application)
        .unwrap();
    a.add_address(now, b, addr(2), AddrSource::Ticket).unwrap();
    a.restore_address(now, b, addr(3), AddrSource::Discovery, AddrHistory::Worked)
        .unwrap();
    add_hints(&mut a, now, b, 10..15);
    assert_eq!(HINTS_PER_ROUND, 2);
    let (dialed, tried) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [3, 1, 2, 14, 10]);
    assert_eq!(tried, dialed, "Unreachable lists what was dialed");
    // (the hints that failed are forgotten; the others get their turn)
    let (dialed, _) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [13, 11, 3, 1, 2]);
    let (dialed, _) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [12, 3, 1, 2]);

    // A dial joining a kept peer's round: no third hint.
    let (mut a, b, now) = kept_by_five_hints();
    a.dial(now, b).unwrap();
    a.dial_failed(now, b, addr(14), refused());
    assert_eq!(dials(&drain(&mut a)), [(b, addr(10))]);
    a.dial_failed(now, b, addr(10), refused());
    let out = drain(&mut a);
    assert!(dials(&out).is_empty(), "{out:?}");
    let Some(Event::Unreachable { tried, .. }) = events(&out).pop() else {
        panic!("{out:?}")
    };
    assert_eq!(tried.len(), 2);
}

/// A round's count of the hints it dialed ends with it: a late transport
/// the schedule adopts during the backoff that follows is a new round's
/// dial, and an application's dial that joins it has the room of a new
/// round for hints. The count used to outlive the round, so such a dial
/// dialed no hint at all and ended `Unreachable` with the book's other
/// hints never tried.
#[test]
fn a_dial_joining_an_adopted_transport_has_a_new_rounds_room() {
    // a kept peer's first round: two hints, both fail; it backs off
    let (mut a, b, now) = kept_by_five_hints();
    a.dial_failed(now, b, addr(14), refused());
    assert_eq!(dials(&drain(&mut a)), [(b, addr(10))]);
    a.dial_failed(now, b, addr(10), refused());
    assert!(dials(&drain(&mut a)).is_empty());
    // during the backoff a late transport to a hint opens and is adopted;
    // the application dials, joining it; the handshake fails
    late_transport_joined_and_lost(&mut a, now, b, addr(12));
    let out = drain(&mut a);
    assert_eq!(dials(&out), [(b, addr(13))], "{out:?}");
}

/// The same once a round ended with a connection: the count of hints it
/// dialed is not the next round's. A's round connects at its second hint;
/// the connection is cut; during the backoff a late transport to a third
/// hint is adopted and the application's dial joins it: once the late
/// handshake and the hint that worked fail, the other hints are dialed.
#[test]
fn a_round_that_connected_leaves_the_next_its_room_for_hints() {
    let mut p = Pair::new();
    let b = p.b.peer_id();
    add_hints(&mut p.a, p.now, b, 10..15);
    p.a.keep_connected(p.now, b, true).unwrap();
    assert_eq!(dials(&p.pump()), [(b, addr(14))]);
    p.a.dial_failed(p.now, b, addr(14), refused());
    assert_eq!(dials(&p.pump()), [(b, addr(10))]);
    p.open(addr(10));
    assert!(p.a.is_connected(&b));
    p.cut();
    assert!(!p.a.is_connected(&b));
    late_transport_joined_and_lost(&mut p.a, p.now, b, addr(12));
    assert_eq!(dials(&p.pump()), [(b, addr(10))]);
    p.a.dial_failed(p.now, b, addr(10), refused());
    let out = p.pump();
    assert_eq!(dials(&out), [(b, addr(13))], "{out:?}");
}

/// A kept peer with one address a peer (`max_addresses_per_peer` 1): its
/// one hint is dialed every round, as before.
#[test]
fn one_address_a_peer_still_dials_its_hint() {
    let mut config = Config::default();
    config.max_addresses_per_peer = 1;
    let b = identity(2).peer_id();
    let mut a = endpoint_with(config, 1, &[2]);
    let now = Instant::from_millis(1);
    a.add_address(now, b, addr(9), AddrSource::Discovery)
        .unwrap();
    let (dialed, _) = dial_and_fail_all(&mut a, b, now);
    assert_eq!(dialed, [9]);
}

/// A hint whose dial is not reported within `dial_timeout` is forgotten
/// (it never worked); if its transport then opens late and the handshake
/// proves the peer there, the book learns the address again, as a hint
/// that worked: false hints do not push it out, and every round dials it
/// once it fails (a partition). The book used to stay without it: the
/// peer connected through an address it did not hold, and after a loss
/// the true hint, heard again, was one untried hint among the false ones.
#[test]
fn a_late_transport_that_connects_is_a_hint_that_worked() {
    let mut p = Pair::new();
    let b = p.b.peer_id();
    p.a.add_address(p.now, b, addr(10), AddrSource::Discovery)
        .unwrap();
    p.a.keep_connected(p.now, b, true).unwrap();
    assert_eq!(dials(&p.pump()), [(b, addr(10))]);
    p.now = next_deadline(&mut p.a);
    assert_eq!(p.a.addresses(&b).count(), 0, "forgotten at its timeout");
    p.open(addr(10));
    assert!(p.a.is_connected(&b));
    let book: Vec<_> = p.a.addresses(&b).collect();
    assert_eq!(book.len(), 1, "{book:?}");
    assert_eq!(book[0].addr, addr(10));
    assert_eq!(book[0].source, AddrSource::Discovery);
    assert!(book[0].worked_last(), "{book:?}");
}

/// A late transport the schedule adopts, to a hint that never worked (a
/// dial that timed out, forgotten), counts as one of its round's
/// `HINTS_PER_ROUND`: an application's dial that joins it dials one more
/// such hint, not two. It used to count for nothing, so the round dialed
/// three hints that never worked.
#[test]
fn an_adopted_late_transport_counts_as_one_of_its_rounds_hints() {
    // a kept peer's first round: the first hint times out, the second is
    // refused; it backs off
    let (mut a, b, _) = kept_by_five_hints();
    let now = next_deadline(&mut a);
    assert_eq!(dials(&drain(&mut a)), [(b, addr(10))]);
    a.dial_failed(now, b, addr(10), refused());
    assert!(dials(&drain(&mut a)).is_empty());
    // the first one's transport opens late and is adopted; the
    // application dials, joining it; the handshake fails
    late_transport_joined_and_lost(&mut a, now, b, addr(14));
    assert_eq!(dials(&drain(&mut a)), [(b, addr(13))]);
    a.dial_failed(now, b, addr(13), refused());
    let out = drain(&mut a);
    assert!(dials(&out).is_empty(), "{out:?}");
}

/// Review s54 (review): an address the schedule dials may leave the book
/// while the dial is out (the application's new address pushes out the
/// peer's worst, which the round dials last); when its handshake then
/// proves the peer, the book learns it again as the address that worked
/// most recently, from its source. It came back as an untried discovery
/// hint, which cannot push out the application's addresses: in the
/// peer's full list, `Full`, and the one address that worked was lost
/// (after a loss, the kept peer was redialed only at the others).
#[test]
fn an_address_dropped_while_dialed_that_worked_is_kept() {
    let (truth, book) = dropped_while_dialed(None);
    assert_eq!(book.len(), Config::default().max_addresses_per_peer);
    let app = AddrSource::Application;
    assert_eq!((book[0].addr, book[0].source), (truth, app), "{book:?}");
    assert!(book[0].worked_last(), "{book:?}");
}

/// The deliberate fault `DialedAddressAsHint` (the old behaviour) loses
/// it.
#[test]
fn an_address_dropped_while_dialed_is_lost_as_a_hint() {
    let (truth, book) = dropped_while_dialed(Some(Fault::DialedAddressAsHint));
    assert!(book.iter().all(|e| e.addr != truth), "{book:?}");
}

/// Node 1 (with `fault`) dials node 2's true address last of a full
/// list of the application's; meanwhile the application gives a new one,
/// which pushes it out; then that dial works. Returns the true address
/// and the book's list of node 2 after.
fn dropped_while_dialed(fault: Option<Fault>) -> (SocketAddr, Vec<AddrEntry>) {
    let mut p = Pair::new();
    let mut config = Config::default();
    config.fault = fault;
    let per_peer = config.max_addresses_per_peer;
    p.a = endpoint_with(config, 1, &[2]);
    let b = p.b.peer_id();
    let now = p.now;
    let app = AddrSource::Application;
    // the peer's true address, failed once: the worst of its list
    let truth = addr(50);
    p.a.add_address(now, b, truth, app).unwrap();
    p.a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut p.a)), [(b, truth)]);
    p.a.dial_failed(now, b, truth, refused());
    // and the others, which worked before (a saved book), fill its places
    for port in 1..u16::try_from(per_peer).unwrap() {
        p.a.restore_address(now, b, addr(port), app, AddrHistory::Worked)
            .unwrap();
    }
    // a round: the others fail, the true one is dialed last
    p.a.dial(now, b).unwrap();
    loop {
        let dialed = dials(&drain(&mut p.a));
        assert_eq!(dialed.len(), 1, "{dialed:?}");
        if dialed[0].1 == truth {
            break;
        }
        p.a.dial_failed(now, b, dialed[0].1, refused());
    }
    // meanwhile the application gives a new address: the worst goes
    assert_eq!(p.a.add_address(now, b, addr(100), app), Ok(true));
    assert!(p.a.addresses(&b).all(|e| e.addr != truth));
    // the dial of the true address works
    p.open(truth);
    assert!(p.a.is_connected(&b));
    (truth, p.a.addresses(&b).copied().collect())
}

/// An address the application removed while the schedule's dial to it
/// was out comes back, once that dial's handshake proved the peer there,
/// as a discovery hint that worked, not as the application's.
#[test]
fn an_address_removed_while_dialed_comes_back_as_a_hint() {
    let mut p = Pair::new();
    let b = p.b.peer_id();
    let now = p.now;
    p.a.add_address(now, b, addr(1), AddrSource::Application)
        .unwrap();
    p.a.dial(now, b).unwrap();
    assert_eq!(dials(&drain(&mut p.a)), [(b, addr(1))]);
    assert!(p.a.remove_address(&b, addr(1)));
    p.open(addr(1));
    assert!(p.a.is_connected(&b));
    let book: Vec<_> = p.a.addresses(&b).copied().collect();
    assert_eq!(book.len(), 1);
    assert_eq!(book[0].source, AddrSource::Discovery, "{book:?}");
    assert!(book[0].worked_last(), "{book:?}");
}

/// Found by the kept-connection simulation (seed 81 of `keep_sim`, a run
/// with the application's directory): a kept peer's dial is not reported
/// within `dial_timeout`, so its round gives up on it and backs off;
/// meanwhile a new address from the application pushes it out of the
/// peer's full list; then its transport opens (late: a lost SYN,
/// retransmitted), the schedule adopts it, and its handshake proves the
/// peer. The book must learn it again from its source, as the address
/// that worked. The source was known only while the dial was `Opening`:
/// it came back as a discovery hint, which cannot push out the
/// application's address, so it was lost (`Full`), the peer connected
/// through an address the book no longer held.
#[test]
fn a_late_transport_to_an_address_dropped_since_comes_back_from_its_source() {
    let mut p = Pair::new();
    let mut config = Config::default();
    config.max_addresses_per_peer = 1;
    p.a = endpoint_with(config, 1, &[2]);
    let b = p.b.peer_id();
    let app = AddrSource::Application;
    let truth = addr(50);
    p.a.add_address(p.now, b, truth, app).unwrap();
    p.a.keep_connected(p.now, b, true).unwrap();
    assert_eq!(dials(&drain(&mut p.a)), [(b, truth)]);
    // not reported in time: failed, and the round backs off
    p.now = next_deadline(&mut p.a);
    assert!(dials(&drain(&mut p.a)).is_empty());
    // the application's new address pushes the failed one out
    assert_eq!(p.a.add_address(p.now, b, addr(100), app), Ok(true));
    assert!(p.a.addresses(&b).all(|e| e.addr != truth));
    // the transport opens late, and its handshake proves the peer
    p.open(truth);
    assert!(p.a.is_connected(&b));
    let book: Vec<AddrEntry> = p.a.addresses(&b).copied().collect();
    assert_eq!(book.len(), 1, "{book:?}");
    assert_eq!((book[0].addr, book[0].source), (truth, app), "{book:?}");
    assert!(book[0].worked_last(), "{book:?}");
}
