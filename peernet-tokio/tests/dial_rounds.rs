//! Dial rounds through the address book, on a real network: what a
//! round reports, and what it records (the review of the dial layer,
//! s35, turned each finding into one of these).

#[path = "common/counted.rs"]
mod counted;

use std::net::SocketAddr;
use std::time::Duration;

use counted::Counted;
use peernet_conformance::silent_address;
use peernet_tokio::book_file::SavedBook;
use peernet_tokio::{
    AddrSource, Config, ConnectError, DialConfig, DialFailure, Identity, Node, NodeConfig,
    NodeEvent, PeerId, RejectCode,
};

fn id(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

fn peer(seed: u8) -> PeerId {
    id(seed).peer_id()
}

fn config(seed: u8, trusts: &[u8]) -> NodeConfig {
    let mut config = NodeConfig::new(id(seed));
    for t in trusts {
        config = config.trusting(peer(*t));
    }
    config
}

async fn node(seed: u8, trusts: &[u8]) -> Node {
    Node::bind(config(seed, trusts), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn dead_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A node trusting peer 2 whose dials give up after `dial_timeout`.
async fn node_with_dial_timeout(dial_timeout: Duration) -> Node {
    let mut protocol = Config::default();
    let mut dial = DialConfig::default();
    dial.dial_timeout = dial_timeout;
    protocol.dial = dial;
    Node::bind(
        config(1, &[2]).protocol(protocol),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

/// An address whose TCP connect never completes (SYNs dropped: a full
/// accept queue, on loopback) is dialed until `dial_timeout`, and the
/// round's `Unreachable` error says so. (The core's deadline fires before
/// the dial task's: the cause must come from the core.)
#[tokio::test]
async fn unreachable_says_why_a_silent_address_failed() {
    let (silent, _held) = silent_address();
    let a = node_with_dial_timeout(Duration::from_millis(500)).await;
    a.add_address(peer(2), silent, AddrSource::Application)
        .unwrap();
    let err = a.connect_peer(peer(2), None).await.unwrap_err();
    let ConnectError::Unreachable { tried, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        tried,
        &[(silent, DialFailure::TimedOut(Duration::from_millis(500)))],
        "`{err}`"
    );
}

/// `Unreachable { tried }` lists each address tried in the round that
/// failed, and nothing else: not an earlier, unrelated `Node::connect`
/// that failed.
#[tokio::test]
async fn unreachable_lists_only_the_rounds_addresses() {
    let a = node(1, &[2, 3]).await;
    let c = node(3, &[1]).await;
    let elsewhere = c.local_addr().unwrap();
    // the wrong peer answers there: the handshake fails
    assert!(a.connect(peer(2), elsewhere).await.is_err());
    let dead = dead_address();
    a.add_address(peer(2), dead, AddrSource::Application)
        .unwrap();
    let err = a.connect_peer(peer(2), None).await.unwrap_err();
    let ConnectError::Unreachable { tried, .. } = &err else {
        panic!("{err}");
    };
    let addrs: Vec<SocketAddr> = tried.iter().map(|(a, _)| *a).collect();
    assert_eq!(addrs, [dead], "`{err}`");
    assert!(matches!(tried[0].1, DialFailure::Transport(_)), "`{err}`");
}

/// Review s54 (newcomer P3): pairing on one side only (1 trusts 2, 2
/// does not trust 1), a dial through the book reached 2, which refused
/// the handshake (REJECT `untrusted`), and the error and the event said
/// `peer … is unreachable`. They say it was rejected, and with which
/// code, beside a dead address of the same round; by the node at that
/// address, not by the peer (brief s55: a REJECT does not prove who
/// sent it).
#[tokio::test]
async fn a_round_refused_by_the_peer_says_it_was_rejected() {
    let a = node(1, &[2]).await;
    let b = node(2, &[]).await;
    let there = b.local_addr().unwrap();
    let dead = dead_address();
    for addr in [there, dead] {
        a.add_address(peer(2), addr, AddrSource::Application)
            .unwrap();
    }
    let events = a.events();
    let err = a.connect_peer(peer(2), None).await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Unreachable { tried, .. } if tried.len() == 2),
        "{err}"
    );
    assert_eq!(err.rejection(), Some(RejectCode::Untrusted), "{err}");
    let said = err.to_string();
    let lead = format!(
        "the node at {there} rejected the handshake for peer {} (untrusted); \
         no address tried gave a connection: ",
        peer(2)
    );
    assert!(said.starts_with(&lead), "{said}");
    assert!(said.contains(&format!(
        "{there}: handshake: rejected by the remote node (untrusted): \
         it does not trust our PeerId (it has not paired us)"
    )));
    let event = loop {
        match events.recv().await.unwrap() {
            event @ NodeEvent::Unreachable { .. } => break event,
            _ => continue,
        }
    };
    assert_eq!(event.rejection(), Some(RejectCode::Untrusted), "{event:?}");
    // (dialed directly, the handshake's own error says the same)
    let direct = a.connect(peer(2), there).await.unwrap_err();
    assert_eq!(direct.rejection(), Some(RejectCode::Untrusted), "{direct}");
    // and a round that reached nobody is unreachable, as it was
    let c = node(3, &[2]).await;
    c.add_address(peer(2), dead, AddrSource::Application)
        .unwrap();
    let err = c.connect_peer(peer(2), None).await.unwrap_err();
    assert_eq!(err.rejection(), None, "{err}");
    assert!(
        err.to_string()
            .contains("is unreachable at every address tried"),
        "{err}"
    );
}

/// `Node::connect(peer, addr)` to a peer already connected resolves at
/// once without opening anything, and records nothing: an untried
/// address (a typo, say) must not enter the book as the application's.
#[tokio::test]
async fn connect_to_a_connected_peer_does_not_record_an_untested_address() {
    let a = node(1, &[2]).await;
    let b = node(2, &[1]).await;
    a.connect(peer(2), b.local_addr().unwrap()).await.unwrap();
    let typo = dead_address();
    // already connected: resolves Ok at once, nothing dialed
    a.connect(peer(2), typo).await.unwrap();
    let book: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert!(
        !book.contains(&typo),
        "an address nobody dialed was recorded as the application's: {book:?}"
    );
}

/// Review s52 (revo): `Node::connect` records the address that worked,
/// as its docs say, also when the application named the peer by the
/// unspecified address its listener reports (`0.0.0.0:PORT`, which
/// Linux dials as this host): the book refuses that address, so nothing
/// was recorded, and a kept peer had no address to redial once the
/// connection was lost. Where the connection went is recorded instead.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn connect_to_an_unspecified_address_records_where_it_went() {
    let a = node(1, &[2]).await;
    let b = Node::bind(config(2, &[1]), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let listening = b.local_addr().unwrap();
    assert!(listening.ip().is_unspecified());
    a.connect(peer(2), listening).await.unwrap();
    let book: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    let went = SocketAddr::from(([127, 0, 0, 1], listening.port()));
    assert_eq!(book, [went]);
    // and a kept peer is redialed there after a loss
    a.keep_connected(peer(2), true).unwrap();
    let events = a.events();
    assert!(a.disconnect(&peer(2)));
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let peernet_tokio::NodeEvent::Connected { peer: p, .. } =
                events.recv().await.unwrap()
            {
                if p == peer(2) {
                    return;
                }
            }
        }
    })
    .await
    .expect("redialed within 20 s");
}

