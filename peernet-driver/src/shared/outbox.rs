//! The node's events on their way to the subscribers: published under the
//! node's lock into a queue ([`Inner::publish`]), sent from it after the
//! lock is let go ([`Shared::send_events`]), in the order published.
//!
//! A send wakes the subscriber's task, whose waker is the application's
//! (see `wake.rs`): it must not run under the lock. Sent after it, two
//! passes through the door that each published an event could send them
//! in either order (a `Disconnected` before its `Connected`); so the
//! events wait in one queue, in the order the lock saw them, and one
//! thread at a time sends from it (whoever finds the queue's token free),
//! until it is empty. A waker that calls back into the node and publishes
//! finds the token taken by its own thread: the event waits, and the loop
//! up its stack sends it next.
//!
//! The queue is bounded ([`MAX_QUEUED_EVENTS`]): a waker that never
//! returns keeps the token, and the events peers cause (an untrusted
//! dialer's failed handshakes) would pile up behind it for good.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::events::NodeEvent;
use crate::runtime::Runtime;

use super::wake::Wake;
use super::{Inner, Shared};

/// A subscriber's end of its event stream.
pub(crate) type Subscriber = async_channel::Sender<NodeEvent>;

/// The most events the node holds published and not yet sent; one
/// published beyond is dropped, as if every subscriber lagged (counted in
/// [`NodeStats::dropped_events`](crate::NodeStats::dropped_events)).
///
/// The queue is empty but for a moment while events flow: whoever
/// publishes sends what it published once the lock is let go, each send
/// a `try_send` that never waits, so the queue holds what one pass
/// through the node's lock published (at most about a drain's batch,
/// `DRAIN_BATCH`, 1,024) and what other threads publish meanwhile. It
/// fills only behind a send that does not return: a subscriber's waker
/// that blocks, or never ends, keeps the token, and then every event
/// after it would wait here for good.
///
/// In bytes: an entry is a [`NodeEvent`] and a shared reference to the
/// subscribers of its time, 120 bytes (`entry_size` in the tests), so a
/// full queue takes 480 KiB. An event's own heap is nothing for a failed
/// handshake or a `Connected`, at most 256 bytes for a `Disconnected` (a
/// peer's GOODBYE reason, cut at [`CloseReason::MAX_PEER_REASON`]), and
/// a round's addresses for an `Unreachable` (the node's own dials): at
/// worst about 1.5 MiB, however many events come. Unbounded, every event
/// a peer caused while the token was held stayed, with its own copy of
/// the subscriber list (128 bytes and an allocation of 8 per
/// subscriber), for good.
///
/// [`CloseReason::MAX_PEER_REASON`]: peernet_proto::CloseReason::MAX_PEER_REASON
pub const MAX_QUEUED_EVENTS: usize = 4096;

/// Events published and not yet sent, each with the subscribers there
/// were when it was published (those that subscribe later do not get it;
/// a stream ends once the node dropped it and its last event went).
pub(crate) type Outbox = VecDeque<(NodeEvent, Arc<[Subscriber]>)>;

/// The subscribers' ends, as one list shared by every event queued while
/// it stays the same: an event holds a reference to it (16 bytes and a
/// count), where it held a copy (a vector of 24 bytes, an allocation of
/// 8 bytes per subscriber, and a count raised per subscriber).
pub(crate) struct Subscribers(Arc<[Subscriber]>);

impl Default for Subscribers {
    fn default() -> Self {
        Subscribers(Arc::new([]))
    }
}

impl Subscribers {
    /// How many subscriptions the node holds a queue for.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a subscriber (and lets go of those dropped: each holds a
    /// queue of `events_capacity` slots, and a quiet node may see no
    /// event for a long time).
    pub(crate) fn add(&mut self, tx: Subscriber) {
        let live = self.0.iter().filter(|tx| !tx.is_closed()).cloned();
        self.0 = live.chain([tx]).collect();
    }

    /// The subscribers now, those dropped since let go; `None` if none.
    fn live(&mut self) -> Option<Arc<[Subscriber]>> {
        if self.0.iter().any(|tx| tx.is_closed()) {
            self.0 = self
                .0
                .iter()
                .filter(|tx| !tx.is_closed())
                .cloned()
                .collect();
        }
        (!self.0.is_empty()).then(|| self.0.clone())
    }

    /// Takes every subscriber away (the node closed): drop them once the
    /// lock is let go, so that the streams end.
    pub(crate) fn take(&mut self) -> Arc<[Subscriber]> {
        std::mem::take(self).0
    }
}

/// Events subscribers missed: the driver's `dropped_events` counter,
/// counted under the lock (the queue full) and after it (a subscriber
/// lagging).
#[derive(Default)]
pub(crate) struct DroppedEvents(AtomicU64);

impl DroppedEvents {
    /// Events missed so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts `missed` more; returns the count when it passed a power of
    /// two (the 1st, 2nd, 4th, 8th... drop), to be logged then only:
    /// peers can cause events (an untrusted dialer's failed handshakes),
    /// and a line per event would let them flood a slow sink.
    fn count(&self, missed: u64) -> Option<u64> {
        let before = self.0.fetch_add(missed, Ordering::Relaxed);
        let after = before.saturating_add(missed);
        let passed = missed > 0 && (before == 0 || after.ilog2() > before.ilog2());
        passed.then_some(after)
    }
}

