//! Issue 13, limit 5: an accepted transport has `first_frame_timeout`
//! (not the whole `handshake_timeout`) to deliver its first complete
//! handshake frame; sockets that send nothing give their handshake slot
//! back early, with a bare close.

use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{ConnId, Event, HandshakeError};
use peernet_testkit::{Action, Node, identity, test_config};

const MS: Duration = Duration::from_millis(1);

fn nodes() -> (Node, Node) {
    let (ia, ib) = (identity(1), identity(2));
    let config = test_config();
    assert_eq!(config.first_frame_timeout, Duration::from_secs(2));
    let a = Node::checked(config.clone(), &[1; 32], &[ib.peer_id()], 1);
    let b = Node::checked(config, &[2; 32], &[ia.peer_id()], 2);
    (a, b)
}

/// The bytes `conn` was closed with, if `actions` closed it.
fn closed(actions: &[Action], conn: ConnId) -> Option<Bytes> {
    actions.iter().find_map(|a| match a {
        Action::Close(c, last) if *c == conn => Some(last.clone()),
        _ => None,
    })
}

fn timed_out(actions: &[Action], conn: ConnId) -> bool {
    actions.iter().any(|a| {
        matches!(a, Action::Event(Event::HandshakeFailed { conn: c, error: HandshakeError::Timeout, .. }) if *c == conn)
    })
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
    let dial = a.connect(Some(b.me())).unwrap();
    a.pump();
    let hello = a.take(dial).unwrap();
    let conn = b.accept().unwrap();
    b.advance(Duration::from_secs(1));
    b.receive(conn, hello.slice(..hello.len() - 1));
    assert!(closed(&b.pump(), conn).is_none());
    b.advance(Duration::from_secs(1));
    assert_eq!(closed(&b.pump(), conn), Some(Bytes::new()));
}

#[test]
fn after_the_first_frame_the_whole_handshake_budget_applies() {
    let (mut a, mut b) = nodes();
    let dial = a.connect(Some(b.me())).unwrap();
    a.pump();
    let hello = a.take(dial).unwrap();
    let conn = b.accept().unwrap();
    b.advance(Duration::from_millis(1500));
    b.receive(conn, hello);
    // b answers; a's next message never comes
    assert!(closed(&b.pump(), conn).is_none());
    b.advance(Duration::from_secs(8) - MS);
    assert!(closed(&b.pump(), conn).is_none(), "alive past 2 s");
    assert_eq!(b.ep.stats().timers, 1, "one handshake deadline");
    b.advance(Duration::from_millis(500) + MS);
    let actions = b.pump();
    assert!(closed(&actions, conn).is_some(), "closed at 10 s");
    assert!(timed_out(&actions, conn));
}
