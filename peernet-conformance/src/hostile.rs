//! Scenarios of a trusted peer misbehaving on an established connection,
//! each resting on the runtime's timers and its read and write readiness:
//! it drips a frame out a byte at a time, or announces one and never
//! sends it; it pings but never reads; it reads, slowly. (They ran on
//! tokio only once, as `dripping_peer.rs` and `stalled_peer.rs`.)
//!
//! Only a whole frame counts as received (PROTOCOL.md 3.2; in version 2
//! a record that decrypts, 7), so a frame that never ends is given up at
//! `idle_timeout` however steadily its bytes drip. A writer that gets
//! none of its bytes taken for `idle_timeout` reports `Input::Stalled`
//! and the connection ends, though the peer's PINGs keep it from looking
//! idle; a reader that keeps taking bytes, however slowly, is not cut
//! off. The handshake's slow frames are `handshake_budget.rs`'s (tokio)
//! and the core's `first_frame.rs`'.

use bytes::Bytes;
use peernet_driver::BoxFuture;
use peernet_proto::{CloseReason, Event, GoodbyeCode, Side};

use super::*;

/// The node's patience in these scenarios: `idle_timeout`.
pub const IDLE: Duration = Duration::from_secs(2);

/// A node's patience `idle`, with a PING after 800 ms of silence.
pub fn patient(idle: Duration) -> impl FnOnce(NodeConfig) -> NodeConfig {
    move |config| {
        config
            .ping_interval(Duration::from_millis(800))
            .idle_timeout(idle)
    }
}

/// Bob (identity `seed + 1`, trusting `seed`, `tweak`ed) and a raw peer
/// (identity `seed`, exposing `x`) connected to him over TCP, which does
/// only what its test makes it do; bob's events, taken before it dialed.
pub async fn bob_and_raw<R: Runtime>(
    seed: u8,
    tweak: impl FnOnce(NodeConfig) -> NodeConfig,
) -> (Node<R>, RawPeer, EventStream) {
    let bob: Node<R> = node(seed + 1, &[seed], tweak).await;
    let rt = bob.runtime().clone();
    let events = bob.events();
    let addr = bob.local_addr().expect("listening");
    let raw = RawPeer::dial(&rt, identity(seed), bob.peer_id(), addr, &["x"]).await;
    expect_connected(&rt, &events, "the raw peer", peer(seed)).await;
    (bob, raw, events)
}

/// Sends `count` messages of `size` bytes from `node` to `to` (handle
/// `x`), from a task of its own (each waits for room in the node's
/// queue), until one fails.
pub fn flood<R: Runtime>(node: &Node<R>, to: PeerId, count: usize, size: usize) {
    let sender = node.clone();
    node.runtime().spawn(async move {
        let body = Bytes::from(vec![7u8; size]);
        for _ in 0..count {
            if sender.send(&to, "x", body.clone()).await.is_err() {
                break;
            }
        }
    });
}

/// The next `Disconnected` event's reason, or `None` if `tick` comes
/// first (other events are skipped).
async fn disconnected_or<F: Future<Output = ()>>(
    events: &EventStream,
    tick: F,
) -> Option<CloseReason> {
    let next = async {
        loop {
            let event = events.recv().await.expect("event stream closed");
            if let NodeEvent::Disconnected { reason, .. } = event {
                return reason;
            }
        }
    };
    match select(pin!(next), pin!(tick)).await {
        Either::Left((reason, _)) => Some(reason),
        Either::Right(_) => None,
    }
}

/// Plays a peer that writes a PING every 100 ms (so the node never finds
/// it idle) and reads nothing, until the node ends the connection (within
/// [`WAIT`]); its reason.
pub async fn ping_until_cut_off<R: Runtime>(
    rt: &R,
    raw: &mut RawPeer,
    events: &EventStream,
) -> CloseReason {
    within(
        rt,
        "the node cutting off a peer that reads nothing",
        async {
            for nonce in 1.. {
                let tick = rt.sleep_until(rt.now() + Duration::from_millis(100));
                if let Some(reason) = disconnected_or(events, tick).await {
                    return reason;
                }
                raw.ping(nonce).await;
            }
            unreachable!("a u64 of PINGs")
        },
    )
    .await
}

/// Why the node cut off a peer that took none of its bytes for [`IDLE`].
pub fn stalled_reason() -> CloseReason {
    CloseReason::Goodbye {
        by: Side::Local,
        code: GoodbyeCode::IdleTimeout,
        reason: format!("peer read none of our bytes for {IDLE:?}"),
    }
}

