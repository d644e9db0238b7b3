//! Reading the data directory's files without trusting them: regular
//! files only, read up to a bound, and (Unix) refused when other users may
//! change them or read a secret.
//!
//! A file's type is checked before it is opened (a `stat` that follows
//! links, as the open does): opening a device can act on it (a tape
//! rewinds, a watchdog is armed, a terminal becomes the controlling
//! one), so nothing but a regular file is opened (on Linux and Android
//! not even one swapped in between the check and the open, which a
//! handle that opens nothing, `O_PATH`, shows first). Every check is then
//! made on the file that was opened (its `fstat`), which must be the
//! file checked before (same device and inode), not on the path again
//! afterwards, so a file swapped in between the check and the read is
//! never the one read.
//!
//! Who may touch them: the directory and its files are the node's
//! security boundary (whoever can replace `trust` chooses who the node
//! trusts), so, as ssh does for `~/.ssh`:
//! - a directory or file that other users may write, or an identity that
//!   they may read, is refused with [`io::ErrorKind::PermissionDenied`]
//!   and the `chmod` that mends it; one its group may write is used, with
//!   a warning (a umask of `002` makes them so);
//! - one owned by another user than the process's (but root) is refused
//!   with [`io::ErrorKind::PermissionDenied`]: its owner can change its
//!   mode, whatever the mode is today.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

use zeroize::Zeroizing;

use crate::text::shown_path;

/// What others may not do to a file of the data directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Private {
    /// Write it (its group may, with a warning): the directory, the
    /// lists.
    Writes,
    /// Read or write it: the identity's secret key.
    All,
}

/// Reads a whole file that must be a regular file of at most `max` bytes.
///
/// A FIFO, a device (`/dev/zero`), a directory or a socket, named or
/// linked to, is refused with [`io::ErrorKind::InvalidInput`] before it
/// is opened (a file swapped in between that check and the open is
/// refused, never read), and a file larger than `max` with
/// [`io::ErrorKind::InvalidData`], having read at most `max + 1` bytes.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, _) = open_regular(path)?;
    read_bounded(file, max)
}

/// [`read_regular`], refused (see the [module docs](self)) when others
/// may touch the opened file as `private` forbids; `what` names it in the
/// warning of a file its group may write. (No error names the file: its
/// caller does, with a [`FileError`](crate::file_error::FileError).)
pub(crate) fn read_private(
    path: &Path,
    max: u64,
    private: Private,
    what: &str,
) -> io::Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    check_metadata(&meta, path, private, what)?;
    read_bounded(file, max)
}

/// [`read_private`] for a secret of at most `max` bytes (the identity
/// file, which others may not read: [`Private::All`]). Read into one
/// block of `max + 1` bytes that never grows and is wiped when dropped:
/// a vector grown as the bytes come frees each smaller block it leaves,
/// with what was read so far in it, unwiped, and its last block too.
pub(crate) fn read_secret(path: &Path, max: usize, what: &str) -> io::Result<Zeroizing<Vec<u8>>> {
    let (file, meta) = open_regular(path)?;
    check_metadata(&meta, path, Private::All, what)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(max.saturating_add(1)));
    read_bounded_into(file, max as u64, &mut bytes)?;
    Ok(bytes)
}

/// Refuses the directory at `path` if others may write it or it is
/// another user's.
pub(crate) fn check_dir(path: &Path) -> io::Result<()> {
    let dir = open_dir(path)?;
    // (a file's error is named by its caller, the directory's here)
    check_metadata(&dir.metadata()?, path, Private::Writes, "data directory").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("data directory {}: {e}", shown_path(path)),
        )
    })
}

/// Opens the directory at `path` (to read its metadata or sync it); on
/// Unix anything but a directory is refused by the open itself
/// (`O_DIRECTORY`: `ENOTDIR`, before a device's own open runs), so a
/// path that is (or, swapped in, turns into) a device is never opened.
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_DIRECTORY | libc::O_NOCTTY | libc::O_NONBLOCK,
    );
    options.open(path)
}

/// How many times [`open_regular`] looks again at a path whose file was
/// replaced between its check and its open, before refusing it.
const OPEN_ATTEMPTS: usize = 3;

