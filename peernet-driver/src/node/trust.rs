//! Whom the node trusts: `pair` (and `pair_ticket`), `unpair` and
//! `trust`, and the one path every trust-list change takes in its turn
//! (the data directory's file first, then the core; an `unpair` revokes
//! in the core at once too).

use std::io;
use std::sync::Arc;

use peernet_proto::{AddrSource, Label, PeerId, TrustList};

use crate::error::{ErrorChain, PairTicketError, StartError, TrustChangeError};
use crate::persist::NotDurable;
use crate::runtime::Runtime;
use crate::shared::{Inner, Phase, Shared};
use crate::ticket::Ticket;
use crate::turns::Turn;

use super::Node;

impl<R: Runtime> Node<R> {
    /// Trusts `peer` (or relabels it). With a data directory the new list
    /// is written first, atomically, on the runtime's blocking pool (the
    /// write ends with fsyncs); on a write error nothing changes. The
    /// change is made to the trust file as it is then, read again: an
    /// edit made by hand while the node runs is kept (the running node
    /// takes it in at its next start), and a file that no longer parses
    /// is left alone (the change fails, [`TrustChangeError::File`] of
    /// kind [`io::ErrorKind::InvalidData`]), as is one removed while the
    /// node runs (of kind [`io::ErrorKind::NotFound`]: neither made anew
    /// with this peer alone, which would lose every other pairing at the
    /// next start, nor written back from the list the node holds, which
    /// would undo a removal meant to revoke; the error says to put the
    /// file back, or restart). Returns true if `peer` was
    /// not trusted before. An [`Node::unpair`] of the same peer asked for
    /// after this `pair` wins, even if this one finishes last: the peer
    /// is not trusted again in this run.
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
    /// runtime is shutting down and dropped the change before it reached
    /// this run, which trusts the peer as it did before the call (the
    /// file may or may not have it).
    pub async fn pair(&self, peer: PeerId, label: Option<Label>) -> Result<bool, TrustChangeError> {
        if peer == self.peer_id() {
            return Err(TrustChangeError::OwnPeerId(peer));
        }
        let turn = self.shared.trust_turns.take();
        self.change_trust(turn, peer, Change::Pair(label)).await
    }

