//! The trust file removed or replaced by something else while the node
//! runs (an operator's mistake, or whoever may write the directory): what
//! the next `pair`, `unpair` and start do. Trust never widens, nothing
//! hangs, every error names the file and says what to do.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use peernet_tokio::{ErrorChain, Identity, Node, NodeConfig, PeerId, TrustChangeError};

fn id(seed: u8) -> PeerId {
    Identity::from_seed(&[seed; 32]).peer_id()
}

/// A bound on a failure only (a change that hangs on the file): each
/// change ends as soon as it is made.
const BOUND: Duration = Duration::from_secs(30);

/// Makes a FIFO at `path` (in this process: a `mkfifo` child would hold
/// the other tests' directory locks until it exec'd).
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// A trust file removed while the node runs used to be taken as an empty
/// list: the next `pair` wrote a new file of its one peer, and the next
/// start lost every other pairing, the `pair` having said `Ok`. Now a
/// `pair` fails, naming the file and what to do, and makes no file; an
/// `unpair` revokes and makes no file either (gone, it trusts nobody);
/// a file put back is taken as an edit; a restart without it trusts no
/// one from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_file_removed_while_the_node_runs_is_not_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust");
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    let (a, b, c) = (id(2), id(3), id(4));
    node.pair(a, None).await.unwrap();
    node.pair(b, None).await.unwrap();
    let backup = std::fs::read(&trust).unwrap();
    std::fs::remove_file(&trust).unwrap();

    let err = tokio::time::timeout(BOUND, node.pair(c, None))
        .await
        .expect("no hang")
        .expect_err("a pair made a new trust file of its one peer");
    let TrustChangeError::File(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), ErrorKind::NotFound, "{err}");
    let said = ErrorChain(&err).to_string();
    let named = format!(
        "trust list {}: was removed while the node runs",
        trust.display()
    );
    assert!(said.contains(&named), "{said}");
    assert!(said.contains("put the file back"), "{said}");
    assert!(!node.trust().contains(&c), "trusted without a file");
    assert!(!trust.exists(), "a new trust file was made");

    // an unpair revokes, and makes no file either
    assert!(node.unpair(&a).await.unwrap());
    assert!(!node.trust().contains(&a));
    assert!(!trust.exists(), "an unpair made a new trust file");

    // put back, the file is an edit: the change is made to it
    std::fs::write(&trust, &backup).unwrap();
    assert!(node.pair(c, None).await.unwrap());
    let on_disk = peernet_tokio::DataDir::open(dir.path())
        .unwrap()
        .load_trust()
        .unwrap();
    assert!(on_disk.contains(&b) && on_disk.contains(&c), "{on_disk:?}");

    // removed again and restarted: the node trusts no one from it
    std::fs::remove_file(&trust).unwrap();
    node.shutdown().await;
    let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
    assert!(node.trust().is_empty(), "{:?}", node.trust());
    // (and its first pair makes the file, as on a first start)
    assert!(node.pair(c, None).await.unwrap());
    assert!(trust.exists());
    node.shutdown().await;
}

/// What a trust file is made into, by what, the error kind of a `pair`
/// then, and words its error says.
type Case = (&'static str, fn(&Path), ErrorKind, &'static str);

/// Each other thing a trust file can become while the node runs: the
/// next `pair` fails at once (never waits on a FIFO), names the file and
/// says what to do, trusts nobody new and leaves the thing as it is; an
/// `unpair` revokes in the run; the next start refuses it, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_file_made_something_else_is_left_alone_and_named() {
    use std::os::unix::fs::PermissionsExt;
    let cases: [Case; 4] = [
        (
            "a directory",
            |p| std::fs::create_dir(p).unwrap(),
            ErrorKind::InvalidInput,
            "not a regular file (a directory): nothing was read from it; move it away",
        ),
        (
            "a FIFO",
            mkfifo,
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO): nothing was read from it; move it away",
        ),
        (
            "truncated",
            |p| std::fs::write(p, "peernet-trust-list v1\n").unwrap(),
            ErrorKind::InvalidData,
            "line 2: missing `end <N>` line: the list is truncated",
        ),
        (
            "open to other users",
            |p| {
                std::fs::write(p, "peernet-trust-list v1\nend 0\n").unwrap();
                std::fs::set_permissions(p, PermissionsExt::from_mode(0o666)).unwrap();
            },
            ErrorKind::PermissionDenied,
            "run `chmod",
        ),
    ];
    for (what, make, kind, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust");
        let node = Node::new(NodeConfig::from_data_dir(dir.path()).unwrap());
        node.pair(id(2), None).await.unwrap();
        std::fs::remove_file(&trust).unwrap();
        make(&trust);
        let meta = std::fs::symlink_metadata(&trust).unwrap();

        let err = tokio::time::timeout(BOUND, node.pair(id(3), None))
            .await
            .unwrap_or_else(|_| panic!("{what}: the pair hung"))
            .expect_err(what);
        let TrustChangeError::File(e) = &err else {
            panic!("{what}: {err:?}")
        };
        assert_eq!(e.kind(), kind, "{what}: {err}");
        let said = ErrorChain(&err).to_string();
        let named = format!("trust list {}: ", trust.display());
        assert!(said.contains(&named), "{what}: {said}");
        assert!(said.contains(says), "{what}: {said}");
        let to_do = ["move it away", "mend it", "run `chmod"];
        assert!(to_do.iter().any(|w| said.contains(w)), "{what}: {said}");
        assert!(!node.trust().contains(&id(3)), "{what}: trusted anyway");
        let unpaired = tokio::time::timeout(BOUND, node.unpair(&id(2)))
            .await
            .unwrap_or_else(|_| panic!("{what}: the unpair hung"));
        assert!(
            matches!(
                unpaired,
                Err(TrustChangeError::RevokedNotSaved { changed: true, .. })
            ),
            "{what}: {unpaired:?}"
        );
        assert!(!node.trust().contains(&id(2)), "{what}: not revoked");
        let after = std::fs::symlink_metadata(&trust).unwrap();
        assert_eq!(after.file_type(), meta.file_type(), "{what}: replaced");
        assert_eq!(after.permissions(), meta.permissions(), "{what}: mended");
        node.shutdown().await;

        let Err(start) = NodeConfig::from_data_dir(dir.path()) else {
            panic!("{what}: a node started from it")
        };
        let said = ErrorChain(&start).to_string();
        assert!(said.contains(&named), "{what}: {said}");
        assert!(said.contains(says), "{what}: {said}");
    }
}
