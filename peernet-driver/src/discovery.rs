//! LAN discovery over mDNS / DNS-SD (`mdns-sd`), behind the cargo
//! feature `mdns`.
//!
//! A node announces itself as an instance of [`SERVICE_TYPE`]: its
//! listening port, its addresses, and its PeerId in the TXT record
//! (`id=<64 hex>`). It announces only addresses it listens on, on the
//! interfaces whose network holds them: a node listening on one address
//! (`127.0.0.1`, `192.0.2.5`) names that one alone, so one listening on the
//! loopback is announced on the loopback only and the LAN never hears its
//! PeerId; `0.0.0.0` names the host's IPv4 addresses, `[::]` all of them.
//! An interface that comes up after discovery started (a link not yet
//! running, a cable plugged in later) is announced on once mDNS sees it
//! (it looks every 5 s), whichever of these the node listens on.
//! With [`DiscoveryConfig::interface`], the listen address must be on the
//! network of one of the addresses named, or it is announced nowhere (a
//! warning says so when that can be told, e.g. a loopback listener with
//! LAN interfaces only, an IPv6 one with IPv4 ones). An IPv6 link-local
//! listen address loses its scope: mDNS sends it on every interface that
//! has a link-local address, the PeerId with it (a warning says so); name
//! the listening interface's link-local address to keep it on its link.
//! It browses for the others (on every interface the [`DiscoveryConfig`]
//! allows, whatever it listens on), and each announcement of a
//! **trusted** peer adds that peer's addresses to the address book as
//! [`AddrSource::Discovery`]. That is all an announcement can do:
//!
//! - an untrusted peer's announcement is dropped unread (the book holds
//!   only trusted peers), so discovery never makes the node dial a peer
//!   the trust list does not name;
//! - an announcement is a hint, not a proof: the handshake still proves
//!   the key, and a false one costs one failed dial, tried after the
//!   addresses that worked (the book's ranking): a hint that never
//!   worked is forgotten at its first failure (heard again, it is a new
//!   hint; a REJECT `busy` keeps it: the address answered as the peer),
//!   and a hint never pushes out an address the application or a
//!   ticket gave. At most [`MAX_HINTS_PER_ANNOUNCEMENT`] addresses of
//!   one announcement are taken;
//! - so a LAN host announcing a trusted peer's PeerId with addresses of
//!   its choosing (any IP, not only the LAN's, but loopback) can make the
//!   node open connections there, and tell from them that the node keeps
//!   that peer: only for a peer kept connected that is not connected, at
//!   most `max_addresses_per_peer` per redial round, one at a time, the
//!   rounds the backoff apart (in the long run 8 connection attempts per
//!   30 s by default); each sends the first handshake frame, which in
//!   version 2 tells nothing to a host without the peer's key (version 1's
//!   HELLO names this node's PeerId);
//! - mDNS is not authenticated: a LAN host can also announce under a
//!   peer's instance name and flush the peer's records from our mDNS
//!   cache, so that we miss its announcement (a squatter that plays by
//!   mDNS's rules only makes the peer rename itself: the TXT record, not
//!   the name, says who it is). An announcement only adds hints: it
//!   never removes an address the application, a ticket or a working
//!   dial gave (hints that are not working may give way, by the book's
//!   rules);
//! - an announced loopback address (IPv4-mapped ones included) counts
//!   only if the announcement was heard on a loopback interface (from
//!   this host): a LAN host cannot make the node dial a service that
//!   listens on loopback only. An IPv6 link-local address gets the scope
//!   of the interface it was heard on;
//! - a kept peer waiting for an address is dialed when one is learned;
//! - mDNS's memory stays bounded: `mdns-sd` caches every record of a
//!   response that names peernet's service type (or no service), whoever
//!   sent it, for its TTL, so a LAN host could grow it without end; once
//!   the cache holds more than [`MAX_MDNS_CACHED_RECORDS`] records or
//!   [`MAX_MDNS_TIMERS`] timers (looked at every
//!   [`MDNS_CHECK_INTERVAL`]), the daemon is stopped and a fresh one, its
//!   cache empty, announces the node again and browses anew;
//! - a LAN host that announces more instances at once than mDNS's event
//!   channel holds (1,000: `mdns-sd` then ends the browsing) does not
//!   leave the node deaf: mDNS is started afresh the same way;
//! - a host flooding without pause makes that happen at most once per
//!   [`MDNS_RESTART_INTERVAL`], each time with a warning (the 1st, 2nd,
//!   4th...), counted by [`Discovery::restarts`]; between a daemon
//!   stopped for its cache and the next start the node is neither heard
//!   nor hearing (the LAN's caches keep its announcement).
//!
//! mDNS runs on a thread of `mdns-sd`'s own; the node's runtime only runs
//! a task reading its events and, every [`MDNS_CHECK_INTERVAL`], asking
//! the daemon for the size of its cache.

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{Either, select};

use mdns_sd::{IfKind, InterfaceId, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use peernet_proto::{AddrSource, BookError, PeerId};

use crate::node::{Node, WeakNode};
use crate::runtime::Runtime;
use crate::shared::Phase;
use crate::tasks::first;

/// The DNS-SD service type peernet nodes announce.
pub const SERVICE_TYPE: &str = "_peernet._tcp.local.";

/// The TXT key that carries the PeerId.
const TXT_ID: &str = "id";

/// Where to announce and listen.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryConfig {
    interfaces: Vec<IpAddr>,
}

