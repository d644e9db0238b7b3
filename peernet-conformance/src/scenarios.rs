//! The scenarios. Identities: 1 and 2 are the usual pair, 3 a third node,
//! 9 a hand-driven [`RawPeer`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join;
use peernet_proto::{
    Access, CallError, CloseReason, Direction, Event, GoodbyeCode, HandshakeError, Label,
    RejectCode, Response, Side,
};

use super::*;
use peernet_driver::{
    CallErrorExt, ConnectError, LockError, StartError, TypedCallError, cbor_handler,
};
use peernet_proto::ConnectError as CoreConnectError;

pub use crate::accept::{
    a_peer_that_reconnects_too_often_is_refused_busy, refused_at_accept_is_reset,
};
pub use crate::addr::{a_name_that_does_not_resolve_is_named, connect_by_host_name, ipv6_loopback};
pub use crate::context::{
    a_call_ended_in_its_handlers_first_poll_leaves_no_task, cancel_fires_the_handler_context,
    deadline_and_connection_loss_fire_the_handler_context, nested_call_inherits_the_deadline,
};
pub use crate::dialing::{
    a_kept_peer_that_stays_down_says_why, connect_peer_dials_through_the_book,
    kept_peer_on_a_new_port_is_found_through_a_ticket,
    kept_peer_restarted_on_its_address_is_reconnected, listen_after_expose,
    the_book_survives_a_restart,
};
pub use crate::dribbling::handshake_and_calls_over_a_dribbling_stream;
pub use crate::hostile::{
    a_frame_announced_and_never_sent_ends_at_the_idle_timeout,
    a_frame_dripped_a_byte_at_a_time_ends_at_the_idle_timeout,
    a_peer_that_pings_but_never_reads_is_cut_off, a_reader_that_keeps_taking_bytes_is_not_cut_off,
};
pub use crate::kernel::{
    a_connection_given_up_leaves_no_bytes_queued_in_the_kernel,
    a_dialed_socket_gets_little_queued_in_the_kernel,
    a_half_closed_peer_that_reads_nothing_leaves_no_bytes_in_the_kernel,
    a_long_linger_is_for_established_connections_only,
    a_peer_that_reads_nothing_gets_little_queued_in_the_kernel,
};
pub use crate::lifecycle::{
    a_call_after_the_own_shutdown_is_not_connected, a_data_dir_config_and_its_clone_start_one_node,
    a_dropped_shutdown_future_stops_nothing, a_trust_change_given_up_still_lands_whole,
    dropped_event_streams_do_not_pile_up, shutdown_resolves_once_the_handlers_are_dropped,
    the_access_rules_go_with_the_node, the_book_is_written_before_the_lock_goes,
    the_handlers_go_with_the_node,
};
pub use crate::tickets::{
    a_node_on_every_interface_is_paired_with_by_its_ticket, connect_peer_gives_up_at_its_timeout,
    pairing_from_a_ticket_says_which_step_failed,
};

type N<H> = Node<<H as Harness>::Rt>;

const CALL: Option<Duration> = Some(Duration::from_secs(10));

/// Nodes 1 and 2, trusting each other; 1 has dialed 2.
async fn connected<H: Harness>(
    tweak_a: impl FnOnce(NodeConfig) -> NodeConfig,
    tweak_b: impl FnOnce(NodeConfig) -> NodeConfig,
) -> (N<H>, N<H>) {
    let a: N<H> = node(1, &[2], tweak_a).await;
    let b: N<H> = node(2, &[1], tweak_b).await;
    // (b learns of the connection when the PROOF or first record arrives)
    linked(&a, &b).await;
    (a, b)
}

/// Nodes 1 and 2, trusting each other, not connected yet.
async fn paired<H: Harness>() -> (N<H>, N<H>) {
    (node(1, &[2], same).await, node(2, &[1], same).await)
}

fn same<T>(config: T) -> T {
    config
}

fn is_goodbye(reason: &CloseReason, side: Side, code: GoodbyeCode) -> bool {
    matches!(reason, CloseReason::Goodbye { by, code: c, .. } if *by == side && *c == code)
}