/// Review s52 (revo): `Node::reconnect` records the address its new
/// connection went through, as `connect` does: an application that
/// redials a peer at a new address (it moved, the old connection is
/// half-open) had the connection, but the book kept only the old
/// addresses, and a kept peer was redialed there after the next loss.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn reconnect_records_the_address_it_went_through() {
    let a = node(1, &[2]).await;
    let b = Node::bind(config(2, &[1]), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let port = b.local_addr().unwrap().port();
    // (the whole 127/8 is this host's loopback: two addresses of b)
    let (old, new) = (
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 2], port)),
    );
    a.connect(peer(2), old).await.unwrap();
    a.reconnect(peer(2), new).await.unwrap();
    let book: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert!(book.contains(&new), "{book:?}");
}

/// Review s54 (review): the address a `connect` or `reconnect` went
/// through is recorded as one that worked, and as the one that worked
/// most recently: it was recorded as never tried, ranked behind an
/// older address that had worked (a peer that moved was redialed at
/// its old address first after a loss, up to a `dial_timeout` lost on
/// a stale one), not saved as `worked`, and a peer whose places were
/// all held by addresses that had worked had no room for it at all
/// (`Full`: the only address that works was not recorded).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_address_a_connect_went_through_worked_most_recently() {
    let per_peer = Config::default().max_addresses_per_peer;
    let b = Node::bind(config(2, &[1]), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let port = b.local_addr().unwrap().port();
    // (the whole 127/8 is this host's loopback: many addresses of b)
    let at = |last: usize| SocketAddr::from(([127, 0, 0, u8::try_from(last).unwrap()], port));
    // a node restarted with every place of b's held by an address that
    // worked, as its saved book says
    let mut saved = SavedBook::new();
    saved.set(
        peer(2),
        (1..=per_peer).map(|i| (at(i), AddrSource::Application)),
    );
    for i in 1..=per_peer {
        saved.mark_worked(&peer(2), at(i));
    }
    let a = Node::bind(
        config(1, &[2]).address_book(saved),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let book = a.addresses(&peer(2));
    assert_eq!(book.len(), per_peer);
    assert!(book.iter().all(|e| e.worked_last()), "{book:?}");
    // the peer moved: the application reconnects it at a new address
    let moved = at(100);
    a.connect(peer(2), moved).await.unwrap();
    let book = a.addresses(&peer(2));
    assert_eq!(book[0].addr, moved, "{book:?}");
    assert!(book[0].worked_last(), "{book:?}");
    assert_eq!(book.len(), per_peer);
    // and so does a reconnect to one it knew
    let again = at(3);
    a.reconnect(peer(2), again).await.unwrap();
    let book = a.addresses(&peer(2));
    assert_eq!((book[0].addr, book[1].addr), (again, moved), "{book:?}");
}

/// A node of the data directory `dir`, trusting peer 2.
async fn node_in(dir: &std::path::Path) -> Node {
    let config = NodeConfig::from_data_dir(dir).unwrap().trusting(peer(2));
    Node::bind(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// An `add_address` that changes nothing (an address known already, as
/// each mDNS re-announcement of a trusted peer repeats it) does not
/// rewrite the book file (temp file, fsync, rename, fsync of the
/// directory); one that changes its source does.
#[tokio::test]
async fn re_adding_a_known_address_does_not_rewrite_the_book() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let known: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let a = node_in(dir.path()).await;
    assert!(
        a.add_address(peer(2), known, AddrSource::Discovery)
            .unwrap()
    );
    a.shutdown().await;
    drop(a);
    let path = dir.path().join("book");
    let before = std::fs::metadata(&path).unwrap().ino();
    // control: a restart alone does not rewrite it
    let a = node_in(dir.path()).await;
    a.shutdown().await;
    drop(a);
    assert_eq!(before, std::fs::metadata(&path).unwrap().ino(), "control");
    let a = node_in(dir.path()).await;
    assert_eq!(a.addresses(&peer(2)).len(), 1);
    // the same address again, as an announcement repeats it
    assert!(
        !a.add_address(peer(2), known, AddrSource::Discovery)
            .unwrap()
    );
    a.shutdown().await;
    drop(a);
    let after = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(
        before, after,
        "the book file was replaced though nothing changed"
    );
    // from a ticket now: a better source, saved
    let a = node_in(dir.path()).await;
    assert!(a.add_address(peer(2), known, AddrSource::Ticket).unwrap());
    a.shutdown().await;
    drop(a);
    assert_ne!(after, std::fs::metadata(&path).unwrap().ino());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("192.0.2.7:4000 ticket"), "{text}");
}

/// Node `a` in `dir`, and node 2 (trusting it), which `a` knows by a
/// discovery hint of its address (returned) alone.
async fn a_and_its_peer_by_a_hint(dir: &std::path::Path) -> (Node, Node, SocketAddr) {
    let a = node_in(dir).await;
    let b = Node::bind(
        NodeConfig::new(id(2)).trusting(a.peer_id()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let at = b.local_addr().unwrap();
    a.add_address(peer(2), at, AddrSource::Discovery).unwrap();
    (a, b, at)
}

/// A discovery hint that worked is saved as such the moment it first
/// works (nothing else changed the book), and the node started again from
/// the directory ranks it as an address that worked: after a restart a
/// LAN host still cannot push it out, nor does one failure forget it.
/// Once its last dial failed, it is saved as not working: `worked
/// failed`, never `worked`.
#[tokio::test]
async fn a_hint_that_worked_is_saved_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, at) = a_and_its_peer_by_a_hint(dir.path()).await;
    a.shutdown().await;
    drop(a);
    let path = dir.path().join("book");
    let line = format!("{} {at} discovery", peer(2));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("{line}\n")), "{text}");
    let a = node_in(dir.path()).await;
    assert!(a.addresses(&peer(2))[0].last_ok.is_none());
    a.connect_peer(peer(2), None).await.unwrap();
    a.shutdown().await;
    drop(a);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("{line} worked\n")), "{text}");
    let a = node_in(dir.path()).await;
    assert!(a.addresses(&peer(2))[0].last_ok.is_some());
    // the peer goes: the hint's last dial fails, and the file says so (a
    // restart must not make a failing address look like a working one)
    b.shutdown().await;
    drop(b);
    assert!(a.connect_peer(peer(2), None).await.is_err());
    a.shutdown().await;
    drop(a);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&format!("{line} worked\n")), "{text}");
    assert!(text.contains(&format!("{line} worked failed\n")), "{text}");
    let a = node_in(dir.path()).await;
    let restored = a.addresses(&peer(2))[0];
    assert!(!restored.worked_last(), "{restored:?}");
}

