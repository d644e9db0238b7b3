//! The calls a drain found to run and a CANCEL in the same read took
//! back before they started (`drain.rs`).

use std::collections::HashMap;

use peernet_proto::InboundCallId;

use super::drain::Work;

/// Where each `Work::Call` of a drain waits in the work list, so that a
/// CANCEL of a call not started yet finds it at once. The peer chooses
/// how many calls one read brings (up to
/// [`DRAIN_BATCH`](super::drain::DRAIN_BATCH) waiting in the list) and
/// which of them it cancels in the same read: a search of the whole list
/// per CANCEL (a `retain`, which also moved every item behind the one it
/// took out) made a thousand CALLs followed by their CANCELs cost the
/// node 7 to 12 times what the same envelopes cost in groups of ten
/// (50,000 of each: 200 to 237 ms against 17 to 34 ms), for handlers that
/// never ran (review s46). A short list is still searched (at most
/// [`SEARCHED_UP_TO`] items a CANCEL); a longer one is indexed, by a hash
/// map with random keys (the request ids in its keys are the peer's to
/// choose) built by one pass at the first CANCEL that needs it.
#[derive(Default)]
pub(super) struct Unstarted {
    at: Option<HashMap<InboundCallId, usize>>,
    /// Calls cancelled while `at` was in use, left in the list as
    /// `Work::Cancelled` (removing one would move those behind it): once
    /// they are half of it, the list is closed up and `at` dropped, so a
    /// CANCEL costs O(1) on average and the list holds at most twice the
    /// items it otherwise would.
    dead: usize,
}

/// The longest work list a CANCEL searches rather than indexes.
const SEARCHED_UP_TO: usize = 64;

impl Unstarted {
    /// `work`'s last item is a `Work::Call` for `id`, just pushed.
    pub(super) fn pushed(&mut self, id: InboundCallId, work: &[Work]) {
        if let Some(at) = &mut self.at {
            at.insert(id, work.len() - 1);
        }
    }

    /// Items of `work` that are not holes left by a cancelled call.
    pub(super) fn live(&self, work: &[Work]) -> usize {
        work.len() - self.dead
    }

    /// Takes the call `id` out of `work` if it waits there, not started;
    /// whether it did. (The handler clone it drops is never the last: the
    /// table holds one, and nothing can unexpose under this lock.)
    pub(super) fn cancel(&mut self, id: InboundCallId, work: &mut Vec<Work>) -> bool {
        let is_it = |w: &Work| matches!(w, Work::Call(call, _) if call.id == id);
        if self.at.is_none() && work.len() <= SEARCHED_UP_TO {
            return match work.iter().position(is_it) {
                Some(i) => {
                    work.remove(i);
                    true
                }
                None => false,
            };
        }
        let at = self.at.get_or_insert_with(|| {
            let calls = work.iter().enumerate();
            calls
                .filter_map(|(i, w)| match w {
                    Work::Call(call, _) => Some((call.id, i)),
                    _ => None,
                })
                .collect()
        });
        let Some(i) = at.remove(&id) else {
            return false;
        };
        work[i] = Work::Cancelled;
        self.dead += 1;
        if 2 * self.dead > work.len() {
            work.retain(|w| !matches!(w, Work::Cancelled));
            self.dead = 0;
            self.at = None;
        }
        true
    }
}
