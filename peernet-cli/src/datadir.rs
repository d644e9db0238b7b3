//! `peernet init` and `peernet ticket`, and opening a data directory for
//! the other commands.
//!
//! A data directory holds `identity` (0600), `trust` and `book`, each
//! replaced atomically, and `lock`: a process that writes to the
//! directory (`init`, `serve --data-dir`, `pair`, `unpair`) holds its
//! advisory lock, and a second one is refused at once with `error: data
//! directory DIR in use` (exit 1). Readers (`peers`, `ticket`, `call`/`send
//! --data-dir`) take no lock: they see each file whole, old or new.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use peernet_tokio::book_file::SavedBook;
use peernet_tokio::persist::{FileError, read_identity, write_identity};
use peernet_tokio::{
    DataDir, DirLock, ErrorChain, Identity, LockError, PeerId, StartError, Ticket, TrustList,
};

use crate::output::print_result;
use crate::{EXIT_USAGE, Failure};
use peernet_tokio::text::shown_path;

const IDENTITY_FILE: &str = "identity";

/// Where `serve`, `call` and `send` take their identity from: exactly one
/// of a key file or a data directory (a group, so that a command with
/// neither says `<--key <FILE>|--data-dir <DIR>>` is missing, not `--key`).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct IdentityArgs {
    /// An identity file: no trust list or address book is kept (serve
    /// trusts its --trust peers; call and send the peer of --connect or
    /// a ticket).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// A data directory made by `peernet init`: identity, trust list,
    /// address book (locked while serving; read, never written, by
    /// call/send).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The one identity source given.
pub(crate) enum IdentitySource<'a> {
    /// `--key FILE`.
    Key(&'a Path),
    /// `--data-dir DIR`.
    DataDir(&'a Path),
}

impl IdentityArgs {
    /// Which one was given (clap requires exactly one).
    pub(crate) fn source(&self) -> IdentitySource<'_> {
        match (&self.key, &self.data_dir) {
            (Some(key), _) => IdentitySource::Key(key),
            (None, Some(dir)) => IdentitySource::DataDir(dir),
            (None, None) => unreachable!("clap requires --key or --data-dir"),
        }
    }
}

/// `peernet init DIR`: an empty trust list, an empty address book and a
/// new identity; prints the PeerId.
///
/// The identity is written last, so that its presence means init
/// finished: an init that failed before it (a list that could not be
/// saved) leaves no identity, and running it again finishes the job.
/// (With the identity written first, such a directory could only be
/// refused as one that "already holds an identity", and its PeerId was
/// never printed.)
pub(crate) fn run_init(dir: &Path) -> Result<(), Failure> {
    refuse_foreign_contents(dir)?;
    // init makes the directory it is told to, its parents too (as `mkdir
    // -p` does; the PeerId it prints says a new node was made), while
    // the library makes only the last component, so that a node started
    // on a mistyped path fails instead of making a new identity. Every
    // other command needs a directory init made (`open_existing`). The
    // parents it makes are private (0700, whatever the umask), as the
    // data directory is and as they were when the library made them
    // (XDG asks the same of `~/.local/share`).
    if let Some(parent) = std::path::absolute(dir)
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(|e| Failure::because(1, shown_path(parent), &e))?;
    }
    let already = || Failure(1, format!("{} already holds an identity", shown_path(dir)));
    let finished = || fs::symlink_metadata(dir.join(IDENTITY_FILE)).is_ok();
    // (an init that finished: refused before anything is touched)
    if finished() {
        return Err(already());
    }
    let data = open_dir(dir)?;
    // Held to the end, as every writer of the directory holds it: of two
    // inits racing, the second is refused (`data directory DIR in use`) or
    // finds the first one's identity, and no `pair` comes between a
    // list's "is it there" and its save.
    let _lock = lock(&data)?;
    if finished() {
        return Err(already());
    }
    #[cfg(unix)]
    {
        // DataDir::open creates with 0700 but leaves an existing directory
        // as it was: init makes it private either way.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Failure::because(1, shown_path(dir), &e))?;
    }
    // Never over lists that are there (a directory that lost only its
    // identity, or whose last init failed after its trust list, keeps
    // them).
    if missing(&data.path().join("trust"), "trust list")? {
        data.save_trust(&TrustList::new())
            .map_err(|e| Failure(1, ErrorChain(&e).to_string()))?;
    }
    if missing(&data.book_path(), "address book")? {
        data.save_book(&SavedBook::new())
            .map_err(|e| Failure(1, ErrorChain(&e).to_string()))?;
    }
    let identity = Identity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    create_identity(dir, &identity).map_err(|e| match e.kind() {
        // (another init won the race)
        io::ErrorKind::AlreadyExists => already(),
        // (the library names the file)
        _ => Failure(1, ErrorChain(&e).to_string()),
    })?;
    print_result(&identity.peer_id().to_string())
}