/// Opens `path` for reading, refusing anything but a regular file, and
/// without opening anything else: opening a device can act (a tape
/// rewinds, a watchdog is armed, a terminal becomes the process's
/// controlling one), so the type is checked first with a `stat` that
/// follows links as the open does, then the file is opened (on Unix
/// non-blocking and with `O_NOCTTY`, so that a FIFO or a terminal swapped
/// in meanwhile neither hangs nor is taken), and the opened file must be
/// the one checked (same device and inode). On Linux and Android the path
/// is first taken as a handle that opens nothing (`O_PATH`) and reopened
/// only if it is the file checked, so what is swapped in meanwhile is not
/// opened at all.
///
/// A file replaced between its check and its open (an atomic save by
/// another process, or a swap meant to get a device opened) is never
/// read: the path is checked again from the start, and refused with
/// [`io::ErrorKind::Other`] if it changed every time.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let mut attempts = 0;
    loop {
        let checked = fs::metadata(path)?;
        if !checked.is_file() {
            return Err(not_regular(&checked));
        }
        match open_checked(path, &checked) {
            Err(e) if is_replaced(&e) && attempts + 1 < OPEN_ATTEMPTS => attempts += 1,
            opened => return opened,
        }
    }
}

/// Opens `path`, which `checked` (its `stat`) says is a regular file, and
/// refuses it if the file opened is not that one.
fn open_checked(path: &Path, checked: &Metadata) -> io::Result<(File, Metadata)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let opened = reopened(path, checked, &options);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let opened = options.open(path);
    let file = match opened {
        Ok(file) => file,
        // (a socket swapped in after the check fails to open, before its
        // type can be looked at)
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(not_regular_as("a socket")),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !same_file(checked, &meta) {
        return Err(io::Error::other(Replaced));
    }
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok((file, meta))
}

/// Linux and Android: `path` taken as a handle only (`O_PATH`, which runs
/// no device's or FIFO's open), and opened with `options` through
/// `/proc/self/fd` only once the handle shows the file checked: what is
/// swapped in after the check is refused unopened. (Without `/proc`, the
/// path is opened as elsewhere, and what was opened is checked after.)
#[cfg(any(target_os = "linux", target_os = "android"))]
fn reopened(path: &Path, checked: &Metadata, options: &OpenOptions) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    if !same_file(checked, &handle.metadata()?) {
        return Err(io::Error::other(Replaced));
    }
    match options.open(format!("/proc/self/fd/{}", handle.as_raw_fd())) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => options.open(path),
        opened => opened,
    }
}

/// A file that is not a regular one, `meta` saying what it is instead:
/// the error says what it is and what to do (review s56: "not a regular
/// file" alone left the operator guessing).
fn not_regular(meta: &Metadata) -> io::Error {
    let kind = meta.file_type();
    #[cfg(unix)]
    let special = {
        use std::os::unix::fs::FileTypeExt;
        match () {
            () if kind.is_fifo() => Some("a FIFO"),
            () if kind.is_socket() => Some("a socket"),
            () if kind.is_block_device() || kind.is_char_device() => Some("a device"),
            () => None,
        }
    };
    #[cfg(not(unix))]
    let special = None;
    not_regular_as(match special {
        _ if kind.is_dir() => "a directory",
        Some(special) => special,
        None => "something else",
    })
}

/// [`not_regular`] of a file known to be `what` ("a FIFO").
fn not_regular_as(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "not a regular file ({what}): nothing was read from it; move it away and put the \
             regular file in its place"
        ),
    )
}

/// The file at a path was replaced between its check and its open, each
/// time it was looked at: the file opened was not read.
#[derive(Debug, thiserror::Error)]
#[error("replaced by another file while it was being opened (not read): try again")]
struct Replaced;

fn is_replaced(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Replaced>().is_some())
}

/// Whether `a` and `b` are the metadata of one file (Unix: its device and
/// inode; elsewhere, that both are regular files).
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.is_file() && b.is_file()
    }
}

fn read_bounded(file: File, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_bounded_into(file, max, &mut bytes)?;
    Ok(bytes)
}