/// Dial, see both sides connected, call.
pub async fn handshake_and_call<H: Harness>() {
    let (a, b) = paired::<H>().await;
    let (rt, events_a, events_b) = (a.runtime().clone(), a.events(), b.events());
    expose_echo(&b);

    let got = a.connect(b.peer_id(), b.local_addr().unwrap()).await;
    assert_eq!(got.expect("connect"), b.peer_id());
    expect_event(&rt, &events_a, "a connected", |e| {
        *e == NodeEvent::Connected {
            peer: b.peer_id(),
            direction: Direction::Outbound,
        }
    })
    .await;
    expect_event(&rt, &events_b, "b connected", |e| {
        *e == NodeEvent::Connected {
            peer: a.peer_id(),
            direction: Direction::Inbound,
        }
    })
    .await;
    assert!(a.is_connected(&b.peer_id()) && b.is_connected(&a.peer_id()));
    assert_eq!(a.peers(), vec![b.peer_id()]);

    let reply = a.call(&b.peer_id(), "echo", "hello", CALL).await;
    assert_eq!(reply.expect("call"), "hello");

    // dialing a connected peer returns the connection there is
    let again = a.connect(b.peer_id(), b.local_addr().unwrap()).await;
    assert_eq!(again.expect("connect again"), b.peer_id());
    assert_eq!(a.stats().core.connections, 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// Either side calls the other over the one connection.
pub async fn calls_both_ways<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    for n in [&a, &b] {
        n.expose("whoami", |caller, _| async move {
            Ok(Bytes::copy_from_slice(caller.as_bytes()))
        })
        .unwrap();
    }
    let from_a = a.call(&b.peer_id(), "whoami", "", CALL).await.unwrap();
    let from_b = b.call(&a.peer_id(), "whoami", "", CALL).await.unwrap();
    assert_eq!(&from_a[..], a.peer_id().as_bytes());
    assert_eq!(&from_b[..], b.peer_id().as_bytes());
    assert_eq!(
        b.stats().core.connections,
        1,
        "b called over a's connection"
    );
}

/// Four calls in flight; each completes when its handler is let go, in an
/// order unrelated to the order they were made.
pub async fn concurrent_calls_complete_out_of_order<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    let rt = a.runtime().clone();
    let gates = expose_gated(&b, "wait");
    let results: Vec<_> = (0..4u8)
        .map(|k| spawn_call(&a, b.peer_id(), "wait", vec![k], CALL))
        .collect();
    gates.wait_started(&rt, 4).await;
    for k in [3u8, 1, 0, 2] {
        gates.release(k);
        let got = within(&rt, "a result", results[usize::from(k)].recv()).await;
        assert_eq!(got.unwrap().expect("call"), Bytes::from(vec![k]));
        for (other, rx) in results.iter().enumerate() {
            if other != usize::from(k) {
                assert!(rx.try_recv().is_err(), "call {other} finished too early");
            }
        }
    }
}

/// A call times out; the callee's reply that comes after is dropped, and
/// the connection serves the next call.
pub async fn call_timeout_drops_the_late_reply<H: Harness>() {
    let a: N<H> = node(1, &[9], same).await;
    let rt = a.runtime().clone();
    let events = a.events();
    let raw_id = peer(9);
    let mut raw = RawPeer::dial(
        &rt,
        identity(9),
        a.peer_id(),
        a.local_addr().unwrap(),
        &["slow", "fast"],
    )
    .await;
    until(&rt, &events, "raw peer connected", || {
        a.is_connected(&raw_id)
    })
    .await;

    let call = a.call(&raw_id, "slow", "x", Duration::from_millis(200));
    let (result, event) = join(call, raw.next_event()).await;
    assert_eq!(result, Err(CallError::Timeout));
    let Event::Call(slow) = event else {
        panic!("expected the CALL, got {event:?}")
    };
    // the caller gave up: CANCEL
    let cancelled = raw.next_event().await;
    assert_eq!(cancelled, Event::CallCancelled(slow.id));
    // the callee answers anyway
    raw.reply_anyway(slow.id.request_id(), b"late").await;

    let call = a.call(&raw_id, "fast", "y", CALL);
    let serve = async {
        let event = raw.next_event().await;
        let Event::Call(fast) = event else {
            panic!("expected the CALL, got {event:?}")
        };
        raw.reply(fast.id, Response::Ok(Bytes::from_static(b"fresh")))
            .await;
    };
    let (result, ()) = join(call, serve).await;
    assert_eq!(result.expect("second call"), "fresh");
    assert!(a.is_connected(&raw_id));
}

/// SEND arrives in order and is never answered; a SEND to a handle that is
/// not exposed vanishes without harm.
pub async fn send_is_fire_and_forget<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    let rt = a.runtime().clone();
    let (tx, inbox) = async_channel::unbounded();
    b.expose("inbox", move |caller, args| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((caller, args)).await;
            Ok(Bytes::new())
        }
    })
    .unwrap();
    a.send(&b.peer_id(), "inbox", "one").await.unwrap();
    a.send(&b.peer_id(), "nowhere", "lost").await.unwrap();
    a.send(&b.peer_id(), "inbox", "two").await.unwrap();
    for want in ["one", "two"] {
        let (caller, args) = within(&rt, "a send", inbox.recv()).await.unwrap();
        assert_eq!((caller, &args[..]), (a.peer_id(), want.as_bytes()));
    }
    assert!(a.is_connected(&b.peer_id()));
    assert_eq!(
        a.send(&peer(7), "inbox", "x").await,
        Err(peernet_proto::SendError::NotConnected)
    );
}