impl DiscoveryConfig {
    /// Every interface (mDNS is link-local multicast: it stays on the
    /// local networks).
    pub fn new() -> DiscoveryConfig {
        DiscoveryConfig::default()
    }

    /// Only the interface that has `ip` (repeatable): e.g. `127.0.0.1`
    /// for a test that must not send to a real network.
    pub fn interface(mut self, ip: IpAddr) -> DiscoveryConfig {
        self.interfaces.push(ip);
        self
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The node has no listener to announce.
    #[error("the node does not listen: nothing to announce")]
    NotListening,
    /// mDNS could not start (no multicast socket, ...).
    #[error("mdns: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// The operating system gave no randomness for the instance name.
    #[error("no entropy from the operating system: {0}")]
    Entropy(getrandom::Error),
    /// This node's LAN discovery runs already: its [`Discovery`] is
    /// alive and the node has not begun to shut down. A second one would
    /// announce the node twice (two instances of one PeerId on the LAN)
    /// and learn every announcement twice. Drop the first one, then start
    /// again.
    #[error("LAN discovery runs already for this node")]
    AlreadyRunning,
    /// The node has begun to shut down ([`Node::shutdown`]) or is
    /// closed: it no longer accepts, so there is nothing to announce.
    /// Refused before mDNS starts: no socket is opened, nothing is sent.
    #[error("the node is shutting down: nothing to announce")]
    ShuttingDown,
}

/// The claim of one run of discovery on its node's flag (`lan_discovery`
/// in the node's state): let go when dropped, if the flag is still this
/// run's. The [`Discovery`] and its task each hold one, so whichever ends
/// first frees the node, and neither frees a later run's claim (each run
/// has a token of its own): a `Discovery` dropped and started again is
/// never refused because its old task has not ended yet.
struct Claim {
    flag: Arc<AtomicU64>,
    token: u64,
}

impl Claim {
    /// Claims `flag` for a new run, unless another holds it.
    fn take(flag: &Arc<AtomicU64>) -> Option<Claim> {
        // (tokens are never 0, which means free, and never reused)
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        flag.compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Claim {
            flag: flag.clone(),
            token,
        })
    }

