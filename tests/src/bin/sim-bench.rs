//! Runs the simulation's mixed scenarios over a range of seeds and prints
//! how fast it simulates:
//!
//! ```text
//! cargo run -p peernet-tests --release --bin sim-bench -- [SEEDS] [FIRST_SEED] [FAULT]
//! ```
//!
//! `FAULT` (e.g. `SupersedeNewest`) runs against a deliberately broken
//! core: see `peernet_proto::testkit::Fault`.
//!
//! One line per 1,000 seeds, then `sim: <x> simulated node-seconds per
//! wall second`. Exits non-zero at the first violated invariant.

use std::time::Instant;

use peernet_tests::sim::{self, Counters, Fault};

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args
        .next()
        .map_or(2_000, |s| s.parse().expect("SEEDS is a number"));
    let first: u64 = args
        .next()
        .map_or(0, |s| s.parse().expect("FIRST_SEED is a number"));
    let fault = args.next().map(|name| {
        Fault::from_name(&name)
            .unwrap_or_else(|| panic!("unknown fault {name}; one of {:?}", Fault::ALL))
    });
    let started = Instant::now();
    let mut node_seconds = 0.0;
    let mut steps = 0;
    let mut total = Counters::default();
    for seed in first..first + seeds {
        match sim::run_seed(seed, fault) {
            Ok(report) => {
                node_seconds += report.node_seconds();
                steps += report.steps;
                total += &report.counters;
            }
            Err(violation) => {
                eprintln!("{violation}");
                std::process::exit(1);
            }
        }
        let done = seed - first + 1;
        if done.is_multiple_of(1_000) {
            eprintln!("{done} seeds, {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!("{seeds} seeds in {wall:.2} s ({steps} steps), {total:?}");
    println!(
        "sim: {:.0} simulated node-seconds per wall second",
        node_seconds / wall
    );
}
