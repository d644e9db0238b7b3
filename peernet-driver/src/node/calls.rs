//! Calls out of the node: `call`, `call_in` (a nested call within its
//! caller's budget) and `send` (fire-and-forget), with the wait for room
//! in a full send queue and the cancel of a call its caller dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use event_listener::EventListener;
use peernet_proto::{CallError, CallId, PeerId, SendError};

use crate::completion::Polled;
use crate::context::Context;
use crate::runtime::Runtime;
use crate::shared::{Inner, Shared};
use crate::tasks::first;

use super::Node;

/// What a call that the core did not take yet waits for before it tries
/// again: room in its connection's send queue, or a kept peer's
/// reconnect.
enum Wait {
    /// Room in the connection's queue.
    Room(EventListener),
    /// The kept peer's reconnect (`dialing::reconnect_wait`).
    Reconnect(EventListener),
}

/// A call in flight, awaited: the last part of [`Node::call`]'s future,
/// which holds nothing else across its wait. Kept small on purpose: a
/// pipelined caller moves every call's future (into a `FuturesUnordered`
/// or a task), so each byte of it is copied per call. If the caller stops
/// waiting (drops the future), the call is cancelled in the core and
/// CANCEL tells the callee.
struct Outcome<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    /// `None` once the result is taken (nothing to cancel).
    id: Option<CallId>,
    /// The first poll is the same poll that registered the waker with
    /// the call: a result can only have come with a wake-up, so the lock
    /// is not taken for it.
    first: bool,
}

impl<R: Runtime> Future for Outcome<'_, R> {
    type Output = Result<Bytes, CallError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // (polled again after its result: not by `Node::call`'s future)
        let Some(id) = self.id else {
            return Poll::Pending;
        };
        if std::mem::take(&mut self.first) {
            return Poll::Pending;
        }
        let shared = self.shared;
        let polled = match shared.calls(|calls| calls.poll(id, cx.waker())) {
            Polled::Done(result) => Poll::Ready(result),
            Polled::Waiting => Poll::Pending,
            Polled::OtherTask => {
                let waker = cx.waker().clone();
                let (polled, replaced) = shared.calls(|calls| calls.rewake(id, waker));
                drop(replaced);
                polled
            }
        };
        if polled.is_ready() {
            self.id = None;
        }
        polled
    }
}

impl<R: Runtime> Drop for Outcome<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let waker = self.shared.with_core(|inner, now| {
                let waker = inner.calls.forget(id);
                inner.ep.cancel(now, id);
                waker
            });
            // (a waker's drop is the application's code: after the lock)
            drop(waker);
        }
    }
}

impl<R: Runtime> Node<R> {
    /// Calls `handle` on `peer` and waits for the reply, at most `timeout`
    /// (a `Duration`, or `None` for no limit). When the connection's send
    /// queue is full the call first waits for room, within the same
    /// timeout; when `peer` is kept connected ([`Node::keep_connected`])
    /// but not connected at the moment, it first waits for the reconnect,
    /// within the same timeout (unless
    /// [`NodeConfig::wait_for_reconnect`](crate::NodeConfig::wait_for_reconnect)
    /// is off). Dropping the future cancels the call (CANCEL is sent).
    ///
    /// A small result (at most 512 bytes) may share a buffer of at most
    /// 8 times its length with the other payloads its record or read
    /// brought, and keeps it alive while held: to keep many small
    /// results long, copy them (`Bytes::copy_from_slice`).
    ///
    /// # Errors
    ///
    /// Before anything is sent: [`CallError::NotConnected`] (no connection
    /// to `peer`, and none awaited; also a call made after this node's
    /// [`Node::shutdown`]: the error does not tell the two apart, and
    /// [`CallError::ShuttingDown`] is the callee's),
    /// [`CallError::InvalidHandle`] (empty,
    /// or over 255 bytes), [`CallError::MessageTooLarge`] (over our
    /// `max_frame_len`). From the callee: [`CallError::NoSuchHandle`] and
    /// [`CallError::Forbidden`] (not exposed at all, or not to us),
    /// [`CallError::HandlerError`],
    /// [`CallError::HandlerPanicked`], [`CallError::Overloaded`],
    /// [`CallError::ShuttingDown`], [`CallError::ResultTooLarge`]. Then
    /// [`CallError::Timeout`] (at once, with nothing sent, for a zero
    /// timeout or one spent waiting: for room, or for a kept peer's
    /// reconnect, which looks the same as a slow callee unless
    /// [`NodeConfig::unreached_call_not_connected`](crate::NodeConfig::unreached_call_not_connected)
    /// makes a call whose peer never came back fail
    /// [`CallError::NotConnected`]), and
    /// [`CallError::ConnectionClosed`] with the reason (a GOODBYE, an
    /// unpair on either side, a superseding connection, a lost
    /// transport). Frame limits are not negotiated: a
    /// call under our limit but over the peer's closes the connection
    /// (see
    /// [`NodeConfig::max_frame_len`](crate::NodeConfig::max_frame_len)).
    // (not an `async fn`: its arguments would be held twice in the
    // future, once as taken and once as bound, and the future is moved
    // per call; an async block holds them once. The future is as lazy:
    // nothing runs before its first poll.)
    #[allow(clippy::manual_async_fn)]
    pub fn call(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
        timeout: impl Into<Option<Duration>>,
    ) -> impl Future<Output = Result<Bytes, CallError>> {
        async move {
            // (each wait's state is scoped so that only what it needs is
            // held across it: the future is moved per call)
            let started = {
                let (args, timeout) = (args.as_ref(), timeout.into());
                // who to wake when the result is in, registered with the
                // call: taken from this very poll (the future is ready at
                // once)
                let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                match self.try_call(waker, peer, handle, args, timeout, None) {
                    Ok(Ok(id)) => Ok(id),
                    // (rare, and boxed: its state does not weigh on every
                    // call's future)
                    Ok(Err(room)) => Err(Box::pin(
                        self.call_after_room(room, peer, handle, args, timeout),
                    )),
                    Err(error) => return Err(error),
                }
            };
            let id = match started {
                Ok(id) => id,
                Err(wait) => wait.await?,
            };
            Outcome {
                shared: &self.shared,
                id: Some(id),
                first: true,
            }
            .await
        }
    }

