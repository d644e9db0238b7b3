//! Which file of a data directory an error is about: [`FileError`], the
//! file's kind ([`DataFile`]) and path, whose
//! [`source`](std::error::Error::source) says what is wrong with it.
//!
//! An I/O error of a file (not a regular file, too large, open to other
//! users, unreadable, ...) stays an [`io::Error`] of its own kind, whose
//! payload is a [`FileError`] ([`FileError::find`]): code that matches
//! on the kind ([`io::ErrorKind::NotFound`], `InvalidData`,
//! `FileTooLarge`, ...) sees the kind it did. A damaged file (a line that
//! does not parse) is a [`FileError`] of the parser's error, in the
//! variant that says which file ([`StartError::TrustList`],
//! [`StartError::Identity`], [`LoadBookError::Damaged`]).
//!
//! Printed with [`ErrorChain`](crate::ErrorChain), each names the file
//! once, then why: `trust list /var/lib/node/trust: not a regular file`.
//!
//! [`StartError::TrustList`]: crate::StartError::TrustList
//! [`StartError::Identity`]: crate::StartError::Identity
//! [`LoadBookError::Damaged`]: crate::book_file::LoadBookError::Damaged

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::text::shown_path;

/// A file of a node's data directory (or, for
/// [`read_identity`](crate::persist::read_identity), an identity file
/// anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataFile {
    /// `identity`: the node's secret key.
    Identity,
    /// `trust`: the trust list.
    TrustList,
    /// `book`: the address book.
    Book,
    /// `lock`: the directory's lock file.
    Lock,
}

impl DataFile {
    /// Its name in the data directory (`identity`, `trust`, `book`,
    /// `lock`).
    pub fn file_name(self) -> &'static str {
        match self {
            DataFile::Identity => "identity",
            DataFile::TrustList => "trust",
            DataFile::Book => "book",
            DataFile::Lock => "lock",
        }
    }
}

/// What it is, as an error names it: `identity file`, `trust list`,
/// `address book`, `lock file`.
impl fmt::Display for DataFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataFile::Identity => "identity file",
            DataFile::TrustList => "trust list",
            DataFile::Book => "address book",
            DataFile::Lock => "lock file",
        })
    }
}

/// An error of one file of a data directory: which file it is and where,
/// and (its [`source`](std::error::Error::source), not repeated in its
/// message) what is wrong with it: an [`io::Error`] by default, or the
/// parser's error for a damaged file. Its message is `<what> <path>`
/// (`trust list /var/lib/node/trust`), the path escaped as the crate's
/// other errors and its logs show paths (a control character in it, such
/// as a newline or an escape, is shown as `\n`, `\u{1b}`: see
/// [`text`](crate::text)).
#[derive(Debug, thiserror::Error)]
#[error("{file} {}", shown_path(path))]
#[non_exhaustive]
pub struct FileError<E = io::Error> {
    /// Which file.
    pub file: DataFile,
    /// Its path (in a data directory, an absolute one: see
    /// [`DataDir::path`](crate::DataDir::path)).
    pub path: PathBuf,
    /// What is wrong with it.
    #[source]
    pub source: E,
}

impl FileError {
    /// `source`, an error of the file `file` at `path`, as an
    /// [`io::Error`] of the same kind that names the file
    /// ([`FileError::find`] gives it back).
    pub(crate) fn io(file: DataFile, path: impl Into<PathBuf>, source: io::Error) -> io::Error {
        let kind = source.kind();
        let path = path.into();
        io::Error::new(kind, FileError { file, path, source })
    }