/// Default deny, and authorization over the caller's PeerId.
pub async fn no_such_handle_and_forbidden<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    let callee = b.peer_id();
    let call = |handle: &'static str| a.call(&callee, handle, "", CALL);
    assert_eq!(call("never-exposed").await, Err(CallError::NoSuchHandle));

    expose_echo(&b);
    assert!(call("echo").await.is_ok());
    assert!(b.unexpose("echo"));
    assert_eq!(call("echo").await, Err(CallError::NoSuchHandle));

    let only_3 = Access::only([peer(3)]);
    b.expose_to("members", only_3, |_, _| async { Ok(Bytes::new()) })
        .unwrap();
    assert_eq!(call("members").await, Err(CallError::Forbidden));

    let not_a = a.peer_id();
    let rule = Access::rule(move |caller| *caller != not_a);
    b.expose_to("ruled", rule, |_, _| async { Ok(Bytes::new()) })
        .unwrap();
    assert_eq!(call("ruled").await, Err(CallError::Forbidden));
    let yes = Access::rule(move |caller| *caller == not_a);
    b.expose_to("ruled", yes, |_, _| async { Ok(Bytes::new()) })
        .unwrap();
    assert_eq!(call("ruled").await, Ok(Bytes::new()));
}

/// A handler's own error, and a panicking handler (inline or in a task of
/// its own): the caller gets a typed error, the connection lives.
pub async fn handler_error_and_handler_panicked<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    b.expose("fails", |_, _| async { Err(Bytes::from_static(b"nope")) })
        .unwrap();
    b.expose("panics", |_, _| async {
        panic!("{DELIBERATE}: handler bug")
    })
    .unwrap();
    let (tx, rx) = async_channel::bounded::<()>(1);
    b.expose("panics-later", move |_, _| {
        let rx = rx.clone();
        async move {
            let _ = rx.recv().await;
            panic!("{DELIBERATE}: later handler bug")
        }
    })
    .unwrap();
    b.expose("panics-early", |_, _| -> std::future::Ready<_> {
        panic!("{DELIBERATE}: handler bug before its future")
    })
    .unwrap();
    expose_echo(&b);

    let peer = b.peer_id();
    assert_eq!(
        a.call(&peer, "fails", "", CALL).await,
        Err(CallError::HandlerError(Bytes::from_static(b"nope")))
    );
    for handle in ["panics", "panics-early"] {
        let got = a.call(&peer, handle, "", CALL).await;
        assert!(matches!(got, Err(CallError::HandlerPanicked(_))), "{got:?}");
    }
    let later = spawn_call(&a, peer, "panics-later", "", CALL);
    tx.send(()).await.unwrap();
    let got = within(a.runtime(), "panic in a task", later.recv()).await;
    assert!(
        matches!(got, Ok(Err(CallError::HandlerPanicked(_)))),
        "{got:?}"
    );
    assert_eq!(a.call(&peer, "echo", "alive", CALL).await.unwrap(), "alive");
    assert!(a.is_connected(&peer));
}

/// Calls beyond `max_inbound_calls` in flight are answered `overloaded`.
pub async fn overloaded<H: Harness>() {
    let (a, b) = connected::<H>(same, |c| c.max_inbound_calls(2)).await;
    let rt = a.runtime().clone();
    let gates = expose_gated(&b, "wait");
    let first = spawn_call(&a, b.peer_id(), "wait", vec![0], CALL);
    let second = spawn_call(&a, b.peer_id(), "wait", vec![1], CALL);
    gates.wait_started(&rt, 2).await;
    let third = a.call(&b.peer_id(), "wait", vec![2], CALL).await;
    assert_eq!(third, Err(CallError::Overloaded));
    gates.release(0);
    gates.release(1);
    for rx in [first, second] {
        assert!(within(&rt, "a result", rx.recv()).await.unwrap().is_ok());
    }
}

