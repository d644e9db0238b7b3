//! A node's data directory: its identity and its trust list on disk.
//!
//! - `identity`: the 72-byte format of [`Identity::to_bytes`], created with
//!   mode 0600 and never overwritten.
//! - `trust`: the text format of [`TrustList::to_text`], replaced
//!   atomically on every change (write a temporary file, fsync, rename,
//!   fsync the directory), so a crash leaves the old list or the new one,
//!   never a mix.
//!
//! Who may touch them (Unix): the directory and its files are the node's
//! security boundary (whoever can replace `trust` chooses who the node
//! trusts). Each file is checked as opened (its `fstat`, not the path
//! again), and read with [`read_regular`]'s bounds. A directory or file
//! that other users may write, or that another user than the process's
//! owns (root's excepted), or an identity they may read, is refused with
//! [`io::ErrorKind::PermissionDenied`] and the `chmod` or `chown` that
//! mends it, as ssh refuses a private key or a `~/.ssh` open to others;
//! one its group may write is used, with a warning. A trust list or book
//! that is a symbolic link is read through it but never saved.
//!
//! The node reads `trust` (and `book`) at start; a save never writes
//! over a file edited since the node read or last wrote it
//! ([`ChangedOnDisk`]): the node reads such a file again and makes its
//! change to it (`Node::pair`, `Node::unpair`, the book's saves: see
//! [`NodeConfig::from_data_dir`](crate::NodeConfig::from_data_dir)), and
//! a file that does not load is left alone.
//!
//! What becomes of `trust` while the node runs, at the next `pair` and
//! `unpair` (each error names the file and says what to do; an `unpair`
//! always revokes in the run; nothing ever widens trust):
//! - edited or replaced by another list: the change is made to it;
//! - truncated, or not a list any more: left alone, the change fails
//!   ([`io::ErrorKind::InvalidData`]);
//! - a FIFO, a directory, a socket, a device: left alone, never opened
//!   (so never waited on), the change fails ([`io::ErrorKind::InvalidInput`]);
//! - a symbolic link: read through, never saved
//!   ([`io::ErrorKind::InvalidInput`]);
//! - unreadable (its mode, its owner): the change fails with the read's
//!   error;
//! - removed: not made again, neither of the one peer a `pair` adds
//!   (every other pairing would be lost at the next start) nor of the
//!   list the node holds (a removal meant to revoke would be undone): a
//!   `pair` fails ([`io::ErrorKind::NotFound`]), an `unpair` succeeds
//!   (the file, gone, trusts nobody), until the file is put back or the
//!   node restarts; a node that starts without it trusts no one from it,
//!   as on its first start.
//!
//! At the next start each of these is as the file is then: an error
//! naming the file (damaged, not a regular file, unreadable), or no file
//! at all (an empty list).
//!
//! Temporary files and their atomic replacement are `tempfile`'s
//! ([`NamedTempFile::persist`], and `persist_noclobber` for the identity,
//! which must never replace one that exists); the fsync of the directory
//! that makes the rename durable is ours.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use peernet_proto::identity::IDENTITY_FILE_LEN;
use peernet_proto::{Identity, PeerId, TrustList};
use tempfile::NamedTempFile;

use crate::book_file::SavedBook;
use crate::error::StartError;
pub use crate::file_error::{DataFile, FileError};
pub use crate::last_seen::ChangedOnDisk;
use crate::last_seen::LastSeen;
pub use crate::private_files::read_regular;
use crate::private_files::{Private, check_dir, open_dir, read_private, read_secret};
use crate::rng::NodeRng;
use crate::text::shown_path;

const IDENTITY_FILE: &str = "identity";
const TRUST_FILE: &str = "trust";

/// A save whose new file is in place, but whose directory could not be
/// synced afterwards: the change is made (a reader sees the new file)
/// and may not survive a crash or power loss. The payload of the
/// [`io::Error`] a save of [`DataDir`] returns (its kind is the sync's);
/// find it with [`NotDurable::is`]. [`Node::pair`](crate::Node::pair) and
/// `unpair` return it as
/// [`TrustChangeError::NotDurable`](crate::TrustChangeError::NotDurable).
#[derive(Debug, thiserror::Error)]
#[error(
    "{file} {} was replaced, but syncing its directory failed: the change may not survive a \
     crash",
    shown_path(path)
)]
#[non_exhaustive]
pub struct NotDurable {
    /// Which file it is (as a [`FileError`] names it: `trust list <path>
    /// was replaced, ...`).
    pub file: DataFile,
    /// The file replaced.
    pub path: PathBuf,
    /// Why the directory could not be synced.
    pub source: io::Error,
}

impl NotDurable {
    /// Whether `error` is a save that replaced its file but could not sync
    /// its directory.
    pub fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<NotDurable>().is_some())
    }

    /// `error`'s [`NotDurable`], or `error` as it was if it is not one.
    pub(crate) fn take(error: io::Error) -> Result<NotDurable, io::Error> {
        if !NotDurable::is(&error) {
            return Err(error);
        }
        let kind = error.kind();
        match error
            .into_inner()
            .map(|inner| inner.downcast::<NotDurable>())
        {
            Some(Ok(not_durable)) => Ok(*not_durable),
            Some(Err(inner)) => Err(io::Error::new(kind, inner)),
            None => Err(kind.into()),
        }
    }
}

