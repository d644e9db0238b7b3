//! The simulation: a sweep over seeds of mixed scenarios, the regression
//! seeds, replay of one seed, determinism, and proof that the invariants
//! catch deliberate bugs in the core.
//!
//! - `PEERNET_SIM_SEEDS=<n>`: how many seeds the sweep runs (default
//!   2,000), from `PEERNET_SIM_FIRST_SEED` (default 0). The soak is
//!   `PEERNET_SIM_SEEDS=100000 cargo test -p peernet-tests --release
//!   --test simulation -- seed_sweep --nocapture`.
//! - `PEERNET_SIM_SEED=<n>`: `replay` reruns that one seed and prints its
//!   report (`PEERNET_SIM_TRACE=1` prints every trace line,
//!   `PEERNET_SIM_FAULT=<name>` switches a deliberate fault on).

use std::time::Instant;

use peernet_tests::sim::sweep;
use peernet_tests::sim::{self, Counters, Fault, Invariant, Report, SimConfig, Violation};

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

fn env_fault() -> Option<Fault> {
    let name = std::env::var("PEERNET_SIM_FAULT").ok()?;
    Some(Fault::from_name(&name).unwrap_or_else(|| {
        panic!(
            "PEERNET_SIM_FAULT: unknown fault {name}; one of {:?}",
            Fault::ALL
        )
    }))
}

/// Runs `seeds` on every core, stopping at the first violation; returns
/// the reports, or the violation of the lowest failing seed found.
fn run_seeds(
    seeds: impl Iterator<Item = u64>,
    fault: Option<Fault>,
) -> Result<Vec<Report>, Violation> {
    let seeds: Vec<u64> = seeds.collect();
    sweep::run_seeds(&seeds, |seed| sim::run_seed(seed, fault))
}

/// At least 2,000 seeds of mixed scenarios (2 to 8 nodes, one seed in 40
/// with 50), every invariant checked after every step.
#[test]
fn seed_sweep() {
    let count = env_u64("PEERNET_SIM_SEEDS").unwrap_or(2_000);
    let first = env_u64("PEERNET_SIM_FIRST_SEED").unwrap_or(0);
    let started = Instant::now();
    let reports = match run_seeds(first..first + count, None) {
        Ok(reports) => reports,
        Err(violation) => panic!(
            "{violation}\nadd `{} {:016x}` (seed, fingerprint) to tests/regression-seeds.txt \
             once it is understood",
            violation.seed,
            SimConfig::random(violation.seed, None).fingerprint()
        ),
    };
    let wall = started.elapsed().as_secs_f64();
    let node_seconds: f64 = reports.iter().map(Report::node_seconds).sum();
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let mut total = Counters::default();
    for r in &reports {
        total += &r.counters;
    }
    println!("{count} seeds from {first} in {wall:.1} s, {steps} steps checked");
    println!("{total:?}");
    println!(
        "sim: {:.0} simulated node-seconds per wall second",
        node_seconds / wall
    );
    // The sweep must exercise what it claims to.
    assert!(total.replies_ok > 0 && total.timeouts > 0 && total.closed_under_call > 0);
    assert!(total.superseded > 0 && total.supersede_pairs_compared > 0);
    assert!(
        total.crashes > 0 && total.attacks > 0 && total.would_block > 0 && total.overloaded > 0
    );
    // Version 2 by default, with a share of version-1 nodes; its
    // intruders replay INITs and break records.
    assert!(total.versions_refused > 0 && total.replayed_inits > 0 && total.bad_records > 0);
    // The byzantine peer's reconnect loops are throttled; honest nodes,
    // under the same limit, never are (`SimConfig::endpoint_config`).
    assert!(total.reconnect_floods > 0 && total.throttled > 0);
    assert!(
        total.stalls > 0,
        "no writer gave up on a peer that reads nothing"
    );
    assert_eq!(total.throttled_honest, 0, "an honest node was throttled");
    // Seeds with small byte budgets and large results make the budgets
    // bite: results are refused (`overloaded`), not only accounted.
    let tight = reports.iter().filter(|r| r.budgets).count();
    let refusing = reports
        .iter()
        .filter(|r| r.counters.replies_refused > 0)
        .count();
    println!("{tight} seeds with small byte budgets; results refused for them in {refusing} seeds");
    let refused_in = |bunch: bool| {
        let seeds: Vec<&Report> = reports
            .iter()
            .filter(|r| r.budgets && r.bunch == bunch)
            .collect();
        let refusing = seeds.iter().filter(|r| r.counters.replies_refused > 0);
        let refused: u64 = seeds.iter().map(|r| r.counters.replies_refused).sum();
        (seeds.len(), refusing.count(), refused)
    };
    let (bunched, bunched_refusing, bunched_refused) = refused_in(true);
    let (single, single_refusing, single_refused) = refused_in(false);
    println!(
        "of them, {bunched} answer in bunches: {bunched_refused} results refused in \
         {bunched_refusing} seeds; the other {single}: {single_refused} refused in \
         {single_refusing} seeds"
    );
    assert!(
        bunched_refused > 0,
        "no result was refused for the byte budgets in a seed that answers in bunches"
    );
    assert!(
        total.replies_refused > 0,
        "no result was refused for the byte budgets"
    );
    assert!(
        reports.iter().any(|r| r.nodes >= 50),
        "some seeds run 50 nodes"
    );
}

