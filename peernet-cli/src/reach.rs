//! Whether `--mdns` would announce a node anywhere, for `serve`'s
//! usage check. (The addresses of a ticket are the library's:
//! `Node::ticket`.)

use std::net::IpAddr;

/// Whether `--mdns` would announce a node listening on `listen` nowhere,
/// restricted to the interface addresses `mdns_interfaces`
/// (`--mdns-interface`): mDNS sends an address only on an interface
/// address whose network holds it (`0.0.0.0`: any IPv4 one), so a node
/// listening on `192.0.2.5` with `--mdns-interface 127.0.0.1`, or on
/// `::1` with an IPv4 one, is announced on none (it still browses).
/// False when the interfaces cannot be listed, or none are named.
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

    /// The listen address must be on the network of an address
    /// `--mdns-interface` names, or mDNS announces the node nowhere.
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
