//! The tasks that move bytes and time between the runtime and the core:
//! per connection a reader and a writer (which share the write half, see
//! `write_half.rs`), per node a timer and an accept loop. None of them knows
//! anything of the protocol.

use std::future::{Future, IntoFuture, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures_io::AsyncRead;
use futures_util::AsyncWriteExt;
use futures_util::future::{Either, select};
use peernet_proto::{ConnId, Direction, HandshakeError, Input, PeerId};
use tracing::Instrument;

use crate::error::ConnectError;
use crate::runtime::{BoxFuture, BoxRead, BoxWrite, Runtime, Transport};
use crate::shared::{ConnEntry, ConnSignals, Inner, Phase, Shared};
use crate::wake_flag::WakeFlag;
use crate::write_half::{WriteFailed, flush_patiently, write_patiently};
use peernet_proto::Source;

/// Read buffers. Every read hands its bytes to the core as one `BytesMut`
/// split off the buffer (no copy); a new buffer is taken when less than a
/// quarter of it is left. A connection starts small (a handshake, an idle
/// peer, a flood of connections that never say HELLO cost little) and
/// doubles its buffer whenever a read fills all the room there was, once
/// its handshake is done: until then it reads [`FIRST_READ_BUF`] at a
/// time (outside the handshakes' byte budget, so kept small: 4 MiB over
/// 1,024 handshakes, not 64). A read that the core holds back while its
/// outputs wait (`Stats::paused_input`) is handled before the next one
/// is taken: `with_core_reading` returns once its drain found no output
/// left, which resumes every paused connection; so a handshake holds one
/// such read at most (`peernet-tokio/tests/paused_handshake_input.rs`).
/// A closed connection lingers without one (`discard`).
const FIRST_READ_BUF: usize = 4 * 1024;
const MAX_READ_BUF: usize = 64 * 1024;

/// Started when the core closes a connection: once `sleep` (the linger,
/// `Shared::linger`) ends, the writer and reader are told to stop
/// wherever they are. A
/// writer still blocked writing to a peer that does not read gives up
/// its write, and with both halves dropped the socket, its descriptor
/// and every queued byte are released. Ends early, without its timer,
/// once the writer has ended (it tells the reader to stop as it goes):
/// a connection that closed cleanly leaves no task and no timer behind
/// for the linger.
pub(crate) async fn close_deadline(sleep: BoxFuture<()>, signals: Arc<ConnSignals>) {
    let writer_ended = poll_fn(|cx| signals.writer_done.poll_raised(cx));
    if !first(writer_ended, sleep).await {
        signals.stop();
    }
}

/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Which side of the handshake a new transport takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// We dialed, expecting this peer (or any trusted one).
    Dial(Option<PeerId>),
    /// We accepted.
    Accept,
}

/// The outcome of a handshake, for whoever waits on it.
pub(crate) type DialResult = oneshot::Receiver<Result<PeerId, ConnectError>>;

/// Hands a transport to the core and starts its reader and writer. The
/// receiver resolves when the handshake ends.
pub(crate) fn start_conn<R: Runtime>(
    shared: &Arc<Shared<R>>,
    transport: Transport,
    role: Role,
) -> Result<DialResult, ConnectError> {
    let remote_addr = transport.remote_addr();
    let direction = match role {
        Role::Dial(_) => Direction::Outbound,
        Role::Accept => Direction::Inbound,
    };
    let started = shared.with_core(|inner, now| {
        let conn = match (role, remote_addr) {
            (Role::Dial(peer), _) => inner.ep.connect(now, peer),
            (Role::Accept, Some(addr)) => inner.ep.accept_from(now, Source::from(addr)),
            (Role::Accept, None) => inner.ep.accept(now),
        }?;
        let (signals, done) = register(inner, conn, direction, remote_addr);
        Ok::<_, ConnectError>((conn, signals, done))
    });
    let (conn, signals, done) = match started {
        Ok(started) => started,
        Err(error) => {
            // Refused at accept (its source's limits, shutdown) before a
            // byte crossed: a reset tells the dialer at once and leaves
            // no TIME_WAIT here, however many a flood opens.
            if matches!(role, Role::Accept) {
                transport.reset();
            }
            return Err(error);
        }
    };
    attach(shared, conn, direction, signals, transport);
    Ok(done)
}

