//! What an announcement teaches: the trusted peer it names, and the
//! addresses of it that can be dialed from here.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use mdns_sd::{InterfaceId, ScopedIp};
use peernet_proto::PeerId;

/// The most addresses one announcement adds to the book: a host
/// announces its own few, but one mDNS announcement can carry hundreds,
/// each a turn of the node's lock and a place fought for in the book
/// (which keeps `max_addresses_per_peer` of a peer's anyway).
pub const MAX_HINTS_PER_ANNOUNCEMENT: usize = 16;

/// What one announcement teaches: the peer its TXT record names (`id`),
/// if `wanted` (trusted and not this node; otherwise nothing more is
/// read), and at most [`MAX_HINTS_PER_ANNOUNCEMENT`] of the addresses
/// `heard` (with the announced `port`) that can be dialed from here
/// ([`dialable_hint`]). `interface_addrs` lists the addresses of an
/// interface an address was heard on (the OS is asked): at most once per
/// interface, not once per announced address, whose number a LAN host
/// chooses. `None` if `id` names no valid PeerId or one not wanted.
pub(super) fn hints<'a>(
    id: Option<&str>,
    port: u16,
    heard: impl IntoIterator<Item = &'a ScopedIp>,
    wanted: impl FnOnce(&PeerId) -> bool,
    mut interface_addrs: impl FnMut(&InterfaceId) -> Vec<IpAddr>,
) -> Option<(PeerId, Vec<SocketAddr>)> {
    let peer = id?.parse::<PeerId>().ok()?;
    if !wanted(&peer) {
        return None;
    }
    let mut known = std::collections::HashMap::new();
    let mut loopback = |interface: &InterfaceId| {
        *known.entry(interface.index).or_insert_with(|| {
            let addrs = interface_addrs(interface);
            !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
        })
    };
    let addrs = heard
        .into_iter()
        .filter_map(|ip| heard_addr(ip, port, &mut loopback))
        .take(MAX_HINTS_PER_ANNOUNCEMENT)
        .collect();
    Some((peer, addrs))
}

/// Where an address announced for `port` can be dialed from here, if
/// anywhere:
/// - a loopback address only if the announcement was heard on a loopback
///   interface (it came from this host): one heard from the network would
///   make this node dial its own local services for a stranger;
/// - an IPv6 link-local address with the scope of the interface it was
///   heard on (`scope`, 0 if unknown: then it is dropped, since no dial
///   could reach it);
/// - never one the book refuses ([`peernet_proto::is_dialable`]: port 0,
///   an unspecified, multicast or broadcast IP), so that such addresses,
///   which a LAN host can announce by the hundred, do not take the places
///   of an announcement's [`MAX_HINTS_PER_ANNOUNCEMENT`].
pub fn dialable_hint(
    ip: IpAddr,
    port: u16,
    scope: u32,
    heard_on_loopback: bool,
) -> Option<SocketAddr> {
    // (an IPv4-mapped IPv6 address is its IPv4 form: `::ffff:127.0.0.1`
    // is loopback, and the book stores it as `127.0.0.1`)
    let ip = ip.to_canonical();
    if ip.is_loopback() && !heard_on_loopback {
        return None;
    }
    let addr = match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            (scope != 0).then(|| SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)))
        }
        _ => Some(SocketAddr::new(ip, port)),
    };
    addr.filter(peernet_proto::is_dialable)
}

/// [`dialable_hint`] of an address as mDNS heard it; `loopback` says
/// whether an interface it was heard on is a loopback one.
pub(super) fn heard_addr(
    ip: &ScopedIp,
    port: u16,
    loopback: &mut dyn FnMut(&InterfaceId) -> bool,
) -> Option<SocketAddr> {
    let (scope, heard_on) = match ip {
        ScopedIp::V4(v4) => (0, v4.interface_ids().to_vec()),
        ScopedIp::V6(v6) => (v6.scope_id().index, vec![v6.scope_id().clone()]),
        // (a kind of address this crate does not know)
        _ => return None,
    };
    let on_loopback = ip.to_ip_addr().to_canonical().is_loopback()
        && !heard_on.is_empty()
        && heard_on.iter().all(loopback);
    let addr = dialable_hint(ip.to_ip_addr(), port, scope, on_loopback);
    if addr.is_none() {
        tracing::debug!(%ip, "announced address dropped: not dialable from here");
    }
    addr
}