/// A node's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
    /// What the node last read or wrote of the files it replaces, shared
    /// by the clones (`last_seen.rs`).
    last_seen: Arc<LastSeen>,
    /// The address book as the node last read or wrote it (none: not
    /// yet), shared by the clones: what a hand edit is told apart from
    /// (`book_edits.rs`).
    last_book: Arc<Mutex<Option<SavedBook>>>,
    /// Why this process may not write the directory, if its lock was last
    /// taken without write access ([`DataDir::try_lock`]): every save is
    /// refused with an error of this kind. Shared by the clones.
    read_only: Arc<Mutex<Option<io::ErrorKind>>>,
}

impl DataDir {
    /// Uses the directory at `path`, creating it (mode 0700) if it is
    /// missing. Only the last component is created: a missing parent is
    /// refused ([`io::ErrorKind::NotFound`], naming the path and the
    /// parent), so a mistyped path (`/var/lib/peernet-typo/node`) is an
    /// error, not a new directory where a node would start with a new
    /// identity that nobody trusts. A symbolic link to a directory is
    /// followed (the directory it names is checked as this one).
    ///
    /// `path` is resolved now, once: a relative one from the working
    /// directory, and every symbolic link in it followed
    /// ([`fs::canonicalize`]). Every later read, save and lock goes to
    /// the directory it named then ([`DataDir::path`] is that absolute
    /// path, without links), whatever the process's working directory
    /// becomes (a daemon that moves to `/`, a tool that works elsewhere)
    /// and wherever a link in the path is pointed later (a deploy's
    /// `current -> releases/vN` re-pointed while the node runs), where
    /// the same name may name another directory, whose lock the node
    /// does not hold, or none.
    ///
    /// # Errors
    ///
    /// Each names `path`:
    /// - [`io::ErrorKind::NotFound`]: its parent does not exist, or it is
    ///   a symbolic link to nothing;
    /// - [`io::ErrorKind::NotADirectory`]: it is not a directory (a file,
    ///   a FIFO, a socket, a device, a link to one of them), or its
    ///   parent is not;
    /// - [`io::ErrorKind::PermissionDenied`]: a directory every user may
    ///   write or another user owns (see the [module docs](self)), or no
    ///   permission to create or open it;
    /// - [`io::ErrorKind::InvalidInput`]: an empty path;
    /// - any other I/O error of creating or opening it.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<DataDir> {
        let path = std::path::absolute(path.into())?;
        create_last(&path)?;
        check_dir(&path).map_err(|e| not_a_data_dir(&path, e))?;
        // Resolved once, here: every later open (the lock's too) goes to
        // the directory the path named now. Followed again at each open,
        // a link in the path re-pointed while the node runs (a deploy's
        // `current -> releases/vN`) sent its saves to another directory,
        // whose lock it does not hold (review s54). (The resolved
        // directory is checked as the path was, in case a link moved in
        // between.)
        let resolved = fs::canonicalize(&path).map_err(|e| not_a_data_dir(&path, e))?;
        if resolved != path {
            check_dir(&resolved).map_err(|e| not_a_data_dir(&resolved, e))?;
        }
        let path = resolved;
        Ok(DataDir {
            path,
            last_seen: Arc::default(),
            last_book: Arc::default(),
            read_only: Arc::default(),
        })
    }

    /// The address book as the node last read or wrote it (see the field).
    pub(crate) fn last_book(&self) -> MutexGuard<'_, Option<SavedBook>> {
        self.last_book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this directory saves nothing: its lock was last taken
    /// without write access ([`DataDir::try_lock`]). The kind of error its
    /// saves fail with, if so.
    pub(crate) fn read_only(&self) -> Option<io::ErrorKind> {
        *self
            .read_only
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes how the directory's lock was taken (see the field).
    pub(crate) fn set_read_only(&self, read_only: Option<io::ErrorKind>) {
        *self
            .read_only
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = read_only;
    }

    /// The directory, as an absolute path without symbolic links,
    /// resolved when it was opened (see [`DataDir::open`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the identity, or creates one if there is none.
    ///
    /// A new identity is written to a temporary file (mode 0600 from its
    /// first byte), synced, then moved into place without clobbering: the
    /// move fails rather than replace an existing file, so an identity is never
    /// overwritten (two processes racing both end up with the one that
    /// won), and a crash never leaves a half-written identity file.
    ///
    /// # Errors
    ///
    /// Each names the file, its kind and path (a [`FileError`]):
    /// [`StartError::Io`] when the file cannot be read or written, or is
    /// not a regular file of the right size (the [`io::Error`] of its own
    /// kind, whose payload is the [`FileError`]: [`FileError::find`]);
    /// [`StartError::Identity`] when its bytes are not a key;
    /// [`StartError::Entropy`] without randomness for a new identity.
    pub fn load_or_create_identity(&self) -> Result<Identity, StartError> {
        let path = self.path.join(IDENTITY_FILE);
        match read_identity(&path) {
            Err(StartError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        // (its state, left on the stack, cannot give the seed back)
        let mut rng = NodeRng::from_os().map_err(StartError::Entropy)?;
        let identity = Identity::generate(&mut rng);
        let named = |e| StartError::Io(FileError::io(DataFile::Identity, &path, e));
        let temp = stage_in(&self.path, IDENTITY_FILE, &identity.to_bytes()).map_err(named)?;
        match temp.persist_noclobber(&path) {
            Ok(_) => {
                sync_dir(&self.path).map_err(named)?;
                tracing::info!(peer = %identity.peer_id(), path = %shown_path(&path), "created identity");
                Ok(identity)
            }
            // someone else created it meanwhile: theirs stands
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => read_identity(&path),
            Err(e) => Err(named(e.error)),
        }
    }

    /// Loads the trust list; a missing file is an empty list, a damaged
    /// one an error. The list is the file's, whatever it names: a node
    /// started from this directory leaves out an entry of its own PeerId
    /// ([`NodeConfig::from_data_dir`](crate::NodeConfig::from_data_dir)).
    ///
    /// # Errors
    ///
    /// Each names the file, its kind and path (a [`FileError`]):
    /// [`StartError::Io`] when it cannot be read, is not a regular file
    /// ([`io::ErrorKind::InvalidInput`]), is too large or is not UTF-8
    /// ([`io::ErrorKind::InvalidData`]), or others may write it
    /// ([`io::ErrorKind::PermissionDenied`]): the [`io::Error`] of its
    /// own kind, whose payload is the [`FileError`]
    /// ([`FileError::find`]); [`StartError::TrustList`] when a line does
    /// not parse.
    pub fn load_trust(&self) -> Result<TrustList, StartError> {
        let path = self.path.join(TRUST_FILE);
        let parse = |bytes: &[u8]| -> Result<TrustList, StartError> {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                let not_utf8 = io::Error::new(io::ErrorKind::InvalidData, "not UTF-8");
                FileError::io(DataFile::TrustList, &path, not_utf8)
            })?;
            TrustList::from_text(text).map_err(|source| {
                StartError::TrustList(FileError {
                    file: DataFile::TrustList,
                    path: path.clone(),
                    source,
                })
            })
        };
        let read = self.read_noted(DataFile::TrustList, MAX_TRUST_FILE_LEN, parse)?;
        Ok(read.unwrap_or_default())
    }

    /// [`DataDir::load_trust`] for the node `own` (its start, its trust
    /// changes, a book save that reads the files again): an entry of
    /// `own` is left out, with a warning that names
    /// the file. Only a hand edit puts one there (`Node::pair`, `peernet
    /// pair` and `serve --trust` refuse the node's own PeerId), and
    /// it would do nothing (a node never trusts itself: the handshake
    /// refuses its own key, PROTOCOL.md 2.1); the lists the node writes
    /// are made from this one, so it is not written back.
    ///
    /// # Errors
    ///
    /// Those of [`DataDir::load_trust`].
    pub fn load_trust_of(&self, own: &PeerId) -> Result<TrustList, StartError> {
        let mut trust = self.load_trust()?;
        if trust.remove(own) {
            tracing::warn!(
                path = %shown_path(&self.path.join(TRUST_FILE)),
                peer = %own,
                "the trust file names this node itself: a node never trusts itself, the \
                 entry is ignored (and left out of the file when the node next writes it)"
            );
        }
        Ok(trust)
    }

    /// [`DataDir::load_trust_of`] for a node that runs: its trust changes
    /// and the book saves that read the file again. A trust file this
    /// directory read or wrote and that is missing now was removed while
    /// the node runs: that is an error ([`io::ErrorKind::NotFound`],
    /// naming the file and what to do), not an empty list. Taken as one,
    /// the next `pair` wrote a new file of that one peer, and the next
    /// start lost every other pairing without a word; writing back the
    /// list the node holds instead would undo a removal meant to revoke.
    /// The file is not noted as missing: it stays refused until it is
    /// put back (the list as it was, or any list: an edit, taken as one)
    /// or the node restarts (and starts from no trust file, trusting no
    /// one from it).
    ///
    /// # Errors
    ///
    /// Those of [`DataDir::load_trust`], and the removal above.
    pub(crate) fn load_trust_again(&self, own: &PeerId) -> Result<TrustList, StartError> {
        let path = self.path.join(TRUST_FILE);
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        if self.last_seen.held(TRUST_FILE) && fs::symlink_metadata(&path).is_err_and(|e| gone(&e)) {
            let removed = io::Error::new(
                io::ErrorKind::NotFound,
                "was removed while the node runs: the node neither makes a new one (the \
                 pairings it held would be lost at the next start) nor writes back its own list \
                 (a removal meant to revoke would be undone); put the file back (from a backup, \
                 or an empty list: the two lines `peernet-trust-list v1` and `end 0`) and try \
                 again, or restart the node to start from no trust file",
            );
            return Err(StartError::Io(FileError::io(
                DataFile::TrustList,
                path,
                removed,
            )));
        }
        self.load_trust_of(own)
    }

    /// The file `file`, read as [`read_private`] does (`None` if there is
    /// none) and parsed by `parse`, and then noted as what the node saw
    /// of it: a later save refuses to replace it if it changed meanwhile
    /// ([`ChangedOnDisk`]). A file that does not parse is not noted: what
    /// the node saw stays what it saw before, so a save after a failed
    /// read still refuses to write over the damaged file. An error of the
    /// read names the file ([`FileError`]); `parse` names it in its own.
    pub(crate) fn read_noted<T, E: From<io::Error>>(
        &self,
        file: DataFile,
        max: u64,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        let (name, path) = (file.file_name(), self.path.join(file.file_name()));
        match read_private(&path, max, Private::Writes, &file.to_string()) {
            Ok(bytes) => {
                let parsed = parse(&bytes)?;
                self.last_seen.note(name, Some(&bytes));
                Ok(Some(parsed))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.last_seen.note(name, None);
                Ok(None)
            }
            Err(e) => Err(FileError::io(file, path, e).into()),
        }
    }

    /// Replaces the trust list atomically: the new text goes to a
    /// temporary file in the same directory, is synced, renamed over the
    /// old list, and the directory is synced. A crash at any point leaves
    /// the old list or the new one, never a mix; a stray temporary file
    /// (`trust.*.tmp`) is ignored by [`DataDir::load_trust`].
    ///
    /// # Errors
    ///
    /// The I/O error of staging, syncing or renaming, whose payload is a
    /// [`FileError`] that names the file ([`FileError::find`]); the old
    /// list is then still in place. [`ChangedOnDisk`] (the file was edited
    /// since this directory read or wrote it) and [`NotDurable`] name it
    /// as a [`FileError`] does, its kind and path, in their own fields.
    /// [`io::ErrorKind::FileTooLarge`] for a list
    /// whose file would be over [`MAX_TRUST_FILE_LEN`], which
    /// [`DataDir::load_trust`] would refuse at the next start: nothing is
    /// written (so a `Node::pair` that would need it fails, and changes
    /// nothing). [`io::ErrorKind::ReadOnlyFilesystem`] or
    /// [`io::ErrorKind::PermissionDenied`] at once, writing nothing, if
    /// the directory's lock was taken without write access
    /// ([`DataDir::try_lock`]).
    pub fn save_trust(&self, trust: &TrustList) -> io::Result<()> {
        let text = trust.to_text();
        if text.len() as u64 > MAX_TRUST_FILE_LEN {
            let why = format!(
                "it would take {} bytes, over the {MAX_TRUST_FILE_LEN} a trust list may hold",
                text.len()
            );
            let too_large = io::Error::new(io::ErrorKind::FileTooLarge, why);
            let path = self.path.join(TRUST_FILE);
            return Err(FileError::io(DataFile::TrustList, path, too_large));
        }
        self.replace(DataFile::TrustList, text.as_bytes(), || {})
    }

    /// Replaces the file `file` in the directory atomically with
    /// `contents`: staged, synced, renamed over, directory synced. An
    /// error names the file ([`FileError`]), but for [`ChangedOnDisk`] and
    /// [`NotDurable`], which name it (its kind and path) themselves.
    ///
    /// A file that changed on disk since the node read or last wrote it
    /// is not replaced: [`ChangedOnDisk`] (see `last_seen.rs` for the window
    /// left between the comparison and the rename). `wrote` runs once
    /// the new file is in place, before the directory's fsync, whose
    /// failure is [`NotDurable`]: the file is replaced all the same.
    ///
    /// A directory whose lock was taken without write access
    /// ([`DataDir::try_lock`]) refuses every save, with an error of the
    /// kind that open failed with, before anything is written.
    ///
    /// A `file` that is a symbolic link is refused with
    /// [`io::ErrorKind::InvalidInput`], and nothing is written: renaming
    /// over it would silently cut the operator's link, and writing
    /// through it would let whoever planted the link choose a file
    /// outside the directory for the node to overwrite. (Reading through
    /// a link is allowed: the file read is checked as any other.)
    pub(crate) fn replace(
        &self,
        file: DataFile,
        contents: &[u8],
        wrote: impl FnOnce(),
    ) -> io::Result<()> {
        let (name, path) = (file.file_name(), self.path.join(file.file_name()));
        // (each error names the file: a warning that a save failed, or a
        // `pair` that did, says where)
        let named = |e: io::Error| FileError::io(file, &path, e);
        if let Some(kind) = self.read_only() {
            return Err(named(io::Error::new(
                kind,
                "not saved: the data directory was not writable when its lock was taken, and \
                 nothing is saved to it until the lock is taken again with write access",
            )));
        }
        if fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return Err(named(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link: the node replaces its files atomically and does not write \
                 through links; make it a regular file",
            )));
        }
        self.last_seen.check(file, &path)?;
        let temp = stage_in(&self.path, name, contents).map_err(named)?;
        temp.persist(&path).map_err(|e| named(e.error))?;
        self.last_seen.note(name, Some(contents));
        wrote();
        sync_dir(&self.path).map_err(|source| {
            let kind = source.kind();
            io::Error::new(kind, NotDurable { file, path, source })
        })
    }

    /// The first half of [`DataDir::replace`]: `contents`, written and
    /// synced to a temporary file (removed if dropped unpersisted).
    #[cfg(test)]
    pub(crate) fn stage(&self, name: &str, contents: &[u8]) -> io::Result<NamedTempFile> {
        stage_in(&self.path, name, contents)
    }

    /// Removes the temporary files a crash left between staging and
    /// renaming (`trust.*.tmp`, `book.*.tmp`, `identity.*.tmp`) once they
    /// are a minute old. A save takes milliseconds, and not every writer
    /// holds the directory's lock (a node's identity is created without
    /// it), so a younger one may be a save under way. What cannot be
    /// removed is logged and left.
    pub(crate) fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".tmp") else {
                continue;
            };
            let ours = ["trust.", "book.", "identity."]
                .iter()
                .any(|prefix| stem.starts_with(prefix));
            let age = entry.metadata().and_then(|m| m.modified()).ok();
            let old = age
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() >= 60);
            let stale = ours && old;
            if !stale || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = name, "removed a temporary file a crash left"),
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "cannot remove a stale temporary file")
                }
            }
        }
    }
}

