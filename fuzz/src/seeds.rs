//! Seeds for the op-stream targets (`source_limits`, `supersede_race`),
//! each with what it claims to reach: the corpus generator runs every
//! seed and fails if one no longer gets there.

use crate::sources::{self, Op as S};
use crate::supersede::{self, Op as R};

/// A seed: its name, its bytes, and whether a run's summary shows it got
/// where it claims.
pub struct Seed<T> {
    /// What it is for.
    pub name: &'static str,
    /// The input.
    pub data: Vec<u8>,
    /// Whether it got there.
    pub reached: fn(&T) -> bool,
}

/// Whether a run's summary shows a seed got where it claims.
type Reached<T> = fn(&T) -> bool;

fn push<T>(out: &mut Vec<Seed<T>>, name: &'static str, data: Vec<u8>, reached: Reached<T>) {
    out.push(Seed {
        name,
        data,
        reached,
    });
}

/// Bytes a responder fails on at once, in either version: a frame length
/// past any limit.
const GARBAGE: &[u8] = &[0xff; 8];

fn limits(flags: u8, handshakes: u8, per_second: u8, burst: u8) -> sources::Header {
    sources::Header {
        flags,
        handshakes,
        per_second,
        burst,
        node_per_second: 1,
        node_burst: 1,
        max_handshakes: 4,
        handshake_bytes: 255,
    }
}

fn raw(addr: u8, bytes: &[u8]) -> S {
    S::Raw {
        addr,
        bytes: bytes.to_vec(),
    }
}

/// The `source_limits` seeds.
pub fn source_limits() -> Vec<Seed<sources::Summary>> {
    let mut out = Vec::new();
    let mut add = |name, header: sources::Header, ops: &[S], reached: Reached<sources::Summary>| {
        push(&mut out, name, sources::encode(&header, ops), reached);
    };
    for v in [0, 1] {
        add(
            "a trusted peer connects, then again from the same IPv4 address (mapped): busy while the first is in progress, then superseded",
            limits(v, 1, 4, 3),
            &[
                S::Honest { addr: 0 },
                S::Honest { addr: 1 },
                S::Flush,
                S::Honest { addr: 2 },
                S::Flush,
            ],
            |s| s.connected >= 2 && s.busy >= 1,
        );
        add(
            "two addresses of one /64 are one source, another /64 is not",
            limits(v, 1, 4, 3),
            &[
                raw(4, b""),
                raw(5, b""),
                raw(6, b""),
                S::Advance { ms: 6000 },
            ],
            |s| s.busy == 1 && s.held >= 2,
        );
        add(
            "a failed handshake spends a burst of 1; a second later there is room",
            limits(v, 2, 1, 1),
            &[
                raw(3, GARBAGE),
                raw(3, b""),
                S::Advance { ms: 1000 },
                raw(3, GARBAGE),
                S::Stranger { addr: 3 },
                S::Flush,
            ],
            |s| s.failing >= 2 && s.held >= 2,
        );
        add(
            "an untrusted peer's handshakes fail and are charged",
            limits(v, 4, 1, 2),
            &[
                S::Stranger { addr: 4 },
                S::Flush,
                S::Stranger { addr: 5 },
                S::Flush,
                S::Stranger { addr: 4 },
            ],
            |s| s.failing >= 1 && s.held >= 2,
        );
        add(
            "node-wide: a stranger's failure spends it; a new source is refused, the known one admitted",
            limits(v | 2, 4, 8, 7),
            &[
                S::Honest { addr: 0 },
                S::Flush,
                raw(3, GARBAGE),
                raw(6, b""),
                S::Honest { addr: 1 },
                S::Flush,
            ],
            |s| s.node_failing >= 1 && s.known_admitted_in_flood >= 1 && s.connected >= 2,
        );
        add(
            "node-wide: a source known a week ago is a stranger again",
            limits(v | 2, 4, 8, 7),
            &[
                S::Honest { addr: 0 },
                S::Flush,
                S::Jump { hours: 169 },
                raw(4, GARBAGE),
                S::Honest { addr: 0 },
                S::Advance { ms: 1000 },
                S::Honest { addr: 0 },
                S::Flush,
            ],
            |s| s.forgotten_refused >= 1 && s.connected >= 2,
        );
        add(
            "silent transports: evicted from the only handshake slot, then timed out, both charged",
            sources::Header {
                max_handshakes: 1,
                ..limits(v, 4, 1, 3)
            },
            &[
                raw(0, b""),
                raw(3, b""),
                S::Advance { ms: 6000 },
                raw(3, b""),
                S::Close { pick: 0 },
            ],
            |s| s.held >= 3 && s.evicted == 1,
        );
        add(
            "shutting down refuses everything",
            limits(v, 4, 4, 3),
            &[
                S::Honest { addr: 0 },
                S::Flush,
                S::Shutdown,
                S::Honest { addr: 0 },
            ],
            |s| s.connected >= 1,
        );
    }
    out
}

