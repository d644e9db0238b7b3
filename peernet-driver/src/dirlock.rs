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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

use crate::persist::DataDir;

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
    /// The lock file could not be opened or locked.
    #[error("lock file: {0}")]
    Io(#[from] io::Error),
}

impl DataDir {
    /// Takes the directory's lock without waiting: [`LockError::InUse`]
    /// if another process (or another [`DirLock`] of this one) holds it.
    /// The new holder removes the temporary files a crash left behind.
    pub fn try_lock(&self) -> Result<DirLock, LockError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(self.path().join(LOCK_FILE))?;
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
