//! Turns in the order they were asked for: work that runs one piece at a
//! time, as tasks of its own (so that a caller that stops waiting cannot
//! cut it in half), yet in the order its callers asked, whatever order
//! the runtime starts those tasks in.
//!
//! Trust changes take their turns here (`node/trust.rs`): a `pair` asked
//! for after an `unpair` of the same peer (its future given up, say)
//! could otherwise be made first, and the earlier `unpair` then undo it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use event_listener::Event;

/// A queue of turns: each is taken in the caller's order
/// ([`Turns::take`]) and waits for the ones before it to end.
#[derive(Default)]
pub(crate) struct Turns {
    state: Mutex<State>,
    /// A turn ended: the next may be due.
    ended: Event,
}

#[derive(Default)]
struct State {
    /// The number the next turn taken gets.
    next: u64,
    /// The turn whose time it is.
    now: u64,
    /// Turns that ended before their time (their task was dropped while
    /// it waited): skipped when it comes. At most the turns taken and
    /// not ended.
    ended_early: BTreeSet<u64>,
}

/// One turn: ends when dropped, whether it ran or not.
pub(crate) struct Turn {
    turns: Arc<Turns>,
    number: u64,
}

impl Turns {
    /// The next turn, after every one taken before.
    pub(crate) fn take(self: &Arc<Self>) -> Turn {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let number = state.next;
        state.next += 1;
        Turn {
            turns: self.clone(),
            number,
        }
    }

    fn is_now(&self, number: u64) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).now == number
    }
}

impl Turn {
    /// Its place in the queue: a turn taken later has a larger number.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Waits until every turn taken before this one has ended.
    pub(crate) async fn wait(&self) {
        loop {
            if self.turns.is_now(self.number) {
                return;
            }
            let ended = self.turns.ended.listen();
            if self.turns.is_now(self.number) {
                return;
            }
            ended.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut guard = self.turns.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        if state.now != self.number {
            state.ended_early.insert(self.number);
            return;
        }
        state.now += 1;
        while state.ended_early.remove(&state.now) {
            state.now += 1;
        }
        drop(guard);
        self.turns.ended.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// Turns run in the order taken, and one dropped before its time is
    /// skipped when it comes.
    #[test]
    fn turns_come_in_the_order_taken() {
        let turns = Arc::new(Turns::default());
        let (first, second, third) = (turns.take(), turns.take(), turns.take());
        assert!(third.wait().now_or_never().is_none(), "two before it");
        assert!(second.wait().now_or_never().is_none(), "one before it");
        drop(second);
        assert!(first.wait().now_or_never().is_some());
        assert!(third.wait().now_or_never().is_none(), "the first runs");
        drop(first);
        assert!(
            third.wait().now_or_never().is_some(),
            "the second, dropped, is skipped"
        );
        drop(third);
        let fourth = turns.take();
        assert!(fourth.wait().now_or_never().is_some());
    }
}