/// A peer has at most `max_inbound_calls` send handlers running: a SEND
/// beyond is dropped (and counted), and the slots come back as handlers
/// finish.
pub async fn sends_beyond_the_cap_are_dropped<H: Harness>() {
    let (a, b) = connected::<H>(same, |c| c.max_inbound_calls(2)).await;
    let rt = a.runtime().clone();
    let gates = expose_gated(&b, "wait");
    expose_echo(&b);
    let peer = b.peer_id();
    // the stream is ordered: once this answers, b has seen all before it
    let barrier = || a.call(&peer, "echo", "", CALL);
    for k in [0u8, 1] {
        a.send(&peer, "wait", vec![k]).await.unwrap();
    }
    gates.wait_started(&rt, 2).await;
    a.send(&peer, "wait", vec![2]).await.unwrap();
    barrier().await.unwrap();
    assert_eq!(b.dropped_sends(), 1);
    assert_eq!(b.stats().dropped_sends, 1);
    // Delivered SENDs count as handed to the application in the core.
    assert_eq!(b.stats().core.counters.sends_in, 3);
    assert!(gates.started.try_recv().is_err(), "the third send ran");

    gates.release(0);
    gates.release(1);
    // a slot is free once a handler's task has ended
    within(&rt, "a free slot", async {
        loop {
            a.send(&peer, "wait", vec![3]).await.unwrap();
            barrier().await.unwrap();
            if gates.started.try_recv() == Ok(3) {
                break;
            }
        }
    })
    .await;
    gates.release(3);
}

/// A CALL that cannot fit in one frame fails locally.
pub async fn message_too_large<H: Harness>() {
    let (a, b) = connected::<H>(|c| c.max_frame_len(64 * 1024), same).await;
    expose_echo(&b);
    let big = vec![0u8; 64 * 1024];
    assert_eq!(
        a.call(&b.peer_id(), "echo", big, CALL).await,
        Err(CallError::MessageTooLarge)
    );
    assert!(a.call(&b.peer_id(), "echo", "small", CALL).await.is_ok());
}

/// A dialer the responder does not trust gets `Rejected(Untrusted)`; a
/// peer we do not trust is not even dialed.
pub async fn untrusted_dialer_is_rejected<H: Harness>() {
    let a: N<H> = node(1, &[2], same).await;
    let b: N<H> = node(2, &[3], same).await;
    let rt = a.runtime().clone();
    let events_b = b.events();
    let got = a.connect(b.peer_id(), b.local_addr().unwrap()).await;
    assert!(
        matches!(
            got,
            Err(ConnectError::Handshake(HandshakeError::Rejected(
                RejectCode::Untrusted
            )))
        ),
        "{got:?}"
    );
    expect_event(&rt, &events_b, "b refused a", |e| {
        matches!(
            e,
            NodeEvent::HandshakeFailed {
                error: HandshakeError::Refused(RejectCode::Untrusted),
                direction: Direction::Inbound,
                ..
            }
        )
    })
    .await;
    assert!(!b.is_connected(&a.peer_id()));
    // Counted on both sides, by REJECT code.
    let refused = b.stats().core.counters.handshakes_in.refused;
    assert_eq!(refused.get(RejectCode::Untrusted), 1, "{}", b.stats());
    let rejected = a.stats().core.counters.handshakes_out.rejected;
    assert_eq!(rejected.get(RejectCode::Untrusted), 1, "{}", a.stats());

    let got = b.connect(a.peer_id(), a.local_addr().unwrap()).await;
    assert!(
        matches!(got, Err(ConnectError::Start(CoreConnectError::Untrusted(p))) if p == a.peer_id()),
        "{got:?}"
    );
}

/// The core decides whether to dial before any transport is opened, and
/// its handshake budget covers opening the transport: an untrusted peer is
/// refused even at an address where nothing listens; a refused TCP
/// connection is an I/O error; a listener that never answers runs out the
/// handshake budget. No failed dial leaves a connection behind.
pub async fn dial_failures<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c.handshake_timeout(Duration::from_millis(300))).await;
    let nobody = {
        let listener = std::net::TcpListener::bind(loopback()).expect("bind");
        listener.local_addr().expect("addr")
    };
    let got = a.connect(peer(3), nobody).await;
    assert!(
        matches!(got, Err(ConnectError::Start(CoreConnectError::Untrusted(p))) if p == peer(3)),
        "{got:?}"
    );
    // (review s54: it said `io`, the OS's words naming no address)
    let got = a.connect(peer(2), nobody).await;
    match &got {
        Err(e @ ConnectError::Dial { addr, source }) => {
            assert_eq!(*addr, nobody);
            assert_eq!(e.to_string(), format!("dial {nobody}"));
            let chain = peernet_driver::ErrorChain(e).to_string();
            assert_eq!(chain, format!("dial {nobody}: {source}"));
        }
        _ => panic!("{got:?}"),
    }
    assert_eq!(a.stats().core.connections, 0);

    // accepted by the kernel (backlog), never answered
    let silent = std::net::TcpListener::bind(loopback()).expect("bind");
    let got = a.connect(peer(2), silent.local_addr().expect("addr")).await;
    assert!(
        matches!(got, Err(ConnectError::Handshake(HandshakeError::Timeout))),
        "{got:?}"
    );
    assert_eq!(a.stats().core.connections, 0);
    assert!(!a.is_connected(&peer(2)));
}

