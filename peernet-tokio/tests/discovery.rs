//! LAN discovery (feature `mdns`): the logic beneath, announcement →
//! book → dial, deterministically; then real mDNS on the loopback
//! interface where the kernel allows multicast there.

#[path = "common/until.rs"]
mod until;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use peernet_conformance::netns::{LOOPBACK, here_with_loopback_multicast, in_own_netns};
use peernet_tokio::discovery::DiscoveryConfig;
use peernet_tokio::{AddrSource, Identity, Node, NodeConfig, NodeEvent, PeerId};

#[path = "common/lines.rs"]
mod lines;

fn id(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

fn peer(seed: u8) -> PeerId {
    id(seed).peer_id()
}

async fn node(seed: u8, trusts: &[u8]) -> Node {
    node_at(seed, trusts, "127.0.0.1:0").await
}

async fn node_at(seed: u8, trusts: &[u8], listen: &str) -> Node {
    let mut config = NodeConfig::new(id(seed));
    for t in trusts {
        config = config.trusting(peer(*t));
    }
    Node::bind(config, listen.parse().unwrap()).await.unwrap()
}

async fn connected(events: &peernet_tokio::EventStream, to: PeerId) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let NodeEvent::Connected { peer, .. } = events.recv().await.unwrap() {
                if peer == to {
                    return;
                }
            }
        }
    })
    .await
    .expect("connected within 15 s");
}

fn dead_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Discovery on the loopback interface only.
fn loopback() -> DiscoveryConfig {
    DiscoveryConfig::new().interface(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// mDNS's IPv4 group and port.
const MDNS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(224, 0, 0, 251),
    5353,
));

/// A kept peer with no address is dialed once an announcement names it;
/// a false address in the same announcement costs one failed dial; an
/// untrusted peer's announcement changes nothing; our own is ignored.
#[tokio::test]
async fn an_announcement_of_a_trusted_peer_feeds_the_book_and_the_dial() {
    let a = node(1, &[2]).await;
    let b = node(2, &[1]).await;
    let c = node(3, &[1]).await;
    let events = a.events();
    a.keep_connected(peer(2), true).unwrap();
    assert!(a.addresses(&peer(2)).is_empty());

    // untrusted: nothing stored, nothing dialed
    assert_eq!(
        a.learn_from_discovery(peer(3), &[c.local_addr().unwrap()]),
        0
    );
    assert!(a.addresses(&peer(3)).is_empty());
    assert_eq!(
        a.learn_from_discovery(peer(1), &[a.local_addr().unwrap()]),
        0
    );

    let heard = [dead_address(), b.local_addr().unwrap()];
    assert_eq!(a.learn_from_discovery(peer(2), &heard), 2);
    connected(&events, peer(2)).await;
    let book = a.addresses(&peer(2));
    assert!(book.iter().all(|e| e.source == AddrSource::Discovery));
    assert_eq!(book[0].addr, b.local_addr().unwrap(), "{book:?}");
    assert!(
        !c.is_connected(&peer(1)),
        "the untrusted peer was never dialed"
    );
}

/// One call of `learn_from_discovery` takes at most
/// `MAX_HINTS_PER_ANNOUNCEMENT` addresses, as one mDNS announcement does:
/// it is the entry point for an application's own announcements, whose
/// size a LAN host chooses. It used to take every address (each a turn
/// of the node's lock), bounded only by the book's room for the peer.
#[tokio::test]
async fn one_discovery_call_adds_at_most_a_bounded_number_of_addresses() {
    use peernet_tokio::discovery::MAX_HINTS_PER_ANNOUNCEMENT;
    let room = 4 * MAX_HINTS_PER_ANNOUNCEMENT;
    let mut protocol = peernet_tokio::Config::default();
    protocol.max_addresses_per_peer = room;
    let config = NodeConfig::new(id(1)).trusting(peer(2)).protocol(protocol);
    let a = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let heard: Vec<SocketAddr> = (1..=u16::try_from(room).unwrap())
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port))
        .collect();
    assert_eq!(
        a.learn_from_discovery(peer(2), &heard),
        MAX_HINTS_PER_ANNOUNCEMENT
    );
    assert_eq!(a.addresses(&peer(2)).len(), MAX_HINTS_PER_ANNOUNCEMENT);
    // (another announcement adds its own, up to the book's room)
    assert_eq!(
        a.learn_from_discovery(peer(2), &heard[MAX_HINTS_PER_ANNOUNCEMENT..]),
        MAX_HINTS_PER_ANNOUNCEMENT
    );
}

/// Review s52 (revo): addresses the book refuses (port 0, unspecified,
/// multicast), and repeats of one address in any spelling, take no
/// place of an announcement's `MAX_HINTS_PER_ANNOUNCEMENT` in
/// `learn_from_discovery`, as they take none in mDNS's own path
/// (`hints.rs`). They did: a LAN host that put 16 of them before a
/// trusted peer's real address, in an announcement an application
/// passed on, had that address dropped unread.
#[tokio::test]
async fn refused_and_repeated_addresses_take_no_place_of_a_hint() {
    use peernet_tokio::discovery::MAX_HINTS_PER_ANNOUNCEMENT;
    let a = node(1, &[2]).await;
    let real: SocketAddr = "192.0.2.9:4000".parse().unwrap();
    let again: SocketAddr = "[::ffff:192.0.2.9]:4000".parse().unwrap();
    let refused = [
        "192.0.2.1:0",
        "0.0.0.0:4000",
        "[::]:4000",
        "224.0.0.251:5353",
        "255.255.255.255:4000",
        "[fe80::1]:4000",
    ];
    let mut heard: Vec<SocketAddr> = refused
        .iter()
        .cycle()
        .take(MAX_HINTS_PER_ANNOUNCEMENT)
        .map(|a| a.parse().unwrap())
        .collect();
    heard.insert(0, real);
    heard.extend(std::iter::repeat_n(again, MAX_HINTS_PER_ANNOUNCEMENT));
    let last: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    heard.push(last);
    assert_eq!(a.learn_from_discovery(peer(2), &heard), 2);
    let book: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert!(book.contains(&real) && book.contains(&last), "{book:?}");
}

