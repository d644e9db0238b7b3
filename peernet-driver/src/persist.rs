//! A node's data directory: its identity and its trust list on disk.
//!
//! - `identity`: the 72-byte format of [`Identity::to_bytes`], created with
//!   mode 0600 and never overwritten.
//! - `trust`: the text format of [`TrustList::to_text`], replaced
//!   atomically on every change (write a temporary file, fsync, rename,
//!   fsync the directory), so a crash leaves the old list or the new one,
//!   never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use peernet_proto::{Identity, TrustList};

use crate::error::StartError;

const IDENTITY_FILE: &str = "identity";
const TRUST_FILE: &str = "trust";
const TRUST_TEMP: &str = "trust.tmp";

/// A node's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Uses (and creates, mode 0700) the directory at `path`.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<DataDir> {
        let path = path.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(DataDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the identity, or creates one (mode 0600) if there is none.
    pub fn load_or_create_identity(&self) -> Result<Identity, StartError> {
        let path = self.path.join(IDENTITY_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(Identity::from_bytes(&bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Identity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
                write_identity(&path, &identity)?;
                Ok(identity)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Loads the trust list; a missing file is an empty list, a damaged
    /// one an error.
    pub fn load_trust(&self) -> Result<TrustList, StartError> {
        match fs::read_to_string(self.path.join(TRUST_FILE)) {
            Ok(text) => Ok(TrustList::from_text(&text)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TrustList::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the trust list atomically.
    pub fn save_trust(&self, trust: &TrustList) -> io::Result<()> {
        let temp = self.path.join(TRUST_TEMP);
        let mut file = File::create(&temp)?;
        file.write_all(trust.to_text().as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, self.path.join(TRUST_FILE))?;
        File::open(&self.path)?.sync_all()
    }
}

/// Writes a new identity file: 0600 from the first byte, and never over
/// an existing one (`create_new`).
pub fn write_identity(path: &Path, identity: &Identity) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(&identity.to_bytes())?;
    file.sync_all()
}

/// Reads an identity file written by [`write_identity`].
pub fn read_identity(path: &Path) -> Result<Identity, StartError> {
    Ok(Identity::from_bytes(&fs::read(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(unix)]
    #[test]
    fn identity_file_is_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_identity(&path, &Identity::from_seed(&[1; 32])).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = write_identity(&path, &Identity::from_seed(&[2; 32]));
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            read_identity(&path).unwrap().peer_id(),
            Identity::from_seed(&[1; 32]).peer_id()
        );
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
        let text = new.to_text();
        fs::write(dir.path().join(TRUST_TEMP), &text[..text.len() / 2]).unwrap();
        assert_eq!(data.load_trust().unwrap(), old);
        // and the next save replaces the stray temp file
        data.save_trust(&new).unwrap();
        assert_eq!(data.load_trust().unwrap(), new);
    }

    #[test]
    fn a_damaged_list_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        fs::write(dir.path().join(TRUST_FILE), "").unwrap();
        assert!(matches!(data.load_trust(), Err(StartError::TrustList(_))));
    }
}