    /// One attempt at starting a call, `waker` to wake with its result:
    /// its id, or what to wait on for room in the connection's queue (or
    /// for a reconnect). `deadline` is the caller's, once it waited.
    #[inline]
    fn try_call(
        &self,
        waker: Waker,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
        timeout: Option<Duration>,
        deadline: Option<StdInstant>,
    ) -> Result<Result<CallId, Wait>, CallError> {
        // (out here: one the core did not take, the call refused or
        // waiting for room, is dropped after the lock, as a waker's
        // drop is the application's code)
        let mut waker = Some(waker);
        self.shared
            .with_core_calling(&mut Vec::new(), |inner, now| {
                let budget = match deadline {
                    Some(at) => Some(at.saturating_duration_since(self.shared.rt.now())),
                    None => timeout,
                };
                // No budget left (a zero timeout, or one spent waiting
                // for room or a reconnect): the caller has given up
                // already. The core would not send it either (it
                // resolves such a call with Timeout, unsent); failing
                // here takes no call id and counts it with the other
                // calls that timed out before the core took them.
                if budget.is_some_and(|b| b.is_zero()) {
                    self.timed_out_unsent();
                    return (Err(CallError::Timeout), None);
                }
                match inner.ep.call(now, peer, handle, args, budget) {
                    Ok(id) => {
                        // a sequential call writes its own bytes
                        // (`with_core_calling`)
                        let waker = waker.take().expect("one call started a turn");
                        let sequential = inner.calls.start(id, waker);
                        (Ok(Ok(id)), sequential.then(|| id.conn()))
                    }
                    Err(CallError::WouldBlock) => match self.wait_for_room(inner, peer) {
                        Some(room) => (Ok(Err(Wait::Room(room))), None),
                        None => (Err(CallError::NotConnected), None),
                    },
                    // a kept peer being reconnected (dialing.rs)
                    Err(CallError::NotConnected) => {
                        let wait = crate::dialing::reconnect_wait(&self.shared, inner, peer);
                        let wait = wait.map(|w| Err(Wait::Reconnect(w)));
                        (wait.ok_or(CallError::NotConnected), None)
                    }
                    Err(error) => (Err(error), None),
                }
            })
    }

