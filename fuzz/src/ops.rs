//! The byte format of the op-stream targets (`source_limits`,
//! `supersede_race`): a header of fixed bytes, then ops, each an opcode
//! byte and its arguments. Bytes missing at the end read as 0, so every
//! input decodes; the corpus generator writes seeds with [`Writer`].

/// Reads an input front to back; past its end every read is 0.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { rest: data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let (first, rest) = self.rest.split_first().unwrap_or((&0, &[]));
        self.rest = rest;
        *first
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A length byte, then that many bytes (fewer at the end).
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8()).min(self.rest.len());
        let (bytes, rest) = self.rest.split_at(n);
        self.rest = rest;
        bytes
    }
}

/// Writes what [`Reader`] reads (for seeds).
#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Writer {
        self.0.push(v);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A length byte and the bytes (at most 255).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Writer {
        let v = &v[..v.len().min(255)];
        self.u8(v.len() as u8);
        self.0.extend_from_slice(v);
        self
    }
}

/// What the op-stream targets' worlds have in common: ops read from the
/// input and applied, and a wind-down that must leave nothing behind.
pub trait Driven {
    /// One step.
    type Op: Decode;
    /// Applies it (and routes what comes out).
    fn apply(&mut self, op: Self::Op);
    /// Delivers everything until nothing moves.
    fn flush(&mut self);
    /// Routes every node's outputs.
    fn pump(&mut self);
    /// The nodes.
    fn nodes(&mut self) -> &mut [crate::Node];
}

/// Applies at most `max` ops from `r`, then flushes.
pub fn play<W: Driven>(world: &mut W, r: &mut Reader<'_>, max: usize) {
    let mut ops = 0;
    while !r.is_empty() && ops < max {
        let op = W::Op::read(r);
        world.apply(op);
        ops += 1;
    }
    world.flush();
}

/// Ends everything: the transports of `raw` (node, conn) with no node at
/// the far end close, each node closes all, then every transport left
/// closes one by one through the world (so that the world sees the
/// events: `Node::finish` would keep them); then nothing may be left.
pub fn wind_down<W: Driven>(world: &mut W, raw: &[(usize, peernet_proto::ConnId)]) {
    for &(n, conn) in raw {
        world.nodes()[n].transport_closed(conn);
    }
    for n in 0..world.nodes().len() {
        let node = &mut world.nodes()[n];
        node.ep.close_all(node.now);
        world.flush();
    }
    for n in 0..world.nodes().len() {
        for conn in world.nodes()[n].model().open_conns() {
            world.nodes()[n].transport_closed(conn);
            world.pump();
        }
    }
    for n in world.nodes().iter() {
        n.model().check_all_done(&n.ep);
    }
}

/// An op that reads itself from an input.
pub trait Decode {
    /// Reads the next one.
    fn read(r: &mut Reader<'_>) -> Self;
}

/// Routes the outputs of three nodes over `net`, then, if `reads`, takes
/// what node `at` queued for its `raw` transports (no node at their far
/// end: a peer that reads everything).
pub fn pump_three(
    net: &mut crate::Net,
    nodes: &mut [crate::Node; 3],
    at: usize,
    raw: &[peernet_proto::ConnId],
    reads: bool,
) {
    for who in 0..3 {
        let [x, y, z] = nodes;
        net.pump(&mut [x, y, z], who);
    }
    for &c in raw.iter().filter(|_| reads) {
        if nodes[at].is_open(c) {
            nodes[at].take(c);
        }
    }
}
