//! Handlers: async functions of (context, args) that the application
//! exposes under a handle name, and how they run: those ready on their
//! first poll are answered at once (all their replies under one lock), the
//! others run as tasks of their own that CANCEL, the deadline, a closed
//! connection or shutdown can stop: their state is dropped at once
//! (`stoppable.rs`), then their context's cancellation signal raised.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use peernet_proto::{ConnId, InboundCallId, PeerId, Response};

use crate::context::{CallKind, CancelFlag, Clock, Context};
use crate::runtime::{BoxFuture, Runtime};
use crate::shared::{ConnSignals, Inner, Phase, Shared, Wake, Work};
use crate::stoppable::{Run, Stoppable};

/// What a handler returns: the result bytes, or its own error bytes
/// (status `handler_error` on the caller's side).
pub type HandlerResult = Result<Bytes, Bytes>;

/// A handler as stored by the node: told only who called, or given the
/// whole [`Context`]. The plain kind costs no context per call (an
/// allocation for its cancellation flag and two reference counts): under
/// callgrind that was about 2 % of a pipelined echo call.
#[derive(Clone)]
pub(crate) enum DynHandler {
    /// Exposed with `expose` and friends: `(caller, args)`.
    Plain(Arc<dyn Fn(PeerId, Bytes) -> BoxFuture<HandlerResult> + Send + Sync>),
    /// Exposed with `expose_ctx`: `(context, args)`.
    Ctx(Arc<dyn Fn(Context, Bytes) -> BoxFuture<HandlerResult> + Send + Sync>),
}

/// Boxes an async function of the caller into a [`DynHandler`].
pub(crate) fn boxed<F, Fut>(handler: F) -> DynHandler
where
    F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    DynHandler::Plain(Arc::new(move |peer, args| Box::pin(handler(peer, args))))
}

/// Boxes an async function of the context into a [`DynHandler`].
pub(crate) fn boxed_ctx<F, Fut>(handler: F) -> DynHandler
where
    F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    DynHandler::Ctx(Arc::new(move |ctx, args| Box::pin(handler(ctx, args))))
}

/// A handler task the driver can stop: drop its future, then raise its
/// context's signal.
pub(crate) struct RunningTask {
    fut: Arc<Stoppable<Running>>,
    /// The context's signal; `None` for a plain handler, which has none.
    cancel: Option<Arc<CancelFlag>>,
}

impl RunningTask {
    /// Cancels the handler: its future (and so whatever its state holds,
    /// its arguments) is dropped before this returns, or as its poll
    /// returns if it is being polled (`stoppable.rs`); then its context's
    /// signal fires. Its task ends at its next poll.
    pub(crate) fn stop(self) {
        self.fut.stop();
        RunningTask::cancel_unstarted(self.cancel);
    }

    /// Raises the signal of a handler that never became a task (its
    /// future is dropped by the caller): whatever it shared its context
    /// with sees the cancellation.
    fn cancel_unstarted(cancel: Option<Arc<CancelFlag>>) {
        if let Some(cancel) = cancel {
            cancel.cancel();
        }
    }
}

impl<R: Runtime> Clock for Shared<R> {
    fn now(&self) -> StdInstant {
        self.rt.now()
    }
}

/// A handler running as a task of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskKey {
    Call(InboundCallId),
    /// A send handler (numbered: sends have no id).
    Send(SendKey, u64),
}

/// What finishing a send handler gives back: the peer's slot and the
/// bytes its arguments hold against the core's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SendKey {
    pub(crate) peer: PeerId,
    pub(crate) conn: ConnId,
    pub(crate) bytes: usize,
}

type Running = CatchUnwind<AssertUnwindSafe<BoxFuture<HandlerResult>>>;

impl<R: Runtime> Shared<R> {
    /// Runs the handlers found by `drain`, outside the lock. A handler that
    /// is ready on its first poll is answered without a task of its own
    /// (all such answers under one lock); the others become tasks that
    /// CANCEL can abort.
    pub(crate) fn run(self: &Arc<Self>, work: &mut Vec<Work>) {
        self.run_for(work, None);
    }

