//! A ticket's address on this host or its link (loopback, link-local) is
//! recorded with a warning that names it: a stranger's ticket can point
//! a kept node at a local service (`127.0.0.1:6379`,
//! `169.254.169.254:80`), dialed every backoff round (review s54: no
//! word was said). An application's own address, and a ticket's address
//! on another host, are recorded without one. A test binary of its own:
//! it installs the process's log subscriber.

#[path = "common/lines.rs"]
mod lines;

use lines::Lines;
use peernet_tokio::{AddrSource, Identity, Node, NodeConfig, Ticket};

#[tokio::test]
async fn a_tickets_local_address_is_recorded_with_a_warning() {
    let lines = Lines::capture(tracing::Level::WARN);
    let node = Node::new(NodeConfig::new(Identity::from_seed(&[91; 32])));
    let peer = Identity::from_seed(&[92; 32]).peer_id();
    node.pair(peer, None).await.unwrap();
    let addrs = ["192.0.2.7:7000", "127.0.0.1:6379", "169.254.169.254:80"];
    let ticket = Ticket::new(peer, addrs.map(|a| a.parse().unwrap())).unwrap();
    for addr in ticket.addrs() {
        assert!(node.add_address(peer, *addr, AddrSource::Ticket).unwrap());
    }
    let own = "127.0.0.2:7000".parse().unwrap();
    assert!(
        node.add_address(peer, own, AddrSource::Application)
            .unwrap()
    );
    node.shutdown().await;
    let text = lines.text();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 2, "{text}");
    assert!(warned[0].contains("addr=127.0.0.1:6379"), "{text}");
    assert!(warned[1].contains("addr=169.254.169.254:80"), "{text}");
}
