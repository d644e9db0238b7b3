//! What a node last read or wrote of each file it replaces in its data
//! directory (`trust`, `book`), so that a save never overwrites an edit
//! an operator made while the node runs.
//!
//! The node reads its files at start, and from then on writes what it
//! holds. An operator who removed a peer from `trust` by hand while the
//! node ran saw the peer come back at the next `pair`: a revocation
//! silently undone. So before each replacement the file on disk is
//! compared with what the node last saw of it (its length and a digest,
//! or its absence); if they differ, nothing is written and the save fails
//! with [`ChangedOnDisk`]. A trust change reads the file again first and
//! makes its change to that (`Node::pair`, `Node::unpair`), so this
//! refuses only what changed in between; a refused book save reads the
//! file again and is made again, with the operator's lines of the peers
//! the edit changed (`book_edits.rs`). A file that does not load is not
//! noted (`DataDir::read_noted`), so it stays refused. A restart takes the
//! edit in.
//!
//! The comparison and the rename are two steps: an edit made between them
//! (a millisecond) is still overwritten. A file the node never read or
//! wrote is not compared.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::file_error::DataFile;
use crate::private_files::open_regular;
use crate::text::shown_path;

/// A save refused because the file changed on disk since the node read or
/// last wrote it (the payload of the [`io::Error`] a save returns, of kind
/// [`io::ErrorKind::Other`]; find it with
/// [`io::Error::get_ref`] and `downcast_ref`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{file} {} changed on disk since it was last read or written here: not overwritten (read it \
     again and make the change to that)",
    shown_path(path)
)]
#[non_exhaustive]
pub struct ChangedOnDisk {
    /// Which file it is (as a [`FileError`](crate::persist::FileError)
    /// names it: `trust list <path> changed on disk ...`).
    pub file: DataFile,
    /// The file.
    pub path: PathBuf,
}

impl ChangedOnDisk {
    /// Whether `error` is a save refused for this reason.
    pub fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<ChangedOnDisk>().is_some())
    }
}

/// What the node last saw of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// There was no file.
    Absent,
    /// The file held `len` bytes with this digest.
    Held { len: u64, digest: u64 },
}

impl Stamp {
    fn of(bytes: Option<&[u8]>) -> Stamp {
        match bytes {
            None => Stamp::Absent,
            Some(bytes) => Stamp::Held {
                len: bytes.len() as u64,
                digest: digest(bytes),
            },
        }
    }
}

/// Not a cryptographic digest: whoever can write the file already
/// chooses what the node trusts at its next start. It tells an edit from
/// the node's own bytes.
fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// The stamps of a data directory's files, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct LastSeen {
    files: Mutex<BTreeMap<&'static str, Stamp>>,
}

impl LastSeen {
    /// The node read `name` (`None`: it was missing) or wrote `bytes` to it.
    pub(crate) fn note(&self, name: &'static str, bytes: Option<&[u8]>) {
        self.lock().insert(name, Stamp::of(bytes));
    }

    /// Whether the node last saw `name` as a file (read or written), not
    /// missing: a file missing now was removed since.
    pub(crate) fn held(&self, name: &str) -> bool {
        matches!(self.lock().get(name), Some(Stamp::Held { .. }))
    }

    /// Refuses with [`ChangedOnDisk`] if the file `file` at `path` is not
    /// what the node last saw of it. Reads at most one byte more than the
    /// node saw; a file that is not a regular file any more, or cannot be
    /// opened, counts as changed.
    pub(crate) fn check(&self, file: DataFile, path: &Path) -> io::Result<()> {
        let Some(seen) = self.lock().get(file.file_name()).copied() else {
            return Ok(());
        };
        if now(path, seen) == seen {
            return Ok(());
        }
        // (not logged here: the caller reads the file again, or reports
        // the error)
        Err(io::Error::other(ChangedOnDisk {
            file,
            path: path.to_owned(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Stamp>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The file at `path` as a stamp, read only as far as tells it from `seen`.
fn now(path: &Path, seen: Stamp) -> Stamp {
    let changed = Stamp::Held {
        len: u64::MAX,
        digest: 0,
    };
    let file = match open_regular(path) {
        Ok((file, _)) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Stamp::Absent,
        Err(_) => return changed,
    };
    let Stamp::Held { len, .. } = seen else {
        return changed;
    };
    let mut bytes = Vec::new();
    match file.take(len.saturating_add(1)).read_to_end(&mut bytes) {
        Ok(_) => Stamp::of(Some(&bytes)),
        Err(_) => changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_nodes_own_bytes_pass_and_an_edit_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust");
        let seen = LastSeen::default();
        // never seen: not compared
        fs::write(&path, b"anything").unwrap();
        seen.check(DataFile::TrustList, &path).unwrap();
        seen.note("trust", Some(b"anything"));
        seen.check(DataFile::TrustList, &path).unwrap();
        // same length, other bytes
        fs::write(&path, b"anythinG").unwrap();
        assert!(ChangedOnDisk::is(
            &seen.check(DataFile::TrustList, &path).unwrap_err()
        ));
        // longer, shorter, gone
        fs::write(&path, b"anything more").unwrap();
        assert!(seen.check(DataFile::TrustList, &path).is_err());
        fs::write(&path, b"any").unwrap();
        assert!(seen.check(DataFile::TrustList, &path).is_err());
        fs::remove_file(&path).unwrap();
        let err = seen.check(DataFile::TrustList, &path).unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
    }

    #[test]
    fn a_file_seen_missing_must_still_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book");
        let seen = LastSeen::default();
        seen.note("book", None);
        seen.check(DataFile::Book, &path).unwrap();
        fs::write(&path, b"").unwrap();
        assert!(
            seen.check(DataFile::Book, &path).is_err(),
            "an empty file is not no file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_place_of_the_file_counts_as_changed_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust");
        let seen = LastSeen::default();
        seen.note("trust", Some(b"x"));
        // (no `mkfifo` process: a child holds this process's descriptors,
        // the other tests' directory locks among them, until it exec'd)
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert!(seen.check(DataFile::TrustList, &path).is_err());
    }
}
