//! Scenarios of what a closed connection leaves behind in the kernel
//! (Linux: they read `/proc/net/tcp`; elsewhere they check nothing).
//!
//! A node that lets go of a socket must not leave the kernel holding it,
//! and every byte still queued for the peer, for as long as a peer that
//! reads nothing keeps its end open: that memory is outside every limit
//! of the node, and a hostile peer could pile it up connection after
//! connection. A socket given up (the linger over, a stall, a broken
//! transport) closes with a reset; one let go of cleanly gives up once
//! the peer takes none of its bytes for 2 s (`TCP_USER_TIMEOUT`). While
//! a connection lives, what the kernel queues towards a peer that reads
//! nothing is bounded too (`TCP_NOTSENT_LOWAT`,
//! [`socket_start`](peernet_driver::socket_start)).

use peernet_driver::socket_start::UNSENT_LIMIT;

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// The sockets of this host on local port `port` other than a listener,
/// as (state, bytes queued to send), from `/proc/net/tcp` (IPv4); none
/// where there is no such table.
///
/// They may include sockets of connections long gone, of other tests or
/// processes: a listener bound to port 0 can be given a port that a
/// socket in `TIME_WAIT` (60 s) still names as its own. What must be
/// bob's connection alone is looked up by both its ports ([`connection`]).
pub fn sockets_on(port: u16) -> Vec<(String, u64)> {
    strip(sockets_where(|local, _| local == port))
}

/// The socket of this host from local port `port` to remote port `peer`
/// (one connection, on loopback), as [`sockets_on`] gives them.
fn connection(port: u16, peer: u16) -> Vec<(String, u64)> {
    strip(sockets_where(|local, remote| {
        (local, remote) == (port, peer)
    }))
}

/// The sockets as [`sockets_on`] gives them, without their remote ports.
fn strip(sockets: Vec<(u16, String, u64)>) -> Vec<(String, u64)> {
    sockets
        .into_iter()
        .map(|(_, state, queued)| (state, queued))
        .collect()
}

/// The sockets whose local and remote ports `keep` takes, as (remote
/// port, state, bytes queued to send).
fn sockets_where(keep: impl Fn(u16, u16) -> bool) -> Vec<(u16, String, u64)> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    sockets_in(&table, keep)
}

/// The sockets of `table` (`/proc/net/tcp`'s text) that [`sockets_where`]
/// keeps, each once: the kernel writes the table a page at a time while
/// other sockets come and go, and a line may come twice.
fn sockets_in(table: &str, keep: impl Fn(u16, u16) -> bool) -> Vec<(u16, String, u64)> {
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (state, queues) = (fields[3], fields[4]);
        // (0A: listening; a socket is its two addresses)
        if !keep(port(fields[1]), port(fields[2]))
            || state == "0A"
            || !seen.insert((fields[1], fields[2]))
        {
            continue;
        }
        let tx_queue = queues.split(':').next().unwrap();
        found.push((
            port(fields[2]),
            state.to_owned(),
            u64::from_str_radix(tx_queue, 16).unwrap(),
        ));
    }
    found
}

/// Bytes the kernel queues to send on the sockets of local port `port`.
pub fn queued_on(port: u16) -> u64 {
    sockets_on(port).iter().map(|(_, queued)| queued).sum()
}

/// Waits, looking every 10 ms, until `done` holds; false if `limit`
/// passes first.
async fn polled<R: Runtime>(rt: &R, limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = rt.now() + limit;
    while !done() {
        if rt.now() >= deadline {
            return false;
        }
        rt.sleep_until(rt.now() + Duration::from_millis(10)).await;
    }
    true
}

/// Waits until bob's sockets on `port` queue more than `bytes` (`what`
/// they hold).
async fn holds<R: Runtime>(rt: &R, port: u16, bytes: u64, what: &str) {
    let held = polled(rt, WAIT, || queued_on(port) > bytes).await;
    assert!(
        held,
        "bob's socket never held {what}: {:?}",
        sockets_on(port)
    );
}

