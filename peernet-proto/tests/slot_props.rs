//! Property: the handshake slots (`Config::max_handshakes`) under any mix
//! of connections that stay silent, drip part of a frame, speak, or close,
//! follow a model of the rule exactly: a new connection takes a free
//! slot, or else the slot of the oldest silent one (which ends
//! `Evicted`), or else is `busy` until its bytes come, when it takes a
//! slot freed since or is refused `busy`; a connection that spoke keeps
//! its slot.

use std::collections::BTreeMap;

use peernet_proto::{ConnId, Event, HandshakeError, Input, ProtocolVersion, RejectCode};
use peernet_testkit::{Action, Node, test_config};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A transport is accepted.
    Accept,
    /// The n-th open connection that has said nothing delivers a whole
    /// first frame (a trusted peer's HELLO or INIT).
    Speak(usize),
    /// The n-th open connection that has said nothing delivers 3 bytes
    /// of one (and never more).
    Drip(usize),
    /// The n-th open connection's transport closes.
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Accept),
        2 => any::<usize>().prop_map(Op::Speak),
        1 => any::<usize>().prop_map(Op::Drip),
        1 => any::<usize>().prop_map(Op::Close),
    ]
}

/// What the model expects of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Holds a slot, has said nothing (or part of a frame).
    Silent { dripped: bool },
    /// Holds a slot, its first frame came.
    Spoke,
    /// Accepted `busy`, has said nothing.
    Busy { dripped: bool },
}

/// Runs `ops` against a responder with `slots` handshake slots; checks
/// every handshake that ended, and the slot count, after each.
fn run(version: ProtocolVersion, slots: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut config = test_config();
    config.version = version;
    config.max_handshakes = slots;
    let (mut a, mut b) = Node::checked_pair(config.clone(), config);
    // in accept order: ConnId order
    let mut model: BTreeMap<ConnId, Slot> = BTreeMap::new();
    let mut evictions = 0u64;
    for op in ops {
        let mut expected: BTreeMap<ConnId, HandshakeError> = BTreeMap::new();
        match *op {
            Op::Accept => {
                let holders = model
                    .values()
                    .filter(|s| !matches!(s, Slot::Busy { .. }))
                    .count();
                let oldest_silent = model
                    .iter()
                    .find(|(_, s)| matches!(s, Slot::Silent { .. }))
                    .map(|(c, _)| *c);
                let slot = if holders < slots {
                    Slot::Silent { dripped: false }
                } else if let Some(oldest) = oldest_silent {
                    model.remove(&oldest);
                    expected.insert(oldest, HandshakeError::Evicted);
                    Slot::Silent { dripped: false }
                } else {
                    Slot::Busy { dripped: false }
                };
                let conn = b.accept().expect("accepted");
                model.insert(conn, slot);
            }
            Op::Speak(n) | Op::Drip(n) => {
                let quiet: Vec<ConnId> = model
                    .iter()
                    .filter(|(_, s)| {
                        matches!(
                            s,
                            Slot::Silent { dripped: false } | Slot::Busy { dripped: false }
                        )
                    })
                    .map(|(c, _)| *c)
                    .collect();
                if quiet.is_empty() {
                    continue;
                }
                let conn = quiet[n % quiet.len()];
                let dial = a.connect(Some(b.me())).expect("dial");
                a.pump();
                let first = a.take(dial).expect("first frame");
                // `busy` is judged when bytes come: a slot freed since
                // the accept is taken then
                let free = model
                    .values()
                    .filter(|s| !matches!(s, Slot::Busy { .. }))
                    .count()
                    < slots;
                let slot = model.get_mut(&conn).expect("modelled");
                let busy = matches!(slot, Slot::Busy { .. }) && !free;
                if let Op::Drip(_) = op {
                    b.receive(conn, first.slice(..3));
                    *slot = match busy {
                        true => Slot::Busy { dripped: true },
                        false => Slot::Silent { dripped: true },
                    };
                } else {
                    b.receive(conn, first);
                    if busy {
                        model.remove(&conn);
                        expected.insert(conn, HandshakeError::Refused(RejectCode::Busy));
                    } else {
                        *slot = Slot::Spoke;
                    }
                }
            }
            Op::Close(n) => {
                let open: Vec<ConnId> = model.keys().copied().collect();
                if open.is_empty() {
                    continue;
                }
                let conn = open[n % open.len()];
                model.remove(&conn);
                expected.insert(conn, HandshakeError::TransportLost);
                let now = b.now;
                b.ep.handle_input(now, Input::Closed { conn });
            }
        }
        let ended: BTreeMap<ConnId, HandshakeError> = b
            .pump()
            .into_iter()
            .filter_map(|action| match action {
                Action::Event(Event::HandshakeFailed { conn, error, .. }) => Some((conn, error)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&ended, &expected, "after {:?}", op);
        let holders = model
            .values()
            .filter(|s| !matches!(s, Slot::Busy { .. }))
            .count();
        prop_assert_eq!(b.ep.stats().inbound_handshakes, holders, "after {:?}", op);
        evictions += expected
            .values()
            .filter(|e| **e == HandshakeError::Evicted)
            .count() as u64;
        prop_assert_eq!(b.ep.counters().handshakes_in.evicted, evictions);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn slots_follow_the_eviction_rule(
        v2 in any::<bool>(),
        slots in 1usize..5,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let version = if v2 { ProtocolVersion::V2 } else { ProtocolVersion::V1 };
        run(version, slots, &ops)?;
    }
}
