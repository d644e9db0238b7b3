//! The mDNS daemon of one run of discovery: its start and its stop, the
//! bounds of its cache, and the task that learns from what it hears and
//! starts it afresh when a LAN host floods it.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{Either, select};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::node::WeakNode;
use crate::runtime::Runtime;
use crate::text::{Layout, escaped};

use super::hints::hints;
use super::{DiscoveryConfig, DiscoveryError, SERVICE_TYPE, TXT_ID};

/// The most records a node's mDNS cache may hold (PTR, SRV, TXT,
/// address, NSEC records and subtype entries, as `mdns-sd` counts them)
/// before discovery starts mDNS afresh, with an empty cache.
///
/// `mdns-sd` caches every record of a response that names peernet's
/// service type, or names no service at all, whoever sent it, for as
/// long as its TTL says: a LAN host could grow it without end. A record
/// holds names of at most 255 bytes, and about 200 bytes besides; so
/// this many records take about 1 to 4 MiB (a TXT record can carry up to
/// a packet, about 9 KB: 36 MiB if every record were one). A LAN of
/// peernet nodes needs a handful per node (PTR, SRV, TXT, an address
/// record per address): room for several hundred nodes.
pub const MAX_MDNS_CACHED_RECORDS: usize = 4096;

/// The most timers a node's mDNS daemon may hold before discovery
/// starts mDNS afresh. `mdns-sd` schedules two for every record it
/// hears, a repeat of a cached record too, and keeps them until they
/// fire (up to the record's TTL): a LAN host repeating one record could
/// grow them without end. 16 bytes each: 1 MiB.
pub const MAX_MDNS_TIMERS: usize = 16 * MAX_MDNS_CACHED_RECORDS;

/// How often discovery looks at its mDNS daemon's cache
/// ([`MAX_MDNS_CACHED_RECORDS`], [`MAX_MDNS_TIMERS`]).
pub const MDNS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The least time between two starts of a node's mDNS: a LAN host that
/// keeps flooding cannot make the node start it afresh more often. A
/// daemon over its bounds is stopped at once, though (its memory goes
/// with it), and the node waits out the rest of this time unheard and
/// learning nothing (the LAN's caches still hold its announcement: the
/// stop says no goodbye).
pub const MDNS_RESTART_INTERVAL: Duration = Duration::from_secs(5);

/// The most instances of peernet's service type one mDNS daemon may tell
/// of (found or resolved, each name counted once) before discovery starts
/// mDNS afresh.
///
/// `mdns-sd` remembers the name of every instance it resolved for as long
/// as its daemon runs, after its records expired too, and keeps a TXT
/// record's name once the record expired; neither shows in its metrics
/// (the cache's count, [`MAX_MDNS_CACHED_RECORDS`], drops as the records
/// expire): a LAN host announcing short-lived instances under ever new
/// names could grow them without end. A name is at most 255 bytes: about
/// 2 MiB at most (twice the cache's bound: a flood that the cache's bound
/// stops is stopped by it first). Not counted, and so not bounded: the
/// TXT records' names of instances whose PTR record lives 1 s or less
/// (`mdns-sd` tells of none of those).
pub const MAX_MDNS_INSTANCES: usize = 2 * MAX_MDNS_CACHED_RECORDS;

/// The instance names a run's daemon told of, as keyed hashes (8 bytes
/// each, whatever the name's length; a LAN host cannot choose names that
/// collide, the key being random).
#[derive(Default)]
pub(super) struct Told {
    hasher: RandomState,
    names: HashSet<u64>,
}

impl Told {
    /// Counts `name`; whether more than [`MAX_MDNS_INSTANCES`] were told.
    pub(super) fn over_bound(&mut self, name: &str) -> bool {
        if self.names.len() <= MAX_MDNS_INSTANCES {
            self.names.insert(self.hasher.hash_one(name));
        }
        self.names.len() > MAX_MDNS_INSTANCES
    }
}

/// What the [`Discovery`](super::Discovery) and its task share: the mDNS
/// daemon running now, which the task replaces when it starts mDNS
/// afresh.
pub(super) struct Run {
    pub(super) daemon: Mutex<Current>,
    pub(super) fullname: String,
    pub(super) restarts: AtomicU64,
}

