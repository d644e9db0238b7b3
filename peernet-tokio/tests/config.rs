//! A node refuses a protocol configuration that makes no sense (issue 13,
//! fault 4) instead of clamping it: zero durations used to become 1 ms,
//! and a zero ping interval made the node PING every idle peer ~470 times
//! a second.

use std::time::Duration;

use peernet_tokio::{Config, ConfigError, ErrorChain, Identity, Node, NodeConfig, StartError};

/// Changes one field of the default protocol configuration.
type Setter = fn(&mut Config);

fn node_config(f: impl FnOnce(&mut Config)) -> NodeConfig {
    let mut protocol = Config::default();
    f(&mut protocol);
    NodeConfig::new(Identity::from_seed(&[5; 32])).protocol(protocol)
}

#[tokio::test]
async fn bind_refuses_invalid_configurations() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let cases: [(Setter, ConfigError); 3] = [
        (
            |c| c.ping_interval = Duration::ZERO,
            ConfigError::Zero("ping_interval"),
        ),
        (
            |c| c.handshake_timeout = Duration::ZERO,
            ConfigError::Zero("handshake_timeout"),
        ),
        (|c| c.max_frame_len = 0, ConfigError::FrameTooSmall(0)),
    ];
    for (set, want) in cases {
        match Node::bind(node_config(set), addr).await {
            Err(StartError::Config(got)) => assert_eq!(got, want),
            Err(other) => panic!("{want:?}: wrong error {other}"),
            Ok(_) => panic!("{want:?}: accepted"),
        }
    }
    // the same checks behind NodeConfig's own setters
    let no_calls = NodeConfig::new(Identity::from_seed(&[5; 32])).max_outbound_calls(0);
    assert!(matches!(
        Node::bind(no_calls, addr).await,
        Err(StartError::Config(ConfigError::Zero("max_outbound_calls")))
    ));
    for (bytes, want) in [
        (0, ConfigError::Zero("max_handshake_bytes")),
        (149, ConfigError::HandshakeBytesTooSmall(149)),
    ] {
        let config = NodeConfig::new(Identity::from_seed(&[5; 32])).max_handshake_bytes(bytes);
        match Node::bind(config, addr).await {
            Err(StartError::Config(got)) => assert_eq!(got, want),
            Err(other) => panic!("{want:?}: wrong error {other}"),
            Ok(_) => panic!("{want:?}: accepted"),
        }
    }
    let idle = node_config(|c| {
        c.ping_interval = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(1);
    });
    assert!(matches!(
        Node::try_new_with(Default::default(), idle),
        Err(StartError::Config(ConfigError::IdleNotAbovePing { .. }))
    ));
    let node = Node::bind(node_config(|_| {}), addr).await.unwrap();
    node.shutdown().await;
}

