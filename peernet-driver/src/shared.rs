//! The state every task of a node shares, behind one mutex that is never
//! held across an `.await` nor while application code runs; the one door
//! to it, [`Shared::with_core`]; and `drain`, the one place where the
//! core's outputs become wake-ups, completed calls, handler runs and
//! events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use event_listener::Event as Broadcast;
use peernet_proto::{
    ConnId, Direction, Endpoint, Event, InboundCall, InboundSend, Instant, LAST_COPIED, Output,
    PeerId, Response, TrustList,
};

use crate::error::ConnectError;
use crate::events::NodeEvent;
// Maps keyed by ids this node chooses itself (connection and call ids,
// handle names, trusted peers) use a fast non-cryptographic hash; no peer
// picks these keys, so none can aim collisions at them.
use crate::completion::Calls;
use crate::dirlock::{NodeLock, Released};
use crate::handlers::{DynHandler, RunningTask, SendKey, TaskKey};
use crate::persist::DataDir;
use crate::port::Port;
use crate::runtime::Runtime;
use crate::signal::Signal;
use rustc_hash::FxHashMap as FastMap;

use crate::handlers::PanicLog;

/// What a connection's two tasks listen to.
#[derive(Default)]
pub(crate) struct ConnSignals {
    /// Bytes are queued, or the connection is closing: writer, wake up.
    pub(crate) write: Signal,
    /// The core is done with the connection: reader, discard what comes.
    pub(crate) closed: AtomicBool,
    /// Reader, stop now.
    pub(crate) stop_reader: Signal,
    /// Writer, stop now (a forced shutdown).
    pub(crate) stop_writer: Signal,
    /// The reader has ended (so the writer need not linger).
    pub(crate) reader_done: Signal,
    /// The write half, for the writer and for the reader's inline writes.
    pub(crate) port: Port,
    /// Bytes taken from the core and not yet written: the batch of a
    /// write in progress, and what an inline write left in
    /// `PortState::left` until the writer wrote it; 0 otherwise. Only the
    /// port's holder changes it (`Shared::take_transmit`, `port.rs`).
    pub(crate) unwritten: AtomicUsize,
    /// What this connection adds to [`Shared::lingering`] since its close,
    /// given back as its writer ends.
    pub(crate) lingering: AtomicUsize,
}

impl ConnSignals {
    /// Stops the connection's reader and writer wherever they are: the
    /// writer drops what it has not written.
    pub(crate) fn stop(&self) {
        self.stop_writer.notify();
        self.stop_reader.notify();
    }
}

pub(crate) struct ConnEntry {
    pub(crate) signals: Arc<ConnSignals>,
    pub(crate) direction: Direction,
    pub(crate) remote_addr: Option<SocketAddr>,
    /// Set by `Output::Close`: the final bytes; then the writer closes.
    pub(crate) closing: Option<Bytes>,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// `shutdown` was called: new calls get `shutting_down`, running
    /// handlers may still answer.
    ShuttingDown,
    /// Every connection was closed; the timer task ends.
    Closed,
}

pub(crate) struct Inner {
    pub(crate) ep: Endpoint,
    pub(crate) phase: Phase,
    pub(crate) conns: FastMap<ConnId, ConnEntry>,
    /// Our calls in flight and their callers (`completion.rs`).
    pub(crate) calls: Calls,
    pub(crate) dials: FastMap<ConnId, oneshot::Sender<Result<PeerId, ConnectError>>>,
    pub(crate) handlers: FastMap<String, DynHandler>,
    /// Handlers that did not finish on their first poll, so that CANCEL
    /// (or a closed connection) can stop them and shutdown can wait.
    pub(crate) running: HashMap<TaskKey, RunningTask>,
    /// Handlers handed to `run` (`Work::Call`, `Work::Send`) and not yet
    /// taken back under the lock: in their first poll, outside the lock,
    /// so not in `running`. Shutdown's grace waits for these too.
    pub(crate) starting: usize,
    /// The handlers were stopped (shutdown's grace is over, or the node
    /// closed): one whose first poll ends after that is stopped at once.
    pub(crate) handlers_stopped: bool,
    pub(crate) next_task: u64,
    /// Send handlers started and not finished, per peer: at most
    /// `max_inbound_calls`; a SEND beyond is dropped, as a CALL beyond is
    /// answered `overloaded`.
    pub(crate) sends_running: FastMap<PeerId, usize>,
    send_cap: usize,
    pub(crate) subscribers: Vec<async_channel::Sender<NodeEvent>>,
    /// The deadline the timer task sleeps towards.
    timer_armed: Option<Instant>,
    /// The core's book revision last handed to a save (or loaded): when
    /// the core's moves past it, the book is saved (`dialing.rs`).
    pub(crate) book_saved: u64,
}