/// [`LOOPBACK`] and a LAN of two interfaces wired to each other (a veth
/// pair): `v0` with 10.9.9.1/24 and `v1` with 10.9.9.2/24. What one sends
/// the other hears (`accept_local`: the sender's address is this
/// namespace's own), so a node heard on `v1` only is another host's view.
/// The links are left down: a test sets them up with [`set_lan_up`],
/// which returns once the kernel runs them (set up here, they would run
/// a moment after the test started, mDNS not yet using them).
const LAN: &str = "ip link set lo up && ip link set lo multicast on \
    && ip link add v0 type veth peer name v1 \
    && ip addr add 10.9.9.1/24 dev v0 && ip addr add 10.9.9.2/24 dev v1 \
    && sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.v1.rp_filter=0 \
       net.ipv4.conf.all.accept_local=1 net.ipv4.conf.v1.accept_local=1";

/// Sets up both links of a [`LAN`] and returns once the kernel runs
/// them (operationally up, as `ip link` shows it), so that mDNS sees them.
/// (The kernel tells no one: watched for a bounded while, each look a run
/// of `ip link`.)
async fn set_lan_up() {
    for link in ["v0", "v1"] {
        let status = std::process::Command::new("ip")
            .args(["link", "set", link, "up"])
            .status()
            .unwrap();
        assert!(status.success(), "ip link set {link} up: {status}");
    }
    let runs = |link: &str| {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", link])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(" state UP ")
    };
    until::until("the LAN's links run", || runs("v0") && runs("v1")).await;
}

/// Whether the loopback of this network namespace has joined the mDNS
/// group (224.0.0.251, as `/proc/net/igmp` lists it): an mDNS daemon of
/// this process has started and has listed the interfaces it uses, which
/// it does first.
fn loopback_joined_mdns() -> bool {
    let igmp = std::fs::read_to_string("/proc/net/igmp").unwrap_or_default();
    // (a line per device, then a line per group it joined, indented: the
    // group's address in hex, as the kernel holds it in memory)
    let mdns = u32::from_ne_bytes([224, 0, 0, 251]);
    let mut on_lo = false;
    for line in igmp.lines().skip(1) {
        let mut fields = line.split_whitespace();
        if !line.starts_with('\t') {
            on_lo = fields.nth(1) == Some("lo");
        } else if on_lo && fields.next().and_then(|g| u32::from_str_radix(g, 16).ok()) == Some(mdns)
        {
            return true;
        }
    }
    false
}

/// A plain mDNS browser of peernet's service type on the loopback: what
/// another host's resolver hears.
struct Browser {
    daemon: mdns_sd::ServiceDaemon,
    heard: mdns_sd::Receiver<mdns_sd::ServiceEvent>,
}

