//! The data-directory commands of `peernet` (init, ticket, pair, unpair,
//! peers, serve/call/send --data-dir), driven as processes: every output
//! line and exit code the scripts rely on.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use peernet_tokio::book_file::AddrSource;
use std::time::{Duration, Instant};

fn serve(cwd: &Path, dir: &str, listen: &str, extra: &[&str]) -> Started {
    let mut args = vec!["--data-dir", dir, "--listen", listen];
    args.extend_from_slice(extra);
    start_serve(cwd, &args, Stdio::null(), "warn")
}

/// Data directories `a` and `b` in `d`, `a` trusting `b` and serving
/// `echo` on loopback: their PeerIds and the server.
fn a_serves_echo_to_b(d: &Path) -> (String, String, Started) {
    let a = init(d, "a");
    let b = init(d, "b");
    ok(&["pair", "a", &b], d);
    let s = serve(d, "a", "127.0.0.1:0", &["--expose", "echo"]);
    (a, b, s)
}

fn init(cwd: &Path, dir: &str) -> String {
    let out = ok(&["init", dir], cwd);
    let peer = out.trim_end().to_string();
    assert_eq!(out, format!("{peer}\n"));
    assert_eq!(peer.len(), 64);
    peer
}

#[test]
fn init_makes_a_private_directory_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let peer = init(d, "a");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("a")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(d.join("a/identity"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(ok(&["id", "a/identity"], d).trim_end(), peer);
    assert_eq!(ok(&["peers", "a"], d), "");
    let err = fails(1, &["init", "a"], d);
    assert!(err.contains("already holds an identity"), "{err}");
    assert_eq!(ok(&["id", "a/identity"], d).trim_end(), peer);
    // a directory without an identity is not a node
    std::fs::create_dir(d.join("empty")).unwrap();
    let err = fails(1, &["peers", "empty"], d);
    assert!(err.contains("holds no identity"), "{err}");
}

/// `init` makes its directory's missing parents (the library makes only
/// the last component of a data directory, so that a node started on a
/// mistyped path fails), and every other command refuses a directory
/// init did not make, a mistyped parent included.
#[test]
fn init_makes_missing_parents_and_other_commands_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let peer = init(d, "share/peernet/node");
    assert_eq!(
        ok(&["id", "share/peernet/node/identity"], d).trim_end(),
        peer
    );
    let err = fails(1, &["peers", "share/peernet-typo/node"], d);
    assert!(err.contains("holds no identity"), "{err}");
    assert!(!d.join("share/peernet-typo").exists());
}

/// The parents `init` makes are private (0700), whatever the umask, as
/// they were when the library made them (and as the XDG spec asks of a
/// data directory's): a `umask 002` left them writable by the group.
#[cfg(unix)]
#[test]
fn init_makes_its_missing_parents_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = output(
        command("sh")
            .arg("-c")
            .arg("umask 002 && exec \"$0\" init share/peernet/node")
            .arg(peernet())
            .current_dir(d),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for dir in ["share", "share/peernet", "share/peernet/node"] {
        let mode = std::fs::metadata(d.join(dir)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}: {mode:o}");
    }
}

/// An init whose trust list or book cannot be saved leaves no identity,
/// and run again (once the cause is gone) finishes and prints the PeerId.
/// It used to write the identity first: the failed init never printed
/// the PeerId, and every later one said "already holds an identity".
/// (The save fails on a dangling symbolic link in the list's place,
/// which saves refuse to write through; and on a file size limit of 0.)
#[cfg(unix)]
#[test]
fn an_init_that_failed_can_be_run_again_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for list in ["trust", "book"] {
        let dir = init_with_a_list_in_the_way(
            d,
            list,
            |link| std::os::unix::fs::symlink("elsewhere", link).unwrap(),
            "symbolic link",
        );
        let err = fails(1, &["init", &dir], d);
        assert!(err.contains("already holds an identity"), "{list}: {err}");
    }
    let out = output(
        command("sh")
            .arg("-c")
            .arg("ulimit -f 0 && trap '' XFSZ && exec \"$0\" init full")
            .arg(peernet())
            .current_dir(d),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!d.join("full/identity").exists());
    init(d, "full");
}

/// `d/node-LIST`, where init finds `put` in the place of `list` (the
/// trust list or the book): init fails with `error` in its message and
/// leaves no identity (so `peers` says the directory holds none); once
/// the thing in the way is gone, init finishes and prints the PeerId the
/// identity holds. Returns the directory's name.
fn init_with_a_list_in_the_way(d: &Path, list: &str, put: impl Fn(&Path), error: &str) -> String {
    let dir = format!("node-{list}");
    std::fs::create_dir(d.join(&dir)).unwrap();
    let in_the_way = d.join(&dir).join(list);
    put(&in_the_way);
    let err = fails(1, &["init", &dir], d);
    assert!(err.contains(error), "{list}: {err}");
    assert!(err.contains(list), "{list}: {err}");
    assert!(
        !d.join(&dir).join("identity").exists(),
        "{list}: an identity left by an init that failed"
    );
    let err = fails(1, &["peers", &dir], d);
    assert!(err.contains("holds no identity"), "{list}: {err}");
    match std::fs::symlink_metadata(&in_the_way).unwrap().is_dir() {
        true => std::fs::remove_dir(&in_the_way).unwrap(),
        false => std::fs::remove_file(&in_the_way).unwrap(),
    }
    let peer = init(d, &dir);
    assert_eq!(ok(&["id", &format!("{dir}/identity")], d).trim_end(), peer);
    assert_eq!(ok(&["peers", &dir], d), "");
    dir
}

