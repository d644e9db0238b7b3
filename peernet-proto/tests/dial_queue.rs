//! The line of dials waiting for one of `max_dials_in_flight` slots:
//! every end of a dial moves it, a dial the application asks for is not
//! held back, a late transport taken over counts, and a kept peer's
//! redial waiting in it is announced only when its dial starts.

use std::time::Duration;

use peernet_proto::{
    AddrHistory, AddrSource, Config, Endpoint, Event, Input, Instant, Output, PeerId, TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod support;

use support::dialing::*;
use support::identity;

fn id(n: u8) -> PeerId {
    identity(n).peer_id()
}

fn unreachable(outputs: &[Output], peer: PeerId) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Unreachable { peer: p, .. }) if *p == peer))
}

/// Node 1 trusting `peers` (one address each, port 1000 + id), with at
/// most `max` dials under way.
fn endpoint_max(max: usize, peers: &[u8]) -> Endpoint {
    let mut config = Config::default();
    config.dial.max_dials_in_flight = max;
    let mut trust = TrustList::new();
    for p in peers {
        trust.insert(id(*p), None);
    }
    let rng = Box::new(ChaCha20Rng::seed_from_u64(1));
    let mut ep = Endpoint::new(config, identity(1), trust, rng);
    let now = Instant::from_millis(1);
    for p in peers {
        let at = addr(1000 + u16::from(*p));
        ep.add_address(now, id(*p), at, AddrSource::Application)
            .unwrap();
    }
    ep
}

fn keep(a: &mut Endpoint, now: Instant, peers: &[u8]) {
    for p in peers {
        a.keep_connected(now, id(*p), true).unwrap();
    }
}

/// A late transport taken over while its peer backs off runs its
/// handshake as the round's dial: it counts against the bound (it used
/// not to, and the next peer in line was dialed beside it).
#[test]
fn a_late_transport_taken_over_counts_as_a_dial() {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(1, &[10, 11, 12]);
    keep(&mut a, now, &[10, 11, 12]);
    assert_eq!(dials(&drain(&mut a)), [(id(10), addr(1010))]);
    // 10's dial is not reported in time: it backs off, 11 gets the slot
    let t1 = now + a.config().dial.dial_timeout;
    a.handle_timeout(t1);
    assert_eq!(dials(&drain(&mut a)), [(id(11), addr(1011))]);
    // 10's transport opens late: taken as its round's dial
    a.connect_to(t1, id(10), addr(1010)).unwrap();
    drain(&mut a);
    a.dial_failed(t1, id(11), addr(1011), refused());
    let out = dials(&drain(&mut a));
    assert!(
        out.is_empty(),
        "10's handshake holds the slot, yet dialed {out:?}"
    );
}

/// The `Reconnecting` and `Dial` outputs, in order, as (peer, what).
fn redials(outputs: &[Output]) -> Vec<(PeerId, Option<(u32, Duration)>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Reconnecting {
                peer,
                attempt,
                after,
            }) => Some((*peer, Some((*attempt, *after)))),
            Output::Dial { peer, .. } => Some((*peer, None)),
            _ => None,
        })
        .collect()
}

/// A kept peer's redial whose slot is free is announced right before
/// its dial, in the same turn.
#[test]
fn a_redial_that_dials_at_once_is_announced_with_its_dial() {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(1, &[10]);
    keep(&mut a, now, &[10]);
    assert_eq!(redials(&drain(&mut a)), [(id(10), None)], "silent first");
    a.dial_failed(now, id(10), addr(1010), refused());
    drain(&mut a);
    let t1 = a.poll_timeout().unwrap();
    a.handle_timeout(t1);
    let after = t1.saturating_duration_since(now);
    assert_eq!(
        redials(&drain(&mut a)),
        [(id(10), Some((1, after))), (id(10), None)]
    );
}

/// One dial slot, peers 10 and 11 kept: 10's dial fails, 11's starts,
/// and 10's backoff runs out (at `t1`) while 11's dial holds the slot.
/// Returns the start, the endpoint, `t1` and the outputs at `t1`.
fn ten_waits_behind_eleven() -> (Instant, Endpoint, Instant, Vec<Output>) {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(1, &[10, 11]);
    keep(&mut a, now, &[10, 11]);
    assert_eq!(dials(&drain(&mut a)), [(id(10), addr(1010))]);
    a.dial_failed(now, id(10), addr(1010), refused());
    assert_eq!(dials(&drain(&mut a)), [(id(11), addr(1011))]);
    let t1 = a.poll_timeout().unwrap();
    a.handle_timeout(t1);
    let out = drain(&mut a);
    (now, a, t1, out)
}

/// A kept peer's redial that has to wait in line for a slot is not
/// announced while it waits (no dial has started): it is announced when
/// its dial starts, right before it, with the backoff it waited.
#[test]
fn a_redial_waiting_for_a_slot_is_announced_when_it_dials() {
    let (now, mut a, t1, out) = ten_waits_behind_eleven();
    assert!(redials(&out).is_empty(), "10 only waits in line: {out:?}");
    // 11's dial ends: 10's redial starts now, and only now is announced
    let t2 = t1 + Duration::from_millis(5);
    a.dial_failed(t2, id(11), addr(1011), refused());
    let after = t1.saturating_duration_since(now);
    assert_eq!(
        redials(&drain(&mut a)),
        [(id(10), Some((1, after))), (id(10), None)]
    );
}

/// A redial that waited in line and ends without a dial (its address
/// was forgotten meanwhile) is never announced.
#[test]
fn a_redial_that_never_dials_is_not_announced() {
    let (_, mut a, t1, mut out) = ten_waits_behind_eleven();
    assert!(a.remove_address(&id(10), addr(1010)));
    a.dial_failed(t1, id(11), addr(1011), refused());
    out.extend(drain(&mut a));
    assert!(redials(&out).is_empty(), "{out:?}");
}