impl Browser {
    fn on_loopback() -> Browser {
        use mdns_sd::{IfKind, ServiceDaemon};
        let daemon = ServiceDaemon::new().unwrap();
        daemon.disable_interface(IfKind::All).unwrap();
        daemon
            .enable_interface(IfKind::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let heard = daemon
            .browse(peernet_tokio::discovery::SERVICE_TYPE)
            .unwrap();
        Browser { daemon, heard }
    }

    /// The full name of the instance that announces `peer`, once
    /// resolved (the test fails after `within`).
    async fn resolved(&self, peer: PeerId, within: Duration) -> String {
        let id = peer.to_string();
        let resolving = async {
            loop {
                let event = self.heard.recv_async().await.unwrap();
                if let mdns_sd::ServiceEvent::ServiceResolved(service) = event {
                    if service.get_property_val_str("id") == Some(id.as_str()) {
                        break service.get_fullname().to_string();
                    }
                }
            }
        };
        tokio::time::timeout(within, resolving)
            .await
            .unwrap_or_else(|_| panic!("{peer} resolved within {within:?}"))
    }

    /// Starts `a`'s discovery on the loopback and waits until `a` (the
    /// node of seed 1) is [resolved](Browser::resolved): its discovery
    /// (the caller keeps it) and its instance's full name.
    async fn announced(
        &self,
        a: &Node,
        within: Duration,
    ) -> (peernet_tokio::discovery::Discovery, String) {
        let discovery = a.discover_lan(loopback()).expect("mdns for a");
        (discovery, self.resolved(peer(1), within).await)
    }

    /// Returns once the instance `name` is heard removed (its goodbye);
    /// the test fails with `what` after `within`. (An announcement's
    /// records live 120 s and more, `mdns-sd`'s TTLs: a removal heard
    /// within seconds is the goodbye, never an expiry.)
    async fn removed(&self, name: &str, within: Duration, what: &str) {
        let removal = async {
            loop {
                let event = self.heard.recv_async().await.unwrap();
                if let mdns_sd::ServiceEvent::ServiceRemoved(_, removed) = event {
                    if removed == name {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(within, removal).await.expect(what);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// A node's announcement is withdrawn once the node is closed, its
/// `Discovery` still alive: a plain mDNS browser that resolved it hears
/// it removed (the goodbye). It used to stay announced until the
/// `Discovery` was dropped: the LAN kept hearing the PeerId, and peers
/// kept dialing a port nothing listened on.
#[tokio::test]
async fn a_closed_node_is_no_longer_announced() {
    if !here_with_loopback_multicast("a_closed_node_is_no_longer_announced") {
        return;
    }
    let browser = Browser::on_loopback();
    let a = node(1, &[]).await;
    let within = Duration::from_secs(15);
    let (_discovery, name) = browser.announced(&a, within).await;
    a.shutdown().await;
    browser
        .removed(&name, within, "a removed within 15 s of its close")
        .await;
}

/// A node's announcement is withdrawn as soon as its shutdown starts,
/// not once the grace is over: during the grace it no longer accepts, and
/// peers sent to it would be turned away. Here a handler holds a call
/// open, so the grace (a minute) runs on; the browser hears the node
/// removed while it does. It used to be withdrawn at the close only.
#[tokio::test]
async fn a_shutting_down_node_is_no_longer_announced() {
    if !here_with_loopback_multicast("a_shutting_down_node_is_no_longer_announced") {
        return;
    }
    let browser = Browser::on_loopback();
    let config = NodeConfig::new(id(1))
        .trusting(peer(2))
        .shutdown_grace(Duration::from_secs(60));
    let a = Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (started, running) = std::sync::mpsc::channel();
    a.expose("hold", move |_, _| {
        let started = started.clone();
        async move {
            let _ = started.send(());
            std::future::pending::<()>().await;
            Ok(bytes::Bytes::new())
        }
    })
    .unwrap();
    let within = Duration::from_secs(15);
    let (_discovery, name) = browser.announced(&a, within).await;
    let b = node(2, &[1]).await;
    b.connect(peer(1), a.local_addr().unwrap()).await.unwrap();
    let call = tokio::spawn(async move {
        let _ = b
            .call(&peer(1), "hold", "x", Duration::from_secs(120))
            .await;
    });
    tokio::task::spawn_blocking(move || running.recv_timeout(within))
        .await
        .unwrap()
        .expect("the handler runs");
    let shutdown = tokio::spawn(a.shutdown());
    browser
        .removed(
            &name,
            within,
            "a removed within 15 s of its shutdown's start",
        )
        .await;
    assert!(
        !shutdown.is_finished() && !call.is_finished(),
        "the grace was over: the test proves nothing"
    );
    call.abort();
}

/// A node runs one LAN discovery at a time: a second `discover_lan`
/// while the first `Discovery` is alive is refused (it used to start a
/// second mDNS daemon: two instances of one PeerId on the LAN, and every
/// announcement learned twice). Once the first is dropped, a new one
/// starts at once, and its old task, which ends later, does not free the
/// new one's claim: once that task has ended (the runtime runs the
/// second's task alone beside the node's), a third is still refused.
#[tokio::test]
async fn a_node_runs_one_discovery_at_a_time() {
    use peernet_tokio::discovery::DiscoveryError;
    let lo = loopback();
    let a = node(1, &[]).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let idle = metrics.num_alive_tasks();
    let first = match a.discover_lan(lo.clone()) {
        Ok(discovery) => discovery,
        Err(error) => {
            eprintln!("SKIPPED: mDNS cannot start here: {error}");
            return;
        }
    };
    assert_eq!(metrics.num_alive_tasks(), idle + 1, "a discovery's task");
    let refused = |what: Result<_, DiscoveryError>| {
        assert!(
            matches!(what, Err(DiscoveryError::AlreadyRunning)),
            "a second discovery of one node: {what:?}"
        );
    };
    refused(a.discover_lan(lo.clone()));
    drop(first);
    let _second = a
        .discover_lan(lo.clone())
        .expect("discovery starts again once the first is dropped");
    // (a task tells no one that it ended: looked at every 20 ms, at
    // most 20 s)
    until::until("the first discovery's task ends", || {
        metrics.num_alive_tasks() == idle + 1
    })
    .await;
    refused(a.discover_lan(lo));
}

/// A node whose shutdown has started, or that has closed, starts no LAN
/// discovery: `discover_lan` is refused with `ShuttingDown`, before mDNS
/// starts (no socket, nothing sent: this needs no multicast). It used to
/// start an mDNS daemon, announce the node, and withdraw the announcement
/// at once: for a moment the LAN heard of a node that turns peers away.
#[tokio::test]
async fn a_node_that_shuts_down_starts_no_discovery() {
    use peernet_tokio::discovery::DiscoveryError;
    let lo = loopback();
    let a = node(1, &[]).await;
    let shutdown = a.shutdown();
    let during = a.discover_lan(lo.clone());
    assert!(
        matches!(during, Err(DiscoveryError::ShuttingDown)),
        "discovery during the shutdown: {during:?}"
    );
    shutdown.await;
    let after = a.discover_lan(lo);
    assert!(
        matches!(after, Err(DiscoveryError::ShuttingDown)),
        "discovery after the close: {after:?}"
    );
}

/// An interface address that no interface of the host has is refused
/// by `discover_lan`, naming it, before mDNS starts (this needs no
/// multicast), and the node may start discovery afterwards. It used to
/// start, announce and hear nothing, and say nothing: only the CLI
/// checked the address.
#[tokio::test]
async fn an_interface_address_no_interface_has_is_refused() {
    use peernet_tokio::discovery::DiscoveryError;
    // (TEST-NET-3: documentation only, held by no host)
    let absent: IpAddr = "203.0.113.77".parse().unwrap();
    let a = node(1, &[]).await;
    let config = loopback().interface(absent);
    assert!(
        matches!(config.check(), Err(DiscoveryError::NoSuchInterface(ip)) if ip == absent),
        "{:?}",
        config.check()
    );
    let refused = a.discover_lan(config);
    assert!(
        matches!(&refused, Err(DiscoveryError::NoSuchInterface(ip)) if *ip == absent),
        "{refused:?}"
    );
    let said = refused.unwrap_err().to_string();
    assert!(said.contains("203.0.113.77"), "{said}");
    assert!(loopback().check().is_ok());
    if let Err(error) = a.discover_lan(loopback()) {
        // (mDNS may not start here; the refusal above kept no claim)
        assert!(!matches!(error, DiscoveryError::AlreadyRunning), "{error}");
    }
}

/// The mDNS daemons running in this process (their threads, named by
/// `mdns-sd`).
fn mdns_daemons() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "mDNS_daemon")
        .count()
}

/// Whether, within 10 s, [`mdns_daemons`] is `n`. (A thread neither
/// starts with its name nor tells anyone that it ended: watched for a
/// bounded while, each look a read of /proc.)
async fn mdns_daemons_become(n: usize) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while mdns_daemons() != n {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A node's shutdown stops its discovery's mDNS daemon, its `Discovery`
/// still alive: not only is the announcement withdrawn, browsing ends
/// too (the daemon's thread, the one that sends the queries, ends). It
/// used to browse on until the `Discovery` was dropped, for a node that
/// no longer learns anything.
///
/// Run in a network namespace of its own, alone in its process (the
/// daemons are counted process-wide).
#[tokio::test]
async fn a_shut_down_node_stops_browsing() {
    const NAME: &str = "a_shut_down_node_stops_browsing";
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let lo = loopback();
    let a = node(1, &[]).await;
    let discovery = a.discover_lan(lo).expect("mdns for a");
    assert!(
        mdns_daemons_become(1).await,
        "the node's daemon runs (named so within 10 s)"
    );
    a.shutdown().await;
    assert!(
        mdns_daemons_become(0).await,
        "the daemon still runs 10 s after the shutdown"
    );
    drop(discovery);
}

/// Real mDNS, on the loopback only (no packet leaves the machine): b
/// announces, a (keeping b, knowing no address) finds and dials it; c,
/// untrusted, announces too and is never stored.
#[tokio::test]
async fn real_mdns_on_the_loopback_finds_a_kept_peer() {
    // (root can give this test a network namespace of its own whose
    // loopback takes multicast: it runs again there)
    if !here_with_loopback_multicast("real_mdns_on_the_loopback_finds_a_kept_peer") {
        return;
    }
    let lo = loopback();
    let a = node(1, &[2]).await;
    let b = node(2, &[1]).await;
    let c = node(3, &[1]).await;
    let events = a.events();
    a.keep_connected(peer(2), true).unwrap();
    let _da = a.discover_lan(lo.clone()).expect("mdns for a");
    let _db = b.discover_lan(lo.clone()).expect("mdns for b");
    let _dc = c.discover_lan(lo).expect("mdns for c");
    connected(&events, peer(2)).await;
    assert!(
        a.addresses(&peer(2))
            .iter()
            .any(|e| e.source == AddrSource::Discovery
                && e.addr.port() == b.local_addr().unwrap().port())
    );
    assert!(a.addresses(&peer(3)).is_empty());
}

/// LAN discovery serves the node while the application holds it and does
/// not keep it open: with its `Discovery` still alive, dropping the last
/// `Node` closes the node (its peer is told goodbye). It once held a
/// handle of its own, which kept the node up for as long as the
/// `Discovery` lived.
#[tokio::test]
async fn a_running_discovery_does_not_keep_its_node_open() {
    let a = node(1, &[2]).await;
    let b = node(2, &[1]).await;
    let events = b.events();
    a.connect(peer(2), b.local_addr().unwrap()).await.unwrap();
    connected(&events, peer(1)).await;
    let lo = loopback();
    let _discovery = match a.discover_lan(lo) {
        Ok(discovery) => discovery,
        Err(error) => {
            eprintln!("SKIPPED: mDNS cannot start here: {error}");
            return;
        }
    };
    drop(a);
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let NodeEvent::Disconnected { peer: p, .. } = events.recv().await.unwrap() {
                if p == peer(1) {
                    return;
                }
            }
        }
    })
    .await
    .expect("the node closed once its last handle was dropped");
}

/// The LAN host o (seed 1, trusting `trusts`) on `v1` of a [`LAN`],
/// keeping c (seed 3), discovering on `v1`: returns once it connected to
/// c, with its discovery (the caller keeps it).
async fn o_finds_c(trusts: &[u8]) -> (Node, peernet_tokio::discovery::Discovery) {
    let o = node_at(1, trusts, "10.9.9.2:0").await;
    let events = o.events();
    o.keep_connected(peer(3), true).unwrap();
    let v1 = DiscoveryConfig::new().interface("10.9.9.2".parse().unwrap());
    let discovery = o.discover_lan(v1).expect("mdns for o");
    connected(&events, peer(3)).await;
    (o, discovery)
}

/// Whether `o`'s book holds `c` (seed 3) at the address `c` listens on.
fn heard_at(o: &Node, c: &Node) -> bool {
    o.addresses(&peer(3))
        .iter()
        .any(|e| e.addr == c.local_addr().unwrap())
}

/// A node that listens on the loopback only is announced on the loopback
/// only: a host on the LAN never hears its PeerId. It used to be
/// announced on every interface, naming the host's addresses with the
/// loopback listener's port, where nothing of it listened.
///
/// In a network namespace of its own with a [`LAN`]: b listens on
/// 127.0.0.1 and announces on every interface; c, the control, listens on
/// `v0`; the LAN host o hears on `v1` only and trusts both. Once o has
/// heard of c (and connected to it), b (announced first) would have been
/// heard too; o is watched a while longer for it.
#[tokio::test]
async fn a_loopback_listener_is_not_announced_on_the_lan() {
    const NAME: &str = "a_loopback_listener_is_not_announced_on_the_lan";
    if !in_own_netns(NAME, LAN) {
        return;
    }
    set_lan_up().await;
    let ears = lan_ears();
    let b = node(2, &[1]).await;
    let _db = b.discover_lan(DiscoveryConfig::new()).expect("mdns for b");
    let c = node_at(3, &[1], "10.9.9.1:0").await;
    let _dc = c.discover_lan(DiscoveryConfig::new()).expect("mdns for c");
    let (o, _do) = o_finds_c(&[2, 3]).await;
    assert!(heard_at(&o, &c), "c was heard on the LAN");
    // (an absence: watched for a bounded while, each look a cheap read;
    // long enough for b's browse to query again, at 1, 2, 4 s...)
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let heard = o.addresses(&peer(2));
        assert!(
            heard.is_empty(),
            "the LAN heard of the loopback listener: {heard:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // nor does any packet on the LAN name it, in full or by the first
    // half of its PeerId
    let id = peer(2).to_string();
    let said: Vec<Vec<u8>> = ears.try_iter().collect();
    assert!(!said.is_empty(), "the LAN's mDNS was not heard");
    for packet in &said {
        for name in [&id[..], &id[..32]] {
            assert!(
                !packet
                    .windows(name.len())
                    .any(|w| w.eq_ignore_ascii_case(name.as_bytes())),
                "a packet on the LAN names b: {}",
                String::from_utf8_lossy(packet)
            );
        }
    }
}

/// A node whose listening interface comes up after its discovery started
/// is announced there once mDNS sees the interface: a LAN host finds it.
/// c listens on `v0`'s address and starts discovery while the [`LAN`]'s
/// links are down; once they run, o (on `v1`, keeping c) connects to it.
/// It was never announced there: mDNS took a node's one address as fixed
/// and, an interface added later, announced only services that follow
/// the host's addresses. So a node started before its network (the
/// [`LAN`] test racing the kernel's link set-up) stayed unknown to it.
#[tokio::test]
async fn a_listener_whose_interface_comes_up_later_is_announced_there() {
    const NAME: &str = "a_listener_whose_interface_comes_up_later_is_announced_there";
    if !in_own_netns(NAME, LAN) {
        return;
    }
    let c = node_at(3, &[1], "10.9.9.1:0").await;
    let _dc = c.discover_lan(DiscoveryConfig::new()).expect("mdns for c");
    // (its daemon lists the interfaces on its thread: only once it has,
    // the links down, do they come up)
    until::until(
        "c's mDNS daemon joins the mDNS group on the loopback",
        loopback_joined_mdns,
    )
    .await;
    set_lan_up().await;
    let (o, _do) = o_finds_c(&[3]).await;
    assert!(heard_at(&o, &c), "c was heard on the LAN");
}

/// [`LAN`] with more IPv4 addresses on `v0`: 10.9.9.3/24 on its
/// network, 10.9.8.1/24 on another.
const LAN_MORE: &str = concat!(
    "ip link set lo up && ip link set lo multicast on \
    && ip link add v0 type veth peer name v1 \
    && ip addr add 10.9.9.1/24 dev v0 && ip addr add 10.9.9.2/24 dev v1 \
    && sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.v1.rp_filter=0 \
       net.ipv4.conf.all.accept_local=1 net.ipv4.conf.v1.accept_local=1",
    " && ip addr add 10.9.9.3/24 dev v0 && ip addr add 10.9.8.1/24 dev v0"
);

/// Runs `ip` with `args`, which must succeed.
fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ip {args:?}: {status}");
}

/// A node listening on one address of an interface that has others is
/// announced with that address alone, also once mDNS, following the
/// host's addresses, has seen one the interface got later: no packet
/// on the LAN carries another (of the interface's network or not, IPv4
/// or IPv6), and a LAN host learns no other for it. c listens on
/// 10.9.9.1 of `v0` ([`LAN_MORE`], and fd09::1), which gets 10.9.9.4
/// once c's discovery runs; o, on `v1`, keeps c.
#[tokio::test]
async fn a_one_address_listener_is_announced_with_that_address_alone() {
    const NAME: &str = "a_one_address_listener_is_announced_with_that_address_alone";
    if !in_own_netns(NAME, LAN_MORE) {
        return;
    }
    set_lan_up().await;
    ip(&["-6", "addr", "add", "fd09::1/64", "dev", "v0", "nodad"]);
    let ears = lan_ears();
    let ears6 = lan_ears_v6();
    let c = node_at(3, &[1], "10.9.9.1:0").await;
    let _dc = c.discover_lan(DiscoveryConfig::new()).expect("mdns for c");
    ip(&["addr", "add", "10.9.9.4/24", "dev", "v0"]);
    let (o, _do) = o_finds_c(&[3]).await;
    let listen = c.local_addr().unwrap();
    // (an absence: watched for a bounded while, each look a cheap read;
    // past mDNS's look at the host's addresses every 5 s, which finds
    // 10.9.9.4, and o's queries again at 1, 2, 4 s)
    let until = tokio::time::Instant::now() + Duration::from_secs(7);
    while tokio::time::Instant::now() < until {
        let heard: Vec<SocketAddr> = o.addresses(&peer(3)).iter().map(|e| e.addr).collect();
        assert_eq!(heard, [listen], "the LAN learned another address of c");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said: Vec<Vec<u8>> = ears.try_iter().chain(ears6.try_iter()).collect();
    let carries = |packet: &[u8], ip: IpAddr| {
        let octets = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        packet.windows(octets.len()).any(|w| w == octets)
    };
    assert!(
        said.iter().any(|p| carries(p, listen.ip())),
        "c's announcement was not heard on the LAN"
    );
    for other in ["10.9.9.3", "10.9.8.1", "10.9.9.4", "fd09::1"] {
        let other: IpAddr = other.parse().unwrap();
        for packet in &said {
            assert!(
                !carries(packet, other),
                "a packet on the LAN carries {other}: {packet:?}"
            );
        }
    }
}

/// Every mDNS packet (IPv6) heard on the [`LAN`]'s `v1` side, as
/// [`lan_ears`] hears those of IPv4.
fn lan_ears_v6() -> std::sync::mpsc::Receiver<Vec<u8>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_only_v6(true).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 5353)).into())
        .unwrap();
    // (`ip -o link show v1`: "<index>: v1@v0: ...", this namespace's)
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "v1"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let index = out.split(':').next().unwrap().trim().parse().unwrap();
    let group = "ff02::fb".parse().unwrap();
    socket.join_multicast_v6(&group, index).unwrap();
    heard_from_afar(socket)
}