/// Reads at most `max + 1` bytes of `file` into `bytes` (which grows only
/// if its capacity is below that), refusing a file of more than `max`.
fn read_bounded_into(file: File, max: u64, bytes: &mut Vec<u8>) -> io::Result<()> {
    // (`u64::MAX`, no bound in effect, is read to the end: not an
    // overflow)
    io::Read::read_to_end(&mut io::Read::take(file, max.saturating_add(1)), bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(())
}

fn check_metadata(meta: &Metadata, path: &Path, private: Private, what: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let denied = |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        let (owner, me) = (meta.uid(), rustix::process::geteuid().as_raw());
        if owner != me && owner != 0 {
            return denied(format!(
                "belongs to another user (uid {owner}; this process runs as uid {me}): run \
                 `chown {me} {}`",
                shown_path(path)
            ));
        }
        let mode = meta.mode() & 0o777;
        let (refused, fix) = match private {
            Private::Writes => (mode & 0o002, "o-w"),
            Private::All => (mode & 0o077, "go-rwx"),
        };
        if refused != 0 {
            return denied(format!(
                "open to other users (mode {mode:03o}): run `chmod {fix} {}`",
                shown_path(path)
            ));
        }
        if private == Private::Writes && mode & 0o020 != 0 {
            tracing::warn!(path = %shown_path(path), mode = format!("{mode:03o}"), "{what} is writable by its group");
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, path, private, what);
    Ok(())
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    /// Watches `path` for its opens (inotify's `IN_OPEN`, queued by the
    /// kernel as the open happens; a `stat` queues nothing).
    #[cfg(target_os = "linux")]
    pub(crate) struct Opens(rustix::fd::OwnedFd);

    #[cfg(target_os = "linux")]
    impl Opens {
        pub(crate) fn watch(path: &Path) -> Opens {
            use rustix::fs::inotify;
            let fd = inotify::init(inotify::CreateFlags::NONBLOCK).unwrap();
            inotify::add_watch(&fd, path, inotify::WatchFlags::OPEN).unwrap();
            Opens(fd)
        }

        /// How many opens were seen since the last call.
        pub(crate) fn count(&self) -> usize {
            let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
            let mut events = rustix::fs::inotify::Reader::new(&self.0, &mut buf);
            let mut n = 0;
            loop {
                match events.next() {
                    Ok(_) => n += 1,
                    Err(rustix::io::Errno::AGAIN) => return n,
                    Err(e) => panic!("inotify: {e}"),
                }
            }
        }
    }

    /// A FIFO (and, where this process may make one, a character device),
    /// named directly or through a symbolic link, is refused as "not a
    /// regular file" without being opened: opening a device can act (a
    /// tape rewinds, a watchdog is armed). It used to be opened, then
    /// looked at. The watch is checked to see an open of the same file.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_that_is_not_regular_is_refused_without_being_opened() {
        use rustix::fs::{CWD, FileType, Mode, makedev, mkfifoat, mknodat};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifoat(CWD, &fifo, Mode::RUSR | Mode::WUSR).unwrap();
        let mut specials = vec![fifo];
        let null = dir.path().join("null");
        match mknodat(
            CWD,
            &null,
            FileType::CharacterDevice,
            Mode::RUSR,
            makedev(1, 3),
        ) {
            Ok(()) => specials.push(null),
            Err(e) => eprintln!("no character device of its own ({e}): the FIFO only"),
        }
        for special in specials {
            let link = dir.path().join("link");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&special, &link).unwrap();
            let opens = Opens::watch(&special);
            for path in [&special, &link] {
                let err = read_regular(path, 16).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
                assert!(
                    err.to_string().starts_with("not a regular file (a "),
                    "{err}"
                );
                let err = read_private(path, 16, Private::Writes, "trust list").unwrap_err();
                assert!(
                    err.to_string().starts_with("not a regular file (a "),
                    "{err}"
                );
            }
            assert_eq!(opens.count(), 0, "{} was opened", special.display());
            // (the watch sees an open of that file; a device may not be
            // opened at all where this runs, a mount with `nodev`)
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&special);
            match opened {
                Ok(_) => assert_eq!(opens.count(), 1, "{}", special.display()),
                Err(e) => {
                    assert!(special.ends_with("null"), "{e}");
                    eprintln!("{} does not open here ({e})", special.display());
                }
            }
        }
        // the system's own devices (not watched: other processes open them)
        for device in ["/dev/null", "/dev/zero"] {
            let link = dir.path().join("device");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(device, &link).unwrap();
            let err = read_regular(&link, 16).unwrap_err();
            let said = err.to_string();
            assert!(
                said.starts_with("not a regular file (a device)"),
                "{device}: {said}"
            );
        }
    }

    /// The data directory's path is opened only if it is a directory
    /// (`O_DIRECTORY`): a file there is refused by the open itself. It
    /// used to be opened, and a regular file passed the check.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_data_directory_that_is_not_a_directory_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node");
        fs::write(&file, "x").unwrap();
        let opens = Opens::watch(&file);
        let err = check_dir(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        assert_eq!(opens.count(), 0, "the file was opened");
        check_dir(dir.path()).unwrap();
    }

    /// `dir/trust`, holding `checked`, and its metadata as `open_regular`
    /// takes it before it opens; a hard link `dir/kept` keeps its inode,
    /// so that no file made after reuses the number.
    fn checked_file(dir: &Path) -> (std::path::PathBuf, Metadata) {
        let path = dir.join("trust");
        fs::write(&path, "checked").unwrap();
        fs::hard_link(&path, dir.join("kept")).unwrap();
        let checked = fs::metadata(&path).unwrap();
        (path, checked)
    }

    /// A file replaced between its check and its open is refused, not
    /// read: another regular file, or a link to a FIFO that the swap
    /// meant to get opened. (The check is given as the metadata
    /// `open_regular` takes before it opens.)
    #[test]
    fn a_file_replaced_after_its_check_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, checked) = checked_file(dir.path());
        let (_, meta) = open_checked(&path, &checked).unwrap();
        assert_eq!(meta.len(), 7);
        // an atomic replacement: another inode under the same name
        let other = dir.path().join("other");
        fs::write(&other, "swapped").unwrap();
        fs::rename(&other, &path).unwrap();
        let err = open_checked(&path, &checked).unwrap_err();
        assert!(is_replaced(&err), "{err}");
        assert!(err.to_string().contains("replaced"), "{err}");
        // a link to a FIFO swapped in (opened without blocking, not read)
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&fifo, &path).unwrap();
        let err = open_checked(&path, &checked).unwrap_err();
        assert!(is_replaced(&err), "{err}");
        // checked again from the start, the link is refused before opening
        let err = read_regular(&path, 16).unwrap_err();
        assert!(
            err.to_string().starts_with("not a regular file (a "),
            "{err}"
        );
    }

    /// Review s45: what is swapped in between the check and the open (a
    /// link to a FIFO here; to `/dev/watchdog` or a tape, the same) is
    /// refused without being opened. It used to be opened, then refused
    /// as not the file checked: the open, which can act, had happened.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_swapped_in_after_its_check_is_not_opened() {
        use rustix::fs::{CWD, Mode, mkfifoat};
        let dir = tempfile::tempdir().unwrap();
        let (path, checked) = checked_file(dir.path());
        let fifo = dir.path().join("fifo");
        mkfifoat(CWD, &fifo, Mode::RUSR | Mode::WUSR).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&fifo, &path).unwrap();
        let opens = Opens::watch(&fifo);
        let err = open_checked(&path, &checked).unwrap_err();
        assert!(is_replaced(&err), "{err}");
        assert_eq!(opens.count(), 0, "the FIFO swapped in was opened");
        // the file checked, still there, is read as before
        fs::remove_file(&path).unwrap();
        fs::hard_link(dir.path().join("kept"), &path).unwrap();
        let (file, meta) = open_checked(&path, &checked).unwrap();
        assert_eq!(meta.len(), 7);
        assert_eq!(read_bounded(file, 16).unwrap(), b"checked");
    }

    /// Review s48: `read_regular` is public, and a bound of `u64::MAX`
    /// (none in effect) overflowed `max + 1`: a panic in a debug build, a
    /// bound of 0 (every file "larger than" it) in a release one.
    #[test]
    fn the_largest_bound_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trust");
        fs::write(&file, "whole").unwrap();
        assert_eq!(read_regular(&file, u64::MAX).unwrap(), b"whole");
        assert_eq!(read_regular(&file, 5).unwrap(), b"whole");
        let err = read_regular(&file, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    /// A file or directory of another user is refused, naming the chown
    /// that mends it; root's are used. Changing a file's owner needs
    /// root: run as another user, the test says so and checks nothing.
    #[test]
    fn another_users_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trust");
        fs::write(&file, "x").unwrap();
        let me = rustix::process::geteuid().as_raw();
        if std::os::unix::fs::chown(&file, Some(me + 4242), None).is_err() {
            eprintln!("skipped: changing a file's owner needs root (uid {me})");
            return;
        }
        let err = read_private(&file, 16, Private::Writes, "trust list").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains(&format!("chown {me}")), "{err}");
        std::os::unix::fs::chown(dir.path(), Some(me + 4242), None).unwrap();
        let err = check_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("belongs to another user"), "{err}");
        // root's files are used (as ssh uses them)
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(0), None).unwrap();
        assert_eq!(
            read_private(&file, 16, Private::Writes, "trust list").unwrap(),
            b"x"
        );
        check_dir(dir.path()).unwrap();
    }
}
