//! The addresses a listening node can be reached at, for its ticket.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::ticket::MAX_TICKET_ADDRS;

/// `listen` itself when it names one address; for `0.0.0.0` the host's
/// IPv4 interface addresses, for `[::]` its IPv4 and IPv6 ones (Linux
/// binds `[::]` dual-stack), each with the bound port. The address the
/// host sends from on its default route comes first (a VPN's or a
/// container bridge's address would otherwise often lead: a caller
/// tries a ticket's addresses in order), then the other interfaces that
/// are up; loopback only when the host has no other address (a ticket
/// is for another host, whose own loopback that would name, and a peer
/// pairing from it is warned of each loopback address; a peer on this
/// host reaches the node through any of the others); IPv6 link-local
/// addresses are left out (a ticket carries no scope id). At most [`MAX_TICKET_ADDRS`]; the
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
/// [`MAX_TICKET_ADDRS`], each once, loopback ones only when nothing else
/// is found: up before down, then the default route's source addresses
/// `routed` first, then IPv4 before IPv6, then by address (so a ticket
/// is the same from run to run).
fn in_ticket_order(mut found: Vec<Found>, routed: &[IpAddr]) -> Vec<IpAddr> {
    if found.iter().any(|f| !f.loopback) {
        found.retain(|f| !f.loopback);
    }
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
    route_source(if v6 {
        DEFAULT_ROUTE_PROBE_V6
    } else {
        DEFAULT_ROUTE_PROBE_V4
    })
}

/// What [`default_route_source`] asks the kernel the way to: addresses
/// no network uses (documentation ones), so only a default route leads
/// there, unless a network of the host is numbered with them.
const DEFAULT_ROUTE_PROBE_V4: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 9);
const DEFAULT_ROUTE_PROBE_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    9,
);

