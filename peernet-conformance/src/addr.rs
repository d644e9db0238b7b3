//! Scenarios of dialing by host name and over IPv6.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use peernet_driver::{AddrSource, ConnectError, PeerAddr};

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

const CALL: Duration = Duration::from_secs(10);

/// `localhost:PORT` is resolved by the runtime and reaches a node on
/// 127.0.0.1, even when `localhost` also resolves to `[::1]` first (where
/// nobody listens on that port): each address is tried in turn.
pub async fn connect_by_host_name<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let b: N<H> = node(2, &[1], |c| c).await;
    expose_echo(&b);
    let port = b.local_addr().unwrap().port();
    let host = format!("localhost:{port}");
    assert!(matches!(PeerAddr::from(host.as_str()), PeerAddr::Host(_)));
    let got = within(
        a.runtime(),
        "connect",
        a.connect(b.peer_id(), host.as_str()),
    )
    .await;
    assert_eq!(got.expect("connect to localhost"), b.peer_id());
    // the address book learned the resolved address that opened, not the
    // name nor an address that refused
    let book: Vec<(SocketAddr, AddrSource)> = a
        .addresses(&b.peer_id())
        .iter()
        .map(|e| (e.addr, e.source))
        .collect();
    assert_eq!(
        book,
        [(b.local_addr().unwrap(), AddrSource::Application)],
        "{book:?}"
    );
    let reply = a.call(&b.peer_id(), "echo", "by name", CALL).await;
    assert_eq!(reply.expect("call"), "by name");
    // (host, port) works too, and finds the connection there is
    let again = a.connect(b.peer_id(), ("localhost", port)).await;
    assert_eq!(again.expect("connect again"), b.peer_id());
    a.shutdown().await;
    b.shutdown().await;
}

/// A node listening on `[::1]` is dialed by its IPv6 address, as a
/// `SocketAddr` and as the string `"[::1]:PORT"`. Skipped, saying why,
/// when the machine has no IPv6 loopback.
pub async fn ipv6_loopback<H: Harness>() {
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let config = NodeConfig::new(identity(2))
        .protocol_version(version())
        .trusting(peer(1));
    let b: N<H> = match Node::bind(config, v6).await {
        Ok(node) => node,
        Err(error) => {
            eprintln!("skipped: no IPv6 loopback on this machine ({error})");
            return;
        }
    };
    let a: N<H> = node(1, &[2], |c| c).await;
    expose_echo(&b);
    let addr = b.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let got = within(a.runtime(), "connect", a.connect(b.peer_id(), addr)).await;
    assert_eq!(got.expect("connect over IPv6"), b.peer_id());
    let reply = a.call(&b.peer_id(), "echo", "v6", CALL).await;
    assert_eq!(reply.expect("call over IPv6"), "v6");

    let text = format!("[::1]:{}", addr.port());
    assert_eq!(PeerAddr::from(text.as_str()), PeerAddr::Socket(addr));
    let got = a.reconnect(b.peer_id(), text).await;
    assert_eq!(got.expect("reconnect by string"), b.peer_id());
    let reply = a.call(&b.peer_id(), "echo", "v6 again", CALL).await;
    assert_eq!(reply.expect("call after reconnect"), "v6 again");
    a.shutdown().await;
    b.shutdown().await;
}

/// A `"host:port"` that does not resolve fails `ConnectError::Io`, its
/// chain naming what was given (`io: resolve localhost:notaport: invalid
/// port value`): the resolver's own message said nothing of it, so an
/// application dialing several names could not tell which one failed.
/// (An invalid port fails in the resolver's parsing, before any lookup:
/// no DNS is needed.)
pub async fn a_name_that_does_not_resolve_is_named<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let given = "localhost:notaport\n";
    let got = within(a.runtime(), "connect", a.connect(peer(2), given)).await;
    let Err(error @ ConnectError::Io(_)) = got else {
        panic!("{got:?}");
    };
    let chain = peernet_driver::ErrorChain(&error).to_string();
    assert!(
        chain.starts_with(r"io: resolve localhost:notaport\n: "),
        "{chain}"
    );
    a.shutdown().await;
}