fn header(flags: u8, handshake: u8) -> supersede::Header {
    supersede::Header {
        flags,
        capacity: 4095,
        handshake,
    }
}

fn call(from: u8, first: u8, timeout_ms: u16) -> R {
    R::Call {
        from,
        args: vec![first, 1, 2, 3],
        timeout_ms,
    }
}

fn deliver(link: u8, to: u8, n: u16) -> R {
    R::Deliver { link, to, n }
}

/// The `supersede_race` seeds.
pub fn supersede_race() -> Vec<Seed<supersede::Summary>> {
    let mut out = Vec::new();
    let mut add =
        |name, header: supersede::Header, ops: &[R], reached: Reached<supersede::Summary>| {
            push(&mut out, name, supersede::encode(&header, ops), reached);
        };
    for v in [0, 1] {
        add(
            "simultaneous dials between B and A: one survives",
            header(v, 78),
            &[R::Dial { from: 0 }, R::Dial { from: 2 }, R::Flush],
            |s| s.supersedes >= 1 && s.connected >= 2,
        );
        add(
            "A connected with calls in flight, then A2 (the same identity) connects",
            header(v, 78),
            &[
                R::Dial { from: 0 },
                R::Flush,
                call(0, 0, 1000),
                call(0, 3, 0),
                call(2, 3, 5000),
                R::Flush,
                R::Dial { from: 1 },
                R::Flush,
                call(1, 0, 0),
                call(2, 0, 0),
                R::Flush,
            ],
            |s| s.supersedes >= 1 && s.ok_results >= 2,
        );
        add(
            "B dials A while A2 dials B, byte by byte",
            header(v, 78),
            &[
                R::Dial { from: 2 },
                R::Dial { from: 1 },
                deliver(0, 1, 1),
                deliver(1, 0, 1),
                deliver(0, 1, 1),
                deliver(1, 0, 1),
                R::Flush,
            ],
            |s| s.connected >= 2,
        );
        add(
            "a replay of A's handshake on a new transport",
            header(v, 78),
            &[
                R::Dial { from: 0 },
                R::Flush,
                R::Replay { link: 0 },
                R::Flush,
            ],
            |s| s.replays >= 1 && s.connected == 2,
        );
        add(
            "a byte of A's handshake tampered with, then A2 connects",
            header(v, 78),
            &[
                R::Dial { from: 0 },
                deliver(0, 0, 4),
                R::Tamper {
                    link: 0,
                    to: 0,
                    at: 20,
                    xor: 1,
                },
                R::Flush,
                R::Dial { from: 1 },
                R::Flush,
            ],
            |s| s.connected >= 2,
        );
        add(
            "garbage injected into an established connection, then a new dial",
            header(v, 78),
            &[
                R::Dial { from: 0 },
                R::Flush,
                R::Inject {
                    link: 0,
                    to: 0,
                    bytes: vec![0, 0, 0, 3, 9, 9, 9],
                },
                R::Flush,
                R::Dial { from: 2 },
                R::Flush,
            ],
            |s| s.connected >= 3,
        );
        add(
            "a short handshake_timeout: the race straddles it (rule 2)",
            header(v, 0),
            &[
                R::Dial { from: 0 },
                R::Dial { from: 3 },
                R::Flush,
                R::Advance { ms: 200 },
                R::Dial { from: 1 },
                R::Flush,
            ],
            |s| s.supersedes >= 1,
        );
    }
    out
}
