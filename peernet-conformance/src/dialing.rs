//! Scenarios of dialing by PeerId (issue 15): the address book, peers
//! kept connected across a restart, tickets, the book on disk.

use std::net::SocketAddr;
use std::time::Duration;

use peernet_driver::DialFailure;
use peernet_driver::{AddrSource, ConnectError, StartError, Ticket};
use peernet_proto::CallError;
use peernet_proto::ConnectError as CoreConnectError;

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// An address nothing listens on: a port bound, then released (a dial
/// is refused).
fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind(loopback()).expect("bind");
    listener.local_addr().expect("addr")
}

/// Node 2 on `addr`, trusting 1, echoing: bound again after a stop (the
/// old listener is closed once its shutdown returned). Exposes before it
/// listens: node 1 redials the moment the port opens, with a call queued,
/// which must not meet `no_such_handle`.
async fn node_2_at<R: Runtime>(addr: SocketAddr) -> Node<R> {
    let config = NodeConfig::new(identity(2))
        .protocol_version(version())
        .trusting(peer(1));
    let node = Node::try_new(config).expect("node 2");
    expose_echo(&node);
    let bound = node.listen(addr).await.expect("bind");
    assert!(addr.port() == 0 || bound == addr, "{bound} for {addr}");
    node
}

/// `Node::new` then `listen`: no listener (and no address) before it, a
/// working one after; a second `listen` and one after shutdown are
/// refused with their own errors, and the first listener stays; `bind`
/// on a port in use fails without holding anything.
pub async fn listen_after_expose<H: Harness>() {
    let config = NodeConfig::new(identity(2))
        .protocol_version(version())
        .trusting(peer(1));
    let b: N<H> = Node::try_new(config).expect("node 2");
    assert_eq!(b.local_addr(), None);
    expose_echo(&b);
    let addr = b.listen(loopback()).await.expect("listen");
    assert_eq!(b.local_addr(), Some(addr));
    assert_ne!(addr.port(), 0);
    let again = b.listen(loopback()).await;
    assert!(
        matches!(again, Err(StartError::AlreadyListening)),
        "{again:?}"
    );
    let a: N<H> = node(1, &[2], same).await;
    a.connect(peer(2), addr).await.expect("connect");
    let reply = a.call(&peer(2), "echo", "listening", Some(WAIT)).await;
    assert_eq!(reply.expect("call"), "listening");
    assert_eq!(b.local_addr(), Some(addr), "the first listener stays");
    // `bind` on a port in use: an error that names the address (review
    // s54: it said `io`, the OS's words naming none), and the node it
    // made is gone (its data directory free again at once)
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NodeConfig::from_data_dir(dir.path()).expect("data dir");
    let taken = Node::<H::Rt>::bind(config.protocol_version(version()), addr).await;
    let error = taken.map(|_| ()).expect_err("a port in use was bound");
    let StartError::Listen {
        addr: named,
        source,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        (*named, source.kind()),
        (addr, std::io::ErrorKind::AddrInUse)
    );
    assert_eq!(error.to_string(), format!("listen {addr}"));
    let chain = peernet_driver::ErrorChain(&error).to_string();
    assert_eq!(chain, format!("listen {addr}: {source}"));
    NodeConfig::from_data_dir(dir.path()).expect("the directory is free");
    b.shutdown().await;
    let closed = b.listen(loopback()).await;
    assert!(matches!(closed, Err(StartError::Closed)), "{closed:?}");
}

/// Node 1 keeps node 2 connected, knowing it at `addr`; returns once it is
/// connected, and node 1's events.
async fn keeping<H: Harness>(addr: SocketAddr) -> (N<H>, EventStream) {
    let a: N<H> = node(1, &[2], same).await;
    let events = a.events();
    a.add_address(peer(2), addr, AddrSource::Application)
        .expect("add address");
    a.keep_connected(peer(2), true).expect("keep");
    assert!(a.is_kept(&peer(2)));
    let rt = a.runtime().clone();
    expect_connected(&rt, &events, "the first (silent) dial", peer(2)).await;
    (a, events)
}

fn same<T>(config: T) -> T {
    config
}

