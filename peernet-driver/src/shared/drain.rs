//! The one place where the core's outputs become wake-ups, completed
//! calls, handler runs and events: `drain`, run under the lock by every
//! pass through the door. None of these is made under the lock: each is
//! a [`Work`] item, run after it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use peernet_proto::{
    ConnId, Direction, Event, InboundCall, InboundSend, Instant, Output, PeerId, Response,
};

use crate::error::ConnectError;
use crate::events::NodeEvent;
use crate::handlers::{DynHandler, TaskKey};
use crate::runtime::Runtime;

use super::unstarted::Unstarted;
use super::wake::Wake;
use super::{ConnSignals, Inner, Phase, Shared};

/// What draining found to do once the lock is dropped: wake-ups (so that
/// no task is scheduled, and no thread woken, from inside the critical
/// section: a waker may call back into the node) and handler runs (a
/// handler may too).
pub(crate) enum Work {
    /// One of our calls resolved: wake its caller.
    Complete(std::task::Waker),
    /// A connection has bytes queued, or is closing: wake its writer.
    Write(ConnId, Arc<ConnSignals>),
    /// The core closed a connection: whatever the peer does, its transport
    /// is released within the linger (see `tasks::close_deadline`); its
    /// reader is woken to linger without its read buffer
    /// (`tasks::read_open`).
    CloseDeadline(Arc<ConnSignals>),
    Call(InboundCall, DynHandler),
    Send(InboundSend, DynHandler),
    /// The core asks for a transport to a peer (`dialer.rs`).
    Dial(PeerId, SocketAddr),
    /// The address book changed: save it soon, if there is a data
    /// directory (`dialing.rs`).
    SaveBook,
    /// The drain stopped at [`DRAIN_BATCH`] items: once these are run,
    /// drain again (`handlers.rs`).
    More,
    /// A `Call` cancelled before it started (CALL and CANCEL in one
    /// read), left in its place: nothing to run.
    Cancelled,
    /// Any other wake-up found under the lock (`wake.rs`).
    Wake(Wake),
    /// Last of a drain that found handlers to run: the value of
    /// [`Inner::stale`] they were found under. Until it moves, they may
    /// start as they are; once it has, each is checked under the lock
    /// first (its call still served, its peer still trusted, the
    /// handlers not stopped: `handlers.rs`).
    Checked(u64),
}

/// The most work items one drain takes from the core: what one peer's
/// record of tiny envelopes makes the core emit is run in batches of this
/// size, not gathered whole (the core queues at most
/// [`peernet_proto::OUTPUTS_BEFORE_PAUSE`] outputs per input).
pub(crate) const DRAIN_BATCH: usize = 1024;

impl<R: Runtime> Shared<R> {
    /// Drains the core's outputs into `work` (run it with
    /// [`Shared::run`] after dropping the lock), with the wake-ups that
    /// code under the lock recorded (`Inner::wakes`). Bytes queued for
    /// `own` (a connection the caller writes to itself) are not a
    /// `Work::Write`: its signals are returned instead, so that a
    /// sequential caller's turn leaves nothing in `work` (whose first
    /// item would allocate it, on every call).
    pub(super) fn drain(
        &self,
        inner: &mut Inner,
        now: Instant,
        work: &mut Vec<Work>,
        own: Option<ConnId>,
    ) -> Option<Arc<ConnSignals>> {
        let mut queued = None;
        let full = work.len() + DRAIN_BATCH;
        let mut unstarted = Unstarted::default();
        // (whether handlers were found: then `Work::Checked` goes last)
        let mut handlers = false;
        loop {
            if unstarted.live(work) >= full {
                work.push(Work::More);
                break;
            }
            let Some(output) = inner.ep.poll_output() else {
                break;
            };
            match output {
                Output::Transmit(conn) => {
                    if let Some(entry) = inner.conns.get(&conn) {
                        match own == Some(conn) {
                            true => queued = Some(entry.signals.clone()),
                            false => work.push(Work::Write(conn, entry.signals.clone())),
                        }
                    }
                }
                Output::Close { conn, last } => {
                    let running = inner.phase == Phase::Running;
                    let budget = running.then(|| self.linger_budget(inner));
                    if let Some(entry) = inner.conns.get_mut(&conn) {
                        let signals = &entry.signals;
                        signals.closed.store(true, Ordering::Release);
                        if !self.may_linger(signals, last.len(), budget) {
                            // (its batch and last bytes go with its
                            // writer, stopped before it is woken)
                            work.push(Work::Wake(Wake::Stop(signals.clone())));
                        }
                        entry.closing = Some(last);
                        // callers waiting for room learn it is gone
                        if signals.take_room_waiters(&self.room_waiters) {
                            work.push(Work::Wake(Wake::Room(signals.clone())));
                        }
                        work.push(Work::Write(conn, signals.clone()));
                        work.push(Work::CloseDeadline(signals.clone()));
                    }
                }
                Output::Event(event) => {
                    handlers |= matches!(event, Event::Call(_) | Event::Send(_));
                    self.on_event(inner, now, event, work, &mut unstarted);
                }
                Output::Dial { peer, addr } => work.push(Work::Dial(peer, addr)),
            }
        }
        // Any change to the book (an address added, forgotten, or one
        // whose last dial now worked, or failed after it had worked) is
        // saved, whatever made it.
        let revision = inner.ep.book_revision();
        if revision != inner.book_saved {
            inner.book_saved = revision;
            work.push(Work::SaveBook);
        }
        // An input or command may have armed an earlier deadline.
        let next = inner.ep.poll_timeout();
        if next.is_some() && (inner.timer_armed.is_none() || next < inner.timer_armed) {
            inner.timer_armed = next;
            work.push(Work::Wake(Wake::Timer));
        }
        // (checked first: an empty loop still costs its iterator's drop,
        // on every call's path)
        if !inner.wakes.is_empty() {
            work.extend(inner.wakes.drain(..).map(Work::Wake));
        }
        if handlers {
            // (under the lock, as every raise of it)
            work.push(Work::Checked(inner.stale.load(Ordering::Relaxed)));
        }
        queued
    }