impl Inner {
    pub(crate) fn new(ep: Endpoint) -> Inner {
        Inner {
            send_cap: ep.config().max_inbound_calls,
            ep,
            phase: Phase::Running,
            conns: FastMap::default(),
            calls: Calls::default(),
            dials: FastMap::default(),
            handlers: FastMap::default(),
            running: HashMap::new(),
            starting: 0,
            handlers_stopped: false,
            next_task: 0,
            sends_running: FastMap::default(),
            subscribers: Vec::new(),
            timer_armed: None,
            book_saved: 0,
        }
    }
}

impl Inner {
    /// Takes a send-handler slot for `peer`, if one is free.
    /// No handler is running or starting: shutdown's grace may end.
    pub(crate) fn is_quiet(&self) -> bool {
        self.running.is_empty() && self.starting == 0
    }

    pub(crate) fn take_send_slot(&mut self, peer: PeerId) -> bool {
        let running = self.sends_running.entry(peer).or_insert(0);
        let free = *running < self.send_cap;
        if free {
            *running += 1;
        }
        free
    }

    /// A send handler finished: gives its slot back, and its arguments'
    /// bytes to the core's budgets.
    pub(crate) fn send_finished(&mut self, done: SendKey) {
        self.ep.send_done(done.conn, done.bytes);
        self.release_send_slot(done.peer);
    }

    /// Stops the send handlers of `peer` (it was unpaired: a revoked
    /// peer's work does not run on, nor hold its arguments against the
    /// budgets). Returns whether one was running.
    pub(crate) fn stop_sends_of(&mut self, peer: &PeerId) -> bool {
        let theirs: Vec<TaskKey> = self
            .running
            .keys()
            .filter(|key| matches!(key, TaskKey::Send(done, _) if done.peer == *peer))
            .copied()
            .collect();
        for key in &theirs {
            if let (Some(task), TaskKey::Send(done, _)) = (self.running.remove(key), key) {
                task.stop();
                self.send_finished(*done);
            }
        }
        !theirs.is_empty()
    }

    /// Gives a send-handler slot back.
    fn release_send_slot(&mut self, peer: PeerId) {
        if let Some(running) = self.sends_running.get_mut(&peer) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.sends_running.remove(&peer);
            }
        }
    }

    /// Records the deadline the timer task now sleeps towards.
    pub(crate) fn set_timer_armed(&mut self, at: Option<Instant>) {
        self.timer_armed = at;
    }
}

/// What [`Shared::take_transmit`] took for a connection.
pub(crate) struct Taken {
    /// The bytes queued.
    pub(crate) data: Option<Bytes>,
    /// Its last bytes, if the core closed it.
    pub(crate) closing: Option<Bytes>,
    /// More bytes were queued as these were taken.
    pub(crate) more: bool,
}

/// What draining found to do once the lock is dropped: wake-ups (so that
/// no task is scheduled, and no thread woken, from inside the critical
/// section) and handler runs (a handler may call back into the node).
pub(crate) enum Work {
    /// One of our calls resolved: wake its caller.
    Complete(std::task::Waker),
    /// A connection has bytes queued, or is closing: wake its writer.
    Write(ConnId, Arc<ConnSignals>),
    /// The core closed a connection: whatever the peer does, its transport
    /// is released within the linger (see `tasks::close_deadline`).
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
}

