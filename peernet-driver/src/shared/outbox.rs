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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::events::NodeEvent;
use crate::runtime::Runtime;

use super::wake::Wake;
use super::{Inner, Shared};

/// A subscriber's end of its event stream.
pub(crate) type Subscriber = async_channel::Sender<NodeEvent>;

/// Events published and not yet sent, each with the subscribers there
/// were when it was published (those that subscribe later do not get it;
/// a stream ends once the node dropped it and its last event went).
pub(crate) type Outbox = VecDeque<(NodeEvent, Vec<Subscriber>)>;

impl Inner {
    /// Publishes `event` to the subscribers there are now (under the
    /// lock): queued, and sent once the lock is let go ([`Wake::Events`]).
    pub(crate) fn publish(&mut self, event: NodeEvent) {
        // (those dropped since the last event go)
        self.subscribers.retain(|tx| !tx.is_closed());
        if self.subscribers.is_empty() {
            return;
        }
        // (one sender of the queue at a time sends it all: a queue that
        // was not empty already has a `Wake::Events` on its way)
        if self.outbox.is_empty() {
            self.wakes.push(Wake::Events);
        }
        self.outbox.push_back((event, self.subscribers.clone()));
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
    /// may run a subscriber's waker, and the last of a stream's ends the
    /// node let go of ends the stream as it drops (waking it): each is
    /// contained (`wake.rs`), so that a waker that panics costs the
    /// others nothing, and the queue goes on.
    fn deliver(&self, event: NodeEvent, subscribers: Vec<Subscriber>) {
        for tx in &subscribers {
            let sent = self.contain(|| tx.try_send(event.clone()));
            if let Some(Err(async_channel::TrySendError::Full(_))) = sent {
                // Logged at the 1st, 2nd, 4th, 8th... drop only: peers
                // can cause events (an untrusted dialer's failed
                // handshakes), and a line per event would let them flood
                // a slow sink.
                let dropped = self.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "an event subscriber lags; events dropped");
                }
            }
        }
        self.contain(|| drop(subscribers));
    }
}
