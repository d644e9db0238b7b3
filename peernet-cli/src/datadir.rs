//! `peernet init` and `peernet ticket`, and opening a data directory for
//! the other commands.
//!
//! A data directory holds `identity` (0600), `trust` and `book`, each
//! replaced atomically, and `lock`: a process that writes to the
//! directory (`serve --data-dir`, `pair`, `unpair`) holds its advisory
//! lock, and a second one is refused at once with `error: data directory
//! in use` (exit 1). Readers (`peers`, `ticket`, `call`/`send
//! --data-dir`) take no lock: they see each file whole, old or new.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use peernet_tokio::book_file::SavedBook;
use peernet_tokio::persist::{read_identity, write_identity};
use peernet_tokio::{DataDir, DirLock, Identity, Ticket, TrustList};

use crate::{EXIT_USAGE, Failure};

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

/// `peernet init DIR`: a new identity, an empty trust list and an empty
/// address book; prints the PeerId.
pub(crate) fn run_init(dir: &Path) -> Result<(), Failure> {
    let data = DataDir::open(dir).map_err(|e| match e.kind() {
        // (`DirBuilder` says "File exists" for a file in the way)
        io::ErrorKind::AlreadyExists => Failure(
            1,
            format!("{} exists and is not a directory", dir.display()),
        ),
        _ => Failure(1, format!("{}: {e}", dir.display())),
    })?;
    let identity = Identity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    create_identity(dir, &identity).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            Failure(1, format!("{} already holds an identity", dir.display()))
        }
        _ => Failure(1, format!("{}: {e}", dir.display())),
    })?;
    #[cfg(unix)]
    {
        // DataDir::open creates with 0700 but leaves an existing directory
        // as it was: an init that won makes it private either way.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Failure(1, format!("{}: {e}", dir.display())))?;
    }
    // Never over lists that are there (a directory that lost only its
    // identity keeps its trust list and book).
    if !data.path().join("trust").exists() {
        data.save_trust(&TrustList::new())
            .map_err(|e| Failure(1, format!("trust list: {e}")))?;
    }
    if !data.book_path().exists() {
        data.save_book(&SavedBook::new())
            .map_err(|e| Failure(1, format!("address book: {e}")))?;
    }
    println!("{}", identity.peer_id());
    Ok(())
}

/// Writes the identity to a temporary file, then links it into place: the
/// link fails if an identity exists, so of two `init`s racing on one
/// directory exactly one wins, and the file is never seen half-written.
fn create_identity(dir: &Path, identity: &Identity) -> io::Result<()> {
    let temp = dir.join(format!("{IDENTITY_FILE}.init.{}", std::process::id()));
    let _ = fs::remove_file(&temp);
    write_identity(&temp, identity)?;
    let linked = fs::hard_link(&temp, dir.join(IDENTITY_FILE));
    let _ = fs::remove_file(&temp);
    linked?;
    fs::File::open(dir)?.sync_all()
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
                dir.display(),
                dir.display()
            ),
        ));
    }
    let identity =
        read_identity(&path).map_err(|e| Failure(1, format!("{}: {e}", path.display())))?;
    let data = DataDir::open(dir).map_err(|e| match e.kind() {
        // (`DirBuilder` says "File exists" for a file in the way)
        io::ErrorKind::AlreadyExists => Failure(
            1,
            format!("{} exists and is not a directory", dir.display()),
        ),
        _ => Failure(1, format!("{}: {e}", dir.display())),
    })?;
    Ok((data, identity))
}

/// The directory's lock, or `error: data directory in use`.
pub(crate) fn lock(data: &DataDir) -> Result<DirLock, Failure> {
    data.try_lock().map_err(|e| Failure(1, e.to_string()))
}

pub(crate) fn load_trust(data: &DataDir) -> Result<TrustList, Failure> {
    data.load_trust()
        .map_err(|e| Failure(1, format!("{}: {e}", data.path().join("trust").display())))
}

pub(crate) fn load_book(data: &DataDir) -> Result<SavedBook, Failure> {
    data.load_book()
        .map_err(|e| Failure(1, format!("{}: {e}", data.book_path().display())))
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
        .map_err(|e| Failure(EXIT_USAGE, e.to_string()))?;
    println!("{ticket}");
    Ok(())
}