/// The most work items one drain takes from the core: what one peer's
/// record of tiny envelopes makes the core emit is run in batches of this
/// size, not gathered whole (the core queues at most
/// [`peernet_proto::OUTPUTS_BEFORE_PAUSE`] outputs per input).
pub(crate) const DRAIN_BATCH: usize = 1024;

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
    /// The timer task: an earlier deadline was armed, or the node stops.
    pub(crate) timer: Signal,
    /// The accept loop: stop. (A `Signal` wakes one task, and this one is
    /// the accept loop's: anything else that must stop with the node
    /// listens to `closed`.)
    pub(crate) stop_accepting: Signal,
    /// Room in a send queue, or a call resolved, or a connection closed:
    /// blocked callers, try again. Only notified when someone waits.
    pub(crate) room: Broadcast,
    pub(crate) room_wanted: AtomicBool,
    /// The last running handler finished: shutdown waits on this.
    pub(crate) quiet: Broadcast,
    /// Writers that have not yet written their connection's last bytes.
    pub(crate) writers: AtomicUsize,
    pub(crate) writer_ended: Broadcast,
    /// The node is closed.
    pub(crate) closed: Broadcast,
    /// The node stops accepting: `shutdown` started, or it closed at
    /// once. Unlike `stop_accepting`, any number of tasks may listen (LAN
    /// discovery withdraws its announcement here, not at the close).
    pub(crate) stopping: Broadcast,
    /// The LAN discovery of this node that runs, by its token (0: none):
    /// one at a time (`discovery.rs`). Cleared when the node stops.
    #[cfg(feature = "mdns")]
    pub(crate) lan_discovery: Arc<AtomicU64>,
    /// Bytes that closed connections still mean to write (their writers'
    /// batches and last bytes) during their linger: past
    /// [`Shared::linger_budget`], a connection closed while the node runs
    /// stops writing at once instead (`tasks::LINGER`).
    pub(crate) lingering: AtomicUsize,
    pub(crate) dropped_events: AtomicU64,
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
}