    /// [`Shared::run`] for a task that writes `own`'s bytes itself: its
    /// writer is not woken; returns its signals if it had bytes queued.
    pub(crate) fn run_for(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        own: Option<ConnId>,
    ) -> Option<Arc<ConnSignals>> {
        let mut queued = None;
        while !work.is_empty() {
            self.run_once(work, own, &mut queued);
        }
        give_back(work);
        queued
    }

    fn run_once(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        own: Option<ConnId>,
        queued: &mut Option<Arc<ConnSignals>>,
    ) {
        let mut replies = Replies::default();
        let mut tasks: Vec<(TaskKey, Running, Option<Arc<CancelFlag>>)> = Vec::new();
        let mut sends_done = Vec::new();
        // (handlers taken from `work`: `Inner::starting` counts them)
        let mut started_now = 0;
        let mut more = false;
        // The handlers were found under the lock, at this value of
        // `Inner::stale`; they start one after another with the lock let
        // go, and meanwhile another task may end their calls or unpair
        // their peer (or a handler before them may take its time). Once
        // the value moved, each is checked under the lock before it
        // starts: a revoked peer's handler must not start after `unpair`.
        let checked = match work.last() {
            Some(&Work::Checked(at)) => Some(at),
            _ => None,
        };
        let mut recheck = false;
        for item in work.drain(..) {
            let (key, peer, args, handler, ctx) = match item {
                // (the wakers, each contained: one that panics must not
                // take the rest of the batch with it, `wake.rs`)
                Work::Complete(waker) => {
                    self.contain(|| waker.wake());
                    continue;
                }
                Work::Write(conn, signals) => {
                    if own == Some(conn) {
                        *queued = Some(signals);
                    } else {
                        self.contain(|| signals.write.notify());
                    }
                    continue;
                }
                Work::Dial(peer, addr) => {
                    self.rt.spawn(crate::dialer::dial(self.clone(), peer, addr));
                    continue;
                }
                Work::SaveBook => {
                    crate::book_save::schedule(self);
                    continue;
                }
                Work::More => {
                    more = true;
                    continue;
                }
                Work::Cancelled | Work::Checked(_) => continue,
                Work::Wake(wake) => {
                    self.contain(|| wake.run(self));
                    continue;
                }
                Work::CloseDeadline(signals) => {
                    // (its reader, parked in a read, lets its buffer go:
                    // `tasks::read_open`)
                    self.contain(|| signals.stop_reader.wake());
                    let at = self.after(self.linger_of(&signals));
                    let sleep = self.rt.sleep_until(at);
                    self.rt.spawn(crate::tasks::close_deadline(sleep, signals));
                    continue;
                }
                Work::Call(call, handler) => {
                    let ctx = (CallKind::Call, call.deadline);
                    (TaskKey::Call(call.id), call.peer, call.args, handler, ctx)
                }
                Work::Send(send, handler) => {
                    let done = SendKey {
                        peer: send.peer,
                        conn: send.conn,
                        bytes: send.args.len(),
                    };
                    let ctx = (CallKind::Send, None);
                    (TaskKey::Send(done, 0), send.peer, send.args, handler, ctx)
                }
            };
            if !recheck {
                recheck = checked.is_some_and(|at| at != self.stale.load(Ordering::Acquire));
            }
            if recheck && !self.may_start(key) {
                // (the final pass below drains the wake-ups it left)
                more = true;
                continue;
            }
            started_now += 1;
            let (kind, deadline) = ctx;
            // (a plain handler has no context: no flag, no deadline on the
            // runtime's clock)
            let mut cancel = None;
            let started = std::panic::catch_unwind(AssertUnwindSafe(|| match &handler {
                DynHandler::Plain(handler) => handler(peer, args),
                DynHandler::Ctx(handler) => {
                    let flag = Arc::new(CancelFlag::default());
                    cancel = Some(flag.clone());
                    let clock: Arc<dyn Clock> = self.clone();
                    let deadline = deadline.map(|at| self.to_std(at));
                    handler(Context::new(peer, kind, deadline, flag, clock), args)
                }
            }));
            let outcome = match started {
                Err(panic) => Err(panic),
                Ok(fut) => {
                    let mut fut = AssertUnwindSafe(fut).catch_unwind();
                    match (&mut fut).now_or_never() {
                        Some(outcome) => outcome,
                        None => {
                            tasks.push((key, fut, cancel));
                            continue;
                        }
                    }
                }
            };
            // (a send's outcome goes nowhere; a panic was logged)
            let response = self.response(peer, outcome);
            match key {
                TaskKey::Call(id) => replies.push((id, response)),
                TaskKey::Send(done, _) => sends_done.push(done),
            }
        }
        if replies.is_empty() && tasks.is_empty() && sends_done.is_empty() && !more {
            return;
        }
        let mut spawn = Vec::with_capacity(tasks.len());
        // Handlers cancelled as they started: dropped (and their signals
        // raised) only once the lock is let go, since a handler's state may
        // take the lock as it drops (a nested call's guard).
        let mut cancelled = Vec::new();
        // (the replies' bytes for `own` come back here, not as a work
        // item: a lone call's turn ends without a second pass)
        let (_, own_queued) = self.critical_for(work, own, |inner, now| {
            inner.starting -= started_now;
            // (each loop checked first: an empty loop still costs its
            // iterator's drop, and a lone call's turn has replies only)
            if let Some((id, response)) = replies.first {
                inner.ep.reply(now, id, response);
                for (id, response) in replies.rest {
                    inner.ep.reply(now, id, response);
                }
            }
            if !sends_done.is_empty() {
                for done in sends_done {
                    inner.send_finished(done);
                }
            }
            if !tasks.is_empty() {
                for (mut key, fut, cancel) in tasks {
                    match key {
                        TaskKey::Send(done, _) => {
                            inner.next_task += 1;
                            key = TaskKey::Send(done, inner.next_task);
                        }
                        // Cancelled while its first poll ran outside the lock
                        // (CANCEL, its deadline, its connection's end): the
                        // `CallCancelled` found nothing to stop, so it stops
                        // here, before it runs on as a task nobody tracks.
                        TaskKey::Call(id) if !inner.ep.is_serving(id) => {
                            cancelled.push((Some(id), fut, cancel));
                            continue;
                        }
                        TaskKey::Call(_) => {}
                    }
                    // (a SEND of a peer unpaired while its first poll ran:
                    // `Inner::stop_sends_of` found nothing to stop)
                    let revoked = matches!(key, TaskKey::Send(done, _)
                        if !inner.ep.trust().contains(&done.peer));
                    if inner.handlers_stopped || revoked {
                        // The shutdown stopped the handlers while this one's
                        // first poll ran: a task now would run on after the
                        // node closed, holding its whole state.
                        if let TaskKey::Send(done, _) = key {
                            inner.send_finished(done);
                        }
                        cancelled.push((None, fut, cancel));
                        continue;
                    }
                    let fut = Stoppable::new(fut);
                    let task = RunningTask {
                        fut: fut.clone(),
                        cancel,
                    };
                    inner.running.insert(key, task);
                    spawn.push((key, Run(fut)));
                }
            }
            if inner.phase != Phase::Running {
                // (a shutdown may be waiting for the last to start)
                inner.maybe_quiet();
            }
        });
        if own_queued.is_some() {
            *queued = own_queued;
        }
        // (checked first: an empty loop still costs its iterator's drop,
        // on every call's path)
        if !cancelled.is_empty() {
            for (id, fut, cancel) in cancelled {
                if let Some(id) = id {
                    tracing::debug!(call = id.request_id(), "handler cancelled as it started");
                }
                // (dropped first: whoever sees the signal sees the handler's
                // state dropped too)
                drop(fut);
                RunningTask::cancel_unstarted(cancel);
            }
        }
        if spawn.is_empty() {
            return;
        }
        for (key, fut) in spawn {
            let shared = self.clone();
            self.rt.spawn(async move {
                let outcome = fut.await;
                shared.finish(key, outcome);
            });
        }
        // `work` now holds the wake-ups the replies caused; `run` loops.
    }