    fn on_event(
        &self,
        inner: &mut Inner,
        now: Instant,
        event: Event,
        work: &mut Vec<Work>,
        unstarted: &mut Unstarted,
    ) {
        match event {
            Event::CallResult { id, result } => {
                if let Some(waker) = inner.calls.complete(id, result) {
                    work.push(Work::Complete(waker));
                }
                // a slot under `max_outbound_calls` is free again (its
                // connection looked up only if some connection has waiters)
                if self.room_waiters.any() {
                    if let Some(entry) = inner.conns.get(&id.conn()) {
                        if entry.signals.take_room_waiters(&self.room_waiters) {
                            work.push(Work::Wake(Wake::Room(entry.signals.clone())));
                        }
                    }
                }
            }
            Event::Call(call) => match inner.handlers.get(call.handle.as_str()) {
                Some(handler) => {
                    inner.starting += 1;
                    let id = call.id;
                    work.push(Work::Call(call, handler.clone()));
                    unstarted.pushed(id, work);
                }
                // Never happens: the core's exposure and the handler table
                // change together under this lock. Answer rather than
                // leave the caller to its timeout.
                None => {
                    inner.ep.reply(now, call.id, Response::Error(Bytes::new()));
                }
            },
            Event::Send(send) => {
                let handler = inner.handlers.get(send.handle.as_str()).cloned();
                match handler {
                    Some(handler) if inner.take_send_slot(send.peer) => {
                        inner.starting += 1;
                        work.push(Work::Send(send, handler));
                    }
                    Some(_) => {
                        inner.ep.send_done(send.conn, send.args.len());
                        self.dropped_sends.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %send.peer, handle = send.handle.as_str(), "send dropped: too many send handlers running");
                    }
                    // Never happens (see `Event::Call`); nothing runs.
                    None => inner.ep.send_done(send.conn, send.args.len()),
                }
            }
            Event::CallCancelled(id) => {
                // not started yet (CALL and CANCEL in one read): never start
                let waiting = unstarted.cancel(id, work);
                if waiting {
                    inner.starting -= 1;
                }
                match inner.running.remove(&TaskKey::Call(id)) {
                    Some(task) => {
                        tracing::debug!(call = id.request_id(), "handler cancelled");
                        work.push(Work::Wake(Wake::Handler(task)));
                    }
                    // Neither running nor waiting here: its handler may wait
                    // for its turn in a batch another task drained (or be in
                    // its first poll), which must not start it now.
                    None if !waiting => inner.handlers_went_stale(),
                    None => {}
                }
                inner.maybe_quiet();
            }
            Event::Connected {
                conn,
                peer,
                direction,
            } => {
                let entry = inner.conns.get(&conn);
                if let Some(entry) = entry {
                    // (before its close, drained after this: it lingers
                    // as long as the node's linger says)
                    entry.signals.established.store(true, Ordering::Release);
                }
                let remote = entry.and_then(|e| e.remote_addr);
                tracing::info!(%conn, %peer, ?direction, ?remote, "connected");
                if let Some(tx) = inner.dials.remove(&conn) {
                    work.push(Work::Wake(Wake::Handshake(tx, Ok(peer))));
                }
                self.dialing.connected(peer, &mut inner.wakes);
                inner.publish(NodeEvent::Connected { peer, direction });
            }
            Event::Disconnected { conn, peer, reason } => {
                let direction = direction_of(inner, conn);
                tracing::info!(%conn, %peer, ?direction, %reason, "disconnected");
                inner.publish(NodeEvent::Disconnected { peer, reason });
            }
            Event::HandshakeFailed { conn, peer, error } => {
                let direction = direction_of(inner, conn);
                tracing::debug!(%conn, ?peer, ?direction, %error, "handshake failed");
                if let Some(tx) = inner.dials.remove(&conn) {
                    let result = match (&error, peer) {
                        // Another connection to the same peer won (a
                        // simultaneous dial): the dial converged on it.
                        (peernet_proto::HandshakeError::Superseded, Some(peer))
                            if inner.ep.is_connected(&peer) =>
                        {
                            Ok(peer)
                        }
                        _ => Err(ConnectError::Handshake(error.clone())),
                    };
                    work.push(Work::Wake(Wake::Handshake(tx, result)));
                }
                inner.publish(NodeEvent::HandshakeFailed {
                    peer,
                    direction,
                    error,
                });
            }
            other => crate::dialing::on_event(self, inner, other),
        }
    }
}

fn direction_of(inner: &Inner, conn: ConnId) -> Direction {
    inner
        .conns
        .get(&conn)
        .map_or(Direction::Inbound, |e| e.direction)
}
