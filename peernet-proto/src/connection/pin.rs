//! What an inbound argument keeps alive, for the byte budgets: its own
//! bytes, or the whole buffer of the frame it is a slice of.

use bytes::Bytes;

/// The buffer of its own an envelope was decoded from (a frame assembled
/// from several reads: version 1's frame, version 2's record): a payload
/// that is a slice of it keeps all of it alive (`envelope::cbor::hold`
/// slices only such a buffer, and in it only a payload over half of it),
/// and is charged so. Any other payload is a copy, which keeps alive its
/// own bytes (or, at most 512 bytes, a share of a record's arena of at
/// most 8 times its length, `envelope/arena.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pin {
    /// Where the body's bytes start, and how many there are.
    at: usize,
    len: usize,
    /// The whole buffer's size.
    buffer: usize,
}

impl Pin {
    /// `body`, whose buffer of its own holds `buffer` bytes.
    pub(super) fn new(body: &Bytes, buffer: usize) -> Pin {
        Pin {
            at: body.as_ptr() as usize,
            len: body.len(),
            buffer,
        }
    }

    /// Whether `payload`, decoded from `pin`'s body (if any), is a slice
    /// of it.
    pub(super) fn slices(pin: Option<Pin>, payload: &Bytes) -> bool {
        let at = payload.as_ptr() as usize;
        pin.is_some_and(|p| !payload.is_empty() && (p.at..p.at + p.len).contains(&at))
    }

    /// What `payload`, decoded from `pin`'s body (if any), keeps alive:
    /// the whole buffer if it is a slice of it, else its own length.
    pub(super) fn kept(pin: Option<Pin>, payload: &Bytes) -> usize {
        match pin {
            Some(p) if Pin::slices(pin, payload) => p.buffer.max(payload.len()),
            _ => payload.len(),
        }
    }
}
