//! The addresses a listening node can be reached at, for its ticket.

use std::net::{IpAddr, SocketAddr};

use peernet_tokio::ticket::MAX_TICKET_ADDRS;

/// `listen` itself when it names one address; for `0.0.0.0` the host's
/// IPv4 interface addresses, for `[::]` its IPv4 and IPv6 ones (Linux
/// binds `[::]` dual-stack), each with the bound port. Interfaces that
/// are up come first, loopback last (a ticket for another host should
/// lead with an address that host can reach); IPv6 link-local addresses
/// are left out (a ticket carries no scope id). At most
/// [`MAX_TICKET_ADDRS`]; the listen address itself if no interface is
/// found.
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
    let mut found: Vec<(bool, bool, IpAddr)> = interfaces
        .iter()
        .filter(|i| match i.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(ip) => want_v6 && !ip.is_unicast_link_local(),
        })
        .map(|i| (i.is_loopback(), !i.is_oper_up(), i.ip()))
        .collect();
    // up before down, non-loopback before loopback, IPv4 before IPv6
    found.sort_by_key(|&(loopback, down, ip)| (loopback, down, ip.is_ipv6(), ip));
    found.dedup_by_key(|f| f.2);
    let addrs: Vec<SocketAddr> = found
        .into_iter()
        .take(MAX_TICKET_ADDRS)
        .map(|(_, _, ip)| SocketAddr::new(ip, listen.port()))
        .collect();
    if addrs.is_empty() {
        vec![listen]
    } else {
        addrs
    }
}

/// Whether no interface of this host has `ip` (`--mdns-interface`): false
/// when the interfaces cannot be listed (the discovery then says what it
/// finds).
#[cfg(feature = "mdns")]
pub(crate) fn held_by_no_interface(ip: IpAddr) -> bool {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => !interfaces.iter().any(|i| i.ip() == ip),
        Err(error) => {
            tracing::warn!(%error, "cannot list interface addresses");
            false
        }
    }
}
