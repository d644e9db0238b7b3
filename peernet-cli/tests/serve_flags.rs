//! `serve` flags given in a way that cannot mean what they say (review
//! s40, r3): `--trust` of the node's own PeerId is a usage error, as
//! `pair` of it is; a handle given twice to `--expose` is exposed once,
//! and a peer given twice to `--trust` trusted once, with a warning.
//! `call` and `send` of the node's own PeerId are usage errors too.
//! `--max-handshake-bytes` below 150 is a usage error, and its value
//! reaches the node, as do the inbound byte budgets' flags.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

impl Killed {
    /// Waits for the child to exit: its status and all it wrote to stderr.
    fn wait_with_stderr(&mut self) -> (std::process::ExitStatus, String) {
        let out = wait_for(&mut self.0, "serve", RUN_LIMIT);
        (out.status, stderr(&out))
    }
}

/// `peernet serve args` in `d`: its exit code and stderr if it exits
/// without serving; a failure naming `why` if it prints its `listening`
/// line (it took the flags and runs: killed at once, so an old build
/// fails the test instead of hanging it).
fn serve_must_exit(d: &Path, args: &[&str], why: &str) -> (Option<i32>, String) {
    // (stdout ends when the process does, or shows it serving)
    let (mut child, stdout) = spawn_serve(d, args, Stdio::piped(), "warn");
    if let Some(line) = stdout.next_or_end() {
        panic!("{why}: serve runs: {line:?}");
    }
    let (status, err) = child.wait_with_stderr();
    (status.code(), err)
}

/// A key file `d/k` and a data directory `d/node`: their PeerIds.
fn own_identities(d: &Path) -> (String, String) {
    (keygen(d, "k"), ok(&["init", "node"], d).trim().to_string())
}

/// A node never trusts itself: a handshake that offers its own key is
/// refused (PROTOCOL.md 2.1), so `--trust <own PeerId>` did nothing, and
/// was taken without a word. It is a usage error now, with a key file and
/// with a data directory alike.
#[test]
fn serve_refuses_to_trust_its_own_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (own_key, own_dir) = own_identities(d);
    let other = keygen(d, "other");
    for (identity, own) in [
        (["--key", "k"], &own_key),
        (["--data-dir", "node"], &own_dir),
    ] {
        let mut args = identity.to_vec();
        args.extend(["--listen", "127.0.0.1:0", "--trust", other.as_str()]);
        args.extend(["--trust", own.as_str()]);
        let (code, err) = serve_must_exit(d, &args, "its own PeerId trusted");
        assert_eq!(code, Some(64), "{identity:?}: {err}");
        assert_eq!(
            err,
            format!(
                "error: --trust {own}: cannot trust this node itself (that is its own PeerId)\n"
            ),
            "{identity:?}"
        );
    }
}

/// `--expose echo --expose echo` exposes echo once and says so on stderr
/// (it used to be taken silently); the other handles are unaffected.
#[test]
fn a_handle_exposed_twice_is_exposed_once_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "b.key");
    let caller = keygen(d, "a.key");
    let (child, target) = serve_b(
        d,
        &[
            "--trust", &caller, "--expose", "echo", "--expose", "sleep", "--expose", "echo",
        ],
    );
    for (handle, args, reply) in [("echo", "hi", "hi"), ("sleep", "1", "slept")] {
        let out = call(d, "a.key", &target, &[handle, args]);
        assert_eq!(out.status.code(), Some(0), "{handle}: {}", stderr(&out));
        assert_eq!(stdout(&out), reply, "{handle}");
    }
    let warned = the_one_warning(child, "--expose given more than once");
    assert!(warned.contains("handle=echo"), "{warned}");
}