/// A list that is there but is not a regular file (a FIFO, a directory)
/// used to count as present: init succeeded, and every later command
/// failed on it ("not a regular file"). init refuses it now, naming it,
/// and leaves no identity; with the list removed, init finishes.
#[test]
fn an_init_refuses_a_list_that_is_not_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for list in ["trust", "book"] {
        init_with_a_list_in_the_way(
            d,
            list,
            |path| std::fs::create_dir(path).unwrap(),
            "not a regular file",
        );
    }
    let dir = d.join("node-fifo");
    std::fs::create_dir(&dir).unwrap();
    mkfifo(&dir.join("trust"));
    let err = fails(1, &["init", "node-fifo"], d);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn racing_inits_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for round in 0..10 {
        let dir = format!("r{round}");
        let children: Vec<_> = (0..4)
            .map(|_| {
                command(peernet())
                    .args(["init", &dir])
                    .current_dir(d)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|mut c| wait_for(&mut c, &format!("init {dir}"), RUN_LIMIT))
            .collect();
        let winners: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert!(
            outs.iter()
                .filter(|o| !o.status.success())
                .all(|o| o.status.code() == Some(1))
        );
        let id = ok(&["id", &format!("{dir}/identity")], d);
        assert_eq!(id, stdout(winners[0]));
    }
}

#[test]
fn ticket_pair_peers_unpair() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = init(d, "a");
    let b = init(d, "b");
    let ticket = ok(
        &[
            "ticket",
            "b",
            "--addr",
            "127.0.0.1:4000",
            "--addr",
            "[::1]:4001",
        ],
        d,
    );
    let ticket = ticket.trim_end();
    assert!(ticket.starts_with("peernet1"), "{ticket}");
    // pairing by ticket records its addresses
    assert_eq!(ok(&["pair", "a", ticket], d), "");
    assert_eq!(
        ok(&["peers", "a"], d),
        format!("{b} - 127.0.0.1:4000,[::1]:4001\n")
    );
    // a label; pairing again without --label keeps it, new addresses
    // replace the old ones
    ok(&["pair", "a", &b, "--label", "bee"], d);
    assert_eq!(
        ok(&["peers", "a"], d),
        format!("{b} bee 127.0.0.1:4000,[::1]:4001\n")
    );
    ok(&["pair", "a", &format!("{b}@127.0.0.1:5000")], d);
    assert_eq!(ok(&["peers", "a"], d), format!("{b} bee 127.0.0.1:5000\n"));
    // a peer without address or label
    let c = init(d, "c");
    ok(&["pair", "a", &c], d);
    let peers = ok(&["peers", "a"], d);
    let mut expected = vec![format!("{b} bee 127.0.0.1:5000"), format!("{c} - -")];
    expected.sort();
    assert_eq!(peers.lines().collect::<Vec<_>>(), expected);
    // unpair forgets the addresses too; twice is exit 1
    ok(&["unpair", "a", &b], d);
    assert_eq!(ok(&["peers", "a"], d), format!("{c} - -\n"));
    let err = fails(1, &["unpair", "a", &b], d);
    assert!(err.contains("not paired"), "{err}");
    ok(&["pair", "a", &b], d);
    assert_eq!(
        ok(&["peers", "a"], d)
            .lines()
            .filter(|l| l.starts_with(&b))
            .collect::<Vec<_>>(),
        [format!("{b} - -")]
    );
    // usage errors: bad labels, bad targets, a typo in a ticket, no --addr
    fails(64, &["pair", "a", &c, "--label", "-"], d);
    fails(64, &["pair", "a", &c, "--label", "two words"], d);
    fails(64, &["pair", "a", "nonsense"], d);
    let mut typo = ticket.to_string().into_bytes();
    let last = typo.len() - 3;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let err = fails(64, &["pair", "a", std::str::from_utf8(&typo).unwrap()], d);
    assert!(err.contains("ticket"), "{err}");
    fails(64, &["ticket", "b"], d);
    let mut nine = vec!["ticket", "b"];
    let addrs: Vec<String> = (0..9).map(|i| format!("127.0.0.1:{}", 4000 + i)).collect();
    for a in &addrs {
        nine.extend(["--addr", a.as_str()]);
    }
    let err = fails(64, &nine, d);
    assert!(err.contains("at most 8 addresses"), "{err}");
    fails(1, &["ticket", "nowhere", "--addr", "127.0.0.1:1"], d);
    fails(64, &["pair", "a", &a], d);
}

/// A damaged book is an error where it is needed, naming the file and
/// the line: `pair` with addresses, and `peers`, which lists the trusted
/// peers all the same (addresses `?`). Review s54: `pair DIR PEERID`,
/// which changes no address, failed on it, and `peers` listed nothing.
#[test]
fn a_damaged_book_is_an_error_where_it_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    let b = init(d, "b");
    let book = d.join("a/book");
    std::fs::write(&book, "peernet-address-book v1\n").unwrap();
    let named = format!("{}: line 2: ", book.display());
    // a bare PeerId: no address to save, the book is not needed
    let paired = run(&["pair", "a", &b], d);
    assert!(paired.status.success(), "{}", stderr(&paired));
    // with an address: refused, naming the file and the line
    let err = fails(1, &["pair", "a", &format!("{b}@192.0.2.7:4000")], d);
    assert!(err.contains(&named) && err.contains("truncated"), "{err}");
    // peers: the trust list, addresses unknown, then the book's error
    let peers = run(&["peers", "a"], d);
    assert_eq!(peers.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&peers.stdout), format!("{b} - ?\n"));
    let err = stderr(&peers);
    assert!(err.contains(&named) && err.contains("truncated"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&book).unwrap(),
        "peernet-address-book v1\n"
    );
}

/// An `error:` line names each cause of its error once, the innermost
/// included: the library's errors return their causes from `source` and
/// no longer repeat them, so the tool walks the chain (a line that
/// printed an error's message alone said `trust list file` and stopped;
/// one that walked the chain of an error that also repeated its cause
/// said the damaged line twice).
#[test]
fn an_error_line_names_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    std::fs::write(
        d.join("a/trust"),
        "peernet-trust-list v1\nnot-a-key\nend 1\n",
    )
    .unwrap();
    let err = fails(1, &["peers", "a"], d);
    // (the file named once, by the library: `trust list PATH: `)
    assert!(err.starts_with("error: trust list /"), "{err}");
    assert_eq!(err.matches("a/trust").count(), 1, "{err}");
    // (the kind once too: it said `a/trust: trust list line 2` before)
    assert_eq!(err.matches("trust list").count(), 1, "{err}");
    assert_eq!(err.matches("a/trust: line 2: ").count(), 1, "{err}");
    assert_eq!(err.matches("64 lowercase hex digits").count(), 1, "{err}");
}