/// Brief s57 (api): a kept peer that never comes back. Each failed
/// round says why, the first (silent) one included: an `Unreachable`
/// naming every address with its cause, in its `Display` too, after the
/// redial's `Reconnecting` (it used to be silent: only `Reconnecting`,
/// again and again). A call that waited for the reconnect in vain fails
/// `NotConnected` on a node that asks for it
/// (`unreached_call_not_connected`), and `Timeout`, as before, on one
/// that does not.
pub async fn a_kept_peer_that_stays_down_says_why<H: Harness>() {
    let dead = dead_address();
    let told: N<H> = node(1, &[2], |c| c.unreached_call_not_connected(true)).await;
    let plain: N<H> = node(3, &[2], same).await;
    let rt = told.runtime().clone();
    let events = told.events();
    for n in [&told, &plain] {
        n.add_address(peer(2), dead, AddrSource::Application)
            .expect("add address");
        n.keep_connected(peer(2), true).expect("keep");
    }
    let unreachable = |e: &NodeEvent| matches!(e, NodeEvent::Unreachable { .. });
    for round in ["the first round", "the first redial"] {
        let said = expect_event(&rt, &events, round, unreachable).await;
        let NodeEvent::Unreachable { peer: p, tried } = &said else {
            unreachable!("{said:?}")
        };
        assert_eq!(*p, peer(2), "{said}");
        assert_eq!(tried.len(), 1, "{said}");
        assert_eq!(tried[0].0, dead, "{said}");
        assert!(
            matches!(tried[0].1, DialFailure::Transport(_)),
            "{round}: {said}"
        );
        assert!(tried[0].1.is_transient(), "{said}");
        let line = said.to_string();
        assert!(
            line.contains(&format!("{dead}: the connection did not open")),
            "{round}: {line}"
        );
        if round == "the first round" {
            let redial = |e: &NodeEvent| matches!(e, NodeEvent::Reconnecting { .. });
            let announced = expect_event(&rt, &events, "the redial", redial).await;
            let NodeEvent::Reconnecting { attempt, .. } = announced else {
                unreachable!("{announced:?}")
            };
            assert_eq!(attempt, 1);
        }
    }
    let short = Duration::from_millis(200);
    let call = within(&rt, "a call told", told.call(&peer(2), "echo", "x", short)).await;
    assert!(matches!(call, Err(CallError::NotConnected)), "{call:?}");
    let call = within(&rt, "a call", plain.call(&peer(2), "echo", "x", short)).await;
    assert!(matches!(call, Err(CallError::Timeout)), "{call:?}");
    told.shutdown().await;
    plain.shutdown().await;
}

/// A kept peer stops and starts again on the same address: node 1
/// redials it by itself (announcing `Reconnecting`), and a call made
/// during the outage waits for the reconnect and succeeds within its
/// timeout.
pub async fn kept_peer_restarted_on_its_address_is_reconnected<H: Harness>() {
    let b: N<H> = node_2_at(loopback()).await;
    let addr = b.local_addr().unwrap();
    let (a, events) = keeping::<H>(addr).await;
    let rt = a.runtime().clone();
    b.shutdown().await;
    drop(b);
    expect_event(
        &rt,
        &events,
        "the loss",
        |e| matches!(e, NodeEvent::Disconnected { peer: p, .. } if *p == peer(2)),
    )
    .await;
    // a call in the outage: waits instead of failing with NotConnected
    let call = spawn_call(&a, peer(2), "echo", "through", Some(WAIT));
    match expect_event(&rt, &events, "a redial", |e| {
        matches!(e, NodeEvent::Reconnecting { .. })
    })
    .await
    {
        NodeEvent::Reconnecting {
            peer: p,
            attempt,
            after,
        } => {
            assert_eq!((p, attempt), (peer(2), 1));
            assert!(
                (Duration::from_millis(100)..=Duration::from_secs(1)).contains(&after),
                "first redial after {after:?}"
            );
        }
        other => unreachable!("{other:?}"),
    }
    assert!(call.is_empty(), "the call waits for the reconnect");
    let _b: N<H> = node_2_at(addr).await;
    let reply = within(&rt, "the call made in the outage", call.recv()).await;
    assert_eq!(reply.unwrap().expect("call after the reconnect"), "through");
    assert!(a.is_connected(&peer(2)));
    // the address worked: first in the book
    assert_eq!(a.addresses(&peer(2))[0].addr, addr);
}

/// A kept peer comes back on another port; its new ticket gives node 1
/// the address and the schedule dials it without further help.
pub async fn kept_peer_on_a_new_port_is_found_through_a_ticket<H: Harness>() {
    let b: N<H> = node_2_at(loopback()).await;
    let (a, events) = keeping::<H>(b.local_addr().unwrap()).await;
    let rt = a.runtime().clone();
    b.shutdown().await;
    drop(b);
    let b: N<H> = node_2_at(loopback()).await;
    // b hands out a new ticket, read from its text form
    let text = Ticket::new(b.peer_id(), b.local_addr())
        .unwrap()
        .to_string();
    let ticket: Ticket = text.parse().expect("ticket");
    for addr in ticket.addrs() {
        a.add_address(ticket.peer(), *addr, AddrSource::Ticket)
            .expect("add the ticket's address");
    }
    expect_connected(&rt, &events, "connected at the new port", peer(2)).await;
    let reply = a.call(&peer(2), "echo", "new port", Some(WAIT)).await;
    assert_eq!(reply.expect("call"), "new port");
}