/// `--trust A --trust B --trust A` trusts A once and says so on stderr,
/// as a repeated `--expose` (it used to be taken silently, where the
/// repeat may stand for another peer meant and left out); both peers
/// can call.
#[test]
fn a_peer_trusted_twice_is_trusted_once_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "b.key");
    let caller = keygen(d, "a.key");
    let other = keygen(d, "c.key");
    let (child, target) = serve_b(
        d,
        &[
            "--trust", &caller, "--trust", &other, "--trust", &caller, "--expose", "echo",
        ],
    );
    for key in ["a.key", "c.key"] {
        let out = call(d, key, &target, &["echo", "hi"]);
        assert_eq!(out.status.code(), Some(0), "{key}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hi", "{key}");
    }
    let warned = the_one_warning(child, "--trust given more than once");
    assert!(warned.contains(&format!("peer={caller}")), "{warned}");
}

/// `peernet serve --key b.key --listen 127.0.0.1:0 flags` in `d`, its
/// warnings on a pipe: the child, and its `<PeerId>@<address>` to call.
fn serve_b(d: &Path, flags: &[&str]) -> (Killed, String) {
    let s = serve_keyed(d, "b.key", flags, Stdio::piped(), "warn");
    let target = s.target();
    (s.child, target)
}

/// Stops a served node with SIGTERM (a graceful stop, which flushes its
/// stderr), checks that it exits 0, and returns the one line of its
/// stderr that says `what`, which must be a warning.
fn the_one_warning(mut child: Killed, what: &str) -> String {
    send_signal("-TERM", child.id());
    let (status, err) = child.wait_with_stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains(what)).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("WARN"), "{err}");
    warned[0].to_string()
}

/// `call` and `send` naming the node's own PeerId (`--connect`, a
/// ticket, or a bare PeerId with `--data-dir`) are usage errors, as
/// `serve --trust` of it is: the dial could only end "not trusted" (a
/// node never trusts itself), which read as the other side's refusal.
/// Nothing listens at the address: the refusal comes before any dial.
#[test]
fn call_and_send_refuse_the_nodes_own_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (own_key, own_dir) = own_identities(d);
    let ticket = ok(&["ticket", "node", "--addr", "127.0.0.1:9"], d)
        .trim()
        .to_string();
    let at_key = format!("{own_key}@127.0.0.1:9");
    let cases: [(&[&str], &str); 4] = [
        (&["--key", "k", "--connect", &at_key], &own_key),
        (&["--key", "k", &at_key], &own_key),
        (&["--data-dir", "node", &ticket], &own_dir),
        (&["--data-dir", "node", &own_dir], &own_dir),
    ];
    for verb in ["call", "send"] {
        for (identity, own) in cases {
            let mut args = vec![verb];
            args.extend(identity);
            args.extend(["echo", "hi"]);
            let err = fails(64, &args, d);
            assert_eq!(
                err,
                format!("error: {own} is this node's own PeerId: a node cannot call itself\n"),
                "{args:?}"
            );
        }
    }
}

/// `--max-handshake-bytes` (`NodeConfig::max_handshake_bytes`) below
/// 150, where a split INIT would not fit, is a usage error naming the
/// flag, as `--max-frame` below 150 is; so is a value that is no count.
/// `serve --help` lists it.
#[test]
fn max_handshake_bytes_below_a_split_init_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "k");
    for value in ["0", "149", "16MiB"] {
        let args = ["--key", "k", "--listen", "127.0.0.1:0"];
        let args = [&args[..], &["--max-handshake-bytes", value]].concat();
        let (code, err) = serve_must_exit(d, &args, value);
        assert_eq!(code, Some(64), "{value}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{value}: {err}");
        assert!(first.contains("--max-handshake-bytes"), "{value}: {err}");
        assert!(first.contains(&format!("'{value}'")), "{value}: {err}");
    }
    let help = ok(&["serve", "--help"], d);
    assert!(help.contains("--max-handshake-bytes <BYTES>"), "{help}");
}

