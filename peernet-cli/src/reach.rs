//! The addresses a listening node can be reached at, for its ticket.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use peernet_tokio::ticket::MAX_TICKET_ADDRS;

/// `listen` itself when it names one address; for `0.0.0.0` the host's
/// IPv4 interface addresses, for `[::]` its IPv4 and IPv6 ones (Linux
/// binds `[::]` dual-stack), each with the bound port. The address the
/// host sends from on its default route comes first (a VPN's or a
/// container bridge's address would otherwise often lead: a caller
/// tries a ticket's addresses in order), then the other interfaces that
/// are up, loopback last (a ticket for another host should lead with an
/// address that host can reach); IPv6 link-local addresses are left out
/// (a ticket carries no scope id). At most [`MAX_TICKET_ADDRS`]; the
/// listen address itself if no interface is found.
pub(crate) fn reachable(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let want_v6 = listen.is_ipv6();
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces,
        Err(error) => {
            tracing::warn!(%error, "cannot list interface addresses; the ticket names the listen address");
            return vec![listen];
        }
    };
    let found: Vec<Found> = interfaces
        .iter()
        .filter(|i| match i.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(ip) => want_v6 && !ip.is_unicast_link_local(),
        })
        .map(|i| Found {
            ip: i.ip(),
            loopback: i.is_loopback(),
            down: !i.is_oper_up(),
        })
        .collect();
    let mut routed = vec![default_route_source(false)];
    if want_v6 {
        routed.push(default_route_source(true));
    }
    let routed: Vec<IpAddr> = routed.into_iter().flatten().collect();
    let addrs: Vec<SocketAddr> = in_ticket_order(found, &routed)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect();
    if addrs.is_empty() {
        vec![listen]
    } else {
        addrs
    }
}

/// An interface address, and what ranks it in a ticket.
#[derive(Clone, Copy, Debug)]
struct Found {
    ip: IpAddr,
    loopback: bool,
    down: bool,
}

/// The ticket's order of the interface addresses `found`, at most
/// [`MAX_TICKET_ADDRS`], each once: up before down, non-loopback before
/// loopback, then the default route's source addresses `routed` first,
/// then IPv4 before IPv6, then by address (so a ticket is the same from
/// run to run).
fn in_ticket_order(mut found: Vec<Found>, routed: &[IpAddr]) -> Vec<IpAddr> {
    found.sort_by_key(|f| {
        (
            f.loopback,
            f.down,
            !routed.contains(&f.ip),
            f.ip.is_ipv6(),
            f.ip,
        )
    });
    let mut ips: Vec<IpAddr> = found.into_iter().map(|f| f.ip).collect();
    let mut seen = Vec::with_capacity(ips.len());
    ips.retain(|ip| {
        let first = !seen.contains(ip);
        seen.push(*ip);
        first
    });
    ips.truncate(MAX_TICKET_ADDRS);
    ips
}

