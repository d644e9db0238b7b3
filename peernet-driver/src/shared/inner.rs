//! The state under the node's lock (`Inner`): the core, the driver's
//! tables (connections, calls, handlers, dials, subscribers) and the
//! node's phase; with the bookkeeping of send-handler slots.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use peernet_proto::{ConnId, Endpoint, Instant, PeerId};

use crate::completion::Calls;
use crate::error::ConnectError;
use crate::handlers::{DynHandler, RunningTask, SendKey, TaskKey};
// Maps keyed by ids this node chooses itself (connection and call ids,
// handle names, trusted peers) use a fast non-cryptographic hash; no peer
// picks these keys, so none can aim collisions at them.
use rustc_hash::FxHashMap as FastMap;

use super::ConnEntry;
use super::outbox::{DroppedEvents, Outbox, Subscribers};
use super::wake::Wake;

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
    /// Raised, under the lock, whenever handlers a drain handed out may
    /// have lost their right to start before their turn came: a call no
    /// longer served whose handler was neither running nor waiting in the
    /// drain that saw it end (it may wait in another task's batch), a
    /// peer unpaired (its SENDs), the handlers stopped. A batch started
    /// once the lock is let go compares it with the value its drain left
    /// ([`Work::Checked`](super::Work::Checked)); from the moment it
    /// moved, each handler of the batch is checked under the lock before
    /// it starts (`handlers.rs`). Shared with [`super::Shared`], which
    /// reads it without the lock.
    pub(crate) stale: Arc<AtomicU64>,
    /// Send handlers started and not finished, per peer: at most
    /// `max_inbound_calls`; a SEND beyond is dropped, as a CALL beyond is
    /// answered `overloaded`.
    pub(crate) sends_running: FastMap<PeerId, usize>,
    send_cap: usize,
    pub(crate) subscribers: Subscribers,
    /// Events published, sent once the lock is let go (`outbox.rs`).
    pub(crate) outbox: Outbox,
    /// Events subscribers missed (shared with [`super::Shared`], which
    /// counts those a lagging subscriber missed).
    pub(crate) dropped_events: Arc<DroppedEvents>,
    /// Wake-ups found under the lock by code other than the drain's own
    /// loop, made once it is let go: the drain moves them into its work
    /// (`wake.rs`).
    pub(crate) wakes: Vec<Wake>,
    /// The deadline the timer task sleeps towards.
    pub(super) timer_armed: Option<Instant>,
    /// The core's book revision last handed to a save (or loaded): when
    /// the core's moves past it, the book is saved (`dialing.rs`).
    pub(crate) book_saved: u64,
    /// Peers revoked by an `unpair` whose turn has not ended yet, with
    /// that turn's number: a `pair` of the peer asked for before it (a
    /// smaller number) does not trust it again in this run, and says so
    /// here (true: the `unpair` then returns true, as it would have
    /// after that `pair`) (`node/trust.rs`).
    pub(crate) revoked_in_turn: FastMap<PeerId, (u64, bool)>,
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
            stale: Arc::default(),
            sends_running: FastMap::default(),
            subscribers: Subscribers::default(),
            outbox: Outbox::new(),
            dropped_events: Arc::default(),
            wakes: Vec::new(),
            timer_armed: None,
            book_saved: 0,
            revoked_in_turn: FastMap::default(),
        }
    }
}

impl Inner {
    /// No handler is running or starting: shutdown's grace may end.
    pub(crate) fn is_quiet(&self) -> bool {
        self.running.is_empty() && self.starting == 0
    }

    /// Tells shutdown, once the lock is let go, if the last running
    /// handler is done.
    pub(crate) fn maybe_quiet(&mut self) {
        if self.is_quiet() {
            self.wakes.push(Wake::Quiet);
        }
    }

    /// Takes a send-handler slot for `peer`, if one is free.
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
    /// budgets), once the lock is let go. Returns whether one was running.
    pub(crate) fn stop_sends_of(&mut self, peer: &PeerId) -> bool {
        // (and those of its SENDs still waiting for their turn in a batch
        // do not start)
        self.handlers_went_stale();
        let theirs: Vec<TaskKey> = self
            .running
            .keys()
            .filter(|key| matches!(key, TaskKey::Send(done, _) if done.peer == *peer))
            .copied()
            .collect();
        for key in &theirs {
            if let (Some(task), TaskKey::Send(done, _)) = (self.running.remove(key), key) {
                self.wakes.push(Wake::Handler(task));
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

    /// Handlers drained earlier may no longer start: see [`Inner::stale`].
    pub(crate) fn handlers_went_stale(&self) {
        self.stale.fetch_add(1, Ordering::Release);
    }

    /// Records the deadline the timer task now sleeps towards.
    pub(crate) fn set_timer_armed(&mut self, at: Option<Instant>) {
        self.timer_armed = at;
    }
}
