//! A node's life after it starts: the graceful [`shutdown`], and the
//! immediate close when the last `Node` handle is dropped ([`Life`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use peernet_proto::PeerId;

use crate::runtime::Runtime;
use crate::shared::{Inner, Phase, Shared};
use crate::tasks::first;

/// How long `shutdown` waits at least for the goodbyes to be written.
const MIN_FLUSH: Duration = Duration::from_secs(1);

/// Closes the node when the last `Node` handle goes away.
pub(crate) struct Life<R: Runtime>(pub(crate) Arc<Shared<R>>);

impl<R: Runtime> Drop for Life<R> {
    fn drop(&mut self) {
        close_now(&self.0);
    }
}

/// Closes every connection at once and stops the node's tasks. The
/// handlers and the access rules go too: one that holds a handle of its
/// own node (a `Node` clone, to call on from a handler, or to look
/// something up from a rule) would otherwise keep the node's whole state
/// alive for good, through the handler table or the core's exposures.
fn close_now<R: Runtime>(shared: &Arc<Shared<R>>) {
    let handlers = shared.with_core(|inner, now| {
        if inner.phase == Phase::Closed {
            return None;
        }
        inner.ep.shutdown(now);
        shared.abort_handlers(inner);
        inner.ep.close_all(now);
        inner.phase = Phase::Closed;
        Some((std::mem::take(&mut inner.handlers), inner.ep.unexpose_all()))
    });
    // (`with_core` has woken the writers: the goodbyes go out)
    if let Some(handlers) = handlers {
        stop_accepting(shared);
        shared.timer.notify();
        crate::book_save::at_close(shared, shared.take_dir_lock());
        // The event streams end, after the close's own events (published
        // by the drain above): a subscriber's `recv` loop stops, rather
        // than wait for good on a node that will send nothing more.
        let streams = shared.with_core(|inner, _| inner.subscribers.take());
        // Dropped outside the lock: this may drop the last `Node` handle,
        // whose `Life` comes back here (and finds the node closed).
        drop((handlers, streams));
        // (only now: `shutdown` resolving while they were still being
        // dropped left a handler, a rule holding the node, alive past it)
        shared.close_done.store(true, Ordering::Release);
        shared.closed.notify(usize::MAX);
    }
}

/// The node no longer accepts (its shutdown started, or it closed at
/// once): the accept loop stops, and whatever else points peers at the
/// node stops with it. LAN discovery stops: its announcement is
/// withdrawn (it would send peers, for the whole grace, to a node that
/// turns them away) and its browsing ends; its claim on the node is let
/// go, though no new one starts (`discover_lan` is refused from now on).
fn stop_accepting<R: Runtime>(shared: &Arc<Shared<R>>) {
    shared.stop_accepting.notify();
    shared.stopping.notify(usize::MAX);
    #[cfg(feature = "mdns")]
    shared.lan_discovery.store(0, Ordering::Release);
}

/// [`Node::shutdown`](crate::Node::shutdown): the part done at once, the
/// task that does the rest (started by the first call, and not stopped by
/// dropping any future), and a future that resolves once the node is
/// closed.
pub(crate) fn shutdown<R: Runtime>(
    shared: &Arc<Shared<R>>,
    life: &Arc<Life<R>>,
    peer: PeerId,
    grace: Duration,
) -> impl Future<Output = ()> + Send + 'static {
    let shared = shared.clone();
    let first_call = shared.with_core(|inner, now| {
        let first_call = inner.phase == Phase::Running;
        if first_call {
            inner.ep.shutdown(now);
            inner.phase = Phase::ShuttingDown;
        }
        first_call
    });
    if first_call {
        tracing::info!(%peer, "shutting down");
        stop_accepting(&shared);
        // After the core's shutdown, which dropped the kept peers: a call
        // waiting for one to come back, woken here, finds it no longer
        // kept and fails rather than waiting again.
        let save = crate::dialing::on_shutdown(&shared);
        let closing = shared.clone();
        // The task holds the node open: the last `Node` handle dropped
        // during the shutdown (its future spawned, or awaited after the
        // handle went) would otherwise close it at once, under the grace.
        let life = life.clone();
        shared.rt.spawn(async move {
            let _open = life;
            if let Some(save) = save {
                // Waited for, so that the book is on disk and the
                // directory's lock free once `shutdown` returns; but
                // within the grace period: a disk that hangs must not
                // hold the shutdown for good. The write goes on, holding
                // the lock, until it ends.
                let deadline = closing.after(grace.max(MIN_FLUSH));
                if !first(save, closing.rt.sleep_until(deadline)).await {
                    tracing::warn!("the address book's save is not done; closing without it");
                }
            }
            graceful_close(&closing, grace).await;
            tracing::info!(%peer, "shut down");
        });
    } else {
        // (the node stopped accepting already: told again, as before)
        shared.stop_accepting.notify();
    }
    async move {
        loop {
            let closed = shared.closed.listen();
            if shared.close_done.load(Ordering::Acquire) {
                break;
            }
            closed.await;
        }
        lock_released(&shared, grace).await;
    }
}

/// Waits, once the node is closed, for the data directory's lock to be
/// let go: a save owed at the close (a change that came during the
/// shutdown) or in progress then still holds it. Within the grace (at
/// least [`MIN_FLUSH`]), as the shutdown's own save: a disk that hangs
/// must not hold the shutdown for good; the lock then goes when the write
/// ends.
async fn lock_released<R: Runtime>(shared: &Arc<Shared<R>>, grace: Duration) {
    let Some(released) = &shared.dir_released else {
        return;
    };
    let deadline = shared.after(grace.max(MIN_FLUSH));
    if !first(released.wait(), shared.rt.sleep_until(deadline)).await {
        tracing::warn!("a write to the data directory is not done; its lock is let go when it is");
    }
}

/// Lets running handlers finish within `grace`, stops those left, closes
/// every connection, waits for the goodbyes to be written, then closes.
async fn graceful_close<R: Runtime>(shared: &Arc<Shared<R>>, grace: Duration) {
    let rt = &shared.rt;
    let deadline = shared.after(grace);
    loop {
        let quiet = shared.quiet.listen();
        if shared.read(Inner::is_quiet) {
            break;
        }
        if !first(quiet, rt.sleep_until(deadline)).await {
            tracing::warn!("grace period over; stopping the handlers left");
            break;
        }
    }
    shared.with_core(|inner, now| {
        shared.abort_handlers(inner);
        inner.ep.close_all(now);
    });
    let flush_deadline = shared.after(grace.max(MIN_FLUSH));
    loop {
        let ended = shared.writer_ended.listen();
        if shared.writers.load(Ordering::Acquire) == 0 {
            break;
        }
        if !first(ended, rt.sleep_until(flush_deadline)).await {
            tracing::warn!("goodbyes not written in time; closing anyway");
            // (stopped once the lock is let go: the writers' wakers are
            // the runtime's)
            let writers: Vec<_> = shared.read(|inner| {
                let signals = inner.conns.values().map(|entry| entry.signals.clone());
                signals.collect()
            });
            for signals in writers {
                // (each contained: a waker's panic must not leave the
                // other writers running, nor the node unclosed)
                shared.contain(|| signals.stop_writer.notify());
            }
            break;
        }
    }
    close_now(shared);
}