/// Whether init must write the list at `path` (`what`): it is not there
/// (a dangling link counts as not there: the save refuses it, naming
/// it). One that is there must be a regular file, as every later command
/// requires: a FIFO or a directory in its place is refused now rather
/// than taken as the list and refused by the next command.
fn missing(path: &Path, what: &str) -> Result<bool, Failure> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Failure::because(
            1,
            format_args!("{what} {}", shown_path(path)),
            &e,
        )),
        Ok(meta) if meta.is_file() => Ok(false),
        Ok(_) => Err(Failure(
            1,
            format!("{what} {}: not a regular file", shown_path(path)),
        )),
    }
}

/// The names a data directory holds (and its temporary files, `NAME.….tmp`).
const DATA_FILES: [&str; 4] = [IDENTITY_FILE, "trust", "book", "lock"];

/// `init` makes a new data directory, or mends one that lost its identity,
/// and makes it private (0700): a directory that holds anything else (a
/// project, a web root, a shared directory mistyped) is refused rather
/// than filled and locked away from its other users.
fn refuse_foreign_contents(dir: &Path) -> Result<(), Failure> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // (not there: made new; anything else is said by the open below)
        Err(_) => return Ok(()),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Failure::because(1, shown_path(dir), &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = DATA_FILES.iter().any(|file| {
            *name == **file
                || name
                    .strip_prefix(file)
                    .is_some_and(|rest| rest.starts_with('.') && rest.ends_with(".tmp"))
        });
        if !ours {
            return Err(Failure(
                1,
                format!(
                    "{} is not empty and not a data directory (it holds {name:?}): \
                     init makes one in a new or empty directory",
                    shown_path(dir)
                ),
            ));
        }
    }
    Ok(())
}

/// Writes the identity into `dir` ([`write_identity`]: a temporary file
/// linked into place, so of two `init`s racing on one directory exactly
/// one wins, and the file is never seen half-written).
fn create_identity(dir: &Path, identity: &Identity) -> io::Result<()> {
    write_identity(&dir.join(IDENTITY_FILE), identity)
}

/// An initialised data directory: it must exist and hold an identity (a
/// mistyped path is an error, not a new node).
pub(crate) fn open_existing(dir: &Path) -> Result<(DataDir, Identity), Failure> {
    let path = dir.join(IDENTITY_FILE);
    // (only "not there" means "not initialised": a directory the user may
    // not read says so, through the load below)
    if matches!(fs::symlink_metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return Err(Failure(
            1,
            format!(
                "{} holds no identity (run `peernet init {}`)",
                shown_path(dir),
                shown_path(dir)
            ),
        ));
    }
    let identity = read_identity(&path).map_err(|e| start_failure(&path, &e))?;
    let data = open_dir(dir)?;
    Ok((data, identity))
}

/// [`DataDir::open`], whose errors name the directory and say what is
/// wrong with it (`… exists and is not a directory`, `… its parent …
/// does not exist`).
fn open_dir(dir: &Path) -> Result<DataDir, Failure> {
    DataDir::open(dir).map_err(|e| Failure(1, ErrorChain(&e).to_string()))
}

