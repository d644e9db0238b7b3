//! Dialing by PeerId: the address book and peers kept connected (the
//! book's saves are `book_save.rs`).
//!
//! The core decides everything (which address, when, the backoff, when to
//! give up: `peernet_proto::Endpoint::{dial, keep_connected}`); the driver
//! performs its dials (`dialer.rs`), tells the application
//! ([`NodeEvent::Reconnecting`], [`NodeEvent::Unreachable`]), lets a
//! `connect_peer` or a `call` wait for a connection.
//!
//! - [`Node::connect_peer`] dials through the book; [`Node::connect`]
//!   keeps its `(peer, addr)` form and records the address once it
//!   connects. They are two methods rather than one taking an optional
//!   address so that every existing caller keeps compiling and each
//!   signature says what it does.
//! - A [`Node::call`] to a kept peer that is momentarily disconnected
//!   waits for the reconnect within the call's own timeout instead of
//!   failing with `NotConnected` at once
//!   ([`NodeConfig::wait_for_reconnect`] turns this off).
//! - With a data directory the book is saved (atomically, see
//!   `book_file.rs`) 250 ms after it changes, so a burst of changes is one
//!   write (at most 16 such writes a minute), at once when the node shuts
//!   down, and again after a failed
//!   save, with a back-off (`book_save.rs`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use event_listener::{Event as Broadcast, EventListener};
use peernet_proto::{AddrEntry, AddrHistory, AddrSource, BookError, Event, PeerId};
use rustc_hash::FxHashMap;

use crate::book_file::SavedBook;
use crate::config::NodeConfig;
use crate::error::{ConnectError, ErrorChain};
use crate::events::NodeEvent;
use crate::node::Node;
use crate::runtime::Runtime;
use crate::shared::{Inner, Phase, Shared, Wake};
use crate::tasks::first;

/// What a [`NodeConfig`] says about dialing by PeerId.
#[derive(Debug, Clone)]
pub(crate) struct DialOptions {
    /// The addresses the node starts with (from the data directory).
    pub(crate) book: SavedBook,
    keep_trusted: bool,
    wait_for_reconnect: bool,
    unreached_not_connected: bool,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            book: SavedBook::new(),
            keep_trusted: false,
            wait_for_reconnect: true,
            unreached_not_connected: false,
        }
    }
}

impl NodeConfig {
    /// Keeps every trusted peer connected, those trusted at the start and
    /// those paired later (see [`Node::keep_connected`]). Default off:
    /// peers are dialed only when asked to.
    pub fn keep_trusted_connected(mut self, keep: bool) -> NodeConfig {
        self.dialing.keep_trusted = keep;
        self
    }

    /// Whether a [`Node::call`] to a kept peer that is not connected at
    /// the moment waits, within its timeout, for the node to reconnect
    /// (default) or fails at once with `NotConnected`.
    pub fn wait_for_reconnect(mut self, wait: bool) -> NodeConfig {
        self.dialing.wait_for_reconnect = wait;
        self
    }

    /// How a [`Node::call`] that waited for a kept peer's reconnect
    /// (above) and saw its timeout run out before the peer connected
    /// fails: with [`CallError::Timeout`](peernet_proto::CallError::Timeout)
    /// (`false`, the default, as before), or, `true`, with
    /// [`CallError::NotConnected`](peernet_proto::CallError::NotConnected):
    /// the call never reached the peer, whose connection never came back
    /// in time, where `Timeout` also stands for a slow callee or network
    /// (the request sent, the handler maybe run). Both are transient
    /// ([`CallError::is_transient`](peernet_proto::CallError::is_transient));
    /// only `NotConnected` tells the caller that the request was never
    /// sent, so that it is safe to send again, and that the peer is down
    /// rather than slow ([`NodeEvent::Disconnected`] and
    /// [`NodeEvent::Unreachable`] say why).
    ///
    /// Off by default so that code matching `Timeout` for such calls
    /// keeps working; a later release may make it the default.
    pub fn unreached_call_not_connected(mut self, on: bool) -> NodeConfig {
        self.dialing.unreached_not_connected = on;
        self
    }

    /// Addresses the node starts with, e.g. loaded with
    /// [`DataDir::load_book`](crate::DataDir::load_book) (which
    /// [`NodeConfig::from_data_dir`] does). Those of peers that are not
    /// trusted are ignored.
    pub fn address_book(mut self, book: SavedBook) -> NodeConfig {
        self.dialing.book = book;
        self
    }

    /// The address book the node starts with.
    pub fn saved_book(&self) -> &SavedBook {
        &self.dialing.book
    }
}

