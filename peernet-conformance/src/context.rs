//! Scenarios of the handler [`Context`]: its cancellation signal fires on
//! CANCEL, on the callee-side deadline and on connection loss; a nested
//! call inherits the outer call's budget.

use std::future::pending;
use std::time::Duration;

use bytes::Bytes;
use peernet_driver::{CallKind, Context, HandlerResult};
use peernet_proto::CallError;

use super::*;

type N<H> = Node<<H as Harness>::Rt>;

/// Exposes `handle` on `node`: a handler that hands its context to the
/// test and never answers.
fn expose_waiting<R: Runtime>(node: &Node<R>, handle: &str) -> async_channel::Receiver<Context> {
    let (tx, rx) = async_channel::unbounded();
    node.expose_ctx(handle, move |ctx, _args| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ctx).await;
            pending::<HandlerResult>().await
        }
    })
    .expect("handle");
    rx
}

/// The caller drops its call (CANCEL on the wire): the handler's context
/// says so. The context also names the caller, the kind and the budget.
pub async fn cancel_fires_the_handler_context<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let b: N<H> = node(2, &[1], |c| c).await;
    let rt = a.runtime().clone();
    linked(&a, &b).await;
    let contexts = expose_waiting(&b, "wait");

    let budget = Duration::from_secs(30);
    let b_id = b.peer_id();
    let call = a.call(&b_id, "wait", "x", budget);
    let ctx = match select(pin!(call), pin!(contexts.recv())).await {
        Either::Left((result, _)) => panic!("the call ended first: {result:?}"),
        Either::Right((ctx, _call)) => ctx.expect("handler gone"),
        // (`_call` is dropped here: CANCEL goes to b)
    };
    assert_eq!(ctx.peer(), a.peer_id());
    assert_eq!(ctx.kind(), CallKind::Call);
    let left = ctx.timeout().expect("the caller set a timeout");
    assert!(left <= budget && left > budget - WAIT, "{left:?}");

    within(&rt, "the handler's cancellation", ctx.cancelled()).await;
    assert!(ctx.is_cancelled());
    assert!(!ctx.is_expired());
    // the connection is fine
    expose_echo(&b);
    let reply = a
        .call(&b.peer_id(), "echo", "y", Duration::from_secs(10))
        .await;
    assert_eq!(reply.expect("call after the cancel"), "y");
    a.shutdown().await;
    b.shutdown().await;
}

/// The context is cancelled when the caller's timeout runs out on the
/// callee's clock, and when the connection is lost; a SEND's context is
/// a SEND's and has no deadline.
pub async fn deadline_and_connection_loss_fire_the_handler_context<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    // (the send handler never ends: shutdown stops it after the grace)
    let grace = Duration::from_millis(100);
    let b: N<H> = node(2, &[1, 9], |c| c.shutdown_grace(grace)).await;
    let rt = a.runtime().clone();
    let contexts = expose_waiting(&b, "wait");

    // the deadline, alone: a raw caller whose own timeout never sends a
    // CANCEL (a node's would race the callee's deadline)
    let mut raw = RawPeer::dial(&rt, identity(9), b.peer_id(), b.local_addr().unwrap(), &[]).await;
    raw.call(&b.peer_id(), "wait", b"x", Duration::from_millis(200))
        .await;
    let ctx = within(&rt, "the handler", contexts.recv()).await.unwrap();
    assert_eq!(ctx.peer(), peer(9));
    within(&rt, "cancellation at the deadline", ctx.cancelled()).await;
    assert!(ctx.is_expired(), "cancelled before its deadline");
    assert_eq!(ctx.timeout(), Some(Duration::ZERO));
    drop(raw);

    // a node's call that times out resolves `Timeout` on the caller
    linked(&a, &b).await;
    let calling = spawn_call(
        &a,
        b.peer_id(),
        "wait",
        "x",
        Some(Duration::from_millis(200)),
    );
    let ctx = within(&rt, "the handler", contexts.recv()).await.unwrap();
    within(&rt, "cancellation", ctx.cancelled()).await;
    let result = within(&rt, "the call", calling.recv()).await.unwrap();
    assert_eq!(result, Err(CallError::Timeout));

    // a SEND
    a.send(&b.peer_id(), "wait", "s").await.expect("send");
    let sent = within(&rt, "the send handler", contexts.recv())
        .await
        .unwrap();
    assert_eq!(sent.kind(), CallKind::Send);
    assert!(!sent.is_call());
    assert_eq!(sent.timeout(), None);

    // the connection's end (no timeout: only the loss can cancel it)
    let calling = spawn_call(&a, b.peer_id(), "wait", "x", None);
    let ctx = within(&rt, "the handler", contexts.recv()).await.unwrap();
    assert_eq!(ctx.timeout(), None);
    assert!(!ctx.is_cancelled());
    assert!(a.disconnect(&b.peer_id()));
    within(&rt, "cancellation on disconnect", ctx.cancelled()).await;
    assert!(!ctx.is_expired());
    let result = within(&rt, "the call", calling.recv()).await.unwrap();
    assert!(matches!(result, Err(CallError::ConnectionClosed(_))));
    assert!(!sent.is_cancelled(), "a SEND is not tied to the connection");
    a.shutdown().await;
    b.shutdown().await;
    assert!(sent.is_cancelled(), "shutdown stops the send handler");
}

