//! The simulations' agenda: what happens next, in virtual time.

use std::collections::BTreeMap;

/// Events of type `E` by their virtual time (ns); events at one time
/// come out in the order they were pushed.
pub(crate) struct Agenda<E> {
    queue: BTreeMap<(u64, u64), E>,
    seq: u64,
}

impl<E> Agenda<E> {
    /// An empty agenda.
    pub(crate) fn new() -> Self {
        Agenda {
            queue: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Puts `ev` at `at`, after every event already there.
    pub(crate) fn push(&mut self, at: u64, ev: E) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Takes the first event and its time, if that is `end` or earlier.
    pub(crate) fn pop_until(&mut self, end: u64) -> Option<(u64, E)> {
        match self.queue.first_key_value() {
            Some((&(at, _), _)) if at <= end => {}
            _ => return None,
        }
        self.queue.pop_first().map(|((at, _), ev)| (at, ev))
    }

    /// How many events wait.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
