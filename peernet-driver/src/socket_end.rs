//! How a connection's TCP socket is let go of, written once for the
//! runtimes' socket halves (`Socket::split`).
//!
//! The driver closes the write half once its last bytes are written and
//! reads to the peer's end of stream; when it gives up instead (a peer
//! that takes none of our bytes, the linger over, a broken transport) it
//! drops a half without that. A FIN then would leave the kernel holding
//! the socket, and every byte queued before the FIN, for as long as the
//! peer keeps its end open without reading: measured, 3.7 MB still held
//! 280 s after the node let go, outside every limit of the node. So a
//! half dropped that way makes the socket close with a reset. A half that
//! ended cleanly still may not be read by the peer (one that closed its
//! sending side and reads nothing kept 2.5 MB so): where the kernel
//! offers `TCP_USER_TIMEOUT`, it gives up once nothing the socket sends
//! is taken for [`ORPHAN_PATIENCE`]; a peer that reads keeps it going.

use std::time::Duration;

use socket2::SockRef;

/// How long the kernel may go on trying to deliver what a socket let go
/// of cleanly still queues, without progress, before it drops the socket
/// (the driver's linger).
pub const ORPHAN_PATIENCE: Duration = Duration::from_secs(2);

/// A half of `socket` is dropped: `cleanly` if it ended as the driver
/// ends a connection (our close written, or the peer's end of stream
/// read), else given up, and the socket closes with a reset once its last
/// half is gone. A failure to set the option is ignored: the socket is
/// dead already, and nothing is queued.
pub fn let_go<'a, S>(socket: &'a S, cleanly: bool)
where
    SockRef<'a>: From<&'a S>,
{
    if !cleanly {
        reset(socket);
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = SockRef::from(socket).set_tcp_user_timeout(Some(ORPHAN_PATIENCE));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// Makes `socket` close with a TCP reset (`SO_LINGER` 0) rather than a
/// FIN when its last handle is dropped: what it still queues is dropped
/// at once ([`Socket::reset`](crate::Socket::reset), and a half given
/// up).
pub fn reset<'a, S>(socket: &'a S)
where
    SockRef<'a>: From<&'a S>,
{
    let _ = SockRef::from(socket).set_linger(Some(Duration::ZERO));
}
