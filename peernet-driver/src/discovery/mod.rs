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
//!   hint; a REJECT `busy`, or version 2's `untrusted`, keeps it: the
//!   address answered as the peer),
//!   and a hint never pushes out an address the application or a
//!   ticket gave. At most [`MAX_HINTS_PER_ANNOUNCEMENT`] addresses of
//!   one announcement are taken;
//! - so a LAN host announcing a trusted peer's PeerId with addresses of
//!   its choosing (any IP, not only the LAN's, but loopback) can make the
//!   node open connections there, and tell from them that the node keeps
//!   that peer: only for a peer kept connected that is not connected (or
//!   one the application dials), at most
//!   [`HINTS_PER_ROUND`](peernet_proto::dial::HINTS_PER_ROUND) (2) hints
//!   that never worked per round, one at a time, the rounds the backoff
//!   apart (in the long run 2 connection attempts per 22.5 to 30 s); the
//!   other hints wait for later rounds, each in turn; each dial sends the
//!   first handshake frame, which in
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
//!   cache empty, announces the node again and browses anew; so too once
//!   it told of more than [`MAX_MDNS_INSTANCES`] instances (`mdns-sd`
//!   remembers the name of each instance it resolved, after its records
//!   expired too, out of its cache's count);
//! - a LAN host that announces more instances at once than mDNS's event
//!   channel holds (1,000: `mdns-sd` then ends the browsing) does not
//!   leave the node deaf: mDNS is started afresh the same way;
//! - a host flooding without pause makes that happen at most once per
//!   [`MDNS_RESTART_INTERVAL`], each time with a warning (the 1st, 2nd,
//!   4th...), counted by [`Discovery::restarts`]; between a daemon
//!   stopped for its cache and the next start the node is neither heard
//!   nor hearing (the LAN's caches keep its announcement);
//! - the next daemon starts only once the one stopped has ended, so one
//!   runs at a time. `mdns-sd` reads a stop (and a question about its
//!   cache) only once no packet waits on its socket: while a host sends
//!   faster than mDNS reads, the daemon runs on, learns nothing, and its
//!   memory grows with the flood's length, not past it (it is let go
//!   once the flood ends).
//!
//! mDNS runs on a thread of `mdns-sd`'s own; the node's runtime only runs
//! a task reading its events and, every [`MDNS_CHECK_INTERVAL`], asking
//! the daemon for the size of its cache.
//!
//! The rooms: this one has the public face (the configuration, the
//! errors, the [`Discovery`] handle and `Node::discover_lan`); what is
//! announced is `announce.rs`'s, what an announcement teaches
//! `hints.rs`'s, and the mDNS daemon of a run (its start and stop, its
//! bounds, the task that learns and watches it) `daemon.rs`'s.

mod announce;
mod daemon;
mod hints;
#[cfg(test)]
mod tests;

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mdns_sd::ServiceDaemon;
use peernet_proto::{AddrSource, BookError, PeerId};

use crate::node::Node;
use crate::runtime::Runtime;
use crate::shared::Phase;
use crate::tasks::first;

pub use daemon::{
    MAX_MDNS_CACHED_RECORDS, MAX_MDNS_INSTANCES, MAX_MDNS_TIMERS, MDNS_CHECK_INTERVAL,
    MDNS_RESTART_INTERVAL,
};
pub use hints::{MAX_HINTS_PER_ANNOUNCEMENT, dialable_hint};