/// Dials `addrs` for `conn`, a connection the core has already started
/// (its HELLO waits in the core's queue and its handshake budget runs
/// from then on), and hands over the transport. Resolves when the
/// handshake ends, or when opening the transport fails, or when the core
/// gives the connection up first (its handshake timeout, shutdown, the
/// peer unpaired).
///
/// Each of `addrs` is tried in turn until a transport opens (the addresses
/// a host name resolved to: `localhost` may give `[::1]` and `127.0.0.1`,
/// with the peer listening on one of them); the last failure is the error.
/// On success, also the address that opened.
pub(crate) async fn dial_any<R: Runtime>(
    shared: &Arc<Shared<R>>,
    conn: ConnId,
    signals: Arc<ConnSignals>,
    addrs: &[SocketAddr],
    done: DialResult,
) -> Result<(PeerId, Option<SocketAddr>), ConnectError> {
    let mut unopened = Unopened {
        shared,
        conn: Some(conn),
        signals: signals.clone(),
    };
    let open = async {
        let mut failed = ConnectError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to dial",
        ));
        for &addr in addrs {
            match shared.rt.connect(addr).await {
                Ok(transport) => return Ok((transport, addr)),
                Err(source) => {
                    tracing::debug!(%addr, error = %source, "dial failed");
                    failed = ConnectError::Dial { addr, source };
                }
            }
        }
        Err(failed)
    };
    match select(pin!(open), pin!(done.into_future())).await {
        Either::Left((Ok((transport, opened)), done)) => {
            unopened.conn = None;
            if addrs.len() > 1 {
                // (registered with the first address; another one opened)
                shared.with_core(|inner, _| {
                    if let Some(entry) = inner.conns.get_mut(&conn) {
                        entry.remote_addr = transport.remote_addr().or(entry.remote_addr);
                    }
                });
            }
            attach(shared, conn, Direction::Outbound, signals, transport);
            let peer = done.await.unwrap_or(Err(abandoned()))?;
            Ok((peer, Some(opened)))
        }
        Either::Left((Err(error), _)) => {
            unopened.forget();
            Err(error)
        }
        // (settled before a transport opened: none was used)
        Either::Right((result, _)) => Ok((result.unwrap_or(Err(abandoned()))?, None)),
    }
}

/// The outcome of a handshake being waited on.
pub(crate) async fn handshake(done: DialResult) -> Result<PeerId, ConnectError> {
    done.await.unwrap_or(Err(abandoned()))
}

/// The node closed while a handshake was waited on.
fn abandoned() -> ConnectError {
    ConnectError::Handshake(HandshakeError::Abandoned)
}

/// A dialed connection whose transport is not open (yet): if the dial
/// gives up (its future is dropped, or opening failed), the driver and the
/// core forget the connection, as if its transport had closed. No reader
/// or writer ever ran for it: a close deadline the core's close started
/// ends at once, instead of waiting out the linger for a writer.
struct Unopened<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    /// `None` once the transport is open.
    conn: Option<ConnId>,
    signals: Arc<ConnSignals>,
}

impl<R: Runtime> Unopened<'_, R> {
    fn forget(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let waiter = self.shared.with_core(|inner, now| {
            if inner.conns.remove(&conn).is_some() {
                inner.ep.handle_input(now, Input::Closed { conn });
            }
            inner.dials.remove(&conn)
        });
        // (dropped after the lock: its receiver, if polled, is woken)
        drop(waiter);
        self.signals.reader_done.notify();
        self.signals.writer_done.notify();
    }
}

impl<R: Runtime> Drop for Unopened<'_, R> {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Records a connection the core just started: its entry, and who waits
/// for its handshake (the receiver). Called through `Shared::with_core`.
pub(crate) fn register(
    inner: &mut Inner,
    conn: ConnId,
    direction: Direction,
    remote_addr: Option<SocketAddr>,
) -> (Arc<ConnSignals>, DialResult) {
    let signals = Arc::new(ConnSignals::default());
    let (tx, rx) = oneshot::channel();
    inner.conns.insert(
        conn,
        ConnEntry {
            signals: signals.clone(),
            direction,
            remote_addr,
            closing: None,
        },
    );
    inner.dials.insert(conn, tx);
    (signals, rx)
}

/// Starts the reader and writer of a registered connection.
pub(crate) fn attach<R: Runtime>(
    shared: &Arc<Shared<R>>,
    conn: ConnId,
    direction: Direction,
    signals: Arc<ConnSignals>,
    transport: Transport,
) {
    let remote_addr = transport.remote_addr();
    let (read, write) = transport.into_parts();
    shared.writers.fetch_add(1, Ordering::AcqRel);
    let span = tracing::info_span!("peernet.conn", %conn, ?direction, remote = ?remote_addr);
    tracing::debug!(parent: &span, "transport open");
    shared
        .rt
        .spawn(reader(shared.clone(), conn, read, signals.clone()).instrument(span.clone()));
    shared
        .rt
        .spawn(writer(shared.clone(), conn, write, signals).instrument(span));
}