/// The daemon of a [`Run`], if one runs.
pub(super) struct Current {
    pub(super) daemon: Option<ServiceDaemon>,
    /// The end of the last daemon stopped without a goodbye, until it
    /// ended: `mdns-sd` reads a stop only once no packet waits on its
    /// sockets, so a LAN host that keeps sending keeps it running (and
    /// caching). No new daemon starts before it ended, or they would pile
    /// up, each hearing the host.
    pub(super) stopping: Option<mdns_sd::Receiver<mdns_sd::DaemonStatus>>,
    /// The run is over (the `Discovery` dropped, or the node stopped):
    /// no daemon starts again.
    pub(super) ended: bool,
}

impl Run {
    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the run: stops the daemon running now (mDNS says goodbye),
    /// and none starts again. Once ended, this does nothing.
    pub(super) fn end(&self) {
        let mut current = self.current();
        current.ended = true;
        if let Some(daemon) = current.daemon.take() {
            stop_daemon(&daemon, &self.fullname);
        }
    }

    /// Stops the daemon running now without a goodbye (the LAN's caches
    /// keep the announcement, which the next daemon makes again).
    fn halt(&self) {
        let mut current = self.current();
        if let Some(daemon) = current.daemon.take() {
            current.stopping = daemon.shutdown().ok();
        }
    }

    /// Asks the daemon running now for its metrics.
    fn ask_metrics(&self) -> Option<mdns_sd::Receiver<mdns_sd::Metrics>> {
        self.current().daemon.as_ref()?.get_metrics().ok()
    }

    /// Starts mDNS afresh: stops the run's daemon (if it still runs),
    /// without a goodbye, and once it ended starts a new one, announcing
    /// `info` and browsing as [`start`] does.
    fn restart(&self, config: &DiscoveryConfig, info: &ServiceInfo) -> Restarted {
        let mut current = self.current();
        if current.ended {
            return Restarted::Over;
        }
        // (no goodbye: the LAN's caches keep the announcement, which the
        // new daemon makes again)
        if let Some(old) = current.daemon.take() {
            current.stopping = old.shutdown().ok();
        }
        if let Some(stopping) = &current.stopping {
            if !matches!(stopping.try_recv(), Err(mdns_sd::TryRecvError::Empty)) {
                current.stopping = None;
            }
            // (the next starts at the next check: the old one's thread
            // ends just after it says so, once it let its cache go)
            return Restarted::Waiting;
        }
        let started = ServiceDaemon::new()
            .map_err(DiscoveryError::from)
            .and_then(|daemon| match start(&daemon, config, info.clone()) {
                Ok(events) => Ok((daemon, events)),
                Err(error) => {
                    stop_daemon(&daemon, &self.fullname);
                    Err(error)
                }
            });
        match started {
            Ok((daemon, events)) => {
                current.daemon = Some(daemon);
                Restarted::Started(events)
            }
            Err(error) => Restarted::Failed(error),
        }
    }
}

/// What [`Run::restart`] did.
pub(super) enum Restarted {
    /// Nothing: the run is over.
    Over,
    /// Nothing yet: the daemon stopped last has not ended.
    Waiting,
    /// A new daemon runs: its events.
    Started(mdns_sd::Receiver<ServiceEvent>),
    /// No daemon runs: the new one could not start.
    Failed(DiscoveryError),
}

/// Why a run's mDNS is started afresh.
#[derive(Debug, Clone, Copy)]
pub(super) enum Restart {
    /// Its cache held `records` records and `timers` timers, more than
    /// [`MAX_MDNS_CACHED_RECORDS`] or [`MAX_MDNS_TIMERS`].
    Cache { records: usize, timers: usize },
    /// mDNS ended the browse subscription.
    Unsubscribed,
    /// The daemon told of more than [`MAX_MDNS_INSTANCES`] instances.
    Instances,
}

/// The metrics in which `mdns-sd` counts its cached records, one kind
/// each (PTR, SRV, TXT, address, NSEC records and subtype entries).
pub(super) const CACHED_KINDS: [&str; 6] = [
    "cached-ptr",
    "cached-srv",
    "cached-txt",
    "cached-addr",
    "cached-nsec",
    "cached-subtype",
];

/// The daemon's records and timers, from its `metrics`, if over bounds.
pub(super) fn over_bounds(metrics: &mdns_sd::Metrics) -> Option<Restart> {
    let count = |key: &str| {
        metrics
            .get(key)
            .map_or(0, |n| usize::try_from(*n).unwrap_or(0))
    };
    let records = CACHED_KINDS.into_iter().map(count).sum::<usize>();
    let timers = count("timer");
    (records > MAX_MDNS_CACHED_RECORDS || timers > MAX_MDNS_TIMERS)
        .then_some(Restart::Cache { records, timers })
}