/// A call that ends while its handler's first poll runs outside the
/// node's lock leaves no handler running: its context is cancelled and
/// its future dropped, not kept as a task that nothing tracks and that
/// `max_inbound_calls` no longer counts. Here the handler ends the
/// connection itself before it returns its future; elsewhere a CANCEL, a
/// 1 ms deadline, an unpair or a superseding connection on another
/// thread does the same.
pub async fn a_call_ended_in_its_handlers_first_poll_leaves_no_task<H: Harness>() {
    let a: N<H> = node(1, &[2], |c| c).await;
    let b: N<H> = node(2, &[1], |c| c).await;
    let rt = a.runtime().clone();
    linked(&a, &b).await;
    let (tx, contexts) = async_channel::unbounded();
    let dropped = Arc::new(AtomicBool::new(false));
    let (node, flag) = (b.clone(), dropped.clone());
    b.expose_ctx("ends", move |ctx, _args| {
        // the call ends now, before the handler is a task of its own
        assert!(node.disconnect(&ctx.peer()));
        let _ = tx.try_send(ctx);
        let dropped = DropFlag(flag.clone());
        async move {
            let _dropped = dropped;
            pending::<HandlerResult>().await
        }
    })
    .expect("handle");

    let result = within(&rt, "the call", a.call(&b.peer_id(), "ends", "x", WAIT)).await;
    assert!(
        matches!(result, Err(CallError::ConnectionClosed(_))),
        "{result:?}"
    );
    let ctx = within(&rt, "the handler", contexts.recv()).await.unwrap();
    within(&rt, "the handler's cancellation", ctx.cancelled()).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's future lives on"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A caller calls b's `outer` with 1 s; `outer` works for 400 ms, then
/// calls c's `stall` with [`Node::call_in`]. The nested call carries what
/// is left of the second, about 600 ms (a budget started afresh when b
/// calls would give c 1 s), and times out with the outer budget, not
/// later: c's handler is cancelled at that deadline too. (The margins
/// are wide so that a starved scheduler, oversleeping b's work, still
/// leaves c a call to get.)
///
/// The outer caller is a raw peer, whose own timeout sends no CANCEL: a
/// node's CANCEL can reach b a moment before b's deadline for the outer
/// call, and the nested call then ends `Cancelled` (correctly: its caller
/// gave up), which is not what this scenario is about.
pub async fn nested_call_inherits_the_deadline<H: Harness>() {
    let b: N<H> = node(2, &[9, 3], |c| c).await;
    let c: N<H> = node(3, &[2], |c| c).await;
    let rt = b.runtime().clone();
    linked(&b, &c).await;
    let stalled = expose_waiting(&c, "stall");

    let (nested_tx, nested) = async_channel::bounded(1);
    let (b2, c_id) = (b.clone(), c.peer_id());
    b.expose_ctx("outer", move |ctx, _args| {
        let (node, tx) = (b2.clone(), nested_tx.clone());
        // The nested call runs in a task of its own so that the test sees
        // its outcome (this handler is dropped at the outer deadline).
        let rt = node.runtime().clone();
        let ctx2 = ctx.clone();
        rt.spawn(async move {
            // (the outer handler's own work: the delay under test)
            let rt = node.runtime().clone();
            rt.sleep_until(rt.now() + WORK).await;
            let called = rt.now();
            let result = node.call_in(&ctx2, &c_id, "stall", "inner").await;
            let _ = tx.send((result, called, rt.now())).await;
        });
        async move {
            ctx.cancelled().await;
            Err(Bytes::new())
        }
    })
    .expect("handle");

    const WORK: Duration = Duration::from_millis(400);
    let budget = Duration::from_secs(1);
    let mut raw = RawPeer::dial(&rt, identity(9), b.peer_id(), b.local_addr().unwrap(), &[]).await;
    let start = rt.now();
    raw.call(&b.peer_id(), "outer", b"x", budget).await;

    let inner_ctx = within(&rt, "the nested handler", stalled.recv())
        .await
        .unwrap();
    // c's deadline is a's: the budget from when a called, plus the time
    // the CALL took to reach b and the nested one to reach c, and the
    // wire's rounding to milliseconds. A budget started afresh at b or c
    // would put it a whole budget late; half of one leaves room for a
    // starved scheduler without letting that through.
    let deadline = inner_ctx
        .deadline()
        .expect("the nested call carries a timeout");
    let late = deadline.saturating_duration_since(start + budget);
    assert!(late < budget / 2, "{late:?} past a's deadline");

    let (result, called, ended) = within(&rt, "the nested call's end", nested.recv())
        .await
        .unwrap();
    // What c was given, counted from when b called: what was left of the
    // budget after b's work (about 600 ms; less if b was slow to get
    // there), never a fresh budget (1 s). The threshold leaves 200 ms
    // either way.
    let given = deadline.saturating_duration_since(called);
    assert!(
        given < budget - WORK / 2,
        "c was given {given:?} from b's call, after {WORK:?} of b's work"
    );
    assert_eq!(result, Err(CallError::Timeout));
    let took = ended - start;
    assert!(took >= budget, "ended after {took:?}, before the budget");
    assert!(took < budget + WAIT / 2, "ended after {took:?}");
    within(
        &rt,
        "the nested handler's cancellation",
        inner_ctx.cancelled(),
    )
    .await;
    drop(raw);
    b.shutdown().await;
    c.shutdown().await;
}