impl Inner {
    /// Publishes `event` to the subscribers there are now (under the
    /// lock): queued, and sent once the lock is let go ([`Wake::Events`]);
    /// dropped if [`MAX_QUEUED_EVENTS`] wait already.
    pub(crate) fn publish(&mut self, event: NodeEvent) {
        let Some(subscribers) = self.subscribers.live() else {
            return;
        };
        if self.outbox.len() >= MAX_QUEUED_EVENTS {
            // (missed by each subscriber, as a lag counts it)
            if let Some(dropped) = self.dropped_events.count(subscribers.len() as u64) {
                tracing::warn!(
                    dropped,
                    "the event queue is full (a subscriber's waker does not return?); events dropped"
                );
            }
            return;
        }
        // (one sender of the queue at a time sends it all: a queue that
        // was not empty already has a `Wake::Events` on its way)
        if self.outbox.is_empty() {
            self.wakes.push(Wake::Events);
        }
        self.outbox.push_back((event, subscribers));
    }
}

/// The queue's token, held: let go as it drops, also by a panic that
/// unwinds through the sender (the token kept, no event would ever be
/// sent again).
struct Token<'a>(&'a AtomicBool);

impl<'a> Token<'a> {
    /// Takes the token, unless another turn holds it.
    fn take(flag: &'a AtomicBool) -> Option<Token<'a>> {
        (!flag.swap(true, Ordering::Acquire)).then(|| Token(flag))
    }
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<R: Runtime> Shared<R> {
    /// Sends the events published, in order, with the lock dropped;
    /// returns at once if another turn of this (on another thread, or up
    /// this thread's stack) holds the token: that one sends them.
    pub(crate) fn send_events(&self) {
        loop {
            let Some(token) = Token::take(&self.sending_events) else {
                return;
            };
            loop {
                // (its own statement: the lock is let go before the send)
                let next = self.lock().outbox.pop_front();
                let Some((event, subscribers)) = next else {
                    break;
                };
                self.deliver(event, subscribers);
            }
            drop(token);
            // An event queued after the queue was found empty, by a
            // publisher that found the token still taken, is seen here:
            // the lock orders its push before this look, or this release
            // before its own try of the token, which then succeeds.
            if self.lock().outbox.is_empty() {
                return;
            }
        }
    }

    /// Sends `event` to `subscribers`; one that lags loses it. Each send
    /// may run a subscriber's waker, and the last reference to a list
    /// the node let go of ends the streams as it drops (waking them):
    /// each is contained (`wake.rs`), so that a waker that panics costs
    /// the others nothing, and the queue goes on.
    fn deliver(&self, event: NodeEvent, subscribers: Arc<[Subscriber]>) {
        for tx in subscribers.iter() {
            let sent = self.contain(|| tx.try_send(event.clone()));
            if let Some(Err(async_channel::TrySendError::Full(_))) = sent {
                if let Some(dropped) = self.dropped_events.count(1) {
                    tracing::warn!(dropped, "an event subscriber lags; events dropped");
                }
            }
        }
        self.contain(|| drop(subscribers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::{Config, Direction, Endpoint, Identity, TrustList};

    /// A subscriber's waker that never returns holds the token: here no
    /// thread sends at all. The queue stops at its cap; what is
    /// published beyond is counted, once per subscriber.
    #[test]
    fn a_queue_nobody_sends_stops_at_its_cap() {
        let rng = Box::new(crate::rng::NodeRng::from_seed([5; 32]));
        let me = Identity::from_seed(&[6; 32]);
        let mut inner = Inner::new(Endpoint::new(Config::default(), me, TrustList::new(), rng));
        let (a, _a_rx) = async_channel::bounded(1);
        let (b, _b_rx) = async_channel::bounded(1);
        inner.subscribers.add(a);
        inner.subscribers.add(b);
        let peer = Identity::from_seed(&[7; 32]).peer_id();
        for _ in 0..MAX_QUEUED_EVENTS + 100 {
            inner.publish(NodeEvent::Connected {
                peer,
                direction: Direction::Inbound,
            });
        }
        assert_eq!(inner.outbox.len(), MAX_QUEUED_EVENTS);
        assert_eq!(inner.dropped_events.get(), 200, "100 events, 2 subscribers");
        // (one wake-up for the whole queue)
        assert_eq!(inner.wakes.len(), 1);
        // every event shares the one list
        let (_, first) = &inner.outbox[0];
        let shared = inner.outbox.iter().all(|(_, s)| Arc::ptr_eq(s, first));
        assert!(shared);
        // once sent, the queue takes events again
        inner.outbox.clear();
        inner.publish(NodeEvent::Connected {
            peer,
            direction: Direction::Inbound,
        });
        assert_eq!(inner.outbox.len(), 1);
        assert_eq!(inner.dropped_events.get(), 200);
    }

    /// The bytes of a queued entry the docs of [`MAX_QUEUED_EVENTS`] count.
    #[test]
    fn entry_size() {
        let entry = std::mem::size_of::<(NodeEvent, Arc<[Subscriber]>)>();
        assert_eq!(entry, 120, "update MAX_QUEUED_EVENTS's docs");
    }

    #[test]
    fn drops_are_logged_as_the_count_passes_a_power_of_two() {
        let dropped = DroppedEvents::default();
        let logged: Vec<u64> = (0..20).filter_map(|_| dropped.count(1)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        // (several at once: logged once, past the power of two)
        assert_eq!(dropped.count(13), Some(33));
        assert_eq!(dropped.count(1), None);
        assert_eq!(dropped.count(0), None);
        assert_eq!(dropped.get(), 34);
    }
}
