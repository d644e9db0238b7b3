//! The integration scenarios every runtime crate runs over real loopback
//! TCP, written once, generic over a [`Harness`]. A runtime crate's test
//! file is a `Harness` impl and one [`scenario_tests!`](crate::scenario_tests)
//! line, and this crate as a dev-dependency. Test-only and unpublished: the
//! scenarios panic on failure.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, join, select};
pub use peernet_proto::ProtocolVersion;
use peernet_proto::{CallError, Identity, PeerId};

use peernet_driver::{EventStream, Node, NodeConfig, NodeEvent, Runtime, WrapStream};

mod accept;
mod addr;
mod context;
mod dialing;
mod dribbling;
mod hostile;
mod kernel;
mod lifecycle;
pub mod netns;
mod raw;
pub mod scenarios;
mod tickets;

pub use dribbling::Dribbling;
pub use hostile::{IDLE, bob_and_raw, flood, patient, ping_until_cut_off, stalled_reason};
pub use raw::{RawPeer, call_envelope};

/// What a runtime crate supplies to run the scenarios.
pub trait Harness: 'static {
    /// The runtime under test.
    type Rt: Runtime + WrapStream<Self::Stream> + WrapStream<Self::Tcp>;
    /// A stream type of the runtime's own, for bring-your-own-stream
    /// scenarios (a Unix socket pair).
    type Stream: Send + 'static;
    /// The runtime's own TCP stream, for scenarios that set a socket's
    /// options before it connects.
    type Tcp: Send + 'static;
    /// Runs `future` to completion on a fresh runtime.
    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F);
    /// Two connected streams (called inside `block_on`).
    fn stream_pair() -> io::Result<(Self::Stream, Self::Stream)>;
    /// `stream`, connected and non-blocking, as the runtime's own (called
    /// inside `block_on`).
    fn tcp(stream: std::net::TcpStream) -> io::Result<Self::Tcp>;
}

static V1: AtomicBool = AtomicBool::new(false);

/// The protocol version every node and [`RawPeer`] of the scenarios
/// speaks in this test process: version 2 unless a test binary opted into
/// version 1 with `scenario_tests!(Harness, v1)`. Process-wide, so one test
/// binary runs one version (a runtime crate has one binary per version).
pub fn version() -> ProtocolVersion {
    if V1.load(Ordering::Relaxed) {
        ProtocolVersion::V1
    } else {
        ProtocolVersion::V2
    }
}

/// Makes this test process's scenarios speak `version`.
pub fn set_version(version: ProtocolVersion) {
    V1.store(version == ProtocolVersion::V1, Ordering::Relaxed);
}

/// No scenario may take longer than this: a safety net, not a wait.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// No single wait inside a scenario may take longer than this.
pub const WAIT: Duration = Duration::from_secs(15);

/// How the handlers of the scenarios begin the message of a panic they
/// raise on purpose.
pub const DELIBERATE: &str = "deliberate panic";

/// Keeps the process's panic hook from reporting the panics handlers raise
/// on purpose: the default hook writes each one, and with `RUST_BACKTRACE`
/// set it resolves a backtrace of the whole test binary first, which on a
/// loaded machine took seconds and ran a call into its timeout. Every
/// other panic (a failed assertion) is reported as before.
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with(DELIBERATE)) {
                default(info);
            }
        }));
    });
}

/// Runs one scenario on `H`'s runtime, within [`SCENARIO_TIMEOUT`].
pub fn run<H: Harness, Fut>(scenario: fn() -> Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    quiet_deliberate_panics();
    H::block_on(async move {
        let rt = H::Rt::default();
        let deadline = rt.now() + SCENARIO_TIMEOUT;
        if let Either::Right(_) = select(pin!(scenario()), rt.sleep_until(deadline)).await {
            panic!("scenario did not finish within {SCENARIO_TIMEOUT:?}");
        }
    });
}