/// Every seed in tests/regression-seeds.txt still replays the case it was
/// recorded for (its fingerprint: what the generator draws from it) and
/// passes.
#[test]
fn regression_seeds() {
    let mut seeds = Vec::new();
    for line in include_str!("../regression-seeds.txt").lines() {
        let fields: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let [seed, fingerprint] = fields[..] else {
            assert!(
                fields.is_empty(),
                "regression-seeds.txt: {line:?} is not `SEED FINGERPRINT`"
            );
            continue;
        };
        let seed: u64 = seed
            .parse()
            .unwrap_or_else(|_| panic!("regression-seeds.txt: {seed:?} is not a seed"));
        let recorded = u64::from_str_radix(fingerprint, 16).unwrap_or_else(|_| {
            panic!("regression-seeds.txt: {fingerprint:?} is not a fingerprint")
        });
        let now = SimConfig::random(seed, None).fingerprint();
        assert_eq!(
            recorded, now,
            "regression seed {seed} was recorded as fingerprint {recorded:016x}, but the \
             generator now draws {now:016x} from it: it no longer replays the case its comment \
             names. Find a seed that does (reintroduce the bug, sweep) or make the case a \
             targeted scenario, then record it anew."
        );
        seeds.push(seed);
    }
    assert!(!seeds.is_empty(), "regression-seeds.txt lists no seed");
    if let Err(violation) = run_seeds(seeds.into_iter(), None) {
        panic!("regression seed fails again:\n{violation}");
    }
}

/// `PEERNET_SIM_SEED=<n>` reruns one seed (and `PEERNET_SIM_FAULT`
/// switches a deliberate fault on); without it, seed 0.
#[test]
fn replay() {
    let seed = env_u64("PEERNET_SIM_SEED").unwrap_or(0);
    let fault = env_fault();
    match sim::run_seed(seed, fault) {
        Ok(report) => println!("seed {seed} passes: {report:#?}"),
        Err(violation) => panic!("{violation}"),
    }
}

/// The same seed gives a byte-identical trace (equal hashes of every
/// line), different seeds different ones.
#[test]
fn same_seed_same_trace() {
    // A few seeds, one of them with 50 nodes.
    let big = (0..)
        .find(|s| SimConfig::random(*s, None).nodes >= 50)
        .unwrap();
    let seeds = [0, 1, 2, 7, 1234, 99_999, big];
    let mut hashes = Vec::new();
    for seed in seeds {
        let a = sim::run_seed(seed, None).unwrap_or_else(|v| panic!("{v}"));
        let b = sim::run_seed(seed, None).unwrap_or_else(|v| panic!("{v}"));
        assert_eq!(
            (a.trace_hash, a.trace_lines, a.steps),
            (b.trace_hash, b.trace_lines, b.steps),
            "invariant `{}` violated: seed {seed} gave two different traces",
            Invariant::SameSeedSameTrace
        );
        assert_eq!(a.counters, b.counters);
        hashes.push(a.trace_hash);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        seeds.len(),
        "different seeds, different traces"
    );
    // Determinism holds with a fault switched on, failure included (at
    // the first seed that catches it).
    let fault = Some(Fault::SupersedeNewest);
    let seed = (0..300)
        .find(|s| sim::run_seed(*s, fault).is_err())
        .expect("the fault is caught");
    let a = sim::run_seed(seed, fault).expect_err("caught");
    let b = sim::run_seed(seed, fault).expect_err("caught");
    assert_eq!((a.at, a.trace), (b.at, b.trace));
}

// ----- the simulator catches bugs -----

/// Runs seeds with `fault` switched on until an invariant fires, and
/// checks it is `expected`.
fn caught(fault: Fault, expected: Invariant) {
    caught_by_one_of(fault, &[expected]);
}

