//! What both CLI test files drive `peernet` with: the binary, one-shot
//! runs, and a `serve` child whose stdout is read line by line.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
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

/// Runs `peernet args` in `cwd` to its end, as [`output`] does.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    output(command(peernet()).args(args).current_dir(cwd))
}

/// How long a command run to its end may take before the test fails:
/// generous, only to bound a hang (each takes well under a second).
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end as [`Command::output`] does (stdin empty, stdout
/// and stderr captured), but for at most [`RUN_LIMIT`]: one that runs on
/// is killed and fails the test with its output so far.
pub fn output(cmd: &mut Command) -> Output {
    finish(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))
}

/// Runs `cmd` to its end with stdin empty and stdout and stderr where
/// `cmd` sends them (what goes to a pipe is captured), bounded as
/// [`output`] is.
pub fn finish(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    finish_within(cmd, &what, RUN_LIMIT)
}

/// [`finish`] with a limit of its own, the command named `what` if it
/// runs that long.
pub fn finish_within(cmd: &mut Command, what: &str, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    wait_for(&mut child, what, limit)
}

/// What a bounded wait hears from its threads: the child exited, or one
/// of its output pipes ended.
pub struct Ended;

/// Waits for `child` to exit, reading what it writes to the pipes still
/// in it (its stdout and stderr if piped and not taken), for at most
/// `limit`. Past that the child is killed and the test fails, naming it
/// `what` and showing what it wrote so far.
pub fn wait_for(child: &mut Child, what: &str, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().map(|pipe| drain(pipe, tx.clone()));
    let err = child.stderr.take().map(|pipe| drain(pipe, tx.clone()));
    on_exit(child, tx);
    let mut left = 1 + usize::from(out.is_some()) + usize::from(err.is_some());
    let mut ran_on = false;
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Ended) => left -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                ran_on = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if ran_on {
        let _ = child.kill();
        // (its pipes end with it: what it wrote last is read first)
        let grace = Instant::now() + Duration::from_secs(10);
        while left > 0
            && rx
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
                .is_ok()
        {
            left -= 1;
        }
    }
    let status = child.wait().unwrap();
    let written = |pipe: Option<Arc<Mutex<Vec<u8>>>>| {
        pipe.map(|b| std::mem::take(&mut *b.lock().unwrap()))
            .unwrap_or_default()
    };
    let (stdout, stderr) = (written(out), written(err));
    assert!(
        !ran_on,
        "{what}: still running after {limit:?}, killed\nstdout so far:\n{}\nstderr so far:\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread, into the buffer returned; says
/// [`Ended`] on `tx` then.
pub fn drain(mut pipe: impl Read + Send + 'static, tx: mpsc::Sender<Ended>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let filled = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0; 4096];
        while let Some(n) = read_some(&mut pipe, &mut chunk) {
            filled.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
        let _ = tx.send(Ended);
    });
    buf
}