/// Every mDNS packet (IPv4) heard on the [`LAN`]'s `v1` side, as a host
/// there hears them: those from a loopback address are left out (they
/// never leave this host).
fn lan_ears() -> std::sync::mpsc::Receiver<Vec<u8>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    // (beside the nodes' mDNS sockets, which share the port so)
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5353)).into())
        .unwrap();
    socket
        .join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &Ipv4Addr::new(10, 9, 9, 2))
        .unwrap();
    heard_from_afar(socket)
}

/// Every packet `socket` receives from an address that is not a
/// loopback one (those never leave this host), read on a thread of its
/// own.
fn heard_from_afar(socket: socket2::Socket) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let socket: std::net::UdpSocket = socket.into();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0; 9000];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if !from.ip().is_loopback() && tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// What the flood tests start from: the process's warnings, captured; the
/// loopback's discovery configuration; node a (trusting node 2)
/// announced there, as a plain [`Browser`] has heard.
struct Announced {
    logs: lines::Lines,
    lo: DiscoveryConfig,
    a: Node,
    da: peernet_tokio::discovery::Discovery,
    browser: Browser,
}

/// [`Announced`]: captures the warnings (once per process: each flood
/// test runs alone in its namespace), starts node a's discovery on the
/// loopback and waits (10 s at most) until a browser resolved it.
async fn announced_a() -> Announced {
    let logs = lines::Lines::capture(tracing::Level::WARN);
    let lo = loopback();
    let a = node(1, &[2]).await;
    let da = a.discover_lan(lo.clone()).expect("mdns for a");
    let browser = Browser::on_loopback();
    browser.resolved(peer(1), Duration::from_secs(10)).await;
    Announced {
        logs,
        lo,
        a,
        da,
        browser,
    }
}