/// Runs seeds with `fault` switched on until an invariant fires, and
/// checks it is one of `expected`; prints which, with the seed and the
/// simulated time.
fn caught_by_one_of(fault: Fault, expected: &[Invariant]) {
    const BUDGET: u64 = 300;
    match run_seeds(0..BUDGET, Some(fault)) {
        Ok(_) => panic!("{fault:?} went unnoticed for {BUDGET} seeds"),
        Err(violation) => {
            println!(
                "{fault:?} caught by `{}` at seed {}, t={:.3}s",
                violation.invariant,
                violation.seed,
                violation.at.as_secs_f64()
            );
            println!("{violation}");
            assert!(
                expected.contains(&violation.invariant),
                "{fault:?} caught by another invariant:\n{violation}"
            );
        }
    }
}

#[test]
fn catches_supersede_rule_applied_newest_only() {
    caught(Fault::SupersedeNewest, Invariant::SupersedeVerdictsAgree);
}

#[test]
fn catches_skipped_trust_check() {
    caught(
        Fault::SkipTrustCheck,
        Invariant::EstablishedOnlyWithTrustedPeers,
    );
}

#[test]
fn catches_reply_matched_on_any_connection() {
    caught(Fault::ReplyAnyConnection, Invariant::RepliesMatchTheirCalls);
}

#[test]
fn catches_missing_idle_timeout() {
    // A peer that trickles half-frames is a dead-looking peer too: with no
    // idle timeout at all, the sweep may meet it first (the scenario
    // `missing_idle_timeout_leaves_a_dead_peer` pins the other one).
    caught_by_one_of(
        Fault::NoIdleTimeout,
        &[
            Invariant::DeadPeersDetectedInTime,
            Invariant::IdleResetOnlyByCompleteFrames,
        ],
    );
}

#[test]
fn catches_revoked_connection_kept() {
    // The fault also leaves a handshake in progress with the unpaired
    // peer, which then becomes a connection to a peer no longer trusted:
    // the sweep may meet that first.
    caught_by_one_of(
        Fault::KeepRevokedConnections,
        &[
            Invariant::HandlersOnlyForTrustedExposedPeers,
            Invariant::EstablishedOnlyWithTrustedPeers,
        ],
    );
}

#[test]
fn catches_skipped_exposure_check() {
    caught(
        Fault::SkipExposureCheck,
        Invariant::HandlersOnlyForTrustedExposedPeers,
    );
}

#[test]
fn catches_ignored_inbound_limit() {
    caught(Fault::IgnoreInboundLimit, Invariant::TablesWithinLimits);
}

#[test]
fn catches_cancel_of_unknown_id_treated_as_error() {
    caught(
        Fault::CancelUnknownIsError,
        Invariant::NoProtocolErrorBetweenHonestPeers,
    );
}

#[test]
fn catches_handlers_run_while_shutting_down() {
    caught(
        Fault::HandlersWhileShuttingDown,
        Invariant::NoHandlersWhileShuttingDown,
    );
}

#[test]
fn catches_dial_that_ignores_the_named_peer() {
    caught(
        Fault::IgnoreExpectedPeer,
        Invariant::DialReachesOnlyTheNamedPeer,
    );
}

#[test]
fn catches_cancel_that_leaves_the_call_in_flight() {
    caught(Fault::CancelIgnored, Invariant::CancelFreesTheCalleeSlot);
}

#[test]
fn catches_unpair_reported_as_a_normal_close() {
    caught(Fault::RevokedAsNormal, Invariant::RevokedOnBothSides);
}

#[test]
fn catches_ping_left_unanswered() {
    caught(Fault::NoPong, Invariant::PingsAreAnswered);
}

#[test]
fn catches_half_frames_resetting_the_idle_clock() {
    caught(
        Fault::HalfFrameResetsIdle,
        Invariant::IdleResetOnlyByCompleteFrames,
    );
}

#[test]
fn catches_pings_never_sent() {
    caught(Fault::NoPing, Invariant::HealthyIdleConnectionsStayOpen);
}

#[test]
fn catches_replies_left_waiting_behind_room() {
    caught(Fault::NoRefillAfterTake, Invariant::RepliesWaitOnlyForRoom);
}

#[test]
fn catches_responder_established_at_resp() {
    caught(Fault::EstablishAtResp, Invariant::ReplayedInitNeverConnects);
}

#[test]
fn catches_bad_record_ignored() {
    caught(
        Fault::IgnoreBadRecord,
        Invariant::BadRecordsEndTheConnection,
    );
}