/// `fut`, unless `stop` is raised first.
pub(crate) async fn unless<F: Future>(stop: &WakeFlag, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if stop.poll_raised(cx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Whichever of `a` and `b` completes first (true for `a`).
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> bool {
    matches!(select(pin!(a), pin!(b)).await, Either::Left(_))
}

async fn reader<R: Runtime>(
    shared: Arc<Shared<R>>,
    conn: ConnId,
    mut read: BoxRead,
    signals: Arc<ConnSignals>,
) {
    // (the read buffer and the work list go with `read_open`: a closed
    // connection lingers without them)
    if read_open(&shared, conn, &mut read, &signals).await {
        discard(&mut read, &signals.stop_reader).await;
    }
    signals.reader_done.notify();
}

/// What the reader's poll found.
enum Read {
    /// Told to stop (`ConnSignals::stop_reader`).
    Stop,
    /// The core closed the connection (`ConnSignals::closed`).
    Closed,
    /// The read itself ended.
    Done(io::Result<usize>),
}

/// Reads for the core while the connection is open; true if it ended
/// because the core closed it (its reader lingers), false at end of
/// stream, a failed read or a stop.
///
/// The close wakes it (`Work::CloseDeadline`), wherever it waits: its
/// buffer, up to [`MAX_READ_BUF`], must not linger with a peer that sends
/// nothing more. Its poll costs one atomic load for that, no lock.
async fn read_open<R: Runtime>(
    shared: &Arc<Shared<R>>,
    conn: ConnId,
    read: &mut BoxRead,
    signals: &ConnSignals,
) -> bool {
    let mut buf = BytesMut::new();
    let mut size = FIRST_READ_BUF;
    let mut work = Vec::new();
    loop {
        let reading = poll_fn(|cx| {
            if signals.stop_reader.poll_raised(cx).is_ready() {
                return Poll::Ready(Read::Stop);
            }
            // (after the waker's registration above: a close from now on
            // wakes this task, one before is seen here)
            if signals.closed.load(Ordering::Acquire) {
                return Poll::Ready(Read::Closed);
            }
            // (here, not before the poll: no new buffer for a closed
            // connection)
            if buf.len() < size / 4 {
                buf = BytesMut::zeroed(size);
            }
            Pin::new(&mut *read)
                .poll_read(cx, &mut buf[..])
                .map(Read::Done)
        });
        let n = match reading.await {
            Read::Stop => return false,
            Read::Closed => return true,
            Read::Done(Ok(n)) => n,
            Read::Done(Err(error)) => {
                tracing::debug!(%error, "read failed");
                0
            }
        };
        // (not while the handshake runs: a peer that has proven nothing
        // makes the buffer no larger than the first, whatever it sends)
        if n == buf.len() && size < MAX_READ_BUF && signals.established.load(Ordering::Acquire) {
            size *= 2;
        }
        if signals.closed.load(Ordering::Acquire) {
            // (closed while this read waited: its bytes are discarded)
            return n > 0;
        }
        let input = match n {
            0 => Input::Closed { conn },
            n => Input::Received {
                conn,
                // the read bytes, split off (not copied): the core
                // decrypts records where they lie
                data: buf.split_to(n),
            },
        };
        shared.with_core_reading(&mut work, conn, |inner, now| {
            inner.ep.handle_input(now, input)
        });
        if n == 0 {
            tracing::debug!("transport closed by peer");
            return false;
        }
    }
}

/// The buffer a lingering reader discards into: on the stack, for one
/// poll only.
const DISCARD_BUF: usize = 8 * 1024;

/// Lingering after the close: discards what the peer sends, until end of
/// stream (or the stop, at the linger's end). It holds no buffer between
/// reads, so a closed connection's reader costs no heap while it waits,
/// however much its peer sent before the close: a peer that sent a burst
/// and went silent left the open reader's buffer (up to [`MAX_READ_BUF`],
/// outside the linger budget) for the whole linger of each connection.
async fn discard(read: &mut BoxRead, stop: &WakeFlag) {
    loop {
        let reading = poll_fn(|cx| {
            if stop.poll_raised(cx).is_ready() {
                return Poll::Ready(None);
            }
            let mut scratch = [0u8; DISCARD_BUF];
            Pin::new(&mut *read).poll_read(cx, &mut scratch).map(Some)
        });
        match reading.await {
            Some(Ok(0)) | None => break,
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::debug!(%error, "read failed");
                break;
            }
        }
    }
}

enum Ending {
    /// The core closed the connection and its last bytes went out.
    Closed,
    /// A write failed, or shutdown forced the writer to stop.
    Broken,
}

async fn writer<R: Runtime>(
    shared: Arc<Shared<R>>,
    conn: ConnId,
    write: BoxWrite,
    signals: Arc<ConnSignals>,
) {
    let stop = &signals.stop_writer;
    // How long the peer may take none of our bytes (the core's clamped
    // `idle_timeout`, see `Input::Stalled`).
    let patience = shared.with_core(|inner, _| inner.ep.config().idle_timeout);
    // (until now the reader's inline writes found no write half and woke
    // this task instead, which writes what they left below)
    signals.write_half.lock().await.write = Some(write);
    let ending = loop {
        if unless(stop, signals.write.take()).await.is_none() {
            break Ending::Broken;
        }
        let Some(mut guard) = unless(stop, signals.write_half.lock()).await else {
            break Ending::Broken;
        };
        let half = &mut *guard;
        let Some(write) = half.write.as_mut() else {
            break Ending::Broken;
        };
        // What an inline write left (`write_half.rs`) goes first, alone: the
        // batch stays within one take (a reply, at most a frame, or the
        // core's queue), and the next turn takes what was queued since.
        // (Pipelined calls never leave anything: they are this task's.)
        let left = half.left.take();
        let (data, closing) = match half.closing.take() {
            Some(last) => (None, Some(last)),
            None if left.is_some() => {
                signals.write.notify();
                (None, None)
            }
            None => {
                // (counts what it takes in `signals.unwritten`)
                let taken = signals.take_transmit(&shared, conn);
                if taken.more {
                    // (replies that waited for room: the next turn)
                    signals.write.notify();
                }
                (taken.data, taken.closing)
            }
        };
        // (one of the two at most)
        if let Some(bytes) = left.or(data) {
            // What the inline write left, or everything queued since the
            // last wake-up, in one write. `signals.unwritten` counts it
            // (since it was left, or since the take).
            let writing = write_patiently(&shared, write, &bytes, patience);
            let written = unless(stop, writing).await.unwrap_or_else(|| {
                let stopped = io::Error::other("stopped");
                Err(WriteFailed::Io(stopped))
            });
            signals.unwritten.store(0, Ordering::Release);
            if let Err(failed) = written {
                give_up(&shared, conn, failed, patience);
                break Ending::Broken;
            }
        }
        if let Some(last) = closing {
            if !last.is_empty() {
                let _ = unless(stop, write.write_all(&last)).await;
            }
            // flush, and half-close: the peer reads EOF after our goodbye
            let _ = unless(stop, write.close()).await;
            break Ending::Closed;
        }
        if !signals.write.is_set() {
            // nothing more queued: push out what a buffering stream holds
            // (a no-op on TCP)
            match unless(stop, flush_patiently(&shared, write, patience)).await {
                Some(Err(WriteFailed::Stalled)) => {
                    give_up(&shared, conn, WriteFailed::Stalled, patience);
                    break Ending::Broken;
                }
                Some(Err(WriteFailed::Io(error))) => tracing::debug!(%error, "flush failed"),
                Some(Ok(())) | None => {}
            }
        }
    };
    // Our side of the transport closes here (inline writers hold the
    // write half only for a write that does not wait); what an inline write
    // left goes with it, uncounted from now.
    {
        let mut half = signals.write_half.lock().await;
        half.write = None;
        half.left = None;
        signals.unwritten.store(0, Ordering::Release);
    }
    // (forgotten first: a close drained later cannot count against the
    // budget what `lingered` would no longer give back)
    shared.with_core(|inner, _| inner.conns.remove(&conn));
    shared.lingered(&signals);
    shared.writers.fetch_sub(1, Ordering::AcqRel);
    shared.writer_ended.notify(usize::MAX);
    if let Ending::Closed = ending {
        let deadline = shared.after(shared.linger_of(&signals));
        let done = poll_fn(|cx| {
            if signals.reader_done.poll_raised(cx).is_ready() {
                return Poll::Ready(());
            }
            signals.stop_writer.poll_raised(cx)
        });
        first(done, shared.rt.sleep_until(deadline)).await;
    }
    signals.stop_reader.notify();
    signals.writer_done.notify();
    tracing::debug!("transport closed");
}

/// The writer gives `conn`'s transport up: the core hears why (a failed
/// write ends it as lost, a stall as `Input::Stalled`).
fn give_up<R: Runtime>(
    shared: &Arc<Shared<R>>,
    conn: ConnId,
    failed: WriteFailed,
    patience: Duration,
) {
    let input = match failed {
        WriteFailed::Io(error) => {
            tracing::debug!(%error, "write failed");
            Input::Closed { conn }
        }
        WriteFailed::Stalled => {
            tracing::info!(?patience, "peer read none of our bytes: closing");
            Input::Stalled { conn }
        }
    };
    shared.with_core(|inner, now| inner.ep.handle_input(now, input));
}

/// Sleeps until the core's next deadline (or an earlier one armed
/// meanwhile), then lets the core handle it.
pub(crate) async fn timer<R: Runtime>(shared: Arc<Shared<R>>) {
    let mut work = Vec::new();
    loop {
        // (at the first turn nothing is due: handling time is harmless)
        let next = shared.with_core_in(&mut work, |inner, now| {
            if inner.phase == Phase::Closed {
                return Err(());
            }
            inner.ep.handle_timeout(now);
            let next = inner.ep.poll_timeout();
            inner.set_timer_armed(next);
            Ok(next)
        });
        match next {
            Err(()) => return,
            Ok(None) => shared.timer.take().await,
            Ok(Some(at)) => {
                let sleep = shared.rt.sleep_until(shared.to_std(at));
                first(sleep, shared.timer.take()).await;
            }
        }
    }
}

/// Accepts transports until the node stops accepting.
pub(crate) async fn accept_loop<R: Runtime>(shared: Arc<Shared<R>>, listener: R::Listener) {
    loop {
        match unless(&shared.stop_accepting, shared.rt.accept(&listener)).await {
            None => break,
            Some(Ok(transport)) => {
                let remote = transport.remote_addr();
                match start_conn(&shared, transport, Role::Accept) {
                    Ok(_) => tracing::debug!(?remote, "accepted"),
                    // Reset by `start_conn`: no REJECT, nothing read, no
                    // core state.
                    Err(ConnectError::Start(peernet_proto::ConnectError::SourceLimited(
                        refusal,
                    ))) => {
                        tracing::debug!(?remote, %refusal, "refused at accept: reset");
                    }
                    Err(_) => break,
                }
            }
            // An error of the connection just taken from the queue (reset
            // or aborted before it was accepted): the listener is fine, go
            // on at once. A source resetting connections in a loop must
            // not hold the accept loop to one connection per back-off.
            Some(Err(error)) if per_connection(&error) => {
                tracing::debug!(%error, "accepted connection failed");
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "accept failed");
                let at = shared.rt.now() + ACCEPT_BACKOFF;
                unless(&shared.stop_accepting, shared.rt.sleep_until(at)).await;
            }
        }
    }
    tracing::debug!("no longer accepting");
}