/// Defines one `#[test]` per scenario for the harness type `$h`, on
/// version 2; `scenario_tests!($h, v1)` on version 1 (put it in a test
/// binary of its own: the version is process-wide).
#[macro_export]
macro_rules! scenario_tests {
    ($h:ty, v1) => {
        $crate::scenario_tests!(@all $h; $crate::set_version($crate::ProtocolVersion::V1));
    };
    ($h:ty) => {
        $crate::scenario_tests!(@all $h; $crate::set_version($crate::ProtocolVersion::V2));
    };
    (@all $h:ty; $set:expr) => {
        $crate::scenario_tests!(@each $h; $set;
            handshake_and_call,
            calls_both_ways,
            concurrent_calls_complete_out_of_order,
            call_timeout_drops_the_late_reply,
            send_is_fire_and_forget,
            no_such_handle_and_forbidden,
            handler_error_and_handler_panicked,
            overloaded,
            sends_beyond_the_cap_are_dropped,
            message_too_large,
            untrusted_dialer_is_rejected,
            unexpected_peer_on_dial,
            dial_failures,
            supersede_by_redial,
            simultaneous_dial_converges,
            unpair_mid_call_fails_with_revoked,
            idle_timeout_detects_a_silent_peer,
            graceful_shutdown,
            bring_your_own_stream,
            backpressure_bounds_the_send_queue,
            call_waiting_for_room_moves_between_tasks,
            replies_larger_than_the_socket_takes_arrive_whole,
            typed_cbor_calls,
            persistence_survives_a_restart,
            kept_peer_restarted_on_its_address_is_reconnected,
            a_kept_peer_that_stays_down_says_why,
            listen_after_expose,
            kept_peer_on_a_new_port_is_found_through_a_ticket,
            connect_peer_dials_through_the_book,
            the_book_survives_a_restart,
            a_node_on_every_interface_is_paired_with_by_its_ticket,
            pairing_from_a_ticket_says_which_step_failed,
            connect_peer_gives_up_at_its_timeout,
            cancel_fires_the_handler_context,
            deadline_and_connection_loss_fire_the_handler_context,
            nested_call_inherits_the_deadline,
            a_call_ended_in_its_handlers_first_poll_leaves_no_task,
            a_dropped_shutdown_future_stops_nothing,
            a_call_after_the_own_shutdown_is_not_connected,
            the_handlers_go_with_the_node,
            the_access_rules_go_with_the_node,
            dropped_event_streams_do_not_pile_up,
            a_trust_change_given_up_still_lands_whole,
            the_book_is_written_before_the_lock_goes,
            a_data_dir_config_and_its_clone_start_one_node,
            connect_by_host_name,
            a_name_that_does_not_resolve_is_named,
            ipv6_loopback,
            refused_at_accept_is_reset,
            a_peer_that_reconnects_too_often_is_refused_busy,
            a_connection_given_up_leaves_no_bytes_queued_in_the_kernel,
            a_peer_that_reads_nothing_gets_little_queued_in_the_kernel,
            a_dialed_socket_gets_little_queued_in_the_kernel,
            a_half_closed_peer_that_reads_nothing_leaves_no_bytes_in_the_kernel,
            a_long_linger_is_for_established_connections_only,
            a_frame_dripped_a_byte_at_a_time_ends_at_the_idle_timeout,
            a_frame_announced_and_never_sent_ends_at_the_idle_timeout,
            a_peer_that_pings_but_never_reads_is_cut_off,
            a_reader_that_keeps_taking_bytes_is_not_cut_off,
            handshake_and_calls_over_a_dribbling_stream,
            shutdown_resolves_once_the_handlers_are_dropped
        );
    };
    (@each $h:ty; $set:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $set;
                $crate::run::<$h, _>($crate::scenarios::$name::<$h>);
            }
        )*
    };
}

/// The identity with seed `[seed; 32]`.
pub fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32])
}

/// The PeerId of [`identity`]`(seed)`.
pub fn peer(seed: u8) -> PeerId {
    identity(seed).peer_id()
}

/// `127.0.0.1:0`.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A loopback address whose TCP connects never complete: a listener with
/// a backlog of 0 whose accept queue is filled, so that later SYNs are
/// dropped. Keep the second value alive while the address is used. (It
/// blocks for the 300 ms of the connect that finds the queue full: call
/// it before the nodes it is for start.)
pub fn silent_address() -> (
    SocketAddr,
    (std::net::TcpListener, Vec<std::net::TcpStream>),
) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&loopback().into()).unwrap();
    socket.listen(0).unwrap();
    let listener = std::net::TcpListener::from(socket);
    let silent = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&silent, Duration::from_millis(300)) {
            Ok(filler) => fillers.push(filler),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => break, // hangs now
            Err(e) => panic!("{e}"),
        }
        assert!(fillers.len() < 16, "the accept queue never filled");
    }
    (silent, (listener, fillers))
}

/// A node with identity `seed`, trusting `trusts`, listening on loopback.
pub async fn node<R: Runtime>(
    seed: u8,
    trusts: &[u8],
    tweak: impl FnOnce(NodeConfig) -> NodeConfig,
) -> Node<R> {
    let mut config = NodeConfig::new(identity(seed)).protocol_version(version());
    for t in trusts {
        config = config.trusting(peer(*t));
    }
    Node::bind(tweak(config), loopback()).await.expect("bind")
}

/// Nodes `x` and `y` trusting each other: `x` dials `y`; returns once
/// `y` knows too.
pub(crate) async fn linked<R: Runtime>(x: &Node<R>, y: &Node<R>) {
    let events = y.events();
    x.connect(y.peer_id(), y.local_addr().unwrap())
        .await
        .expect("connect");
    until(x.runtime(), &events, "connected", || {
        y.is_connected(&x.peer_id())
    })
    .await;
}