    /// The rest of [`Node::call`]'s start after its first attempt found
    /// no room (or no connection yet): waits on `room`, within the
    /// timeout, and tries again, until the core takes the call.
    async fn call_after_room(
        &self,
        mut wait: Wait,
        peer: &PeerId,
        handle: &str,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, CallError> {
        let deadline = self.deadline(timeout);
        loop {
            let reconnect = matches!(wait, Wait::Reconnect(_));
            let (Wait::Room(room) | Wait::Reconnect(room)) = wait;
            match deadline {
                None => room.await,
                Some(at) => {
                    if !first(room, self.shared.rt.sleep_until(at)).await {
                        self.timed_out_unsent();
                        return Err(self.unsent_timeout(reconnect));
                    }
                }
            }
            // (the waker of the task polling now)
            let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            wait = match self.try_call(waker, peer, handle, args, timeout, deadline) {
                Ok(Ok(id)) => return Ok(id),
                Ok(Err(wait)) => wait,
                // (the budget ran out as the wait ended)
                Err(CallError::Timeout) => return Err(self.unsent_timeout(reconnect)),
                Err(error) => return Err(error),
            };
        }
    }

    /// The error of a call whose timeout ran out before the core took it:
    /// [`CallError::Timeout`], but [`CallError::NotConnected`] when it
    /// waited for a kept peer's reconnect (`reconnect`) and the node
    /// says so ([`NodeConfig::unreached_call_not_connected`](crate::NodeConfig::unreached_call_not_connected)).
    fn unsent_timeout(&self, reconnect: bool) -> CallError {
        let dialing = &self.shared.dialing;
        if reconnect && dialing.unreached_not_connected.load(Ordering::Relaxed) {
            tracing::debug!("no reconnect within the call's timeout: not connected");
            return CallError::NotConnected;
        }
        CallError::Timeout
    }

    /// A call's timeout ran out before the core took it.
    fn timed_out_unsent(&self) {
        self.shared
            .calls_timed_out_unsent
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A nested call, made while serving the call `ctx` describes: calls
    /// with what is left of that call's budget ([`Context::timeout`]; no
    /// limit if its caller set none), and gives up as soon as that call is
    /// cancelled (CANCEL, its deadline, its connection lost), sending
    /// CANCEL on in turn. So a chain of calls shares its first caller's
    /// budget, as with tarpc's context.
    ///
    /// # Errors
    ///
    /// As [`Node::call`]; `CallError::Timeout` when the inherited budget
    /// runs out (also when it was already spent: the call is then not
    /// made), `CallError::Cancelled` when the outer call was cancelled
    /// before its deadline.
    pub async fn call_in(
        &self,
        ctx: &Context,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
    ) -> Result<Bytes, CallError> {
        let timeout = ctx.timeout();
        if timeout == Some(Duration::ZERO) {
            self.timed_out_unsent();
            return Err(CallError::Timeout);
        }
        if ctx.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        let call = self.call(peer, handle, args, timeout);
        let cancelled = ctx.cancelled();
        match futures_util::future::select(std::pin::pin!(call), std::pin::pin!(cancelled)).await {
            futures_util::future::Either::Left((result, _)) => result,
            // (the call's future is dropped here: CANCEL goes out)
            futures_util::future::Either::Right(_) if ctx.is_expired() => Err(CallError::Timeout),
            futures_util::future::Either::Right(_) => Err(CallError::Cancelled),
        }
    }

    /// Sends to `handle` on `peer`, fire-and-forget: resolves once the
    /// envelope is queued (first waiting for room if the queue is full). A
    /// refusal on the other side is silent. A [`Node::disconnect`] or
    /// [`Node::shutdown`] after it sends it before the GOODBYE, for a peer
    /// that reads it within the linger
    /// ([`NodeConfig::linger`](crate::NodeConfig::linger), 2 s by
    /// default; while the node runs, if the connections already closed
    /// leave room in the node's linger budget: the README's "A peer that
    /// never reads"); a close
    /// the application did not ask for (an unpair, a newer connection, a
    /// timeout) before the writer took the envelope drops it when what is
    /// still queued does not fit with the GOODBYE in 4 KiB
    /// ([`peernet_proto::LAST_COPIED`]), so that every peer that reads
    /// gets its GOODBYE.
    ///
    /// # Errors
    ///
    /// [`SendError`]: not connected, the message does not fit in one frame,
    /// or the handle name is invalid. Never `WouldBlock`: a full queue is
    /// waited out.
    pub async fn send(
        &self,
        peer: &PeerId,
        handle: &str,
        args: impl AsRef<[u8]>,
    ) -> Result<(), SendError> {
        let args = args.as_ref();
        loop {
            let room = self.shared.with_core(|inner, now| {
                match inner.ep.send(now, peer, handle, args) {
                    Ok(()) => Ok(None),
                    Err(SendError::WouldBlock) => match self.wait_for_room(inner, peer) {
                        Some(room) => Ok(Some(room)),
                        None => Err(SendError::NotConnected),
                    },
                    Err(error) => Err(error),
                }
            })?;
            match room {
                None => return Ok(()),
                Some(room) => room.await,
            }
        }
    }

    fn deadline(&self, timeout: Option<Duration>) -> Option<StdInstant> {
        timeout.and_then(|t| self.shared.rt.now().checked_add(t))
    }

    /// Registers for a wake-up when `peer`'s connection has room again
    /// (call with the core's lock held, right after `WouldBlock`, so no
    /// wake-up is missed): its own, not the node's, so that callers
    /// blocked on a peer that reads nothing sleep while calls to others
    /// complete.
    ///
    /// `None` never happens: the core's `WouldBlock` names an open
    /// connection, whose entry the driver keeps until its writer ends,
    /// after the core closed it. Were it to, the caller is told it is not
    /// connected rather than made to retry at once without end.
    fn wait_for_room(&self, inner: &Inner, peer: &PeerId) -> Option<event_listener::EventListener> {
        let conn = inner.ep.connection(peer);
        let entry = conn.and_then(|conn| inner.conns.get(&conn));
        debug_assert!(
            entry.is_some(),
            "WouldBlock on a connection without an entry"
        );
        Some(entry?.signals.wait_for_room(&self.shared.room_waiters))
    }
}
