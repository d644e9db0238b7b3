//! Reading the data directory's files without trusting them: regular
//! files only, read up to a bound, and (Unix) refused when other users may
//! change them or read a secret.
//!
//! Every check is made on the file that was opened (its `fstat`), not on
//! the path again afterwards, so a file swapped in between the check and
//! the read is never the one read.
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

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

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
/// A FIFO, a device (`/dev/zero`), a directory or a socket is refused with
/// [`io::ErrorKind::InvalidInput`] before anything is read (on Unix it is
/// opened non-blocking, so opening a FIFO with no writer cannot hang), and
/// a file larger than `max` with [`io::ErrorKind::InvalidData`], having
/// read at most `max + 1` bytes.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, _) = open_regular(path)?;
    read_bounded(file, max)
}

/// [`read_regular`], refused (see the [module docs](self)) when others
/// may touch the opened file as `private` forbids; `what` names it in the
/// error.
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

/// Refuses the directory at `path` if others may write it or it is
/// another user's.
pub(crate) fn check_dir(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    check_metadata(&dir.metadata()?, path, Private::Writes, "data directory")
}

/// Opens `path` for reading without blocking on a FIFO (nor on a
/// socket); refuses anything but a regular file.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let not_regular = || io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
    let file = match options.open(path) {
        Ok(file) => file,
        // (a socket fails to open before its type can be looked at)
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(not_regular()),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file, meta))
}

fn read_bounded(file: File, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

fn check_metadata(meta: &Metadata, path: &Path, private: Private, what: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let denied = |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        let (owner, me) = (meta.uid(), rustix::process::geteuid().as_raw());
        if owner != me && owner != 0 {
            return denied(format!(
                "{what} {} belongs to another user (uid {owner}; this process runs as uid \
                 {me}): run `chown {me} {}`",
                path.display(),
                path.display()
            ));
        }
        let mode = meta.mode() & 0o777;
        let (refused, fix) = match private {
            Private::Writes => (mode & 0o002, "o-w"),
            Private::All => (mode & 0o077, "go-rwx"),
        };
        if refused != 0 {
            return denied(format!(
                "{what} {} is open to other users (mode {mode:03o}): run `chmod {fix} {}`",
                path.display(),
                path.display()
            ));
        }
        if private == Private::Writes && mode & 0o020 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:03o}"), "{what} is writable by its group");
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, path, private, what);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;

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
