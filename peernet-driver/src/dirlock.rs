//! One process at a time per data directory: an advisory lock (`flock` on
//! Unix, `LockFileEx` on Windows, through `fs4`) on the file `lock` in the
//! directory, and on the directory itself where it can be taken. A
//! directory the process may not write (mounted read-only) is locked all
//! the same, through descriptors opened for reading, and then saves
//! nothing ([`DataDir::try_lock`]).
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

use crate::persist::{DataDir, DataFile, FileError};
use crate::text::shown_path;

const LOCK_FILE: &str = "lock";

/// The data directory's lock, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    /// The lock file, locked (none: a directory taken without write
    /// access that has no lock file).
    _file: Option<File>,
    /// The directory itself, locked too where it can be (see
    /// [`DataDir::try_lock`]).
    _dir: Option<File>,
    /// Taken without write access: why the lock file could not be opened
    /// for writing.
    read_only: Option<io::ErrorKind>,
}

impl DirLock {
    /// Whether the lock was taken without write access (a directory
    /// mounted read-only, or one this process may not write): the
    /// [`DataDir`] it was taken of saves nothing ([`DataDir::try_lock`]).
    pub fn read_only(&self) -> bool {
        self.read_only.is_some()
    }
}

/// Why the data directory's lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it (e.g. a running `peernet serve`):
    /// `data directory /var/lib/node in use` (a control character in the
    /// path shown escaped, as [`FileError`] shows it).
    #[error("data directory {} in use", shown_path(dir))]
    InUse {
        /// The directory whose lock is held.
        dir: PathBuf,
    },
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
    /// # Without write access
    ///
    /// A directory this process may not write (mounted read-only, as a
    /// container's identity and trust list often are, or whose mode
    /// denies it: on Unix, the effective user's access to it) is still
    /// locked. Where the lock file cannot be opened for writing
    /// ([`io::ErrorKind::ReadOnlyFilesystem`],
    /// [`io::ErrorKind::PermissionDenied`]), the lock is taken through
    /// descriptors opened for reading only: the directory itself (on
    /// Unix) and its lock file if it has one, each exclusively, so that
    /// a second process is refused as it would be from a writable
    /// directory. The lock is then [`DirLock::read_only`], and from then
    /// on this `DataDir` (and its clones) saves nothing: every save
    /// ([`DataDir::save_trust`], the address book's) fails at once with
    /// an error of that kind that names the file and says so, writing
    /// nothing, even if the directory becomes writable meanwhile (until
    /// a lock is taken again with write access). A node started so runs
    /// with what it loaded: see
    /// [`NodeConfig::from_data_dir`](crate::NodeConfig::from_data_dir).
    /// A lock file this process may not write in a directory it may
    /// (Unix) is locked the same way, and the saves go on. Where the
    /// directory cannot be locked without write access (on Windows,
    /// without a lock file; on a file system whose locks need a
    /// descriptor open for writing, such as NFS) the open's error is
    /// returned, as before.
    ///
    /// A lock taken with write access takes the directory's too, where
    /// it can (a failure other than [`LockError::InUse`] is ignored: NFS,
    /// again), so that a process that may write the directory (root) and
    /// one that may not exclude each other even where there is no lock
    /// file for the second to lock.
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
        let lock = self.lock_at(&path).map_err(|e| match e {
            LockError::Io(e) => LockError::Io(FileError::io(DataFile::Lock, path, e)),
            e => e,
        })?;
        self.set_read_only(lock.read_only);
        if lock.read_only.is_none() {
            self.remove_stale_temps();
        }
        Ok(lock)
    }

    /// [`LockError::InUse`] of this directory.
    pub(crate) fn in_use(&self) -> LockError {
        LockError::InUse {
            dir: self.path().to_path_buf(),
        }
    }

    /// [`DataDir::try_lock`] of the lock file at `path`, whose errors do
    /// not name it (its caller does).
    fn lock_at(&self, path: &Path) -> Result<DirLock, LockError> {
        // (a link is refused by the open, with its own words)
        if std::fs::symlink_metadata(path)
            .is_ok_and(|meta| !meta.is_file() && !meta.file_type().is_symlink())
        {
            return Err(LockError::Io(not_regular()));
        }
        let file = match open_lock_file(path, true) {
            Ok(file) => file,
            Err(e) if no_write_access(&e) => return self.lock_read_only(path, e),
            Err(e) => return Err(LockError::Io(e)),
        };
        lock(self, &file)?;
        // (after the file's: a process of an older version locks the file
        // only)
        let dir = match crate::private_files::open_dir(self.path()) {
            Ok(dir) => match fs4::FileExt::try_lock(&dir) {
                Ok(()) => Some(dir),
                Err(fs4::TryLockError::WouldBlock) => return Err(self.in_use()),
                Err(fs4::TryLockError::Error(_)) => None,
            },
            Err(_) => None,
        };
        Ok(DirLock {
            _file: Some(file),
            _dir: dir,
            // (a lock file left writable in a directory that is not)
            read_only: unwritable(self.path()),
        })
    }

    /// The lock of a directory whose lock file could not be opened for
    /// writing (`denied`: why): the directory itself, and the lock file
    /// if there is one, each locked through a descriptor opened for
    /// reading. (Both: a process of an older version locks the file
    /// only.) Read-only, unless the directory itself may be written.
    fn lock_read_only(&self, path: &Path, denied: io::Error) -> Result<DirLock, LockError> {
        let kind = denied.kind();
        let without_write = |e: io::Error| {
            let why = format!("{denied}, and it could not be locked without write access: {e}");
            LockError::Io(io::Error::new(e.kind(), why))
        };
        let dir = if cfg!(unix) {
            let dir = crate::private_files::open_dir(self.path()).map_err(without_write)?;
            match fs4::FileExt::try_lock(&dir) {
                Ok(()) => Some(dir),
                Err(fs4::TryLockError::WouldBlock) => return Err(self.in_use()),
                Err(fs4::TryLockError::Error(e)) => return Err(without_write(e)),
            }
        } else {
            None
        };
        let file = match open_lock_file(path, false) {
            Ok(file) => {
                lock(self, &file).map_err(|e| match e {
                    LockError::Io(e) => without_write(e),
                    e => e,
                })?;
                Some(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_some() => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LockError::Io(denied)),
            Err(e) => return Err(without_write(e)),
        };
        Ok(DirLock {
            _file: file,
            _dir: dir,
            // (a lock file not writable in a directory that is: the saves
            // replace files, which the directory's mode allows)
            read_only: if cfg!(unix) {
                unwritable(self.path())
            } else {
                Some(kind)
            },
        })
    }
}