/// The warnings `logs` captured so far, which must hold a `WARN` line and
/// `what`.
fn warned(logs: &lines::Lines, what: &str) -> String {
    let text = logs.text();
    assert!(text.contains("WARN") && text.contains(what), "{text}");
    text
}

/// Waits until a's discovery `da` has started mDNS afresh, then until b
/// finds a on `lo` ([`b_finds_a`]): when the restart was seen, counted
/// from `start`, and b's node and discovery (the caller keeps them).
async fn restarted_then_found(
    da: &peernet_tokio::discovery::Discovery,
    lo: DiscoveryConfig,
    start: tokio::time::Instant,
) -> (Duration, (Node, peernet_tokio::discovery::Discovery)) {
    until::until("a's discovery starts mDNS afresh", || da.restarts() >= 1).await;
    let restarted = start.elapsed();
    (restarted, b_finds_a(lo).await)
}

/// Drops a's discovery `da`: the daemon it runs stops, and the browser's
/// and b's alone are left (the test fails after 10 s).
async fn drop_leaves_two_daemons(da: peernet_tokio::discovery::Discovery) {
    drop(da);
    assert!(
        mdns_daemons_become(2).await,
        "{} mDNS daemons 10 s after the drop",
        mdns_daemons()
    );
}

/// Sends 10 packets of 300 fake instances ([`fake_instances`]) and holds
/// this thread until `browser` has heard them ([`hold_until_heard`]).
fn flood_held(browser: &Browser) {
    let (packets, per_packet) = (10, 300);
    let socket = flood_socket();
    for p in 0..packets {
        let packet = fake_instances(p * per_packet, per_packet);
        socket.send_to(&packet, &MDNS.into()).unwrap();
    }
    hold_until_heard(browser, packets * per_packet);
}

