//! What a kept-connection run does and when: the small random scenarios
//! of the seed sweep and the scale scenario.

use std::time::Duration;

use peernet_proto::Config;

use super::super::Fault;
use super::super::rng::SimRng;
use super::{NodeIx, reconnect_bound, stall_bound};

const SEC: Duration = Duration::from_secs(1);

/// The `idle_timeout` of a run's patient node (the reader of its stall):
/// four times the default, above [`stall_bound`], so that only its peer's
/// writer giving up ends the stall in time.
pub const PATIENT_IDLE: Duration = Duration::from_secs(180);

/// The `send_buffer` of the random runs (the default is 1 MiB).
pub const SEND_BUFFER: usize = 64 << 10;

/// One thing the plan makes happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The node starts: its trust list, its peers' addresses, every peer
    /// kept connected.
    Start(NodeIx),
    /// The node crashes (its connections are reset).
    Crash(NodeIx),
    /// The node starts again, on a new port or the same one; its peers
    /// get the address from its ticket.
    Restart {
        /// The node.
        node: NodeIx,
        /// Whether it listens on a new port.
        new_port: bool,
    },
    /// The network splits: nodes on different sides cannot reach each
    /// other (bytes are held, dials time out).
    Partition(Vec<bool>),
    /// The network heals.
    Heal,
    /// The first node unpairs the second (which still keeps it).
    Unpair(NodeIx, NodeIx),
    /// The reader of the first node's connection with the second stops
    /// reading, for good, with its window full (it stopped in the middle
    /// of a transfer): the second's writer backs up at its next write and,
    /// having taken nothing for its `idle_timeout`, reports
    /// `Input::Stalled`. The first node's timers, writer and listener go
    /// on.
    Stall {
        /// The node whose reader stops.
        reader: NodeIx,
        /// Its peer, whose writer backs up.
        writer: NodeIx,
    },
    /// Every kept pair that nothing keeps apart must be connected now;
    /// `since` is when its clock started.
    Check {
        /// What the check follows.
        label: String,
        /// When the event it follows happened.
        since: Duration,
    },
}

/// A kept-connection run.
#[derive(Debug, Clone)]
pub struct KeepConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// How many nodes.
    pub nodes: usize,
    /// Peers each node keeps (even): its ring neighbours `±1..=degree/2`.
    pub degree: usize,
    /// The endpoints' configuration.
    pub endpoint: Config,
    /// A deliberate fault in every endpoint.
    pub fault: Option<Fault>,
    /// The steps, by virtual time.
    pub plan: Vec<(Duration, Step)>,
    /// Every link's one-way latency (a connect takes two): `None` draws
    /// each from 1 to 30 ms.
    pub latency: Option<Duration>,
    /// A node its keepers reach only through its own announcement (as
    /// mDNS gives it), while a LAN host announces false hints for it and
    /// its true address again, to starve it (see [`super::KeepSim`]): it
    /// has no address of its peers and reads no ticket.
    pub hinted: Option<NodeIx>,
    /// Whether the application now and then dials a kept peer that is
    /// being redialed (`Endpoint::dial`): at a `Reconnecting`, one time
    /// in four, at once (it joins the round) or within 2 s.
    pub app_dials: bool,
    /// How many addresses each node listens at (1 to 3): its first is the
    /// one its peers start with and its tickets give; only the directory
    /// ([`KeepConfig::directory`]) names the others.
    pub addresses: u8,
    /// Whether the application looks a kept peer up in a directory at each
    /// dial of it: the answer, within [`super::DIRECTORY_DELAY`] (while the
    /// dial is out, most often), names one of the peer's addresses, which
    /// the application adds to the book. With few places per peer
    /// (`max_addresses_per_peer` below [`KeepConfig::addresses`]) the new
    /// address pushes out the worst, often the very one being dialed: the
    /// one a round dials last.
    pub directory: bool,
    /// A patient node and its `idle_timeout` (longer than its peers'): the
    /// reader of the run's stall ([`Step::Stall`]), which hears nothing
    /// on the stalled connection yet closes it on its own only after its
    /// peer's writer has long given up, so that the peer's `Input::Stalled`
    /// and redial are what ends the stall.
    pub patient: Option<(NodeIx, Duration)>,
    /// Whether the nodes call and send to their kept peers throughout the
    /// run, checked by the shared invariants of calls (see `calls.rs`).
    pub calls: bool,
}

impl KeepConfig {
    /// The kept pairs (unordered, each once).
    pub fn pairs(&self) -> Vec<(NodeIx, NodeIx)> {
        KeepConfig::pairs_of(self.nodes, self.degree)
    }

