//! What a handler knows about the call it serves: who called, how long the
//! caller will wait, whether the call is still wanted, and whether an
//! answer is expected at all.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use event_listener::Event as Broadcast;
use peernet_proto::PeerId;

/// Whether a handler serves a CALL (the caller waits for its result) or a
/// SEND (fire-and-forget: its result goes nowhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallKind {
    /// A CALL: the handler's result is the reply.
    Call,
    /// A SEND: nobody waits for the handler's result.
    Send,
}

/// A clock the context reads its remaining budget from: the node's
/// runtime clock (tokio's, so that paused-time tests see the same time as
/// the core).
pub(crate) trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The flag behind [`Context::cancelled`], shared by the context's clones
/// and the driver, which raises it.
#[derive(Default)]
pub(crate) struct CancelFlag {
    set: AtomicBool,
    waiters: Broadcast,
}

impl CancelFlag {
    /// Raises the flag and wakes every waiter (once; later calls do
    /// nothing).
    pub(crate) fn cancel(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.waiters.notify(usize::MAX);
        }
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        loop {
            if self.is_set() {
                return;
            }
            let listener = self.waiters.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}

/// What a handler exposed with [`Node::expose_ctx`](crate::Node::expose_ctx)
/// is told about the call it serves. Cheap to clone (two reference counts);
/// a clone observes the same cancellation.
///
/// **Deadlines.** The wire carries how long the caller waits
/// (`timeout_ms`, PROTOCOL.md section 6); the core turns it into a deadline
/// on this node's clock when the CALL arrives. [`Context::timeout`] is what
/// is left of it. A nested call should not outlive the call it serves:
/// pass the context to [`Node::call_in`](crate::Node::call_in), which
/// calls with the remaining budget and gives up when this call is
/// cancelled, or pass `ctx.timeout()` as the timeout of
/// [`Node::call`](crate::Node::call).
///
/// **Cancellation.** [`Context::cancelled`] completes, and
/// [`Context::is_cancelled`] turns true, when the call is no longer
/// wanted: the caller sent CANCEL (it stopped waiting), the deadline
/// passed, or the connection ended; also when shutdown's grace period ends
/// with the handler still running. The driver then also drops the
/// handler's future, so a handler only needs the signal for work it
/// handed elsewhere (a spawned task, a blocking thread). A handler that
/// returned is done: its context is never cancelled after that. A SEND
/// has no deadline and no CANCEL, and runs on after its connection ends;
/// its context is cancelled by shutdown, or when its peer is unpaired
/// ([`Node::unpair`](crate::Node::unpair)).
#[derive(Clone)]
pub struct Context {
    peer: PeerId,
    kind: CallKind,
    deadline: Option<Instant>,
    cancel: Arc<CancelFlag>,
    clock: Arc<dyn Clock>,
}

impl Context {
    pub(crate) fn new(
        peer: PeerId,
        kind: CallKind,
        deadline: Option<Instant>,
        cancel: Arc<CancelFlag>,
        clock: Arc<dyn Clock>,
    ) -> Context {
        Context {
            peer,
            kind,
            deadline,
            cancel,
            clock,
        }
    }

    /// The caller, as proven by the handshake.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Whether this is a CALL or a SEND.
    pub fn kind(&self) -> CallKind {
        self.kind
    }

    /// Whether the caller waits for a result (a CALL).
    pub fn is_call(&self) -> bool {
        self.kind == CallKind::Call
    }

    /// When the caller stops waiting, on the node runtime's clock; `None`
    /// if it set no timeout (and for a SEND).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What is left of the caller's budget (zero once the deadline has
    /// passed); `None` if it set no timeout. Pass it as the timeout of a
    /// nested call so that it gives up when the caller does.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline
            .map(|at| at.saturating_duration_since(self.clock.now()))
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.deadline.is_some_and(|at| self.clock.now() >= at)
    }

    /// Whether the call is no longer wanted (see the type's docs).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_set()
    }

    /// Completes when the call is no longer wanted (at once if it is
    /// already so). Any number of clones may wait.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let cancel = self.cancel.clone();
        async move { cancel.wait().await }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("peer", &self.peer)
            .field("kind", &self.kind)
            .field("timeout", &self.timeout())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use peernet_proto::Identity;

    struct Fixed(Instant);
    impl Clock for Fixed {
        fn now(&self) -> Instant {
            self.0
        }
    }

    fn ctx(deadline: Option<Duration>) -> (Context, Arc<CancelFlag>, Instant) {
        let now = Instant::now();
        let flag = Arc::new(CancelFlag::default());
        let peer = Identity::from_seed(&[1; 32]).peer_id();
        let ctx = Context::new(
            peer,
            CallKind::Call,
            deadline.map(|d| now + d),
            flag.clone(),
            Arc::new(Fixed(now)),
        );
        (ctx, flag, now)
    }

    #[test]
    fn timeout_is_what_is_left_of_the_deadline() {
        let (ctx, _, _) = ctx(Some(Duration::from_millis(250)));
        assert_eq!(ctx.timeout(), Some(Duration::from_millis(250)));
        assert!(!ctx.is_expired());
        let (ctx, _, _) = ctx_none();
        assert_eq!(ctx.timeout(), None);
        assert!(!ctx.is_expired());
    }

    fn ctx_none() -> (Context, Arc<CancelFlag>, Instant) {
        ctx(None)
    }

    #[test]
    fn cancellation_reaches_every_clone_and_later_waiters() {
        let (ctx, flag, _) = ctx(None);
        let clone = ctx.clone();
        let mut waiting = Box::pin(clone.cancelled());
        assert!((&mut waiting).now_or_never().is_none());
        assert!(!ctx.is_cancelled());
        flag.cancel();
        flag.cancel();
        assert!(waiting.now_or_never().is_some());
        assert!(ctx.is_cancelled() && clone.is_cancelled());
        assert!(ctx.cancelled().now_or_never().is_some());
    }
}