/// One mDNS response (IPv4 multicast, sent on the loopback) announcing
/// the instances `first..first + n` of peernet's service type, PTR
/// records only (what a LAN host needs to send, unanswered, to make a
/// browser hear that many instances found), each `flood-<i>`.
fn fake_instances(first: usize, n: usize) -> Vec<u8> {
    let mut packet = vec![0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    packet[6..8].copy_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
    for i in first..first + n {
        if i == first {
            // the service type, written out once at offset 12
            for label in ["_peernet", "_tcp", "local"] {
                packet.push(u8::try_from(label.len()).unwrap());
                packet.extend_from_slice(label.as_bytes());
            }
            packet.push(0);
        } else {
            packet.extend_from_slice(&[0xc0, 12]);
        }
        let instance = format!("flood-{i}");
        // PTR, IN, TTL 4500 s, then the instance's label and the type
        packet.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0x11, 0x94]);
        let len = u16::try_from(1 + instance.len() + 2).unwrap();
        packet.extend_from_slice(&len.to_be_bytes());
        packet.push(u8::try_from(instance.len()).unwrap());
        packet.extend_from_slice(instance.as_bytes());
        packet.extend_from_slice(&[0xc0, 12]);
    }
    packet
}

/// Blocks this thread (and so a one-thread test runtime) until the
/// plain `browser` has heard the fake instances `0..n` of
/// [`fake_instances`]: their last one found, or, should mDNS have ended
/// the browser's own subscription (its events are read here one by one,
/// and it holds 1,000 too), its daemon's cache holding them all (looked
/// at every 20 ms for at most 10 s: nothing announces it).
fn hold_until_heard(browser: &Browser, n: usize) {
    let last = fake_name(n - 1);
    loop {
        match browser.heard.recv_timeout(Duration::from_secs(10)) {
            Ok(mdns_sd::ServiceEvent::ServiceFound(_, name)) if name == last => return,
            Ok(_) => {}
            Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the browser did not hear the flood: {e}"),
        }
    }
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = browser.daemon.get_metrics().unwrap();
        let metrics = metrics.recv_timeout(Duration::from_secs(10)).unwrap();
        let cached = metrics.get("cached-ptr").copied().unwrap_or(0);
        if cached >= i64::try_from(n).unwrap() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "the browser's cache holds {cached} instances of {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A LAN host that floods the node with more instances of peernet's
/// service type than mDNS's event channel holds (1,000: `mdns-sd` then
/// ends the browse subscription) does not take the node off the LAN: it
/// is still announced, and a peer that starts looking for it afterwards
/// finds it and connects. The end of the subscription used to be taken
/// for the node's shutdown: its mDNS daemon stopped (the announcement
/// withdrawn), while the node ran on and its `Discovery` was alive.
///
/// The flood is sent while this test's (one-thread) runtime is held, so
/// that the node's discovery task cannot read the events as they come:
/// held until the plain [`Browser`], read from here, has heard the last
/// fake instance (the node's daemon hears the same packets).
#[tokio::test]
async fn a_flood_of_fake_instances_does_not_silence_the_node() {
    const NAME: &str = "a_flood_of_fake_instances_does_not_silence_the_node";
    // (always alone in a namespace of its own: the flood would end the
    // subscriptions of the other tests' daemons on a shared loopback)
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let announced = announced_a().await;

    // (the runtime is held from here until the browser heard the flood)
    flood_held(&announced.browser);

    let (_b, _db) = b_finds_a(announced.lo.clone()).await;
    // (the flood did end a's subscription, and a says so)
    warned(&announced.logs, "mDNS stopped telling this node");
}

/// Node b (trusting a) keeps a connected and discovers on `lo`: returns
/// once it connected, with its node and discovery (the caller keeps them).
async fn b_finds_a(lo: DiscoveryConfig) -> (Node, peernet_tokio::discovery::Discovery) {
    let b = node(2, &[1]).await;
    let events = b.events();
    b.keep_connected(peer(1), true).unwrap();
    let db = b.discover_lan(lo).expect("mdns for b");
    connected(&events, peer(1)).await;
    (b, db)
}

/// A socket that sends mDNS responses on the loopback, from mDNS's port
/// (as a responder's answers come), beside the daemons' sockets.
fn flood_socket() -> socket2::Socket {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)).into())
        .unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket
}