/// `connect_peer` goes through the book, best first, past an address that
/// refuses; `connect(peer, addr)` records the address; every failure is
/// typed.
pub async fn connect_peer_dials_through_the_book<H: Harness>() {
    let a: N<H> = node(1, &[2, 3], same).await;
    let b: N<H> = node_2_at(loopback()).await;
    let rt = a.runtime().clone();
    let events = a.events();
    // nothing known yet
    match a.connect_peer(peer(2), None).await {
        Err(ConnectError::Start(CoreConnectError::NoAddress(p))) => assert_eq!(p, peer(2)),
        other => panic!("expected NoAddress, got {other:?}"),
    }
    // an untrusted peer has no addresses
    assert!(
        a.add_address(peer(4), dead_address(), AddrSource::Application)
            .is_err()
    );
    let dead = dead_address();
    a.add_address(peer(2), dead, AddrSource::Application)
        .unwrap();
    a.add_address(peer(2), b.local_addr().unwrap(), AddrSource::Discovery)
        .unwrap();
    let got = within(&rt, "connect_peer", a.connect_peer(peer(2), None)).await;
    assert_eq!(got.expect("connect through the book"), peer(2));
    let book = a.addresses(&peer(2));
    assert_eq!(book[0].addr, b.local_addr().unwrap(), "{book:?}");
    assert!(book[0].last_ok.is_some() && book[1].last_failed.is_some());
    // connected already: at once
    assert_eq!(a.connect_peer(peer(2), None).await.unwrap(), peer(2));
    // every address dead, or another peer's: Unreachable, as an error
    // (with why each address failed) and an event
    let dead3 = dead_address();
    a.add_address(peer(3), dead3, AddrSource::Ticket).unwrap();
    let wrong = b.local_addr().unwrap();
    a.add_address(peer(3), wrong, AddrSource::Ticket).unwrap();
    match within(&rt, "connect_peer", a.connect_peer(peer(3), None)).await {
        Err(ConnectError::Unreachable { peer: p, tried }) => {
            assert_eq!(p, peer(3));
            let mut addrs: Vec<SocketAddr> = tried.iter().map(|(a, _)| *a).collect();
            addrs.sort();
            let mut both = vec![dead3, wrong];
            both.sort();
            assert_eq!(addrs, both, "{tried:?}");
            for (addr, cause) in &tried {
                // the dead address never opened; the wrong peer's did,
                // and its handshake failed
                let right = match cause {
                    DialFailure::Transport(_) | DialFailure::TimedOut(_) => *addr == dead3,
                    DialFailure::Handshake(_) => *addr == wrong,
                    _ => false,
                };
                assert!(right, "{addr}: {cause} ({tried:?})");
            }
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    expect_event(&rt, &events, "unreachable", |e| {
        matches!(e, NodeEvent::Unreachable { peer: p, tried } if *p == peer(3) && tried.len() == 2)
    })
    .await;
    // connect(peer, addr) records the address once connected
    let c: N<H> = node(3, &[1], same).await;
    let c_addr = c.local_addr().unwrap();
    a.connect(peer(3), c_addr).await.expect("connect");
    assert!(a.addresses(&peer(3)).iter().any(|e| e.addr == c_addr));
}

/// With a data directory the book is saved when it changes, and read back
/// by the next node; unpairing forgets the peer's addresses.
pub async fn the_book_survives_a_restart<H: Harness>() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node");
    let config = NodeConfig::from_data_dir(&path)
        .unwrap()
        .protocol_version(version());
    let first: N<H> = Node::new(config);
    let (b, c): (SocketAddr, SocketAddr) = (
        "192.0.2.1:4000".parse().unwrap(),
        "192.0.2.3:4000".parse().unwrap(),
    );
    first.pair(peer(2), None).await.unwrap();
    first.pair(peer(3), None).await.unwrap();
    first.add_address(peer(2), b, AddrSource::Ticket).unwrap();
    first
        .add_address(peer(3), c, AddrSource::Application)
        .unwrap();
    first.unpair(&peer(3)).await.unwrap();
    // shutdown saves what is pending
    first.shutdown().await;
    drop(first);
    let config = NodeConfig::from_data_dir(&path)
        .unwrap()
        .protocol_version(version());
    assert_eq!(
        config.saved_book().get(&peer(2)),
        &[(b, AddrSource::Ticket)][..]
    );
    assert!(config.saved_book().get(&peer(3)).is_empty());
    let second: N<H> = Node::new(config);
    let entries = second.addresses(&peer(2));
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].addr, entries[0].source),
        (b, AddrSource::Ticket)
    );
}
