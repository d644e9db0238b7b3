//! Scenarios of what a node does with a connection it refuses: at
//! accept, or at its first frame for a peer that connects too often.

use std::io;

use futures_util::AsyncReadExt;
use peernet_driver::ConnectError;
use peernet_proto::{HandshakeError, RejectCode};

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// A connection refused at accept (its source already has as many
/// handshakes in progress as allowed) is closed with a reset, not a FIN:
/// the dialer learns at once, and the node keeps no `TIME_WAIT` behind
/// however many a flood opens. The connection that holds the slot is
/// untouched.
pub async fn refused_at_accept_is_reset<H: Harness>() {
    let b: N<H> = node(2, &[1], |c| c.handshakes_per_source(1)).await;
    let rt = b.runtime().clone();
    let addr = b.local_addr().unwrap();
    // holds the one handshake 127.0.0.1 may have in progress: says nothing
    let (mut held, _held_w) = rt.connect(addr).await.expect("connect").into_parts();
    let mut buf = [0u8; 16];
    // (the reset may come before the dialer's runtime has set TCP_NODELAY
    // on its socket, failing its connect)
    let got = match rt.connect(addr).await {
        Ok(refused) => {
            let (mut refused, _w) = refused.into_parts();
            within(&rt, "the refusal", refused.read(&mut buf)).await
        }
        Err(error) => Err(error),
    };
    assert!(
        matches!(&got, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "a refused connection must be reset, got {got:?}"
    );
    assert_eq!(b.refused_connections(), 1);
    // the first is still open, waiting for its handshake
    let pending = held.read(&mut buf);
    let waited = rt.sleep_until(rt.now() + std::time::Duration::from_millis(50));
    let still_open = matches!(
        futures_util::future::select(std::pin::pin!(pending), waited).await,
        futures_util::future::Either::Right(_)
    );
    assert!(still_open, "the connection holding the slot was closed");
}

/// A trusted peer that reconnects more often than `connects_per_peer`
/// allows (here 1 a second after 2) is refused `busy` (the dialer's
/// `connect` fails with `Rejected(busy)`), and the node counts it as
/// throttled. Reconnecting takes a few milliseconds, so the third
/// attempt comes well within the second; up to ten attempts allow for a
/// machine that stalls, and however long they take, no more connect
/// than the burst and the rate allow.
pub async fn a_peer_that_reconnects_too_often_is_refused_busy<H: Harness>() {
    let b: N<H> = node(2, &[1], |c| c.connects_per_peer(1, 2)).await;
    let a: N<H> = node(1, &[2], |c| c).await;
    let rt = b.runtime().clone();
    let addr = b.local_addr().unwrap();
    let events = b.events();
    let started = rt.now();
    let mut connected = 0u64;
    let mut refused = false;
    for _ in 0..10 {
        match within(&rt, "a reconnect", a.connect(peer(2), addr)).await {
            Ok(_) => connected += 1,
            Err(ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Busy))) => {
                refused = true;
                break;
            }
            Err(e) => panic!("reconnect failed otherwise: {e}"),
        }
        a.disconnect(&peer(2));
    }
    let seconds = rt.now().saturating_duration_since(started).as_secs();
    assert!(refused, "{connected} reconnects in a row were all let in");
    assert!(connected >= 2, "the burst of 2 was not let in");
    assert!(connected <= 2 + seconds + 1, "{connected} in {seconds} s");
    // (a version-2 responder is established by the first record, which
    // may reach it after the dialer's `connect` returned: wait for it)
    for _ in 0..connected {
        expect_connected(&rt, &events, "b connected", peer(1)).await;
    }
    let counts = b.stats().core.counters.handshakes_in;
    assert_eq!(counts.throttled, 1);
    assert_eq!(counts.established, connected);
}