/// Creates the directory `path`, mode 0700, if nothing is there: its
/// last component only. Whatever is there already is left for
/// [`check_dir`] to judge.
fn create_last(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let parent = || shown_path(path.parent().unwrap_or(path));
    match builder.create(path) {
        Ok(()) => {
            tracing::info!(path = %shown_path(path), "created the data directory");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!(
                "data directory {}: its parent {} does not exist (a mistyped path?); only the \
                 data directory itself is created: create its parent first",
                shown_path(path),
                parent()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(io::Error::new(
            e.kind(),
            format!(
                "data directory {}: its parent {} is not a directory",
                shown_path(path),
                parent()
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("data directory {}: {e}", shown_path(path)),
        )),
    }
}

/// The error of [`check_dir`] on the data directory `path`, saying what
/// is there instead of a directory (the operating system's own error
/// names no path: "Not a directory", "No such file or directory").
fn not_a_data_dir(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error().is_none() {
        // (ours: it names the path already)
        return e;
    }
    let link = fs::read_link(path)
        .map(|target| format!(" is a symbolic link to {}, which", shown_path(&target)))
        .unwrap_or_default();
    let why = match e.kind() {
        io::ErrorKind::NotADirectory if link.is_empty() => " exists and is not a directory".into(),
        io::ErrorKind::NotADirectory => format!("{link} is not a directory"),
        io::ErrorKind::NotFound if !link.is_empty() => format!("{link} does not exist"),
        _ => format!(": {e}"),
    };
    io::Error::new(
        e.kind(),
        format!("data directory {}{why}", shown_path(path)),
    )
}

/// The most bytes of a file's name that its temporary file's name
/// ([`stage_in`]) keeps: with the `.`, six random characters and
/// `.tmp`, the temporary name stays within the 255 bytes most file
/// systems allow, so that a name they allow can be staged.
const STAGED_NAME_MAX: usize = 240;

/// `contents`, written and synced to a new temporary file in `dir`,
/// `<name>.<random>.tmp` (`name` cut to [`STAGED_NAME_MAX`] bytes), mode
/// 0600 from its creation (tempfile's default on Unix).
///
/// A failure to create it is the operating system's, without the
/// temporary file's path that tempfile adds: the caller names the file
/// the operator gave, and a path they never wrote would mislead.
fn stage_in(dir: &Path, name: &str, contents: &[u8]) -> io::Result<NamedTempFile> {
    let kept = name
        .char_indices()
        .map(|(at, c)| at + c.len_utf8())
        .take_while(|&end| end <= STAGED_NAME_MAX)
        .last()
        .unwrap_or(0);
    let name = &name[..kept];
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(without_temp_path)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

/// A tempfile error without the ` at path "…"` it appends (its words
/// before it, of the same kind); any other error as it is.
fn without_temp_path(e: io::Error) -> io::Error {
    let words = e.to_string();
    match words.find(" at path ") {
        Some(at) if e.get_ref().is_some() => io::Error::new(e.kind(), &words[..at]),
        _ => e,
    }
}

#[cfg(test)]
std::thread_local! {
    /// Makes this thread's next [`sync_dir`] fail (tests only: a
    /// directory's fsync cannot be made to fail otherwise).
    pub(crate) static FAIL_SYNC_DIR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes a rename or link in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    if FAIL_SYNC_DIR.replace(false) {
        return Err(io::Error::other("injected fsync failure"));
    }
    #[cfg(unix)]
    open_dir(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a new identity file: 0600 from the first byte, and never over
/// an existing one. The key is written and synced to a temporary file
/// beside `path`, linked into place only if nothing is there, and the
/// directory synced: a crash or a full disk never leaves a partial key
/// under `path` (which would be no identity, and would stand in the way
/// of the next attempt), and of two writers racing exactly one wins.
///
/// # Errors
///
/// `AlreadyExists` if there is a file (or a link) at `path`; any other
/// I/O error of writing, syncing or linking it. Each names the file (its
/// payload is a [`FileError`] of [`DataFile::Identity`]:
/// [`FileError::find`]).
pub fn write_identity(path: &Path, identity: &Identity) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(IDENTITY_FILE);
    // (`NAME.….tmp`: one a crash leaves in a data directory is removed by
    // the next holder of its lock)
    let named = |e| FileError::io(DataFile::Identity, path, e);
    let temp = stage_in(dir, name, &identity.to_bytes()).map_err(named)?;
    temp.persist_noclobber(path).map_err(|e| named(e.error))?;
    sync_dir(dir).map_err(named)
}

/// The largest trust list file read (16 MiB, about 80,000 peers with
/// labels): a larger one is refused rather than read into memory.
pub const MAX_TRUST_FILE_LEN: u64 = 16 << 20;

/// Reads an identity file written by [`write_identity`]: a regular file of
/// exactly [`IDENTITY_FILE_LEN`] bytes (see [`read_regular`] for what is
/// refused).
///
/// # Errors
///
/// Each names the file, as `path` says it ([`FileError`] of
/// [`DataFile::Identity`]): [`StartError::Io`] when it cannot be read or
/// is not a regular file of [`IDENTITY_FILE_LEN`] bytes, or (Unix) when
/// users other than its owner may read or write it (`PermissionDenied`,
/// naming the `chmod go-rwx` that mends it, as ssh refuses such a key),
/// the [`io::Error`] of its own kind whose payload is the [`FileError`]
/// ([`FileError::find`]); [`StartError::Identity`] when its bytes are
/// not a key.
pub fn read_identity(path: &Path) -> Result<Identity, StartError> {
    let file = DataFile::Identity;
    // (wiped once read, as the vector it is read into never grows)
    let bytes = read_secret(path, IDENTITY_FILE_LEN, &file.to_string())
        .map_err(|e| FileError::io(file, path, e))?;
    Identity::from_bytes(&bytes).map_err(|source| {
        StartError::Identity(FileError {
            file,
            path: path.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peernet_proto::Label;

    /// A save whose directory cannot be synced after the rename has
    /// replaced its file: the error says so ([`NotDurable`]), for the
    /// node to treat the change as made. It used to be a plain I/O error,
    /// and `pair` reported a failure (and left the peer untrusted in this
    /// run) while the file trusted it at the next start.
    #[test]
    fn a_save_whose_directory_sync_fails_is_replaced_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        data.save_trust(&TrustList::new()).unwrap();
        let mut trust = TrustList::new();
        let peer = Identity::from_seed(&[7; 32]).peer_id();
        trust.insert(peer, None);
        FAIL_SYNC_DIR.set(true);
        let err = data.save_trust(&trust).unwrap_err();
        assert!(NotDurable::is(&err), "{err}");
        assert!(err.to_string().contains("was replaced"), "{err}");
        assert!(data.load_trust().unwrap().contains(&peer));
        // the file is noted as written: the next save replaces it
        data.save_trust(&TrustList::new()).unwrap();
        assert!(data.load_trust().unwrap().is_empty());
    }

    /// A data directory whose parent is missing (a mistyped path) is
    /// refused, naming both, and nothing is created: it used to be
    /// created with its parents, and a node started there with a new
    /// identity that nobody trusts. The last component alone is created,
    /// private.
    #[test]
    fn a_missing_parent_is_refused_and_only_the_last_component_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("peernet-typo");
        let path = typo.join("node");
        let err = DataDir::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{err}");
        assert!(
            text.contains(&format!("its parent {} does not exist", typo.display())),
            "{err}"
        );
        // the node's start says the same, and makes no identity anywhere
        match crate::NodeConfig::from_data_dir(&path) {
            Err(StartError::Io(e)) => assert_eq!(e.to_string(), text),
            other => panic!("{other:?}"),
        }
        assert!(!typo.exists());
        // the parent there, the directory is made
        fs::create_dir(&typo).unwrap();
        let data = DataDir::open(&path).unwrap();
        assert!(data.path().is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
    }

    /// What is in the place of the data directory, or of its parent, and
    /// is not a directory is refused with an error that names the path
    /// and says what it is (the operating system's "File exists" or "Not
    /// a directory" named neither); a link to a directory is followed.
    #[cfg(unix)]
    #[test]
    fn a_data_directory_that_is_not_one_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |path: &Path, kind: io::ErrorKind, what: &str| {
            let err = DataDir::open(path).unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{err}");
            assert!(text.contains(what), "{err}");
        };
        let not_dir = io::ErrorKind::NotADirectory;
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        refused(&file, not_dir, "exists and is not a directory");
        refused(&file.join("node"), not_dir, "its parent");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RWXU).unwrap();
        refused(&fifo, not_dir, "exists and is not a directory");
        let to_file = dir.path().join("to-file");
        std::os::unix::fs::symlink(&file, &to_file).unwrap();
        let what = format!(
            "symbolic link to {}, which is not a directory",
            file.display()
        );
        refused(&to_file, not_dir, &what);
        let dangling = dir.path().join("dangling");
        let nowhere = dir.path().join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        let what = format!(
            "symbolic link to {}, which does not exist",
            nowhere.display()
        );
        refused(&dangling, io::ErrorKind::NotFound, &what);
        assert!(!nowhere.exists());
        // a link to a directory elsewhere: that directory is used
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        let data = DataDir::open(&linked).unwrap();
        data.save_trust(&TrustList::new()).unwrap();
        assert!(elsewhere.join(TRUST_FILE).is_file());
    }

    /// What other users may write (the directory, the lists) or read
    /// (the identity) is refused, naming the chmod that mends it; what
    /// the group may write is used.
    #[cfg(unix)]
    #[test]
    fn files_open_to_other_users_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |m| fs::Permissions::from_mode(m);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node");
        let data = DataDir::open(&path).unwrap();
        data.load_or_create_identity().unwrap();
        data.save_trust(&TrustList::new()).unwrap();
        data.save_book(&crate::book_file::SavedBook::new()).unwrap();
        let denied = |e: io::Error, fix: &str| {
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
            assert!(crate::ErrorChain(&e).to_string().contains(fix), "{e}");
        };
        // the directory
        fs::set_permissions(&path, mode(0o777)).unwrap();
        denied(DataDir::open(&path).unwrap_err(), "chmod o-w");
        fs::set_permissions(&path, mode(0o770)).unwrap();
        let data = DataDir::open(&path).unwrap();
        // the identity: no one else may even read it
        let identity = path.join(IDENTITY_FILE);
        for open in [0o640, 0o604, 0o620] {
            fs::set_permissions(&identity, mode(open)).unwrap();
            match data.load_or_create_identity() {
                Err(StartError::Io(e)) => denied(e, "chmod go-rwx"),
                other => panic!("{other:?}"),
            }
        }
        fs::set_permissions(&identity, mode(0o400)).unwrap();
        data.load_or_create_identity().unwrap();
        // the trust list and the book
        let trust = path.join(TRUST_FILE);
        fs::set_permissions(&trust, mode(0o666)).unwrap();
        match data.load_trust() {
            Err(StartError::Io(e)) => denied(e, "chmod o-w"),
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&trust, mode(0o664)).unwrap();
        data.load_trust().unwrap();
        fs::set_permissions(data.book_path(), mode(0o602)).unwrap();
        match data.load_book() {
            Err(crate::book_file::LoadBookError::Io(e)) => denied(e, "chmod o-w"),
            other => panic!("{other:?}"),
        }
        fs::set_permissions(data.book_path(), mode(0o644)).unwrap();
        data.load_book().unwrap();
    }

    /// A list whose file the next start would refuse is not written:
    /// the old file stays, and loads.
    #[test]
    fn a_trust_list_too_large_to_load_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        let label = Label::new(&"l".repeat(Label::MAX_LEN)).unwrap();
        let line = 64 + 1 + Label::MAX_LEN + 1;
        let mut trust = TrustList::new();
        for i in 0..(MAX_TRUST_FILE_LEN as usize / line - 100) {
            let mut seed = [1u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            trust.insert(Identity::from_seed(&seed).peer_id(), Some(label.clone()));
        }
        data.save_trust(&trust).unwrap();
        assert_eq!(data.load_trust().unwrap().len(), trust.len());
        let saved = trust.len();
        for i in 0..200u64 {
            let mut seed = [2u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            trust.insert(Identity::from_seed(&seed).peer_id(), Some(label.clone()));
        }
        let err = data.save_trust(&trust).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge, "{err}");
        // (named as a load names it: review s52, it named no file)
        let path = data.path().join(TRUST_FILE);
        let named = format!("trust list {}: it would take ", path.display());
        let said = crate::ErrorChain(&err).to_string();
        assert!(said.starts_with(&named), "{said}");
        assert_eq!(data.load_trust().unwrap().len(), saved);
    }

    #[test]
    fn identity_and_trust_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        let identity = data.load_or_create_identity().unwrap();
        let peer = Identity::from_seed(&[9; 32]).peer_id();
        let mut trust = data.load_trust().unwrap();
        assert!(trust.is_empty());
        trust.insert(peer, None);
        data.save_trust(&trust).unwrap();

        let again = DataDir::open(dir.path().join("node")).unwrap();
        assert_eq!(
            again.load_or_create_identity().unwrap().peer_id(),
            identity.peer_id()
        );
        assert!(again.load_trust().unwrap().contains(&peer));
    }

    /// Brief s55 (msg): a key that could not be staged (here: its
    /// directory does not exist) said tempfile's `at path
    /// "DIR/key.AbC123.tmp"`, a path never given. The error names the
    /// file given, the operating system's words after it, and nothing
    /// else.
    #[test]
    fn a_key_that_cannot_be_staged_names_only_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("key");
        let e = write_identity(&path, &Identity::from_seed(&[1; 32])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let said = crate::ErrorChain(&e).to_string();
        let named = format!("identity file {}: ", path.display());
        assert!(said.starts_with(&named), "{said}");
        assert!(!said.contains("key."), "{said}");
        assert!(!said.contains(" at path "), "{said}");
    }

    #[cfg(unix)]
    #[test]
    fn identity_file_is_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_identity(&path, &Identity::from_seed(&[1; 32])).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = write_identity(&path, &Identity::from_seed(&[2; 32])).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        // (named as a read names it: review s52, it named no file)
        let said = crate::ErrorChain(&again).to_string();
        let named = format!("identity file {}: ", path.display());
        assert!(said.starts_with(&named), "{said}");
        assert_eq!(
            read_identity(&path).unwrap().peer_id(),
            Identity::from_seed(&[1; 32]).peer_id()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_created_identity_is_0600_stable_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let created = data.load_or_create_identity().unwrap();
        let again = data.load_or_create_identity().unwrap();
        assert_eq!(created.peer_id(), again.peer_id());
        let path = dir.path().join(IDENTITY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [IDENTITY_FILE]);
        // a damaged identity is an error, and is left alone
        fs::write(&path, b"PNETSK01 truncated").unwrap();
        assert!(matches!(
            data.load_or_create_identity(),
            Err(StartError::Identity(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"PNETSK01 truncated");
    }

    #[test]
    fn a_crash_between_write_and_rename_leaves_the_old_list() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let old: TrustList = [Identity::from_seed(&[1; 32]).peer_id()]
            .into_iter()
            .collect();
        data.save_trust(&old).unwrap();
        // the crash: a new list half-written to the temp file, never renamed
        let new: TrustList = [Identity::from_seed(&[2; 32]).peer_id()]
            .into_iter()
            .collect();
        let (_, staged) = data
            .stage(TRUST_FILE, new.to_text().as_bytes())
            .unwrap()
            .keep()
            .unwrap();
        assert_eq!(data.load_trust().unwrap(), old);
        // or half-written, even
        let text = new.to_text();
        fs::write(&staged, &text[..text.len() / 2]).unwrap();
        assert_eq!(
            DataDir::open(dir.path()).unwrap().load_trust().unwrap(),
            old
        );
        // and the next save still goes through
        data.save_trust(&new).unwrap();
        assert_eq!(data.load_trust().unwrap(), new);
        // a save leaves no temporary file of its own behind
        let temps = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path() != staged)
            .filter(|e| e.as_ref().unwrap().file_name() != TRUST_FILE)
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn special_and_oversized_files_are_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        // /dev/zero would be read until memory runs out.
        let zero = read_identity(Path::new("/dev/zero")).unwrap_err();
        assert!(
            crate::ErrorChain(&zero)
                .to_string()
                .contains("not a regular file"),
            "{zero}"
        );
        // A FIFO with no writer would block the open forever.
        let fifo = dir.path().join("key.fifo");
        // (no `mkfifo` process: a child holds this process's descriptors,
        // the other tests' directory locks among them, until it exec'd)
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let err = read_identity(&fifo).unwrap_err();
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("not a regular file"),
            "{err}"
        );
        // A directory.
        let err = read_identity(dir.path()).unwrap_err();
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("not a regular file"),
            "{err}"
        );
        // Longer than the format: refused, not parsed.
        let big = dir.path().join("big.key");
        fs::write(&big, vec![b'P'; 4096]).unwrap();
        #[cfg(unix)]
        fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let err = read_identity(&big).unwrap_err();
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("larger than 72 bytes"),
            "{err}"
        );
        // A trust list behind a FIFO.
        let data = DataDir::open(dir.path().join("data")).unwrap();
        // (no `mkfifo` process: a child holds this process's descriptors,
        // the other tests' directory locks among them, until it exec'd)
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            data.path().join(TRUST_FILE),
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let err = data.load_trust().unwrap_err();
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_list_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        fs::write(dir.path().join(TRUST_FILE), "").unwrap();
        assert!(matches!(data.load_trust(), Err(StartError::TrustList(_))));
    }

    /// A trust list that is a symbolic link is read through it, but never
    /// saved: the save is refused and nothing is written, neither the
    /// link (it used to be replaced by a regular file, cutting the
    /// operator's link) nor the file it names (a planted link must not
    /// choose what the node overwrites).
    #[cfg(unix)]
    #[test]
    fn a_linked_list_is_read_but_never_saved() {
        let peer = |seed| Identity::from_seed(&[seed; 32]).peer_id();
        let old: TrustList = [peer(4)].into_iter().collect();
        let new: TrustList = [peer(3)].into_iter().collect();
        linked_file_is_read_but_never_saved(
            TRUST_FILE,
            &old.to_text(),
            |data| assert_eq!(data.load_trust().unwrap(), old),
            |data| data.save_trust(&new),
        );
    }

    /// The same for the address book (the node's background save fails
    /// with this error, logged, and is tried again later).
    #[test]
    #[cfg(unix)]
    fn a_linked_book_is_read_but_never_saved() {
        use crate::book_file::SavedBook;
        use peernet_proto::AddrSource;
        let book = |seed, addr: &str| {
            let mut book = SavedBook::new();
            let peer = Identity::from_seed(&[seed; 32]).peer_id();
            book.set(peer, [(addr.parse().unwrap(), AddrSource::Application)]);
            book
        };
        let (old, new) = (book(4, "192.0.2.4:4000"), book(3, "192.0.2.3:4000"));
        linked_file_is_read_but_never_saved(
            "book",
            &old.to_text(),
            |data| assert_eq!(data.load_book().unwrap(), old),
            |data| data.save_book(&new),
        );
    }

    /// `name` in a data directory, a symbolic link to a file elsewhere
    /// that holds `text`: `load` reads through it, `save` fails naming
    /// the link, and neither the link nor its target changes, with no
    /// temporary file left anywhere.
    #[cfg(unix)]
    fn linked_file_is_read_but_never_saved(
        name: &str,
        text: &str,
        load: impl Fn(&DataDir),
        save: impl Fn(&DataDir) -> io::Result<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        let elsewhere = dir.path().join("etc");
        fs::create_dir(&elsewhere).unwrap();
        let target = elsewhere.join("the-file");
        fs::write(&target, text).unwrap();
        let link = data.path().join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        load(&data);
        let err = save(&data).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let said = crate::ErrorChain(&err).to_string();
        let file = FileError::find(&err).expect("named").file;
        let named = format!("{file} {}: is a symbolic link", link.display());
        assert!(said.starts_with(&named), "{said}");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), text);
        // nothing staged anywhere
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1);
        assert_eq!(fs::read_dir(data.path()).unwrap().count(), 1);
    }

    /// The lock's new holder removes what a crash between staging and
    /// renaming left, once a minute old, and nothing else: a fresh one
    /// may be another writer's save under way.
    #[test]
    fn the_locks_holder_removes_temporary_files_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let keep = |name: &str, old: bool| {
            let path = dir.path().join(name);
            fs::write(&path, "x").unwrap();
            if old {
                let file = fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(an_hour_ago).unwrap();
            }
        };
        for name in ["trust.a1b2.tmp", "book.c3d4.tmp", "identity.e5f6.tmp"] {
            keep(name, true);
        }
        keep("trust.fresh.tmp", false);
        keep("notes.tmp", true);
        keep("trust", true);
        let _lock = data.try_lock().unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["lock", "notes.tmp", "trust", "trust.fresh.tmp"]);
    }

    /// A socket where a file of the directory should be is refused as
    /// not a regular file (its `stat` says so, before any open), and a
    /// save that fails names the file it could not write.
    #[cfg(unix)]
    #[test]
    fn a_socket_is_not_a_regular_file_and_a_failed_save_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(data.book_path()).unwrap();
        let err = data.load_book().unwrap_err();
        let crate::book_file::LoadBookError::Io(e) = &err else {
            panic!("{err}");
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{err}");
        fs::remove_file(data.book_path()).unwrap();
        fs::create_dir(data.book_path()).unwrap();
        let err = data
            .save_book(&crate::book_file::SavedBook::new())
            .unwrap_err();
        let path = data.book_path().display().to_string();
        assert!(err.to_string().contains(&path), "{err}");
    }
}