/// The listen backlog is the node's (default 1,024, configurable), not the
/// operating system's default of 128: `ss` shows a listener's accept-queue
/// size in its Send-Q column.
#[tokio::test]
async fn the_listen_backlog_is_configurable() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    for (setting, want) in [(None, 1024), (Some(700), 700)] {
        let mut config = node_config(|_| {});
        if let Some(backlog) = setting {
            config = config.listen_backlog(backlog);
        }
        let node = Node::bind(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = node.local_addr().unwrap().port();
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .expect("ss (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let send_q: u32 = text
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no listener line: {text:?}"));
        assert_eq!(send_q, want.min(somaxconn), "{text}");
        node.shutdown().await;
    }
}

/// `events_capacity` is allocated whole by every `events()`: a huge one
/// used to start the node and then make `events()` panic (capacity
/// overflow at `usize::MAX`) or take gigabytes per subscriber. It is
/// refused at start; the largest allowed one subscribes.
#[tokio::test]
async fn a_huge_events_capacity_is_refused_at_start() {
    use peernet_tokio::MAX_EVENTS_CAPACITY;
    let config =
        |capacity| NodeConfig::new(Identity::from_seed(&[6; 32])).events_capacity(capacity);
    for huge in [MAX_EVENTS_CAPACITY + 1, usize::MAX] {
        match Node::try_new(config(huge)) {
            Err(StartError::EventsCapacity(asked)) => assert_eq!(asked, huge),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("events_capacity {huge} accepted"),
        }
    }
    let node = Node::try_new(config(MAX_EVENTS_CAPACITY)).unwrap();
    drop(node.events());
    // (0 is taken as 1)
    let node0 = Node::try_new(config(0)).unwrap();
    drop(node0.events());
    node.shutdown().await;
    node0.shutdown().await;
}

/// `linger` of zero is refused at start (a close would stop its writer
/// before the GOODBYE); the longest one starts, and a connection closed
/// under it still says goodbye (its deadline is capped, not overflowed).
#[tokio::test]
async fn a_zero_linger_is_refused_and_the_longest_works() {
    let (a, b) = (Identity::from_seed(&[7; 32]), Identity::from_seed(&[8; 32]));
    let (a_peer, b_peer) = (a.peer_id(), b.peer_id());
    match Node::try_new(NodeConfig::new(a.clone()).linger(Duration::ZERO)) {
        Err(StartError::Linger) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a linger of zero accepted"),
    }
    let any = "127.0.0.1:0".parse().unwrap();
    let longest = |id: Identity, peer| NodeConfig::new(id).trusting(peer).linger(Duration::MAX);
    let alice = Node::bind(longest(a, b_peer), any).await.unwrap();
    let bob = Node::bind(longest(b, a_peer), any).await.unwrap();
    let events = bob.events();
    alice
        .connect(b_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    assert!(alice.disconnect(&b_peer));
    let reason = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let peernet_tokio::NodeEvent::Disconnected { reason, .. } =
                events.recv().await.unwrap()
            {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(reason, peernet_tokio::CloseReason::Goodbye { .. }),
        "{reason:?}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Review s52 (revo): a node refuses to listen where no peer can connect:
/// a multicast or broadcast address, which Linux lets a TCP socket bind
/// (`serve --listen` refused it; the library bound it, and the node ran,
/// `Node::bind` returning Ok, unreachable). The error says why, of kind
/// `InvalidInput`, and the node is left as it was: it listens on a
/// right address afterwards.
#[tokio::test]
async fn a_node_does_not_listen_where_no_peer_can_connect() {
    for addr in [
        "224.0.0.1:0",
        "255.255.255.255:0",
        "[::ffff:239.1.2.3]:0",
        "[ff02::1]:0",
    ] {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        match &Node::bind(node_config(|_| {}), addr).await {
            Err(
                e @ StartError::Listen {
                    addr: named,
                    source,
                },
            ) => {
                assert_eq!(*named, addr);
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::InvalidInput,
                    "{addr}: {e}"
                );
                assert_eq!(
                    ErrorChain(e).to_string(),
                    format!(
                        "listen {addr}: no peer can connect to a multicast or broadcast address"
                    ),
                );
            }
            Err(e) => panic!("{addr}: {e}"),
            Ok(node) => panic!("{addr}: listening at {:?}", node.local_addr()),
        }
        let node = Node::new(node_config(|_| {}));
        assert!(node.listen(addr).await.is_err(), "{addr}");
        assert_eq!(node.local_addr(), None);
        node.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        node.shutdown().await;
    }
}

/// The book settings raised past what the book file holds, with no
/// shutdown grace: the node runs with them, its file keeps what loads
/// again (each peer's first `MAX_SAVED_ADDRS_PER_PEER` addresses, best
/// first), the shutdown still saves it (its flush has a floor of its
/// own), and the next start loads it. (Checked s56: so already; a file
/// that held more would stop the next start, `TooManyForPeer`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_settings_past_the_files_bounds_save_a_book_that_loads() {
    use peernet_tokio::AddrSource;
    use peernet_tokio::book_file::MAX_SAVED_ADDRS_PER_PEER;
    let dir = tempfile::tempdir().unwrap();
    let peer = Identity::from_seed(&[7; 32]).peer_id();
    let mut protocol = Config::default();
    protocol.max_addresses_per_peer = 1_000;
    protocol.max_addresses = usize::MAX;
    let config = NodeConfig::from_data_dir(dir.path())
        .unwrap()
        .protocol(protocol)
        .shutdown_grace(Duration::ZERO)
        .trusting(peer);
    let node = Node::try_new(config).unwrap();
    let given = MAX_SAVED_ADDRS_PER_PEER + 6;
    for port in 0..given {
        let addr = format!("192.0.2.1:{}", 1_000 + port).parse().unwrap();
        node.add_address(peer, addr, AddrSource::Application)
            .unwrap();
    }
    assert_eq!(node.addresses(&peer).len(), given, "held for the run");
    node.shutdown().await;
    let again = NodeConfig::from_data_dir(dir.path()).expect("the saved book loads");
    drop(again);
    let book = peernet_tokio::DataDir::open(dir.path())
        .unwrap()
        .load_book()
        .unwrap();
    assert_eq!(book.get(&peer).len(), MAX_SAVED_ADDRS_PER_PEER);
}
