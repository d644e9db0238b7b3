//! The state every task of a node shares, behind one mutex that is never
//! held across an `.await`, and the one door to it: [`Shared::with_core`]
//! and its variants, which lock, read the clock, act on the core and
//! drain its outputs (`drain.rs`), then run what the drain found with the
//! lock dropped. The state under the lock is `inner.rs`'s; what a
//! connection's tasks share is `conn.rs`'s; the writer's side of the core
//! (taking bytes, the linger budget) is `transmit.rs`'s.
//!
//! What runs under the lock: the core, the driver's bookkeeping, and of
//! the application's code only
//! - an access rule ([`Access::rule`](peernet_proto::Access::rule)), as
//!   the core checks it (contained: `access.rs`);
//! - the `tracing` subscriber, for the lines the core and the driver
//!   emit under the lock (a connection's `connected`/`disconnected`, a
//!   handler cancelled, a send dropped, a linger refused, a dial's
//!   progress, events dropped at a full event queue): the core is
//!   called under the lock and logs there. A subscriber, layer or
//!   writer must not call back into the node (it
//!   would wait for the lock its own thread holds, for ever) and should
//!   be quick: every connection of the node waits while it runs;
//! - the runtime's clock ([`Runtime::now`]), read as the door opens.
//!
//! No task is woken, no channel sent to and no event delivered under the
//! lock: a waker is the application's (its executor's, or one of its
//! own, which may run a task inline or call back into the node). Each
//! wake-up found there is a [`Work`] item (`wake.rs`), made once the lock
//! is let go; events wait in the outbox (`outbox.rs`), sent after it in
//! the order published. Handlers, and the drops of what the application
//! gave (handlers, event streams, wakers: a waker is cloned and dropped
//! after it too, `completion.rs`), also run after it.

mod conn;
mod drain;
mod inner;
mod outbox;
mod transmit;
mod unstarted;
mod wake;

pub(crate) use conn::{ConnEntry, ConnSignals, RoomWaiters};
pub(crate) use drain::Work;
pub(crate) use inner::{Inner, Phase};
pub use outbox::MAX_QUEUED_EVENTS;
pub(crate) use transmit::Taken;
pub(crate) use wake::Wake;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant as StdInstant;

use event_listener::Event as Broadcast;
use peernet_proto::{ConnId, Instant, TrustList};

use crate::completion::Calls;
use crate::dirlock::{NodeLock, Released};
use crate::handlers::PanicLog;
use crate::persist::DataDir;
use crate::runtime::Runtime;
use crate::wake_flag::WakeFlag;

