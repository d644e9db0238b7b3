//! `RUST_LOG` at its extremes (review s46, revo): empty, not understood,
//! or a field value that tracing-subscriber would compile as a regular
//! expression into a DFA of unbounded size.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{command, finish_within, keygen, ok, peernet};

/// `peernet args` in `d` with `RUST_LOG` set to `log`, killed (and the
/// test failed) if it runs 20 s.
fn run_logging(d: &Path, log: &str, args: &[&str]) -> Output {
    finish_within(
        command(peernet())
            .args(args)
            .env("RUST_LOG", log)
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        &format!("RUST_LOG={log:?}"),
        Duration::from_secs(20),
    )
}

/// The warning about a group-writable trust list is the operator's one
/// sign that others may choose whom the node trusts: an empty
/// `RUST_LOG` (as `RUST_LOG=$LEVEL` leaves it when `LEVEL` is unset)
/// used to hide it, and every other warning; one that did not parse
/// fell back to warnings without a word.
#[cfg(unix)]
#[test]
fn an_empty_or_misread_rust_log_still_shows_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "node"], d);
    let trust = d.join("node/trust");
    std::fs::set_permissions(&trust, std::fs::Permissions::from_mode(0o620)).unwrap();
    for log in ["", "warn", "peernet=bogus["] {
        let out = run_logging(d, log, &["peers", "node"]);
        assert_eq!(out.status.code(), Some(0), "RUST_LOG={log:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("trust list is writable by its group"),
            "RUST_LOG={log:?}: {err}"
        );
        let said = err.contains("RUST_LOG not understood");
        assert_eq!(said, log.contains('['), "RUST_LOG={log:?}: {err}");
    }
}

/// A field value is matched as text: compiled as a regular expression,
/// this one took 116 s and 836 MB (debug build) before `peernet id`
/// printed anything, and each two more `(a|b)` four times that.
#[test]
fn a_field_value_in_rust_log_is_not_compiled_as_a_regex() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let peer = keygen(d, "a.key");
    let regex = format!("(a|b)*a{}", "(a|b)".repeat(20));
    let out = run_logging(d, &format!("[{{x={regex}}}]=trace"), &["id", "a.key"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), peer);
}