/// Waits until the kernel has let go of bob's socket from `port` to the
/// peer's port `peer`, which must happen within `limit` of the close.
/// (That socket alone: another on `port` may be an older connection's
/// in `TIME_WAIT`, see [`sockets_on`].)
async fn released<R: Runtime>(rt: &R, port: u16, peer: u16, limit: Duration) {
    let gone = polled(rt, limit, || connection(port, peer).is_empty()).await;
    assert!(
        gone,
        "{limit:?} after the close, the kernel still holds bob's socket (state, bytes queued): {:?}",
        connection(port, peer)
    );
}

/// Bob's linger in [`calls_towards_a_deaf_peer`].
const DEAF_LINGER: Duration = Duration::from_millis(200);

/// Bob, a node with a raw peer (key 71) that completed its handshake and
/// then reads nothing, and 40 MB of calls towards it, far more than
/// loopback buffers hold; returns once bob's socket queues 32 KiB of them
/// for the peer, with the port bob listens on, the raw peer's port and
/// the raw peer, which must stay open.
async fn calls_towards_a_deaf_peer<H: Harness>() -> (N<H>, u16, u16, RawPeer) {
    // (a short linger: the scenario that gives the connection up waits
    // for the linger's end, far less than its bound)
    let bob: N<H> = node(72, &[71], |c| c.linger(DEAF_LINGER)).await;
    let rt = bob.runtime().clone();
    let port = bob.local_addr().unwrap().port();
    let events = bob.events();
    let raw = RawPeer::dial(
        &rt,
        identity(71),
        bob.peer_id(),
        bob.local_addr().unwrap(),
        &[],
    )
    .await;
    expect_connected(&rt, &events, "the raw peer", peer(71)).await;
    let args = Bytes::from(vec![7u8; 1_000_000]);
    for _ in 0..40 {
        let (bob, args) = (bob.clone(), args.clone());
        rt.spawn(async move {
            let _ = bob
                .call(&peer(71), "x", args, Duration::from_secs(120))
                .await;
        });
    }
    holds(&rt, port, 32 * 1024, "the calls").await;
    // (the raw peer's port: that of the one socket on bob's port holding
    // the calls)
    let holding: Vec<u16> = sockets_where(|local, _| local == port)
        .into_iter()
        .filter(|(_, _, queued)| *queued > 0)
        .map(|(remote, _, _)| remote)
        .collect();
    let [peer_port] = holding[..] else {
        panic!("bob's sockets holding the calls: {holding:?}")
    };
    (bob, port, peer_port, raw)
}

/// While bob writes to a peer that reads nothing, the kernel holds at
/// most [`UNSENT_LIMIT`] and a write's overshoot for it (a socket's send
/// buffer grows to 4 MiB by default: it held 3.7 MB, within milliseconds
/// of the first write). Looked at for half a second: a bound over a
/// while, not an event to wait for. The peer's own receive buffer is the
/// peer's memory, not bob's.
pub async fn a_peer_that_reads_nothing_gets_little_queued_in_the_kernel<H: Harness>() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let (bob, port, _, raw) = calls_towards_a_deaf_peer::<H>().await;
    // (a write tops up the last segment and may start one more, each of
    // at most 64 KiB on loopback, past the limit: 1,114,112 bytes seen)
    let bound = u64::from(UNSENT_LIMIT) + 256 * 1024;
    for _ in 0..50 {
        let queued = queued_on(port);
        assert!(
            queued <= bound,
            "the kernel queues {queued} bytes for a peer that reads nothing, over {bound}: {:?}",
            sockets_on(port)
        );
        bob.runtime()
            .sleep_until(bob.runtime().now() + Duration::from_millis(10))
            .await;
    }
    drop(raw);
    bob.shutdown().await;
}