#[test]
fn catches_version_1_refusing_an_init_as_a_frame_error() {
    caught(Fault::SmallHandshakeFrames, Invariant::VersionsNeverMix);
}

#[test]
fn catches_source_limits_ignored() {
    caught(Fault::SourceUnlimited, Invariant::SourceLimitsHold);
}

#[test]
fn catches_the_node_wide_limit_ignored() {
    caught(Fault::NodeWideUnlimited, Invariant::SourceLimitsHold);
}

#[test]
fn catches_failed_handshakes_left_uncharged() {
    caught(Fault::FailuresUncharged, Invariant::SourceLimitsHold);
}

#[test]
fn catches_busy_while_a_silent_connection_holds_a_slot() {
    caught(Fault::NoEviction, Invariant::BusyOnlyWhenEverySlotSpoke);
}

#[test]
fn catches_reconnects_left_uncharged() {
    caught(Fault::ReconnectsUncharged, Invariant::PeerConnectsHold);
}

#[test]
fn catches_a_handshake_that_never_times_out() {
    caught(Fault::NoHandshakeTimeout, Invariant::HandshakesFinishInTime);
}

#[test]
fn catches_a_superseded_connection_left_open() {
    caught(
        Fault::SupersedeKeepsBoth,
        Invariant::AtMostOneConnectionPerPeer,
    );
}

#[test]
fn catches_call_deadlines_that_never_fire() {
    caught(Fault::NoCallDeadline, Invariant::CallsResolveExactlyOnce);
}

#[test]
fn catches_a_proof_of_identity_not_checked() {
    caught(Fault::SkipProofCheck, Invariant::AuthenticatedPeerIdentity);
}

/// Waiting results held outside the byte budgets: a seed with small
/// budgets and large results makes some wait (behind a stalled or slow
/// reader), and `replies_within_byte_budgets` sees them uncharged.
#[test]
fn catches_uncharged_replies() {
    caught(Fault::UnchargedReplies, Invariant::RepliesWithinByteBudgets);
}

/// A writer that waits on a peer that reads nothing for `idle_timeout`
/// reports `Input::Stalled` (the simulated driver does what the real one
/// does); a core that ignores it keeps the connection.
#[test]
fn catches_a_stalled_transport_kept_open() {
    caught(Fault::IgnoreStalled, Invariant::StalledTransportsEnd);
}

/// Applications that answer in bunches (`SimConfig::bunch`) release the
/// results of a period together, before their driver takes a byte: they
/// pile up in the send queue, wait for room, and reach the small byte
/// budgets of their seeds. Of the first 16 seeds with small budgets that
/// draw bunches, the budgets refuse results in more than in the first 16
/// that do not, and `UnchargedReplies` (waiting results not charged) is
/// caught by `replies_within_byte_budgets` in more.
#[test]
fn bunched_answers_reach_the_byte_budgets() {
    let tight = |bunch: bool| -> Vec<u64> {
        (0..)
            .filter(|s| {
                let c = SimConfig::random(*s, None);
                c.budgets.is_some() && c.bunch.is_some() == bunch
            })
            .take(16)
            .collect()
    };
    let reach = |seeds: &[u64]| {
        let reports = sweep::run_seeds(seeds, |seed| sim::run_seed(seed, None))
            .unwrap_or_else(|v| panic!("{v}"));
        let refusing = reports
            .iter()
            .filter(|r| r.counters.replies_refused > 0)
            .count();
        let caught = sweep::run_seeds(seeds, |seed| {
            let fault = Some(Fault::UnchargedReplies);
            Ok::<_, Violation>(match sim::run_seed(seed, fault) {
                Ok(_) => 0,
                Err(v) => {
                    assert_eq!(v.invariant, Invariant::RepliesWithinByteBudgets, "{v}");
                    1
                }
            })
        })
        .unwrap_or_else(|v| panic!("{v}"));
        (refusing, caught.iter().sum::<usize>())
    };
    let (bunched, single) = (tight(true), tight(false));
    let (bunched_refusing, bunched_caught) = reach(&bunched);
    let (single_refusing, single_caught) = reach(&single);
    println!(
        "seeds with small budgets that answer in bunches {bunched:?}: results refused in \
         {bunched_refusing}, UnchargedReplies caught in {bunched_caught}; that do not \
         {single:?}: refused in {single_refusing}, caught in {single_caught}"
    );
    assert!(bunched_refusing > single_refusing && bunched_caught > single_caught);
}