/// The address this host sends from on its default route, IPv4 or
/// IPv6, or `None` without one. A UDP socket "connected" to a
/// documentation address (RFC 5737, RFC 3849) takes the source address
/// the kernel's routing table chooses for it; UDP's connect sends
/// nothing.
fn default_route_source(v6: bool) -> Option<IpAddr> {
    let (bind, probe) = if v6 {
        ("[::]:0", "[2001:db8::1]:9")
    } else {
        ("0.0.0.0:0", "192.0.2.1:9")
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Whether `--mdns` would announce a node listening on `listen` nowhere,
/// restricted to the interface addresses `mdns_interfaces`
/// (`--mdns-interface`): mDNS sends an address only on an interface
/// address whose network holds it (`0.0.0.0`: any IPv4 one), so a node
/// listening on `192.0.2.5` with `--mdns-interface 127.0.0.1`, or on
/// `::1` with an IPv4 one, is announced on none (it still browses).
/// False when the interfaces cannot be listed, or none are named.
#[cfg(feature = "mdns")]
pub(crate) fn announced_nowhere(listen: IpAddr, mdns_interfaces: &[IpAddr]) -> bool {
    if mdns_interfaces.is_empty() {
        return false;
    }
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => {
            let networks: Vec<(IpAddr, IpAddr)> = interfaces
                .iter()
                .filter(|i| mdns_interfaces.contains(&i.ip()))
                .map(|i| match &i.addr {
                    if_addrs::IfAddr::V4(v4) => (v4.ip.into(), v4.netmask.into()),
                    if_addrs::IfAddr::V6(v6) => (v6.ip.into(), v6.netmask.into()),
                })
                .collect();
            !announced_on_any(listen, &networks)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot list interface addresses");
            false
        }
    }
}

/// Whether a node listening on `listen` is announced on one of the
/// interface addresses `networks` (address, netmask) discovery uses.
#[cfg(feature = "mdns")]
fn announced_on_any(listen: IpAddr, networks: &[(IpAddr, IpAddr)]) -> bool {
    let holds = |&(ip, mask): &(IpAddr, IpAddr)| match (listen.to_canonical(), ip, mask) {
        // (`[::]` is announced with every address, IPv4 ones included;
        // `0.0.0.0` with every IPv4 one)
        (IpAddr::V6(l), _, _) if l.is_unspecified() => true,
        (IpAddr::V4(l), IpAddr::V4(_), _) if l.is_unspecified() => true,
        (IpAddr::V4(l), IpAddr::V4(ip), IpAddr::V4(mask)) => {
            u32::from(l) & u32::from(mask) == u32::from(ip) & u32::from(mask)
        }
        (IpAddr::V6(l), IpAddr::V6(ip), IpAddr::V6(mask)) => {
            u128::from(l) & u128::from(mask) == u128::from(ip) & u128::from(mask)
        }
        _ => false,
    };
    networks.iter().any(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn up(s: &str) -> Found {
        Found {
            ip: ip(s),
            loopback: s == "127.0.0.1" || s == "::1",
            down: false,
        }
    }

    /// The default route's address leads the ticket, ahead of a container
    /// bridge's or a VPN's that sorts before it; loopback and interfaces
    /// that are down stay last; an address held twice is named once.
    #[test]
    fn the_default_routes_address_leads_the_ticket() {
        let found = vec![
            up("127.0.0.1"),
            up("192.168.1.20"),
            up("10.8.0.2"),
            up("172.17.0.1"),
            Found {
                down: true,
                ..up("10.0.0.9")
            },
            up("2001:db8::20"),
            up("::1"),
            up("172.17.0.1"),
        ];
        let routed = [ip("192.168.1.20"), ip("2001:db8::20")];
        let want = [
            "192.168.1.20",
            "2001:db8::20",
            "10.8.0.2",
            "172.17.0.1",
            "10.0.0.9",
            "127.0.0.1",
            "::1",
        ];
        assert_eq!(in_ticket_order(found.clone(), &routed), want.map(ip));
        // without a default route: the order by address, as before
        let want = [
            "10.8.0.2",
            "172.17.0.1",
            "192.168.1.20",
            "2001:db8::20",
            "10.0.0.9",
            "127.0.0.1",
            "::1",
        ];
        assert_eq!(in_ticket_order(found, &[]), want.map(ip));
    }

    /// A ticket holds at most `MAX_TICKET_ADDRS` addresses, the default
    /// route's among them however many sort before it.
    #[test]
    fn a_ticket_keeps_the_default_routes_address_within_its_bound() {
        let mut found: Vec<Found> = (1..=20).map(|i| up(&format!("10.0.0.{i}"))).collect();
        found.push(up("192.168.1.20"));
        let order = in_ticket_order(found, &[ip("192.168.1.20")]);
        assert_eq!(order.len(), MAX_TICKET_ADDRS);
        assert_eq!(order[0], ip("192.168.1.20"));
    }

    /// What the host routes by is one of its own addresses, when it has a
    /// default route at all (a probe, nothing is sent).
    #[test]
    fn the_default_routes_address_is_the_hosts_own() {
        let own: Vec<IpAddr> = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(|i| i.ip())
            .collect();
        for v6 in [false, true] {
            if let Some(source) = default_route_source(v6) {
                assert!(own.contains(&source), "{source} is not among {own:?}");
            }
        }
    }

    /// The listen address must be on the network of an address
    /// `--mdns-interface` names, or mDNS announces the node nowhere.
    #[cfg(feature = "mdns")]
    #[test]
    fn a_listen_address_is_announced_only_on_its_network() {
        let lo = (ip("127.0.0.1"), ip("255.0.0.0"));
        let lan = (ip("192.0.2.1"), ip("255.255.255.0"));
        let lo6 = (ip("::1"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        let lan6 = (ip("2001:db8::1"), ip("ffff:ffff:ffff:ffff::"));
        for (listen, networks, announced) in [
            ("127.0.0.1", vec![lo], true),
            ("127.0.0.2", vec![lo], true),
            ("192.0.2.5", vec![lan], true),
            ("::ffff:192.0.2.5", vec![lan], true),
            ("2001:db8::5", vec![lan6], true),
            ("0.0.0.0", vec![lan], true),
            ("::", vec![lan], true),
            ("::", vec![lo6], true),
            ("192.0.2.5", vec![lo], false),
            ("127.0.0.1", vec![lan], false),
            ("198.51.100.5", vec![lan, lo], false),
            ("::1", vec![lo], false),
            ("2001:db8::5", vec![lan], false),
            ("0.0.0.0", vec![lo6, lan6], false),
            ("127.0.0.1", vec![], false),
        ] {
            assert_eq!(
                announced_on_any(ip(listen), &networks),
                announced,
                "{listen} on {networks:?}"
            );
        }
    }
}
