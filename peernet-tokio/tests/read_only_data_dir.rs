//! A node started from a data directory it may not write (an identity,
//! trust list and book mounted read-only in a container; here a directory
//! of mode 0555, which root may write all the same: under root the test
//! runs again as the user `nobody`, through `setpriv`, and is skipped,
//! saying why, only where that cannot be done).
#![cfg(unix)]

#[path = "common/earlier_run.rs"]
mod earlier_run;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use peernet_tokio::{
    AddrSource, DataDir, Identity, LockError, Node, NodeConfig, StartError, TrustChangeError,
};

/// `dir`, made not writable (mode 0555) until dropped.
struct Unwritable<'a>(&'a Path);

impl Unwritable<'_> {
    /// `None`, with the reason printed, if the mode does not stop this
    /// process writing the directory (root).
    fn make(dir: &Path) -> Option<Unwritable<'_>> {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let held = Unwritable(dir);
        let probe = dir.join("probe");
        if std::fs::File::create(&probe).is_ok() {
            std::fs::remove_file(&probe).unwrap();
            eprintln!(
                "a directory of mode 0555 is writable by this process (root?), so a directory \
                 it may not write cannot be made here"
            );
            return None;
        }
        Some(held)
    }
}

/// Runs `test` of this binary again as the user `nobody` (uid and gid
/// 65534, no other groups: `setpriv`), whom mode 0555 stops, and fails if
/// it failed there or did not run; skipped, saying why, where `setpriv`
/// cannot be run or cannot change the user.
fn as_nobody(test: &str) {
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&me)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return eprintln!("skipped: cannot run setpriv: {e}"),
    };
    let (said, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprint!("{said}{err}");
    if err.starts_with("setpriv:") {
        return eprintln!("skipped: setpriv cannot run the test as nobody");
    }
    assert!(
        out.status.success() && said.contains("running 1 test") && said.contains(" 1 passed"),
        "{test} as nobody: {}",
        out.status
    );
}

impl Drop for Unwritable<'_> {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o700));
    }
}

/// The node starts (it was refused: its lock file could not be opened
/// for writing) with the trust list and book of its directory; a second
/// node is refused; `pair` fails and changes nothing, `unpair` revokes
/// in this run and says the file was not updated, and the book's changes
/// stay in memory: the files are as they were when the node has shut
/// down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_from_a_directory_it_may_not_write_and_saves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let id = |seed: u8| Identity::from_seed(&[seed; 32]).peer_id();
    let (kept, dropped, refused) = (id(2), id(3), id(4));
    let addr = "192.0.2.2:4000".parse().unwrap();
    earlier_run::saved_book(&dir, &[kept, dropped], addr).await;
    // (as in an image that ships the identity and the trust list only)
    std::fs::remove_file(dir.join("lock")).unwrap();
    let files = |name| std::fs::read(dir.join(name)).unwrap();
    let (trust, book) = (files("trust"), files("book"));
    let Some(unwritable) = Unwritable::make(&dir) else {
        return as_nobody("a_node_runs_from_a_directory_it_may_not_write_and_saves_nothing");
    };

    let node = Node::new(NodeConfig::from_data_dir(&dir).unwrap());
    assert!(node.trust().contains(&kept) && node.trust().contains(&dropped));
    let second = NodeConfig::from_data_dir(&dir).unwrap_err();
    assert!(
        matches!(second, StartError::Lock(LockError::InUse { .. })),
        "{second}"
    );
    let Err(TrustChangeError::File(e)) = node.pair(refused, None).await else {
        panic!("a pair of a read-only directory did not fail");
    };
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(!node.trust().contains(&refused));
    let unpaired = node.unpair(&dropped).await;
    assert!(
        matches!(
            unpaired,
            Err(TrustChangeError::RevokedNotSaved { changed: true, .. })
        ),
        "{unpaired:?}"
    );
    assert!(!node.trust().contains(&dropped));
    let other = "192.0.2.9:4000".parse().unwrap();
    node.add_address(kept, other, AddrSource::Application)
        .unwrap();
    node.shutdown().await;
    assert_eq!((files("trust"), files("book")), (trust, book));

    // writable again: the next node saves as ever
    drop(unwritable);
    let node = Node::new(NodeConfig::from_data_dir(&dir).unwrap());
    node.pair(refused, None).await.unwrap();
    node.shutdown().await;
    let saved = DataDir::open(&dir).unwrap().load_trust().unwrap();
    assert!(saved.contains(&kept) && saved.contains(&dropped) && saved.contains(&refused));
}
