//! A full handshake (both sides, through two `Endpoint`s) next to its
//! cryptographic floor: one ed25519 sign + one key decode + one
//! `verify_strict`, which is what each side must do at least.
//!
//! `cargo bench -p peernet-proto --bench handshake` prints criterion's
//! figures and, at the end, the ratio per side measured interleaved in the
//! same run (the machine is shared: only ratios are stable).

use std::hint::black_box;
use std::time::{Duration, Instant as WallClock};

use criterion::{BatchSize, Criterion};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use peernet_proto::{Config, Endpoint, Event, Identity, Input, Instant, Output, TrustList};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Setup {
    a: Endpoint,
    b: Endpoint,
}

fn setup(ia: &Identity, ib: &Identity) -> Setup {
    let mut ta = TrustList::new();
    ta.insert(ib.peer_id(), None);
    let mut tb = TrustList::new();
    tb.insert(ia.peer_id(), None);
    let ep = |i: &Identity, t, seed| {
        Endpoint::new(
            Config::default(),
            i.clone(),
            t,
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
        )
    };
    Setup {
        a: ep(ia, ta, 1),
        b: ep(ib, tb, 2),
    }
}

/// Dial, shuttle bytes until both sides report `Connected`.
fn handshake(s: &mut Setup) {
    let now = Instant::ZERO;
    let expected = s.b.peer_id();
    let ca = s.a.connect(now, Some(expected)).unwrap();
    let cb = s.b.accept(now).unwrap();
    let mut connected = 0;
    while connected < 2 {
        let mut moved = false;
        for side in 0..2 {
            let (from, to, fc, tc) = if side == 0 {
                (&mut s.a, &mut s.b, ca, cb)
            } else {
                (&mut s.b, &mut s.a, cb, ca)
            };
            while let Some(out) = from.poll_output() {
                match out {
                    Output::Transmit(c) => {
                        debug_assert_eq!(c, fc);
                        if let Some(data) = from.poll_transmit(c) {
                            to.handle_input(
                                now,
                                Input::Received {
                                    conn: tc,
                                    data: data.into(),
                                },
                            );
                            moved = true;
                        }
                    }
                    Output::Event(Event::Connected { .. }) => connected += 1,
                    Output::Event(other) => panic!("unexpected {other:?}"),
                    Output::Close { .. } => panic!("closed"),
                    Output::Dial { .. } => panic!("nothing dials by PeerId here"),
                }
            }
        }
        assert!(moved || connected == 2, "handshake stalled");
    }
}

/// What each side cannot avoid: sign once, decode the peer's key, verify
/// once (strictly).
fn floor(key: &SigningKey, peer: &[u8; 32], msg: &[u8], sig: &ed25519_dalek::Signature) {
    black_box(key.sign(black_box(msg)));
    let vk = VerifyingKey::from_bytes(black_box(peer)).unwrap();
    vk.verify_strict(black_box(msg), black_box(sig)).unwrap();
}

fn main() {
    let ia = Identity::from_seed(&[1; 32]);
    let ib = Identity::from_seed(&[2; 32]);
    let key = SigningKey::from_bytes(&[3; 32]);
    let peer = key.verifying_key().to_bytes();
    // as long as the longest signed handshake string: label + HELLO + WELCOME
    let msg = vec![0x5a; 16 + 70 + 134];
    let sig = key.sign(&msg);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    c.bench_function("handshake/both_sides", |b| {
        b.iter_batched(
            || setup(&ia, &ib),
            |mut s| handshake(&mut s),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("crypto_floor/sign+decode+verify_strict", |b| {
        b.iter(|| floor(&key, &peer, &msg, &sig))
    });
    c.final_summary();

    // Interleaved rounds (A B A B …), medians: drift hits both alike.
    let rounds = 15;
    let n = 60;
    let (mut hs, mut fl) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut setups: Vec<Setup> = (0..n).map(|_| setup(&ia, &ib)).collect();
        let t = WallClock::now();
        for s in &mut setups {
            handshake(s);
        }
        hs.push(t.elapsed().as_nanos() as f64 / n as f64 / 2.0);
        let t = WallClock::now();
        for _ in 0..n {
            floor(&key, &peer, &msg, &sig);
        }
        fl.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (h, f) = (median(&mut hs), median(&mut fl));
    println!("handshake_per_side: {:.1} us", h / 1e3);
    println!("crypto_floor: {:.1} us", f / 1e3);
    println!(
        "ratio_handshake_vs_crypto_floor: {:.3} (goal <= 1.2)",
        h / f
    );
}