#[test]
fn serve_locks_its_directory_and_prints_a_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (a, b, s) = a_serves_echo_to_b(d);
    // the ticket names the listen address
    let pair_out = ok(&["pair", "b", &s.ticket], d);
    assert_eq!(pair_out, "");
    assert_eq!(ok(&["peers", "b"], d), format!("{a} - {}\n", s.addr));
    // a second writer is refused at once; readers are fine
    let c = init(d, "c");
    // (the directory named: review s54, it said `data directory in use`)
    let in_use = format!("error: data directory {} in use\n", d.join("a").display());
    let err = fails(1, &["pair", "a", &c], d);
    assert_eq!(err, in_use);
    fails(1, &["unpair", "a", &b], d);
    let err = fails(
        1,
        &["serve", "--data-dir", "a", "--listen", "127.0.0.1:0"],
        d,
    );
    assert_eq!(err, in_use);
    assert_eq!(ok(&["peers", "a"], d), format!("{b} - -\n"));
    // call by PeerId through b's book, and by ticket as a one-off trust
    let reply = ok(&["call", "--data-dir", "b", &a, "echo", "hi"], d);
    assert_eq!(reply, "hi");
    assert_eq!(s.lines.next(), format!("connected {b}"));
    let err = fails(1, &["call", "--data-dir", "c", &s.ticket, "echo", "x"], d);
    // c is not trusted by a: the handshake is refused
    assert!(!err.is_empty());
    let err = fails(1, &["call", "--data-dir", "c", &a, "echo", "x"], d);
    assert!(err.contains("not paired"), "{err}");
    ok(&["send", "--data-dir", "b", &s.ticket, "echo", "x"], d);
    // --connect takes a ticket as it takes PEERID@IP:PORT (b's identity
    // file as the key), but not a bare PeerId, which names no address
    let reply = ok(
        &[
            "call",
            "--key",
            "b/identity",
            "--connect",
            &s.ticket,
            "echo",
            "t",
        ],
        d,
    );
    assert_eq!(reply, "t");
    let err = fails(
        64,
        &["call", "--key", "b/identity", "--connect", &a, "echo", "x"],
        d,
    );
    assert!(err.contains("not a bare PeerId"), "{err}");
    // nor a ticket that names no address: a usage error too, not a dial
    // that fails later
    let peer = a.parse().unwrap();
    let bare = peernet_tokio::Ticket::new(peer, []).unwrap().to_string();
    let err = fails(
        64,
        &[
            "call",
            "--key",
            "b/identity",
            "--connect",
            &bare,
            "echo",
            "x",
        ],
        d,
    );
    assert!(err.contains("names no address"), "{err}");
}

#[test]
fn an_unspecified_listen_address_gives_interface_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    let s = serve(d, "a", "0.0.0.0:0", &[]);
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let b = init(d, "b");
    ok(&["pair", "b", &s.ticket], d);
    let peers = ok(&["peers", "b"], d);
    let addrs = peers.trim_end().rsplit(' ').next().unwrap().to_string();
    assert!(
        addrs.split(',').all(|a| a.ends_with(&format!(":{port}"))),
        "{addrs}"
    );
    assert!(!addrs.contains("0.0.0.0"), "{addrs}");
    // loopback only on a host that has nothing else: the ticket is for
    // another host, which would dial its own
    let loopback: Vec<bool> = addrs
        .split(',')
        .map(|a| {
            a.parse::<std::net::SocketAddr>()
                .unwrap()
                .ip()
                .is_loopback()
        })
        .collect();
    assert!(
        loopback.iter().all(|&l| l) || loopback.iter().all(|&l| !l),
        "{addrs}"
    );
    let _ = b;
}

/// `serve --keep-connected`: the first dial is silent; after the peer is
/// killed every redial is announced as `reconnecting <PEERID> attempt <N>
/// after <MS>ms` right before it is made, N from 1, the first 0.1-1 s after
/// the loss and each next one at least 1.5x the one before; the peer
/// restarted on its address is reconnected without anyone asking.
///
/// The delays are the ones the node reports, not the gaps between the
/// times this test reads the lines: those also hold how late the output
/// thread and this test were scheduled, which on a loaded machine is
/// enough to break a 1.5x check (the schedule's timing itself is tested
/// in the core, `dial_schedule.rs`, and by the simulation). The node is
/// only checked to wait them: the fourth redial is read no earlier than
/// the four delays after b was killed. (Counted from the kill, which
/// comes before the loss, not from when the loss's line was read, which
/// may come late: no margin is needed.)
#[test]
fn keep_connected_redials_with_backoff_and_announces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = init(d, "a");
    let b = init(d, "b");
    ok(&["pair", "b", &a], d);
    // b first, on a free port, to know its address
    let sb = serve(d, "b", "127.0.0.1:0", &["--expose", "echo"]);
    let b_addr = sb.addr.clone();
    ok(&["pair", "a", &sb.ticket], d);
    let sa = serve(d, "a", "127.0.0.1:0", &["--keep-connected"]);
    // the first dial is silent
    assert_eq!(sa.lines.next(), format!("connected {b}"));
    // (before the kill: the loss, and each redial's wait, come after it)
    let killed_at = Instant::now();
    drop(sb); // SIGKILL: no goodbye, the transport is lost
    let (lost_at, lost) = sa.lines.next_at();
    assert_eq!(lost, format!("disconnected {b} transport_lost"));
    let mut redials = Vec::new();
    let mut delays = Vec::new();
    for n in 1..=4 {
        let (at, line) = sa.lines.next_at();
        let prefix = format!("reconnecting {b} attempt {n} after ");
        let ms = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("ms"))
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("expected `{prefix}<MS>ms`, got {line:?}"));
        redials.push(at);
        delays.push(Duration::from_millis(ms));
    }
    assert!(
        (Duration::from_millis(100)..=Duration::from_secs(1)).contains(&delays[0]),
        "first redial {:?} after the loss",
        delays[0]
    );
    for w in delays.windows(2) {
        // (reported in whole milliseconds, each rounded down: 1 ms slack)
        assert!(
            w[1].as_secs_f64() + 0.001 >= w[0].as_secs_f64() * 1.5,
            "delays do not grow 1.5x: {delays:?}"
        );
    }
    // The node really waits them: the fourth redial is made (and so read)
    // no earlier than the four delays after the loss, which came after
    // the kill.
    let waited: Duration = delays.iter().sum();
    let seen = redials[3] - killed_at;
    assert!(
        seen >= waited,
        "redials read {seen:?} after the kill, reported delays {delays:?}"
    );
    let gaps: Vec<Duration> = std::iter::once(redials[0] - lost_at)
        .chain(redials.windows(2).map(|w| w[1] - w[0]))
        .collect();
    eprintln!(
        "reported redial delays: {delays:?}, seen: {gaps:?}; the fourth {seen:?} after the kill"
    );
    // b comes back on the same address: reconnected, attempt numbers go on
    // until then
    let sb = serve(d, "b", &b_addr, &["--expose", "echo"]);
    loop {
        let line = sa.lines.next();
        if line == format!("connected {b}") {
            break;
        }
        assert!(
            line.starts_with(&format!("reconnecting {b} attempt ")),
            "{line}"
        );
    }
    assert_eq!(sb.lines.next(), format!("connected {a}"));
}