/// Whether `error`, of opening the lock file for writing, says the
/// directory may not be written (where it may still be locked).
fn no_write_access(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// Why the directory at `path` may not be written by this process (its
/// effective user: root may write a directory of mode 0555), if it may
/// not: [`io::ErrorKind::ReadOnlyFilesystem`] or
/// [`io::ErrorKind::PermissionDenied`].
fn unwritable(path: &Path) -> Option<io::ErrorKind> {
    #[cfg(unix)]
    {
        use rustix::fs::{Access, AtFlags, CWD, accessat};
        let denied = accessat(CWD, path, Access::WRITE_OK, AtFlags::EACCESS).err()?;
        let error = io::Error::from(denied);
        no_write_access(&error).then(|| error.kind())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Opens the lock file at `path`: for writing (`write`), created if it is
/// missing, or for reading only; never through a symbolic link, and
/// refusing anything but a regular file.
fn open_lock_file(path: &Path, write: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    if write {
        options.write(true).create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // (and, for a file swapped in after the caller's check, neither a
        // FIFO's wait nor a terminal's taking)
        options
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
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
        return Err(not_regular());
    }
    Ok(file)
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file: the lock file is the directory's own; remove it",
    )
}

/// Locks `file`, the lock file of `data`, exclusively, without waiting.
fn lock(data: &DataDir, file: &File) -> Result<(), LockError> {
    match fs4::FileExt::try_lock(file) {
        Ok(()) => Ok(()),
        Err(fs4::TryLockError::WouldBlock) => Err(data.in_use()),
        Err(fs4::TryLockError::Error(e)) => Err(LockError::Io(e)),
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
        assert!(matches!(data.try_lock(), Err(LockError::InUse { .. })));
        drop(held);
        let _again = data.try_lock().unwrap();
    }

    /// Brief s56: an operator who removes the lock file of a running
    /// node (taking it for a stale pid file) does not let a second writer
    /// in: the new lock file is locked, but the directory, locked too, is
    /// not free. (Checked s56: so already.)
    #[test]
    fn a_lock_file_removed_while_held_lets_no_second_holder_in() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let held = data.try_lock().unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        let second = DataDir::open(dir.path()).unwrap().try_lock();
        assert!(matches!(second, Err(LockError::InUse { .. })), "{second:?}");
        drop(held);
        let _again = data.try_lock().unwrap();
    }

    /// Review s54 (newcomer P2): `data directory in use` named no
    /// directory, so an application that starts several nodes (or a
    /// script, several `peernet serve`) could not tell which one. The
    /// error names it, a control character in its name escaped as a
    /// file's error escapes it; from a second lock and from a second
    /// node of one config alike.
    #[test]
    fn a_directory_in_use_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node\nA\u{1b}[2J");
        std::fs::create_dir(&dir).unwrap();
        let shown = format!("{}/node\\nA\\u{{1b}}[2J", tmp.path().display());
        let said = format!("data directory {shown} in use");
        let config = crate::NodeConfig::from_data_dir(&dir).unwrap();
        let data = DataDir::open(&dir).unwrap();
        match data.try_lock() {
            Err(e @ LockError::InUse { .. }) => {
                assert_eq!(e.to_string(), said);
                let LockError::InUse { dir: named } = e else {
                    unreachable!()
                };
                assert_eq!(named, dir);
            }
            other => panic!("{other:?}"),
        }
        let _first = config.take_dir_lock().unwrap();
        let Err(second) = config.take_dir_lock() else {
            panic!("the lock taken twice")
        };
        assert!(
            matches!(second, crate::StartError::Lock(LockError::InUse { .. })),
            "{second:?}"
        );
        assert_eq!(crate::ErrorChain(&second).to_string(), said);
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

    /// A directory made not writable (mode 0555) for the time it is
    /// held; its mode is given back when dropped, so that it can be
    /// removed.
    #[cfg(unix)]
    pub(crate) struct Unwritable<'a>(&'a Path);

    #[cfg(unix)]
    impl Unwritable<'_> {
        /// `dir`, made not writable; `None` (and why, printed) if the mode
        /// does not stop this process writing it (root's may write it
        /// anyway): the test is skipped.
        pub(crate) fn make(dir: &Path) -> Option<Unwritable<'_>> {
            use std::os::unix::fs::PermissionsExt;
            let mode = |mode| std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(dir, mode(0o555)).unwrap();
            let held = Unwritable(dir);
            let probe = dir.join("probe");
            if std::fs::File::create(&probe).is_ok() {
                std::fs::remove_file(&probe).unwrap();
                eprintln!(
                    "skipped: a directory of mode 0555 is writable by this process (root?), \
                     so a directory it may not write cannot be made"
                );
                return None;
            }
            Some(held)
        }
    }

    #[cfg(unix)]
    impl Drop for Unwritable<'_> {
        fn drop(&mut self) {
            use std::os::unix::fs::PermissionsExt;
            let writable = std::fs::Permissions::from_mode(0o700);
            let _ = std::fs::set_permissions(self.0, writable);
        }
    }

    /// A data directory this process may not write (a read-only mount,
    /// as a container's identity and trust list often are; here mode
    /// 0555) is locked through read-only descriptors, whether it has a
    /// lock file (mode 0400 here, as on a read-only mount) or not: it
    /// was refused (`PermissionDenied`: the lock file was opened for
    /// writing, or created). A second lock of it is refused as ever, and
    /// so is a lock with write access taken meanwhile (the directory made
    /// writable again); the directory's saves are refused at once.
    #[cfg(unix)]
    #[test]
    fn a_directory_it_may_not_write_is_locked_read_only() {
        use std::os::unix::fs::PermissionsExt;
        for with_lock_file in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let data = DataDir::open(tmp.path().join("node")).unwrap();
            let lock_file = data.path().join(LOCK_FILE);
            if with_lock_file {
                drop(data.try_lock().unwrap());
                let read_only = std::fs::Permissions::from_mode(0o400);
                std::fs::set_permissions(&lock_file, read_only).unwrap();
            }
            let Some(unwritable) = Unwritable::make(data.path()) else {
                return;
            };
            let held = data.try_lock().unwrap();
            assert!(held.read_only());
            assert!(matches!(data.try_lock(), Err(LockError::InUse { .. })));
            let err = data.save_trust(&Default::default()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            let said = crate::ErrorChain(&err).to_string();
            assert!(said.contains("not saved"), "{said}");
            assert_eq!(lock_file.exists(), with_lock_file);
            drop(unwritable);
            assert!(matches!(data.try_lock(), Err(LockError::InUse { .. })));
            drop(held);
            let writable = data.try_lock().unwrap();
            assert!(!writable.read_only());
            data.save_trust(&Default::default()).unwrap();
        }
    }

    /// A node's config is made from a data directory it may not write
    /// (its identity made before; no lock file), with one warning that
    /// names the directory; a second one is refused. It was refused
    /// (`lock file P: Permission denied`), so an identity and trust list
    /// mounted read-only could not be used.
    #[cfg(unix)]
    #[test]
    fn a_node_starts_from_a_directory_it_may_not_write_with_one_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let own = data.load_or_create_identity().unwrap().peer_id();
        let Some(_unwritable) = Unwritable::make(data.path()) else {
            return;
        };
        let logs = crate::test_log::Captured::default();
        let start = || crate::NodeConfig::from_data_dir(data.path());
        let config = tracing::subscriber::with_default(logs.clone(), start).unwrap();
        assert_eq!(config.peer_id(), own);
        let path = format!("path={}", data.path().display());
        assert_eq!(*logs.0.lock().unwrap(), [path]);
        let second = crate::NodeConfig::from_data_dir(data.path()).unwrap_err();
        assert!(
            matches!(second, crate::StartError::Lock(LockError::InUse { .. })),
            "{second}"
        );
    }

    /// A lock file left writable in a directory that is not: the lock is
    /// taken with it, and the directory's saves are refused at once (a
    /// save would fail to create its temporary file).
    #[cfg(unix)]
    #[test]
    fn a_writable_lock_file_in_a_directory_that_is_not_saves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        drop(data.try_lock().unwrap());
        let Some(_unwritable) = Unwritable::make(data.path()) else {
            return;
        };
        let held = data.try_lock().unwrap();
        assert!(held.read_only());
        let err = data.save_trust(&Default::default()).unwrap_err();
        assert!(crate::ErrorChain(&err).to_string().contains("not saved"));
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
        assert!(matches!(data.try_lock(), Err(LockError::InUse { .. })));
        drop(write);
        assert!(released.wait().now_or_never().is_some());
        let _again = data.try_lock().unwrap();
    }
}
