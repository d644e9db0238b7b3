//! How a connection's TCP socket is set up, written once for the
//! runtimes' `connect` and `accept` (its end is [`socket_end`](crate::socket_end)).
//!
//! - `TCP_NODELAY`: envelopes are small and a call waits for its reply, so
//!   Nagle's algorithm would hold a request back for the peer's delayed
//!   acknowledgement.
//! - `TCP_NOTSENT_LOWAT` of [`UNSENT_LIMIT`] (Linux and Android): the
//!   kernel takes a write only while less than that is queued unsent, and
//!   reports room once less than half of it is. Without it a socket's send buffer grows to 4
//!   MiB by default (`net.ipv4.tcp_wmem`), so towards a peer that reads
//!   nothing the kernel held 3.7 MB per connection beside the node's own
//!   queue, outside every limit of the node; and Linux reported room only
//!   once about a third of that buffer was free, so a slow reader had to
//!   take about 1.3 MB to show progress. What is sent and not yet
//!   acknowledged is not limited by it: a fast path keeps its window full
//!   as long as the writer refills what is unsent.
//!
//! A stream the application brings ([`Node::connect_stream`](crate::Node::connect_stream),
//! [`Node::accept_stream`](crate::Node::accept_stream)) keeps the options it was given.

use socket2::SockRef;

/// Bytes the kernel may hold unsent for one connection before it refuses
/// more (`TCP_NOTSENT_LOWAT`, Linux and Android): the default send
/// buffer of the core (`Config::send_buffer`), so the kernel holds at most
/// about as much again as the node queues. A write may take up to one
/// more segment's worth (on loopback up to 64 KiB) past it.
///
/// Lower limits wake the writer more often: on loopback, four 900 kB
/// calls in flight moved 1,594 MB/s on average without the option, 1,592
/// with this limit and 1,438 with 512 KiB (six alternated runs each).
pub const UNSENT_LIMIT: u32 = 1024 * 1024;

/// Sets `socket`'s options for a connection (module docs). Failures are
/// ignored: they mean the socket is dead already (reset before it was
/// accepted, where macOS answers `EINVAL`), which its first read says; an
/// error here would make an accept loop back off.
pub fn take_up<'a, S>(socket: &'a S)
where
    SockRef<'a>: From<&'a S>,
{
    let socket = SockRef::from(socket);
    let _ = socket.set_tcp_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket.set_tcp_notsent_lowat(UNSENT_LIMIT);
}