/// A `connect_peer` call waiting for its peer.
pub(crate) type Waiter = oneshot::Sender<Result<(), ConnectError>>;

/// The driver's side of dialing, in [`Shared`].
#[derive(Default)]
pub(crate) struct DialState {
    keep_trusted: AtomicBool,
    wait_for_reconnect: AtomicBool,
    /// [`NodeConfig::unreached_call_not_connected`].
    pub(crate) unreached_not_connected: AtomicBool,
    /// `connect_peer` calls waiting for their peer: answered on its
    /// `Connected`, `Unreachable`, unpair or shutdown.
    waiters: Mutex<FxHashMap<PeerId, Vec<Waiter>>>,
    /// Calls waiting for a kept peer's reconnect, per peer: woken (and the
    /// entry dropped) when that peer connects, is unpaired or no longer
    /// kept, or the node shuts down; then they look again. One wake-up
    /// per peer, not one for the node: every connection of any peer woke
    /// every call waiting for any other, each of them to take the node's
    /// lock and find its peer still away. At most one entry per kept peer.
    reconnects: Mutex<FxHashMap<PeerId, Broadcast>>,
}

impl DialState {
    /// `connect_peer` calls waiting, over every peer.
    pub(crate) fn waiting(&self) -> usize {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.values().map(Vec::len).sum()
    }

    /// Wakes the calls waiting for `peer`'s reconnect (not under the
    /// core's lock: their wakers are the application's).
    fn wake_reconnect(&self, peer: &PeerId) {
        if let Some(event) = self.take_reconnect(peer) {
            event.notify(usize::MAX);
        }
    }

    /// Takes the wake-up of the calls waiting for `peer`'s reconnect.
    fn take_reconnect(&self, peer: &PeerId) -> Option<Broadcast> {
        let mut reconnects = self
            .reconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reconnects.remove(peer)
    }

    /// Takes the `connect_peer` calls waiting for `peer`.
    fn take_waiters(&self, peer: &PeerId) -> Vec<Waiter> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.remove(peer).unwrap_or_default()
    }

    /// `peer` connected (under the core's lock, from `drain`): its
    /// waiters are taken now, and answered (and the calls waiting for its
    /// reconnect woken) with `wakes`, once the lock is let go.
    pub(crate) fn connected(&self, peer: PeerId, wakes: &mut Vec<Wake>) {
        self.answer_later(&peer, wakes, || Ok(()));
        if let Some(event) = self.take_reconnect(&peer) {
            wakes.push(Wake::Reconnect(event));
        }
    }

    /// Takes the `connect_peer` calls waiting for `peer` (under the
    /// core's lock), to be given `answer` with `wakes` once it is let go.
    fn answer_later(
        &self,
        peer: &PeerId,
        wakes: &mut Vec<Wake>,
        answer: impl Fn() -> Result<(), ConnectError>,
    ) {
        let waiters = self.take_waiters(peer);
        if !waiters.is_empty() {
            let answers = waiters.into_iter().map(|tx| (tx, answer()));
            wakes.push(Wake::Waiters(answers.collect()));
        }
    }

    /// Fails the `connect_peer` calls waiting for `peer` (not under the
    /// core's lock: their wakers are the application's).
    fn fail_waiters(&self, peer: &PeerId, error: impl Fn() -> ConnectError) {
        for tx in self.take_waiters(peer) {
            let _ = tx.send(Err(error()));
        }
    }
}

/// The core's dialing events (under the core's lock, from `drain`).
pub(crate) fn on_event<R: Runtime>(shared: &Shared<R>, inner: &mut Inner, event: Event) {
    match event {
        Event::Reconnecting {
            peer,
            attempt,
            after,
        } => {
            tracing::info!(%peer, attempt, ?after, "reconnecting");
            inner.publish(NodeEvent::Reconnecting {
                peer,
                attempt,
                after,
            });
        }
        Event::Unreachable { peer, tried } => {
            match crate::error::rejected_at(&tried) {
                Some((at, code)) => tracing::info!(
                    %peer,
                    tried = tried.len(),
                    %at,
                    rejected = code.name(),
                    "the node at an address rejected the handshake, and no address of its round connected"
                ),
                None => tracing::info!(
                    %peer,
                    tried = tried.len(),
                    "unreachable at every address of its round"
                ),
            }
            // (taken now, told once the lock is let go)
            let unreachable = || {
                Err(ConnectError::Unreachable {
                    peer,
                    tried: tried.clone(),
                })
            };
            shared
                .dialing
                .answer_later(&peer, &mut inner.wakes, unreachable);
            inner.publish(NodeEvent::Unreachable { peer, tried });
        }
        _ => {}
    }
}