/// `serve --mdns`, on the loopback only: a keeps b connected knowing no
/// address for it; b announces itself; a dials it and saves the address
/// in its book (source discovery).
#[cfg(feature = "mdns")]
#[test]
fn mdns_finds_a_kept_peer_and_the_book_remembers() {
    if !peernet_conformance::netns::here_with_loopback_multicast(
        "mdns_finds_a_kept_peer_and_the_book_remembers",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = init(d, "a");
    let b = init(d, "b");
    ok(&["pair", "a", &b], d);
    ok(&["pair", "b", &a], d);
    let lo = ["--mdns", "--mdns-interface", "127.0.0.1"];
    let sa = serve(
        d,
        "a",
        "127.0.0.1:0",
        &[&["--keep-connected"][..], &lo].concat(),
    );
    let sb = serve(d, "b", "127.0.0.1:0", &lo);
    assert_eq!(sa.lines.next(), format!("connected {b}"));
    assert_eq!(sb.lines.next(), format!("connected {a}"));
    // SIGTERM: a graceful stop saves what the book has pending
    let mut sa = sa;
    send_signal("-TERM", sa.child.id());
    let out = wait_for(&mut sa.child, "serve after its SIGTERM", RUN_LIMIT);
    assert_eq!(out.status.code(), Some(0));
    let book = std::fs::read_to_string(d.join("a/book")).unwrap();
    assert!(
        book.contains(&format!("{b} {} discovery", sb.addr)),
        "{book}"
    );
}

/// Values no peer could ever use are the user's mistake, said at once
/// with exit 64 (usage) and before any dial: an address a dial cannot
/// reach (port 0, an unspecified or multicast IP) in `--connect`, a
/// ticket or `pair`; a handle no peer can expose; an unknown demo handle;
/// a frame limit below the largest handshake frame.
#[test]
fn values_no_peer_can_use_are_usage_errors_before_any_dial() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = init(d, "a");
    keygen(d, "k.key");
    for addr in ["127.0.0.1:0", "0.0.0.0:4000", "[::]:4000", "224.0.0.1:4000"] {
        let target = format!("{a}@{addr}");
        let call = ["call", "--key", "k.key", "--connect", &target, "echo", "x"];
        let err = fails(64, &call, d);
        assert!(err.contains("cannot be dialed"), "{addr}: {err}");
        let err = fails(64, &["ticket", "a", "--addr", addr], d);
        assert!(err.contains("cannot be dialed"), "{addr}: {err}");
        let err = fails(64, &["pair", "a", &target], d);
        assert!(err.contains("cannot be dialed"), "{addr}: {err}");
    }
    assert_eq!(ok(&["peers", "a"], d), "", "nothing was saved");
    // port 1 is closed: a dial would fail with exit 1, not 64
    let closed = format!("{a}@127.0.0.1:1");
    let long = "h".repeat(256);
    for handle in ["", long.as_str()] {
        let call = ["call", "--key", "k.key", "--connect", &closed, handle, "x"];
        let err = fails(64, &call, d);
        assert!(err.contains("invalid handle"), "{err}");
    }
    let serve = ["serve", "--key", "k.key", "--listen", "127.0.0.1:0"];
    let err = fails(64, &[&serve[..], &["--expose", "bogus"]].concat(), d);
    assert!(err.contains("no demo handle"), "{err}");
    let err = fails(64, &[&serve[..], &["--max-frame", "149"]].concat(), d);
    assert!(err.contains("149"), "{err}");
    // no identity: the message names both ways to give one, not --key
    // alone (a data directory's user was told --key was required)
    for command in [
        &["call", &closed, "echo", "x"][..],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let err = fails(64, command, d);
        assert!(err.contains("<--key <FILE>|--data-dir <DIR>>"), "{err}");
    }
    let both = [
        "call",
        "--key",
        "k.key",
        "--data-dir",
        "a",
        &closed,
        "echo",
        "x",
    ];
    let err = fails(64, &both, d);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// A data directory file that is not a regular file (a FIFO) is refused
/// by `serve --data-dir` at once, naming the file, not the directory,
/// and what it is. The path is said once: the library names the file
/// now, and the tool no longer puts it before the library's words too.
#[test]
fn serve_names_the_data_directory_file_it_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "x");
    for (file, what) in [
        ("trust", "trust list"),
        ("book", "address book"),
        ("identity", "identity file"),
        ("lock", "lock file"),
    ] {
        let path = d.join("x").join(file);
        let kept = d.join(format!("kept-{file}"));
        std::fs::rename(&path, &kept).unwrap();
        mkfifo(&path);
        let err = fails(
            1,
            &["serve", "--data-dir", "x", "--listen", "127.0.0.1:0"],
            d,
        );
        let line = err.lines().last().unwrap();
        let named = format!("x/{file}");
        assert_eq!(line.matches(&named).count(), 1, "{file}: {err}");
        assert!(line.contains(&format!("{what} ")), "{file}: {err}");
        assert!(
            line.contains(&format!("{named}: not a regular file")),
            "{file}: {err}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&kept, &path).unwrap();
    }
}