    /// Pairs from a peer's [`Ticket`] in one call: trusts the peer it
    /// names, under `label` ([`Node::pair`]), then records each of its
    /// addresses, in the ticket's order, as learned from a ticket
    /// ([`Node::add_address`] with [`AddrSource::Ticket`]). Returns what
    /// `pair` does: true if the peer was not trusted before.
    ///
    /// It does not connect: dial the peer by PeerId
    /// ([`Node::connect_peer`], or [`Node::keep_connected`]) once it
    /// trusts this node too (its own `pair_ticket` of this node's
    /// [ticket](Node::ticket)); until then its answer is REJECT
    /// `untrusted`. With a data directory the trust and the addresses
    /// are saved, and a later run dials the peer by PeerId alone.
    ///
    /// ```no_run
    /// # async fn demo<R: peernet_driver::Runtime>(
    /// #     alice: peernet_driver::Node<R>,
    /// #     bob: peernet_driver::Node<R>,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// use peernet_driver::{Label, Ticket};
    ///
    /// // Each side hands the other its ticket, as text.
    /// let (alice_text, bob_text) = (alice.ticket()?.to_string(), bob.ticket()?.to_string());
    ///
    /// // Each pairs from the ticket it was given; then either dials.
    /// let bob_ticket: Ticket = bob_text.parse()?;
    /// alice.pair_ticket(&bob_ticket, Some(Label::new("bob")?)).await?;
    /// bob.pair_ticket(&alice_text.parse()?, Some(Label::new("alice")?)).await?;
    /// alice.connect_peer(bob_ticket.peer(), None).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`PairTicketError::Trust`] when trusting the peer failed, with
    /// `pair`'s error (a ticket of this very node, a closed node, a
    /// trust file that could not be written): no address was recorded,
    /// but for [`TrustChangeError::NotDurable`], which means the pairing
    /// and every address were made, the trust file not synced.
    /// [`PairTicketError::Address`] when the peer is trusted but the
    /// address book refused an address ([`Node::add_address`]'s
    /// [`BookError`](peernet_proto::BookError)): those before it were
    /// recorded. [`PairTicketError::is_paired`] tells the two outcomes
    /// apart in one question.
    pub async fn pair_ticket(
        &self,
        ticket: &Ticket,
        label: Option<Label>,
    ) -> Result<bool, PairTicketError> {
        let peer = ticket.peer();
        let (paired, unsynced) = match self.pair(peer, label).await {
            Ok(paired) => (paired, None),
            // (the pairing was made: its addresses are recorded too,
            // and the error said after them)
            Err(TrustChangeError::NotDurable { changed, source }) => (
                changed,
                Some(TrustChangeError::NotDurable { changed, source }),
            ),
            Err(source) => return Err(PairTicketError::Trust { peer, source }),
        };
        for &addr in ticket.addrs() {
            self.add_address(peer, addr, AddrSource::Ticket)
                .map_err(|source| PairTicketError::Address { peer, addr, source })?;
        }
        match unsynced {
            Some(source) => Err(PairTicketError::Trust { peer, source }),
            None => Ok(paired),
        }
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
    /// meanwhile is kept). A trust file removed while the node runs is
    /// not made again: gone, it trusts nobody (the next start trusts no
    /// one from it), and the unpair succeeds, with a warning.
    ///
    /// The revocation in this run is made when the returned future is
    /// first polled, under the node's lock, before anything is awaited:
    /// it is never held up by the file (a write that is slow or hangs, or
    /// a save of the address book in progress, holds up only the
    /// returned future), nor undone by a [`Node::pair`] of the same peer
    /// asked for before. Unless the node was closed by then
    /// ([`TrustChangeError::Closed`], the only error that says nothing
    /// changed), every result says the peer is revoked in this run,
    /// whatever happens next (the node closing, the future dropped, the
    /// runtime shutting down): only a later `pair` trusts it again.
    ///
    /// Returns true if `peer` was trusted by this run or by the data
    /// directory's trust file: a peer the file trusts and this run left
    /// out ([`NodeConfig::trust`](crate::NodeConfig::trust)) is taken out
    /// of the file, and its saved addresses, kept aside during the run,
    /// are dropped from the address book file too (a later `pair` starts
    /// it without them). False: nothing changed.
    ///
    /// # Errors
    ///
    /// [`TrustChangeError::Closed`]: the node was closed (shut down, or
    /// its last handle dropped) when the future was first polled, and
    /// nothing changed. Every other error says the peer is revoked in
    /// this run and what became of the file:
    /// [`TrustChangeError::RevokedNotSaved`] (it still trusts the peer:
    /// it could not be read or written (damaged, a FIFO, a symbolic link,
    /// a full disk), or the node closed before the change's turn to write
    /// it came), [`TrustChangeError::NotDurable`] (replaced without the
    /// peer, but its directory could not be synced, so a crash may yet
    /// bring it back), [`TrustChangeError::Dropped`] (the runtime
    /// dropped the write: the file may or may not have it).
    pub async fn unpair(&self, peer: &PeerId) -> Result<bool, TrustChangeError> {
        let peer = *peer;
        let shared = &self.shared;
        let turn = shared.trust_turns.take();
        // Revoked at once, before its turn: a write that hangs (an earlier
        // change's, or a save of the book holding the lock that serialises
        // them) must not keep it connected, trusted and served. An earlier
        // `pair` of the peer still under way sees the mark and leaves it
        // revoked in this run. Under the same lock as the close, so that
        // the close comes either before (nothing changed) or after.
        let was_trusted = shared.with_core(|inner, now| {
            (inner.phase != Phase::Closed).then(|| {
                inner.revoked_in_turn.insert(peer, (turn.number(), false));
                revoke(inner, now, &peer)
            })
        });
        let Some(was_trusted) = was_trusted else {
            return Err(TrustChangeError::Closed);
        };
        after_unpair(shared, peer);
        self.change_trust(turn, peer, Change::Unpair(was_trusted))
            .await
    }

    /// One trust-list change, in `turn`: the edit of the list as saved
    /// (with a data directory, written by a blocking task, the
    /// directory's lock held), then the change in the core, then what
    /// follows it outside the core's lock. Changes are serialised by an
    /// async lock held across the write, so the file and the core always
    /// agree; and each runs as a task of its own, so that a caller that
    /// stops waiting (a timeout, a `select!`) cannot leave the file
    /// changed and the core not. They are made in the order they were
    /// asked for (the first poll of their futures): each takes its turn
    /// as it is called (`turns.rs`) and its task waits for the turns
    /// before it, so a `pair` called after an `unpair` of the same peer
    /// is made after it, whichever task the runtime starts first (it
    /// could be made first, and the `unpair` then undo it).
    ///
    /// Once the node is closed (shut down, or its last handle dropped) a
    /// `pair` fails and nothing changes, with a data directory (no longer
    /// its own) or without one; an `unpair`, revoked in the run already,
    /// is not written to the file either, and says so. A `pair` under
    /// way as the node closes is made or refused whole: without a data
    /// directory, by the core's lock; with one, it is made once the file
    /// has it.
    ///
    /// The task makes the change in the core and sends its result with
    /// nothing awaited between the two: a task the runtime drops (the
    /// caller's [`TrustChangeError::Dropped`]) has not made a `pair` in
    /// this run (an `unpair` was, at its first poll).
    async fn change_trust(
        &self,
        turn: Turn,
        peer: PeerId,
        change: Change,
    ) -> Result<bool, TrustChangeError> {
        let shared = self.shared.clone();
        let (tx, rx) = oneshot::channel();
        self.shared.rt.spawn(async move {
            turn.wait().await;
            let (changed, after) = change_trust(&shared, turn.number(), peer, change).await;
            if let Some(after) = after {
                after(&shared, peer);
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

/// What follows a change in the run, outside the core's lock.
type After<R> = fn(&Arc<Shared<R>>, PeerId);

/// A trust-list change of one peer.
#[derive(Clone)]
enum Change {
    /// `pair`, with the label: made in the run once the file has it (a
    /// peer is trusted only as the file says; on a failed write nothing
    /// changes).
    Pair(Option<Label>),
    /// `unpair`, made in the run already (at its first poll), whatever
    /// becomes of the file: whether the run trusted the peer then.
    Unpair(bool),
}

impl Change {
    /// Makes the change to a saved list: whether that list changed.
    fn edit(self, trust: &mut TrustList, peer: PeerId) -> bool {
        match self {
            Change::Pair(label) => trust.insert(peer, label),
            Change::Unpair(_) => trust.remove(&peer),
        }
    }

    /// Makes the change in the core, in the turn numbered `number`
    /// (`in_file`: the saved list had the peer and lost it): what `pair`
    /// or `unpair` returns, and whether what follows a change in the run
    /// is due.
    fn apply(
        self,
        inner: &mut Inner,
        now: peernet_proto::Instant,
        (peer, number): (PeerId, u64),
        in_file: bool,
    ) -> (bool, bool) {
        match self {
            Change::Pair(label) => match inner.revoked_in_turn.get_mut(&peer) {
                // An `unpair` asked for after this `pair` revoked the
                // peer while the file was written: the later change wins
                // (and takes the peer out of the file in its turn). The
                // peer was not trusted, and the `unpair` finds it was.
                Some((later, paired)) if *later > number => {
                    *paired = true;
                    (true, false)
                }
                _ => {
                    // (any mark left is of an `unpair` whose turn ended)
                    inner.revoked_in_turn.remove(&peer);
                    (inner.ep.pair(peer, label), true)
                }
            },
            Change::Unpair(was_trusted) => {
                let paired = unmark(inner, (peer, number));
                (
                    revoke(inner, now, &peer) | was_trusted | in_file | paired,
                    true,
                )
            }
        }
    }

    /// What follows the change in the run.
    fn after<R: Runtime>(&self) -> After<R> {
        match self {
            Change::Pair(_) => crate::dialing::after_pair::<R>,
            Change::Unpair(_) => after_unpair::<R>,
        }
    }
}

/// Ends the mark of the `unpair` of `peer` in the turn numbered `number`
/// (unless a later `unpair` of the peer marked it since): whether a
/// `pair` asked for before it was made meanwhile (and so was revoked by
/// it).
fn unmark(inner: &mut Inner, (peer, number): (PeerId, u64)) -> bool {
    match inner.revoked_in_turn.get(&peer) {
        Some(&(turn, paired)) if turn == number => {
            inner.revoked_in_turn.remove(&peer);
            paired
        }
        _ => false,
    }
}

/// Why the file does not have a change made in the run.
enum Unsaved {
    /// Written, but its directory not synced.
    NotDurable(NotDurable),
    /// Not written (`unpair` only): the file's error, or the node closed
    /// before it.
    Not(io::Error),
}

impl Unsaved {
    /// The error of a change made in the run; `changed`: what the
    /// change would have returned.
    fn error(self, changed: bool) -> TrustChangeError {
        match self {
            Unsaved::NotDurable(source) => TrustChangeError::NotDurable { changed, source },
            Unsaved::Not(source) => TrustChangeError::RevokedNotSaved { changed, source },
        }
    }
}

/// What [`Node::change_trust`]'s task does in its turn (numbered
/// `number`): the result, and what follows if the change reached the
/// core.
async fn change_trust<R: Runtime>(
    shared: &Arc<Shared<R>>,
    number: u64,
    peer: PeerId,
    change: Change,
) -> (Result<bool, TrustChangeError>, Option<After<R>>) {
    let mut saved = shared.persist.lock().await;
    let mut in_file = false;
    let mut unsaved = None;
    if let Some(dir) = &shared.data_dir {
        // (a closed node's file is no longer its own to write; its lock
        // is taken away as the node closes)
        let closed = shared.read(|inner| inner.phase == Phase::Closed);
        let Some(lock) = (!closed).then(|| shared.dir_lock()).flatten() else {
            return match change {
                Change::Pair(_) => (Err(TrustChangeError::Closed), None),
                // (revoked in the run already: the error says so)
                Change::Unpair(was_trusted) => {
                    let paired = shared.with_core(|inner, _| unmark(inner, (peer, number)));
                    let closed = io::Error::other("the node closed before the file was written");
                    (Err(Unsaved::Not(closed).error(was_trusted | paired)), None)
                }
            };
        };
        let (dir, own) = (dir.clone(), shared.read(|inner| inner.ep.peer_id()));
        let was = saved.clone();
        let edit = change.clone();
        // The change is made to the file's list as it is now, read again:
        // an edit an operator made while the node runs (a peer taken out
        // by hand) is kept, not written over. (The running node does not
        // take the edit in; a restart does.) A peer trusted for this run
        // only is not written.
        let save = move || {
            let result = save_change(&dir, &own, was, edit, peer);
            drop(lock);
            result
        };
        match shared.rt.spawn_blocking(save).await {
            Ok((next, changed, unsynced)) => {
                in_file = changed;
                *saved = next;
                if let Some(e) = unsynced {
                    tracing::warn!(error = %ErrorChain(&e), "trust changed; the trust file may not keep it");
                    unsaved = Some(Unsaved::NotDurable(e));
                }
            }
            Err(e) if matches!(change, Change::Unpair(_)) => {
                tracing::warn!(
                    error = %ErrorChain(&e),
                    "revoked in this run; the trust file was not updated"
                );
                unsaved = Some(Unsaved::Not(e));
            }
            Err(e) => return (Err(TrustChangeError::File(e)), None),
        }
    }
    // Without a data directory a `pair` is the core's alone: a change to
    // a closed node's tables would be read by nothing, yet said to be
    // made, so it is refused under the same lock as it is made, which no
    // shutdown can come between. With one, the file (what lasts) was
    // written while the node held its directory, so the change was made
    // even if the node closed meanwhile. (An `unpair`, made at its first
    // poll, is made again: what follows it is due again, the book's
    // addresses of a peer only the file trusted among it.)
    let after = change.after::<R>();
    let out = shared.with_core(|inner, now| {
        let refused = inner.phase == Phase::Closed
            && shared.data_dir.is_none()
            && matches!(change, Change::Pair(_));
        (!refused).then(|| change.apply(inner, now, (peer, number), in_file))
    });
    match out {
        Some((changed, due)) => {
            let result = unsaved.map_or(Ok(changed), |e| Err(e.error(changed)));
            (result, due.then_some(after))
        }
        None => (Err(TrustChangeError::Closed), None),
    }
}

/// A trust file's list after a change: the directory's list as it is
/// now (`was`: as the node last read or wrote it), `edit` made to it, and
/// saved. The list, whether the edit changed it, and whether it was
/// saved without its directory synced.
///
/// An `unpair` of a trust file removed while the node runs
/// ([`crate::DataDir::load_trust_again`]) makes no new file: the file,
/// gone, trusts nobody (a `pair` fails, naming it).
fn save_change(
    dir: &crate::DataDir,
    own: &PeerId,
    was: TrustList,
    edit: Change,
    peer: PeerId,
) -> io::Result<(TrustList, bool, Option<NotDurable>)> {
    let mut next = match load_for_change(dir, own) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && matches!(edit, Change::Unpair(_)) => {
            tracing::warn!(
                error = %ErrorChain(&e),
                "revoked in this run; the trust file is not made again"
            );
            let mut next = was;
            let edited = edit.edit(&mut next, peer);
            return Ok((next, edited, None));
        }
        loaded => loaded?,
    };
    if next != was {
        tracing::info!(
            "the trust file changed on disk while the node runs: the change is made to it as it \
             is now (restart the node to take the edit in)"
        );
    }
    let edited = edit.edit(&mut next, peer);
    // (replaced but not synced: the file has the change, so this run
    // makes it too, and the error says so)
    match dir.save_trust(&next).map_err(NotDurable::take) {
        Ok(()) => Ok((next, edited, None)),
        Err(Ok(unsynced)) => Ok((next, edited, Some(unsynced))),
        Err(Err(e)) => Err(e),
    }
}

/// The data directory's trust list as it is now, for a change: an error
/// that names the file if it cannot be read or parsed (a damaged list is
/// never written over). An entry of the node itself (`own`) is left out.
fn load_for_change(dir: &crate::DataDir, own: &PeerId) -> io::Result<TrustList> {
    dir.load_trust_again(own).map_err(|e| match e {
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
        let err = Unsaved::NotDurable(NotDurable::take(err).unwrap()).error(true);
        let TrustChangeError::NotDurable { changed, source } = &err else {
            panic!("{err:?}");
        };
        assert!(changed, "what the change returned is kept");
        assert_eq!(source.path, dir.path().join("trust"));
        let chain = ErrorChain(&err).to_string();
        assert!(chain.contains("was replaced"), "{chain}");
        assert!(chain.contains(": injected"), "{chain}");
        // any other error is given back as it was
        let other = io::Error::new(io::ErrorKind::StorageFull, "full");
        let back = NotDurable::take(other).unwrap_err();
        assert_eq!(back.kind(), io::ErrorKind::StorageFull);
    }
}