    fn share(&self) -> Claim {
        Claim {
            flag: self.flag.clone(),
            token: self.token,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = self
            .flag
            .compare_exchange(self.token, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

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

/// LAN discovery of a node, running until dropped or until its node
/// stops accepting (its shutdown starts, or its last handle goes),
/// whichever comes first: either stops its mDNS daemon, which withdraws
/// the announcement (mDNS says goodbye), stops browsing (no more queries
/// are sent) and closes its sockets. One at a time per node.
///
/// While it runs, it starts mDNS afresh (a new daemon, its cache empty,
/// the same announcement) when the daemon's cache grows past
/// [`MAX_MDNS_CACHED_RECORDS`] or [`MAX_MDNS_TIMERS`], or when mDNS ends
/// its browsing (more heard at once than was read in time): a LAN host
/// can do either at will. At most once per [`MDNS_RESTART_INTERVAL`];
/// each says why in a warning (the 1st, 2nd, 4th, 8th...), and
/// [`Discovery::restarts`] counts them.
pub struct Discovery {
    run: Arc<Run>,
    // (dropped first as this is dropped, before the daemon stops: tells
    // the run's task that the application let it go)
    alive: Option<oneshot::Sender<()>>,
    // (dropped after `drop` has stopped the daemon: the node may then
    // start discovery again)
    _claim: Claim,
}

impl Discovery {
    /// How many times this discovery started mDNS afresh (see
    /// [`Discovery`]): a LAN host flooded it, or it heard more at once
    /// than it read in time.
    pub fn restarts(&self) -> u64 {
        self.run.restarts.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("fullname", &self.run.fullname)
            .field("restarts", &self.restarts())
            .finish_non_exhaustive()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        drop(self.alive.take());
        self.run.end();
    }
}

/// What the [`Discovery`] and its task share: the mDNS daemon running
/// now, which the task replaces when it starts mDNS afresh.
struct Run {
    daemon: Mutex<Current>,
    fullname: String,
    restarts: AtomicU64,
}

/// The daemon of a [`Run`], if one runs.
struct Current {
    daemon: Option<ServiceDaemon>,
    /// The run is over (the `Discovery` dropped, or the node stopped):
    /// no daemon starts again.
    ended: bool,
}

impl Run {
    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the run: stops the daemon running now (mDNS says goodbye),
    /// and none starts again. Once ended, this does nothing.
    fn end(&self) {
        let mut current = self.current();
        current.ended = true;
        if let Some(daemon) = current.daemon.take() {
            stop_daemon(&daemon, &self.fullname);
        }
    }

    /// Stops the daemon running now without a goodbye (the LAN's caches
    /// keep the announcement, which the next daemon makes again).
    fn halt(&self) {
        if let Some(daemon) = self.current().daemon.take() {
            let _ = daemon.shutdown();
        }
    }

    /// Asks the daemon running now for its metrics.
    fn ask_metrics(&self) -> Option<mdns_sd::Receiver<mdns_sd::Metrics>> {
        self.current().daemon.as_ref()?.get_metrics().ok()
    }

    /// Starts mDNS afresh: stops the run's daemon (if it still runs),
    /// without a goodbye, and starts a new one,
    /// announcing `info` and browsing as [`start`] does. `None` once the
    /// run is over.
    fn restart(
        &self,
        config: &DiscoveryConfig,
        info: &ServiceInfo,
    ) -> Option<Result<mdns_sd::Receiver<ServiceEvent>, DiscoveryError>> {
        let mut current = self.current();
        if current.ended {
            return None;
        }
        // (no goodbye: the LAN's caches keep the announcement, which the
        // new daemon makes again)
        if let Some(old) = current.daemon.take() {
            let _ = old.shutdown();
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
        Some(started.map(|(daemon, events)| {
            current.daemon = Some(daemon);
            events
        }))
    }
}

/// Why a run's mDNS is started afresh.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// Its cache held `records` records and `timers` timers, more than
    /// [`MAX_MDNS_CACHED_RECORDS`] or [`MAX_MDNS_TIMERS`].
    Cache { records: usize, timers: usize },
    /// mDNS ended the browse subscription.
    Unsubscribed,
}

/// The daemon's records and timers, from its `metrics`, if over bounds.
fn over_bounds(metrics: &mdns_sd::Metrics) -> Option<Restart> {
    let count = |key: &str| {
        metrics
            .get(key)
            .map_or(0, |n| usize::try_from(*n).unwrap_or(0))
    };
    let records = [
        "cached-ptr",
        "cached-srv",
        "cached-txt",
        "cached-addr",
        "cached-nsec",
        "cached-subtype",
    ]
    .into_iter()
    .map(count)
    .sum::<usize>();
    let timers = count("timer");
    (records > MAX_MDNS_CACHED_RECORDS || timers > MAX_MDNS_TIMERS)
        .then_some(Restart::Cache { records, timers })
}

/// Stops one run's mDNS daemon: withdraws its announcement `fullname`
/// (mDNS says goodbye), then ends the daemon's thread (its browsing
/// stops, its sockets close). Once stopped, this does nothing.
fn stop_daemon(daemon: &ServiceDaemon, fullname: &str) {
    let _ = daemon.unregister(fullname);
    let _ = daemon.shutdown();
}

/// Starts one run's mDNS `daemon`: on `config`'s interfaces, announcing
/// `info` and browsing for peernet's service type.
fn start(
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

/// A fresh instance name (and host name) for one run of discovery: 32
/// random hex digits, not derived from the PeerId. mDNS queries carry the
/// shared records a node already knows (the instance names) as known
/// answers, and `mdns-sd` sends one list on every interface: a name heard
/// on the loopback would reach the LAN, and with it, were the name made
/// of the PeerId, the identity of a node that listens on the loopback
/// only. The TXT record, which says who the node is, never travels so.
fn instance_name() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Which of this host's addresses a node announces, from the address it
/// listens on: only addresses a peer can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// The one address it listens on (IPv4-mapped: as IPv4). mDNS sends
    /// the announcement only on the interfaces whose network holds it: a
    /// node listening on the loopback is announced on the loopback alone,
    /// and the LAN does not hear of it.
    Only(IpAddr),
    /// Every IPv4 address of the host, as interfaces come and go
    /// (`0.0.0.0`).
    EveryV4,
    /// Every address of the host (`[::]`, which Linux binds dual-stack).
    Every,
}

impl Announced {
    fn of(listen: IpAddr) -> Announced {
        match listen.to_canonical() {
            IpAddr::V4(v4) if v4.is_unspecified() => Announced::EveryV4,
            IpAddr::V6(v6) if v6.is_unspecified() => Announced::Every,
            ip => Announced::Only(ip),
        }
    }
}

impl Announced {
    /// What is wrong with where this announcement is heard, with
    /// discovery on the interfaces that have the addresses `interfaces`
    /// (every one if empty), as far as can be told without the
    /// interfaces' networks. mDNS sends an address on every interface
    /// whose network holds it: a loopback address on the loopback alone,
    /// an IPv6 one on no IPv4 interface address, and an IPv6 link-local
    /// one (its scope dropped) on every interface that has a link-local
    /// address, so its PeerId reaches links where it cannot be dialed.
    fn warning(self, interfaces: &[IpAddr]) -> Option<&'static str> {
        let named = !interfaces.is_empty();
        let nowhere = match self {
            Announced::Only(ip) => {
                named
                    && !interfaces
                        .iter()
                        .any(|i| i.is_ipv4() == ip.is_ipv4() && i.is_loopback() == ip.is_loopback())
            }
            Announced::EveryV4 => named && !interfaces.iter().any(IpAddr::is_ipv4),
            Announced::Every => false,
        };
        let lan = !named || interfaces.iter().any(|ip| !ip.is_loopback());
        let link_local = |ip: &IpAddr| matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if nowhere {
            Some(
                "listening on no network of the interfaces discovery uses: announced nowhere, \
                 no host can find this node",
            )
        } else if matches!(self, Announced::Only(ip) if ip.is_loopback()) && lan {
            Some(
                "listening on the loopback: announced there only, other hosts cannot find this node",
            )
        } else if matches!(self, Announced::Only(ip) if link_local(&ip))
            && (!named
                || interfaces
                    .iter()
                    .any(|i| link_local(i) && Announced::Only(*i) != self))
        {
            Some(
                "listening on a link-local address: announced on every link that has one, \
                 name the listening interface's address for discovery to keep it there",
            )
        } else {
            None
        }
    }
}

/// The announcement of the node `me` listening at `listen`, as the
/// instance `name`: its port, its
/// PeerId, and only the addresses it listens on ([`Announced`]).
fn service_info(
    me: &PeerId,
    name: &str,
    listen: SocketAddr,
) -> Result<ServiceInfo, mdns_sd::Error> {
    let id = me.to_string();
    let new = |ip: Option<IpAddr>| {
        ServiceInfo::new(
            SERVICE_TYPE,
            name,
            &format!("{name}.local."),
            ip.as_slice(),
            listen.port(),
            &[(TXT_ID, id.as_str())][..],
        )
    };
    Ok(match Announced::of(listen.ip()) {
        // (following the host's addresses, restricted to `ip`: mDNS
        // announces a fixed address only on the interfaces it saw at the
        // start, and never on one that comes up later, where the node
        // then stays unknown; so it adds `ip` once its interface runs,
        // announcing it then, and drops it while that interface is gone)
        Announced::Only(ip) => {
            let mut info = new(Some(ip))?.enable_addr_auto();
            info.set_interfaces(vec![IfKind::Addr(ip)]);
            info
        }
        Announced::EveryV4 => {
            let mut info = new(None)?.enable_addr_auto();
            info.set_interfaces(vec![IfKind::IPv4]);
            info
        }
        Announced::Every => new(None)?.enable_addr_auto(),
    })
}

/// The most addresses one announcement adds to the book: a host
/// announces its own few, but one mDNS announcement can carry hundreds,
/// each a turn of the node's lock and a place fought for in the book
/// (which keeps `max_addresses_per_peer` of a peer's anyway).
pub const MAX_HINTS_PER_ANNOUNCEMENT: usize = 16;

/// What one announcement teaches: the peer its TXT record names (`id`),
/// if `wanted` (trusted and not this node; otherwise nothing more is
/// read), and at most [`MAX_HINTS_PER_ANNOUNCEMENT`] of the addresses
/// `heard` (with the announced `port`) that can be dialed from here
/// ([`dialable_hint`]). `interface_addrs` lists the addresses of an
/// interface an address was heard on (the OS is asked): at most once per
/// interface, not once per announced address, whose number a LAN host
/// chooses. `None` if `id` names no valid PeerId or one not wanted.
fn hints<'a>(
    id: Option<&str>,
    port: u16,
    heard: impl IntoIterator<Item = &'a ScopedIp>,
    wanted: impl FnOnce(&PeerId) -> bool,
    mut interface_addrs: impl FnMut(&InterfaceId) -> Vec<IpAddr>,
) -> Option<(PeerId, Vec<SocketAddr>)> {
    let peer = id?.parse::<PeerId>().ok()?;
    if !wanted(&peer) {
        return None;
    }
    let mut known = std::collections::HashMap::new();
    let mut loopback = |interface: &InterfaceId| {
        *known.entry(interface.index).or_insert_with(|| {
            let addrs = interface_addrs(interface);
            !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
        })
    };
    let addrs = heard
        .into_iter()
        .filter_map(|ip| heard_addr(ip, port, &mut loopback))
        .take(MAX_HINTS_PER_ANNOUNCEMENT)
        .collect();
    Some((peer, addrs))
}

/// Where an address announced for `port` can be dialed from here, if
/// anywhere:
/// - a loopback address only if the announcement was heard on a loopback
///   interface (it came from this host): one heard from the network would
///   make this node dial its own local services for a stranger;
/// - an IPv6 link-local address with the scope of the interface it was
///   heard on (`scope`, 0 if unknown: then it is dropped, since no dial
///   could reach it).
pub fn dialable_hint(
    ip: IpAddr,
    port: u16,
    scope: u32,
    heard_on_loopback: bool,
) -> Option<SocketAddr> {
    // (an IPv4-mapped IPv6 address is its IPv4 form: `::ffff:127.0.0.1`
    // is loopback, and the book stores it as `127.0.0.1`)
    let ip = ip.to_canonical();
    if ip.is_loopback() && !heard_on_loopback {
        return None;
    }
    match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            (scope != 0).then(|| SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)))
        }
        _ => Some(SocketAddr::new(ip, port)),
    }
}