/// The `error:` line is the last line the tool writes, after its logs
/// (they used to come out in either order), and `init` on a file says it
/// is not a directory.
#[test]
fn the_error_line_comes_last_and_init_names_a_file_in_the_way() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    let b = init(d, "b");
    // a trust list its group may write (a warning), an address book
    // anyone may write (the error)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |m| std::fs::Permissions::from_mode(m);
        std::fs::set_permissions(d.join("a/trust"), mode(0o660)).unwrap();
        std::fs::set_permissions(d.join("a/book"), mode(0o646)).unwrap();
    }
    // (with an address: a bare PeerId does not read the book)
    let err = fails(1, &["pair", "a", &format!("{b}@192.0.2.7:4000")], d);
    assert!(err.contains("chmod o-w"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "a warning and the error: {err}");
    assert!(lines.last().unwrap().starts_with("error: "), "{err}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| !l.starts_with("error: ")),
        "{err}"
    );
    std::fs::write(d.join("afile"), b"").unwrap();
    let err = fails(1, &["init", "afile"], d);
    assert!(err.contains("exists and is not a directory"), "{err}");
}

/// A call through a ticket of several addresses that all fail says why
/// each failed: here one answers as another peer, one refuses.
#[test]
fn every_address_tried_is_named_with_its_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    init(d, "b");
    let c = init(d, "c");
    let s = serve(d, "b", "127.0.0.1:0", &[]);
    let ticket = ok(
        &["ticket", "c", "--addr", &s.addr, "--addr", "127.0.0.1:1"],
        d,
    );
    let err = fails(
        1,
        &["call", "--data-dir", "a", ticket.trim_end(), "echo", "x"],
        d,
    );
    assert!(err.contains(&format!("peer {c} is unreachable")), "{err}");
    assert!(err.contains(&format!("{}: ", s.addr)), "{err}");
    assert!(err.contains("127.0.0.1:1: "), "{err}");
}

/// A ticket cannot carry an IPv6 scope id: `ticket --addr` with one is a
/// usage error. (It used to drop the scope and print a ticket for
/// `[fe80::1]:7000`, an address that names no link.)
#[test]
fn a_ticket_refuses_a_scoped_address() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "node"], d);
    let err = fails(64, &["ticket", "node", "--addr", "[fe80::1%2]:7000"], d);
    assert!(err.contains("scope id"), "{err}");
}

/// A ticket typed in upper case is refused with a message that says so
/// (it used to say that a PeerId is 64 lowercase hex digits).
#[test]
fn an_upper_case_ticket_is_refused_for_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "a"], d);
    ok(&["init", "b"], d);
    let ticket = ok(&["ticket", "b", "--addr", "192.0.2.1:7000"], d);
    let upper = ticket.trim().to_uppercase();
    let err = fails(64, &["pair", "a", &upper], d);
    assert!(err.contains("lower case"), "{err}");
}

/// Every `peers` line splits on spaces into three fields, whoever wrote
/// the label: the library's `Node::pair` takes a label with inner spaces,
/// which `peers` used to print as it was, shifting the address column.
#[test]
fn peers_lines_have_three_fields_whatever_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "node"], d);
    let other = peernet_tokio::Identity::from_seed(&[7; 32]).peer_id();
    ok(&["pair", "node", &format!("{other}@192.0.2.1:7000")], d);
    let data = peernet_tokio::persist::DataDir::open(d.join("node")).unwrap();
    let mut trust = data.load_trust().unwrap();
    trust.insert(other, Some(peernet_tokio::Label::new("my laptop").unwrap()));
    data.save_trust(&trust).unwrap();
    let line = ok(&["peers", "node"], d);
    assert_eq!(line, format!("{other} my\\u{{20}}laptop 192.0.2.1:7000\n"));
}

/// An I/O error on the lock file names it (it said `lock file: Is a
/// directory`, pointing nowhere).
#[test]
fn a_lock_file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "node"], d);
    // (init holds the lock too, so the lock file is there)
    std::fs::remove_file(d.join("node/lock")).unwrap();
    std::fs::create_dir(d.join("node/lock")).unwrap();
    let other = peernet_tokio::Identity::from_seed(&[7; 32])
        .peer_id()
        .to_string();
    let err = fails(1, &["pair", "node", &other], d);
    assert!(err.contains("node/lock: "), "{err}");
    // (once: the library names it, the tool no longer does too)
    assert_eq!(err.matches("node/lock").count(), 1, "{err}");
}

/// `init` refuses a directory that holds anything but a data directory's
/// files, and leaves it as it was: it used to add its files there and make
/// it 0700 (a web root, a project, a shared directory mistyped). A
/// directory that lost only its identity is still mended.
#[cfg(unix)]
#[test]
fn init_refuses_a_directory_that_is_not_a_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let www = d.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hi").unwrap();
    std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = fails(1, &["init", "www"], d);
    assert!(err.contains("not a data directory"), "{err}");
    let mode = std::fs::metadata(&www).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    let names: Vec<_> = std::fs::read_dir(&www)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["index.html"]);
    // an empty directory, and one that lost its identity, are fine
    std::fs::create_dir(d.join("empty")).unwrap();
    ok(&["init", "empty"], d);
    std::fs::remove_file(d.join("empty/identity")).unwrap();
    ok(&["init", "empty"], d);
}

/// The commands that print one result (`id`, `keygen`, `ticket`, `peers`,
/// `init`) fail with one `error:` line and exit 1 when stdout cannot take
/// it; `println!` used to panic (exit 101, a panic report).
#[test]
fn a_result_stdout_cannot_take_is_an_error_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "a.key");
    ok(&["init", "node"], d);
    let commands: [&[&str]; 5] = [
        &["id", "a.key"],
        &["keygen", "c.key"],
        &["init", "fresh"],
        &["ticket", "node", "--addr", "192.0.2.1:7000"],
        &["peers", "node"],
    ];
    ok(
        &[
            "pair",
            "node",
            &format!("{}@192.0.2.1:7000", keygen(d, "p.key")),
        ],
        d,
    );
    for args in commands {
        let out = run_into_a_full_stdout(args, d);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: stdout: "), "{args:?}: {err}");
    }
}