pub(crate) struct Shared<R: Runtime> {
    pub(crate) rt: R,
    /// Where the listener is bound, once [`crate::Node::listen`] bound it.
    pub(crate) local_addr: OnceLock<SocketAddr>,
    epoch: StdInstant,
    inner: Mutex<Inner>,
    pub(crate) data_dir: Option<DataDir>,
    /// The data directory's lock, released once the node is closed.
    dir_lock: Mutex<Option<Arc<NodeLock>>>,
    /// Tells when that lock is let go (after the node closed and the
    /// writes in progress then were done): `shutdown` waits for it.
    pub(crate) dir_released: Option<Arc<Released>>,
    /// The data directory's trust list as saved, behind the lock that
    /// serialises trust-list changes, so the file and the core agree: a
    /// change edits and saves this list (never the peers trusted for
    /// this run only), then applies to the core.
    pub(crate) persist: futures_util::lock::Mutex<TrustList>,
    /// Trust changes' turns, in the order `pair` and `unpair` were called
    /// (`node/trust.rs`): each is a task of its own, and the runtime may
    /// start them in any order.
    pub(crate) trust_turns: Arc<crate::turns::Turns>,
    /// The timer task: an earlier deadline was armed, or the node stops.
    pub(crate) timer: WakeFlag,
    /// The accept loop: stop. (A `WakeFlag` wakes one task, and this one is
    /// the accept loop's: anything else that must stop with the node
    /// listens to `closed`.)
    pub(crate) stop_accepting: WakeFlag,
    /// The last running handler finished: shutdown waits on this.
    pub(crate) quiet: Broadcast,
    /// Writers that have not yet written their connection's last bytes.
    pub(crate) writers: AtomicUsize,
    pub(crate) writer_ended: Broadcast,
    /// The node is closed.
    pub(crate) closed: Broadcast,
    /// The close is done: the handlers, the access rules and the event
    /// streams are dropped (after the node was marked closed, outside the
    /// lock). `shutdown` resolves on this, told by `closed`.
    pub(crate) close_done: AtomicBool,
    /// The node stops accepting: `shutdown` started, or it closed at
    /// once. Unlike `stop_accepting`, any number of tasks may listen (LAN
    /// discovery stops here, not at the close).
    pub(crate) stopping: Broadcast,
    /// The LAN discovery of this node that runs, by its token (0: none):
    /// one at a time (`discovery.rs`). Cleared when the node stops.
    #[cfg(feature = "mdns")]
    pub(crate) lan_discovery: Arc<AtomicU64>,
    /// Bytes that closed connections still mean to write (their writers'
    /// batches and last bytes) during their linger: past
    /// [`Shared::linger_budget`], a connection closed while the node runs
    /// stops writing at once instead (see `linger`).
    pub(crate) lingering: AtomicUsize,
    /// Connections with callers waiting for room in them (`conn.rs`).
    pub(crate) room_waiters: RoomWaiters,
    /// How long a closed connection keeps reading (and discarding) after
    /// its last bytes went out, so that the peer reads our GOODBYE before
    /// the socket closes under data still arriving (which would reset it).
    /// Also the most a closed connection may take, from the core's close,
    /// to let go of its socket and buffers: a peer that never reads
    /// cannot hold them longer by leaving our writer blocked
    /// (`tasks::close_deadline`). From
    /// [`NodeConfig::linger`](crate::NodeConfig::linger).
    pub(crate) linger: std::time::Duration,
    /// Events subscribers missed (`outbox.rs`).
    pub(crate) dropped_events: Arc<outbox::DroppedEvents>,
    /// Wakers that panicked as they were woken (`wake.rs`).
    waker_panics: AtomicU64,
    /// A thread sends the events published (`outbox.rs`): the others
    /// leave theirs to it.
    sending_events: AtomicBool,
    /// SENDs dropped because their peer had too many handlers running.
    pub(crate) dropped_sends: AtomicU64,
    /// Calls whose timeout ran out before the core took them
    /// ([`NodeStats::calls_timed_out_unsent`](crate::NodeStats)).
    pub(crate) calls_timed_out_unsent: AtomicU64,
    /// Rate limit for "handler panicked" warnings, per peer.
    pub(crate) panic_log: Mutex<PanicLog>,
    /// Dialing by PeerId: its waiters (`dialing.rs`).
    pub(crate) dialing: crate::dialing::DialState,
    /// The address book's saves (`book_save.rs`).
    pub(crate) book_saves: crate::book_save::Saves,
    /// [`Inner::stale`], read without the lock by the batches of handlers
    /// started after it (`handlers.rs`).
    pub(crate) stale: Arc<AtomicU64>,
}