/// The full name of the fake instance `i` of [`fake_instances`].
fn fake_name(i: usize) -> String {
    format!("flood-{i}.{}", peernet_tokio::discovery::SERVICE_TYPE)
}

/// A LAN host that sends more records than a node's mDNS cache may hold,
/// slowly enough for the node to read every event (so mDNS never ends
/// its browsing), does not grow the node's memory without bound: once
/// the cache holds more than `MAX_MDNS_CACHED_RECORDS`, discovery starts
/// mDNS afresh, its cache empty (a warning says so, with the count), and
/// the node is still found by a peer afterwards. mDNS used to cache every
/// one of them for their TTL (here 75 min), however many a host sent.
///
/// 5,000 PTR-only fake instances in packets of 50, each packet sent once
/// a plain [`Browser`] has heard the one before (the test's runtime, the
/// node's, is free meanwhile).
#[tokio::test]
async fn a_slow_flood_of_fake_instances_leaves_the_mdns_cache_bounded() {
    use peernet_tokio::discovery::MAX_MDNS_CACHED_RECORDS;
    const NAME: &str = "a_slow_flood_of_fake_instances_leaves_the_mdns_cache_bounded";
    // (alone in a namespace of its own: the flood reaches every daemon
    // on the loopback)
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let announced = announced_a().await;
    let browser = &announced.browser;

    let start = tokio::time::Instant::now();
    let (packets, per_packet) = (120, 50);
    assert!(packets * per_packet > MAX_MDNS_CACHED_RECORDS);
    let socket = flood_socket();
    let mut resent = 0;
    for p in 0..packets {
        let last = fake_name((p + 1) * per_packet - 1);
        // (sent again until heard, at most 20 times: mDNS is UDP, and a
        // packet among the daemons' own queries may be lost)
        let mut heard = false;
        for _ in 0..20 {
            socket
                .send_to(&fake_instances(p * per_packet, per_packet), &MDNS.into())
                .unwrap();
            let hearing = async {
                loop {
                    match browser.heard.recv_async().await.unwrap() {
                        mdns_sd::ServiceEvent::ServiceFound(_, name) if name == last => break,
                        _ => {}
                    }
                }
            };
            if tokio::time::timeout(Duration::from_millis(500), hearing)
                .await
                .is_ok()
            {
                heard = true;
                break;
            }
            resent += 1;
        }
        assert!(heard, "the browser did not hear packet {p}");
    }
    let flooded = start.elapsed();
    let (restarted, _b) = restarted_then_found(&announced.da, announced.lo.clone(), start).await;
    let text = warned(&announced.logs, "mDNS starts afresh: its cache grew past");
    // (dropping the `Discovery` stops the daemon that runs now: the
    // browser's and b's alone are left, the stopped one gone too)
    let restarts = announced.da.restarts();
    drop_leaves_two_daemons(announced.da).await;
    eprintln!(
        "flood sent in {flooded:?} ({resent} packets sent again), restarted by {restarted:?}, \
         found by {:?}, {restarts} restart(s): {text}",
        start.elapsed(),
    );
}

/// A node whose mDNS browsing a LAN host ended (by announcing more
/// instances at once than mDNS's event channel holds, 1,000) learns
/// again: a trusted peer that starts announcing after the flood is found
/// and connected. The node used to stay announced but learn nothing more
/// until the application started its discovery again.
///
/// The flood is sent while this test's (one-thread) runtime is held, as
/// in [`a_flood_of_fake_instances_does_not_silence_the_node`].
#[tokio::test]
async fn a_flooded_node_learns_again() {
    const NAME: &str = "a_flooded_node_learns_again";
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let announced = announced_a().await;
    let (a, da) = (&announced.a, &announced.da);
    let events = a.events();
    a.keep_connected(peer(2), true).unwrap();

    // (the runtime is held from here until the browser heard the flood)
    let start = std::time::Instant::now();
    flood_held(&announced.browser);

    let b = node(2, &[1]).await;
    let _db = b.discover_lan(announced.lo.clone()).expect("mdns for b");
    connected(&events, peer(2)).await;
    assert!(
        a.addresses(&peer(2))
            .iter()
            .any(|e| e.source == AddrSource::Discovery),
        "b was learned from discovery"
    );
    assert!(da.restarts() >= 1);
    let text = announced.logs.text();
    assert!(
        text.contains("mDNS stopped telling this node") && text.contains("it starts afresh"),
        "{text}"
    );
    eprintln!(
        "found and connected {:?} after the flood, {} restart(s)",
        start.elapsed(),
        da.restarts()
    );
    drop_leaves_two_daemons(announced.da).await;
}

