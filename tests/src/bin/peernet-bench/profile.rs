//! `--profile`: a fixed amount of one workload on a single-threaded tokio
//! runtime, for instruction counts under callgrind (repeatable whatever
//! the machine's load, unlike the timed windows of the other workloads).
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.v2 \
//!   target/release/peernet-bench --profile pipe-v2 --count 20000
//! ```
//!
//! Run each workload at two counts and divide the difference in
//! instructions by the difference in counts: the setup (keys, binds,
//! connects) cancels out and what is left is the cost of one operation,
//! both sides included.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::peer::{Fleet, Version, push_within};
use crate::raw;

/// What `--profile` runs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `count` 64-byte echo calls, 64 in flight, version 1.
    PipeV1,
    /// The same on version 2.
    PipeV2,
    /// The same on the raw multiplexing client (the plaintext baseline).
    PipeRawmux,
    /// `count` 64-byte echo calls one after another, version 1.
    SeqV1,
    /// The same on version 2.
    SeqV2,
    /// The same on raw TCP ping-pong (the latency floor).
    SeqRawtcp,
    /// `count` connects and disconnects, 4 at a time, version 1.
    HandshakeV1,
    /// The same on version 2.
    HandshakeV2,
    /// `count` raw TCP connects and closes, 4 at a time.
    HandshakeRawtcp,
    /// `count` times the X25519 work of one version-2 handshake side.
    X25519,
}

const INFLIGHT: usize = 64;
const PAR: usize = 4;

/// Runs `what` `count` times; prints the count when done.
pub fn run(what: Profile, count: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let p = Bytes::from(vec![0x5a; 64]);
    let done = rt.block_on(async move {
        match what {
            Profile::PipeV1 => pipe(count, Version::V1, p).await,
            Profile::PipeV2 => pipe(count, Version::V2, p).await,
            Profile::PipeRawmux => {
                let server = raw::RawServer::start().await.expect("raw server");
                let mux = Arc::new(raw::Mux::connect(server.addr).await.expect("mux"));
                pipelined(count, || {
                    let (m, p) = (mux.clone(), p.clone());
                    async move {
                        m.call(p).await.expect("mux call");
                    }
                })
                .await
            }
            Profile::SeqV1 => seq(count, Version::V1, p).await,
            Profile::SeqV2 => seq(count, Version::V2, p).await,
            Profile::SeqRawtcp => {
                let server = raw::RawServer::start().await.expect("raw server");
                let mut pp = raw::PingPong::connect(server.addr)
                    .await
                    .expect("ping-pong");
                for _ in 0..count {
                    assert_eq!(pp.call(&p).await.expect("ping-pong call").len(), 64);
                }
                count
            }
            Profile::HandshakeV1 => handshakes(count, Version::V1).await,
            Profile::HandshakeV2 => handshakes(count, Version::V2).await,
            Profile::HandshakeRawtcp => {
                let server = raw::RawServer::start().await.expect("raw server");
                raw::connect_close(server.addr, count as usize, PAR).await
            }
            Profile::X25519 => {
                let mut floor = crate::X25519Floor::new();
                for _ in 0..count {
                    floor.once();
                }
                count
            }
        }
    });
    println!("profile {what:?}: {done} operations");
}

fn tokio_rt() -> peernet_tokio::TokioRuntime {
    peernet_tokio::TokioRuntime::new(tokio::runtime::Handle::current())
}

async fn pipe(count: u64, v: Version, p: Bytes) -> u64 {
    let f = Arc::new(Fleet::new(tokio_rt(), 0x51, 1, 1, v).await);
    pipelined(count, || {
        let (f, p) = (f.clone(), p.clone());
        async move {
            let c = &f.clients[0];
            let r = c.call(&f.sid, "echo", p, None).await.expect("call");
            assert_eq!(r.len(), 64);
        }
    })
    .await
}

async fn seq(count: u64, v: Version, p: Bytes) -> u64 {
    let f = Fleet::new(tokio_rt(), 0x53, 1, 1, v).await;
    for _ in 0..count {
        let r = f.clients[0].call(&f.sid, "echo", p.clone(), None).await;
        assert_eq!(r.expect("call").len(), 64);
    }
    count
}

async fn handshakes(count: u64, v: Version) -> u64 {
    let f = Fleet::new(tokio_rt(), 0x52, 64, 0, v).await;
    let mut inflight = FuturesUnordered::new();
    let mut n = 0;
    for i in 0..count as usize {
        n += push_within(&mut inflight, f.connect_cycle(i), PAR).await;
    }
    while inflight.next().await.is_some() {
        n += 1;
    }
    // both sides' work inside the count: wait for the server to let go
    while !f.server.peers().is_empty() {
        raw::pause(Duration::from_millis(1)).await;
    }
    n
}

/// `count` operations, `INFLIGHT` at a time.
async fn pipelined<F, Fut>(count: u64, mut op: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut inflight = FuturesUnordered::new();
    let mut started = 0;
    while started < count.min(INFLIGHT as u64) {
        inflight.push(op());
        started += 1;
    }
    let mut done = 0;
    while inflight.next().await.is_some() {
        done += 1;
        if started < count {
            inflight.push(op());
            started += 1;
        }
    }
    done
}
