//! The state every task of a node shares, behind one mutex that is never
//! held across an `.await`, and `drain`: the one place where the core's
//! outputs turn into wake-ups, completed calls, handler runs and events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use event_listener::Event as Signal;
use futures_channel::oneshot;
use futures_util::FutureExt;
use peernet_proto::{
    CallError, CallId, ConnId, Endpoint, Event, InboundCall, InboundSend, Instant, Output, PeerId,
    Response,
};

use crate::error::ConnectError;
use crate::events::NodeEvent;
use crate::handler::DynHandler;
use crate::persist::DataDir;
use crate::runtime::Runtime;

/// What a connection's tasks listen to.
#[derive(Default)]
pub(crate) struct ConnSignals {
    /// Bytes are queued, or the connection is closing: writer, wake up.
    pub(crate) write: Signal,
    /// The connection is gone: reader, stop.
    pub(crate) stop: Signal,
    pub(crate) stopped: AtomicBool,
}

pub(crate) struct ConnEntry {
    pub(crate) signals: Arc<ConnSignals>,
    /// Set by `Output::Close`: the final bytes, then the writer closes.
    pub(crate) closing: Option<Bytes>,
}

pub(crate) struct Inner {
    pub(crate) ep: Endpoint,
    pub(crate) conns: HashMap<ConnId, ConnEntry>,
    pub(crate) calls: HashMap<CallId, oneshot::Sender<Result<Bytes, CallError>>>,
    pub(crate) dials: HashMap<ConnId, oneshot::Sender<Result<PeerId, ConnectError>>>,
    pub(crate) handlers: HashMap<String, DynHandler>,
    pub(crate) subscribers: Vec<async_channel::Sender<NodeEvent>>,
    /// The deadline the timer task sleeps towards.
    pub(crate) timer_armed: Option<Instant>,
    pub(crate) data_dir: Option<DataDir>,
    /// Events a lagging subscriber missed.
    pub(crate) dropped_events: u64,
}

/// Work found while draining that must run without the lock held:
/// handlers may call back into the node.
pub(crate) enum Work {
    Call(InboundCall, DynHandler),
    Send(InboundSend, DynHandler),
}

pub(crate) struct Shared<R: Runtime> {
    pub(crate) rt: R,
    epoch: StdInstant,
    inner: Mutex<Inner>,
    /// The timer task: an earlier deadline was armed, or the node stops.
    pub(crate) timer: Signal,
    /// Room in a send queue, or a call resolved: blocked callers, retry.
    pub(crate) writable: Signal,
    /// An inbound call finished: shutdown waits on this.
    pub(crate) quiet: Signal,
    /// The node stops: the timer task ends.
    pub(crate) stopped: AtomicBool,
    /// The accept loop ends.
    pub(crate) stop_accepting: Signal,
    pub(crate) accepting: AtomicBool,
    /// Writers still running, and a signal each time one ends.
    pub(crate) writers: AtomicUsize,
    pub(crate) writer_ended: Signal,
}

impl<R: Runtime> Shared<R> {
    pub(crate) fn new(rt: R, inner: Inner) -> Shared<R> {
        Shared {
            epoch: rt.now(),
            rt,
            inner: Mutex::new(inner),
            timer: Signal::new(),
            writable: Signal::new(),
            quiet: Signal::new(),
            stopped: AtomicBool::new(false),
            stop_accepting: Signal::new(),
            accepting: AtomicBool::new(true),
            writers: AtomicUsize::new(0),
            writer_ended: Signal::new(),
        }
    }

