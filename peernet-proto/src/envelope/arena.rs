//! Where the small payloads of one received record (version 2) or read
//! chunk (version 1) are copied to: a buffer of at most 4 KiB that the
//! payloads of its envelopes share, instead of an allocation each.
//!
//! Small payloads are copied out of the read buffer so that they do not
//! keep it alive (see `cbor::hold`). A copy of its own per payload cost an
//! allocation and a free each: under callgrind about 600 instructions of a
//! pipelined 64-byte call (an argument on one side, a reply body on the
//! other), some 7 % of it. Appending to a shared buffer costs a copy and
//! a reference count instead, and one allocation per buffer.
//!
//! The price is in what a payload keeps alive: one of at most
//! [`ARENA_MAX`] bytes pins the buffer it is in, at most [`ARENA_CHUNK`]
//! bytes of payloads of the same record or chunk, until it is dropped,
//! whatever became of its neighbours. The buffer is let go of when its
//! record or chunk is decoded, so nothing is kept on an idle connection;
//! a payload with no room for a second one after it (a sequential
//! call's) gets a copy of its own, as before, since sharing would cost an
//! allocation more than it saves.

use bytes::{Bytes, BytesMut};

/// The most one buffer holds.
pub(crate) const ARENA_CHUNK: usize = 4 * 1024;

/// Payloads up to this many bytes share a buffer; larger ones that are
/// copied get a buffer of their own (at most 8 of them fill one, so
/// sharing would save little and waste a buffer's tail).
pub(crate) const ARENA_MAX: usize = 512;

/// A new buffer is started only if at least this many bytes of the record
/// or chunk follow the payload: room for another envelope with a payload.
const ROOM_FOR_MORE: usize = 16;

/// The buffer being filled for one record (version 2) or one read chunk
/// (version 1, whose frames hold one envelope each).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    /// What is left of the buffer: the filled part was split off and
    /// frozen into the payloads, which share its allocation.
    free: BytesMut,
}

impl Arena {
    /// A copy of `payload`, in the current buffer or a new one (sized for
    /// the `rest` of the scope after it, up to [`ARENA_CHUNK`]); one of
    /// its own if it is over [`ARENA_MAX`], or if it does not fit and too
    /// little follows.
    pub(crate) fn copy(&mut self, payload: &[u8], rest: usize) -> Bytes {
        if payload.is_empty() {
            return Bytes::new();
        }
        if payload.len() > ARENA_MAX {
            return Bytes::copy_from_slice(payload);
        }
        if self.free.capacity() - self.free.len() < payload.len() {
            if rest < ROOM_FOR_MORE {
                return Bytes::copy_from_slice(payload);
            }
            let size = payload.len().saturating_add(rest).min(ARENA_CHUNK);
            self.free = BytesMut::with_capacity(size);
        }
        self.free.extend_from_slice(payload);
        self.free.split().freeze()
    }

    /// Lets go of the buffer (its record or chunk is done): only the
    /// payloads in it keep it alive now.
    #[inline]
    pub(crate) fn release(&mut self) {
        if self.free.capacity() != 0 {
            self.free = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn small_payloads_share_a_buffer_and_large_ones_do_not() {
        let mut arena = Arena::default();
        let a = arena.copy(b"first", 1000);
        let b = arena.copy(b"second", 1000);
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // consecutive in one allocation
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        let big = [3u8; ARENA_MAX + 1];
        let c = arena.copy(&big, 1000);
        assert_eq!(&c[..], &big[..]);
        let d = arena.copy(b"third", 1000);
        assert_eq!(
            b.as_ptr().wrapping_add(b.len()),
            d.as_ptr(),
            "the buffer goes on"
        );
        assert!(arena.copy(b"", 1000).is_empty());
    }

    #[test]
    fn a_last_payload_gets_its_own_copy() {
        let mut arena = Arena::default();
        let alone = arena.copy(b"reply", ROOM_FOR_MORE - 1);
        assert_eq!(&alone[..], b"reply");
        assert_eq!(arena.free.capacity(), 0, "no buffer started");
        // a buffer sized for what follows: the payload and the 20 bytes
        let first = arena.copy(b"call", 20);
        assert_eq!(arena.free.capacity(), 20);
        let last = arena.copy(b"more", 0);
        assert_eq!(
            first.as_ptr().wrapping_add(4),
            last.as_ptr(),
            "it fits, so shared"
        );
    }

    #[test]
    fn what_follows_the_item_in_its_scope_counts() {
        let mut arena = Arena::default();
        // the last payload of a frame, with more frames in its chunk (the
        // decoder adds the chunk's rest to the frame's)
        let first = arena.copy(b"call", 100);
        assert_eq!(arena.free.capacity(), 100, "sized for the chunk's rest");
        let next = arena.copy(b"next", 0);
        assert_eq!(first.as_ptr().wrapping_add(4), next.as_ptr());
    }

    #[test]
    fn a_payload_pins_at_most_one_buffer_of_arena_chunk() {
        let mut arena = Arena::default();
        let rest = 1 << 20;
        let first = arena.copy(&[1; ARENA_MAX], rest);
        let start = first.as_ptr() as usize;
        let per = ARENA_CHUNK / ARENA_MAX;
        let held: Vec<Bytes> = (0..2 * per)
            .map(|i| arena.copy(&[i as u8; ARENA_MAX], rest))
            .collect();
        let in_first = |b: &Bytes| (start..start + ARENA_CHUNK).contains(&(b.as_ptr() as usize));
        // the first buffer holds `per` payloads, the next ones go elsewhere
        assert_eq!(held.iter().filter(|b| in_first(b)).count(), per - 1);
        assert!(held[per..].iter().all(|b| !in_first(b)));
        assert_eq!(&held[per][..], &[per as u8; ARENA_MAX][..]);
    }
}