    /// The kept pairs of `n` nodes keeping `degree` ring neighbours.
    fn pairs_of(n: usize, degree: usize) -> Vec<(NodeIx, NodeIx)> {
        let mut pairs = std::collections::BTreeSet::new();
        for a in 0..n {
            for k in 1..=(degree / 2) {
                let b = (a + k) % n;
                if a != b {
                    pairs.insert((a.min(b), a.max(b)));
                }
            }
        }
        pairs.into_iter().collect()
    }
}

/// A random split into two non-empty sides.
fn split(rng: &mut SimRng, n: usize) -> Vec<bool> {
    loop {
        let sides: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
        if sides.iter().any(|s| *s) && sides.iter().any(|s| !*s) {
            return sides;
        }
    }
}

/// The small scenario of `seed`: 4 to 8 nodes keeping 2 or 4 ring
/// neighbours each, all started at once (both sides of every pair dial at
/// once); a partition of 5 to 90 s; a crash and a restart after 1 to 40 s
/// (on a new port two times in three); another node that crashes and
/// stays down; then one node unpairs a peer that still keeps it. Every
/// kept pair is checked [`reconnect_bound`] after the start, the heal and
/// the restart. A third node is reached only through its announcement,
/// under a LAN host that tries to starve its true hint
/// ([`KeepConfig::hinted`]), and the application now and then dials a
/// peer being redialed ([`KeepConfig::app_dials`]).
///
/// One run in four instead has nodes listening at 2 or 3 addresses, a
/// book of 1 to `addresses - 1` places per peer, and the application's
/// directory ([`KeepConfig::directory`]), but no node reached only through
/// its announcement (with so few places the LAN host's false hints push
/// its true one out; `max_addresses_per_peer` rounds bound its wait). Its
/// draws come from a stream of their own: the other runs are as before.
pub fn random(seed: u64, fault: Option<Fault>) -> KeepConfig {
    let mut rng = SimRng::new(seed ^ 0x6b65_6570);
    let nodes = rng.range(4, 8) as usize;
    let degree = if nodes >= 6 && rng.chance(0.5) { 4 } else { 2 };
    let mut endpoint = Config::default();
    // A small send queue, so that the bulk sends across the partition
    // (`calls.rs`) back a writer up to it at little cost.
    endpoint.send_buffer = SEND_BUFFER;
    endpoint.max_send_buffer = 4 * SEND_BUFFER;
    let mut crowded = SimRng::new(seed ^ 0x6469_7265_6374);
    let directory = crowded.chance(0.25);
    let mut addresses = 1;
    if directory {
        addresses = crowded.range(2, 3) as u8;
        endpoint.max_addresses_per_peer = crowded.range(1, u64::from(addresses) - 1) as usize;
    }
    let bound = reconnect_bound(&endpoint);
    let mut plan = Vec::new();
    let mut t = Duration::ZERO;
    for n in 0..nodes {
        plan.push((Duration::from_millis(rng.range(0, 500)), Step::Start(n)));
    }
    t += SEC + bound;
    plan.push((t, check("start", Duration::from_millis(500))));
    t += 5 * SEC;
    plan.push((t, Step::Partition(split(&mut rng, nodes))));
    t += SEC * rng.range(5, 90) as u32;
    plan.push((t, Step::Heal));
    plan.push((t + bound, check("heal", t)));
    t += bound + 5 * SEC;
    let crashed = rng.index(nodes);
    let down = (crashed + 1 + rng.index(nodes - 1)) % nodes;
    plan.push((t, Step::Crash(crashed)));
    plan.push((t, Step::Crash(down)));
    t += SEC * rng.range(1, 40) as u32;
    let new_port = rng.chance(0.67);
    plan.push((
        t,
        Step::Restart {
            node: crashed,
            new_port,
        },
    ));
    plan.push((t + bound, check("restart", t)));
    t += bound + 5 * SEC;
    let a = rng.index(nodes);
    let b = (a + 1) % nodes;
    plan.push((t, Step::Unpair(a, b)));
    t += 120 * SEC;
    plan.push((t, check("end", t - 120 * SEC)));
    // The node reached only through its announcement: neither the one
    // that restarts nor the one that stays down. The partition may split
    // it from its keepers: its hint, which worked, then fails while the
    // LAN host announces false ones.
    let hinted = (0..nodes)
        .map(|k| (down + 1 + k) % nodes)
        .find(|h| *h != crashed && *h != down)
        .expect("4 nodes or more");
    let hinted = (!directory).then_some(hinted);
    // One run in two: 5 s after the unpair, a reader of a kept pair that
    // nothing else disturbs stalls, and the pair is checked
    // `stall_bound` later (within the last 120 s). Drawn from a stream of
    // its own: the other draws are as before.
    let mut st = SimRng::new(seed ^ 0x7374_616c_6c73);
    let mut patient = None;
    if st.chance(0.5) {
        let (ua, ub) = (a, b);
        let calm: Vec<(NodeIx, NodeIx)> = (KeepConfig::pairs_of(nodes, degree))
            .into_iter()
            .filter(|(x, y)| ![*x, *y].iter().any(|n| *n == down || Some(*n) == hinted))
            .filter(|(x, y)| (*x, *y) != (ua.min(ub), ua.max(ub)))
            .collect();
        if let Some(&(x, y)) = st.pick(&calm) {
            let (reader, writer) = if st.chance(0.5) { (x, y) } else { (y, x) };
            let at = t - 115 * SEC;
            plan.push((at, Step::Stall { reader, writer }));
            plan.push((at + stall_bound(&endpoint), check("stall", at)));
            patient = Some((reader, PATIENT_IDLE));
        }
    }
    KeepConfig {
        seed,
        nodes,
        degree,
        endpoint,
        fault,
        plan,
        latency: None,
        hinted,
        app_dials: true,
        addresses,
        directory,
        patient,
        calls: true,
    }
}