/// A socket the runtime dials gets the options of one it accepts
/// ([`socket_start`](peernet_driver::socket_start)): written to without
/// end towards a listener that reads nothing, it holds at most
/// [`UNSENT_LIMIT`] and a write's overshoot in the kernel. (Review s45:
/// only accepted sockets were measured; without the option it queues
/// megabytes.) Looked at for half a second, as above.
pub async fn a_dialed_socket_gets_little_queued_in_the_kernel<H: Harness>() {
    use futures_util::AsyncWriteExt;
    if !cfg!(target_os = "linux") {
        return;
    }
    let rt = H::Rt::default();
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let transport = rt.connect(addr).await.expect("dial");
    // (loopback: the kernel completed the connection; kept open, never read)
    let (deaf, from) = listener.accept().unwrap();
    let (_read, mut write) = transport.into_parts();
    rt.spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        // (until the socket is closed under it, at the end)
        while write.write_all(&chunk).await.is_ok() {}
    });
    // (the dialed socket alone: a socket of another process may have a
    // remote port of the same number)
    let dialed = || {
        strip(sockets_where(|local, remote| {
            (local, remote) == (from.port(), addr.port())
        }))
    };
    let queued = || dialed().iter().map(|(_, q)| q).sum::<u64>();
    let held = polled(&rt, WAIT, || queued() > 32 * 1024).await;
    assert!(held, "the dialed socket never held 32 KiB");
    // (the overshoot of the scenario above)
    let bound = u64::from(UNSENT_LIMIT) + 256 * 1024;
    for _ in 0..50 {
        let queued = queued();
        assert!(
            queued <= bound,
            "a dialed socket queues {queued} bytes for a peer that reads nothing, over {bound}: {:?}",
            dialed()
        );
        rt.sleep_until(rt.now() + Duration::from_millis(10)).await;
    }
    drop(deaf);
}

/// A connection to a peer that reads nothing, ended by the node (an
/// unpair): the linger stops the blocked writer and the node drops both
/// halves of its socket. They used to close it with a FIN queued behind
/// every byte the socket held, and the kernel kept the socket
/// (FIN_WAIT1, orphaned) with those bytes (3.7 MB, still there 280 s
/// later). Once the linger is over (a short one, `DEAF_LINGER`) the
/// kernel must have let go (within 20 s, a bound that only ends a
/// failing run).
pub async fn a_connection_given_up_leaves_no_bytes_queued_in_the_kernel<H: Harness>() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let (bob, port, peer_port, raw) = calls_towards_a_deaf_peer::<H>().await;
    let rt = bob.runtime().clone();
    assert!(bob.unpair(&peer(71)).await.unwrap());
    // (the raw peer, still open and reading nothing, would keep a socket
    // closed with a FIN)
    released(&rt, port, peer_port, Duration::from_secs(20)).await;
    drop(raw);
    bob.shutdown().await;
}

