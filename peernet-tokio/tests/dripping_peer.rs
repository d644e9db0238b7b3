//! An established version-2 peer that starts a record and never ends
//! it: a header announcing the largest frame (`max_frame_len`, 1 MiB),
//! then its bytes one at a time, or none. Only a record that decrypts
//! counts as received (PROTOCOL.md 3.2 and 7), so the node ends the
//! connection with GOODBYE `idle_timeout` once `idle_timeout` has passed
//! since the last whole record, however steadily the bytes drip, and the
//! record's buffer holds at most what came plus 64 KiB meanwhile (the
//! frame decoder's first room, `frame.rs`). The peer that never reads is
//! `stalled_peer.rs`'s; the handshake's slow frames are
//! `handshake_budget.rs`'s and the core's `first_frame.rs`'.

use std::time::{Duration, Instant};

use peernet_tokio::{CloseReason, Config, GoodbyeCode, NodeEvent, Side};
#[path = "common/raw_bob.rs"]
mod raw_bob;
use raw_bob::bob_and_raw;

/// The node's patience: `idle_timeout`.
const IDLE: Duration = Duration::from_secs(2);

/// Bob (idle timeout [`IDLE`]) and an established raw peer that starts a
/// 1 MiB record and then writes one byte of it every `drip` (none at
/// all with `None`); how long after the test began bob ended the
/// connection (at least `idle_timeout` after the last whole record),
/// and why.
async fn drip_a_record(seed: u8, drip: Option<Duration>) -> (Duration, CloseReason) {
    let mut protocol = Config::default();
    protocol.ping_interval = Duration::from_millis(800);
    protocol.idle_timeout = IDLE;
    // (before the raw peer's first record, bob's last whole one)
    let start = Instant::now();
    let (bob, mut raw, events) = bob_and_raw(seed, protocol).await;
    let header = (1u32 << 20).to_be_bytes();
    raw.write_bytes(&header).await;
    let mut tick = tokio::time::interval(drip.unwrap_or(Duration::from_secs(3600)));
    tick.tick().await;
    let ended = async {
        loop {
            tokio::select! {
                _ = tick.tick() => raw.write_bytes(&[0x5a]).await,
                event = events.recv() => {
                    if let NodeEvent::Disconnected { reason, .. } = event.unwrap() {
                        break reason;
                    }
                }
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("bob ends a connection whose record never ends");
    let waited = start.elapsed();
    bob.shutdown().await;
    (waited, reason)
}

#[track_caller]
fn assert_idle(waited: Duration, reason: CloseReason) {
    let expected = CloseReason::Goodbye {
        by: Side::Local,
        code: GoodbyeCode::IdleTimeout,
        reason: format!("no frame received for {IDLE:?}"),
    };
    assert_eq!(reason, expected);
    // Not before its patience ran out since the last whole record, and
    // not long after (the liveness timer fires at the idle deadline; the
    // slack is the handshake's time and a loaded machine's).
    assert!(waited >= IDLE, "{waited:?}");
    assert!(waited <= IDLE + Duration::from_secs(10), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_dripped_a_byte_at_a_time_ends_at_the_idle_timeout() {
    let (waited, reason) = drip_a_record(41, Some(Duration::from_millis(20))).await;
    assert_idle(waited, reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_announced_and_never_sent_ends_at_the_idle_timeout() {
    let (waited, reason) = drip_a_record(51, None).await;
    assert_idle(waited, reason);
}
