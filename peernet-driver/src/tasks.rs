//! The tasks that move bytes and time between the runtime and the core:
//! per connection a reader and a writer, per node a timer and an accept
//! loop. None of them knows anything of the protocol.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::future::{Either, select};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use peernet_proto::{ConnId, Input, PeerId};
use tracing::Instrument;

use crate::error::ConnectError;
use crate::runtime::{BoxRead, BoxWrite, Runtime};
use crate::shared::{ConnEntry, ConnSignals, Shared};

/// Bytes asked of the socket per read; everything read is handed to the
/// core in one piece.
const READ_CHUNK: usize = 64 * 1024;

/// Which side of the handshake a new transport takes.
pub(crate) enum Role {
    /// We dialed, expecting this peer (or any trusted one).
    Dial(Option<PeerId>),
    /// We accepted.
    Accept,
}

/// Hands a transport to the core and starts its tasks. For a dial, the
/// receiver resolves when the handshake ends.
pub(crate) fn start_conn<R: Runtime>(
    shared: &Arc<Shared<R>>,
    read: BoxRead,
    write: BoxWrite,
    role: Role,
) -> Result<oneshot::Receiver<Result<PeerId, ConnectError>>, ConnectError> {
    let signals = Arc::new(ConnSignals::default());
    let (tx, rx) = oneshot::channel();
    let (conn, work) = {
        let mut inner = shared.lock();
        let now = shared.now();
        let started = match role {
            Role::Dial(peer) => inner.ep.connect(now, peer),
            Role::Accept => inner.ep.accept(now),
        };
        let conn = started.map_err(|e| match e {
            peernet_proto::ConnectError::Untrusted(peer) => ConnectError::Untrusted(peer),
            _ => ConnectError::Abandoned,
        })?;
        inner.conns.insert(
            conn,
            ConnEntry {
                signals: signals.clone(),
                closing: None,
            },
        );
        inner.dials.insert(conn, tx);
        (conn, shared.drain(&mut inner))
    };
    let span = tracing::debug_span!("conn", %conn);
    shared.writer_started();
    shared.rt.spawn(Box::pin(
        reader(shared.clone(), conn, read, signals.clone()).instrument(span.clone()),
    ));
    shared.rt.spawn(Box::pin(
        writer(shared.clone(), conn, write, signals).instrument(span),
    ));
    shared.run(work);
    Ok(rx)
}

async fn reader<R: Runtime>(
    shared: Arc<Shared<R>>,
    conn: ConnId,
    mut read: BoxRead,
    signals: Arc<ConnSignals>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let stop = signals.stop.listen();
        if signals.stopped.load(Ordering::Acquire) {
            return;
        }
        let n = match select(pin!(read.read(&mut buf)), stop).await {
            Either::Left((Ok(n), _)) => n,
            Either::Left((Err(error), _)) => {
                tracing::debug!(%error, "read failed");
                0
            }
            Either::Right(_) => return,
        };
        let input = if n == 0 {
            Input::Closed { conn }
        } else {
            Input::Received {
                conn,
                data: Bytes::copy_from_slice(&buf[..n]),
            }
        };
        let work = {
            let mut inner = shared.lock();
            let now = shared.now();
            inner.ep.handle_input(now, input);
            shared.drain(&mut inner)
        };
        shared.run(work);
        if n == 0 {
            return;
        }
    }
}

async fn writer<R: Runtime>(
    shared: Arc<Shared<R>>,
    conn: ConnId,
    mut write: BoxWrite,
    signals: Arc<ConnSignals>,
) {
    loop {
        let wake = signals.write.listen();
        let (data, closing) = {
            let mut inner = shared.lock();
            let data = inner.ep.poll_transmit(conn);
            let closing = match inner.conns.get_mut(&conn) {
                Some(entry) => entry.closing.take(),
                None => Some(Bytes::new()),
            };
            if closing.is_some() {
                inner.conns.remove(&conn);
            }
            (data, closing)
        };
        if let Some(data) = &data {
            // the core's queue is empty again: callers waiting for room
            shared.writable.notify(usize::MAX);
            // everything queued goes out in one write
            if let Err(error) = write.write_all(data).await {
                tracing::debug!(%error, "write failed");
                let work = {
                    let mut inner = shared.lock();
                    let now = shared.now();
                    inner.ep.handle_input(now, Input::Closed { conn });
                    let work = shared.drain(&mut inner);
                    inner.conns.remove(&conn);
                    work
                };
                shared.run(work);
                return shared.writer_done();
            }
        }
        if let Some(last) = closing {
            if !last.is_empty() {
                let _ = write.write_all(&last).await;
            }
            let _ = write.close().await;
            signals.stopped.store(true, Ordering::Release);
            signals.stop.notify(usize::MAX);
            return shared.writer_done();
        }
        if data.is_none() {
            wake.await;
        }
    }
}

/// Sleeps until the core's next deadline (or an earlier one armed
/// meanwhile), then lets the core handle it.
pub(crate) async fn timer<R: Runtime>(shared: Arc<Shared<R>>) {
    loop {
        let rearmed = shared.timer.listen();
        if shared.is_stopped() {
            return;
        }
        let next = {
            let mut inner = shared.lock();
            let next = inner.ep.poll_timeout();
            inner.timer_armed = next;
            next
        };
        match next {
            None => rearmed.await,
            Some(at) => {
                let sleep = shared.rt.sleep_until(shared.to_std(at));
                select(sleep, rearmed).await;
            }
        }
        let work = {
            let mut inner = shared.lock();
            let now = shared.now();
            inner.ep.handle_timeout(now);
            shared.drain(&mut inner)
        };
        shared.run(work);
    }
}

/// Accepts transports until the node stops accepting.
pub(crate) async fn accept_loop<R: Runtime>(shared: Arc<Shared<R>>, listener: R::Listener) {
    loop {
        let stop = shared.stop_accepting.listen();
        if !shared.accepting.load(Ordering::Acquire) {
            return;
        }
        match select(pin!(shared.rt.accept(&listener)), stop).await {
            Either::Left((Ok((read, write, addr)), _)) => {
                tracing::debug!(%addr, "accepted");
                if start_conn(&shared, read, write, Role::Accept).is_err() {
                    return;
                }
            }
            Either::Left((Err(error), _)) => {
                // e.g. out of file descriptors: back off instead of spinning
                tracing::warn!(%error, "accept failed");
                let at = shared.rt.now() + Duration::from_millis(50);
                shared.rt.sleep_until(at).await;
            }
            Either::Right(_) => return,
        }
    }
}