/// Gives the core `peer`'s addresses in `book`, with what their dials
/// showed. A book lists them best first; the core ranks untried hints
/// the latest heard first and the others the first added first (of those
/// that worked, restored at one instant, the first added counts as the
/// one that worked most recently), so the hints go in from the last and
/// every class keeps the book's order.
fn restore_peer(inner: &mut Inner, now: peernet_proto::Instant, book: &SavedBook, peer: &PeerId) {
    let addrs = book.get(peer);
    let untried_hint = |(addr, source): &&(SocketAddr, AddrSource)| {
        *source == AddrSource::Discovery && book.history(peer, addr) == AddrHistory::NeverWorked
    };
    let others = addrs.iter().filter(|a| !untried_hint(a));
    let hints = addrs.iter().rev().filter(untried_hint);
    for &(addr, source) in others.chain(hints) {
        let history = book.history(peer, &addr);
        if let Err(error) = inner.ep.restore_address(now, *peer, addr, source, history) {
            tracing::warn!(%peer, %addr, %error, "address not loaded");
        }
    }
}

/// Applies a config's dialing options to a new node: its book, and the
/// peers to keep connected.
pub(crate) fn start<R: Runtime>(shared: &Arc<Shared<R>>, options: DialOptions) {
    let state = &shared.dialing;
    state
        .keep_trusted
        .store(options.keep_trusted, Ordering::Relaxed);
    state
        .wait_for_reconnect
        .store(options.wait_for_reconnect, Ordering::Relaxed);
    state
        .unreached_not_connected
        .store(options.unreached_not_connected, Ordering::Relaxed);
    shared.with_core(|inner, now| {
        // The peers the file trusts and this run does not keep their
        // saved addresses aside, written back with every save.
        let mut aside = SavedBook::new();
        for (peer, _) in options.book.iter() {
            if inner.ep.trust().contains(peer) {
                restore_peer(inner, now, &options.book, peer);
            } else {
                aside.copy_peer(&options.book, peer);
            }
        }
        // (what was just loaded is what the file holds: no save for it)
        inner.book_saved = inner.ep.book_revision();
        *shared.book_saves.aside() = aside;
        if options.keep_trusted {
            let trusted: Vec<PeerId> = inner.ep.trust().iter().map(|(p, _)| *p).collect();
            for peer in trusted {
                if let Err(error) = inner.ep.keep_connected(now, peer, true) {
                    tracing::debug!(%peer, error = %ErrorChain(&error), "not kept");
                }
            }
        }
    });
}

/// `peer` was just paired: kept connected if the node keeps every trusted
/// peer.
pub(crate) fn after_pair<R: Runtime>(shared: &Arc<Shared<R>>, peer: PeerId) {
    // A peer the data directory trusted and this run had left out gets
    // its saved addresses back.
    let mut back = SavedBook::new();
    {
        let mut aside = shared.book_saves.aside();
        back.copy_peer(&aside, &peer);
        aside.remove(&peer);
    }
    if !back.is_empty() {
        shared.with_core(|inner, now| restore_peer(inner, now, &back, &peer));
    }
    if shared.dialing.keep_trusted.load(Ordering::Relaxed) {
        let kept = shared.with_core(|inner, now| inner.ep.keep_connected(now, peer, true));
        if let Err(error) = kept {
            tracing::debug!(%peer, error = %ErrorChain(&error), "not kept");
        }
    }
}

/// `peer` was just unpaired: its dials stopped and its addresses went (in
/// the core); whoever waited for it is told, and the book is saved. Its
/// saved addresses set aside (the data directory trusted it, this run did
/// not) go too, and so do the lines an operator gave it in the book file
/// during the run; the book file is written without them: they are not
/// given back by a later `pair`, nor loaded by a later run.
pub(crate) fn after_unpair<R: Runtime>(shared: &Arc<Shared<R>>, peer: PeerId) {
    // (and the lines an operator gave it by editing the book file: a
    // later `pair` starts it with what the node learns)
    let aside = shared.book_saves.aside().remove(&peer);
    let edited = shared.book_saves.hand().forget(&peer);
    if aside || edited {
        crate::book_save::schedule(shared);
    }
    let state = &shared.dialing;
    state.fail_waiters(&peer, || {
        ConnectError::Start(peernet_proto::ConnectError::Untrusted(peer))
    });
    state.wake_reconnect(&peer);
}