/// The source address the kernel's routing would send to `probe` from,
/// or `None` when no route leads there: a UDP socket "connected" to it
/// (which sends nothing).
fn route_source(probe: SocketAddr) -> Option<IpAddr> {
    let bind = match probe {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
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
    /// bridge's or a VPN's that sorts before it; interfaces that are down
    /// stay last; loopback is left out beside other addresses (another
    /// host would dial its own); an address held twice is named once.
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
        ];
        assert_eq!(in_ticket_order(found.clone(), &routed), want.map(ip));
        // without a default route: the order by address, as before
        let want = [
            "10.8.0.2",
            "172.17.0.1",
            "192.168.1.20",
            "2001:db8::20",
            "10.0.0.9",
        ];
        assert_eq!(in_ticket_order(found, &[]), want.map(ip));
    }

    /// A host whose only addresses are loopback ones (a fresh network
    /// namespace, a container without a network) names them: a peer on
    /// the same host can still use the ticket.
    #[test]
    fn a_host_with_loopback_alone_names_it() {
        let found = vec![up("::1"), up("127.0.0.1")];
        assert_eq!(in_ticket_order(found, &[]), ["127.0.0.1", "::1"].map(ip));
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

    /// The host's own interface addresses.
    fn own_addresses() -> Vec<IpAddr> {
        if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(|i| i.ip())
            .collect()
    }

    /// A route probe names the source address the kernel sends from:
    /// the loopback's to a loopback address, on every host whose
    /// loopback runs; and none where it does not (a fresh network
    /// namespace's loopback is down, and has no address).
    #[test]
    fn a_route_probe_names_the_source_the_kernel_sends_from() {
        let own = own_addresses();
        for lo in [ip("127.0.0.1"), ip("::1")] {
            let found = route_source(SocketAddr::new(lo, 9));
            if own.contains(&lo) {
                assert_eq!(found, Some(lo), "the way to {lo}");
            } else {
                eprintln!("{lo} is not the host's (its loopback is down): no way to it");
                assert_eq!(found, None, "a way to {lo}, not among {own:?}");
            }
        }
    }

    /// What the host routes by is one of its own addresses when its
    /// routing table leads to the probe's address (its default route,
    /// as a rule), and there is none when no route does (a host or a
    /// network namespace without a default route): the kernel's main
    /// table, read from /proc, says which to expect.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_default_routes_address_is_the_hosts_own() {
        let own = own_addresses();
        for (probe, table) in [
            (DEFAULT_ROUTE_PROBE_V4, "/proc/net/route"),
            (DEFAULT_ROUTE_PROBE_V6, "/proc/net/ipv6_route"),
        ] {
            // (no IPv6 in the kernel: no table, and no way there)
            let table = std::fs::read_to_string(table).unwrap_or_default();
            let found = route_source(probe);
            if routed(&table, probe.ip()) {
                let source = found.unwrap_or_else(|| panic!("routed, no source for {probe}"));
                eprintln!("the way to {probe} is from {source}");
                assert!(own.contains(&source), "{source} is not among {own:?}");
            } else {
                eprintln!("no route to {probe} here (no default route): none expected");
                assert_eq!(found, None, "a way to {probe} no route leads to");
            }
        }
    }

    /// Whether the kernel's main routing table `table` (the text of
    /// Linux's `/proc/net/route` or `/proc/net/ipv6_route`) has a route
    /// to `to`: one that is up (`RTF_UP`), not a rejecting one
    /// (`RTF_REJECT`: the kernel's own "unreachable" default of IPv6),
    /// whose prefix holds `to`.
    fn routed(table: &str, to: IpAddr) -> bool {
        const RTF_UP: u32 = 0x0001;
        const RTF_REJECT: u32 = 0x0200;
        let hex = |field: Option<&str>| u128::from_str_radix(field.unwrap_or("x"), 16).ok();
        let usable = |flags: Option<u128>| {
            flags.is_some_and(|f| f & u128::from(RTF_UP) != 0 && f & u128::from(RTF_REJECT) == 0)
        };
        table.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| fields.get(i).copied();
            match to {
                // Iface Destination Gateway Flags RefCnt Use Metric Mask...,
                // addresses as the kernel holds them in memory
                IpAddr::V4(to) => {
                    let v4 = |f| {
                        let n = u32::try_from(hex(f)?).ok()?;
                        Some(u32::from_be_bytes(n.to_ne_bytes()))
                    };
                    match (v4(field(1)), v4(field(7))) {
                        (Some(dest), Some(mask)) => {
                            usable(hex(field(3))) && u32::from(to) & mask == dest & mask
                        }
                        _ => false,
                    }
                }
                // dest plen src plen next-hop metric refcnt use flags iface
                IpAddr::V6(to) => match (hex(field(0)), hex(field(1))) {
                    (Some(dest), Some(len @ 0..=128)) => {
                        let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                        usable(hex(field(8))) && u128::from(to) & mask == dest & mask
                    }
                    _ => false,
                },
            }
        })
    }

    /// [`routed`] reads the kernel's tables: an IPv4 default route, a
    /// network, and IPv6's unreachable default, which routes nothing.
    #[cfg(all(target_os = "linux", target_endian = "little"))]
    #[test]
    fn the_routing_tables_text_is_read() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
        let v4_network_only = v4.replace("\t00000000\t010200C0", "\t0000FEA9\t010200C0");
        let v4_network_only =
            v4_network_only.replace("\t0003\t0\t0\t0\t00000000", "\t0003\t0\t0\t0\t0000FFFF");
        assert!(routed(v4, ip("198.51.100.7")));
        assert!(routed(v4, ip("192.0.2.1")));
        assert!(!routed(&v4_network_only, ip("198.51.100.7")));
        assert!(routed(&v4_network_only, ip("169.254.3.4")));
        assert!(!routed(&v4.replace("0003", "0203"), ip("198.51.100.7")));
        assert!(!routed("Iface\tDestination\n", ip("192.0.2.1")));
        let unreachable = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
        assert!(!routed(unreachable, ip("2001:db8::1")));
        assert!(routed(&format!("{v6}{unreachable}"), ip("2001:db8::1")));
        let (network, _) = v6.split_once('\n').unwrap();
        assert!(routed(network, ip("fd00::7")));
        assert!(!routed(network, ip("2001:db8::1")));
        assert!(!routed(v4, ip("2001:db8::1")));
    }
}