/// Stops one run's mDNS daemon: withdraws its announcement `fullname`
/// (mDNS says goodbye), then ends the daemon's thread (its browsing
/// stops, its sockets close). Once stopped, this does nothing.
pub(super) fn stop_daemon(daemon: &ServiceDaemon, fullname: &str) {
    let _ = daemon.unregister(fullname);
    let _ = daemon.shutdown();
}

/// Starts one run's mDNS `daemon`: on `config`'s interfaces, announcing
/// `info` and browsing for peernet's service type.
pub(super) fn start(
    daemon: &ServiceDaemon,
    config: &DiscoveryConfig,
    info: ServiceInfo,
) -> Result<mdns_sd::Receiver<ServiceEvent>, DiscoveryError> {
    if !config.interfaces.is_empty() {
        daemon.disable_interface(IfKind::All)?;
        let wanted: Vec<IfKind> = config
            .interfaces
            .iter()
            .map(|ip| IfKind::Addr(*ip))
            .collect();
        daemon.enable_interface(wanted)?;
    }
    daemon.register(info)?;
    Ok(daemon.browse(SERVICE_TYPE)?)
}

/// What the task of a run needs to learn and to start mDNS afresh.
pub(super) struct Watch<R: Runtime> {
    pub(super) run: Arc<Run>,
    pub(super) node: WeakNode<R>,
    pub(super) runtime: R,
    pub(super) config: DiscoveryConfig,
    pub(super) info: ServiceInfo,
}

/// How [`learn`] ended.
enum Learned {
    /// The node is gone: nothing more to learn.
    NodeGone,
    /// The events ended: mDNS ended the subscription, or its daemon
    /// stopped.
    Ended,
    /// The daemon told of more than [`MAX_MDNS_INSTANCES`] instances.
    TooMany,
}

/// Reads a run's mDNS `events` and learns from the announcements of
/// trusted peers, until the events or the node end, or the daemon told
/// of more instances than [`MAX_MDNS_INSTANCES`] (counted in `told`).
async fn learn<R: Runtime>(
    events: &mdns_sd::Receiver<ServiceEvent>,
    node: &WeakNode<R>,
    told: &mut Told,
) -> Learned {
    while let Ok(event) = events.recv_async().await {
        let Some(node) = node.upgrade() else {
            tracing::debug!("the node is gone: discovery stops listening");
            return Learned::NodeGone;
        };
        let name = match &event {
            ServiceEvent::ServiceFound(_, name) => Some(name.as_str()),
            ServiceEvent::ServiceResolved(service) => Some(service.get_fullname()),
            _ => None,
        };
        if name.is_some_and(|name| told.over_bound(name)) {
            return Learned::TooMany;
        }
        if let ServiceEvent::ServiceResolved(service) = event {
            let announced = hints(
                service.get_property_val_str(TXT_ID),
                service.get_port(),
                service.get_addresses(),
                |peer| node.may_learn(peer),
                |interface| interface.get_addrs(),
            );
            match announced {
                Some((peer, addrs)) => {
                    node.learn_from_discovery(peer, &addrs);
                }
                None => ignored(service.get_fullname()),
            }
        }
    }
    Learned::Ended
}

/// Logs that an announcement of no trusted peer was ignored. Its name is
/// whatever the LAN host that sent it chose: shown through the one
/// escaper, as a log field, not as it came (it could hold escape
/// sequences for the operator's terminal, or characters that render
/// blank).
pub(super) fn ignored(fullname: &str) {
    tracing::trace!(
        name = %escaped(fullname, Layout::Field),
        "announcement of no trusted peer ignored"
    );
}

/// Says why a run's mDNS starts afresh, the `nth` time (a warning at
/// the 1st, 2nd, 4th, 8th... only: a host that floods without pause
/// makes it start afresh every few seconds).
fn say(name: &str, why: Restart, nth: u64) {
    if !nth.is_power_of_two() {
        return;
    }
    match why {
        Restart::Cache { records, timers } => tracing::warn!(
            %name,
            records,
            timers,
            nth,
            "mDNS starts afresh: its cache grew past {MAX_MDNS_CACHED_RECORDS} records or \
             {MAX_MDNS_TIMERS} timers (a LAN host sent that many)"
        ),
        Restart::Instances => tracing::warn!(
            %name,
            nth,
            "mDNS starts afresh: it told of more than {MAX_MDNS_INSTANCES} instances \
             (a LAN host announced that many)"
        ),
        Restart::Unsubscribed => tracing::warn!(
            %name,
            nth,
            "mDNS stopped telling this node what it hears (it heard more at once than was \
             read in time): it starts afresh"
        ),
    }
}

