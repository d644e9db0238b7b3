//! `serve` exits once its shutdown is over, though a write to its data
//! directory hangs (review s46, revo). The node lets a save that does not
//! end go after its grace period (`shutdown` returns, with a warning),
//! but the tool then dropped its tokio runtime, which waits for every
//! blocking task without bound: with a disk that hangs (measured with
//! fsync delayed 40 s each), `serve` lived some 80 s after its SIGTERM,
//! as long as the disk took.
//!
//! The hanging disk is strace's fault injection (`delay_enter` on fsync);
//! without strace, or where it may not trace, the test says so and ends.

#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Killed, Lines, Said, command, keygen, ok, peernet, send_signal, start_serve};

#[test]
fn serve_exits_after_its_shutdown_though_a_save_hangs() {
    let traced = command("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .status();
    if !traced.is_ok_and(|s| s.success()) {
        eprintln!("strace cannot run here: a hanging disk cannot be made; nothing checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = ok(&["init", "a"], d).trim_end().to_string();
    keygen(d, "b.key");
    let b = start_serve(
        d,
        &["--key", "b.key", "--listen", "127.0.0.1:0", "--trust", &a],
        Stdio::null(),
        "warn",
    );
    ok(&["pair", "a", &format!("{}@{}", b.peer, b.addr)], d);
    // `a` keeps `b` connected: the dial that works is saved in its book,
    // and each fsync of that save hangs 30 s (strace writes what it sees
    // to its stderr, which the test reads as it comes; serve's own
    // warnings go there too)
    let mut strace = Killed(
        command("strace")
            .args(["-f", "-qq"])
            .args(["-e", "trace=fsync,fdatasync,exit_group"])
            .args(["-e", "inject=fsync,fdatasync:delay_enter=30000000"])
            .arg(peernet())
            .args([
                "serve",
                "--data-dir",
                "a",
                "--listen",
                "127.0.0.1:0",
                "--keep-connected",
            ])
            .env("RUST_LOG", "warn")
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut trace = Said::new(strace.stderr.take().unwrap());
    let lines = Lines::new(strace.stdout.take().unwrap());
    assert!(lines.next().starts_with("listening "));
    assert!(lines.next().starts_with("ticket "));
    assert_eq!(lines.next(), format!("connected {}", b.peer));
    // the save comes 250 ms after the change: its first fsync hangs
    assert!(
        trace.holds_within("fsync(", Duration::from_secs(20)),
        "no save: {}",
        trace.text()
    );
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    let serve: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    send_signal("-TERM", serve);
    // The process ends with its `exit_group` (a thread stopped by strace
    // in its delayed fsync holds the process as a whole until the delay
    // is over; a real disk's killable wait would be cut short by it).
    let exited = trace.holds_within("exit_group(", Duration::from_secs(20));
    // (the node first: a tracer killed lets its tracee run on)
    let _ = Command::new("kill")
        .args(["-KILL", &serve.to_string()])
        .status();
    drop(strace);
    drop(b);
    assert!(
        exited,
        "serve did not exit within 20 s of its SIGTERM (shutdown grace 5 s): {}",
        trace.text()
    );
}