/// Dialing an address where another (trusted) peer answers. Version 1:
/// the dialer sees the other PeerId in WELCOME and refuses it. Version 2:
/// the INIT's `mac1` is keyed for the PeerId dialed, so the responder
/// refuses it with `unexpected_peer`.
pub async fn unexpected_peer_on_dial<H: Harness>() {
    let a: N<H> = node(1, &[2, 3], same).await;
    let b: N<H> = node(2, &[1], same).await;
    let rt = a.runtime().clone();
    let events_b = b.events();
    let got = a.connect(peer(3), b.local_addr().unwrap()).await;
    let v1 = version() == peernet_proto::ProtocolVersion::V1;
    match got {
        Err(ConnectError::Handshake(HandshakeError::UnexpectedPeer { expected, actual })) if v1 => {
            assert_eq!((expected, actual), (peer(3), b.peer_id()));
        }
        Err(ConnectError::Handshake(HandshakeError::Rejected(RejectCode::UnexpectedPeer)))
            if !v1 => {}
        other => panic!("expected UnexpectedPeer, got {other:?}"),
    }
    expect_event(&rt, &events_b, "b told unexpected_peer", |e| {
        matches!(
            e,
            NodeEvent::HandshakeFailed {
                error: HandshakeError::Rejected(RejectCode::UnexpectedPeer),
                ..
            } if v1
        ) || matches!(
            e,
            NodeEvent::HandshakeFailed {
                error: HandshakeError::Refused(RejectCode::UnexpectedPeer),
                ..
            } if !v1
        )
    })
    .await;
    assert!(a.peers().is_empty() && b.peers().is_empty());
}

/// A redial replaces the connection there is: calls on the old one fail
/// with `superseded`, the new one serves.
pub async fn supersede_by_redial<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    let rt = a.runtime().clone();
    let events_a = a.events();
    let gates = expose_gated(&b, "wait");
    expose_echo(&b);
    let stuck = spawn_call(&a, b.peer_id(), "wait", vec![0], CALL);
    gates.wait_started(&rt, 1).await;

    let got = a.reconnect(b.peer_id(), b.local_addr().unwrap()).await;
    assert_eq!(got.expect("redial"), b.peer_id());
    let old = within(&rt, "old call failed", stuck.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(old.goodbye_code(), Some(GoodbyeCode::Superseded), "{old:?}");
    expect_event(&rt, &events_a, "old connection gone", |e| {
        matches!(e, NodeEvent::Disconnected { reason, .. } if reason.goodbye_code() == Some(GoodbyeCode::Superseded))
    })
    .await;
    expect_event(&rt, &events_a, "new connection", |e| {
        matches!(
            e,
            NodeEvent::Connected {
                direction: Direction::Outbound,
                ..
            }
        )
    })
    .await;
    assert_eq!(
        a.call(&b.peer_id(), "echo", "new", CALL).await.unwrap(),
        "new"
    );
    assert_eq!(a.stats().core.connections, 1);
    let events_b = b.events();
    until(&rt, &events_b, "b keeps one connection", || {
        b.stats().core.connections == 1
    })
    .await;
}

/// Both peers dial each other at once: both dials succeed, on the one
/// connection both agree on.
pub async fn simultaneous_dial_converges<H: Harness>() {
    let (a, b) = paired::<H>().await;
    let (rt, events_a, events_b) = (a.runtime().clone(), a.events(), b.events());
    expose_echo(&a);
    expose_echo(&b);
    let (got_a, got_b) = join(
        a.connect(b.peer_id(), b.local_addr().unwrap()),
        b.connect(a.peer_id(), a.local_addr().unwrap()),
    )
    .await;
    assert_eq!(got_a.expect("a dials"), b.peer_id());
    assert_eq!(got_b.expect("b dials"), a.peer_id());
    let one = |n: &N<H>| {
        let s = n.stats().core;
        s.connections == 1 && s.established == 1
    };
    until(&rt, &events_a, "a converges", || one(&a)).await;
    until(&rt, &events_b, "b converges", || one(&b)).await;
    assert_eq!(
        a.call(&b.peer_id(), "echo", "ab", CALL).await.unwrap(),
        "ab"
    );
    assert_eq!(
        b.call(&a.peer_id(), "echo", "ba", CALL).await.unwrap(),
        "ba"
    );
    assert!(one(&a) && one(&b));
}