    /// Whether the handler of `key`, found by a drain, may still start
    /// (under the lock): its call is still served, or its SEND's peer still
    /// trusted, and the handlers are not stopped. If not, it is given up
    /// as if it had run: no longer counted as starting, and a SEND's slot
    /// and bytes given back.
    fn may_start(&self, key: TaskKey) -> bool {
        self.with_inner(|inner| {
            let live = !inner.handlers_stopped
                && match key {
                    TaskKey::Call(id) => inner.ep.is_serving(id),
                    TaskKey::Send(done, _) => inner.ep.trust().contains(&done.peer),
                };
            if !live {
                tracing::debug!(
                    ?key,
                    "handler not started: its call or peer ended meanwhile"
                );
                inner.starting -= 1;
                if let TaskKey::Send(done, _) = key {
                    inner.send_finished(done);
                }
                inner.maybe_quiet();
            }
            live
        })
    }

    /// A handler task ended (`None`: it was stopped).
    fn finish(self: &Arc<Self>, key: TaskKey, outcome: Option<std::thread::Result<HandlerResult>>) {
        self.with_core(|inner, now| {
            if inner.running.remove(&key).is_none() {
                // stopped, or its connection is gone: nobody to answer
                return;
            }
            match (key, outcome) {
                (TaskKey::Call(id), Some(outcome)) => {
                    // (no peer: the connection is gone, nobody to answer)
                    if let Some(peer) = inner.ep.peer_of(id.conn()) {
                        let response = self.response(peer, outcome);
                        inner.ep.reply(now, id, response);
                    }
                }
                (TaskKey::Send(done, _), outcome) => {
                    if let Some(Err(panic)) = outcome {
                        self.response(done.peer, Err(panic));
                    }
                    inner.send_finished(done);
                }
                (TaskKey::Call(_), None) => {}
            }
            inner.maybe_quiet();
        });
    }

