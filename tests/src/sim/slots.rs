//! The handshake slots (`Config::max_handshakes`) as the model checks
//! them (invariant `busy_only_when_every_slot_spoke`).
//!
//! Each node life keeps a [`Slots`] ledger of the connections it
//! accepted whose handshake has not ended: whether each holds a slot,
//! and whether it has delivered a complete frame yet (read from the bytes
//! the simulation handed the node: a 4-byte length, then that many
//! bytes). The rule is restated here from `Config::max_handshakes`' docs,
//! not taken from the core: a new connection takes a free slot, or else
//! the slot of the oldest holder that has delivered no complete frame
//! (which must end `Evicted`), or else is accepted `busy`; a `busy` one
//! takes a slot freed by the time its bytes come, or is refused `busy`.

use std::collections::{BTreeMap, BTreeSet};

use peernet_proto::{ConnId, HandshakeError, RejectCode};

use super::Sim;
use super::invariants::Invariant;
use super::node::NodeIx;

/// One accepted connection whose handshake has not ended.
#[derive(Debug)]
struct Held {
    /// Whether it holds a slot (it was not accepted `busy`).
    slot: bool,
    /// The first bytes it delivered, up to a frame header's 4.
    header: Vec<u8>,
    /// Bytes delivered so far.
    received: u64,
    /// A whole frame has come.
    spoke: bool,
}

/// What one node life's handshake slots hold.
#[derive(Debug, Default)]
pub struct Slots {
    /// Accepted connections whose handshake has not ended, in accept
    /// order (a node's ConnIds only grow).
    open: BTreeMap<ConnId, Held>,
    /// Connections the rule evicted that have not ended yet.
    evicting: BTreeSet<ConnId>,
}

impl Slots {
    /// `conn` was accepted with `max` slots: what is wrong, if an eviction
    /// the rule made at an earlier accept did not happen.
    pub fn accepted(&mut self, conn: ConnId, max: usize) -> Result<(), String> {
        if let Some(victim) = self.evicting.first() {
            return Err(format!("{victim} was not evicted when the slots were full"));
        }
        let holders = self.open.values().filter(|h| h.slot).count();
        let slot = if holders < max.max(1) {
            true
        } else if let Some((&oldest, _)) = self.open.iter().find(|(_, h)| h.slot && !h.spoke) {
            self.evicting.insert(oldest);
            true
        } else {
            false
        };
        self.open.insert(
            conn,
            Held {
                slot,
                header: Vec::new(),
                received: 0,
                spoke: false,
            },
        );
        Ok(())
    }

    /// `data` is about to be handed to the node on `conn`, which has
    /// `max` slots. A connection accepted `busy` takes a slot freed since
    /// (PROTOCOL.md 6.1 judges `busy` when the first frame comes).
    pub fn received(&mut self, conn: ConnId, data: &[u8], max: usize) {
        let holders = self.open.values().filter(|h| h.slot).count();
        let Some(held) = self.open.get_mut(&conn) else {
            return;
        };
        if !held.slot && !data.is_empty() && holders < max.max(1) {
            held.slot = true;
        }
        if held.spoke {
            return;
        }
        let need = 4 - held.header.len();
        held.header.extend(data.iter().take(need));
        held.received += data.len() as u64;
        if let Ok(header) = <[u8; 4]>::try_from(&held.header[..]) {
            held.spoke = held.received >= 4 + u64::from(u32::from_be_bytes(header));
        }
    }

    /// `conn`'s handshake ended, with `error` if it failed: what is wrong,
    /// if the ending breaks the rule.
    pub fn ended(&mut self, conn: ConnId, error: Option<&HandshakeError>) -> Result<(), String> {
        let Some(held) = self.open.remove(&conn) else {
            return Ok(());
        };
        let evicted = self.evicting.remove(&conn);
        match (error, evicted) {
            (Some(HandshakeError::Evicted), true) => Ok(()),
            (Some(HandshakeError::Evicted), false) => Err(format!(
                "{conn} evicted, but the rule evicts {}",
                self.evicting
                    .first()
                    .map_or("nothing".to_string(), |c| c.to_string())
            )),
            (_, true) => Err(format!(
                "{conn} (the oldest silent slot) was not evicted, and ended with {error:?}"
            )),
            (Some(HandshakeError::Refused(RejectCode::Busy)), _) if held.slot => Err(format!(
                "{conn} refused busy, but it took a slot (free, or a silent one's)"
            )),
            (None, _) if !held.slot => Err(format!("{conn} accepted busy, but established")),
            _ => Ok(()),
        }
    }
}

impl Sim {
    /// Node `n`'s handshake on `conn` ended, with `error` if it failed:
    /// its slot is checked.
    pub(super) fn slot_handshake_ended(
        &mut self,
        n: NodeIx,
        conn: ConnId,
        error: Option<&HandshakeError>,
    ) {
        if let Err(detail) = self.nodes[n].slots.ended(conn, error) {
            self.fail(
                Invariant::BusyOnlyWhenEverySlotSpoke,
                format!("n{n}: {detail}"),
            );
        }
    }
}