/// A call from `a` to `b`'s gated handler `k`, cut by `unpair` once the
/// handler runs: it must fail with `revoked`, said by `side`.
async fn call_revoked<R: Runtime>(
    a: &Node<R>,
    b: &Node<R>,
    gates: &Gates,
    k: u8,
    side: Side,
    unpair: impl Future<Output = bool>,
) {
    let stuck = spawn_call(a, b.peer_id(), "wait", vec![k], CALL);
    gates.wait_started(a.runtime(), 1).await;
    assert!(unpair.await);
    let got = within(a.runtime(), "call failed", stuck.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(got.is_revoked(), "{got:?}");
    assert!(
        matches!(got.close_reason(), Some(CloseReason::Goodbye { by, .. }) if *by == side),
        "{got:?}"
    );
}

/// Unpairing closes the connection at once; calls in flight fail with
/// `revoked`, on the side that unpaired and on the other.
pub async fn unpair_mid_call_fails_with_revoked<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    let rt = a.runtime().clone();
    let events_b = b.events();
    let gates = expose_gated(&b, "wait");

    // a unpairs b while a's call to b runs
    call_revoked(&a, &b, &gates, 0, Side::Local, async {
        a.unpair(&b.peer_id()).await.unwrap()
    })
    .await;
    assert!(!a.is_connected(&b.peer_id()));
    expect_event(&rt, &events_b, "b told revoked", |e| {
        matches!(e, NodeEvent::Disconnected { reason, .. } if is_goodbye(reason, Side::Remote, GoodbyeCode::Revoked))
    })
    .await;
    let redial = a.connect(b.peer_id(), b.local_addr().unwrap()).await;
    assert!(
        matches!(
            redial,
            Err(ConnectError::Start(CoreConnectError::Untrusted(_)))
        ),
        "{redial:?}"
    );

    // pair again; now b unpairs a while a's call to b runs
    assert!(a.pair(b.peer_id(), None).await.unwrap());
    a.connect(b.peer_id(), b.local_addr().unwrap())
        .await
        .expect("connect again");
    call_revoked(&a, &b, &gates, 1, Side::Remote, async {
        b.unpair(&a.peer_id()).await.unwrap()
    })
    .await;
}

