//! Scenarios of tickets made and paired from by a node: `Node::ticket`
//! (its listen address; the host's, on every interface) and
//! `Node::pair_ticket` (trust and addresses in one call, its error
//! saying which step failed), and `connect_peer`'s timeout, with which
//! the peer is then dialed.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use peernet_driver::{
    AddrSource, BookError, ConnectError, Label, PairTicketError, Ticket, TrustChangeError,
};
use peernet_proto::Config;

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// Node `seed` trusting `trusts`, listening on `addr`.
async fn node_on<R: Runtime>(seed: u8, trusts: &[u8], addr: SocketAddr) -> Node<R> {
    let mut config = NodeConfig::new(identity(seed)).protocol_version(version());
    for t in trusts {
        config = config.trusting(peer(*t));
    }
    let node = Node::try_new(config).expect("node");
    expose_echo(&node);
    node.listen(addr).await.expect("listen");
    node
}

/// A node listening on every interface (`0.0.0.0:0`) gives a ticket of
/// the host's addresses with its port, none unspecified (which no peer
/// can dial, and `Ticket::new` refuses); a peer pairs from its text in
/// one call, the addresses recorded as the ticket's, and dials it by
/// PeerId. A node on one address gives that one; a node that does not
/// listen, its PeerId alone.
pub async fn a_node_on_every_interface_is_paired_with_by_its_ticket<H: Harness>() {
    let b: N<H> = node_on(2, &[1], SocketAddr::from(([0, 0, 0, 0], 0))).await;
    let port = b.local_addr().unwrap().port();
    let ticket = b.ticket().expect("a ticket of a node on 0.0.0.0");
    assert_eq!(ticket.peer(), peer(2));
    assert!(!ticket.addrs().is_empty(), "no address in {ticket:?}");
    for addr in ticket.addrs() {
        assert!(!addr.ip().is_unspecified(), "{addr} in {ticket:?}");
        assert!(addr.is_ipv4(), "{addr}: the node listens on IPv4 alone");
        assert_eq!(addr.port(), port, "{addr} in {ticket:?}");
    }
    let a: N<H> = node_on(1, &[], loopback()).await;
    let rt = a.runtime().clone();
    let text = ticket.to_string();
    let read: Ticket = text.parse().expect("the ticket's text");
    let label = Label::new("b").unwrap();
    let paired = a.pair_ticket(&read, Some(label.clone())).await;
    assert!(paired.expect("pair from the ticket"), "b was not trusted");
    assert_eq!(a.trust().label(&peer(2)), Some(&label));
    let recorded: BTreeSet<(SocketAddr, AddrSource)> = a
        .addresses(&peer(2))
        .iter()
        .map(|e| (e.addr, e.source))
        .collect();
    let given: BTreeSet<(SocketAddr, AddrSource)> = ticket
        .addrs()
        .iter()
        .map(|addr| (*addr, AddrSource::Ticket))
        .collect();
    assert_eq!(recorded, given);
    let connected = within(&rt, "connect by PeerId", a.connect_peer(peer(2), None)).await;
    assert_eq!(connected.expect("dial the ticket's addresses"), peer(2));
    let reply = a.call(&peer(2), "echo", "ticket", Some(WAIT)).await;
    assert_eq!(reply.expect("call"), "ticket");
    // paired already: nothing new
    assert!(!a.pair_ticket(&read, None).await.expect("again"));
    // one address: that one; no listener: the PeerId alone
    let own = a.ticket().expect("a ticket of a node on loopback");
    assert_eq!(own.addrs(), [a.local_addr().unwrap()]);
    let quiet: N<H> = Node::try_new(NodeConfig::new(identity(3))).expect("node 3");
    assert_eq!(quiet.ticket(), Ticket::new(peer(3), []));
    for node in [a, b, quiet] {
        node.shutdown().await;
    }
}

/// `pair_ticket` says which step failed, and what was made: a ticket of
/// the node itself or to a closed node pairs nothing and records
/// nothing; an address the book refuses leaves the peer trusted, the
/// addresses before it recorded.
pub async fn pairing_from_a_ticket_says_which_step_failed<H: Harness>() {
    // (one address a peer: the application's, better than a ticket's)
    let mut protocol = Config::default();
    protocol.max_addresses_per_peer = 1;
    protocol.version = version();
    let a: N<H> = node(1, &[], |c| c.protocol(protocol)).await;
    let own = a.ticket().unwrap();
    match a.pair_ticket(&own, None).await {
        Err(PairTicketError::Trust {
            peer: p,
            source: TrustChangeError::OwnPeerId(_),
        }) => assert_eq!(p, peer(1)),
        other => panic!("pairing with its own ticket: {other:?}"),
    }
    assert!(a.addresses(&peer(1)).is_empty());

    let given: SocketAddr = "192.0.2.7:7000".parse().unwrap();
    assert!(a.pair(peer(2), None).await.unwrap());
    a.add_address(peer(2), given, AddrSource::Application)
        .unwrap();
    let ticket = Ticket::new(peer(2), ["192.0.2.8:7000".parse().unwrap()]).unwrap();
    let error = a.pair_ticket(&ticket, None).await.unwrap_err();
    assert!(error.is_paired(), "{error:?}");
    match &error {
        PairTicketError::Address {
            peer: p,
            addr,
            source: BookError::Full,
        } => assert_eq!((*p, *addr), (peer(2), ticket.addrs()[0])),
        other => panic!("a ticket address the book has no room for: {other:?}"),
    }
    assert!(a.trust().contains(&peer(2)));
    let kept: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert_eq!(kept, [given]);

    a.shutdown().await;
    let later = Ticket::new(peer(3), ["192.0.2.9:7000".parse().unwrap()]).unwrap();
    match a.pair_ticket(&later, None).await {
        Err(
            error @ PairTicketError::Trust {
                source: TrustChangeError::Closed,
                ..
            },
        ) => assert!(!error.is_paired()),
        other => panic!("pairing on a closed node: {other:?}"),
    }
    assert!(!a.trust().contains(&peer(3)));
    assert!(a.addresses(&peer(3)).is_empty());
}

/// `connect_peer` with a timeout gives up when it passes, typed, though
/// the round's one address would hold it for `dial_timeout` (10 s: a
/// connect that never completes); an application wrapped the call in
/// its runtime's timeout for that. Without one it waits for the round.
pub async fn connect_peer_gives_up_at_its_timeout<H: Harness>() {
    // (before the node: finding the silent address blocks the thread)
    let (silent, _held) = silent_address();
    let a: N<H> = node(1, &[2], |c| c).await;
    let rt = a.runtime().clone();
    a.add_address(peer(2), silent, AddrSource::Application)
        .unwrap();
    let (started, timeout) = (rt.now(), Duration::from_millis(200));
    let given_up = within(&rt, "connect_peer", a.connect_peer(peer(2), timeout)).await;
    match given_up {
        Err(ConnectError::Timeout(waited)) => assert_eq!(waited, timeout),
        other => panic!("a dial that cannot finish, with a timeout: {other:?}"),
    }
    let took = rt.now() - started;
    assert!(
        took < Config::default().dial.dial_timeout,
        "gave up after {took:?}"
    );
    a.shutdown().await;
}