impl<R: Runtime> Shared<R> {
    pub(crate) fn new(
        rt: R,
        inner: Inner,
        data_dir: Option<DataDir>,
        dir_lock: Option<Arc<NodeLock>>,
        saved_trust: TrustList,
    ) -> Shared<R> {
        Shared {
            epoch: rt.now(),
            rt,
            local_addr: OnceLock::new(),
            inner: Mutex::new(inner),
            data_dir,
            dir_released: dir_lock.as_ref().map(|lock| lock.released()),
            dir_lock: Mutex::new(dir_lock),
            persist: futures_util::lock::Mutex::new(saved_trust),
            timer: Signal::default(),
            stop_accepting: Signal::default(),
            room: Broadcast::new(),
            room_wanted: AtomicBool::new(false),
            quiet: Broadcast::new(),
            writers: AtomicUsize::new(0),
            writer_ended: Broadcast::new(),
            closed: Broadcast::new(),
            stopping: Broadcast::new(),
            #[cfg(feature = "mdns")]
            lan_discovery: Arc::new(AtomicU64::new(0)),
            lingering: AtomicUsize::new(0),
            dropped_events: AtomicU64::new(0),
            dropped_sends: AtomicU64::new(0),
            calls_timed_out_unsent: AtomicU64::new(0),
            panic_log: Mutex::new(PanicLog::default()),
            dialing: crate::dialing::DialState::default(),
            book_saves: crate::book_save::Saves::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // (an access rule runs under this lock: it must not take it again)
        crate::access::not_in_rule();
        // The only application code that runs under the lock, an access
        // rule, is contained (`access.rs`), and the core does not panic,
        // so a poisoned lock still guards a consistent state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime's clock as the core's time.
    fn now(&self) -> Instant {
        Instant::from_duration(self.rt.now().saturating_duration_since(self.epoch))
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
    /// takes it without waiting (`port.rs`), rather than by a wake-up of
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
    /// the calling task if the socket takes them at once (`port.rs`),
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
        let (out, inline) = self.critical(work, act);
        self.run_writing(work, inline);
        out
    }

    /// Runs `work` as [`Shared::run`] does; what it queued for `inline`'s
    /// connection is written from this task if the socket takes it at
    /// once, else its writer task is woken. With no connection named this
    /// is `run`.
    #[inline(always)]
    fn run_writing(self: &Arc<Self>, work: &mut Vec<Work>, inline: Option<ConnId>) {
        if let (Some(conn), Some(signals)) = (inline, self.run_for(work, inline)) {
            if !signals.port.write_now(self, conn, &signals.unwritten) {
                signals.write.notify();
            }
        }
    }

    /// The critical section itself: lock, clock, act, drain, unlock. The
    /// wake-ups are left in `work` for [`Shared::run`].
    pub(crate) fn critical<T>(
        &self,
        work: &mut Vec<Work>,
        act: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> T {
        let mut inner = self.lock();
        let now = self.now();
        let out = act(&mut inner, now);
        self.drain(&mut inner, now, work);
        out
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

    /// The writer's turn: everything queued for `conn`, and its last bytes
    /// if the core closed it (empty if the driver forgot it). Takes no
    /// clock and drains no output: freeing queue room is the caller's
    /// to announce ([`Shared::wake_room`]); `more` says the core queued
    /// bytes again as it was taken (replies that waited for room), which
    /// the caller writes next, without waiting for the core's wake-up.
    ///
    /// The bytes taken are stored in `unwritten` (the connection's
    /// [`ConnSignals::unwritten`]) under the node's lock, so a close
    /// drained meanwhile (`may_linger`) counts them: whoever takes them
    /// holds the port, and lowers it as they go out.
    pub(crate) fn take_transmit(&self, conn: ConnId, unwritten: &AtomicUsize) -> Taken {
        let mut inner = self.lock();
        let data = inner.ep.poll_transmit(conn);
        if let Some(data) = &data {
            unwritten.store(data.len(), Ordering::Release);
        }
        let more = inner.ep.queued_bytes(conn) > 0;
        let closing = match inner.conns.get_mut(&conn) {
            Some(entry) => entry.closing.take(),
            None => Some(Bytes::new()),
        };
        Taken {
            data,
            closing,
            more,
        }
    }

    /// The most bytes closed connections may still mean to write, node
    /// wide, during their linger: four send caps (`Config::hard_send_cap`,
    /// what one connection may queue). A peer that reads nothing and
    /// reconnects as fast as it may would otherwise pin a batch of up to a
    /// send cap per closed connection, for the whole linger of each.
    fn linger_budget(&self, inner: &Inner) -> usize {
        inner.ep.config().hard_send_cap().saturating_mul(4)
    }

    /// A connection closes with `last` bytes to write after what its
    /// writer holds: counted against the node's linger budget, or refused
    /// (false: the writer stops at once, and the peer misses its last
    /// bytes) when they would not fit. A last write with nothing held
    /// before it (the writer holds nothing; `last` is at most
    /// [`LAST_COPIED`], copied out of the queue by the core) always
    /// lingers, uncounted: it pins no queue, and a peer that fills the
    /// budget must not cost the others their GOODBYE.
    ///
    /// `budget` is `None` once the node shuts down: what closing
    /// connections hold is counted but never refused. No transport can
    /// start any more (accepts are refused, dials stopped; at most the
    /// handshakes then in progress finish), so no peer can make closed
    /// connections pile up by reconnecting, the threat the budget is
    /// for: every byte lingering was held by a connection open a moment
    /// before (its writer's batch, at most a send buffer and a frame, and
    /// a short last write), and it goes within the linger. Refusing some
    /// cost peers that read after the shutdown their GOODBYE (review s40,
    /// r4: 2 of 4 got it).
    fn may_linger(&self, signals: &ConnSignals, last: usize, budget: Option<usize>) -> bool {
        let unwritten = signals.unwritten.load(Ordering::Acquire);
        if unwritten == 0 && last <= LAST_COPIED {
            return true;
        }
        let held = unwritten.saturating_add(last);
        // (under the node's lock: only writers ending take from it meanwhile)
        let before = self.lingering.fetch_add(held, Ordering::AcqRel);
        if let Some(budget) = budget.filter(|&b| before.saturating_add(held) > b) {
            self.lingering.fetch_sub(held, Ordering::AcqRel);
            tracing::debug!(
                held,
                budget,
                "linger budget spent: a closed connection's bytes dropped"
            );
            return false;
        }
        signals.lingering.fetch_add(held, Ordering::AcqRel);
        true
    }

    /// A closed connection's writer ended: what it counted against the
    /// linger budget is free again.
    pub(crate) fn lingered(&self, signals: &ConnSignals) {
        let held = signals.lingering.swap(0, Ordering::AcqRel);
        if held > 0 {
            self.lingering.fetch_sub(held, Ordering::AcqRel);
        }
    }

    /// Wakes callers blocked on a full queue, if there are any.
    pub(crate) fn wake_room(&self) {
        // Called once per completed call: a plain load first, so the common
        // case (nobody waiting) costs no locked read-modify-write.
        if self.room_wanted.load(Ordering::Acquire)
            && self.room_wanted.swap(false, Ordering::AcqRel)
        {
            self.room.notify(usize::MAX);
        }
    }

    /// Drains the core's outputs into wake-ups and `work` (run it with
    /// [`Shared::run`] after dropping the lock).
    fn drain(&self, inner: &mut Inner, now: Instant, work: &mut Vec<Work>) {
        let full = work.len() + DRAIN_BATCH;
        loop {
            if work.len() >= full {
                work.push(Work::More);
                break;
            }
            let Some(output) = inner.ep.poll_output() else {
                break;
            };
            match output {
                Output::Transmit(conn) => {
                    if let Some(entry) = inner.conns.get(&conn) {
                        work.push(Work::Write(conn, entry.signals.clone()));
                    }
                }
                Output::Close { conn, last } => {
                    let running = inner.phase == Phase::Running;
                    let budget = running.then(|| self.linger_budget(inner));
                    if let Some(entry) = inner.conns.get_mut(&conn) {
                        let signals = &entry.signals;
                        signals.closed.store(true, Ordering::Release);
                        if !self.may_linger(signals, last.len(), budget) {
                            // (its batch and last bytes go with its writer)
                            signals.stop();
                        }
                        entry.closing = Some(last);
                        work.push(Work::Write(conn, signals.clone()));
                        work.push(Work::CloseDeadline(signals.clone()));
                    }
                    // callers waiting for room learn the connection is gone
                    self.wake_room();
                }
                Output::Event(event) => self.on_event(inner, now, event, work),
                Output::Dial { peer, addr } => work.push(Work::Dial(peer, addr)),
            }
        }
        // Any change to the book (an address added, forgotten, or one that
        // worked for the first time) is saved, whatever made it.
        let revision = inner.ep.book_revision();
        if revision != inner.book_saved {
            inner.book_saved = revision;
            work.push(Work::SaveBook);
        }
        // An input or command may have armed an earlier deadline.
        let next = inner.ep.poll_timeout();
        if next.is_some() && (inner.timer_armed.is_none() || next < inner.timer_armed) {
            inner.timer_armed = next;
            self.timer.notify();
        }
    }

    fn on_event(&self, inner: &mut Inner, now: Instant, event: Event, work: &mut Vec<Work>) {
        match event {
            Event::CallResult { id, result } => {
                if let Some(waker) = inner.calls.complete(id, result) {
                    work.push(Work::Complete(waker));
                }
                // a slot under `max_outbound_calls` is free again
                self.wake_room();
            }
            Event::Call(call) => match inner.handlers.get(call.handle.as_str()) {
                Some(handler) => {
                    inner.starting += 1;
                    work.push(Work::Call(call, handler.clone()));
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
                // (the handler clone dropped is never the last: the table
                // holds one, and nothing can unexpose under this lock)
                let before = work.len();
                work.retain(|w| !matches!(w, Work::Call(call, _) if call.id == id));
                inner.starting -= before - work.len();
                if let Some(task) = inner.running.remove(&TaskKey::Call(id)) {
                    tracing::debug!(call = id.request_id(), "handler cancelled");
                    task.stop();
                }
                self.maybe_quiet(inner);
            }
            Event::Connected {
                conn,
                peer,
                direction,
            } => {
                let remote = inner.conns.get(&conn).and_then(|e| e.remote_addr);
                tracing::info!(%conn, %peer, ?direction, ?remote, "connected");
                if let Some(tx) = inner.dials.remove(&conn) {
                    let _ = tx.send(Ok(peer));
                }
                self.dialing.connected(peer);
                self.publish(inner, NodeEvent::Connected { peer, direction });
            }
            Event::Disconnected { conn, peer, reason } => {
                let direction = direction_of(inner, conn);
                tracing::info!(%conn, %peer, ?direction, %reason, "disconnected");
                self.publish(inner, NodeEvent::Disconnected { peer, reason });
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
                    let _ = tx.send(result);
                }
                self.publish(
                    inner,
                    NodeEvent::HandshakeFailed {
                        peer,
                        direction,
                        error,
                    },
                );
            }
            other => crate::dialing::on_event(self, inner, other),
        }
    }

    pub(crate) fn publish(&self, inner: &mut Inner, event: NodeEvent) {
        inner
            .subscribers
            .retain(|tx| match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(async_channel::TrySendError::Full(_)) => {
                    // Logged at the 1st, 2nd, 4th, 8th... drop only: peers
                    // can cause events (an untrusted dialer's failed
                    // handshakes), and a line per event, written under the
                    // node's lock, would let them stall it on a slow sink.
                    let dropped = self.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(dropped, "an event subscriber lags; events dropped");
                    }
                    true
                }
                Err(async_channel::TrySendError::Closed(_)) => false,
            });
    }
}

fn direction_of(inner: &Inner, conn: ConnId) -> Direction {
    inner
        .conns
        .get(&conn)
        .map_or(Direction::Inbound, |e| e.direction)
}