/// A peer that completes the handshake and then stops answering is given
/// up after `idle_timeout` (PING after `ping_interval` goes unanswered).
pub async fn idle_timeout_detects_a_silent_peer<H: Harness>() {
    let a: N<H> = node(1, &[9], |c| {
        c.ping_interval(Duration::from_millis(50))
            .idle_timeout(Duration::from_millis(200))
    })
    .await;
    let rt = a.runtime().clone();
    let events = a.events();
    let raw = RawPeer::dial(&rt, identity(9), a.peer_id(), a.local_addr().unwrap(), &[]).await;
    expect_connected(&rt, &events, "raw peer connected", super::peer(9)).await;
    // `raw` now reads nothing and answers nothing
    let event = expect_event(&rt, &events, "idle timeout", |e| {
        matches!(e, NodeEvent::Disconnected { .. })
    })
    .await;
    let NodeEvent::Disconnected { peer, reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(peer, super::peer(9));
    assert!(
        is_goodbye(&reason, Side::Local, GoodbyeCode::IdleTimeout),
        "{reason:?}"
    );
    drop(raw);
}

/// Shutdown: new calls get `shutting_down`, a running handler may finish
/// within the grace period, one that does not is stopped and its caller
/// told GOODBYE `normal`.
pub async fn graceful_shutdown<H: Harness>() {
    // A grace far longer than the work in it: a starved machine must not
    // turn "finished within grace" into a race (it did once at 300 ms).
    let (a, b) = connected::<H>(same, |c| c.shutdown_grace(Duration::from_secs(2))).await;
    let rt = a.runtime().clone();
    let events_a = a.events();
    let gates = expose_gated(&b, "wait");
    expose_echo(&b);
    let finishes = spawn_call(&a, b.peer_id(), "wait", vec![0], CALL);
    let never = spawn_call(&a, b.peer_id(), "wait", vec![1], CALL);
    gates.wait_started(&rt, 2).await;

    let done = b.shutdown();
    assert_eq!(
        a.call(&b.peer_id(), "echo", "late", CALL).await,
        Err(CallError::ShuttingDown)
    );
    gates.release(0);
    let got = within(&rt, "finishing call", finishes.recv())
        .await
        .unwrap();
    assert_eq!(got.expect("finished within grace"), Bytes::from(vec![0]));
    within(&rt, "shutdown", done).await;
    let got = within(&rt, "stopped call", never.recv()).await.unwrap();
    assert!(
        matches!(&got, Err(CallError::ConnectionClosed(r)) if is_goodbye(r, Side::Remote, GoodbyeCode::Normal)),
        "{got:?}"
    );
    expect_event(&rt, &events_a, "a told goodbye", |e| {
        matches!(e, NodeEvent::Disconnected { reason, .. } if is_goodbye(reason, Side::Remote, GoodbyeCode::Normal))
    })
    .await;
    assert!(b.peers().is_empty());
    assert!(
        a.connect(b.peer_id(), b.local_addr().unwrap())
            .await
            .is_err()
    );
    // a second shutdown is a no-op
    within(&rt, "second shutdown", b.shutdown()).await;
}

/// Two nodes trusting each other (1 and 2), joined over a stream the
/// application opened itself (a Unix socket pair): the first accepted it,
/// the second dialed it expecting the first's PeerId.
async fn joined_by_stream<H: Harness>() -> (N<H>, N<H>) {
    let (left, right) = H::stream_pair().expect("stream pair");
    crate::joined_over(left, right, version()).await
}

/// A stream the application opened itself (here a Unix socket pair) as
/// inbound on one node and outbound (expecting a PeerId) on the other.
pub async fn bring_your_own_stream<H: Harness>() {
    let (a, b) = joined_by_stream::<H>().await;
    expose_echo(&a);
    assert_eq!(
        b.call(&a.peer_id(), "echo", "byo", CALL).await.unwrap(),
        "byo"
    );
    assert_eq!(a.local_addr(), None);
}

/// With its connection's one call slot taken (`max_outbound_calls` 1), a
/// second call waits for room. Polled first by one task and then moved to
/// another, it completes there: its reply wakes the task that holds it
/// now, not the one that first polled it (a no-op waker here, which would
/// leave the call hanging).
pub async fn call_waiting_for_room_moves_between_tasks<H: Harness>() {
    let (a, b) = connected::<H>(|c| c.max_outbound_calls(1), same).await;
    let rt = a.runtime().clone();
    let gates = expose_gated(&b, "wait");
    let first = spawn_call(&a, b.peer_id(), "wait", vec![0u8], CALL);
    gates.wait_started(&rt, 1).await;
    let (a2, to) = (a.clone(), b.peer_id());
    let mut second = Box::pin(async move { a2.call(&to, "wait", vec![1u8], CALL).await });
    let polled = {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        second.as_mut().poll(&mut cx)
    };
    assert!(polled.is_pending(), "the second call waits for room");
    let (tx, moved) = async_channel::bounded(1);
    rt.spawn(async move {
        let _ = tx.send(second.await).await;
    });
    gates.release(0);
    let got = within(&rt, "the first call", first.recv()).await;
    assert_eq!(got.unwrap().expect("first call"), Bytes::from(vec![0u8]));
    // the second call got room and reached b from its new task
    gates.wait_started(&rt, 1).await;
    gates.release(1);
    let got = within(&rt, "the moved call", moved.recv()).await;
    assert_eq!(got.unwrap().expect("moved call"), Bytes::from(vec![1u8]));
}

/// Replies larger than the socket takes at once, over a Unix socket pair
/// (buffers of a few hundred KiB): 32 calls in flight, 256 KiB back for
/// each, so that the callee's writes stop part-way and its writer task
/// picks them up where they stopped. Every reply must come back whole (a
/// byte lost or reordered fails a record's authentication or an
/// envelope's decoding, and the calls with it).
pub async fn replies_larger_than_the_socket_takes_arrive_whole<H: Harness>() {
    const CALLS: u8 = 32;
    const SIZE: usize = 256 * 1024;
    let (b, a) = joined_by_stream::<H>().await;
    let rt = a.runtime().clone();
    b.expose("fill", |_, args: Bytes| async move {
        Ok(Bytes::from(vec![args[0]; SIZE]))
    })
    .unwrap();
    let results: Vec<_> = (0..CALLS)
        .map(|k| spawn_call(&a, b.peer_id(), "fill", vec![k], CALL))
        .collect();
    for (k, rx) in (0..CALLS).zip(&results) {
        let got = within(&rt, "a large reply", rx.recv()).await.unwrap();
        let got = got.expect("call");
        assert!(
            got.len() == SIZE && got.iter().all(|&x| x == k),
            "reply {k} came back altered"
        );
    }
}

/// With a small send buffer, a burst of sends waits for the writer instead
/// of queueing without bound, and every message arrives.
pub async fn backpressure_bounds_the_send_queue<H: Harness>() {
    const SEND_BUFFER: usize = 4 * 1024;
    const MESSAGES: usize = 2000;
    let (a, b) = connected::<H>(|c| c.send_buffer(SEND_BUFFER), same).await;
    let rt = a.runtime().clone();
    let (tx, inbox) = async_channel::unbounded();
    b.expose("sink", move |_, args: Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.try_send(args.len());
            Ok(Bytes::new())
        }
    })
    .unwrap();
    let mut most_queued = 0;
    for _ in 0..MESSAGES {
        a.send(&b.peer_id(), "sink", vec![7u8; 1024]).await.unwrap();
        most_queued = most_queued.max(a.stats().core.max_queued_bytes_per_conn);
    }
    for _ in 0..MESSAGES {
        assert_eq!(within(&rt, "a message", inbox.recv()).await.unwrap(), 1024);
    }
    // one envelope may go over the mark that makes senders wait
    assert!(most_queued < SEND_BUFFER + 2048, "queued {most_queued}");
}