/// A TCP connection to `addr` with the smallest receive buffer
/// (`SO_RCVBUF` set before it connects, which also keeps the kernel from
/// growing it): a peer that reads nothing over it takes a few KB.
fn narrow_connection(addr: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    // (loopback: the kernel completes the connect at once)
    socket.connect(&addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

/// A peer that closes its sending side and reads nothing: the node's
/// writer is not blocked (the socket took all the results called for),
/// the peer's end of stream ends the connection and the node closes its
/// socket cleanly, with a FIN queued behind those bytes. The kernel kept
/// the socket (LAST_ACK) and its bytes for as long as the peer kept its
/// end open (2.5 MB, before the kernel's unsent bytes were bounded); now
/// it gives up once the peer takes nothing for 2 s.
pub async fn a_half_closed_peer_that_reads_nothing_leaves_no_bytes_in_the_kernel<H: Harness>() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let bob: N<H> = node(80, &[81], |c| c).await;
    let rt = bob.runtime().clone();
    let port = bob.local_addr().unwrap().port();
    // (three results fit in what the kernel takes at once, so the writer
    // ends cleanly; the peer's window takes a few hundred bytes of them)
    let result = Bytes::from(vec![7u8; 3_000]);
    bob.expose("get", move |_, _| {
        let result = result.clone();
        async move { Ok(result) }
    })
    .unwrap();
    let addr = bob.local_addr().unwrap();
    let stream = narrow_connection(addr);
    let peer_port = stream.local_addr().unwrap().port();
    // (closing the runtime's stream does not end its sending side on
    // every runtime: async-std's only flushes)
    let sending_side = stream.try_clone().unwrap();
    let stream = H::tcp(stream).unwrap();
    let transport = <H::Rt as WrapStream<H::Tcp>>::wrap(stream);
    let mut raw = RawPeer::over(transport, identity(81), bob.peer_id(), &[]).await;
    for _ in 0..3 {
        raw.call(&bob.peer_id(), "get", b"x", Duration::from_secs(600))
            .await;
    }
    holds(&rt, port, 2_000, "the results").await;
    sending_side.shutdown(std::net::Shutdown::Write).unwrap();
    // the clean close: a FIN behind the bytes, the peer's FIN taken
    let last_ack = polled(&rt, WAIT, || {
        connection(port, peer_port)
            .iter()
            .any(|(state, queued)| state == "09" && *queued > 0)
    })
    .await;
    assert!(
        last_ack,
        "bob's socket never closed cleanly with bytes queued: {:?}",
        connection(port, peer_port)
    );
    released(&rt, port, peer_port, Duration::from_secs(10)).await;
}

/// A long linger is the established connections': one closed in its
/// handshake (a stranger refused) lingers at most the default 2 s, here
/// under a linger of an hour. Review s48: every closed connection
/// lingered for the node's linger; a peer holds a lingering socket for
/// as long as it keeps its end open, and a source may fail handshakes at
/// 8 a second, so that one address could hold 28,800 of the node's
/// sockets under an hour's linger.
pub async fn a_long_linger_is_for_established_connections_only<H: Harness>() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let bob: N<H> = node(82, &[83], |c| c.linger(Duration::from_secs(3600))).await;
    let rt = bob.runtime().clone();
    let addr = bob.local_addr().unwrap();
    let port = addr.port();
    let held = |peer_port| !connection(port, peer_port).is_empty();
    // A trusted peer connects; bob closes the connection, and the peer
    // keeps its end open, reading nothing.
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let established = stream.local_addr().unwrap().port();
    let transport = <H::Rt as WrapStream<H::Tcp>>::wrap(H::tcp(stream).unwrap());
    let raw = RawPeer::over(transport, identity(83), bob.peer_id(), &[]).await;
    let events = bob.events();
    until(&rt, &events, "connected", || bob.is_connected(&peer(83))).await;
    assert!(bob.disconnect(&peer(83)));
    // Then a stranger whose handshake fails (a frame of length 0), which
    // keeps its end open too.
    let mut stranger = std::net::TcpStream::connect(addr).unwrap();
    let refused = stranger.local_addr().unwrap().port();
    std::io::Write::write_all(&mut stranger, &[0, 0, 0, 0]).unwrap();
    // Its socket goes once the default linger is over, long before the
    // hour (within 20 s: a bound that only ends a failing run).
    released(&rt, port, refused, Duration::from_secs(20)).await;
    // The established connection, closed before it, lingers on: the
    // hour is its.
    assert!(
        held(established),
        "the established connection's socket went before the stranger's"
    );
    drop((raw, stranger));
    bob.shutdown().await;
}

#[cfg(test)]
mod tests {
    /// Review s45: `/proc/net/tcp` is read a page at a time while other
    /// sockets come and go, and a line may come twice; one socket with
    /// 1,172,614 bytes queued was counted as 2,345,228 and failed the
    /// dialed scenario's bound. A socket is counted once.
    #[test]
    fn a_socket_listed_twice_is_counted_once() {
        let table = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11 1
   1: 0100007F:1F90 0100007F:C350 01 0011E486:00000000 01:00000014 00000000  1000        0 12 1
   2: 0100007F:1F90 0100007F:C350 01 0011E486:00000000 01:00000014 00000000  1000        0 12 1
   3: 0100007F:1F90 0100007F:C351 01 00000010:00000000 00:00000000 00000000  1000        0 13 1
   4: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 14 1
";
        let on_8080 = super::sockets_in(table, |local, _| local == 0x1f90);
        assert_eq!(
            on_8080,
            [
                (0xc350, "01".to_owned(), 1_172_614),
                (0xc351, "01".to_owned(), 16)
            ]
        );
    }
}