    /// Stops every handler task (end of shutdown's grace period), once
    /// the lock is let go (their signals' waiters are the application's).
    pub(crate) fn abort_handlers(&self, inner: &mut Inner) {
        inner.handlers_stopped = true;
        // (those waiting for their turn in a batch do not start either)
        inner.handlers_went_stale();
        for (key, task) in inner.running.drain() {
            inner.wakes.push(Wake::Handler(task));
            if let TaskKey::Send(done, _) = key {
                inner.ep.send_done(done.conn, done.bytes);
            }
        }
        inner.sends_running.clear();
        inner.wakes.push(Wake::Quiet);
    }
}

impl<R: Runtime> Shared<R> {
    /// A handler's outcome as a reply. A panic is logged here, with its
    /// message (at most once per peer per [`PANIC_LOG_EVERY`] at `warn`,
    /// the rest at `debug` and counted, so a peer calling a panicking
    /// handler in a loop cannot grow the log without bound); the peer gets
    /// an empty note (a panic message may say more about this node than a
    /// mutually-suspicious peer should learn).
    fn response(&self, peer: PeerId, outcome: std::thread::Result<HandlerResult>) -> Response {
        match outcome {
            Ok(Ok(body)) => Response::Ok(body),
            Ok(Err(body)) => Response::Error(body),
            Err(panic) => {
                let note = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("");
                let mut log = self
                    .panic_log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                log.panicked(peer, StdInstant::now(), note);
                Response::Panicked(Bytes::new())
            }
        }
    }
}

