//! Whom the node trusts: `pair`, `unpair` and `trust`, and the one path
//! every trust-list change takes (the data directory's file first, then
//! the core).

use std::io;
use std::sync::Arc;

use peernet_proto::{Label, PeerId, TrustList};

use crate::error::{ErrorChain, StartError, TrustChangeError};
use crate::persist::NotDurable;
use crate::runtime::Runtime;
use crate::shared::{Inner, Phase, Shared};

use super::Node;

impl<R: Runtime> Node<R> {
    /// Trusts `peer` (or relabels it). With a data directory the new list
    /// is written first, atomically, on the runtime's blocking pool (the
    /// write ends with fsyncs); on a write error nothing changes. The
    /// change is made to the trust file as it is then, read again: an
    /// edit made by hand while the node runs is kept (the running node
    /// takes it in at its next start), and a file that no longer parses
    /// is left alone (the change fails, [`TrustChangeError::File`] of
    /// kind [`io::ErrorKind::InvalidData`]). Returns true if `peer` was
    /// not trusted before.
    ///
    /// # Errors
    ///
    /// Nothing changes on [`TrustChangeError::OwnPeerId`] (a node never
    /// trusts itself: nothing is written), [`TrustChangeError::Closed`]
    /// (the node is shut down, or its last handle dropped) and
    /// [`TrustChangeError::File`] (the trust file's errors above). One
    /// error says the change was made: [`TrustChangeError::NotDurable`]
    /// means the file was replaced but its directory could not be
    /// synced: the peer is trusted, in this run and by the file, which a
    /// crash may yet take back. [`TrustChangeError::Dropped`]: the
    /// runtime is shutting down and dropped the change.
    pub async fn pair(&self, peer: PeerId, label: Option<Label>) -> Result<bool, TrustChangeError> {
        if peer == self.peer_id() {
            return Err(TrustChangeError::OwnPeerId(peer));
        }
        let saved = label.clone();
        self.change_trust(
            Commit::OnceSaved,
            move |trust| trust.insert(peer, saved),
            move |inner, _, _| inner.ep.pair(peer, label),
            move |shared| crate::dialing::after_pair(shared, peer),
        )
        .await
    }

    /// Stops trusting `peer`: its connection closes at once with GOODBYE
    /// `revoked`, its calls in flight fail with that reason
    /// ([`CallErrorExt::is_revoked`](crate::CallErrorExt::is_revoked)),
    /// the handlers of its SENDs still running are stopped (their contexts
    /// cancelled), none of its calls and SENDs read before and still
    /// waiting for their handler to start gets one, and its addresses are
    /// forgotten. With a data directory
    /// the new list is then written, atomically, on the runtime's
    /// blocking pool, as for [`Node::pair`] (an edit made by hand
    /// meanwhile is kept). A revocation is never held up by the file: the
    /// peer is revoked in this run before the write starts (a write that
    /// is slow or hangs, or a save of the address book in progress, holds
    /// up only the returned future); if the file cannot be read or
    /// written (damaged, a FIFO, a symbolic link, a full disk), the error
    /// ([`TrustChangeError::RevokedNotSaved`]) says that it still trusts
    /// the peer. [`TrustChangeError::NotDurable`] says the file was
    /// replaced without it, but its directory could not be synced, so a
    /// crash may yet bring it back.
    ///
    /// Returns true if `peer` was trusted by this run or by the data
    /// directory's trust file: a peer the file trusts and this run left
    /// out ([`NodeConfig::trust`](crate::NodeConfig::trust)) is taken out
    /// of the file, and its saved addresses, kept aside during the run,
    /// are dropped from the address book file too (a later `pair` starts
    /// it without them). False: nothing changed. On a node already closed
    /// (shut down, or its last handle dropped) it fails, as [`Node::pair`]
    /// does ([`TrustChangeError::Closed`]), and nothing changes.
    pub async fn unpair(&self, peer: &PeerId) -> Result<bool, TrustChangeError> {
        let peer = *peer;
        let shared = &self.shared;
        // With a data directory the peer is revoked in this run at once,
        // before the file is written: a write that hangs (its own, or a
        // save of the book holding the lock that serialises them) must
        // not keep it connected, trusted and served. It is revoked again
        // once the file is written: a `pair` of the same peer under way
        // meanwhile trusted it again, and the later change wins. (Without
        // a data directory nothing is written: the change below is
        // made at once.)
        let at_once = shared.data_dir.is_some().then(|| {
            let revoked = shared.with_core(|inner, now| {
                (inner.phase != Phase::Closed).then(|| revoke(inner, now, &peer))
            });
            if revoked.is_some() {
                after_unpair(shared, peer);
            }
            revoked == Some(true)
        });
        self.change_trust(
            Commit::Always,
            move |trust| trust.remove(&peer),
            move |inner, now, in_file| {
                revoke(inner, now, &peer) | at_once.unwrap_or(false) | in_file
            },
            move |shared| after_unpair(shared, peer),
        )
        .await
    }