impl<R: Runtime> Shared<R> {
    pub(crate) fn new(
        rt: R,
        inner: Inner,
        data_dir: Option<DataDir>,
        dir_lock: Option<Arc<NodeLock>>,
        saved_trust: TrustList,
        linger: std::time::Duration,
    ) -> Shared<R> {
        let stale = inner.stale.clone();
        Shared {
            epoch: rt.now(),
            dropped_events: inner.dropped_events.clone(),
            waker_panics: AtomicU64::new(0),
            rt,
            local_addr: OnceLock::new(),
            inner: Mutex::new(inner),
            data_dir,
            dir_released: dir_lock.as_ref().map(|lock| lock.released()),
            dir_lock: Mutex::new(dir_lock),
            persist: futures_util::lock::Mutex::new(saved_trust),
            trust_turns: Arc::default(),
            timer: WakeFlag::default(),
            stop_accepting: WakeFlag::default(),
            quiet: Broadcast::new(),
            writers: AtomicUsize::new(0),
            writer_ended: Broadcast::new(),
            closed: Broadcast::new(),
            close_done: AtomicBool::new(false),
            stopping: Broadcast::new(),
            #[cfg(feature = "mdns")]
            lan_discovery: Arc::new(AtomicU64::new(0)),
            lingering: AtomicUsize::new(0),
            room_waiters: RoomWaiters::default(),
            linger,
            sending_events: AtomicBool::new(false),
            dropped_sends: AtomicU64::new(0),
            calls_timed_out_unsent: AtomicU64::new(0),
            panic_log: Mutex::new(PanicLog::default()),
            dialing: crate::dialing::DialState::default(),
            book_saves: crate::book_save::Saves::default(),
            stale,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // (an access rule runs under this lock: it must not take it again)
        crate::access::not_in_rule();
        // The application code that runs under the lock (see the module
        // docs) is an access rule, contained (`access.rs`), or the
        // tracing subscriber's, and the core does not panic, so a
        // poisoned lock still guards a consistent state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime's clock as the core's time.
    fn now(&self) -> Instant {
        Instant::from_duration(self.rt.now().saturating_duration_since(self.epoch))
    }

    /// How long the closed connection of `signals` may linger: the node's
    /// [`NodeConfig::linger`](crate::NodeConfig::linger) if it was
    /// established, else at most the default (2 s). A connection closed
    /// in its handshake (a stranger refused, a handshake that failed) is
    /// held for as long as its peer keeps its end open, up to the linger:
    /// under a linger made long for slow trusted peers, a source failing
    /// handshakes at the rate it is allowed would hold that rate times the
    /// linger in sockets (8 a second for an hour: 28,800, the node's
    /// descriptors long gone).
    pub(crate) fn linger_of(&self, signals: &ConnSignals) -> std::time::Duration {
        match signals
            .established
            .load(std::sync::atomic::Ordering::Acquire)
        {
            true => self.linger,
            false => self.linger.min(crate::config::DEFAULT_LINGER),
        }
    }

    /// `delay` from now on the runtime's clock (a century at most, so
    /// that any `Duration` is safe).
    pub(crate) fn after(&self, delay: std::time::Duration) -> StdInstant {
        const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
        let now = self.rt.now();
        now.checked_add(delay.min(CENTURY)).unwrap_or(now)
    }

    /// A core instant on the runtime's clock.
    pub(crate) fn to_std(&self, at: Instant) -> StdInstant {
        self.epoch
            .checked_add(at.as_duration())
            .unwrap_or(self.epoch + std::time::Duration::from_secs(1 << 32))
    }

    /// The one door into the core: locks, reads the clock, runs `act` on
    /// the state, drains what it produced, drops the lock, then wakes the
    /// tasks and completes the calls it found and runs the handlers.
    pub(crate) fn with_core<T>(self: &Arc<Self>, act: impl FnOnce(&mut Inner, Instant) -> T) -> T {
        self.with_core_in(&mut Vec::new(), act)
    }

    /// [`Shared::with_core`] with a buffer kept by the caller (a reader
    /// loop), so that a busy connection allocates nothing per input.
    pub(crate) fn with_core_in<T>(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        act: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> T {
        let out = self.critical(work, act);
        self.run(work);
        out
    }

    /// [`Shared::with_core_in`] for the reader of `conn`, handing the core
    /// what it read. While the connection is in its handshake, what the
    /// read makes the core queue for it (the next handshake message, or a
    /// REJECT) is written at once from the reader's task if the socket
    /// takes it without waiting (`write_half.rs`), rather than by a wake-up of
    /// the writer task: each handshake message answers the one before and
    /// nothing else can join it, so the wake-up was pure cost (on a
    /// multi-threaded runtime, often a hand-off to another thread).
    /// Afterwards the same holds for a read that brought exactly one call
    /// (a sequential caller: nothing else can join the reply its handler
    /// gives at once; a reply given later goes to the writer task).
    /// Whatever else a read makes the core queue is the writer task's, so
    /// the reader goes back to reading while the writer writes, which
    /// pipelined calls need (measured: the bench README).
    pub(crate) fn with_core_reading<T>(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        conn: ConnId,
        act: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> T {
        let (out, handshaking) = self.critical(work, |inner, now| {
            let handshaking = inner.ep.is_handshaking(conn);
            (act(inner, now), handshaking)
        });
        // (stops at a second call: a pipelined read holds dozens)
        let calls = work.iter().filter(|w| matches!(w, Work::Call(..)));
        let one_call = calls.take(2).count() == 1;
        self.run_writing(work, (handshaking || one_call).then_some(conn));
        out
    }

    /// [`Shared::with_core_in`] for a caller whose `act` may start a call
    /// and name its connection: then the call's bytes are written from
    /// the calling task if the socket takes them at once (`write_half.rs`),
    /// rather than by a wake-up of the writer task. `act` names the
    /// connection only for a sequential call (no other call of this node
    /// waited on, now or when the call before it started:
    /// `Calls::start`): nothing can join its bytes, so the wake-up would
    /// be pure cost, as for the reply to a lone call (see
    /// [`Shared::with_core_reading`]). Pipelined calls go to the writer
    /// task, which gathers them into one write.
    pub(crate) fn with_core_calling<T>(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        act: impl FnOnce(&mut Inner, Instant) -> (T, Option<ConnId>),
    ) -> T {
        // (the call's own bytes are not a work item: `drain`)
        let (out, inline, queued) = {
            let mut inner = self.lock();
            let now = self.now();
            let (out, inline) = act(&mut inner, now);
            let queued = self.drain(&mut inner, now, work, inline);
            (out, inline, queued)
        };
        self.run_writing_queued(work, inline, queued);
        out
    }

    /// Runs `work` as [`Shared::run`] does; what it queued for `inline`'s
    /// connection is written from this task if the socket takes it at
    /// once, else its writer task is woken. With no connection named this
    /// is `run`.
    #[inline(always)]
    fn run_writing(self: &Arc<Self>, work: &mut Vec<Work>, inline: Option<ConnId>) {
        self.run_writing_queued(work, inline, None);
    }

    /// [`Shared::run_writing`], `queued` the signals of `inline`'s
    /// connection if the drain found bytes queued for it already.
    #[inline(always)]
    fn run_writing_queued(
        self: &Arc<Self>,
        work: &mut Vec<Work>,
        inline: Option<ConnId>,
        mut queued: Option<Arc<ConnSignals>>,
    ) {
        // (a sequential call's turn leaves no work: nothing to run)
        if !work.is_empty() {
            queued = self.run_for(work, inline).or(queued);
        }
        if let (Some(conn), Some(signals)) = (inline, queued) {
            if !signals.write_now(self, conn) {
                signals.write.notify();
            }
        }
    }

    /// The critical section itself: lock, clock, act, drain, unlock. The
    /// wake-ups are left in `work` for [`Shared::run`]: `act` makes none
    /// itself, it records them in `Inner::wakes` (`wake.rs`).
    pub(crate) fn critical<T>(
        &self,
        work: &mut Vec<Work>,
        act: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> T {
        self.critical_for(work, None, act).0
    }

    /// [`Shared::critical`] for a task that writes `own`'s bytes itself:
    /// bytes queued for it are not left in `work` (a `Work::Write` would
    /// cost a second pass over the work list), its signals are returned.
    pub(crate) fn critical_for<T>(
        &self,
        work: &mut Vec<Work>,
        own: Option<ConnId>,
        act: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> (T, Option<Arc<ConnSignals>>) {
        let mut inner = self.lock();
        let now = self.now();
        let out = act(&mut inner, now);
        let queued = self.drain(&mut inner, now, work, own);
        (out, queued)
    }

    /// The data directory's lock while the node holds it; `None` once the
    /// node is closed, or without a data directory. Whoever writes to the
    /// directory keeps this clone until its write is done, so that the
    /// lock is never let go under a write.
    pub(crate) fn dir_lock(&self) -> Option<Arc<NodeLock>> {
        self.dir_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Takes the data directory's lock away from the node (it is closed:
    /// nothing more is written there). It is let go once the returned
    /// clone and any write in progress are done with it.
    pub(crate) fn take_dir_lock(&self) -> Option<Arc<NodeLock>> {
        self.dir_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The table of our calls in flight alone: what a caller polling for
    /// its result needs (no clock, nothing for the core, nothing to drain).
    pub(crate) fn calls<T>(&self, act: impl FnOnce(&mut Calls) -> T) -> T {
        act(&mut self.lock().calls)
    }

    /// A look at the state that cannot change the core (so produces
    /// nothing to drain): queries such as `peers` or `stats`.
    pub(crate) fn read<T>(&self, look: impl FnOnce(&Inner) -> T) -> T {
        look(&self.lock())
    }

    /// A change of the driver's bookkeeping that makes the core emit
    /// nothing (so there is nothing to drain): the wake-ups it records in
    /// `Inner::wakes` wait for the next drain, which the caller makes
    /// sure comes (`handlers.rs`).
    pub(crate) fn with_inner<T>(&self, act: impl FnOnce(&mut Inner) -> T) -> T {
        act(&mut self.lock())
    }
}
