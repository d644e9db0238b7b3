//! Every peer that reads gets our GOODBYE when we close, however many
//! connections to peers that are behind close at once (review s40, r4).
//!
//! A connection to a peer that is behind holds its writer's batch (bytes
//! taken, blocked on the full socket) and a full send queue, with more
//! replies waiting. Its last write used to carry the queue (up to a send
//! buffer and a frame) and the GOODBYE, and the driver lets closing
//! connections hold at most four hard send caps of such bytes node-wide
//! (its linger budget): past it a connection was dropped whole, GOODBYE
//! included. With 64 KiB send buffers and frames (128 KiB caps, a
//! 512 KiB budget) and about 240 KiB per connection, 2 of 4 peers got
//! their GOODBYE at a shutdown. Now at a shutdown nothing is refused (no
//! connection can start any more, so no peer can pile closed connections
//! up by reconnecting), and the last write of a close the application
//! did not ask for, such as an unpair, is short (what is queued goes only
//! if it fits with the GOODBYE in 4 KiB, `peernet_proto::LAST_COPIED`).
//!
//! Bob lingers an hour (`NodeConfig::linger`): what is checked is the
//! budget, in bytes, not how fast the peers read. With the default 2 s,
//! peers that started reading late (a loaded machine holding the test a
//! moment between the close and the reads) found their writer stopped by
//! the linger before its GOODBYE, and the test failed with correct code.

use std::time::Duration;

use bytes::Bytes;
use peernet_conformance::RawPeer;
use peernet_proto::{CloseReason, Config, GoodbyeCode, ProtocolVersion};
use peernet_tokio::NodeConfig;
use tokio::sync::Mutex;

#[path = "common/unread.rs"]
mod unread;
use unread::{ReadToEnd, Unread, read_to_end};

/// Calls each peer makes before it reads, for [`RESULT`] bytes each: far
/// more than loopback socket buffers hold (about 4 MB while the peer
/// reads nothing), so replies wait behind every connection's full queue.
const CALLS: usize = 400;
const RESULT: usize = 60_000;

/// The raw peers' protocol version is the test process's
/// (`peernet_conformance::set_version`): one test at a time.
static ONE_VERSION: Mutex<()> = Mutex::const_new(());

/// The reviewer's limits: 64 KiB send buffers, hard caps and frames.
fn core(version: ProtocolVersion) -> Config {
    let mut core = Config::default();
    core.send_buffer = 64 << 10;
    core.max_send_buffer = 64 << 10;
    core.max_frame_len = 64 << 10;
    core.version = version;
    core
}

/// Bob (seed `seed`) and `peers` raw peers (the seeds after it), each of
/// which made [`CALLS`] calls and read nothing: each connection's writer
/// holds a batch, its queue is full and replies wait behind it.
async fn peers_behind(version: ProtocolVersion, seed: u8, peers: u8) -> Unread {
    peernet_conformance::set_version(version);
    let seeds: Vec<u8> = (1..=peers).map(|i| seed + i).collect();
    let big = Bytes::from(vec![7u8; RESULT]);
    let linger = |config: NodeConfig| config.linger(Duration::from_secs(3600));
    let result = move || big.clone();
    let mut unread = Unread::start_with(seed, &seeds, core(version), result, linger).await;
    for i in 0..seeds.len() {
        let before = unread.bob.stats().core.replies_waiting;
        unread.call_from(i, CALLS).await;
        // (a reply waits only behind a full queue)
        let waiting = async {
            while unread.bob.stats().core.replies_waiting <= before {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the peer's replies wait for room");
    }
    let s = unread.bob.stats().core;
    println!(
        "{version:?}: {peers} peers behind: {} replies waiting, {} bytes queued; linger budget {}",
        s.replies_waiting,
        s.queued_bytes,
        4 * core(version).hard_send_cap()
    );
    unread
}

/// Every peer reads what it is sent to the end, all at once.
async fn read_all(raws: Vec<RawPeer>) -> Vec<ReadToEnd> {
    let reads = raws
        .into_iter()
        .map(|mut raw| tokio::spawn(async move { read_to_end(&mut raw).await }));
    let read = futures_util::future::join_all(reads).await;
    read.into_iter().map(|got| got.unwrap()).collect()
}

/// Every peer read to the end, found a GOODBYE with `code` there, and had
/// each of its calls resolved once.
fn each_got_goodbye(version: ProtocolVersion, code: GoodbyeCode, got: &[ReadToEnd]) {
    for (i, got) in got.iter().enumerate() {
        println!(
            "{version:?} peer {i}: {} results, {} closed; closed: {:?}",
            got.ok, got.closed, got.reason
        );
    }
    let lost = got
        .iter()
        .filter(|got| {
            !matches!(
                &got.reason,
                Some(CloseReason::Goodbye { code: c, .. }) if *c == code
            )
        })
        .count();
    assert_eq!(
        lost,
        0,
        "{version:?}: {lost} of {} peers got no GOODBYE",
        got.len()
    );
    for got in got {
        assert!(got.ok > 0, "what the socket took went out first");
        assert_eq!(got.ok + got.closed, CALLS, "every call resolves once");
    }
}

/// A shutdown with six peers behind, which then read: each gets its
/// GOODBYE. Even with short last writes, six writers' batches (about
/// 120 KiB each) would not fit the 512 KiB linger budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_says_goodbye_to_every_peer_that_reads() {
    let _one = ONE_VERSION.lock().await;
    for (version, seed) in [(ProtocolVersion::V2, 100), (ProtocolVersion::V1, 110)] {
        let Unread { bob, raws, .. } = peers_behind(version, seed, 6).await;
        let shutdown = tokio::spawn(bob.shutdown());
        // now every peer reads everything there is, at once
        let got = read_all(raws).await;
        each_got_goodbye(version, GoodbyeCode::Normal, &got);
        shutdown.await.unwrap();
    }
}

/// Four peers behind unpaired at once while the node runs, which then
/// read: each gets its GOODBYE, within the linger budget. (Each writer's
/// batch is under a send buffer and a reply, about 120 KiB, so four fit
/// the 512 KiB budget with short last writes; with the queue in them,
/// about 240 KiB each, two did. A `disconnect`, which the application
/// asks for, still sends the queue first: two such fit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpairings_of_peers_behind_each_end_with_goodbye() {
    let _one = ONE_VERSION.lock().await;
    for (version, seed) in [(ProtocolVersion::V2, 120), (ProtocolVersion::V1, 130)] {
        let Unread { bob, raws, .. } = peers_behind(version, seed, 4).await;
        for raw in &raws {
            assert!(bob.unpair(&raw.peer_id()).await.unwrap());
        }
        let budget = 4 * core(version).hard_send_cap();
        let lingering = bob.stats().lingering_bytes;
        println!("{version:?}: {lingering} bytes lingering after the unpairings");
        assert!(lingering <= budget, "{lingering} over {budget}");
        let got = read_all(raws).await;
        each_got_goodbye(version, GoodbyeCode::Revoked, &got);
        bob.shutdown().await;
    }
}
