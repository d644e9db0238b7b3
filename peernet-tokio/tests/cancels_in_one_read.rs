//! A trusted peer's CALLs cancelled in the same read cost the node the
//! same, in one big group or in many small ones.
//!
//! A CALL and its CANCEL read together never start their handler: the
//! driver takes the call out of the work list its drain is filling. It
//! used to search the whole list for each CANCEL (and move every item
//! behind the one it took out), so a peer that sent a thousand CALLs and
//! then their thousand CANCELs, read after read, made the node work 3.5
//! to 12 times as long as for the same envelopes in groups of ten (50,000
//! of each: 197 to 237 ms against 17 to 64 ms), for handlers that never
//! ran; now 0.9 to 1.2 times. Measured in the process's CPU time (both
//! sides), the old code took 2.6 to 2.8 times as long, the new one 0.85
//! to 1.15 times; the test fails at 1.8 times. (Wall time failed the new
//! code once in three runs beside three compilers; the work list's own
//! cost is counted exactly, whatever the load, by a unit test in
//! `peernet-driver/src/shared/unstarted.rs`.)
//!
//! Its own test binary: it compares two measurements.

#[path = "common/until.rs"]
mod until;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::{RawPeer, call_envelope};
use peernet_proto::{Envelope, Event, PeerId};
use peernet_tokio::{Config, Identity, Node, NodeConfig};
use until::until;

/// CALLs (and as many CANCELs) per round.
const CALLS: u64 = 50_000;

/// Rounds of each grouping, alternated.
const ROUNDS: u64 = 5;

/// `CALLS` CALLs to `hang` with request ids from `first`, in groups of
/// `group`: each group's CALLs, then their CANCELs in the same order.
/// Amid each group's CALLs, one to `tally` that is not cancelled.
fn cancelled_calls(first: u64, group: u64) -> Vec<Envelope> {
    let mut envelopes = Vec::with_capacity(2 * CALLS as usize);
    for start in (first..first + CALLS).step_by(group as usize) {
        let ids = start..start + group;
        envelopes.extend(ids.clone().map(|id| call_envelope(id, "hang")));
        envelopes.insert(
            envelopes.len() - group as usize / 2,
            call_envelope(start << 20, "tally"),
        );
        envelopes.extend(ids.map(|id| Envelope::Cancel { id }));
    }
    envelopes
}

/// The CPU time this process (both sides) spent so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a valid pointer to a `rusage`.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The CPU time the process spends while `node` goes through
/// `envelopes`: from their write to the answer of a call written right
/// after them. (CPU time rather than wall time: other processes' load
/// stretched the wall time of one round and failed the comparison.)
async fn served_in(raw: &mut RawPeer, node: &PeerId, envelopes: &[Envelope]) -> Duration {
    let start = cpu_time();
    raw.send_raw(envelopes).await;
    raw.call(node, "barrier", b"", Duration::from_secs(120))
        .await;
    loop {
        if let Event::CallResult { result, .. } = raw.next_event().await {
            result.expect("barrier");
            return cpu_time().saturating_sub(start);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cancelled_in_one_group_cost_what_small_groups_cost() {
    let (bob_id, eve_id) = (
        Identity::from_seed(&[111; 32]),
        Identity::from_seed(&[112; 32]),
    );
    let bob_peer = bob_id.peer_id();
    // (room for the calls to `tally` still in flight beside a group of
    // `hang`: none is refused `overloaded`)
    let mut config = Config::default();
    config.max_inbound_calls = 4096;
    let bob = Node::bind(
        NodeConfig::new(bob_id)
            .trusting(eve_id.peer_id())
            .protocol(config),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let counted = started.clone();
    bob.expose("hang", move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
        std::future::pending()
    })
    .unwrap();
    bob.expose("barrier", |_, _| async { Ok(Bytes::new()) })
        .unwrap();
    let tallied = Arc::new(AtomicUsize::new(0));
    let tally = tallied.clone();
    bob.expose("tally", move |_, _| {
        tally.fetch_add(1, Ordering::Relaxed);
        async { Ok(Bytes::new()) }
    })
    .unwrap();
    let rt = peernet_tokio::TokioRuntime::default();
    let at = bob.local_addr().unwrap();
    let mut eve = RawPeer::dial(&rt, eve_id, bob_peer, at, &[]).await;

    // Alternated, the best of five each: the machine's noise aside.
    let (mut small, mut big) = (Duration::MAX, Duration::MAX);
    let mut first = 1;
    for _ in 0..ROUNDS {
        let envelopes = cancelled_calls(first, 10);
        first += CALLS;
        small = small.min(served_in(&mut eve, &bob_peer, &envelopes).await);
        let envelopes = cancelled_calls(first, 1000);
        first += CALLS;
        big = big.min(served_in(&mut eve, &bob_peer, &envelopes).await);
    }
    println!("{CALLS} CALLs and their CANCELs: in groups of 10 {small:?}, of 1000 {big:?}");
    // (a call whose CANCEL came in the read after it, at the end of a
    // drain's batch, started and was stopped: none is left)
    println!(
        "handlers of cancelled calls started: {}",
        started.load(Ordering::Relaxed)
    );
    // Every call not cancelled runs, and then nothing is left in flight:
    // awaited, not read at once. The barrier's reply does not wait for
    // every `tally` read before it to have started: whoever takes the
    // node's lock drains the core's outputs and starts their handlers (a
    // reply of another thread, say) while the reader reads on. Read at
    // once, 25,247 of 25,250 had run (one run of the whole suite).
    let groups = ROUNDS as usize * (CALLS / 10 + CALLS / 1000) as usize;
    until("every call not cancelled run, none left in flight", || {
        let stats = bob.stats().core;
        tallied.load(Ordering::Relaxed) == groups
            && (stats.inbound_calls, stats.inbound_bytes) == (0, 0)
    })
    .await;
    assert_eq!(tallied.load(Ordering::Relaxed), groups);
    assert!(
        big.as_secs_f64() < small.as_secs_f64() * 1.8,
        "groups of 1000 took {big:?}, groups of 10 {small:?}"
    );
}