/// The node shuts down: waiters are released at once; a pending save is
/// returned, for the shutdown to finish before it completes.
pub(crate) fn on_shutdown<R: Runtime>(
    shared: &Arc<Shared<R>>,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let state = &shared.dialing;
    let peers: Vec<PeerId> = state
        .waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .copied()
        .collect();
    for peer in peers {
        state.fail_waiters(&peer, || {
            ConnectError::Start(peernet_proto::ConnectError::ShuttingDown)
        });
    }
    let reconnects = std::mem::take(
        &mut *state
            .reconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    for event in reconnects.into_values() {
        event.notify(usize::MAX);
    }
    crate::book_save::pending_now(shared)
}

/// For [`Node::call`], under the core's lock, after `NotConnected`: a
/// wake-up for when `peer` connects (or is unpaired, or no longer kept,
/// or the node shuts down), if the call should wait for `peer` to be
/// reconnected.
pub(crate) fn reconnect_wait<R: Runtime>(
    shared: &Shared<R>,
    inner: &Inner,
    peer: &PeerId,
) -> Option<EventListener> {
    let state = &shared.dialing;
    (state.wait_for_reconnect.load(Ordering::Relaxed) && inner.ep.is_kept(peer)).then(|| {
        let mut reconnects = state
            .reconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reconnects.entry(*peer).or_default().listen()
    })
}

impl<R: Runtime> Node<R> {
    /// Records `addr` as an address of the trusted `peer`, learned from
    /// `source`. A kept peer waiting for an address is dialed at once.
    /// Returns whether the book changed (a new address, or a better
    /// source for a known one); a change is saved to the data directory,
    /// if there is one. A node already closed (shut down, or its last
    /// handle dropped) records nothing: `Ok(false)`.
    ///
    /// # Errors
    ///
    /// [`BookError::NotTrusted`] for a peer not paired (addresses are
    /// kept only for trusted peers); [`BookError::Full`] when the peer
    /// has `max_addresses_per_peer` better ones, or the book is full;
    /// [`BookError::Undialable`] for an address no dial can reach (port
    /// 0, an unspecified, multicast or broadcast IP, a link-local IPv6
    /// address without its scope: [`peernet_proto::is_dialable`]).
    ///
    /// A ticket's address ([`AddrSource::Ticket`]) on this host or its
    /// link (loopback, IPv4 link-local: [`crate::ticket::is_local`]) is
    /// recorded with a warning: dials of the peer go to a service of this
    /// host (see [`Ticket`](crate::Ticket)).
    pub fn add_address(
        &self,
        peer: PeerId,
        addr: SocketAddr,
        source: AddrSource,
    ) -> Result<bool, BookError> {
        let added = self.shared.with_core(|inner, now| {
            // (nothing would dial it, nor save it)
            if inner.phase == Phase::Closed {
                return Ok(false);
            }
            inner.ep.add_address(now, peer, addr, source)
        });
        if added == Ok(true) && source == AddrSource::Ticket && crate::ticket::is_local(&addr) {
            tracing::warn!(
                %peer,
                %addr,
                "a ticket's address is on this host or its link (loopback or link-local): dials \
                 of the peer go to this host's service there; pair such a ticket only from whom \
                 you trust to name it"
            );
        }
        added
    }

    /// Forgets `addr` for `peer`. Returns false if it was not known.
    pub fn remove_address(&self, peer: &PeerId, addr: SocketAddr) -> bool {
        self.shared
            .with_core(|inner, _| inner.ep.remove_address(peer, addr))
    }

    /// The addresses of `peer`, best (first dialed) first.
    pub fn addresses(&self, peer: &PeerId) -> Vec<AddrEntry> {
        self.shared
            .read(|inner| inner.ep.addresses(peer).copied().collect())
    }

    /// Dials `peer` through the address book: its addresses one at a time,
    /// best first, each after the one before failed (the transport within
    /// `DialConfig::dial_timeout`, then the handshake). Resolves when it is
    /// connected (at once if it already is), or with
    /// [`ConnectError::Unreachable`] when every address of the round
    /// failed. Like a redial, the round dials every address the
    /// application or a ticket gave and every hint that worked, but at
    /// most [`HINTS_PER_ROUND`](peernet_proto::dial::HINTS_PER_ROUND) (2)
    /// discovery hints that never worked: the others wait for the next
    /// call or redial, in turn, so a LAN host announcing false hints gets
    /// no more dials out of a caller that retries.
    ///
    /// `timeout` bounds the wait, as [`Node::call`]'s does (`None`: no
    /// bound but the round's own, each address within
    /// `DialConfig::dial_timeout` then the handshake's; a round over many
    /// addresses may take their sum). A wait that times out stops this
    /// caller alone: the round goes on, and a connection it makes later
    /// is kept.
    ///
    /// # Errors
    ///
    /// Also [`ConnectError::Start`] with the core's reason: the peer is
    /// not trusted, has no address (`NoAddress`), or the node shuts down;
    /// and [`ConnectError::Timeout`] when `timeout` passed first.
    pub async fn connect_peer(
        &self,
        peer: PeerId,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<PeerId, ConnectError> {
        let timeout = timeout.into();
        let deadline = timeout.map(|t| self.shared.rt.now() + t);
        let closed = self.shared.closed.listen();
        let waiting = self.shared.with_core(|inner, now| {
            if inner.ep.is_connected(&peer) {
                return Ok(None);
            }
            inner.ep.dial(now, peer)?;
            let (tx, rx) = oneshot::channel();
            let state = &self.shared.dialing;
            let mut waiters = state.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            let list = waiters.entry(peer).or_default();
            // (callers that gave up, e.g. on a timeout of their own, go
            // now: a round's waiters are those still waiting, not every
            // caller since it began)
            list.retain(|tx| !tx.is_closed());
            list.push(tx);
            Ok::<_, ConnectError>(Some(rx))
        })?;
        let Some(rx) = waiting else {
            return Ok(peer);
        };
        let mut outcome = None;
        let mut timed_out = false;
        let expiry = async {
            match deadline {
                Some(at) => self.shared.rt.sleep_until(at).await,
                None => std::future::pending().await,
            }
            timed_out = true;
        };
        first(async { outcome = Some(rx.await) }, first(closed, expiry)).await;
        match outcome {
            Some(Ok(Ok(()))) => Ok(peer),
            Some(Ok(Err(error))) => Err(error),
            None if timed_out => Err(ConnectError::Timeout(timeout.unwrap_or_default())),
            // the node closed
            _ => Err(ConnectError::Start(
                peernet_proto::ConnectError::ShuttingDown,
            )),
        }
    }

    /// Keeps `peer` connected (`keep`), or stops doing so: while kept, the
    /// node dials it through the address book when it is not connected,
    /// and after every loss redials it with exponential backoff and jitter
    /// (the first redial 0.1–1 s after the loss, each next delay at least
    /// 1.5× the one before, never above 30 s; reset once a connection has
    /// lived 10 s: `Config::dial`), announcing each redial with
    /// [`NodeEvent::Reconnecting`]. A peer connected in either direction is
    /// never dialed, so two nodes that keep each other converge on one
    /// connection. Unpairing the peer or shutting down stops it at once.
    ///
    /// Every loss counts, [`Node::disconnect`] included: to close the
    /// connection of a kept peer for good, call `keep_connected(peer,
    /// false)` first. A kept peer that refuses us (it unpaired us: each
    /// dial ends in a [`NodeEvent::HandshakeFailed`]) is redialed at the
    /// backoff's longest delay for as long as it is kept; the node does
    /// not give up on its own.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Start`]: the peer is not trusted, or the node shuts
    /// down.
    pub fn keep_connected(&self, peer: PeerId, keep: bool) -> Result<(), ConnectError> {
        self.shared
            .with_core(|inner, now| inner.ep.keep_connected(now, peer, keep))?;
        if !keep {
            // calls waiting for its reconnect stop waiting
            self.shared.dialing.wake_reconnect(&peer);
        }
        Ok(())
    }

    /// Whether `peer` is kept connected.
    pub fn is_kept(&self, peer: &PeerId) -> bool {
        self.shared.read(|inner| inner.ep.is_kept(peer))
    }

    /// The application's `connect(peer, addr)` succeeded: the address is
    /// recorded (and saved) as one that worked, the most recently of the
    /// peer's (`Endpoint::add_connected_address`): it was recorded as
    /// never tried, behind older addresses that had worked, and not at
    /// all when they held every place of the peer. An unspecified address (`0.0.0.0:PORT`,
    /// `[::]:PORT`, what a listener bound to every interface reports as
    /// its own) that opened a connection reached this host's loopback,
    /// which Linux dials for it: that address is recorded, the book
    /// refusing the unspecified one (nothing was recorded, and a kept
    /// peer had no address to redial).
    pub(crate) fn learned(&self, peer: PeerId, addr: SocketAddr) {
        let addr = match peernet_proto::book::canonical(addr) {
            SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, v4.port()))
            }
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6.port()))
            }
            addr => addr,
        };
        let added = self.shared.with_core(|inner, now| {
            // (nothing would dial it, nor save it)
            if inner.phase == Phase::Closed {
                return Ok(false);
            }
            inner
                .ep
                .add_connected_address(now, peer, addr, AddrSource::Application)
        });
        if let Err(error) = added {
            tracing::debug!(%peer, %addr, %error, "address not recorded");
        }
    }
}
