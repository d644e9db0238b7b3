//! Saving the address book to the data directory: debounced after each
//! change (the drain pushes `Work::SaveBook` whenever the core's book
//! revision moves), at shutdown and close if one is owed, and again after
//! a failure, with a back-off, whether or not anything changes meanwhile.
//! A file edited by hand meanwhile is read again and its edit kept
//! (`book_edits.rs`); one that no longer loads is never written over.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use peernet_proto::TrustList;

use crate::book_edits::HandEdits;
use crate::book_file::SavedBook;
use crate::dirlock::NodeLock;
use crate::error::ErrorChain;
use crate::persist::ChangedOnDisk;
use crate::runtime::Runtime;
use crate::shared::{Phase, Shared};
use crate::tasks::first;
use crate::text::shown_path;

/// How long after a change of the address book it is saved.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(250);

/// The most saves owed to changes in any [`SAVE_WINDOW`]; past them, the
/// next waits until the oldest is that old. A LAN host announcing ever
/// new addresses for a trusted peer changes the book at will (each hint
/// new or forgotten): the debounce alone let it make the node write the
/// file, two fsyncs each, four times a second for as long as it went on
/// (flash storage wears). The shutdown and the close still save at once.
const SAVE_BURST: usize = 16;
const SAVE_WINDOW: Duration = Duration::from_secs(60);

/// The wait before a failed save is tried again, doubled for each failure
/// in a row up to [`RETRY_MAX`]: a full or read-only disk costs a warning
/// a few minutes, not a write every change.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The saves' state, in [`Shared`].
#[derive(Default)]
pub(crate) struct Saves {
    /// A save is owed: scheduled (debounced, or a retry), or due at the
    /// shutdown or close.
    pending: AtomicBool,
    /// Failed saves in a row.
    failures: AtomicU32,
    /// The saved addresses of peers the data directory trusts and this
    /// run does not (`NodeConfig::trust` left them out): written back
    /// with every save, given back to the core if the peer is paired
    /// during the run, and dropped if it is unpaired.
    aside: std::sync::Mutex<SavedBook>,
    /// The peers whose lines an operator changed in the book file during
    /// this run: written as the operator left them.
    hand: std::sync::Mutex<HandEdits>,
    /// When the last saves owed to changes were due, at most
    /// [`SAVE_BURST`], oldest first.
    recent: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
}

impl Saves {
    /// The saved addresses set aside (see the field).
    pub(crate) fn aside(&self) -> std::sync::MutexGuard<'_, SavedBook> {
        self.aside
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The wait before a save owed to a change made `now`: the debounce,
    /// or longer, once [`SAVE_BURST`] of them were due in the last
    /// [`SAVE_WINDOW`]. The save is counted as due then.
    fn wait_for_slot(&self, now: std::time::Instant) -> Duration {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut due = now + SAVE_DEBOUNCE;
        if recent.len() >= SAVE_BURST {
            if let Some(oldest) = recent.pop_front() {
                due = due.max(oldest + SAVE_WINDOW);
            }
        }
        recent.push_back(due);
        due.saturating_duration_since(now)
    }

