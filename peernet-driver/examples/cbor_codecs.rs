//! Measures the CBOR codecs a typed service could use: encode and decode
//! of a small request struct, per round trip, with minicbor's own derive
//! as the reference, and minicbor-serde and ciborium over serde.
//!
//! ```text
//! cargo run --release -p peernet-driver --example cbor_codecs
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    minicbor::Encode,
    minicbor::Decode,
)]
struct Request {
    #[n(0)]
    id: u64,
    #[n(1)]
    name: String,
    #[n(2)]
    tags: Vec<u32>,
    #[n(3)]
    urgent: bool,
}

const ROUNDS: u32 = 1_000_000;

fn measure(name: &str, value: &Request, round_trip: impl Fn(&Request) -> (usize, Request)) {
    // warm-up, then the best of three runs
    let (size, back) = round_trip(value);
    assert_eq!(&back, value, "{name} does not round-trip");
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            black_box(round_trip(black_box(value)));
        }
        best = best.min(start.elapsed());
    }
    let ns = best.as_nanos() as f64 / f64::from(ROUNDS);
    println!("{name:<16} {size:>3} bytes  {ns:>7.1} ns per encode+decode");
}

fn main() {
    let value = Request {
        id: 42,
        name: "alice".into(),
        tags: vec![1, 2, 3, 500],
        urgent: true,
    };
    measure("minicbor", &value, |v| {
        let bytes = minicbor::to_vec(v).unwrap();
        (bytes.len(), minicbor::decode(&bytes).unwrap())
    });
    measure("minicbor-serde", &value, |v| {
        let bytes = minicbor_serde::to_vec(v).unwrap();
        (bytes.len(), minicbor_serde::from_slice(&bytes).unwrap())
    });
    measure("ciborium", &value, |v| {
        let mut bytes = Vec::new();
        ciborium::into_writer(v, &mut bytes).unwrap();
        (
            bytes.len(),
            ciborium::from_reader(bytes.as_slice()).unwrap(),
        )
    });
}
