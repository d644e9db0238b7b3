//! The sans-IO version-2 handshake (PROTOCOL.md section 6), both sides,
//! next to its crypto floor: per side one X25519 key generation and four
//! X25519 Diffie-Hellman operations, which IK cannot do without.
//!
//! The handshake measured: INIT built, read (mac1, Noise, trust), RESP
//! built and read, Split on both sides, and the initiator's first (empty)
//! record sealed and opened, which establishes the responder. Each node's
//! static keys are derived once, when the node starts, and each peer's
//! once, at their first handshake (the node's `KeyCache`); the handshake
//! of two nodes that never met (`handshake_v2/first`) derives them too.
//!
//! `cargo bench -p peernet-proto --bench handshake_v2` prints criterion's
//! figures and, at the end, the ratio measured interleaved in the same run
//! (the machine is shared: only ratios are stable).

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant as WallClock};

use criterion::Criterion;
use curve25519_dalek::montgomery::MontgomeryPoint;
use peernet_proto::testkit::noise::{
    Accepted, InitiatorV2, KeyCache, LocalStatic, check_init, dh, read_init,
};
use peernet_proto::{Identity, TrustList};

struct Nodes {
    initiator: LocalStatic,
    responder: LocalStatic,
    trust: TrustList,
    /// Each side's memo of the other's static key.
    keys: RefCell<(KeyCache, KeyCache)>,
}

/// One handshake, both sides, as two nodes that met before run it;
/// `round` varies the ephemerals.
fn handshake(n: &Nodes, round: u8) {
    let keys = &mut *n.keys.borrow_mut();
    let responder = n.responder.peer_id();
    let rs = keys.0.derive(&responder).unwrap();
    let (mut initiator, init) =
        InitiatorV2::start_keyed(&n.initiator, responder, &rs, [round; 32]).unwrap();
    let accepted = check_init(&n.responder, black_box(&init))
        .unwrap()
        .accept_unless(
            &n.responder,
            &n.trust,
            &mut keys.1,
            false,
            &|_| false,
            [!round; 32],
        )
        .unwrap();
    finish(&mut initiator, accepted);
}

/// The same for two nodes that never met: each derives the other's key.
fn first_handshake(n: &Nodes, round: u8) {
    let (mut initiator, init) =
        InitiatorV2::start(&n.initiator, n.responder.peer_id(), [round; 32]).unwrap();
    let accepted = read_init(
        &n.responder,
        &n.trust,
        black_box(&init),
        false,
        [!round; 32],
    )
    .unwrap();
    finish(&mut initiator, accepted);
}

/// RESP read, and the first record sealed and opened.
fn finish(initiator: &mut InitiatorV2, accepted: Accepted) {
    let mut transport = initiator.read_resp(black_box(&accepted.resp)).unwrap();
    let mut first = Vec::with_capacity(16);
    transport.send.seal_record(&mut first, 0).unwrap();
    let mut responder = accepted.transport;
    black_box(responder.recv.open_record(&mut first).unwrap());
}

/// Both sides' floor: two key generations and eight Diffie-Hellman, the
/// latter through the core's own X25519 (`dh`: Edwards form for honest
/// keys), so that the floor is the cheapest the handshake could be.
fn floor(round: u8, peer: &MontgomeryPoint) {
    for side in 0..2u8 {
        let secret = [round ^ side; 32];
        black_box(MontgomeryPoint::mul_base_clamped(black_box(secret)));
        for i in 0..4u8 {
            let _ = black_box(dh(&[secret[0] ^ i; 32], black_box(&peer.0)));
        }
    }
}

fn main() {
    let i = Identity::from_seed(&[1; 32]);
    let r = Identity::from_seed(&[2; 32]);
    let mut trust = TrustList::new();
    trust.insert(i.peer_id(), None);
    let nodes = Nodes {
        initiator: LocalStatic::new(&i),
        responder: LocalStatic::new(&r),
        trust,
        keys: RefCell::new((KeyCache::new(), KeyCache::new())),
    };
    let peer = MontgomeryPoint(*nodes.responder.public());

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut round = 0u8;
    c.bench_function("handshake_v2/both_sides", |b| {
        b.iter(|| {
            round = round.wrapping_add(1) | 1;
            handshake(&nodes, round)
        })
    });
    c.bench_function("handshake_v2/first", |b| {
        b.iter(|| {
            round = round.wrapping_add(1) | 1;
            first_handshake(&nodes, round)
        })
    });
    c.bench_function("crypto_floor_v2/2x(keygen+4dh)", |b| {
        b.iter(|| {
            round = round.wrapping_add(1) | 1;
            floor(round, &peer)
        })
    });
    c.final_summary();

    // Interleaved rounds (A B A B ...), medians: drift hits both alike.
    let rounds = 21;
    let n = 100;
    let (mut hs, mut fl) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = WallClock::now();
        for k in 0..n {
            handshake(&nodes, (k as u8) | 1);
        }
        hs.push(t.elapsed().as_nanos() as f64 / n as f64);
        let t = WallClock::now();
        for k in 0..n {
            floor((k as u8) | 1, &peer);
        }
        fl.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (h, f) = (median(&mut hs), median(&mut fl));
    println!("handshake_v2_both_sides: {:.1} us", h / 1e3);
    println!("crypto_floor_v2_both_sides: {:.1} us", f / 1e3);
    println!(
        "ratio_handshake_v2_vs_crypto_floor: {:.3} (goal <= 1.1)",
        h / f
    );
}