/// Whether an `accept` error concerns only the connection accepted (BSD's
/// ECONNABORTED for one reset in the queue; the network errors Linux's
/// accept(2) passes on from the new socket, which its manual says to treat
/// as EAGAIN), rather than the listener or the process (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM, EINVAL: worth the back-off, since retrying at once
/// would spin).
fn per_connection(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | NotConnected
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::close_deadline;
    use crate::shared::ConnSignals;

    /// A connection whose writer has ended needs no deadline: the task
    /// ends at its first poll, its (here endless) timer dropped, and what
    /// it would stop is already told to stop. Before, it waited out the
    /// whole linger.
    #[test]
    fn the_close_deadline_ends_with_the_writer() {
        let signals = Arc::new(ConnSignals::default());
        let mut cx = Context::from_waker(Waker::noop());
        let mut waiting = pin!(close_deadline(
            Box::pin(std::future::pending()),
            signals.clone()
        ));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        signals.stop_reader.notify();
        signals.writer_done.notify();
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(signals.stop_reader.is_set());
    }

    /// A writer that never ends: the deadline stops both halves.
    #[test]
    fn the_close_deadline_stops_a_writer_that_did_not_end() {
        let signals = Arc::new(ConnSignals::default());
        let mut cx = Context::from_waker(Waker::noop());
        let ended = pin!(close_deadline(Box::pin(async {}), signals.clone())).poll(&mut cx);
        assert_eq!(ended, Poll::Ready(()));
        assert!(signals.stop_writer.is_set() && signals.stop_reader.is_set());
    }
}