/// Raises its flag when dropped (what a handler holds, to see it go).
pub(crate) struct DropFlag(pub(crate) Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `fut`, or a panic naming `what` after [`WAIT`].
pub async fn within<R: Runtime, F: Future>(rt: &R, what: &str, fut: F) -> F::Output {
    match select(pin!(fut), rt.sleep_until(rt.now() + WAIT)).await {
        Either::Left((value, _)) => value,
        Either::Right(_) => panic!("timed out waiting for {what}"),
    }
}

/// Two nodes trusting each other (identities 1 and 2) and speaking
/// `version`, joined over the two ends of a stream the application opened
/// itself: the first accepts `left`, the second dials over `right`
/// expecting the first's PeerId. Panics if either side's handshake fails
/// or does not end within the scenarios' wait.
pub async fn joined_over<R, S>(left: S, right: S, version: ProtocolVersion) -> (Node<R>, Node<R>)
where
    R: Runtime + WrapStream<S>,
{
    let a: Node<R> = Node::new(
        NodeConfig::new(identity(1))
            .protocol_version(version)
            .trusting(peer(2)),
    );
    let b: Node<R> = Node::new(
        NodeConfig::new(identity(2))
            .protocol_version(version)
            .trusting(peer(1)),
    );
    let (got_a, got_b) = within(
        a.runtime(),
        "handshake over the stream",
        join(
            a.accept_stream(left),
            b.connect_stream(right, Some(a.peer_id())),
        ),
    )
    .await;
    assert_eq!(got_a.expect("accept_stream"), b.peer_id());
    assert_eq!(got_b.expect("connect_stream"), a.peer_id());
    (a, b)
}

/// The next event matching `pred` (others are skipped).
pub async fn expect_event<R: Runtime>(
    rt: &R,
    events: &EventStream,
    what: &str,
    pred: impl Fn(&NodeEvent) -> bool,
) -> NodeEvent {
    within(rt, what, async {
        loop {
            let event = events.recv().await.expect("event stream closed");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
}

/// The next `Connected` event for `peer` (others are skipped).
pub async fn expect_connected<R: Runtime>(rt: &R, events: &EventStream, what: &str, peer: PeerId) {
    expect_event(
        rt,
        events,
        what,
        |e| matches!(e, NodeEvent::Connected { peer: p, .. } if *p == peer),
    )
    .await;
}

/// Waits until `cond` holds; every change it can observe comes with an
/// event on `events`.
pub async fn until<R: Runtime>(rt: &R, events: &EventStream, what: &str, cond: impl Fn() -> bool) {
    within(rt, what, async {
        while !cond() {
            events.recv().await.expect("event stream closed");
        }
    })
    .await
}

/// Calls from a task of its own; the result arrives on the receiver.
pub fn spawn_call<R: Runtime>(
    node: &Node<R>,
    peer: PeerId,
    handle: &'static str,
    args: impl Into<Bytes>,
    timeout: Option<Duration>,
) -> async_channel::Receiver<Result<Bytes, CallError>> {
    let (tx, rx) = async_channel::bounded(1);
    let node2 = node.clone();
    let args = args.into();
    node.runtime().spawn(async move {
        let result = node2.call(&peer, handle, args, timeout).await;
        let _ = tx.send(result).await;
    });
    rx
}

/// A handler that blocks until the test lets it go: `args[0]` names the
/// gate; it reports on `started` when it runs.
pub struct Gates {
    /// Gate numbers, as their handlers start.
    pub started: async_channel::Receiver<u8>,
    release: Vec<async_channel::Sender<()>>,
}

impl Gates {
    /// Waits until `n` more handlers have started.
    pub async fn wait_started<R: Runtime>(&self, rt: &R, n: usize) {
        for _ in 0..n {
            within(rt, "a handler to start", self.started.recv())
                .await
                .expect("handler gone");
        }
    }

    /// Lets the handler waiting on gate `k` answer.
    pub fn release(&self, k: u8) {
        let _ = self.release[k as usize].try_send(());
    }
}

/// Exposes a [`Gates`] handler under `handle`; it answers `[k]`.
pub fn expose_gated<R: Runtime>(node: &Node<R>, handle: &str) -> Gates {
    let (started_tx, started) = async_channel::unbounded();
    let (release, gates): (Vec<_>, Vec<_>) = (0..16).map(|_| async_channel::bounded(1)).unzip();
    let gates = Arc::new(gates);
    node.expose(handle, move |_caller, args: Bytes| {
        let k = args.first().copied().unwrap_or(0);
        let started = started_tx.clone();
        let gate = gates[usize::from(k) % gates.len()].clone();
        async move {
            let _ = started.send(k).await;
            let _ = gate.recv().await;
            Ok(Bytes::from(vec![k]))
        }
    })
    .expect("handle");
    Gates { started, release }
}

/// Exposes `echo`: answers its arguments.
pub fn expose_echo<R: Runtime>(node: &Node<R>) {
    node.expose("echo", |_caller, args| async move { Ok(args) })
        .expect("handle");
}