/// [`dialable_hint`] of an address as mDNS heard it; `loopback` says
/// whether an interface it was heard on is a loopback one.
fn heard_addr(
    ip: &ScopedIp,
    port: u16,
    loopback: &mut dyn FnMut(&InterfaceId) -> bool,
) -> Option<SocketAddr> {
    let (scope, heard_on) = match ip {
        ScopedIp::V4(v4) => (0, v4.interface_ids().to_vec()),
        ScopedIp::V6(v6) => (v6.scope_id().index, vec![v6.scope_id().clone()]),
        // (a kind of address this crate does not know)
        _ => return None,
    };
    let on_loopback = ip.to_ip_addr().to_canonical().is_loopback()
        && !heard_on.is_empty()
        && heard_on.iter().all(loopback);
    let addr = dialable_hint(ip.to_ip_addr(), port, scope, on_loopback);
    if addr.is_none() {
        tracing::debug!(%ip, "announced address dropped: not dialable from here");
    }
    addr
}

/// What the task of a run needs to learn and to start mDNS afresh.
struct Watch<R: Runtime> {
    run: Arc<Run>,
    node: WeakNode<R>,
    runtime: R,
    config: DiscoveryConfig,
    info: ServiceInfo,
}

/// How [`learn`] ended.
enum Learned {
    /// The node is gone: nothing more to learn.
    NodeGone,
    /// The events ended: mDNS ended the subscription, or its daemon
    /// stopped.
    Ended,
}