/// `--max-handshake-bytes 150` reaches the node: two connections each
/// send half of an INIT (a 150-byte frame). The first one's split frame
/// takes a buffer of the whole frame, the whole budget; the second one's
/// bytes would pass it, and it is closed over the budget, which the node
/// logs (with the default 16 MiB, both wait for their first-frame
/// deadline and nothing is over).
#[test]
fn max_handshake_bytes_bounds_the_split_frames_of_handshakes() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "b.key");
    let flags = ["--max-handshake-bytes", "150"];
    let mut s = serve_keyed(d, "b.key", &flags, Stdio::piped(), "peernet_proto=debug");
    let mut said = Said::new(s.child.stderr.take().unwrap());
    let half_init = [&150u32.to_be_bytes()[..], &[0; 75]].concat();
    let mut peers = Vec::new();
    for _ in 0..2 {
        let mut peer = std::net::TcpStream::connect(&s.addr).unwrap();
        peer.write_all(&half_init).unwrap();
        peers.push(peer);
    }
    let over = "handshake bytes over the node's budget";
    assert!(said.holds_within(over, RUN_LIMIT), "{}", said.text());
    drop(peers);
}

/// `--max-inbound-bytes-per-peer` and `--max-inbound-bytes`
/// (`Config::max_inbound_bytes_per_conn` and `max_inbound_bytes`) of 0,
/// or of no count, are usage errors naming the flag; `serve --help`
/// lists both.
#[test]
fn inbound_byte_budgets_of_zero_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "k");
    for flag in ["--max-inbound-bytes-per-peer", "--max-inbound-bytes"] {
        for value in ["0", "1MiB"] {
            let args = ["--key", "k", "--listen", "127.0.0.1:0", flag, value];
            let (code, err) = serve_must_exit(d, &args, value);
            assert_eq!(code, Some(64), "{flag} {value}: {err}");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: "), "{flag} {value}: {err}");
            assert!(first.contains(flag), "{flag} {value}: {err}");
        }
    }
    let help = ok(&["serve", "--help"], d);
    for flag in ["--max-inbound-bytes-per-peer", "--max-inbound-bytes"] {
        assert!(help.contains(&format!("{flag} <BYTES>")), "{help}");
    }
}

/// Each inbound byte budget given to `serve` reaches the node: with
/// 1,000 bytes, a call whose 2,000-byte argument would pass it is
/// answered `overloaded` (exit 2, a status from the callee), and one
/// of 500 bytes is served (with the
/// default 16 MiB, both are).
#[test]
fn inbound_byte_budgets_reach_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "b.key");
    let caller = keygen(d, "a.key");
    let (small, large) = ("s".repeat(500), "l".repeat(2000));
    for flag in ["--max-inbound-bytes-per-peer", "--max-inbound-bytes"] {
        let flags = ["--trust", &caller, "--expose", "echo", flag, "1000"];
        let (mut child, target) = serve_b(d, &flags);
        let out = call(d, "a.key", &target, &["echo", &small]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr(&out));
        assert_eq!(stdout(&out), small, "{flag}");
        let out = call(d, "a.key", &target, &["echo", &large]);
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("overloaded"),
            "{flag}: {}",
            stderr(&out)
        );
        send_signal("-TERM", child.id());
        let (status, err) = child.wait_with_stderr();
        assert_eq!(status.code(), Some(0), "{flag}: {err}");
    }
}

/// Review s54 (review): a listen address that cannot be bound (its port
/// taken by another process) failed `error: listen: io: Address already
/// in use (os error 98)`, naming no address: a script that starts
/// several nodes could not tell which one. The address is named.
#[test]
fn a_listen_address_that_cannot_be_bound_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "k");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = serve_must_exit(d, &["--key", "k", "--listen", &addr], "port taken");
    assert_eq!(code, Some(1), "{err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with(&format!("error: listen {addr}: ")),
        "{err}"
    );
    // (the library names the address itself now: said once, and no `io`)
    assert_eq!(line.matches(&addr).count(), 1, "{err}");
    assert!(!line.contains(" io: "), "{err}");
}
