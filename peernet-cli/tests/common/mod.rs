//! What both CLI test files drive `peernet` with: the binary, one-shot
//! runs, and a `serve` child whose stdout is read line by line.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test: cargo's build of `peernet`, or an installed
/// one named by `PEERNET_BIN` (the `cargo install` check runs these
/// suites against the installed binary).
pub fn peernet() -> PathBuf {
    match std::env::var_os("PEERNET_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => PathBuf::from(env!("CARGO_BIN_EXE_peernet")),
    }
}

/// A command for `program` that starts with SIGINT, SIGHUP and SIGTERM
/// at their default actions, whatever this test process inherited.
/// `serve` leaves a signal that was ignored at its start ignored
/// (`nohup`, a script's background job), so in a test run started that
/// way (`nohup cargo test`, `.ci/run &` from a script: such a job starts
/// with SIGINT ignored) the `serve` of every test would ignore the
/// signals the test sends it.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook runs in the child between fork and exec, and
        // calls only `signal`, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                Ok(())
            });
        }
    }
    command
}

/// Runs `peernet args` in `cwd` to its end.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    command(peernet())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Makes a key file `name` in `cwd` (expects exit 0); returns its peer id.
pub fn keygen(cwd: &Path, name: &str) -> String {
    ok(&["keygen", name], cwd).trim().to_string()
}

/// Runs and expects exit 0; returns stdout.
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let o = run(args, cwd);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Runs and expects exit `code`; returns stderr.
pub fn fails(code: i32, args: &[&str], cwd: &Path) -> String {
    let o = run(args, cwd);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    stderr(&o)
}

/// Lines of a child's stdout, each with when it was read, read on a
/// thread so the test waits with a safety timeout instead of forever.
pub struct Lines(mpsc::Receiver<(Instant, String)>);

impl Lines {
    pub fn new(out: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send((Instant::now(), line.unwrap())).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    pub fn next_at(&self) -> (Instant, String) {
        self.0
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from serve")
    }

    pub fn next(&self) -> String {
        self.next_at().1
    }

    /// The lines left until the child's stdout ends.
    pub fn rest(&self) -> Vec<String> {
        let mut rest = Vec::new();
        loop {
            match self.0.recv_timeout(Duration::from_secs(30)) {
                Ok((_, line)) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("serve's stdout did not end"),
            }
        }
    }
}

/// A `peernet serve` that printed its `listening` and `ticket` lines.
pub struct Started {
    pub child: Child,
    pub lines: Lines,
    pub peer: String,
    pub addr: String,
    pub ticket: String,
}

/// Starts `peernet serve args` in `cwd`, its stderr to `stderr`, logging
/// at `log` (RUST_LOG), and reads its first two lines.
pub fn start_serve(cwd: &Path, args: &[&str], stderr: Stdio, log: &str) -> Started {
    let mut child = command(peernet())
        .arg("serve")
        .args(args)
        .env("RUST_LOG", log)
        // Panic reports without a backtrace, whatever the environment says:
        // resolving one for this debug binary takes about a second of the
        // node's one runtime thread (measured 0.92 s on a quiet machine,
        // many times that under load), during which the node answers
        // nothing and a test's call can run out of time.
        .env("RUST_BACKTRACE", "0")
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    let listening = lines.next();
    let parts: Vec<&str> = listening.split(' ').collect();
    assert_eq!(parts.len(), 3, "{listening}");
    assert_eq!(parts[0], "listening");
    assert_ne!(
        parts[2].rsplit(':').next(),
        Some("0"),
        "the real port is printed"
    );
    let ticket = lines.next();
    let ticket = ticket
        .strip_prefix("ticket ")
        .unwrap_or_else(|| panic!("a ticket line, not {ticket:?}"))
        .to_string();
    assert!(ticket.starts_with("peernet1"), "{ticket}");
    Started {
        peer: parts[1].into(),
        addr: parts[2].into(),
        ticket,
        child,
        lines,
    }
}

/// [`start_serve`] of `serve --key key --listen 127.0.0.1:0 extra…`.
pub fn serve_keyed(cwd: &Path, key: &str, extra: &[&str], stderr: Stdio, log: &str) -> Started {
    let mut args = vec!["--key", key, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    start_serve(cwd, &args, stderr, log)
}

/// Runs `peernet call --key key --connect target extra…` in `cwd`.
pub fn call(cwd: &Path, key: &str, target: &str, extra: &[&str]) -> Output {
    let mut args = vec!["call", "--key", key, "--connect", target];
    args.extend_from_slice(extra);
    run(&args, cwd)
}