/// Reads a run's mDNS `events` and learns from the announcements of
/// trusted peers, until the events or the node end.
async fn learn<R: Runtime>(
    events: &mdns_sd::Receiver<ServiceEvent>,
    node: &WeakNode<R>,
) -> Learned {
    while let Ok(event) = events.recv_async().await {
        let Some(node) = node.upgrade() else {
            tracing::debug!("the node is gone: discovery stops listening");
            return Learned::NodeGone;
        };
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
                None => tracing::trace!(
                    name = service.get_fullname(),
                    "announcement of no trusted peer ignored"
                ),
            }
        }
    }
    Learned::Ended
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
        Restart::Unsubscribed => tracing::warn!(
            %name,
            nth,
            "mDNS stopped telling this node what it hears (it heard more at once than was \
             read in time): it starts afresh"
        ),
    }
}

/// The task of a run while the node runs and its [`Discovery`] is alive:
/// learns from `events`, and every [`MDNS_CHECK_INTERVAL`] looks at the
/// daemon's cache. A daemon over [`MAX_MDNS_CACHED_RECORDS`] or
/// [`MAX_MDNS_TIMERS`] is stopped at once, without a goodbye (its memory
/// goes with it); one whose events ended (mDNS ends a subscription whose
/// events are not read as fast as they come: a LAN host announcing 1,000
/// instances at once) runs on, announcing the node. Either way a new one
/// starts (the same announcement, browsing anew; the old one stopped
/// without a goodbye) once [`MDNS_RESTART_INTERVAL`] has passed since the
/// last start. Returns only when the node is gone, or the run is over.
async fn watch<R: Runtime>(w: Watch<R>, events: mdns_sd::Receiver<ServiceEvent>) {
    let mut events = Some(events);
    let mut metrics = None;
    let mut started = w.runtime.now();
    let mut due = false;
    let mut halted = false;
    let mut detected = 0u64;
    let mut failed = 0u64;
    loop {
        let tick = w.runtime.sleep_until(w.runtime.now() + MDNS_CHECK_INTERVAL);
        let learned = match &events {
            Some(heard) => match select(tick, pin!(learn(heard, &w.node))).await {
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
            None => {}
        }
        // (a daemon whose subscription ended runs on until the next
        // starts: looked at too)
        if !halted {
            // (the answer to the last question, asked a check ago: the
            // daemon answers between two packets, and is never waited for)
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
                    due = true;
                    events = None;
                    metrics = None;
                    w.run.halt();
                    halted = true;
                    detected += 1;
                    say(&w.run.fullname, over, detected);
                }
            }
        }
        if !due || w.runtime.now() < started + MDNS_RESTART_INTERVAL {
            continue;
        }
        started = w.runtime.now();
        match w.run.restart(&w.config, &w.info) {
            None => return,
            Some(Ok(heard)) => {
                events = Some(heard);
                // (an answer of the daemon stopped is no news of this one)
                metrics = None;
                due = false;
                halted = false;
                failed = 0;
                w.run.restarts.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(error)) => {
                // (said at the 1st, 2nd, 4th... failure in a row)
                failed += 1;
                if failed.is_power_of_two() {
                    tracing::warn!(%error, failed, "mDNS could not start afresh: tried again later");
                }
            }
        }
    }
}