/// A discovery hint that worked, then failed (the peer went: a
/// partition, or it sleeps), survives a restart of the node as such: LAN
/// hosts announcing false hints, more than the peer has places, do not
/// push it out, and the first round after the restart dials it. It used
/// to be saved as a hint that never worked, so the false hints pushed it
/// out, and it came back only when heard again, to wait its turn among
/// them.
#[tokio::test]
async fn a_hint_that_worked_then_failed_keeps_its_place_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, at) = a_and_its_peer_by_a_hint(dir.path()).await;
    a.connect_peer(peer(2), None).await.unwrap();
    // (a restart, so that no connection is left when the peer goes)
    a.shutdown().await;
    drop(a);
    let a = node_in(dir.path()).await;
    b.shutdown().await;
    drop(b);
    assert!(a.connect_peer(peer(2), None).await.is_err());
    a.shutdown().await;
    drop(a);
    let a = node_in(dir.path()).await;
    // (`max_addresses_per_peer` is 8: these fill every place)
    for _ in 0..12 {
        let _ = a.add_address(peer(2), dead_address(), AddrSource::Discovery);
    }
    let book: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert!(book.contains(&at), "pushed out: {book:?}");
    let err = a.connect_peer(peer(2), None).await.unwrap_err();
    let ConnectError::Unreachable { tried, .. } = &err else {
        panic!("{err}");
    };
    assert!(tried.iter().any(|(t, _)| *t == at), "not dialed: `{err}`");
}