    /// The operator's edits of the book file (see the field).
    pub(crate) fn hand(&self) -> std::sync::MutexGuard<'_, HandEdits> {
        self.hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The wait after the `failures`-th failed save in a row (1 s, 2 s, 4 s,
/// … 300 s).
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// Saves the book soon (debounced, and at most [`SAVE_BURST`] such saves
/// a [`SAVE_WINDOW`]), if the node has a data directory it may write: for
/// `Work::SaveBook`. Nothing more is scheduled while a save is owed (it
/// writes the book as it is then). A directory locked without write
/// access saves nothing (the node said so once, at its start), rather
/// than warn of a failed save and retry it, for as long as the node runs.
pub(crate) fn schedule<R: Runtime>(shared: &Arc<Shared<R>>) {
    let Some(dir) = &shared.data_dir else { return };
    if dir.read_only().is_some() || shared.book_saves.pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let wait = shared.book_saves.wait_for_slot(shared.rt.now());
    save_after(shared.clone(), wait);
}

/// Saves after `delay` what is owed, unless the node closes first: a
/// retry that sleeps for minutes must not keep the node's state alive.
/// (The shutdown writes what is owed itself, and the close what is still
/// owed then.)
fn save_after<R: Runtime>(shared: Arc<Shared<R>>, delay: Duration) {
    let sleep = shared.rt.sleep_until(shared.after(delay));
    let rt = shared.rt.clone();
    rt.spawn(async move {
        // (`closed` wakes every listener; a `WakeFlag` such as
        // `stop_accepting` wakes one task, the accept loop's)
        let closed = shared.closed.listen();
        if shared.read(|inner| inner.phase == Phase::Closed) || !first(sleep, closed).await {
            return;
        }
        // The lock first (none once the node closed: nothing is written
        // after that), then what is owed: taken the other way round, a
        // close between the two found nothing owed and this task no lock,
        // and the save was lost. Now either this task holds the lock
        // while it writes, or the close finds the save owed.
        let Some(lock) = shared.dir_lock() else {
            return;
        };
        if shared.book_saves.pending.swap(false, Ordering::AcqRel) {
            save_now(shared, lock).await;
        }
    });
}

/// The node shuts down: the save owed, if any, for the shutdown to wait
/// on (within its grace).
pub(crate) fn pending_now<R: Runtime>(
    shared: &Arc<Shared<R>>,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let lock = shared.dir_lock()?;
    let saves = &shared.book_saves;
    saves
        .pending
        .swap(false, Ordering::AcqRel)
        .then(|| save_now(shared.clone(), lock))
}

/// The node closes with `lock` taken from it: a save still owed (the node
/// was dropped without `shutdown`, or a change came during the shutdown)
/// is written now, by a task that holds the lock until the write is done;
/// otherwise the lock goes here.
pub(crate) fn at_close<R: Runtime>(shared: &Arc<Shared<R>>, lock: Option<Arc<NodeLock>>) {
    let Some(lock) = lock else { return };
    if shared.book_saves.pending.swap(false, Ordering::AcqRel) {
        shared.rt.spawn(save_now(shared.clone(), lock));
    }
}

/// Writes the book of every trusted peer to the data directory, and the
/// saved addresses of the peers the directory trusts that this run left
/// out, on the runtime's blocking pool, holding the directory's `lock`
/// until done. A file edited by hand since the node last read or wrote it
/// is read again (the trust file too: the directory's list becomes the
/// file's), and the save is made again with the operator's lines of the
/// peers the edit changed (`book_edits.rs`); a file that does not load
/// is left alone. A failure owes a save again, tried after the back-off.
async fn save_now<R: Runtime>(shared: Arc<Shared<R>>, lock: Arc<NodeLock>) {
    let Some(dir) = shared.data_dir.clone() else {
        return;
    };
    // Serialised with trust-list saves; the directory's own trust list.
    let mut saved_trust = shared.persist.lock().await;
    let mut reread = false;
    let saved = loop {
        let book = book_to_save(&shared, &saved_trust);
        let addresses = book.len();
        let (to, held) = (dir.clone(), lock.clone());
        let save = move || {
            let saved = to.save_book(&book);
            drop(held);
            saved
        };
        match shared.rt.spawn_blocking(save).await {
            // (once: a file edited again in the millisecond between the
            // reading and the writing waits for the retry)
            Err(e) if ChangedOnDisk::is(&e) && !reread => reread = true,
            saved => break saved.map(|()| addresses),
        }
        // The book as it is now, and the trust file too (an operator may
        // add a peer to both for the next start: the book keeps its lines;
        // a trust file that does not load counts as unchanged). The edit
        // is taken in with the reading, so that a save dropped once it
        // has read (a shutdown's grace ran out) has not noted the file as
        // seen without taking its edit in.
        // (an entry of the node itself left out, as at its start and its
        // trust changes: `DataDir::load_trust_of`)
        let (from, held, node) = (dir.clone(), lock.clone(), shared.clone());
        let (known, own) = (saved_trust.clone(), shared.read(|inner| inner.ep.peer_id()));
        let read = move || {
            // (a trust file removed while the node runs is not an
            // empty list: it counts as unchanged too)
            let trust = from.load_trust_again(&own).unwrap_or(known);
            let read = from.reread_book().map(|(before, now)| {
                // (the hand's lock, then the core's: as `book_to_save`)
                let mut hand = node.book_saves.hand();
                let edit = match now {
                    // (deleted: a fresh file, of the node's lines alone)
                    None => Reread::Deleted(hand.clear()),
                    Some(now) => Reread::Edited(node.read(|inner| {
                        let saved = |p: &_| inner.ep.trust().contains(p) || trust.contains(p);
                        hand.take_in(&before, &now, saved)
                    })),
                };
                (edit, trust)
            });
            drop(held);
            read
        };
        match shared.rt.spawn_blocking(read).await {
            Ok((edit, trust)) => {
                *saved_trust = trust;
                let path = dir.book_path();
                let file = shown_path(&path);
                match edit {
                    Reread::Edited(peers) => tracing::info!(
                        %file,
                        peers,
                        "the address book was edited while the node runs: the edited peers' \
                         lines are kept as they are in the file (restart the node to load them)"
                    ),
                    Reread::Deleted(edited_before) => tracing::info!(
                        %file,
                        edited_before,
                        "the address book was deleted while the node runs: a fresh one is \
                         written with the addresses the node holds (to start from none, delete \
                         it while the node is stopped)"
                    ),
                }
            }
            Err(e) => break Err(e),
        }
    };
    drop(lock);
    let saves = &shared.book_saves;
    match saved {
        Ok(addresses) => {
            saves.failures.store(0, Ordering::Release);
            tracing::debug!(addresses, "address book saved");
        }
        Err(error) => {
            let failures = saves
                .failures
                .fetch_add(1, Ordering::AcqRel)
                .saturating_add(1);
            let retry_in = retry_delay(failures);
            let error = ErrorChain(&error);
            tracing::warn!(%error, failures, ?retry_in, "address book not saved");
            if !saves.pending.swap(true, Ordering::AcqRel) {
                save_after(shared.clone(), retry_in);
            }
        }
    }
}

/// What a save that found the book file changed read of it.
enum Reread {
    /// Edited: how many peers' lines are the operator's from this edit.
    Edited(usize),
    /// Deleted: how many peers' lines had been the operator's (earlier
    /// edits of this run), the node's again.
    Deleted(usize),
}

/// The book to save: every trusted peer's addresses as the core holds
/// them, the saved addresses set aside of the peers the directory
/// trusts (`saved_trust`) that this run left out, and for each of these
/// peers whose lines an operator changed in the file, those lines.
fn book_to_save<R: Runtime>(shared: &Shared<R>, saved_trust: &TrustList) -> SavedBook {
    let aside = shared.book_saves.aside().clone();
    let hand = shared.book_saves.hand();
    shared.read(|inner| {
        let mut book = SavedBook::new();
        let mut wanted = 0;
        // (left out of this run, still in the directory's list)
        let left_out = saved_trust
            .iter()
            .map(|(p, _)| p)
            .filter(|p| !inner.ep.trust().contains(p));
        for peer in left_out {
            wanted += match hand.covers(peer) {
                true => hand.write(&mut book, peer),
                false => {
                    book.copy_peer(&aside, peer);
                    aside.get(peer).len()
                }
            };
        }
        for (peer, _) in inner.ep.trust().iter() {
            if hand.covers(peer) {
                wanted += hand.write(&mut book, peer);
                continue;
            }
            wanted += inner.ep.addresses(peer).count();
            book.set(*peer, inner.ep.addresses(peer).map(|e| (e.addr, e.source)));
            for e in inner.ep.addresses(peer) {
                book.mark(peer, e.addr, e.history());
            }
        }
        if book.len() < wanted {
            // (Config::max_addresses above what a book file holds)
            let dropped = wanted - book.len();
            tracing::warn!(dropped, "addresses over the book file's bound not saved");
        }
        book
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saves owed to changes: the debounce for the first
    /// [`SAVE_BURST`], then one each time the oldest of the last
    /// [`SAVE_BURST`] is [`SAVE_WINDOW`] old.
    #[test]
    fn saves_owed_to_changes_are_bounded_a_window() {
        let saves = Saves::default();
        let start = std::time::Instant::now();
        for _ in 0..SAVE_BURST {
            assert_eq!(saves.wait_for_slot(start), SAVE_DEBOUNCE);
        }
        let late = start + Duration::from_secs(1);
        assert_eq!(
            saves.wait_for_slot(late),
            SAVE_WINDOW + SAVE_DEBOUNCE - Duration::from_secs(1)
        );
        assert_eq!(
            saves.wait_for_slot(late),
            SAVE_WINDOW + SAVE_DEBOUNCE - Duration::from_secs(1)
        );
        // once the window has passed, the debounce again
        let later = start + SAVE_WINDOW * 3;
        assert_eq!(saves.wait_for_slot(later), SAVE_DEBOUNCE);
    }

    #[test]
    fn retries_back_off_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 9, 10, u32::MAX]
            .into_iter()
            .map(|n| retry_delay(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 256, 300, 300]);
    }
}
