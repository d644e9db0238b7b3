//! One process at a time per data directory: an advisory lock (`flock` on
//! Unix, `LockFileEx` on Windows, through `fs4`) on the file `lock` in the
//! directory.
//!
//! A process that changes the directory (a node started from it with
//! `NodeConfig::from_data_dir`, until it has shut down; `peernet pair`,
//! `peernet unpair`) holds the lock while it does; a second one is
//! refused at once with [`LockError::InUse`] rather than letting two
//! writers each replace the other's trust list or address book. Readers
//! need no lock: every file is replaced atomically, so a reader sees the
//! old file or the new one. The lock is the kernel's, so it is released
//! when its holder exits, however it exits; the lock file itself is never
//! removed (removing it would let two processes lock two different
//! files).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

use crate::persist::{DataDir, DataFile, FileError};

const LOCK_FILE: &str = "lock";

/// The data directory's lock, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Why the data directory's lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it (e.g. a running `peernet serve`).
    #[error("data directory in use")]
    InUse,
    /// The lock file could not be opened or locked: the [`io::Error`] of
    /// its own kind, whose payload names the file ([`FileError`] of
    /// [`DataFile::Lock`]).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl DataDir {
    /// Takes the directory's lock without waiting: [`LockError::InUse`]
    /// if another process (or another [`DirLock`] of this one) holds it.
    /// The new holder removes the temporary files a crash left behind.
    ///
    /// A lock file that is a symbolic link is refused
    /// ([`io::ErrorKind::InvalidInput`]), and nothing is created or locked
    /// through it: whoever planted the link would choose a file outside
    /// the directory for the node to create (as root, `/etc/nologin`),
    /// as the trust list's and book's saves refuse to write through one.
    /// A lock file that is not a regular file (a FIFO, a device, a
    /// directory) is refused with [`io::ErrorKind::InvalidInput`] before
    /// it is opened, as the directory's other files are: opening a device
    /// can act on it.
    ///
    /// A lock let go by this process can still be held for a moment by a
    /// child process it is starting: a child holds a copy of every file
    /// descriptor of its parent until it has exec'd (on Unix, `flock`
    /// belongs to the open file, which the copy shares). A process that
    /// starts a node of a directory right after another of its nodes let
    /// go of it, while it spawns processes, may get [`LockError::InUse`]
    /// for that moment, and can try again.
    pub fn try_lock(&self) -> Result<DirLock, LockError> {
        let path = self.path().join(LOCK_FILE);
        self.lock_at(&path).map_err(|e| match e {
            LockError::Io(e) => LockError::Io(FileError::io(DataFile::Lock, path, e)),
            e => e,
        })
    }

    /// [`DataDir::try_lock`] of the lock file at `path`, whose errors do
    /// not name it (its caller does).
    fn lock_at(&self, path: &Path) -> Result<DirLock, LockError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // (and, for a file swapped in after the check below, neither
            // a FIFO's wait nor a terminal's taking)
            options
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
        }
        let not_regular = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file: the lock file is the directory's own; remove it",
            )
        };
        // (a link is refused by the open, with its own words)
        if std::fs::symlink_metadata(path)
            .is_ok_and(|meta| !meta.is_file() && !meta.file_type().is_symlink())
        {
            return Err(LockError::Io(not_regular()));
        }
        let file = options.open(path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a symbolic link: the lock file is the directory's own; remove the link",
                );
            }
            e
        })?;
        if !file.metadata()?.is_file() {
            return Err(LockError::Io(not_regular()));
        }
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {
                self.remove_stale_temps();
                Ok(DirLock { _file: file })
            }
            Err(fs4::TryLockError::WouldBlock) => Err(LockError::InUse),
            Err(fs4::TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }
}

/// The lock as a node holds it: shared (as an `Arc`) by the node and by
/// every write to the directory in progress, and let go when the last of
/// them is done with it, which [`Released`] tells the node's `shutdown`.
pub(crate) struct NodeLock {
    lock: Option<DirLock>,
    released: Arc<Released>,
}

/// Whether a [`NodeLock`] was let go, for whoever waits on it.
#[derive(Default)]
pub(crate) struct Released {
    done: AtomicBool,
    event: Event,
}

impl NodeLock {
    pub(crate) fn new(lock: DirLock) -> NodeLock {
        NodeLock {
            lock: Some(lock),
            released: Arc::default(),
        }
    }

    /// What tells when this lock is let go.
    pub(crate) fn released(&self) -> Arc<Released> {
        self.released.clone()
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        // The file first: whoever is told may take the lock at once.
        drop(self.lock.take());
        self.released.done.store(true, Ordering::Release);
        self.released.event.notify(usize::MAX);
    }
}

impl Released {
    /// Resolves once the lock is let go.
    pub(crate) async fn wait(&self) {
        loop {
            let released = self.event.listen();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let held = data.try_lock().unwrap();
        // flock locks belong to the open file: a second open is refused
        // as a second process would be.
        assert!(matches!(data.try_lock(), Err(LockError::InUse)));
        drop(held);
        let _again = data.try_lock().unwrap();
    }

    /// A lock file planted as a symbolic link is refused, and no file is
    /// created through it: it used to be opened with `O_CREAT` through
    /// the link, so a node (run as root) created an empty file wherever
    /// the link pointed.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_link_creates_nothing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        let target = dir.path().join("nologin");
        std::os::unix::fs::symlink(&target, data.path().join(LOCK_FILE)).unwrap();
        let err = data.try_lock().unwrap_err();
        let LockError::Io(e) = &err else {
            panic!("{err}")
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("symbolic link"),
            "{err}"
        );
        assert!(!target.exists(), "a file was created through the link");
    }

    /// A lock file that is a FIFO (a device would be the same) is refused
    /// without being opened; it used to be opened and locked.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lock_file_that_is_not_a_regular_file_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("node")).unwrap();
        let path = data.path().join(LOCK_FILE);
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::RUSR).unwrap();
        let opens = crate::private_files::tests::Opens::watch(&path);
        let err = data.try_lock().unwrap_err();
        assert!(
            crate::ErrorChain(&err)
                .to_string()
                .contains("not a regular file"),
            "{err}"
        );
        assert_eq!(opens.count(), 0, "the FIFO was opened");
    }

    #[test]
    fn a_node_lock_is_free_when_its_release_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let held = Arc::new(NodeLock::new(data.try_lock().unwrap()));
        let released = held.released();
        let write = held.clone();
        drop(held);
        assert!(released.wait().now_or_never().is_none(), "a write holds it");
        assert!(matches!(data.try_lock(), Err(LockError::InUse)));
        drop(write);
        assert!(released.wait().now_or_never().is_some());
        let _again = data.try_lock().unwrap();
    }
}