/// With stdout and stderr both a pipe nobody reads (`cmd 2>&1 | head`,
/// the reader gone) a command exits 1, quietly: the `error:` line's
/// `eprintln!` used to panic there (exit 101). (A closed stdout, `>&-`,
/// is not such a case: the standard library opens it on `/dev/null` at
/// start, so the result goes where `> /dev/null` sends it.)
#[cfg(unix)]
#[test]
fn a_result_to_a_dead_pipe_is_exit_1_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "a.key");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let dead = finish(
        command(peernet())
            .args(["id", "a.key"])
            .current_dir(d)
            .env("RUST_BACKTRACE", "0")
            .stdout(writer.try_clone().unwrap())
            .stderr(writer),
    );
    assert_eq!(dead.status.code(), Some(1));
}

/// `call --data-dir DIR PEERID` dials the saved book in the order the node
/// itself would: an address that worked first. It used to add the saved
/// addresses one by one without their `worked` marks, so a silent address
/// listed first took the whole `--timeout` although the one that worked
/// answers at once.
#[test]
fn call_by_peer_id_dials_what_worked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (a, _b, s) = a_serves_echo_to_b(d);
    // a port that takes connections and never says a word
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().map(|addr| (silent, addr)).unwrap();
    ok(&["pair", "b", &a], d);
    let book = format!(
        "peernet-address-book v1\n{a} {} application\n{a} {} discovery worked\nend 2\n",
        silent.1, s.addr
    );
    std::fs::write(d.join("b/book"), book).unwrap();
    let reply = ok(
        &[
            "call",
            "--data-dir",
            "b",
            "--timeout",
            "4000",
            &a,
            "echo",
            "hi",
        ],
        d,
    );
    assert_eq!(reply, "hi");
}

/// Edits the trust file of data directory `dir` by hand to name its own
/// node, `own`.
fn name_itself(d: &Path, dir: &str, own: &str) {
    let data = peernet_tokio::persist::DataDir::open(d.join(dir)).unwrap();
    let mut trust = data.load_trust().unwrap();
    trust.insert(own.parse().unwrap(), None);
    data.save_trust(&trust).unwrap();
}

/// Whether the trust file of data directory `dir` names `own`.
fn names_itself(d: &Path, dir: &str, own: &str) -> bool {
    let data = peernet_tokio::persist::DataDir::open(d.join(dir)).unwrap();
    data.load_trust().unwrap().contains(&own.parse().unwrap())
}

/// A trust file edited by hand to name the node itself: the node ignores
/// the entry (a node never trusts itself), so `peers` does not list it,
/// `pair` and `unpair` of another peer write the file without it, and
/// `unpair` of the node's own PeerId removes it.
#[test]
fn the_file_commands_leave_out_an_entry_of_the_node_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = init(d, "a");
    let b = init(d, "b");
    let name_itself = || name_itself(d, "a", &a);
    let names_itself = || names_itself(d, "a", &a);
    name_itself();
    assert_eq!(ok(&["peers", "a"], d), "", "the node itself listed");
    ok(&["pair", "a", &b], d);
    assert!(!names_itself(), "pair wrote the node's own entry back");
    assert_eq!(ok(&["peers", "a"], d), format!("{b} - -\n"));
    name_itself();
    ok(&["unpair", "a", &b], d);
    assert!(!names_itself(), "unpair wrote the node's own entry back");
    name_itself();
    ok(&["unpair", "a", &a], d);
    assert!(!names_itself(), "unpair of the node itself left its entry");
    let err = fails(1, &["unpair", "a", &a], d);
    assert!(err.contains("not paired"), "{err}");
}

/// The book file of data directory `dir`, edited by hand to give its own
/// node, `own`, an address.
fn book_names_itself(d: &Path, dir: &str, own: &str) {
    let data = peernet_tokio::persist::DataDir::open(d.join(dir)).unwrap();
    let mut book = data.load_book().unwrap();
    let addr = "127.0.0.1:7000".parse().unwrap();
    book.set(own.parse().unwrap(), [(addr, AddrSource::Application)]);
    data.save_book(&book).unwrap();
}

/// Whether the book file of data directory `dir` has lines of `peer`.
fn book_has(d: &Path, dir: &str, peer: &str) -> bool {
    let data = peernet_tokio::persist::DataDir::open(d.join(dir)).unwrap();
    !data
        .load_book()
        .unwrap()
        .get(&peer.parse().unwrap())
        .is_empty()
}

/// A book edited by hand to give the node itself an address: `pair`
/// with an address and `unpair` of another peer, which save the book
/// whole, leave those lines out, with one warning that names the file
/// (they wrote them back, as the trust file's entry of the node itself
/// once was); `unpair` of the node itself removes them as before.
#[test]
fn the_file_commands_leave_out_book_lines_of_the_node_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = init(d, "a");
    let b = init(d, "b");
    let book = d.join("a").join("book");
    let warning = "the address book names this node itself: a node never dials itself, the \
                   lines are left out of the file";
    let path = book.display().to_string();
    book_names_itself(d, "a", &a);
    let out = run(&["pair", "a", &format!("{b}@127.0.0.1:5000")], d);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&path), "{}", stderr(&out));
    assert!(
        !book_has(d, "a", &a),
        "pair wrote the node's own lines back"
    );
    assert!(book_has(d, "a", &b));
    book_names_itself(d, "a", &a);
    let out = run(&["unpair", "a", &b], d);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(warning), "{}", stderr(&out));
    assert!(
        !book_has(d, "a", &a),
        "unpair wrote the node's own lines back"
    );
    book_names_itself(d, "a", &a);
    ok(&["unpair", "a", &a], d);
    assert!(
        !book_has(d, "a", &a),
        "unpair of the node itself left its lines"
    );
}

/// `call --data-dir` reads the trust list as the node does too: an entry
/// of the node itself (a hand edit) is not a pairing, so a call to the
/// node's own PeerId is refused (a usage error since 11ffc39, as for any
/// call naming the node itself; it was "not paired", exit 1), with one
/// warning that names the file, instead of going on to look for the
/// node's own addresses (and dial itself, had the book any).
#[test]
fn a_call_to_the_node_itself_is_not_paired_though_the_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = init(d, "a");
    name_itself(d, "a", &a);
    let err = fails(64, &["call", "--data-dir", "a", &a, "echo", "hi"], d);
    assert!(
        err.contains(&format!(
            "error: {a} is this node's own PeerId: a node cannot call itself"
        )),
        "{err}"
    );
    let warned = err.matches("names this node itself").count();
    assert_eq!(warned, 1, "{err}");
}