/// Two nodes that keep each other and always dial each other at the same
/// instant, round after round: they start together, and later crash and
/// restart together, on links of one fixed latency, with a backoff
/// without jitter (every first redial waits `first_min`). Whatever the
/// seed, both sides of every handshake run in lockstep, so the rule of
/// section 4 decides every pair of connections: each side must keep the
/// same one, at once, or the pair loses both and redials into the same
/// race again. Checked [`reconnect_bound`] after each start.
pub fn lockstep(seed: u64, fault: Option<Fault>) -> KeepConfig {
    let mut rng = SimRng::new(seed ^ 0x6c6f_636b);
    let mut endpoint = Config::default();
    endpoint.dial.first_max = endpoint.dial.first_min;
    endpoint.dial.growth_max_percent = endpoint.dial.growth_min_percent;
    let bound = reconnect_bound(&endpoint);
    let latency = Duration::from_millis(rng.range(1, 30));
    let mut plan = vec![
        (Duration::ZERO, Step::Start(0)),
        (Duration::ZERO, Step::Start(1)),
    ];
    let mut t = bound;
    plan.push((t, check("start", Duration::ZERO)));
    for round in 0..3 {
        t += SEC * rng.range(1, 20) as u32;
        plan.push((t, Step::Crash(0)));
        plan.push((t, Step::Crash(1)));
        t += SEC;
        for node in 0..2 {
            let new_port = false;
            plan.push((t, Step::Restart { node, new_port }));
        }
        plan.push((t + bound, check(&format!("restart {round}"), t)));
        t += bound;
    }
    KeepConfig {
        seed,
        nodes: 2,
        degree: 2,
        endpoint,
        fault,
        plan,
        latency: Some(latency),
        hinted: None,
        app_dials: false,
        addresses: 1,
        directory: false,
        patient: None,
        calls: true,
    }
}

/// The scale scenario: `nodes` nodes each keeping `degree` peers, started
/// within the first second; checked at `reconnect_bound`; then split at
/// random in two halves for `partition`, healed, and checked again
/// `reconnect_bound` after the heal.
pub fn scale(seed: u64, nodes: usize, degree: usize, partition: Duration) -> KeepConfig {
    let mut rng = SimRng::new(seed ^ 0x7363_616c);
    let endpoint = Config::default();
    let bound = reconnect_bound(&endpoint);
    let mut plan = Vec::new();
    for n in 0..nodes {
        plan.push((Duration::from_millis(rng.range(0, 1000)), Step::Start(n)));
    }
    let mut t = SEC + bound;
    plan.push((t, check("start", SEC)));
    t += 10 * SEC;
    plan.push((t, Step::Partition(split(&mut rng, nodes))));
    t += partition;
    plan.push((t, Step::Heal));
    plan.push((t + bound, check("heal", t)));
    KeepConfig {
        seed,
        nodes,
        degree,
        endpoint,
        fault: None,
        plan,
        latency: None,
        hinted: None,
        app_dials: false,
        addresses: 1,
        directory: false,
        patient: None,
        calls: false,
    }
}

fn check(label: &str, since: Duration) -> Step {
    Step::Check {
        label: label.to_string(),
        since,
    }
}
