//! What `serve --listen` and tickets make of addresses that name no
//! reachable peer, or one address two ways (review s40, r3): an IPv4
//! address in IPv6 form is its IPv4 form in a ticket (one address, one
//! text) and for `--listen`; a multicast listen address is refused.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::*;
use peernet_tokio::{Identity, Ticket};

/// `serve --listen listen` with a new key in `d`, and its stdout's lines.
fn serve_listening_on(d: &std::path::Path, listen: &str) -> (Killed, Lines) {
    keygen(d, "k");
    let args = ["--key", "k", "--listen", listen];
    spawn_serve(d, &args, Stdio::null(), "warn")
}

/// `127.0.0.1:4000` and `[::ffff:127.0.0.1]:4000` are one
/// address (the book, `is_dialable` and discovery all treat the mapped
/// form as its IPv4 form); `Ticket::new` used to keep both: "duplicates
/// dropped" did not hold, the same ticket had two texts, and a ticket of
/// 8 addresses plus one spelled twice was refused as 9.
#[test]
fn a_ticket_keeps_an_address_given_two_ways_once() {
    let peer = Identity::from_seed(&[7; 32]).peer_id();
    let v4: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
    let ticket = Ticket::new(peer, [v4, mapped]).unwrap();
    assert_eq!(
        ticket.addrs().len(),
        1,
        "one address spelled two ways is kept twice: {:?}",
        ticket.addrs()
    );
}

/// As the CLI shows it: `peernet ticket` printed a ticket that
/// named the same address twice, which `pair` then stored once.
#[test]
fn the_cli_ticket_names_an_address_given_two_ways_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["init", "a"], d);
    let text = ok(
        &[
            "ticket",
            "a",
            "--addr",
            "127.0.0.1:4000",
            "--addr",
            "[::ffff:127.0.0.1]:4000",
        ],
        d,
    );
    let ticket: Ticket = text.trim().parse().unwrap();
    assert_eq!(ticket.addrs().len(), 1, "{:?}", ticket.addrs());
}

/// One (peer, address) had two ticket texts.
#[test]
fn one_peer_at_one_address_has_one_ticket_text() {
    let peer = Identity::from_seed(&[7; 32]).peer_id();
    let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
    let a = Ticket::new(peer, [v4]).unwrap();
    let b = Ticket::new(peer, [mapped]).unwrap();
    assert_eq!(
        a.to_string(),
        b.to_string(),
        "one peer at one address, two tickets"
    );
}

/// `serve --listen` on a multicast address bound (Linux lets a
/// TCP socket bind 224.0.0.1), ran, and printed no ticket (a warning on
/// stderr said it cannot be dialed). No peer can ever reach it: a usage
/// error (exit 64), as `pair`/`call` refuse such an address.
#[test]
fn serve_refuses_a_multicast_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = serve_listening_on(dir.path(), "224.0.0.1:0");
    // (the first line, or the end of stdout when it exits: bounded)
    if let Some(line) = lines.next_or_end() {
        panic!("serve runs on a multicast address: {line:?}");
    }
    let out = wait_for(&mut child.0, "serve on a multicast address", RUN_LIMIT);
    assert_eq!(out.status.code(), Some(64));
}

/// `--listen [::ffff:0.0.0.0]:0` listens on every IPv4 address (the
/// unspecified address in IPv6 form); it was not seen as unspecified:
/// `serve` printed `listening` and then no `ticket` line (a warning said
/// `[::ffff:0.0.0.0]:PORT cannot be dialed`).
#[test]
fn serve_on_the_v4_mapped_unspecified_address_prints_a_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, lines) = serve_listening_on(dir.path(), "[::ffff:0.0.0.0]:0");
    let listening = lines.next();
    assert!(listening.starts_with("listening "), "{listening}");
    // (bounded: a fixed build prints the ticket right after)
    let next = lines.next_or_end();
    assert!(
        matches!(&next, Some(line) if line.starts_with("ticket peernet1")),
        "after {listening:?}: {next:?}"
    );
}
