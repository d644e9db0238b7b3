//! Issue 13, limit 5: an accepted transport has `first_frame_timeout`
//! (not the whole `handshake_timeout`) to deliver its first complete
//! handshake frame; sockets that send nothing give their handshake slot
//! back early, with a bare close.

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{ConnId, Event, HandshakeError, ProtocolVersion};
use peernet_testkit::{Action, Node, test_config};

const MS: Duration = Duration::from_millis(1);

/// `a` and `b` trusting each other, `b` with `slots` handshake slots.
fn pair(version: ProtocolVersion, slots: usize) -> (Node, Node) {
    let mut config = test_config();
    assert_eq!(config.first_frame_timeout, Duration::from_secs(2));
    config.version = version;
    config.max_handshakes = slots;
    Node::checked_pair(config.clone(), config)
}

/// [`pair`] on version 1 with the default slots.
fn nodes() -> (Node, Node) {
    pair(ProtocolVersion::V1, test_config().max_handshakes)
}

/// `a`'s first frame on a new dial to `b`.
fn first_frame(a: &mut Node, b: &Node) -> (ConnId, Bytes) {
    let dial = a.connect(Some(b.me())).unwrap();
    a.pump();
    let first = a.take(dial).unwrap();
    (dial, first)
}

/// The bytes `conn` was closed with, if `actions` closed it.
fn closed(actions: &[Action], conn: ConnId) -> Option<Bytes> {
    actions.iter().find_map(|a| match a {
        Action::Close(c, last) if *c == conn => Some(last.clone()),
        _ => None,
    })
}

/// Whether `actions` report `conn`'s handshake failed with `error`.
fn failed_with(actions: &[Action], conn: ConnId, error: &HandshakeError) -> bool {
    actions.iter().any(|a| {
        matches!(a, Action::Event(Event::HandshakeFailed { conn: c, error: e, .. }) if *c == conn && e == error)
    })
}

fn timed_out(actions: &[Action], conn: ConnId) -> bool {
    failed_with(actions, conn, &HandshakeError::Timeout)
}

#[test]
fn a_silent_socket_is_closed_at_the_first_frame_deadline() {
    let (_, mut b) = nodes();
    let conn = b.accept().unwrap();
    b.pump();
    assert_eq!(b.ep.stats().inbound_handshakes, 1);
    b.advance(Duration::from_secs(2) - MS);
    assert!(
        closed(&b.pump(), conn).is_none(),
        "open before the deadline"
    );
    b.advance(MS);
    let actions = b.pump();
    assert_eq!(closed(&actions, conn), Some(Bytes::new()), "a bare close");
    assert!(timed_out(&actions, conn));
    assert_eq!(b.ep.stats().inbound_handshakes, 0, "the slot is free");
    assert_eq!(b.ep.stats().timers, 0);
}

#[test]
fn a_partial_frame_does_not_count() {
    let (mut a, mut b) = nodes();
    let (_, hello) = first_frame(&mut a, &b);
    let conn = b.accept().unwrap();
    b.advance(Duration::from_secs(1));
    b.receive(conn, hello.slice(..hello.len() - 1));
    assert!(closed(&b.pump(), conn).is_none());
    b.advance(Duration::from_secs(1));
    assert_eq!(closed(&b.pump(), conn), Some(Bytes::new()));
}

/// A HELLO that comes late in the first-frame budget is answered, not cut
/// at that deadline; but then the PROOF is due one round trip after
/// WELCOME (`first_frame_timeout`), as version 2's first record is after
/// RESP. A HELLO proves nothing: anyone who knows a trusted PeerId can
/// send one, and it used to hold its handshake slot (one that has
/// spoken, so never evicted) for the whole `handshake_timeout`, 10 s,
/// where version 2's replayed INIT held it 2 s.
#[test]
fn after_hello_the_proof_is_due_within_the_first_frame_timeout() {
    let (mut a, mut b) = nodes();
    let (_, hello) = first_frame(&mut a, &b);
    let conn = b.accept().unwrap();
    b.advance(Duration::from_millis(1500));
    b.receive(conn, hello);
    // b answers; a's PROOF never comes
    assert!(closed(&b.pump(), conn).is_none());
    b.advance(Duration::from_secs(2) - MS);
    assert!(closed(&b.pump(), conn).is_none(), "alive past 2 s");
    assert_eq!(b.ep.stats().timers, 1, "one handshake deadline");
    b.advance(MS);
    let actions = b.pump();
    assert!(closed(&actions, conn).is_some(), "closed 2 s after WELCOME");
    assert!(timed_out(&actions, conn));
    assert_eq!(b.ep.stats().inbound_handshakes, 0, "the slot is free");
    assert_eq!(b.ep.stats().timers, 0);
}

