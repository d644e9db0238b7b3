//! A core call round trip, without I/O: two endpoints joined in memory,
//! `N` calls one after another (CALL, the callee's reply, REPLY), each
//! with a timeout, over version 2 (or version 1 with `v1` as the second
//! argument). A plain `main` with a fixed count, so that an instruction
//! counter gives repeatable per-call figures:
//!
//! ```sh
//! cargo bench -p peernet-proto --bench call_round_trip --no-run
//! for n in 10000 20000; do valgrind --tool=callgrind \
//!     --callgrind-out-file=/tmp/cg.$n target/release/deps/call_round_trip-* $n; done
//! # per call = (Ir at 20000 - Ir at 10000) / 10000
//! ```

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{ConnId, Endpoint, Event, Input, Instant, Output, ProtocolVersion, Response};
use peernet_testkit::setup::{endpoint, identity, test_config};

/// Moves every output of `from` to `to` (bytes on the one link), and
/// hands back the events.
fn pump(from: &mut Endpoint, to: &mut Endpoint, to_conn: ConnId, now: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(output) = from.poll_output() {
        match output {
            Output::Transmit(conn) => {
                if let Some(data) = from.poll_transmit(conn) {
                    to.handle_input(
                        now,
                        Input::Received {
                            conn: to_conn,
                            data: data.into(),
                        },
                    );
                }
            }
            Output::Event(event) => events.push(event),
            Output::Close { .. } => panic!("the link closed"),
            Output::Dial { .. } => {}
        }
    }
    events
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(10_000, |a| a.parse().expect("a count"));
    let mut config = test_config();
    config.version = match args.next().as_deref() {
        Some("v1") => ProtocolVersion::V1,
        _ => ProtocolVersion::V2,
    };
    let (ia, ib) = (identity(1), identity(2));
    let (pa, pb) = (ia.peer_id(), ib.peer_id());
    let mut a = endpoint(config.clone(), ia, &[pb], 1);
    let mut b = endpoint(config, ib, &[pa], 2);
    b.expose("echo", peernet_proto::Access::Anyone).unwrap();
    let now = Instant::from_millis(1_000);
    let ca = a.connect(now, Some(pb)).unwrap();
    let cb = b.accept(now).unwrap();
    for _ in 0..4 {
        pump(&mut a, &mut b, cb, now);
        pump(&mut b, &mut a, ca, now);
    }
    assert!(a.is_connected(&pb) && b.is_connected(&pa), "no handshake");
    let args = [7u8; 64];
    let started = std::time::Instant::now();
    for _ in 0..n {
        let id = a
            .call(now, &pb, "echo", &args, Some(Duration::from_secs(5)))
            .unwrap();
        let early = pump(&mut a, &mut b, cb, now);
        assert!(early.is_empty(), "caller events before the reply");
        for event in pump(&mut b, &mut a, ca, now) {
            let Event::Call(call) = event else { continue };
            assert!(b.reply(now, call.id, Response::Ok(call.args)));
        }
        let mut resolved = false;
        pump(&mut b, &mut a, ca, now);
        for event in pump(&mut a, &mut b, cb, now) {
            if let Event::CallResult { id: got, result } = event {
                assert_eq!(got, id);
                black_box(result.expect("echo"));
                resolved = true;
            }
        }
        assert!(resolved, "call {id:?} did not resolve");
    }
    let per_call = started.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    eprintln!("{n} round trips, {per_call:?} per call");
    black_box(Bytes::new());
}