/// First come first served: a peer that stopped waiting and waits again
/// is served after those that waited meanwhile.
#[test]
fn a_peer_that_waits_again_takes_a_new_place_in_line() {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(1, &[10, 11, 12]);
    keep(&mut a, now, &[10, 11, 12]);
    assert_eq!(dials(&drain(&mut a)), [(id(10), addr(1010))]);
    a.keep_connected(now, id(11), false).unwrap();
    a.keep_connected(now, id(11), true).unwrap();
    assert!(dials(&drain(&mut a)).is_empty());
    a.dial_failed(now, id(10), addr(1010), refused());
    assert_eq!(dials(&drain(&mut a)), [(id(12), addr(1012))]);
}

/// A dial the application asks for (`dial`, `Node::connect_peer`) is not
/// held back behind the background redials of kept peers, also when the
/// peer was waiting in line; it counts against them.
#[test]
fn a_dial_asked_for_is_not_held_back() {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(2, &[10, 11, 12, 13, 20]);
    keep(&mut a, now, &[10, 11, 12, 13]);
    assert_eq!(dials(&drain(&mut a)).len(), 2);
    a.dial(now, id(20)).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(id(20), addr(1020))]);
    // 12 waits in line; asked for, it goes now
    a.dial(now, id(12)).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(id(12), addr(1012))]);
    // four dials under way: 13 waits until three of them end
    a.dial_failed(now, id(20), addr(1020), refused());
    a.dial_failed(now, id(12), addr(1012), refused());
    assert!(dials(&drain(&mut a)).is_empty());
    a.dial_failed(now, id(10), addr(1010), refused());
    assert_eq!(dials(&drain(&mut a)), [(id(13), addr(1013))]);
}

/// A one-off dial that waited in line still ends in `Unreachable`, also
/// when its addresses were forgotten meanwhile; it does not hold the
/// line.
#[test]
fn a_dial_that_waited_still_reports_unreachable() {
    let now = Instant::from_millis(1);
    let mut a = endpoint_max(1, &[10, 11, 12]);
    keep(&mut a, now, &[10, 11]);
    assert_eq!(dials(&drain(&mut a)), [(id(10), addr(1010))]);
    // 11 waits as a kept peer; then the application's dial of 12 goes
    // at once, and 11's address is forgotten meanwhile
    a.dial(now, id(12)).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(id(12), addr(1012))]);
    a.dial_failed(now, id(12), addr(1012), refused());
    assert!(unreachable(&drain(&mut a), id(12)));
    assert!(a.remove_address(&id(11), addr(1011)));
    a.dial_failed(now, id(10), addr(1010), refused());
    let out = drain(&mut a);
    assert!(dials(&out).is_empty(), "{:?}", dials(&out));
}

/// Unpair, keep_connected(false), a failed handshake and a handshake
/// timeout each free the slot: the line moves on.
#[test]
fn every_end_of_a_dial_moves_the_line() {
    let now = Instant::from_millis(1);
    let peers: Vec<u8> = (10..16).collect();
    let mut a = endpoint_max(1, &peers);
    keep(&mut a, now, &peers);
    let mut seen = vec![];
    let mut next = dials(&drain(&mut a));
    let (p, _) = next[0];
    seen.push(p);
    a.unpair(now, &p);
    next = dials(&drain(&mut a));
    assert_eq!(next.len(), 1, "after unpair");
    let (p, _) = next[0];
    seen.push(p);
    a.keep_connected(now, p, false).unwrap();
    next = dials(&drain(&mut a));
    assert_eq!(next.len(), 1, "after unkeep");
    let (p, at) = next[0];
    seen.push(p);
    let conn = a.connect_to(now, p, at).unwrap();
    a.handle_input(now, Input::Closed { conn });
    next = dials(&drain(&mut a));
    assert_eq!(next.len(), 1, "after a failed handshake");
    let (p, at) = next[0];
    seen.push(p);
    a.connect_to(now, p, at).unwrap();
    drain(&mut a);
    a.handle_timeout(now + a.config().handshake_timeout + Duration::from_millis(1));
    next = dials(&drain(&mut a));
    assert_eq!(next.len(), 1, "after a handshake timeout");
    assert_eq!(seen, [id(10), id(11), id(12), id(13)]);
}

/// At the book's total, a hint of a peer with other addresses makes room
/// first, and of those an untried one (anyone on the LAN can announce
/// one) before one that worked once.
#[test]
fn at_the_total_an_untried_hint_goes_before_a_proven_one() {
    let now = Instant::from_millis(1);
    let mut config = Config::default();
    config.max_addresses = 3;
    let mut trust = TrustList::new();
    for p in [10, 11, 12] {
        trust.insert(id(p), None);
    }
    let rng = Box::new(ChaCha20Rng::seed_from_u64(1));
    let mut a = Endpoint::new(config, identity(1), trust, rng);
    let proven = addr(1);
    a.restore_address(
        now,
        id(10),
        proven,
        AddrSource::Discovery,
        AddrHistory::Worked,
    )
    .unwrap();
    a.dial(now, id(10)).unwrap();
    assert_eq!(dials(&drain(&mut a)), [(id(10), proven)]);
    a.dial_failed(now, id(10), proven, refused());
    drain(&mut a);
    for port in [2, 3] {
        a.add_address(now, id(11), addr(port), AddrSource::Discovery)
            .unwrap();
    }
    a.add_address(now, id(12), addr(4), AddrSource::Application)
        .unwrap();
    assert_eq!(a.addresses(&id(10)).count(), 1, "the proven hint stays");
    assert_eq!(a.addresses(&id(11)).count(), 1);
}