/// Nodes `a` and `b` in `d`, `a` trusting `b` at 127.0.0.1:5000: `b`'s
/// PeerId and `a`'s book file.
fn a_pairs_b_with_an_address(d: &Path) -> (String, PathBuf) {
    init(d, "a");
    let b = init(d, "b");
    ok(&["pair", "a", &format!("{b}@127.0.0.1:5000")], d);
    (b, d.join("a/book"))
}

/// An `unpair` whose book save fails (here the book is a symbolic link,
/// which is never written through) has already saved the trust list: it
/// used to exit 1 naming only the book, as if nothing had changed, and
/// then `unpair` again said `not paired` and left the revoked peer's
/// addresses in the book for good, so a later `pair` by PeerId took them
/// back. Now the error says the peer is unpaired, and `unpair` run again
/// forgets its addresses. (A `pair` whose book save fails says, too,
/// that the peer is paired.)
#[cfg(unix)]
#[test]
fn an_unpair_whose_book_save_failed_can_be_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (b, book) = a_pairs_b_with_an_address(d);
    let elsewhere = d.join("book-elsewhere");
    std::fs::rename(&book, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &book).unwrap();
    // (a pair whose book save fails says the peer is paired all the same)
    let c = init(d, "c");
    let err = fails(1, &["pair", "a", &format!("{c}@127.0.0.1:6000")], d);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains(&format!("{c} is paired")), "{err}");
    // (the save names the file as a load does, once: it said
    // `(address book: PATH is a symbolic link: …)`)
    let named = format!("(address book {}: is a symbolic link: ", book.display());
    assert!(err.contains(&named), "{err}");
    ok(&["unpair", "a", &c], d);
    let err = fails(1, &["unpair", "a", &b], d);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains(&format!("{b} is unpaired")), "{err}");
    assert_eq!(ok(&["peers", "a"], d), "", "the trust list was saved");
    // the operator mends the book (a regular file again) and runs it again
    std::fs::remove_file(&book).unwrap();
    std::fs::copy(&elsewhere, &book).unwrap();
    ok(&["unpair", "a", &b], d);
    let err = fails(1, &["unpair", "a", &b], d);
    assert!(err.contains("not paired"), "{err}");
    // a later pair by PeerId starts the peer without the old address
    ok(&["pair", "a", &b], d);
    assert_eq!(ok(&["peers", "a"], d), format!("{b} - -\n"));
}

/// A book that does not load (a hand edit gone wrong) does not hold up
/// an `unpair`: the peer is revoked, the error says so and names the
/// book, and `unpair` again, once the book is mended, forgets the
/// peer's addresses. The unpair used to fail at the book with nothing
/// changed, leaving the peer trusted.
#[test]
fn an_unpair_revokes_though_the_book_is_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (b, book) = a_pairs_b_with_an_address(d);
    let saved = std::fs::read_to_string(&book).unwrap();
    std::fs::write(&book, saved.replace("application", "applicaton")).unwrap();
    let err = fails(1, &["unpair", "a", &b], d);
    assert!(err.contains(&format!("{b} is unpaired")), "{err}");
    assert!(err.contains("unknown source"), "{err}");
    let trust = std::fs::read_to_string(d.join("a/trust")).unwrap();
    assert!(!trust.contains(&b), "{trust}");
    std::fs::write(&book, &saved).unwrap();
    ok(&["unpair", "a", &b], d);
    ok(&["pair", "a", &b], d);
    assert_eq!(ok(&["peers", "a"], d), format!("{b} - -\n"));
}

/// A `pair` into a book at its bound (as a node whose `max_addresses` is
/// above `MAX_SAVED_ADDRS` saves it) refuses, saving nothing, rather than
/// exit 0 with none of the new peer's addresses kept (review s46, revs:
/// 709f3b3 refused a file of one address more, but a full book of its
/// own making lost the new addresses the same way).
#[test]
fn a_pair_into_a_full_book_is_refused_and_saves_nothing() {
    use peernet_tokio::Identity;
    use peernet_tokio::book_file::{BOOK_HEADER, MAX_SAVED_ADDRS, MAX_SAVED_ADDRS_PER_PEER};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    let b = init(d, "b");
    let mut text = format!("{BOOK_HEADER}\n");
    for i in 0..MAX_SAVED_ADDRS {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i / MAX_SAVED_ADDRS_PER_PEER).to_be_bytes());
        let p = Identity::from_seed(&seed).peer_id();
        let port = 1 + i % MAX_SAVED_ADDRS_PER_PEER;
        text.push_str(&format!("{p} 192.0.2.1:{port} ticket\n"));
    }
    text.push_str(&format!("end {MAX_SAVED_ADDRS}\n"));
    std::fs::write(d.join("a/book"), &text).unwrap();
    let trust = std::fs::read_to_string(d.join("a/trust")).unwrap();
    let err = fails(1, &["pair", "a", &format!("{b}@127.0.0.1:4000")], d);
    assert!(err.contains("address book is full"), "{err}");
    assert!(err.contains("nothing saved"), "{err}");
    assert_eq!(std::fs::read_to_string(d.join("a/book")).unwrap(), text);
    assert_eq!(std::fs::read_to_string(d.join("a/trust")).unwrap(), trust);
    // a pair without addresses has nothing to fit: it trusts the peer
    assert_eq!(ok(&["pair", "a", &b], d), "");
}

/// Review s48: a ticket whose first address never answers (a VPN or
/// container address of the host that made it) and whose second works.
/// Every address of the round had the default `dial_timeout`, 10 s,
/// which is `--timeout`'s default too: the first took the whole budget
/// and the call failed with `timeout`, the working address never tried.
/// Each address now gets a share of `--timeout` (here 3 s of 6 s).
#[test]
fn a_call_goes_past_an_address_that_never_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_, _, s) = a_serves_echo_to_b(d);
    let (silent, _held) = peernet_conformance::silent_address();
    let ticket = ok(
        &[
            "ticket",
            "a",
            "--addr",
            &silent.to_string(),
            "--addr",
            &s.addr,
        ],
        d,
    );
    let reply = ok(
        &[
            "call",
            "--key",
            "b/identity",
            "--timeout",
            "6000",
            ticket.trim_end(),
            "echo",
            "past",
        ],
        d,
    );
    assert_eq!(reply, "past");
}