impl<R: Runtime> Node<R> {
    /// Announces this node on the local network and feeds the
    /// announcements of trusted peers into the address book (see the
    /// [module docs](crate::discovery)). Runs until the returned
    /// [`Discovery`] is dropped; it does not keep the node open (the
    /// node closes when the application's last handle goes, and the
    /// announcements heard after that are ignored). Once the node
    /// stops accepting (as [`Node::shutdown`] starts, not once its grace
    /// is over; or when its last handle goes) its mDNS daemon stops,
    /// though the [`Discovery`] be still alive: the announcement is
    /// withdrawn (mDNS says goodbye to the LAN) and browsing ends (no
    /// more queries). Should mDNS end the browsing by itself (it ends a
    /// subscription whose events are not read as fast as they come: a LAN
    /// host announcing 1,000 instances at once), or its cache grow past
    /// [`MAX_MDNS_CACHED_RECORDS`] records or [`MAX_MDNS_TIMERS`] timers,
    /// mDNS is started afresh, an empty cache, the same announcement (see
    /// [`Discovery`]): the node goes on learning, its memory bounded. A
    /// node runs one
    /// discovery at a time: another may start once the [`Discovery`] is
    /// dropped. A node that stops accepting starts none: a
    /// `discover_lan` that races the shutdown's start and wins gets a
    /// [`Discovery`] whose daemon stops at once.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::ShuttingDown`] once [`Node::shutdown`] was
    /// called or the node closed (checked first: mDNS is not started);
    /// [`DiscoveryError::NotListening`] for a node without a listener;
    /// [`DiscoveryError::AlreadyRunning`] while an earlier [`Discovery`]
    /// of this node is alive; [`DiscoveryError::Mdns`] when mDNS cannot
    /// start.
    pub fn discover_lan(&self, config: DiscoveryConfig) -> Result<Discovery, DiscoveryError> {
        if self.shared.read(|inner| inner.phase) != Phase::Running {
            return Err(DiscoveryError::ShuttingDown);
        }
        let listen = self.local_addr().ok_or(DiscoveryError::NotListening)?;
        let claim =
            Claim::take(&self.shared.lan_discovery).ok_or(DiscoveryError::AlreadyRunning)?;
        let port = listen.port();
        let name = instance_name().map_err(DiscoveryError::Entropy)?;
        let info = service_info(&self.peer_id(), &name, listen)?;
        let fullname = info.get_fullname().to_string();
        let daemon = ServiceDaemon::new()?;
        // (a step that fails stops what the ones before it started: the
        // daemon's thread, an announcement already registered)
        let events = start(&daemon, &config, info.clone())
            .inspect_err(|_| stop_daemon(&daemon, &fullname))?;
        let run = Arc::new(Run {
            daemon: Mutex::new(Current {
                daemon: Some(daemon),
                ended: false,
            }),
            fullname: fullname.clone(),
            restarts: AtomicU64::new(0),
        });
        // Once the node stops accepting (its shutdown starts, or its last
        // handle is dropped) nothing answers behind the announcement, and
        // nothing is learned any more: the daemon stops, as when the
        // `Discovery` is dropped (the announcement withdrawn, mDNS says
        // goodbye; browsing ended, its sockets closed), rather than kept
        // through the shutdown's grace, or until the `Discovery` is
        // dropped. Until then the task learns, and watches the daemon
        // ([`watch`]).
        let shared = self.shared.clone();
        let watching = Watch {
            run: run.clone(),
            // (a weak handle: discovery serves the node while the
            // application holds it, and does not keep it open)
            node: self.downgrade(),
            runtime: self.runtime().clone(),
            config: config.clone(),
            info,
        };
        let task_claim = claim.share();
        let (alive, dropped) = oneshot::channel::<()>();
        self.runtime().spawn(async move {
            let _claim = task_claim;
            let stopping = shared.stopping.listen();
            let running = || shared.read(|inner| inner.phase) == Phase::Running;
            let run = watching.run.clone();
            if running() {
                first(
                    stopping,
                    first(dropped.into_future(), watch(watching, events)),
                )
                .await;
            }
            // (stopping, or gone; or the `Discovery` dropped, which has
            // ended the run: then this does nothing)
            tracing::debug!(name = %run.fullname, "LAN discovery stops");
            run.end();
        });
        let announced = Announced::of(listen.ip());
        match announced.warning(&config.interfaces) {
            Some(why) => tracing::warn!(%fullname, %listen, "{why}"),
            None => tracing::info!(%fullname, port, ?announced, "announcing on the local network"),
        }
        Ok(Discovery {
            run,
            alive: Some(alive),
            _claim: claim,
        })
    }

    /// Whether an announcement of `peer` can teach anything: it is
    /// trusted, and not this node.
    fn may_learn(&self, peer: &PeerId) -> bool {
        *peer != self.peer_id() && self.shared.read(|inner| inner.ep.trust().contains(peer))
    }