#[derive(Debug, PartialEq, minicbor::Encode, minicbor::Decode)]
struct Sum {
    #[n(0)]
    terms: Vec<u32>,
}

#[derive(Debug, PartialEq, minicbor::Encode, minicbor::Decode)]
enum SumError {
    #[n(0)]
    Overflow,
}

/// CBOR-typed arguments, results and handler errors.
pub async fn typed_cbor_calls<H: Harness>() {
    let (a, b) = connected::<H>(same, same).await;
    b.expose(
        "sum",
        cbor_handler(|_caller, args: Sum| async move {
            args.terms
                .iter()
                .try_fold(0u32, |acc, t| acc.checked_add(*t))
                .ok_or(SumError::Overflow)
        }),
    )
    .unwrap();
    let peer = b.peer_id();
    let ok: Result<u32, TypedCallError<SumError>> = a
        .call_cbor(
            &peer,
            "sum",
            &Sum {
                terms: vec![1, 2, 3],
            },
            CALL,
        )
        .await;
    assert_eq!(ok.unwrap(), 6);
    let overflow = Sum {
        terms: vec![u32::MAX, 1],
    };
    let err: Result<u32, _> = a.call_cbor(&peer, "sum", &overflow, CALL).await;
    assert!(matches!(
        err,
        Err(TypedCallError::Handler(SumError::Overflow))
    ));
    // arguments that do not decode: handler_error with a bad-request
    // body, which a typed caller reports as its own error
    let raw = a.call(&peer, "sum", "not cbor", CALL).await;
    let Err(CallError::HandlerError(body)) = raw else {
        panic!("expected handler_error, got {raw:?}")
    };
    assert!(
        peernet_driver::bad_request_reason(&body).is_some(),
        "{body:?}"
    );
    let wrong: Result<u32, TypedCallError<SumError>> =
        a.call_cbor(&peer, "sum", &"not a Sum", CALL).await;
    assert!(
        matches!(wrong, Err(TypedCallError::BadRequest(_))),
        "{wrong:?}"
    );
    // a valid Sum followed by junk, or a body nested past
    // MAX_CBOR_DEPTH, is refused before any decoder sees it
    let mut trailing = minicbor::to_vec(Sum { terms: vec![1] }).unwrap();
    trailing.push(0);
    let mut deep = vec![0x81u8; 100_000];
    deep.push(0);
    for (body, says) in [(trailing, "after the CBOR item"), (deep, "nested deeper")] {
        let raw = a.call(&peer, "sum", body, CALL).await;
        let Err(CallError::HandlerError(body)) = raw else {
            panic!("expected handler_error, got {raw:?}")
        };
        let why = peernet_driver::bad_request_reason(&body).expect("a bad request");
        assert!(why.contains(says), "{why}");
    }
    a.send_cbor(&peer, "sum", &Sum { terms: vec![] })
        .await
        .unwrap();
}

/// A node built from a data directory keeps its identity and trust list
/// across a restart; the identity file is 0600.
pub async fn persistence_survives_a_restart<H: Harness>() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node");
    let first: N<H> = Node::new(
        NodeConfig::from_data_dir(&path)
            .unwrap()
            .protocol_version(version()),
    );
    let me = first.peer_id();
    let label = Label::new("bob").unwrap();
    assert!(first.pair(peer(2), Some(label.clone())).await.unwrap());
    assert!(first.pair(peer(3), None).await.unwrap());
    assert!(first.unpair(&peer(3)).await.unwrap());
    // a second node on the directory is refused while the first runs
    let second = NodeConfig::from_data_dir(&path);
    assert!(
        matches!(second, Err(StartError::Lock(LockError::InUse { .. }))),
        "{second:?}"
    );
    first.shutdown().await;
    drop(first);

    let config = NodeConfig::from_data_dir(&path)
        .unwrap()
        .protocol_version(version());
    assert_eq!(config.peer_id(), me);
    let trust = config.trust_list();
    assert_eq!(trust.len(), 1);
    assert_eq!(trust.label(&peer(2)), Some(&label));
    let second: N<H> = Node::new(config);
    assert_eq!(second.peer_id(), me);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path.join("identity"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