/// The book file keeps a peer's addresses best first, and a node started
/// from it dials them in that order (alike in all else, the one listed
/// first), not sorted by IP.
#[tokio::test]
async fn a_saved_book_is_dialed_in_its_saved_order() {
    let good: SocketAddr = "192.0.2.200:4000".parse().unwrap();
    let stale: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let mut saved = SavedBook::new();
    saved.set(
        peer(2),
        [
            (good, AddrSource::Application),
            (stale, AddrSource::Application),
        ],
    );
    let text = saved.to_text();
    let a = Node::bind(
        config(1, &[2]).address_book(SavedBook::from_text(&text).unwrap()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let order: Vec<SocketAddr> = a.addresses(&peer(2)).iter().map(|e| e.addr).collect();
    assert_eq!(order, [good, stale], "file order: [{good}, {stale}]");
}

/// `connect_peer` callers that gave up (their futures dropped, e.g. by a
/// timeout of their own) are not kept waiting for the round: those of a
/// peer dialed again and again stay bounded by the callers still there.
#[tokio::test]
async fn callers_that_gave_up_do_not_pile_up() {
    use futures_util::FutureExt;
    let (silent, _held) = silent_address();
    let a = node_with_dial_timeout(Duration::from_secs(60)).await;
    a.add_address(peer(2), silent, AddrSource::Application)
        .unwrap();
    // each polled once (it joins the round) and dropped
    for _ in 0..100 {
        assert!(a.connect_peer(peer(2), None).now_or_never().is_none());
    }
    assert!(a.stats().connect_waiters <= 1, "{}", a.stats());
    let waiting = a.connect_peer(peer(2), None);
    let mut waiting = Box::pin(waiting);
    assert!((&mut waiting).now_or_never().is_none());
    assert_eq!(a.stats().connect_waiters, 1, "{}", a.stats());
    a.shutdown().await;
    assert!(waiting.await.is_err());
    assert_eq!(a.stats().connect_waiters, 0);
}

/// A call to a kept peer that is being reconnected waits for it within
/// its timeout; one that times out so, before the core ever held it, is
/// counted by the driver (`calls_timed_out_unsent`), as the core counts
/// the calls it held.
#[tokio::test]
async fn a_call_timed_out_waiting_for_a_reconnect_is_counted() {
    let (silent, _held) = silent_address();
    let a = node_with_dial_timeout(Duration::from_secs(60)).await;
    a.add_address(peer(2), silent, AddrSource::Application)
        .unwrap();
    a.keep_connected(peer(2), true).unwrap();
    let answer = a
        .call(&peer(2), "echo", b"", Duration::from_millis(100))
        .await;
    assert_eq!(answer, Err(peernet_tokio::CallError::Timeout));
    let stats = a.stats();
    assert_eq!(stats.calls_timed_out_unsent, 1, "{stats}");
    assert_eq!(stats.core.counters.calls_out.timed_out, 0, "{stats}");
}

/// A kept peer's handshake is under way (its port took the connection and
/// says nothing yet) when the node shuts down: the book file saved at the
/// close still holds the hint. Our own end used to count as the address
/// failing, and a hint that never worked was forgotten, on disk too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_mid_handshake_saves_the_hint_it_was_dialing() {
    let dir = tempfile::tempdir().unwrap();
    let b = peer(2);
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hint = slow.local_addr().unwrap();
    let config = NodeConfig::from_data_dir(dir.path()).unwrap().trusting(b);
    let node = Node::new(config);
    node.add_address(b, hint, AddrSource::Discovery).unwrap();
    node.keep_connected(b, true).unwrap();
    let (_held, _) = slow.accept().await.unwrap();
    node.shutdown().await;
    let saved = peernet_tokio::DataDir::open(dir.path())
        .unwrap()
        .load_book()
        .unwrap();
    assert_eq!(
        saved.get(&b),
        [(hint, AddrSource::Discovery)],
        "the book file after the shutdown:\n{}",
        std::fs::read_to_string(dir.path().join("book")).unwrap()
    );
}

/// A saved book's untried hints (listed best first: the latest heard
/// first) come back in that order at every start. Each restored hint
/// used to count as heard after the line before it, so the order turned
/// round at every start.
#[tokio::test]
async fn a_restored_book_keeps_the_order_of_its_hints() {
    let b = peer(2);
    let saved: Vec<SocketAddr> = (1..=3)
        .map(|i| SocketAddr::from(([192, 0, 2, i], 4000)))
        .collect();
    let mut book = SavedBook::new();
    book.set(b, saved.iter().map(|a| (*a, AddrSource::Discovery)));
    let app = SocketAddr::from(([192, 0, 2, 9], 4000));
    let mut with_app = book.clone();
    with_app.set(
        b,
        std::iter::once((app, AddrSource::Application))
            .chain(saved.iter().map(|a| (*a, AddrSource::Discovery))),
    );
    for (book, expected) in [
        (book, saved.clone()),
        (with_app, [vec![app], saved.clone()].concat()),
    ] {
        let node = Node::new(config(1, &[2]).address_book(book));
        let order: Vec<SocketAddr> = node.addresses(&b).iter().map(|e| e.addr).collect();
        assert_eq!(order, expected);
        node.shutdown().await;
    }
}

/// Review s48: calls waiting for a kept peer's reconnect sleep while
/// other peers come and go. The wake-up was one broadcast for the node,
/// notified whenever any peer connected: each call waiting for an absent
/// peer woke, took the node's lock and found its peer still away, once
/// per connection of anyone (a peer that connects and leaves in a loop,
/// within its connect rate, drove it). With 40 connections of another
/// peer, each waiting call was polled about 40 times; now it sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_a_reconnect_are_not_woken_by_other_peers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (silent, _held) = silent_address();
    let mut protocol = Config::default();
    let mut dial = DialConfig::default();
    dial.dial_timeout = Duration::from_secs(120);
    protocol.dial = dial;
    let a = Node::bind(
        config(1, &[2, 3]).protocol(protocol),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let a_addr = a.local_addr().unwrap();
    // peer 2 is kept, and its one address never answers: calls to it
    // wait for its reconnect
    a.add_address(peer(2), silent, AddrSource::Application)
        .unwrap();
    a.keep_connected(peer(2), true).unwrap();
    let mut callers = Vec::new();
    for _ in 0..8 {
        let polls = Arc::new(AtomicUsize::new(0));
        let a = a.clone();
        let call = async move {
            a.call(&peer(2), "echo", b"", Duration::from_secs(120))
                .await
        };
        let counted = Counted {
            fut: Box::pin(call),
            polls: polls.clone(),
        };
        callers.push((tokio::spawn(counted), polls));
    }
    let polled = || callers.iter().all(|(_, p)| p.load(Ordering::SeqCst) > 0);
    tokio::time::timeout(Duration::from_secs(20), async {
        while !polled() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every caller polled");
    let before: Vec<usize> = callers
        .iter()
        .map(|(_, p)| p.load(Ordering::SeqCst))
        .collect();
    // peer 3 connects and leaves, again and again
    let c = node(3, &[1]).await;
    let events = a.events();
    for _ in 0..40 {
        c.connect(peer(1), a_addr).await.unwrap();
        // (a's own registration of it, which is what woke the callers)
        loop {
            match tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .expect("a sees peer 3 connect")
            {
                Ok(peernet_tokio::NodeEvent::Connected { peer: p, .. }) if p == peer(3) => break,
                Ok(_) => {}
                Err(e) => panic!("events: {e:?}"),
            }
        }
        c.disconnect(&peer(1));
    }
    for ((task, polls), before) in callers.iter().zip(before) {
        assert!(!task.is_finished(), "still waiting");
        let woken = polls.load(Ordering::SeqCst) - before;
        assert!(
            woken < 8,
            "a call waiting for peer 2's reconnect was polled {woken} times while peer 3 \
             connected 40 times"
        );
    }
    // their own peer's wake-up still comes: no longer kept, they stop
    // waiting
    a.keep_connected(peer(2), false).unwrap();
    for (task, _) in callers {
        let answer = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("woken once peer 2 is no longer kept")
            .unwrap();
        assert_eq!(answer, Err(peernet_tokio::CallError::NotConnected));
    }
    c.shutdown().await;
    a.shutdown().await;
}