    /// One trust-list change: `edit` on the list as saved (with a data
    /// directory, written by a blocking task, the directory's lock held;
    /// it returns whether it changed that list), then `apply` to the
    /// core (told whether the saved list changed: never without a data
    /// directory), then `after`. Changes are serialised by
    /// an async lock held across the write, so the file and the core
    /// always agree; and each runs as a task of its own, so that a caller
    /// that stops waiting (a timeout, a `select!`) cannot leave the file
    /// changed and the core not. They are made in the order they were
    /// asked for (the first poll of their futures): each takes its turn
    /// as it is called (`turns.rs`) and its task waits for the turns
    /// before it, so a `pair` called after an `unpair` of the same peer
    /// is made after it, whichever task the runtime starts first (it
    /// could be made first, and the `unpair` then undo it). Once the node is closed (shut down, or
    /// its last handle dropped) the change fails and nothing changes, with
    /// a data directory (no longer its own) or without one. A change under
    /// way as the node closes is made or refused whole: without a data
    /// directory, by the core's lock; with one, it is made once the file
    /// has it.
    async fn change_trust<T: Send + 'static>(
        &self,
        commit: Commit,
        edit: impl FnOnce(&mut TrustList) -> bool + Send + 'static,
        apply: impl FnOnce(&mut Inner, peernet_proto::Instant, bool) -> T + Send + 'static,
        after: impl FnOnce(&Arc<Shared<R>>) + Send + 'static,
    ) -> Result<T, TrustChangeError> {
        let shared = self.shared.clone();
        let (tx, rx) = oneshot::channel();
        let turn = self.shared.trust_turns.take();
        self.shared.rt.spawn(async move {
            turn.wait().await;
            let (changed, applied) = change_trust(&shared, commit, edit, apply).await;
            if applied {
                after(&shared);
            }
            drop(turn);
            let _ = tx.send(changed);
        });
        rx.await.unwrap_or(Err(TrustChangeError::Dropped))
    }

    /// The trust list.
    pub fn trust(&self) -> TrustList {
        self.shared.read(|inner| inner.ep.trust().clone())
    }
}

/// Revokes `peer` in the core: its connection closes, its send handlers
/// stop. Whether it was trusted.
fn revoke(inner: &mut Inner, now: peernet_proto::Instant, peer: &PeerId) -> bool {
    if inner.stop_sends_of(peer) {
        tracing::debug!(%peer, "unpaired: its send handlers stopped");
    }
    inner.ep.unpair(now, peer)
}

/// What follows a revocation outside the core's lock: a shutdown waiting
/// for the send handlers just stopped, the callers waiting for `peer`.
fn after_unpair<R: Runtime>(shared: &Arc<Shared<R>>, peer: PeerId) {
    if shared.read(Inner::is_quiet) {
        shared.quiet.notify(usize::MAX);
    }
    crate::dialing::after_unpair(shared, peer);
}

/// When a trust change reaches the running node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Only once the data directory's file has it (`pair`: a peer is
    /// trusted only as the file says, and on a failed write nothing
    /// changes).
    OnceSaved,
    /// Whatever becomes of the file (`unpair`: a revocation is never held
    /// up by a file that cannot be read or written; the error says the
    /// file still trusts the peer).
    Always,
}