/// The directory's lock, or `error: data directory DIR in use`.
pub(crate) fn lock(data: &DataDir) -> Result<DirLock, Failure> {
    data.try_lock().map_err(|e| lock_failure(data.path(), e))
}

/// The lock of the data directory `dir` was not taken: `data directory in
/// use`, or an I/O error that names the lock file (`lock file DIR/lock:
/// Permission denied`: the library names it, or else this).
pub(crate) fn lock_failure(dir: &Path, error: LockError) -> Failure {
    match error {
        LockError::Io(e) if FileError::find(&e).is_none() => {
            Failure::because(1, shown_path(&dir.join("lock")), &e)
        }
        e => Failure(1, ErrorChain(&e).to_string()),
    }
}

/// An error of loading the file at `path` of a data directory (or an
/// identity file), said as the library says it: it names the file and
/// its path (`trust list /var/lib/node/trust: not a regular file`), once.
/// (The tool used to put the path before the library's words, which
/// named no file; the `io: ` of [`StartError::Io`] says nothing here.) An
/// error that names no file (none does today) is put after `path`.
pub(crate) fn start_failure(path: &Path, error: &StartError) -> Failure {
    match error {
        StartError::Io(e) if FileError::find(e).is_some() => Failure(1, ErrorChain(e).to_string()),
        StartError::Identity(_) | StartError::TrustList(_) | StartError::Book(_) => {
            Failure(1, ErrorChain(error).to_string())
        }
        e => Failure::because(1, shown_path(path), e),
    }
}

/// The trust list as the node `own` reads it: an entry of the node itself
/// (only a hand edit makes one) left out, with a warning.
pub(crate) fn load_trust(data: &DataDir, own: &PeerId) -> Result<TrustList, Failure> {
    data.load_trust_of(own).map_err(|e| trust_failure(data, e))
}

/// The trust list as the file has it, an entry of the node itself
/// included.
pub(crate) fn read_trust(data: &DataDir) -> Result<TrustList, Failure> {
    data.load_trust().map_err(|e| trust_failure(data, e))
}

fn trust_failure(data: &DataDir, e: StartError) -> Failure {
    start_failure(&data.path().join("trust"), &e)
}

/// The address book; an error names the file (the library's words).
pub(crate) fn load_book(data: &DataDir) -> Result<SavedBook, Failure> {
    data.load_book()
        .map_err(|e| start_failure(&data.book_path(), &StartError::Book(e)))
}

/// The address book as the node `own` saves it: lines of the node itself
/// (only a hand edit, or another tool, makes them) left out, with a
/// warning that names the file, as the trust list's entry of the node
/// itself is ([`load_trust`]). A `pair` or `unpair` of another peer,
/// which saves the book whole, used to write them back.
pub(crate) fn load_book_of(data: &DataDir, own: &PeerId) -> Result<SavedBook, Failure> {
    let mut book = load_book(data)?;
    if book.remove(own) {
        tracing::warn!(
            path = %shown_path(&data.book_path()),
            peer = %own,
            "the address book names this node itself: a node never dials itself, the lines are \
             left out of the file"
        );
    }
    Ok(book)
}

#[derive(clap::Args)]
pub(crate) struct TicketCmd {
    dir: PathBuf,
    /// An address the node can be reached at (repeatable, at least one).
    #[arg(long = "addr", required = true, value_name = "IP:PORT")]
    addrs: Vec<SocketAddr>,
}

/// `peernet ticket DIR --addr IP:PORT...`: the bare ticket.
pub(crate) fn run_ticket(cmd: TicketCmd) -> Result<(), Failure> {
    let (_, identity) = open_existing(&cmd.dir)?;
    let ticket = Ticket::new(identity.peer_id(), cmd.addrs)
        .map_err(|e| Failure(EXIT_USAGE, ErrorChain(&e).to_string()))?;
    print_result(&ticket.to_string())
}