/// One read of `pipe` into `chunk`: how many bytes came, or none at its
/// end or at an error. A read interrupted by a signal is tried again, as
/// `read_to_end` does (it used to end the reading, as if the pipe had
/// ended, and what came after was lost).
fn read_some(pipe: &mut impl Read, chunk: &mut [u8]) -> Option<usize> {
    loop {
        match pipe.read(chunk) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// Says [`Ended`] on `tx` when `child` exits, from a thread that waits
/// for that without reaping it (`waitid` with `WNOWAIT`): the child stays
/// the caller's to kill and to wait for, and its pid cannot be another
/// process's meanwhile.
#[cfg(unix)]
fn on_exit(child: &Child, tx: mpsc::Sender<Ended>) {
    let pid = child.id();
    std::thread::spawn(move || {
        loop {
            // SAFETY: `info` is a valid siginfo_t for waitid to fill.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waits on a child of this process; WNOWAIT leaves it
            // to be reaped by its `Child`.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        let _ = tx.send(Ended);
    });
}

/// Elsewhere there is no exit to wait for without reaping: the end of the
/// captured pipes stands for it.
#[cfg(not(unix))]
fn on_exit(_child: &Child, tx: mpsc::Sender<Ended>) {
    let _ = tx.send(Ended);
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
///
/// A line that is not UTF-8, or a read that fails, fails the test that
/// takes it, naming what came (the reader thread used to panic on it,
/// and the test waited for a line that never came, or read the end of
/// stdout, without a word of why).
pub struct Lines(mpsc::Receiver<(Instant, Result<String, String>)>);

impl Lines {
    pub fn new(out: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            loop {
                let mut line = Vec::new();
                let (read, ended) = match out.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    // (and reads on, so that the child never blocks on a
                    // full pipe)
                    Ok(_) => match String::from_utf8(line_of(line)) {
                        Ok(line) => (Ok(line), false),
                        Err(e) => {
                            let bytes = e.as_bytes().escape_ascii();
                            (Err(format!("a line that is not UTF-8: \"{bytes}\"")), false)
                        }
                    },
                    Err(e) => (Err(format!("stdout could not be read: {e}")), true),
                };
                if tx.send((Instant::now(), read)).is_err() || ended {
                    return;
                }
            }
        });
        Lines(rx)
    }

    pub fn next_at(&self) -> (Instant, String) {
        let (at, line) = self
            .0
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from serve");
        (at, taken(line))
    }

    pub fn next(&self) -> String {
        self.next_at().1
    }

    /// The next line, or none if the child's stdout ended first.
    pub fn next_or_end(&self) -> Option<String> {
        match self.0.recv_timeout(Duration::from_secs(30)) {
            Ok((_, line)) => Some(taken(line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("neither a line nor an end in 30 s"),
        }
    }

    /// The lines left until the child's stdout ends.
    pub fn rest(&self) -> Vec<String> {
        let mut rest = Vec::new();
        loop {
            match self.0.recv_timeout(Duration::from_secs(30)) {
                Ok((_, line)) => rest.push(taken(line)),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("serve's stdout did not end"),
            }
        }
    }
}

/// A line read with its end, as [`BufRead::lines`] gives it: without
/// its `\n` or `\r\n`.
fn line_of(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    line
}

/// A line of [`Lines`], or the test's failure that says what came
/// instead.
fn taken(line: Result<String, String>) -> String {
    line.unwrap_or_else(|what| panic!("serve's stdout: {what}"))
}

/// What a child writes to one pipe, as it comes (not line by line: a
/// tracer's line that waits for its syscall to end counts as far as it
/// got), read on a thread so that a test awaits what it needs to see.
pub struct Said {
    chunks: mpsc::Receiver<Vec<u8>>,
    text: Vec<u8>,
}

impl Said {
    pub fn new(mut pipe: impl Read + Send + 'static) -> Said {
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Some(n) = read_some(&mut pipe, &mut chunk) {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Said {
            chunks,
            text: Vec::new(),
        }
    }

    /// Waits until what was written holds `needle`: true once it does,
    /// false if the pipe ended or `limit` passed without it.
    ///
    /// Each chunk's bytes are searched once, with the bytes before them
    /// that a needle split across chunks may begin with (one fewer than
    /// the needle has): converting the whole text for every chunk took
    /// time quadratic in a tracer's output. (A needle of valid UTF-8 is in the bytes exactly when it is
    /// in their lossy conversion, unless it holds U+FFFD.)
    pub fn holds_within(&mut self, needle: &str, limit: Duration) -> bool {
        let needle = needle.as_bytes();
        if needle.is_empty() {
            return true;
        }
        let deadline = Instant::now() + limit;
        let mut from = 0;
        loop {
            if self.text[from..].windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            from = self.text.len().saturating_sub(needle.len() - 1);
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(wait) {
                Ok(chunk) => self.text.extend_from_slice(&chunk),
                Err(_) => return false,
            }
        }
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// A child that is killed (and reaped) when dropped, so that a failed
/// assertion leaves nothing running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Killed {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A `peernet serve` that printed its `listening` and `ticket` lines.
pub struct Started {
    pub child: Killed,
    pub lines: Lines,
    pub peer: String,
    pub addr: String,
    pub ticket: String,
}

impl Started {
    /// Where to call it: `<PeerId>@<address>`.
    pub fn target(&self) -> String {
        format!("{}@{}", self.peer, self.addr)
    }
}

/// Starts `peernet serve args` in `cwd`, its stderr to `stderr`, logging
/// at `log` (RUST_LOG): the child (killed when dropped) and its stdout's
/// lines, none read yet.
pub fn spawn_serve(cwd: &Path, args: &[&str], stderr: Stdio, log: &str) -> (Killed, Lines) {
    let mut child = Killed(
        command(peernet())
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
            .unwrap(),
    );
    let lines = Lines::new(child.stdout.take().unwrap());
    (child, lines)
}

/// Starts `peernet serve args` as [`spawn_serve`] does, and reads its
/// first two lines.
pub fn start_serve(cwd: &Path, args: &[&str], stderr: Stdio, log: &str) -> Started {
    // (killed if a line is not as it should be, as when dropped)
    let (child, lines) = spawn_serve(cwd, args, stderr, log);
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

/// Runs `peernet args` in `cwd` to its end with its stdout on
/// `/dev/full` (every write to it fails, as on a full disk) and its
/// stderr captured, bounded as [`output`] is; panic reports without a
/// backtrace.
pub fn run_into_a_full_stdout(args: &[&str], cwd: &Path) -> Output {
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    finish(
        command(peernet())
            .args(args)
            .current_dir(cwd)
            .env("RUST_BACKTRACE", "0")
            .stdout(full)
            .stderr(Stdio::piped()),
    )
}

/// Makes a FIFO at `path` (with the `mkfifo` command); fails the test
/// if it cannot.
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}: {made}", path.display());
}

/// Sends `signal` (as `kill` takes it: `-TERM`, `-INT`, ...) to the
/// process `pid`; fails the test if `kill` does.
pub fn send_signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}: {sent}");
}

/// Runs `peernet call --key key --connect target extra…` in `cwd`.
pub fn call(cwd: &Path, key: &str, target: &str, extra: &[&str]) -> Output {
    let mut args = vec!["call", "--key", key, "--connect", target];
    args.extend_from_slice(extra);
    run(&args, cwd)
}