use announce::{Announced, instance_name, service_info};
use daemon::{Current, Run, Watch, start, stop_daemon, watch};

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
    /// for a test that must not send to a real network. An address that
    /// no interface of the host has is refused when discovery starts
    /// ([`DiscoveryError::NoSuchInterface`], see
    /// [`DiscoveryConfig::check`]).
    pub fn interface(mut self, ip: IpAddr) -> DiscoveryConfig {
        self.interfaces.push(ip);
        self
    }

    /// Checks the interface addresses named ([`DiscoveryConfig::interface`])
    /// against the host's, as [`Node::discover_lan`] does before it
    /// starts mDNS: [`DiscoveryError::NoSuchInterface`] for the first one
    /// that no interface of the host has (a typo would leave a node that
    /// announces and hears nothing, silently). For an application that
    /// checks its settings before it starts its node, as `peernet serve
    /// --mdns-interface` does. When the host's interfaces cannot be
    /// listed, nothing is refused (mDNS then uses what it finds), with a
    /// warning.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::NoSuchInterface`], naming the address.
    pub fn check(&self) -> Result<(), DiscoveryError> {
        if self.interfaces.is_empty() {
            return Ok(());
        }
        let host = match if_addrs::get_if_addrs() {
            Ok(host) => host,
            Err(error) => {
                tracing::warn!(%error, "cannot list interface addresses: the interfaces named for LAN discovery are not checked");
                return Ok(());
            }
        };
        match self
            .interfaces
            .iter()
            .find(|ip| !host.iter().any(|i| i.ip() == **ip))
        {
            Some(ip) => Err(DiscoveryError::NoSuchInterface(*ip)),
            None => Ok(()),
        }
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
    #[error("mDNS could not start")]
    Mdns(#[from] mdns_sd::Error),
    /// The operating system gave no randomness for the instance name.
    #[error("no entropy from the operating system")]
    Entropy(#[source] getrandom::Error),
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
    /// An address named for discovery ([`DiscoveryConfig::interface`])
    /// that no interface of the host has: discovery would announce and
    /// hear nothing there. Refused before mDNS starts.
    #[error("no interface of this host has the address {0}")]
    NoSuchInterface(IpAddr),
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

/// LAN discovery of a node, running until dropped or until its node
/// stops accepting (its shutdown starts, or its last handle goes),
/// whichever comes first: either stops its mDNS daemon, which withdraws
/// the announcement (mDNS says goodbye), stops browsing (no more queries
/// are sent) and closes its sockets. One at a time per node.
///
/// While it runs, it starts mDNS afresh (a new daemon, its cache empty,
/// the same announcement) when the daemon's cache grows past
/// [`MAX_MDNS_CACHED_RECORDS`] or [`MAX_MDNS_TIMERS`], when it told of
/// more than [`MAX_MDNS_INSTANCES`] instances, or when mDNS ends its
/// browsing (more heard at once than was read in time): a LAN host can
/// do any of these at will. At most once per [`MDNS_RESTART_INTERVAL`];
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

#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
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
    /// or it tell of more than [`MAX_MDNS_INSTANCES`] instances,
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
    /// [`DiscoveryError::NoSuchInterface`] for an address named by
    /// [`DiscoveryConfig::interface`] that no interface of the host has
    /// ([`DiscoveryConfig::check`]);
    /// [`DiscoveryError::AlreadyRunning`] while an earlier [`Discovery`]
    /// of this node is alive; [`DiscoveryError::Mdns`] when mDNS cannot
    /// start.
    pub fn discover_lan(&self, config: DiscoveryConfig) -> Result<Discovery, DiscoveryError> {
        if self.shared.read(|inner| inner.phase) != Phase::Running {
            return Err(DiscoveryError::ShuttingDown);
        }
        let listen = self.local_addr().ok_or(DiscoveryError::NotListening)?;
        config.check()?;
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
                stopping: None,
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
    /// An address the book refuses ([`peernet_proto::is_dialable`]: port
    /// 0, an unspecified, multicast or broadcast IP, an unscoped
    /// link-local IPv6 address) and a repeat of one already taken (in any
    /// spelling: `[::ffff:192.0.2.1]:4000` is `192.0.2.1:4000`) take no
    /// place among them, so that a LAN host cannot push a peer's real
    /// address out of the bound with such ones put first. (An application
    /// that hears announcements of its own passes them here as they come:
    /// one of them, whatever its size, costs at most that many turns of
    /// the node's lock. A loopback address is taken as it is: to keep the
    /// rule mDNS's own path follows, that one counts only if heard from
    /// this host, pass each address through [`dialable_hint`] first.)
    pub fn learn_from_discovery(&self, peer: PeerId, addrs: &[SocketAddr]) -> usize {
        if peer == self.peer_id() {
            return 0;
        }
        // (checked here, without the node's lock: only addresses the book
        // may take count against the bound)
        let mut taken: Vec<SocketAddr> = Vec::with_capacity(MAX_HINTS_PER_ANNOUNCEMENT);
        for addr in addrs {
            let addr = peernet_proto::book::canonical(*addr);
            if taken.len() == MAX_HINTS_PER_ANNOUNCEMENT {
                break;
            }
            if peernet_proto::is_dialable(&addr) && !taken.contains(&addr) {
                taken.push(addr);
            }
        }
        let mut added = 0;
        for addr in taken {
            match self.add_address(peer, addr, AddrSource::Discovery) {
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