    /// An announcement was heard: `peer` listens at `addrs`. Adds the
    /// first [`MAX_HINTS_PER_ANNOUNCEMENT`] of them to the book as
    /// [`AddrSource::Discovery`] if `peer` is trusted (and not this node);
    /// otherwise nothing happens. Returns how many were new to the book.
    /// (An application that hears announcements of its own passes them
    /// here as they come: one of them, whatever its size, costs at most
    /// that many turns of the node's lock.)
    pub fn learn_from_discovery(&self, peer: PeerId, addrs: &[SocketAddr]) -> usize {
        if peer == self.peer_id() {
            return 0;
        }
        let mut added = 0;
        for addr in addrs.iter().take(MAX_HINTS_PER_ANNOUNCEMENT) {
            match self.add_address(peer, *addr, AddrSource::Discovery) {
                Ok(changed) => added += usize::from(changed),
                Err(BookError::NotTrusted(_)) => {
                    tracing::trace!(%peer, "announcement of an untrusted peer ignored");
                    return 0;
                }
                Err(error) => tracing::debug!(%peer, %addr, %error, "discovered address not added"),
            }
        }
        if added > 0 {
            tracing::debug!(%peer, added, "addresses learned from discovery");
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::Identity;

    /// An announcement names a peer by its TXT record; one of a peer not
    /// wanted (untrusted, or this node) is read no further: none of its
    /// addresses costs a look at an interface.
    #[test]
    fn an_announcement_names_a_peer_and_its_addresses() {
        let peer = Identity::from_seed(&[1; 32]).peer_id();
        let id = peer.to_string();
        let heard = [
            ScopedIp::from(ip("192.0.2.1")),
            ScopedIp::from(ip("2001:db8::1")),
        ];
        let no_interface = |_: &InterfaceId| -> Vec<IpAddr> { panic!("an interface was listed") };
        let (got, read) = hints(Some(&id), 4000, &heard, |_| true, no_interface).unwrap();
        assert_eq!(got, peer);
        let mut read = read;
        read.sort();
        let want: Vec<SocketAddr> = vec![
            "192.0.2.1:4000".parse().unwrap(),
            "[2001:db8::1]:4000".parse().unwrap(),
        ];
        assert_eq!(read, want);
        assert!(hints(None, 4000, &heard, |_| true, no_interface).is_none());
        assert!(hints(Some("not a peer"), 4000, &heard, |_| true, no_interface).is_none());
        // (a loopback address heard on an interface would be looked at)
        let on_lan = mdns_sd::InterfaceId {
            name: "eth0".into(),
            index: 2,
        };
        let lo = [ScopedIp::V4(mdns_sd::ScopedIpV4::new(
            [127, 0, 0, 1].into(),
            on_lan,
        ))];
        assert!(hints(Some(&id), 4000, &lo, |p| *p != peer, no_interface).is_none());
        // (a fresh name each time, a DNS label of at most 63 bytes)
        let name = instance_name().unwrap();
        assert_eq!(name.len(), 32);
        assert_ne!(name, instance_name().unwrap());
        assert!(!name.contains(&id[..8]));
    }

    /// One announcement of a trusted peer can carry hundreds of
    /// addresses (a LAN host chooses them): the OS is asked for an
    /// interface's addresses once per interface heard on, not once per
    /// address, and at most [`MAX_HINTS_PER_ANNOUNCEMENT`] addresses go to
    /// the book. It was one interface listing (a netlink dump) per
    /// announced loopback address, each announcement's, untrusted ones
    /// too, on the node's runtime, and every address went to the book.
    #[test]
    fn a_huge_announcement_costs_one_look_per_interface() {
        let peer = Identity::from_seed(&[1; 32]).peer_id();
        let id = peer.to_string();
        let lan = |index| mdns_sd::InterfaceId {
            name: format!("eth{index}"),
            index,
        };
        let mut heard = Vec::new();
        for k in 0..500u32 {
            let [_, _, hi, lo] = k.to_be_bytes();
            let heard_on = lan(k % 2 + 2);
            heard.push(ScopedIp::V4(mdns_sd::ScopedIpV4::new(
                [127, 1, hi, lo].into(),
                heard_on.clone(),
            )));
            heard.push(ScopedIp::V4(mdns_sd::ScopedIpV4::new(
                [192, 0, hi, lo].into(),
                heard_on,
            )));
        }
        let mut looks = 0;
        let (_, addrs) = hints(
            Some(&id),
            4000,
            &heard,
            |_| true,
            |_| {
                looks += 1;
                vec![ip("192.0.2.99")]
            },
        )
        .unwrap();
        assert!(
            looks <= 2,
            "{looks} interface listings for one announcement"
        );
        assert_eq!(addrs.len(), MAX_HINTS_PER_ANNOUNCEMENT);
        assert!(addrs.iter().all(|a| !a.ip().is_loopback()), "{addrs:?}");
    }

    /// A LAN host cannot make this node dial its own loopback services:
    /// a loopback address counts only when heard on a loopback interface.
    /// A link-local IPv6 address keeps the scope it was heard on, or is
    /// dropped when there is none (no dial could reach it).
    #[test]
    fn only_addresses_dialable_from_here_are_hints() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        // heard from the network
        assert_eq!(dialable_hint(ip("127.0.0.1"), 22, 0, false), None);
        assert_eq!(dialable_hint(ip("127.8.9.1"), 22, 2, false), None);
        assert_eq!(dialable_hint(ip("::1"), 22, 2, false), None);
        assert_eq!(dialable_hint(ip("::ffff:127.0.0.1"), 22, 2, false), None);
        assert_eq!(
            dialable_hint(ip("::ffff:127.0.0.1"), 4000, 0, true),
            Some(at("127.0.0.1:4000"))
        );
        assert_eq!(
            dialable_hint(ip("192.0.2.7"), 4000, 0, false),
            Some(at("192.0.2.7:4000"))
        );
        // heard on loopback: this host's own announcement
        assert_eq!(
            dialable_hint(ip("127.0.0.1"), 4000, 0, true),
            Some(at("127.0.0.1:4000"))
        );
        // link-local IPv6
        assert_eq!(dialable_hint(ip("fe80::1"), 4000, 0, false), None);
        assert_eq!(
            dialable_hint(ip("fe80::1"), 4000, 3, false),
            Some(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                4000,
                0,
                3
            )))
        );
        // an address of the machine's loopback interface, as mDNS reports
        // it: heard there, it is kept; heard on no interface, dropped
        let lo = if_addrs_loopback();
        let os = &mut |interface: &InterfaceId| {
            let addrs = interface.get_addrs();
            !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
        };
        if let Some(lo) = lo {
            let heard = ScopedIp::V4(mdns_sd::ScopedIpV4::new("127.0.0.1".parse().unwrap(), lo));
            assert_eq!(heard_addr(&heard, 4000, os), Some(at("127.0.0.1:4000")));
        }
        let nowhere = ScopedIp::from(ip("127.0.0.1"));
        assert_eq!(heard_addr(&nowhere, 4000, os), None);
    }

    /// A node announces only the addresses it listens on: one listening
    /// on the loopback names `127.0.0.1` alone (mDNS then sends it on the
    /// loopback only). It used to name every address of the host, with
    /// the loopback listener's port, on every interface: the LAN learned
    /// its PeerId and addresses where nothing of it listened.
    #[test]
    fn a_node_announces_only_the_addresses_it_listens_on() {
        let me = Identity::from_seed(&[1; 32]).peer_id();
        let info = |listen: &str| service_info(&me, "name", listen.parse().unwrap()).unwrap();
        let only = |ip: &str| std::collections::HashSet::from([ip.parse::<IpAddr>().unwrap()]);
        for (listen, ip) in [
            ("127.0.0.1:4000", "127.0.0.1"),
            ("[::1]:4000", "::1"),
            ("192.0.2.5:4000", "192.0.2.5"),
            ("[::ffff:192.0.2.5]:4000", "192.0.2.5"),
            ("[2001:db8::5]:4000", "2001:db8::5"),
        ] {
            let info = info(listen);
            // (it follows the host's addresses, limited to this one: it is
            // announced once its interface comes up, however late)
            assert!(
                info.is_addr_auto(),
                "{listen}: not announced when its interface comes up"
            );
            assert_eq!(info.get_addresses(), &only(ip), "{listen}");
            assert_eq!(info.get_port(), 4000);
            assert_eq!(
                info.get_property_val_str(TXT_ID),
                Some(me.to_string().as_str())
            );
        }
        // any address: the host's, as the interfaces change
        for listen in ["0.0.0.0:4000", "[::]:4000"] {
            let info = info(listen);
            assert!(
                info.is_addr_auto() && info.get_addresses().is_empty(),
                "{listen}"
            );
        }
        assert_eq!(Announced::of(ip("0.0.0.0")), Announced::EveryV4);
        assert_eq!(Announced::of(ip("::ffff:0.0.0.0")), Announced::EveryV4);
        assert_eq!(Announced::of(ip("::")), Announced::Every);
    }

    /// A node announced on no interface discovery uses is warned about:
    /// a loopback listener with only LAN interfaces named (it was told
    /// "announced there only"), a LAN one with only the loopback, an
    /// IPv6 one with only IPv4 interfaces (both were "announcing on the
    /// local network"); and so is a link-local listener announced on
    /// every link (its scope is lost: mDNS sends it on every interface
    /// with a link-local address, and its PeerId goes there too).
    #[test]
    fn a_node_announced_nowhere_is_warned() {
        let only = |s: &str| Announced::Only(ip(s));
        let ips = |list: &[&str]| list.iter().map(|s| ip(s)).collect::<Vec<_>>();
        let nowhere = |a: Announced, on: &[&str]| {
            a.warning(&ips(on))
                .is_some_and(|why| why.contains("announced nowhere"))
        };
        assert!(nowhere(only("127.0.0.1"), &["192.0.2.1"]));
        assert!(nowhere(only("127.0.0.1"), &["::1"]));
        assert!(nowhere(only("192.0.2.5"), &["127.0.0.1"]));
        assert!(nowhere(only("2001:db8::5"), &["192.0.2.1"]));
        assert!(nowhere(Announced::EveryV4, &["2001:db8::1"]));
        // heard somewhere
        assert_eq!(only("192.0.2.5").warning(&[]), None);
        assert_eq!(only("192.0.2.5").warning(&ips(&["192.0.2.1"])), None);
        assert_eq!(only("127.0.0.1").warning(&ips(&["127.0.0.1"])), None);
        assert_eq!(Announced::Every.warning(&ips(&["127.0.0.1"])), None);
        assert_eq!(Announced::EveryV4.warning(&ips(&["192.0.2.1"])), None);
        // a link-local listener, on every link that has a link-local
        // address unless the listening one alone is named
        let overheard = |on: &[&str]| {
            only("fe80::1")
                .warning(&ips(on))
                .is_some_and(|why| why.contains("announced on every link"))
        };
        assert!(overheard(&[]));
        assert!(overheard(&["fe80::1", "fe80::2"]));
        assert!(!overheard(&["fe80::1"]));
        assert!(!overheard(&["fe80::1", "192.0.2.1"]));
        // on the loopback alone, other hosts asked for
        for on in [&[][..], &["127.0.0.1", "192.0.2.1"][..]] {
            let why = only("127.0.0.1").warning(&ips(on)).unwrap();
            assert!(why.contains("other hosts cannot find"), "{on:?}: {why}");
        }
    }

    /// The cache's bound counts every kind of record `mdns-sd` keeps,
    /// and its timers apart; the other metrics do not count.
    #[test]
    fn the_mdns_cache_bound_counts_every_kind_of_record() {
        let metrics = |pairs: &[(&str, usize)]| -> mdns_sd::Metrics {
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), i64::try_from(*n).unwrap()))
                .collect()
        };
        let a_sixth = MAX_MDNS_CACHED_RECORDS / 6 + 1;
        let kinds = [
            "cached-ptr",
            "cached-srv",
            "cached-txt",
            "cached-addr",
            "cached-nsec",
            "cached-subtype",
        ];
        let each: Vec<(&str, usize)> = kinds.iter().map(|k| (*k, a_sixth)).collect();
        assert!(matches!(
            over_bounds(&metrics(&each)),
            Some(Restart::Cache { records, .. }) if records == 6 * a_sixth
        ));
        let within: Vec<(&str, usize)> = kinds.iter().map(|k| (*k, a_sixth - 2)).collect();
        assert!(over_bounds(&metrics(&within)).is_none());
        assert!(over_bounds(&metrics(&[("timer", MAX_MDNS_TIMERS + 1)])).is_some());
        assert!(
            over_bounds(&metrics(&[
                ("timer", MAX_MDNS_TIMERS),
                ("respond", 1 << 40)
            ]))
            .is_none()
        );
        assert!(over_bounds(&metrics(&[("cached-ptr", MAX_MDNS_CACHED_RECORDS)])).is_none());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The machine's loopback interface as mDNS names it, if it has one.
    fn if_addrs_loopback() -> Option<mdns_sd::InterfaceId> {
        (1..64).find_map(|index| {
            let id = mdns_sd::InterfaceId {
                name: String::new(),
                index,
            };
            let addrs = id.get_addrs();
            (!addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)).then_some(id)
        })
    }
}
