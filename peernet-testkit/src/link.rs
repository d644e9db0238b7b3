//! A simulated transport between two endpoints: per direction, the bytes
//! in flight (delivered in chunks of any size, never reordered), the FIN
//! that travels behind the last of them, and a hold (nothing is delivered
//! while it is on: a reader that stalls, or a peer that vanished).

use std::collections::VecDeque;

use bytes::Bytes;
use peernet_proto::ConnId;

/// One direction of a [`Link`]: what travels towards one end.
#[derive(Debug, Default)]
pub struct Pipe {
    bytes: VecDeque<Bytes>,
    /// A FIN travels behind the bytes.
    pub fin: bool,
    /// While on, nothing (not even the FIN) is delivered.
    pub hold: bool,
}

impl Pipe {
    /// Queues bytes written by the other end.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.bytes.push_back(bytes);
        }
    }

    /// Bytes in flight.
    pub fn in_flight(&self) -> usize {
        self.bytes.iter().map(Bytes::len).sum()
    }

    /// Whether bytes are in flight.
    pub fn has_bytes(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// Takes up to `n` (at least 1) bytes of the oldest buffer in flight.
    pub fn pop(&mut self, n: usize) -> Option<Bytes> {
        let mut front = self.bytes.pop_front()?;
        let chunk = front.split_to(n.clamp(1, front.len()));
        if !front.is_empty() {
            self.bytes.push_front(front);
        }
        Some(chunk)
    }

    /// Drops everything in flight, the FIN included (the reader is gone).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fin = false;
    }
}

/// A transport between two nodes of a [`crate::World`]. Its two ends are
/// in node order (`nodes[0] < nodes[1]`), so in a two-node world end 0 is
/// node 0 (A) and end 1 node 1 (B), whoever dialed.
#[derive(Debug)]
pub struct Link {
    /// The nodes at either end.
    pub nodes: [usize; 2],
    /// The node that dialed.
    pub dialer: usize,
    /// Each end's connection id (`None`: nobody accepted).
    pub conn: [Option<ConnId>; 2],
    /// `to[e]` carries bytes towards end `e`.
    pub to: [Pipe; 2],
    /// End `e`'s endpoint is done with the transport.
    pub closed: [bool; 2],
    /// End `e`'s endpoint has bytes its driver did not take yet.
    pub wants: [bool; 2],
}

impl Link {
    /// A link between `dialer` (its connection `out`) and `target` (its
    /// connection `inn`, if it accepted).
    pub fn new(dialer: usize, out: ConnId, target: usize, inn: Option<ConnId>) -> Link {
        let (nodes, conn) = if dialer < target {
            ([dialer, target], [Some(out), inn])
        } else {
            ([target, dialer], [inn, Some(out)])
        };
        Link {
            nodes,
            dialer,
            conn,
            to: [Pipe::default(), Pipe::default()],
            closed: [
                inn.is_none() && dialer > target,
                inn.is_none() && dialer < target,
            ],
            wants: [false; 2],
        }
    }

    /// The end at which `node` is.
    pub fn end_of(&self, node: usize) -> Option<usize> {
        self.nodes.iter().position(|n| *n == node)
    }

    /// End 0's connection (node A's in a pair).
    pub fn a(&self) -> ConnId {
        self.conn[0].expect("end 0 has a connection")
    }

    /// End 1's connection (node B's in a pair).
    pub fn b(&self) -> ConnId {
        self.conn[1].expect("end 1 has a connection")
    }

    /// End `e` closed: what travels towards it is dropped, and a FIN
    /// follows its `last` bytes to the other end.
    pub fn close_end(&mut self, e: usize, last: Bytes) {
        self.closed[e] = true;
        self.wants[e] = false;
        self.to[e].clear();
        self.to[1 - e].push(last);
        self.to[1 - e].fin = true;
    }
}
