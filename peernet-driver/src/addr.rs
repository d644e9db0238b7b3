//! Where to dial a peer: a socket address, or a host name and port that
//! the runtime resolves.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::runtime::Runtime;

/// An address to dial, as [`Node::connect`](crate::Node::connect) takes
/// it: a [`SocketAddr`] (IPv4 or IPv6), or a `"host:port"` string (an IP
/// literal such as `"[::1]:4000"` is used as it is, anything else is
/// resolved by the runtime, e.g. `"localhost:4000"`).
///
/// Every resolved address is tried in turn, in the resolver's order, until
/// a TCP connection opens.
///
/// ```
/// use peernet_driver::PeerAddr;
/// use std::net::SocketAddr;
///
/// let ip: PeerAddr = SocketAddr::from(([127, 0, 0, 1], 4000)).into();
/// assert_eq!(ip, PeerAddr::from("127.0.0.1:4000"));
/// assert_eq!(PeerAddr::from("[::1]:4000").socket_addr(), Some("[::1]:4000".parse().unwrap()));
/// assert_eq!(PeerAddr::from(("localhost", 4000)), PeerAddr::from("localhost:4000"));
/// assert_eq!(PeerAddr::from("localhost:4000").socket_addr(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// An IP address and port: dialed as it is.
    Socket(SocketAddr),
    /// `host:port`, resolved by the runtime when dialing.
    Host(String),
}

impl PeerAddr {
    /// The socket address, if this is one (no resolution needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Socket(addr) => Some(*addr),
            PeerAddr::Host(_) => None,
        }
    }

    /// The addresses to try, resolved on `rt` if needed.
    ///
    /// # Errors
    ///
    /// The resolver's, of its kind, its message naming the host
    /// (`resolve nosuchhost:7000`, the resolver's words its `source`: a
    /// resolver's own message, `invalid port value`, said nothing of what
    /// it was given); or `NotFound` when it gave no address.
    pub async fn resolve<R: Runtime>(&self, rt: &R) -> io::Result<Vec<SocketAddr>> {
        match self {
            PeerAddr::Socket(addr) => Ok(vec![*addr]),
            PeerAddr::Host(host) => {
                let addrs = rt.resolve(host).await.map_err(|source| {
                    let host = self.to_string();
                    io::Error::new(source.kind(), Unresolved { host, source })
                })?;
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{self} resolves to no address"),
                    ));
                }
                tracing::debug!(host = %self, ?addrs, "resolved");
                Ok(addrs)
            }
        }
    }
}

/// A host name that did not resolve: the host (escaped), then the
/// resolver's error as its `source` (an [`io::Error`] that wraps it
/// shows this message and returns that source).
#[derive(Debug, thiserror::Error)]
#[error("resolve {host}")]
struct Unresolved {
    host: String,
    #[source]
    source: io::Error,
}

/// The address as a user wrote it: `127.0.0.1:4000`, `[::1]:4000`,
/// `localhost:4000`. A host name is shown escaped
/// ([`escaped`](crate::text::escaped)): it may come from a file or a
/// ticket's reader, and a control character in it must not reach a
/// terminal or start a log line of its own.
///
/// ```
/// use peernet_driver::PeerAddr;
///
/// assert_eq!(PeerAddr::from("localhost:4000").to_string(), "localhost:4000");
/// assert_eq!(PeerAddr::from("evil\n:1").to_string(), r"evil\n:1");
/// ```
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Socket(addr) => addr.fmt(f),
            PeerAddr::Host(host) => crate::text::escaped(host, crate::text::Layout::Line).fmt(f),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> PeerAddr {
        PeerAddr::Socket(addr)
    }
}

impl From<&SocketAddr> for PeerAddr {
    fn from(addr: &SocketAddr) -> PeerAddr {
        PeerAddr::Socket(*addr)
    }
}

impl From<SocketAddrV4> for PeerAddr {
    fn from(addr: SocketAddrV4) -> PeerAddr {
        PeerAddr::Socket(addr.into())
    }
}

impl From<SocketAddrV6> for PeerAddr {
    fn from(addr: SocketAddrV6) -> PeerAddr {
        PeerAddr::Socket(addr.into())
    }
}

impl From<(IpAddr, u16)> for PeerAddr {
    fn from((ip, port): (IpAddr, u16)) -> PeerAddr {
        PeerAddr::Socket(SocketAddr::new(ip, port))
    }
}

impl From<(Ipv4Addr, u16)> for PeerAddr {
    fn from((ip, port): (Ipv4Addr, u16)) -> PeerAddr {
        PeerAddr::Socket(SocketAddr::new(ip.into(), port))
    }
}

impl From<(Ipv6Addr, u16)> for PeerAddr {
    fn from((ip, port): (Ipv6Addr, u16)) -> PeerAddr {
        PeerAddr::Socket(SocketAddr::new(ip.into(), port))
    }
}

impl From<&str> for PeerAddr {
    fn from(addr: &str) -> PeerAddr {
        match addr.parse() {
            Ok(addr) => PeerAddr::Socket(addr),
            Err(_) => PeerAddr::Host(addr.to_owned()),
        }
    }
}

impl From<String> for PeerAddr {
    fn from(addr: String) -> PeerAddr {
        match addr.parse() {
            Ok(addr) => PeerAddr::Socket(addr),
            Err(_) => PeerAddr::Host(addr),
        }
    }
}

impl From<&String> for PeerAddr {
    fn from(addr: &String) -> PeerAddr {
        PeerAddr::from(addr.as_str())
    }
}

impl From<(&str, u16)> for PeerAddr {
    fn from((host, port): (&str, u16)) -> PeerAddr {
        match host.parse::<IpAddr>() {
            Ok(ip) => PeerAddr::Socket(SocketAddr::new(ip, port)),
            Err(_) => PeerAddr::Host(format!("{host}:{port}")),
        }
    }
}