/// One mDNS response (IPv4 multicast, sent on the loopback) announcing
/// the instances `first..first + n` of peernet's service type, each
/// `leak-<i>`, in full (PTR, SRV, TXT: `mdns-sd` resolves them) on one
/// host `leakhost.local.` at `127.0.0.1`, every record for 2 s (the
/// least TTL whose PTR `mdns-sd` tells of).
fn short_lived_instances(first: usize, n: usize) -> Vec<u8> {
    const TTL: [u8; 4] = [0, 0, 0, 2];
    // (the type's name at 12, "local" within it at 26)
    let mut packet = vec![0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    packet[6..8].copy_from_slice(&u16::try_from(3 * n + 1).unwrap().to_be_bytes());
    for label in ["_peernet", "_tcp", "local"] {
        packet.push(u8::try_from(label.len()).unwrap());
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    let mut host: Option<u16> = None;
    let record = |packet: &mut Vec<u8>, name: u16, ty: u16| {
        packet.extend_from_slice(&(0xc000 | name).to_be_bytes());
        packet.extend_from_slice(&ty.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        packet.extend_from_slice(&TTL);
    };
    for i in first..first + n {
        let instance = format!("leak-{i}");
        let label = u8::try_from(instance.len()).unwrap();
        // PTR: the type -> the instance
        if i == first {
            // (the type's name written out at 12 is the first record's)
            packet.extend_from_slice(&[0, 12, 0, 1]);
            packet.extend_from_slice(&TTL);
        } else {
            record(&mut packet, 12, 12);
        }
        packet.extend_from_slice(&u16::from(label + 3).to_be_bytes());
        let at = u16::try_from(packet.len()).unwrap();
        packet.push(label);
        packet.extend_from_slice(instance.as_bytes());
        packet.extend_from_slice(&[0xc0, 12]);
        // SRV: port 9 on the host
        record(&mut packet, at, 33);
        match host {
            None => {
                packet.extend_from_slice(&(6u16 + 1 + 8 + 2).to_be_bytes());
                packet.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
                host = Some(u16::try_from(packet.len()).unwrap());
                packet.push(8);
                packet.extend_from_slice(b"leakhost");
                packet.extend_from_slice(&[0xc0, 26]);
            }
            Some(host) => {
                packet.extend_from_slice(&8u16.to_be_bytes());
                packet.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
                packet.extend_from_slice(&(0xc000 | host).to_be_bytes());
            }
        }
        // TXT: x=1
        record(&mut packet, at, 16);
        packet.extend_from_slice(&[0, 4, 3, b'x', b'=', b'1']);
    }
    // A: the host at 127.0.0.1
    record(&mut packet, host.unwrap(), 1);
    packet.extend_from_slice(&[0, 4, 127, 0, 0, 1]);
    packet
}

/// A LAN host announcing short-lived instances under ever new names,
/// slowly enough that the node's mDNS cache never holds many at once,
/// does not grow the node's memory without bound: `mdns-sd` remembers
/// every instance it resolved (and each expired TXT record's name) for
/// as long as its daemon runs, out of its cache's count, so past
/// `MAX_MDNS_INSTANCES` instances told of, discovery starts mDNS afresh
/// (a warning says so), and the node is still found by a peer
/// afterwards. The cache's bound alone never saw them: the names piled
/// up in mDNS's daemon as long as the host went on.
///
/// `MAX_MDNS_INSTANCES` + 500 instances, 100 every 250 ms (the host's
/// pace: about 2,400 records cached at a time, well under
/// `MAX_MDNS_CACHED_RECORDS`).
#[tokio::test]
async fn short_lived_instances_under_new_names_leave_mdns_bounded() {
    use peernet_tokio::discovery::{MAX_MDNS_CACHED_RECORDS, MAX_MDNS_INSTANCES};
    const NAME: &str = "short_lived_instances_under_new_names_leave_mdns_bounded";
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let announced = announced_a().await;
    drop(announced.browser);

    let start = tokio::time::Instant::now();
    let per_packet = 100;
    let packets = (MAX_MDNS_INSTANCES + 500).div_ceil(per_packet);
    // (at most 400 instances a second, each 3 records for 2 s)
    assert!(3 * 2 * 4 * per_packet < MAX_MDNS_CACHED_RECORDS);
    let socket = flood_socket();
    let mut pace = tokio::time::interval(Duration::from_millis(250));
    // (never two packets at once, however late a tick)
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for p in 0..packets {
        pace.tick().await;
        let packet = short_lived_instances(p * per_packet, per_packet);
        assert!(packet.len() < 8_000);
        socket.send_to(&packet, &MDNS.into()).unwrap();
    }
    let flooded = start.elapsed();
    let (restarted, _b) = restarted_then_found(&announced.da, announced.lo.clone(), start).await;
    let text = warned(
        &announced.logs,
        "instances (a LAN host announced that many)",
    );
    // (the first restart is always said, with why, before it is made,
    // so before it is seen above: it was the instances told of, not the
    // cache's bound)
    let first = text
        .lines()
        .find(|line| line.contains("mDNS starts afresh"));
    assert!(
        first.is_some_and(|line| line.contains("instances (a LAN host announced that many)")),
        "the first restart was not for the instances: {text}"
    );
    eprintln!(
        "sent in {flooded:?}, restarted by {restarted:?}, found by {:?}, {} restart(s)",
        start.elapsed(),
        announced.da.restarts()
    );
}

/// A node's discovery never runs two mDNS daemons at once, even after a
/// LAN host flooded it faster than mDNS reads. `mdns-sd` reads a stop
/// only once nothing waits on its socket; discovery used to start the
/// next daemon beside the one it had stopped, still reading the flood
/// (two for about 5 s after an 8 s flood; a host flooding in bursts could
/// stack them, each with a socket of its own hearing every packet, each
/// caching). Now the next starts once the stopped one has ended.
///
/// The flood: 300 new PTR-only instances a packet, from a thread, as fast
/// as it sends, for 8 s; the daemons are counted every 20 ms until 8 s
/// after the first restart.
#[tokio::test]
async fn a_flooded_node_never_runs_two_mdns_daemons() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const NAME: &str = "a_flooded_node_never_runs_two_mdns_daemons";
    // (alone in a namespace and a process of its own: the daemons are
    // counted process-wide)
    if !in_own_netns(NAME, LOOPBACK) {
        return;
    }
    let lo = loopback();
    let a = node(1, &[2]).await;
    let da = a.discover_lan(lo).expect("mdns for a");
    assert!(mdns_daemons_become(1).await, "a's mDNS daemon runs");

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flooding = stop.clone();
    let sender = std::thread::spawn(move || {
        let socket = flood_socket();
        let mut first = 0;
        while !flooding.load(Ordering::Relaxed) {
            let _ = socket.send_to(&fake_instances(first, 300), &MDNS.into());
            first += 300;
        }
        first
    });
    let start = tokio::time::Instant::now();
    let flood_ends = start + Duration::from_secs(8);
    let mut most = 0;
    let mut restarted = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        most = most.max(mdns_daemons());
        if now >= flood_ends {
            stop.store(true, Ordering::Relaxed);
        }
        if restarted.is_none() && da.restarts() >= 1 {
            restarted = Some(now);
        }
        if restarted.is_some_and(|at| now >= at + Duration::from_secs(8)) {
            break;
        }
        assert!(
            now < flood_ends + Duration::from_secs(30),
            "no restart 30 s after the flood"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    eprintln!(
        "{sent} instances sent in 8 s, restarted at {:?}, at most {most} mDNS daemon(s)",
        restarted.unwrap() - start
    );
    assert_eq!(most, 1, "mDNS daemons of one discovery at once");
}