/// The task of a run while the node runs and its
/// [`Discovery`](super::Discovery) is alive: learns from `events`, and
/// every [`MDNS_CHECK_INTERVAL`] looks at the daemon's cache. A daemon over [`MAX_MDNS_CACHED_RECORDS`] or
/// [`MAX_MDNS_TIMERS`] is stopped at once, without a goodbye (its memory
/// goes with it); one whose events ended (mDNS ends a subscription whose
/// events are not read as fast as they come: a LAN host announcing 1,000
/// instances at once) runs on, announcing the node. Either way a new one
/// starts (the same announcement, browsing anew; the old one stopped
/// without a goodbye) once [`MDNS_RESTART_INTERVAL`] has passed since the
/// last start, and the old one has ended (looked at every check: a new
/// one starts at the check after it said so). Returns only when the node
/// is gone, or the run is over.
pub(super) async fn watch<R: Runtime>(w: Watch<R>, events: mdns_sd::Receiver<ServiceEvent>) {
    let mut events = Some(events);
    let mut metrics = None;
    let mut started = w.runtime.now();
    let mut due = false;
    let mut halted = false;
    let mut detected = 0u64;
    let mut failed = 0u64;
    let mut told = Told::default();
    let mut waited = 0u64;
    // Stops the daemon at once, over a bound (`why`): its memory goes with
    // it, and a new one is due.
    macro_rules! halt_for {
        ($why:expr) => {{
            due = true;
            events = None;
            metrics = None;
            w.run.halt();
            halted = true;
            detected += 1;
            say(&w.run.fullname, $why, detected);
        }};
    }
    loop {
        let tick = w.runtime.sleep_until(w.runtime.now() + MDNS_CHECK_INTERVAL);
        let learned = match &events {
            Some(heard) => match select(tick, pin!(learn(heard, &w.node, &mut told))).await {
                Either::Left(_) => None,
                Either::Right((learned, _)) => Some(learned),
            },
            None => {
                tick.await;
                None
            }
        };
        match learned {
            Some(Learned::NodeGone) => return,
            Some(Learned::Ended) => {
                // (the daemon runs on, announcing the node, until the
                // next starts)
                due = true;
                events = None;
                detected += 1;
                say(&w.run.fullname, Restart::Unsubscribed, detected);
            }
            // (its memory goes at once, as for a cache over bounds)
            Some(Learned::TooMany) => halt_for!(Restart::Instances),
            None => {}
        }
        // (a daemon whose subscription ended runs on until the next
        // starts: looked at too)
        if !halted {
            // (the answer to the last question, asked a check ago: the
            // daemon answers once no packet waits on its socket, and is
            // never waited for)
            let answer = match &metrics {
                Some(pending) => match mdns_sd::Receiver::try_recv(pending) {
                    Ok(answer) => Some(Some(answer)),
                    Err(mdns_sd::TryRecvError::Empty) => None,
                    Err(mdns_sd::TryRecvError::Disconnected) => Some(None),
                },
                None => Some(None),
            };
            if let Some(answer) = answer {
                metrics = w.run.ask_metrics();
                if let Some(over) = answer.as_ref().and_then(over_bounds) {
                    halt_for!(over);
                }
            }
        }
        if !due || w.runtime.now() < started + MDNS_RESTART_INTERVAL {
            continue;
        }
        match w.run.restart(&w.config, &w.info) {
            Restarted::Over => return,
            Restarted::Waiting => {
                // (tried again at the next check; a daemon not ended after
                // 4 checks is said at the 4th, 8th, 16th...)
                waited += 1;
                if waited >= 4 && waited.is_power_of_two() {
                    tracing::warn!(
                        name = %w.run.fullname,
                        waited,
                        "the mDNS daemon stopped has not ended (a LAN host keeps it busy): \
                         mDNS starts afresh once it has"
                    );
                }
            }
            Restarted::Started(heard) => {
                started = w.runtime.now();
                waited = 0;
                events = Some(heard);
                // (an answer of the daemon stopped is no news of this one)
                metrics = None;
                told = Told::default();
                due = false;
                halted = false;
                failed = 0;
                w.run.restarts.fetch_add(1, Ordering::Relaxed);
            }
            Restarted::Failed(error) => {
                started = w.runtime.now();
                waited = 0;
                // (said at the 1st, 2nd, 4th... failure in a row)
                failed += 1;
                if failed.is_power_of_two() {
                    let error = crate::ErrorChain(&error);
                    tracing::warn!(%error, failed, "mDNS could not start afresh: tried again later");
                }
            }
        }
    }
}
