//! What a node announces: its instance name, and only the addresses it
//! listens on.

use std::net::{IpAddr, SocketAddr};

use mdns_sd::{IfKind, ServiceInfo};
use peernet_proto::PeerId;

use super::{SERVICE_TYPE, TXT_ID};

/// A fresh instance name (and host name) for one run of discovery: 32
/// random hex digits, not derived from the PeerId. mDNS queries carry the
/// shared records a node already knows (the instance names) as known
/// answers, and `mdns-sd` sends one list on every interface: a name heard
/// on the loopback would reach the LAN, and with it, were the name made
/// of the PeerId, the identity of a node that listens on the loopback
/// only. The TXT record, which says who the node is, never travels so.
pub(super) fn instance_name() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Which of this host's addresses a node announces, from the address it
/// listens on: only addresses a peer can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Announced {
    /// The one address it listens on (IPv4-mapped: as IPv4). mDNS sends
    /// the announcement only on the interfaces whose network holds it: a
    /// node listening on the loopback is announced on the loopback alone,
    /// and the LAN does not hear of it.
    Only(IpAddr),
    /// Every IPv4 address of the host, as interfaces come and go
    /// (`0.0.0.0`).
    EveryV4,
    /// Every address of the host (`[::]`, which Linux binds dual-stack).
    Every,
}

impl Announced {
    pub(super) fn of(listen: IpAddr) -> Announced {
        match listen.to_canonical() {
            IpAddr::V4(v4) if v4.is_unspecified() => Announced::EveryV4,
            IpAddr::V6(v6) if v6.is_unspecified() => Announced::Every,
            ip => Announced::Only(ip),
        }
    }
}

impl Announced {
    /// What is wrong with where this announcement is heard, with
    /// discovery on the interfaces that have the addresses `interfaces`
    /// (every one if empty), as far as can be told without the
    /// interfaces' networks. mDNS sends an address on every interface
    /// whose network holds it: a loopback address on the loopback alone,
    /// an IPv6 one on no IPv4 interface address, and an IPv6 link-local
    /// one (its scope dropped) on every interface that has a link-local
    /// address, so its PeerId reaches links where it cannot be dialed.
    pub(super) fn warning(self, interfaces: &[IpAddr]) -> Option<&'static str> {
        let named = !interfaces.is_empty();
        let nowhere = match self {
            Announced::Only(ip) => {
                named
                    && !interfaces
                        .iter()
                        .any(|i| i.is_ipv4() == ip.is_ipv4() && i.is_loopback() == ip.is_loopback())
            }
            Announced::EveryV4 => named && !interfaces.iter().any(IpAddr::is_ipv4),
            Announced::Every => false,
        };
        let lan = !named || interfaces.iter().any(|ip| !ip.is_loopback());
        let link_local = |ip: &IpAddr| matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if nowhere {
            Some(
                "listening on no network of the interfaces discovery uses: announced nowhere, \
                 no host can find this node",
            )
        } else if matches!(self, Announced::Only(ip) if ip.is_loopback()) && lan {
            Some(
                "listening on the loopback: announced there only, other hosts cannot find this node",
            )
        } else if matches!(self, Announced::Only(ip) if link_local(&ip))
            && (!named
                || interfaces
                    .iter()
                    .any(|i| link_local(i) && Announced::Only(*i) != self))
        {
            Some(
                "listening on a link-local address: announced on every link that has one, \
                 name the listening interface's address for discovery to keep it there",
            )
        } else {
            None
        }
    }
}

/// The announcement of the node `me` listening at `listen`, as the
/// instance `name`: its port, its
/// PeerId, and only the addresses it listens on ([`Announced`]).
pub(super) fn service_info(
    me: &PeerId,
    name: &str,
    listen: SocketAddr,
) -> Result<ServiceInfo, mdns_sd::Error> {
    let id = me.to_string();
    let new = |ip: Option<IpAddr>| {
        ServiceInfo::new(
            SERVICE_TYPE,
            name,
            &format!("{name}.local."),
            ip.as_slice(),
            listen.port(),
            &[(TXT_ID, id.as_str())][..],
        )
    };
    Ok(match Announced::of(listen.ip()) {
        // (following the host's addresses, restricted to `ip`: mDNS
        // announces a fixed address only on the interfaces it saw at the
        // start, and never on one that comes up later, where the node
        // then stays unknown; so it adds `ip` once its interface runs,
        // announcing it then, and drops it while that interface is gone)
        Announced::Only(ip) => {
            let mut info = new(Some(ip))?.enable_addr_auto();
            info.set_interfaces(vec![IfKind::Addr(ip)]);
            info
        }
        Announced::EveryV4 => {
            let mut info = new(None)?.enable_addr_auto();
            info.set_interfaces(vec![IfKind::IPv4]);
            info
        }
        Announced::Every => new(None)?.enable_addr_auto(),
    })
}