/// Review s52 (revo): `call --data-dir DIR PEERID` tries every address
/// the book holds, within `--timeout`, as its help says (each gets a
/// share of it). A call dials one round of the node's schedule, which
/// takes at most two discovery hints that never worked: with three or
/// more (a peer announced with every address of its host, as mDNS tells
/// of one listening on `0.0.0.0`), those past the first two were never
/// dialed, and the call failed `unreachable` every time, the one that
/// answers among them (a short-lived process never moves the schedule
/// on, as `serve` does from round to round).
#[test]
fn call_by_peer_id_tries_every_discovery_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (a, _b, s) = a_serves_echo_to_b(d);
    ok(&["pair", "b", &a], d);
    // ports that refuse at once (bound, then let go)
    let refused: Vec<String> = (0..4)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        })
        .collect();
    for real_at in 0..=refused.len() {
        let mut addrs = refused.clone();
        addrs.insert(real_at, s.addr.clone());
        let lines: String = addrs
            .iter()
            .map(|addr| format!("{a} {addr} discovery\n"))
            .collect();
        let book = format!("peernet-address-book v1\n{lines}end {}\n", addrs.len());
        std::fs::write(d.join("b/book"), book).unwrap();
        let out = run(
            &[
                "call",
                "--data-dir",
                "b",
                "--timeout",
                "20000",
                &a,
                "echo",
                "hi",
            ],
            d,
        );
        assert_eq!(
            (out.status.code(), stdout(&out).as_str()),
            (Some(0), "hi"),
            "the real address at {real_at} of {}: {}",
            addrs.len(),
            stderr(&out)
        );
    }
}

/// A path that is not UTF-8 is shown as the library shows it, `\xff`,
/// on every error line: the tool's own errors showed it `�` (two names
/// that differ only there read the same), the library's `\xff`.
#[cfg(unix)]
#[test]
fn a_path_that_is_not_utf8_is_shown_alike_by_the_tool_and_the_library() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dir = OsStr::from_bytes(b"x\xff");
    let run_in = |args: &[&OsStr]| output(command(peernet()).args(args).current_dir(d));
    let init = run_in(&[OsStr::new("init"), dir]);
    assert!(init.status.success(), "{}", stderr(&init));
    // the tool's own error
    let again = stderr(&run_in(&[OsStr::new("init"), dir]));
    assert!(
        again.contains(r"x\xff already holds an identity"),
        "{again}"
    );
    // the library's
    std::fs::write(d.join(dir).join("book"), "peernet-address-book v1\n").unwrap();
    let peers = stderr(&run_in(&[OsStr::new("peers"), dir]));
    assert!(peers.contains(r"x\xff/book: line 2"), "{peers}");
    assert!(!again.contains('\u{fffd}') && !peers.contains('\u{fffd}'));
}

/// A ticket naming an address of this host or its link (loopback,
/// link-local: a stranger's ticket can point a kept node at
/// `127.0.0.1:6379` or `169.254.169.254:80`) is paired with a warning
/// naming it, not refused (a demo's peers on one host pair so); a ticket
/// of other addresses pairs without one. Review s54: no word was said.
#[test]
fn a_ticket_naming_this_hosts_addresses_is_paired_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "a");
    init(d, "b");
    let ticket = |addrs: &[&str]| {
        let mut args = vec!["ticket", "b"];
        for addr in addrs {
            args.extend(["--addr", addr]);
        }
        ok(&args, d).trim().to_string()
    };
    let local = ticket(&["192.0.2.7:7000", "127.0.0.1:6379", "169.254.169.254:80"]);
    let paired = run(&["pair", "a", &local], d);
    assert!(paired.status.success(), "{}", stderr(&paired));
    let warned = stderr(&paired);
    let lines: Vec<&str> = warned.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(lines.len(), 2, "{warned}");
    assert!(lines[0].contains("127.0.0.1:6379"), "{warned}");
    assert!(lines[1].contains("169.254.169.254:80"), "{warned}");
    let elsewhere = ticket(&["192.0.2.7:7000"]);
    let paired = run(&["pair", "a", &elsewhere], d);
    assert!(paired.status.success(), "{}", stderr(&paired));
    assert_eq!(stderr(&paired), "");
}

/// The CLI's view of a trust file made a FIFO or a directory (while a
/// node ran, or by whoever may write the directory): `pair`, `unpair`
/// and `peers` end at once (a run that hangs fails the test at its
/// limit) with exit 1 and one `error:` line that names the file, says
/// what is there and what to do; nothing is written in its place.
#[test]
fn the_file_commands_name_a_trust_file_that_is_not_regular() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d, "a");
    let b = init(d, "b");
    let trust = d.join("a").join("trust");
    for (what, make) in [
        ("a FIFO", mkfifo as fn(&Path)),
        ("a directory", |p: &Path| std::fs::create_dir(p).unwrap()),
    ] {
        let _ = std::fs::remove_file(&trust);
        make(&trust);
        let kind = std::fs::symlink_metadata(&trust).unwrap().file_type();
        for args in [
            &["pair", "a", &b][..],
            &["unpair", "a", &b],
            &["peers", "a"],
        ] {
            let err = fails(1, args, d);
            let line = err.lines().last().unwrap();
            let named = format!(
                "trust list {}: not a regular file ({what}): nothing was read from it; move it \
                 away",
                trust.display()
            );
            assert!(line.starts_with("error: "), "{what} {args:?}: {err}");
            assert!(line.contains(&named), "{what} {args:?}: {err}");
            let now = std::fs::symlink_metadata(&trust).unwrap().file_type();
            assert_eq!(now, kind, "{what} {args:?}: replaced");
        }
        if kind.is_dir() {
            std::fs::remove_dir(&trust).unwrap();
        }
    }
}