/// [`Node::change_trust`]'s task: the result, and whether the change
/// reached the core.
async fn change_trust<R: Runtime, T>(
    shared: &Arc<Shared<R>>,
    commit: Commit,
    edit: impl FnOnce(&mut TrustList) -> bool + Send + 'static,
    apply: impl FnOnce(&mut Inner, peernet_proto::Instant, bool) -> T,
) -> (Result<T, TrustChangeError>, bool) {
    let mut saved = shared.persist.lock().await;
    let mut edited = false;
    let mut failed = None;
    if let Some(dir) = &shared.data_dir {
        // (a closed node's file is no longer its own to write)
        if shared.read(|inner| inner.phase == Phase::Closed) {
            return (Err(TrustChangeError::Closed), false);
        }
        // (taken away as the node closes: it is no longer the node's)
        let Some(lock) = shared.dir_lock() else {
            return (Err(TrustChangeError::Closed), false);
        };
        let (dir, own) = (dir.clone(), shared.read(|inner| inner.ep.peer_id()));
        let was = saved.clone();
        // The change is made to the file's list as it is now, read again:
        // an edit an operator made while the node runs (a peer taken out
        // by hand) is kept, not written over. (The running node does not
        // take the edit in; a restart does.) A peer trusted for this run
        // only is not written.
        let save = move || {
            let result = load_for_change(&dir, &own).and_then(|mut next| {
                if next != was {
                    tracing::info!(
                        "the trust file changed on disk while the node runs: the change is \
                         made to it as it is now (restart the node to take the edit in)"
                    );
                }
                let edited = edit(&mut next);
                // (replaced but not synced: the file has the change, so
                // this run makes it too, and the error says so)
                match dir.save_trust(&next).map_err(NotDurable::take) {
                    Ok(()) => Ok((next, edited, None)),
                    Err(Ok(unsynced)) => Ok((next, edited, Some(unsynced))),
                    Err(Err(e)) => Err(e),
                }
            });
            drop(lock);
            result
        };
        match shared.rt.spawn_blocking(save).await {
            Ok((next, changed, unsynced)) => {
                edited = changed;
                *saved = next;
                if let Some(e) = unsynced {
                    tracing::warn!(error = %ErrorChain(&e), "trust changed; the trust file may not keep it");
                    failed = Some(TrustChangeError::NotDurable(e));
                }
            }
            Err(e) if commit == Commit::Always => {
                tracing::warn!(
                    error = %ErrorChain(&e),
                    "revoked in this run; the trust file was not updated"
                );
                failed = Some(TrustChangeError::RevokedNotSaved(e));
            }
            Err(e) => return (Err(TrustChangeError::File(e)), false),
        }
    }
    // Without a data directory the change is the core's alone: a change
    // to a closed node's tables would be read by nothing, yet said to be
    // made, so it is refused under the same lock as it is made, which no
    // shutdown can come between. With one, the file (what lasts) was
    // written while the node held its directory, so the change was made
    // even if the node closed meanwhile.
    let out = shared.with_core(|inner, now| {
        let refused = inner.phase == Phase::Closed && shared.data_dir.is_none();
        (!refused).then(|| apply(inner, now, edited))
    });
    match out {
        Some(out) => (failed.map_or(Ok(out), Err), true),
        None => (Err(TrustChangeError::Closed), false),
    }
}

/// The data directory's trust list as it is now, for a change: an error
/// that names the file if it cannot be read or parsed (a damaged list is
/// never written over). An entry of the node itself (`own`) is left out.
fn load_for_change(dir: &crate::DataDir, own: &PeerId) -> io::Result<TrustList> {
    dir.load_trust_of(own).map_err(|e| match e {
        StartError::Io(e) => e,
        // (an `io::Error` that names the file as the others do)
        StartError::TrustList(damaged) => damaged.into_io(),
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::Identity;

    /// A save that replaced the trust file but could not sync its
    /// directory is told apart from one that failed: the change is made
    /// (`NotDurable`, with the file it replaced), where it used to be an
    /// `io::Error` a caller had to ask `NotDurable::is` about.
    #[test]
    fn an_unsynced_save_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = crate::DataDir::open(dir.path()).unwrap();
        let mut trust = TrustList::new();
        trust.insert(Identity::from_seed(&[7; 32]).peer_id(), None);
        crate::persist::FAIL_SYNC_DIR.set(true);
        let err = data.save_trust(&trust).unwrap_err();
        let err = TrustChangeError::from(NotDurable::take(err).unwrap());
        let TrustChangeError::NotDurable(unsynced) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(unsynced.path, dir.path().join("trust"));
        assert!(err.to_string().contains("was replaced"), "{err}");
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.to_string().contains("injected"), "{source}");
        // any other error is given back as it was
        let other = io::Error::new(io::ErrorKind::StorageFull, "full");
        let back = NotDurable::take(other).unwrap_err();
        assert_eq!(back.kind(), io::ErrorKind::StorageFull);
    }
}
