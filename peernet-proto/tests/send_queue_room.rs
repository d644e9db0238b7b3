//! What a connection's send queue keeps once a burst has gone out.
//!
//! A peer that floods PINGs (or CALLs refused at once) while it reads
//! slowly makes its connection queue PONGs (or REPLYs) up to the hard
//! send cap, 16 MiB by default. Once the peer read them all, the queue's
//! buffer used to stay allocated, whole, for as long as the connection
//! lived: the queue took its bytes out of it by splitting, so it still
//! shared the allocation, and reclaimed all of it at its next envelope.
//! A peer could leave the node holding some 16 to 32 MiB for nothing,
//! for as long as it stayed connected and idle.
//!
//! Its own test binary: it counts this process's live heap bytes.

mod support;

use peernet_proto::{Config, Envelope, Input};
use support::{Pair, Who, test_config, test_config_v2};

#[global_allocator]
static HEAP: peernet_testkit::heap::Counting = peernet_testkit::heap::Counting;

/// PONGs B queues before its peer reads any: 6 to 8 MiB.
const PINGS: usize = 560_000;

/// PINGs A writes at a time.
const ROUND: usize = 4096;

/// A floods B with PINGs whose PONGs B cannot send (nothing takes its
/// queue), then takes B's queue once, as a peer that reads it all at
/// last: what B's side keeps allocated afterwards.
fn kept_after_a_burst(config: Config) -> isize {
    let mut p = Pair::with(config.clone(), config, true, true);
    let link = p.dial(Who::A);
    p.drive();
    let (a, b, now) = (p.net.links[link].a(), p.net.links[link].b(), p.now);
    let before = peernet_testkit::heap::live();
    let ping = Envelope::Ping { nonce: u64::MAX };
    for _ in 0..PINGS / ROUND {
        for _ in 0..ROUND {
            assert!(p.a.ep.testkit_queue_envelope(now, a, &ping));
        }
        let wire = p.a.ep.poll_transmit(a).expect("A's PINGs");
        while p.a.ep.poll_output().is_some() {}
        let data = bytes::BytesMut::from(&wire[..]);
        drop(wire);
        p.b.ep.handle_input(now, Input::Received { conn: b, data });
        // (B's `Transmit` output is not acted on: its queue grows)
        while p.b.ep.poll_output().is_some() {}
    }
    let queued = p.b.ep.queued_bytes(b);
    let cap = p.b.ep.config().hard_send_cap();
    assert!(queued > 5 << 20 && queued < cap, "{queued} queued");
    drop(p.b.ep.poll_transmit(b).expect("the PONGs"));
    let kept = peernet_testkit::heap::live() - before;
    // (the pair lives until here: nothing of it is freed in between)
    drop(p);
    kept
}

#[test]
fn a_burst_that_went_out_leaves_no_queue_behind() {
    for config in [test_config(), test_config_v2()] {
        let version = config.version;
        let kept = kept_after_a_burst(config);
        println!("{version:?}: {kept} bytes kept after the burst");
        assert!(
            kept < 1 << 20,
            "{version:?}: {kept} bytes kept once the burst went out"
        );
    }
}