    /// The [`FileError`] that `error` (an error of this crate about a
    /// file of a data directory) carries: which file, its path, and its
    /// own cause. `None` for an error that names no such file.
    ///
    /// ```
    /// use peernet_driver::persist::{DataFile, FileError};
    /// use peernet_driver::{DataDir, StartError};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let data = DataDir::open(dir.path())?;
    /// std::fs::create_dir(dir.path().join("trust"))?;
    /// let Err(StartError::Io(e)) = data.load_trust() else { panic!() };
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// let file = FileError::find(&e).unwrap();
    /// assert_eq!(file.file, DataFile::TrustList);
    /// assert_eq!(file.path, data.path().join("trust"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn find(error: &io::Error) -> Option<&FileError> {
        error.get_ref()?.downcast_ref::<FileError>()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> FileError<E> {
    /// This damaged file's error as an [`io::Error`] of kind
    /// [`io::ErrorKind::InvalidData`] that names the file (for
    /// [`TrustChangeError::File`](crate::TrustChangeError::File) and the
    /// book's saves, which say why in an `io::Error`).
    /// Its words end with what to do: a running node's change that finds
    /// the file damaged says it is left alone, and to mend it.
    pub(crate) fn into_io(self) -> io::Error {
        let FileError { file, path, source } = self;
        FileError::io(
            file,
            path,
            io::Error::new(io::ErrorKind::InvalidData, LeftAlone(source)),
        )
    }
}

/// A damaged file's error, and what to do about it (review s56: the
/// error named the line, not what the operator was to do).
#[derive(Debug, thiserror::Error)]
#[error(
    "{0}: left as it is (the node never writes over a file it cannot read): mend it, or put a \
     good one back, and try again"
)]
struct LeftAlone<E>(E);

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::book_file::{LoadBookError, MAX_BOOK_FILE_LEN};
    use crate::persist::MAX_TRUST_FILE_LEN;
    use crate::{DataDir, ErrorChain, LockError, NodeConfig, StartError};
    use std::fs;
    use std::path::Path;

    fn fifo(path: &Path) {
        // (no `mkfifo` process: a child holds this process's descriptors,
        // the other tests' directory locks among them, until it exec'd)
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mkfifoat(rustix::fs::CWD, path, mode).unwrap();
    }

    fn directory(path: &Path) {
        fs::create_dir(path).unwrap();
    }

    /// A file of `contents`, private (an identity must be).
    fn private(path: &Path, contents: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn bytes(len: u64) -> impl Fn(&Path) {
        move |path| private(path, &vec![b'#'; len as usize])
    }

    fn text(text: &'static [u8]) -> impl Fn(&Path) {
        move |path| private(path, text)
    }

    /// The I/O error a start's error holds, for its kind and payload.
    fn io_of(err: &StartError) -> Option<&io::Error> {
        match err {
            StartError::Io(e)
            | StartError::Book(LoadBookError::Io(e))
            | StartError::Lock(LockError::Io(e)) => Some(e),
            _ => None,
        }
    }

    /// A node started from a data directory whose `file` is `put` in its
    /// place fails with an error whose chain names the file, what it is
    /// and its path, the path once, then `why`; an I/O error keeps its
    /// kind (`kind`) and carries the [`FileError`].
    fn start_names(file: DataFile, put: impl Fn(&Path), why: &str, kind: Option<io::ErrorKind>) {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path().join("node")).unwrap();
        if file != DataFile::Identity {
            data.load_or_create_identity().unwrap();
        }
        let path = data.path().join(file.file_name());
        put(&path);
        let err = NodeConfig::from_data_dir(data.path()).unwrap_err();
        let shown = ErrorChain(&err).to_string();
        let at = path.display().to_string();
        assert_eq!(shown.matches(&at).count(), 1, "{file:?}: {shown}");
        // (the cause does not name the file's kind again)
        assert!(!shown.contains(&format!("{at}: {file}")), "{shown}");
        assert!(shown.contains(&format!("{file} {at}: ")), "{shown}");
        crate::error::tests::says_each_cause_once(&err, why);
        match (io_of(&err), kind) {
            (Some(e), Some(kind)) => {
                assert_eq!(e.kind(), kind, "{shown}");
                let named = FileError::find(e).expect("a FileError");
                assert_eq!((named.file, &named.path), (file, &path), "{shown}");
            }
            (None, None) => {}
            (e, kind) => panic!("{e:?} is not of {kind:?}: {shown}"),
        }
    }

    /// Review s51 (paths): an error of a data directory's file said what
    /// is wrong ("io: not a regular file", "address book file: larger
    /// than 4194304 bytes", "lock file: not a regular file", "trust list
    /// file: line 2: ...") but not which file nor where: an operator
    /// whose node did not start could not tell what to mend. Each names
    /// the file and its path now, once.
    #[test]
    fn an_error_of_a_data_directory_file_names_it() {
        use io::ErrorKind::{InvalidData, InvalidInput};
        for file in [
            DataFile::Identity,
            DataFile::TrustList,
            DataFile::Book,
            DataFile::Lock,
        ] {
            start_names(file, fifo, "not a regular file", Some(InvalidInput));
            start_names(file, directory, "not a regular file", Some(InvalidInput));
        }
        let identity = DataFile::Identity;
        start_names(
            identity,
            bytes(4096),
            "larger than 72 bytes",
            Some(InvalidData),
        );
        start_names(identity, bytes(72), "not a peernet identity", None);
        let trust = DataFile::TrustList;
        let too_large = format!("larger than {MAX_TRUST_FILE_LEN} bytes");
        start_names(
            trust,
            bytes(MAX_TRUST_FILE_LEN + 1),
            &too_large,
            Some(InvalidData),
        );
        start_names(trust, text(b"\xff\xfe"), "not UTF-8", Some(InvalidData));
        start_names(trust, text(b"peernet-trust-list v1\nx\n"), "line 2", None);
        let book = DataFile::Book;
        let too_large = format!("larger than {MAX_BOOK_FILE_LEN} bytes");
        start_names(
            book,
            bytes(MAX_BOOK_FILE_LEN + 1),
            &too_large,
            Some(InvalidData),
        );
        start_names(book, text(b"peernet-address-book v1\nx\n"), "line 2", None);
    }

    /// Review s52 (files): a damaged trust list or address book said its
    /// kind twice, `trust list P: trust list line 2: ...`, the parser's
    /// message naming it again after the file's error had. Each damaged
    /// file says what it is and where once, then the line and why.
    #[test]
    fn a_damaged_file_says_its_kind_once_then_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let at = |name| data.path().join(name).display().to_string();
        private(&data.path().join("identity"), &[0; 72]);
        let err = data.load_or_create_identity().unwrap_err();
        assert_eq!(
            ErrorChain(&err).to_string(),
            format!(
                "identity file {}: not a peernet identity (expected 72 bytes starting with \
                 PNETSK01)",
                at("identity")
            )
        );
        private(&data.path().join("trust"), b"peernet-trust-list v1\nx\n");
        let err = data.load_trust().unwrap_err();
        assert_eq!(
            ErrorChain(&err).to_string(),
            format!(
                "trust list {}: line 2: invalid key: a PeerId is 64 lowercase hex digits",
                at("trust")
            )
        );
        private(&data.path().join("book"), b"peernet-address-book v1\nx\n");
        let err = data.load_book().unwrap_err();
        assert_eq!(
            ErrorChain(&err).to_string(),
            format!(
                "address book {}: line 2: expected `PEERID IP:PORT SOURCE[ worked]` (v2: `[ \
                 worked[ failed]]`)",
                at("book")
            )
        );
    }

    /// Review s52 (files): a path reached error messages and log lines as
    /// [`Path::display`] shows it, so a data directory whose name holds a
    /// newline or a terminal's escape sequence wrote a forged line into a
    /// library user's log, or acted on their terminal. Errors and log
    /// fields show it escaped.
    #[test]
    fn a_path_is_shown_escaped_in_errors_and_logs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node\nFORGED \u{1b}[2J");
        let shown = format!(r"{}/node\nFORGED \u{{1b}}[2J", tmp.path().display());
        let logs = crate::test_log::Captured::default();
        let open = || DataDir::open(&dir).unwrap();
        let data = tracing::subscriber::with_default(logs.clone(), open);
        assert_eq!(*logs.0.lock().unwrap(), [format!("path={shown}")]);
        fs::write(data.path().join("trust"), "peernet-trust-list v1\nx\n").unwrap();
        let err = data.load_trust().unwrap_err();
        let said = ErrorChain(&err).to_string();
        assert!(
            said.starts_with(&format!("trust list {shown}/trust: line 2: ")),
            "{said}"
        );
        // a save's errors too
        let empty = peernet_proto::TrustList::new();
        data.save_trust(&empty).unwrap();
        fs::write(data.path().join("trust"), "edited").unwrap();
        let err = data.save_trust(&empty).unwrap_err();
        let said = ErrorChain(&err).to_string();
        assert!(
            said.starts_with(&format!("trust list {shown}/trust changed on disk")),
            "{said}"
        );
    }

    /// A file open to other users names itself, then the `chmod` that
    /// mends it (the path twice: the second in the command); it said the
    /// path twice before the command ("trust list P is open to other
    /// users" after a caller's "P: ").
    #[test]
    fn a_file_open_to_others_is_named_then_mended() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let path = data.path().join("trust");
        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = data.load_trust().unwrap_err();
        let p = path.display();
        assert_eq!(
            ErrorChain(&err).to_string(),
            format!("io: trust list {p}: open to other users (mode 666): run `chmod o-w {p}`")
        );
    }
}