/// Bob (patience [`IDLE`]) and an established raw peer that starts a
/// frame announcing the largest body (`max_frame_len`, 1 MiB) and then
/// writes one byte of it every `drip` (none at all with `None`); how
/// long after the scenario began bob ended the connection, and why.
async fn drip_a_frame<H: Harness>(seed: u8, drip: Option<Duration>) -> (Duration, CloseReason) {
    let rt = H::Rt::default();
    // (before the raw peer's last handshake frame, bob's last whole one)
    let start = rt.now();
    let (bob, mut raw, events) = bob_and_raw::<H::Rt>(seed, patient(IDLE)).await;
    raw.write_bytes(&(1u32 << 20).to_be_bytes()).await;
    let reason = within(&rt, "bob ending a frame that never ends", async {
        loop {
            let tick: BoxFuture<()> = match drip {
                Some(drip) => rt.sleep_until(rt.now() + drip),
                None => Box::pin(std::future::pending()),
            };
            if let Some(reason) = disconnected_or(&events, tick).await {
                return reason;
            }
            raw.write_bytes(&[0x5a]).await;
        }
    })
    .await;
    let waited = rt.now() - start;
    bob.shutdown().await;
    (waited, reason)
}

/// Bob gave up at his idle timeout, not before (the liveness timer fires
/// at the deadline; the slack is the handshake's and a loaded machine's).
#[track_caller]
fn assert_idle(waited: Duration, reason: CloseReason) {
    let expected = CloseReason::Goodbye {
        by: Side::Local,
        code: GoodbyeCode::IdleTimeout,
        reason: format!("no frame received for {IDLE:?}"),
    };
    assert_eq!(reason, expected);
    assert!(waited >= IDLE, "{waited:?}");
    assert!(waited <= IDLE + WAIT / 2, "{waited:?}");
}

/// A frame dripped a byte every 20 ms never counts as received: the
/// connection ends at the idle timeout.
pub async fn a_frame_dripped_a_byte_at_a_time_ends_at_the_idle_timeout<H: Harness>() {
    let (waited, reason) = drip_a_frame::<H>(101, Some(Duration::from_millis(20))).await;
    assert_idle(waited, reason);
}

/// A frame announced and never sent: the connection ends at the idle
/// timeout.
pub async fn a_frame_announced_and_never_sent_ends_at_the_idle_timeout<H: Harness>() {
    let (waited, reason) = drip_a_frame::<H>(103, None).await;
    assert_idle(waited, reason);
}

/// A peer that keeps sending (PINGs) but never reads: once 40 MB of
/// sends, far more than the loopback buffers hold, have its writer
/// waiting, bob cuts it off after [`IDLE`] of no byte taken. It used to
/// keep the connection for ever (the PINGs kept the idle timeout away,
/// the queue stayed under its cap while the writer sat blocked).
pub async fn a_peer_that_pings_but_never_reads_is_cut_off<H: Harness>() {
    let rt = H::Rt::default();
    let (bob, mut raw, events) = bob_and_raw::<H::Rt>(105, patient(IDLE)).await;
    // (before the flood: its task may run on another thread at once, and
    // bob's patience starts with the first byte it cannot write)
    let start = rt.now();
    flood(&bob, raw.peer_id(), 40, 1_000_000);
    let reason = ping_until_cut_off(&rt, &mut raw, &events).await;
    assert_eq!(reason, stalled_reason());
    let waited = rt.now() - start;
    assert!(waited >= IDLE, "cut off after {waited:?}");
    bob.shutdown().await;
}

/// A reader that takes 64 KiB every 10 ms (about 6.5 MB/s) of 16 MB
/// sent to it: once the socket buffers are full, bob's writer waits on
/// them again and again, longer than its patience ([`IDLE`]) in all, each
/// time far less (room is reported once less than 512 KiB is left
/// unsent, `socket_start`). It is not cut off.
pub async fn a_reader_that_keeps_taking_bytes_is_not_cut_off<H: Harness>() {
    const MESSAGES: usize = 16;
    let rt = H::Rt::default();
    let (bob, mut raw, events) = bob_and_raw::<H::Rt>(107, patient(IDLE)).await;
    let raw_peer = raw.peer_id();
    flood(&bob, raw_peer, MESSAGES, 1_000_000);
    let mut received = 0;
    let read_all = async {
        for nonce in 1.. {
            rt.sleep_until(rt.now() + Duration::from_millis(10)).await;
            assert!(raw.read_once().await, "bob closed the connection");
            raw.ping(nonce).await;
            while let Some(event) = raw.try_event().await {
                received += usize::from(matches!(event, Event::Send(_)));
            }
            if received == MESSAGES {
                return;
            }
        }
    };
    within(&rt, "all 16 messages", read_all).await;
    assert!(bob.is_connected(&raw_peer));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::Disconnected { .. }),
            "{event:?}"
        );
    }
    bob.shutdown().await;
}