/// An honest PROOF within that time establishes the connection.
#[test]
fn a_proof_within_the_first_frame_timeout_is_taken() {
    let (mut a, mut b) = nodes();
    let (dial, hello) = first_frame(&mut a, &b);
    let conn = b.accept().unwrap();
    b.advance(Duration::from_millis(1500));
    b.receive(conn, hello);
    b.pump();
    let welcome = b.take(conn).expect("WELCOME");
    b.advance(Duration::from_secs(2) - MS);
    a.receive(dial, welcome);
    a.pump();
    let proof = a.take(dial).expect("PROOF");
    b.receive(conn, proof);
    let actions = b.pump();
    assert!(closed(&actions, conn).is_none());
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Event(Event::Connected { conn: c, .. }) if *c == conn))
    );
}

// ----- every slot taken -----

#[test]
fn a_new_connection_takes_the_slot_of_the_oldest_silent_one() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (mut a, mut b) = pair(version, 3);
        let silent: Vec<ConnId> = (0..3)
            .map(|_| {
                b.advance(MS);
                b.accept().unwrap()
            })
            .collect();
        b.pump();
        assert_eq!(b.ep.stats().inbound_handshakes, 3);
        // a partial frame does not save the oldest
        let (dial, first) = first_frame(&mut a, &b);
        b.receive(silent[0], first.slice(..3));
        b.pump();
        let conn = b.accept().unwrap();
        let actions = b.pump();
        assert_eq!(
            closed(&actions, silent[0]),
            Some(Bytes::new()),
            "a bare close"
        );
        assert!(failed_with(&actions, silent[0], &HandshakeError::Evicted));
        assert!(b.is_open(silent[1]) && b.is_open(silent[2]), "one evicted");
        assert_eq!(b.ep.stats().inbound_handshakes, 3);
        let counted = b.ep.counters().handshakes_in;
        assert_eq!((counted.evicted, counted.failures()), (1, 1));
        // the newcomer is served, not refused `busy`
        b.receive(conn, first);
        assert!(a.shake(dial, &mut b, conn), "{version:?}");
        // its slot is free again; once all are taken, the next oldest
        // silent one goes next
        assert_eq!(b.ep.stats().inbound_handshakes, 2);
        let later = b.accept().unwrap();
        assert!(b.pump().iter().all(|a| !matches!(a, Action::Close(..))));
        let latest = b.accept().unwrap();
        let actions = b.pump();
        assert!(failed_with(&actions, silent[1], &HandshakeError::Evicted));
        assert!(b.is_open(silent[2]) && b.is_open(later) && b.is_open(latest));
    }
}

#[test]
fn connections_that_spoke_keep_their_slots() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (mut a, mut b) = pair(version, 2);
        // two handshakes whose first frame came: each waits for a's next
        let spoke: Vec<ConnId> = (0..2)
            .map(|_| {
                let (_, first) = first_frame(&mut a, &b);
                let conn = b.accept().unwrap();
                b.receive(conn, first);
                b.pump();
                conn
            })
            .collect();
        assert_eq!(b.ep.stats().inbound_handshakes, 2);
        let conn = b.accept().unwrap();
        b.pump();
        assert!(spoke.iter().all(|c| b.is_open(*c)), "{version:?}");
        let (_, first) = first_frame(&mut a, &b);
        b.receive(conn, first);
        let actions = b.pump();
        let busy = HandshakeError::Refused(peernet_proto::RejectCode::Busy);
        assert!(failed_with(&actions, conn, &busy), "{version:?}");
        assert_eq!(b.ep.counters().handshakes_in.evicted, 0);
    }
}

/// PROTOCOL.md 6.1 step 2.3 judges `busy` when the first frame comes,
/// not at accept: a connection accepted while every slot was held by a
/// handshake that spoke, whose first frame comes after that handshake
/// ended, takes the freed slot and is served.
#[test]
fn a_slot_freed_before_the_first_frame_is_taken_then() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (mut a, mut b) = pair(version, 1);
        let (_, spoke_first) = first_frame(&mut a, &b);
        let spoke = b.accept().unwrap();
        b.receive(spoke, spoke_first);
        b.pump();
        let late = b.accept().unwrap();
        b.pump();
        assert_eq!(b.ep.stats().inbound_handshakes, 1, "{version:?}");
        // the handshake holding the slot ends; then the late one speaks
        b.transport_closed(spoke);
        b.pump();
        assert_eq!(b.ep.stats().inbound_handshakes, 0, "{version:?}");
        let (dial, first) = first_frame(&mut a, &b);
        b.receive(late, first);
        assert!(a.shake(dial, &mut b, late), "{version:?}: refused busy");
        assert_eq!(b.ep.stats().inbound_handshakes, 0);
    }
}