    pub(crate) fn writer_started(&self) {
        self.writers.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn writer_done(&self) {
        self.writers.fetch_sub(1, Ordering::AcqRel);
        self.writer_ended.notify(usize::MAX);
    }

    /// Stops accepting, and (with `all`) the timer.
    pub(crate) fn halt(&self, all: bool) {
        self.accepting.store(false, Ordering::Release);
        self.stop_accepting.notify(usize::MAX);
        if all {
            self.stopped.store(true, Ordering::Release);
            self.timer.notify(usize::MAX);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Handlers never run under the lock, so a poisoned lock can only
        // come from a bug in this crate; the state is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime's clock as the core's time.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_duration(self.rt.now().saturating_duration_since(self.epoch))
    }

    pub(crate) fn to_std(&self, at: Instant) -> StdInstant {
        self.epoch + at.as_duration()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Drains the core's outputs; the caller runs the returned work after
    /// dropping the lock.
    pub(crate) fn drain(&self, inner: &mut Inner) -> Vec<Work> {
        let mut work = Vec::new();
        while let Some(output) = inner.ep.poll_output() {
            match output {
                Output::Transmit(conn) => {
                    if let Some(entry) = inner.conns.get(&conn) {
                        entry.signals.write.notify(1);
                    }
                }
                Output::Close { conn, last } => {
                    if let Some(entry) = inner.conns.get_mut(&conn) {
                        entry.closing = Some(last);
                        entry.signals.write.notify(1);
                    }
                }
                Output::Event(event) => self.on_event(inner, event, &mut work),
            }
        }
        // An input or command may have armed an earlier deadline.
        let next = inner.ep.poll_timeout();
        if next.is_some() && (inner.timer_armed.is_none() || next < inner.timer_armed) {
            inner.timer_armed = next;
            self.timer.notify(1);
        }
        work
    }

    fn on_event(&self, inner: &mut Inner, event: Event, work: &mut Vec<Work>) {
        match event {
            Event::CallResult { id, result } => {
                if let Some(tx) = inner.calls.remove(&id) {
                    let _ = tx.send(result);
                }
                self.writable.notify(usize::MAX);
            }
            Event::Call(call) => match inner.handlers.get(call.handle.as_str()) {
                Some(handler) => work.push(Work::Call(call, handler.clone())),
                // exposed in the core but its handler is gone (a race with
                // unexpose): answer as if it were not exposed
                None => {
                    let now = self.now();
                    inner.ep.reply(now, call.id, Response::Error(Bytes::new()));
                }
            },
            Event::Send(send) => {
                if let Some(handler) = inner.handlers.get(send.handle.as_str()) {
                    work.push(Work::Send(send, handler.clone()));
                }
            }
            Event::CallCancelled(_) => {
                self.quiet.notify(usize::MAX);
            }
            Event::Connected {
                conn,
                peer,
                direction,
            } => {
                tracing::info!(%conn, %peer, ?direction, "connected");
                if let Some(tx) = inner.dials.remove(&conn) {
                    let _ = tx.send(Ok(peer));
                }
                publish(inner, NodeEvent::Connected { peer, direction });
            }
            Event::Disconnected { conn, peer, reason } => {
                tracing::info!(%conn, %peer, %reason, "disconnected");
                self.forget(inner, conn);
                publish(inner, NodeEvent::Disconnected { peer, reason });
            }
            Event::HandshakeFailed { conn, peer, error } => {
                tracing::debug!(%conn, ?peer, %error, "handshake failed");
                self.forget(inner, conn);
                if let Some(tx) = inner.dials.remove(&conn) {
                    let result = match (error, peer) {
                        // another connection to the same peer won: the
                        // dial converged on it
                        (peernet_proto::HandshakeError::Superseded, Some(peer)) => Ok(peer),
                        (error, _) => Err(ConnectError::from_handshake(error)),
                    };
                    let _ = tx.send(result);
                }
            }
            _ => {}
        }
    }

    /// The core is done with `conn`: its reader stops now; its writer
    /// stops once it has written the final bytes.
    fn forget(&self, inner: &mut Inner, conn: ConnId) {
        if let Some(entry) = inner.conns.get(&conn) {
            entry.signals.stopped.store(true, Ordering::Release);
            entry.signals.stop.notify(usize::MAX);
        }
    }

    /// Runs work found by `drain`, outside the lock.
    pub(crate) fn run(self: &Arc<Self>, work: Vec<Work>) {
        for item in work {
            match item {
                Work::Call(call, handler) => self.run_call(call, handler),
                Work::Send(send, handler) => {
                    let fut =
                        std::panic::AssertUnwindSafe(handler(send.peer, send.args)).catch_unwind();
                    let mut fut = Box::pin(fut);
                    // a send that finishes at once costs no task
                    if (&mut fut).now_or_never().is_none() {
                        self.rt.spawn(Box::pin(async move {
                            let _ = fut.await;
                        }));
                    }
                }
            }
        }
    }

    fn run_call(self: &Arc<Self>, call: InboundCall, handler: DynHandler) {
        let id = call.id;
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler(call.peer, call.args)
        }));
        let fut = match started {
            Ok(fut) => fut,
            Err(panic) => return self.finish(id, Err(panic)),
        };
        let mut fut = Box::pin(std::panic::AssertUnwindSafe(fut).catch_unwind());
        // A handler that is ready at once is answered without a task
        // hand-off.
        match (&mut fut).now_or_never() {
            Some(outcome) => self.finish(id, outcome),
            None => {
                let shared = self.clone();
                self.rt.spawn(Box::pin(async move {
                    let outcome = fut.await;
                    shared.finish(id, outcome);
                }));
            }
        }
    }

    fn finish(
        self: &Arc<Self>,
        id: peernet_proto::InboundCallId,
        outcome: std::thread::Result<crate::handler::HandlerResult>,
    ) {
        let response = match outcome {
            Ok(Ok(body)) => Response::Ok(body),
            Ok(Err(body)) => Response::Error(body),
            Err(panic) => {
                let note = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::warn!(call = id.request_id(), %note, "handler panicked");
                Response::Panicked(Bytes::from(note))
            }
        };
        let work = {
            let mut inner = self.lock();
            let now = self.now();
            inner.ep.reply(now, id, response);
            self.drain(&mut inner)
        };
        self.quiet.notify(usize::MAX);
        self.run(work);
    }
}

fn publish(inner: &mut Inner, event: NodeEvent) {
    let mut dropped = 0;
    inner
        .subscribers
        .retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(async_channel::TrySendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(async_channel::TrySendError::Closed(_)) => false,
        });
    if dropped > 0 {
        inner.dropped_events += dropped;
        tracing::warn!(dropped, "an event subscriber lags; events dropped");
    }
}