/// The replies of the handlers a turn found ready at their first poll,
/// given under one lock: the first kept inline, so that the turn of a
/// lone call (a sequential caller's) allocates nothing for it.
#[derive(Default)]
struct Replies {
    first: Option<(InboundCallId, Response)>,
    /// The others, in order.
    rest: Vec<(InboundCallId, Response)>,
}

impl Replies {
    #[inline(always)]
    fn push(&mut self, reply: (InboundCallId, Response)) {
        match self.first {
            None => self.first = Some(reply),
            Some(_) => self.rest.push(reply),
        }
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// How often a peer's handler panics are logged at `warn`.
pub(crate) const PANIC_LOG_EVERY: Duration = Duration::from_secs(10);

/// The peers whose handler panics were logged lately, to rate-limit the
/// warnings. Bounded: past 4,096 peers the entries older than
/// [`PANIC_LOG_EVERY`] are dropped (and if none are, all of them).
#[derive(Debug, Default)]
pub(crate) struct PanicLog {
    /// When a warning was last written for the peer, and how many panics
    /// went to `debug` since.
    last: HashMap<PeerId, (StdInstant, u64)>,
}

impl PanicLog {
    const MAX_PEERS: usize = 4096;

    /// Logs one panic of a handler `peer` called; returns whether it was
    /// written at `warn`.
    pub(crate) fn panicked(&mut self, peer: PeerId, now: StdInstant, note: &str) -> bool {
        if self.last.len() >= PanicLog::MAX_PEERS && !self.last.contains_key(&peer) {
            self.last
                .retain(|_, (at, _)| now.duration_since(*at) < PANIC_LOG_EVERY);
            if self.last.len() >= PanicLog::MAX_PEERS {
                self.last.clear();
            }
        }
        match self.last.get_mut(&peer) {
            Some((at, suppressed)) if now.duration_since(*at) < PANIC_LOG_EVERY => {
                *suppressed += 1;
                tracing::debug!(%peer, panic = note, "handler panicked");
                false
            }
            entry => {
                let suppressed = entry.map_or(0, |(_, n)| *n);
                tracing::warn!(%peer, panic = note, suppressed, "handler panicked");
                self.last.insert(peer, (now, 0));
                true
            }
        }
    }
}

/// Work items a task's buffer keeps room for between turns (about 150
/// bytes each).
const WORK_KEPT: usize = 128;

/// A turn that ran more work than [`WORK_KEPT`] items (one read brought a
/// thousand calls) gives the room back: a reader keeps its buffer for its
/// connection's whole life, and one big batch would otherwise hold up to
/// a drain's batch of items' room (1,024 of them, about 150
/// KiB) per connection, which no budget counts.
fn give_back(work: &mut Vec<Work>) {
    if work.capacity() > WORK_KEPT {
        work.shrink_to(WORK_KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::Identity;

    #[test]
    fn a_big_turn_gives_its_room_back() {
        let mut work: Vec<Work> = Vec::new();
        for _ in 0..1024 {
            work.push(Work::SaveBook);
        }
        work.clear();
        give_back(&mut work);
        assert!(work.capacity() <= WORK_KEPT, "{}", work.capacity());
        // a small turn keeps its room: no allocation per read
        let mut small: Vec<Work> = Vec::with_capacity(64);
        give_back(&mut small);
        assert_eq!(small.capacity(), 64);
    }

    #[test]
    fn panics_are_logged_at_warn_once_per_peer_per_interval() {
        let (a, b) = (
            Identity::from_seed(&[1; 32]).peer_id(),
            Identity::from_seed(&[2; 32]).peer_id(),
        );
        let mut log = PanicLog::default();
        let t0 = StdInstant::now();
        assert!(log.panicked(a, t0, "boom"));
        for i in 1..1000 {
            assert!(!log.panicked(a, t0 + Duration::from_millis(i), "boom"));
        }
        assert!(log.panicked(b, t0, "boom"), "another peer is not silenced");
        assert!(log.panicked(a, t0 + PANIC_LOG_EVERY, "boom"));
    }
}
