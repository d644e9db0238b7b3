//! Properties of whole sessions: any split or coalescing of the byte
//! stream yields the same events, and arbitrary bytes fed to a responder,
//! an initiator or an established connection never panic and never make
//! the core buffer more than one frame.

mod support;

use std::time::Duration;

use bytes::Bytes;
// The handshake frame limit of both versions: version 2's INIT (a
// version-1 node reads one whole to answer `unsupported_version`).
use peernet_proto::testkit::noise::INIT_LEN;
const MAX_HANDSHAKE_FRAME: u32 = INIT_LEN as u32;
use peernet_proto::{Access, Config, Event, Input, Response};
use proptest::prelude::*;
use support::{Pair, Who, test_config_v2};

/// Runs one scripted session, on version 2 or 1, over links that
/// deliver in chunks of `splits` (cycled; empty = whole buffers) and
/// returns each side's events in order.
fn session(v2: bool, splits: Vec<usize>) -> (Vec<Event>, Vec<Event>) {
    let mut p = pair(v2);
    p.net.splits = splits;
    p.a.ep.expose("echo", Access::Anyone).unwrap();
    p.b.ep.expose("echo", Access::Anyone).unwrap();
    p.b.ep.expose("chat", Access::Anyone).unwrap();
    p.dial(Who::A);
    p.drive();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    let (a, b) = (p.id(Who::A), p.id(Who::B));
    for round in 0..4u8 {
        let now = p.now;
        let sizes = [0usize, 64, 1024, 70_000];
        for (i, size) in sizes.iter().enumerate() {
            let args = Bytes::from(vec![round ^ i as u8; *size]);
            p.a.ep
                .call(now, &b, "echo", &args, Some(Duration::from_secs(5)))
                .unwrap();
            p.b.ep.call(now, &a, "echo", &args, None).unwrap();
        }
        p.a.ep.send(now, &b, "chat", b"hi").unwrap();
        p.a.ep.call(now, &b, "hidden", b"", None).unwrap();
        p.drive();
        // both sides answer every call they got, in reverse order
        for who in [Who::A, Who::B] {
            let events = p.take_events(who);
            let calls: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Call(c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            for c in calls.iter().rev() {
                let now = p.now;
                p.node(who)
                    .ep
                    .reply(now, c.id, Response::Ok(c.args.clone()));
            }
            match who {
                Who::A => ea.extend(events),
                Who::B => eb.extend(events),
            }
        }
        p.drive();
        // idle long enough for pings both ways
        p.advance(Duration::from_secs(20));
    }
    let now = p.now;
    p.a.ep.disconnect(now, &b);
    p.drive();
    ea.extend(p.take_events(Who::A));
    eb.extend(p.take_events(Who::B));
    (ea, eb)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_split_or_coalescing_yields_the_same_events(
        splits in prop::collection::vec(1usize..200, 1..8),
        v2 in any::<bool>(),
    ) {
        let whole = session(v2, Vec::new());
        prop_assert!(whole.0.len() > 20, "the script exercises the session");
        let split = session(v2, splits);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
    }

    #[test]
    fn arbitrary_bytes_into_a_responder(
        h in hostile(),
    ) {
        let mut p = pair(h.v2);
        let (now, b) = (p.now, p.id(Who::B));
        // what a real initiator sends first, for the forms built on it
        let dialed = p.a.ep.connect(now, Some(b)).unwrap();
        let real = flight(&mut p, Who::A, dialed);
        let conn = p.b.ep.accept(now).unwrap();
        let wire = shaped(h.form, &real, &h.data, &h.flips);
        feed(&mut p, Who::B, conn, &wire, &h.chunks, MAX_HANDSHAKE_FRAME);
    }

    #[test]
    fn arbitrary_bytes_into_an_initiator_after_its_hello(
        h in hostile(),
    ) {
        let mut p = pair(h.v2);
        let (now, b) = (p.now, p.id(Who::B));
        let conn = p.a.ep.connect(now, Some(b)).unwrap();
        // the real responder's answer to this very dial
        let hello = flight(&mut p, Who::A, conn);
        let accepted = p.b.ep.accept(now).unwrap();
        p.b.ep.handle_input(now, Input::Received { conn: accepted, data: Bytes::from(hello).into() });
        let real = flight(&mut p, Who::B, accepted);
        prop_assert!(!real.is_empty(), "the responder answers");
        let wire = shaped(h.form, &real, &h.data, &h.flips);
        feed(&mut p, Who::A, conn, &wire, &h.chunks, MAX_HANDSHAKE_FRAME);
    }

    #[test]
    fn arbitrary_bytes_into_an_established_connection(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        framed in any::<bool>(),
        chunks in prop::collection::vec(1usize..512, 1..8),
    ) {
        let mut p = Pair::connected();
        p.b.ep.expose("echo", Access::Anyone).unwrap();
        let conn = p.net.links[0].b();
        // half the cases wrap the bytes in a valid frame header so they
        // reach the envelope decoder
        let mut wire = Vec::new();
        if framed && !data.is_empty() {
            wire.extend_from_slice(&(data.len() as u32).to_be_bytes());
        }
        wire.extend_from_slice(&data);
        let max = p.b.ep.config().max_frame_len;
        feed(&mut p, Who::B, conn, &wire, &chunks, max);
    }
}

/// Everything `who` has to send on `conn` now.
fn flight(p: &mut Pair, who: Who, conn: peernet_proto::ConnId) -> Vec<u8> {
    while p.node(who).ep.poll_output().is_some() {}
    let mut out = Vec::new();
    while let Some(bytes) = p.node(who).ep.poll_transmit(conn) {
        out.extend_from_slice(&bytes);
    }
    out
}

/// The bytes a property feeds, by `form`: `data` as it is (which the
/// frame header check refuses almost always); `real` with a few bytes
/// changed (`flips`: position, xor), which reaches the handshake's
/// parsers and checks; or `real` cut short, or with `data` after it.
fn shaped(form: u8, real: &[u8], data: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    match form {
        0 => data.to_vec(),
        1 => {
            let mut wire = real.to_vec();
            for &(at, xor) in flips {
                if !wire.is_empty() {
                    let at = at % wire.len();
                    wire[at] ^= xor.max(1);
                }
            }
            wire
        }
        _ => {
            let cut = flips
                .first()
                .map_or(real.len(), |&(at, _)| at % (real.len() + 1));
            let mut wire = real[..cut].to_vec();
            wire.extend_from_slice(data);
            wire
        }
    }
}

/// What a handshake property feeds: see [`shaped`] for `form`, `data`
/// and `flips`; `chunks` the sizes it is read in; `v2` the version.
#[derive(Debug, Clone)]
struct Hostile {
    data: Vec<u8>,
    form: u8,
    flips: Vec<(usize, u8)>,
    chunks: Vec<usize>,
    v2: bool,
}

prop_compose! {
    fn hostile()(
        data in prop::collection::vec(any::<u8>(), 0..600),
        form in 0u8..3,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        chunks in prop::collection::vec(1usize..64, 1..8),
        v2 in any::<bool>(),
    ) -> Hostile {
        Hostile { data, form, flips, chunks, v2 }
    }
}

/// Two endpoints that trust each other, of version 2 or 1.
fn pair(v2: bool) -> Pair {
    match v2 {
        true => Pair::with(test_config_v2(), test_config_v2(), true, true),
        false => Pair::new(),
    }
}

fn feed(
    p: &mut Pair,
    who: Who,
    conn: peernet_proto::ConnId,
    data: &[u8],
    chunks: &[usize],
    max_frame: u32,
) {
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks[i % chunks.len()].min(rest.len());
        i += 1;
        let now = p.now;
        p.node(who).ep.handle_input(
            now,
            Input::Received {
                conn,
                data: Bytes::copy_from_slice(&rest[..n]).into(),
            },
        );
        rest = &rest[n..];
        while p.node(who).ep.poll_output().is_some() {}
        let stats = p.node(who).ep.stats();
        assert!(
            stats.max_buffered_input_per_conn <= max_frame as usize + 4,
            "{stats:?}"
        );
        let limits: &Config = p.node(who).ep.config();
        assert!(stats.inbound_calls <= limits.max_inbound_calls);
    }
    // time passing afterwards never panics either
    p.advance(Duration::from_secs(60));
}
