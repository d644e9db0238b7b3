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
//! [`ARENA_MAX`] bytes pins the buffer it is in until it is dropped,
//! whatever became of its neighbours. So a payload goes only into a
//! buffer at most [`ARENA_SPREAD`] times its own length (at most
//! [`ARENA_CHUNK`] bytes); a smaller one gets a copy of its own. Without
//! that rule a peer could follow a 512-byte payload with a 1-byte one in
//! the same 4 KiB buffer (the rest of its record padded with anything),
//! let the first go (a fast handler, a reply to an unknown id) and have
//! the second pin 4,096 times its length: a CALL's or SEND's arguments
//! charged 1 byte to the byte budgets, or a result the application keeps,
//! holding 4 KiB each. The buffer is let go of when its
//! record or chunk is decoded, so nothing is kept on an idle connection;
//! a payload with no room for a second one after it (a sequential
//! call's) gets a copy of its own, as before, since sharing would cost an
//! allocation more than it saves.

use bytes::{Bytes, BytesMut};

/// A payload shares only a buffer at most this many times its length,
/// so that it keeps alive at most that much, whatever became of the
/// others in it.
pub(crate) const ARENA_SPREAD: usize = 8;

/// The most one buffer holds: [`ARENA_SPREAD`] times [`ARENA_MAX`].
pub(crate) const ARENA_CHUNK: usize = ARENA_SPREAD * ARENA_MAX;

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
    /// The size the buffer was made with: what each payload in it keeps
    /// alive.
    size: usize,
}

impl Arena {
    /// A copy of `payload`, in the current buffer or a new one (sized for
    /// the `rest` of the scope after it, up to [`ARENA_SPREAD`] times the
    /// payload); one of its own if it is over [`ARENA_MAX`], if the
    /// current buffer is over [`ARENA_SPREAD`] times its length, or if it
    /// does not fit and too little follows.
    pub(crate) fn copy(&mut self, payload: &[u8], rest: usize) -> Bytes {
        if payload.is_empty() {
            return Bytes::new();
        }
        if payload.len() > ARENA_MAX {
            return Bytes::copy_from_slice(payload);
        }
        let most = payload.len() * ARENA_SPREAD;
        if self.free.capacity() - self.free.len() < payload.len() {
            if rest < ROOM_FOR_MORE {
                return Bytes::copy_from_slice(payload);
            }
            self.size = payload.len().saturating_add(rest).min(most);
            debug_assert!(self.size <= ARENA_CHUNK);
            self.free = BytesMut::with_capacity(self.size);
        } else if self.size > most {
            // (too large a buffer for it to pin: the buffer stays for the
            // larger payloads that may follow)
            return Bytes::copy_from_slice(payload);
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
            self.size = 0;
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
        let first = arena.copy(&[1; 64], 100);
        assert_eq!(arena.free.capacity(), 100, "sized for the chunk's rest");
        let next = arena.copy(&[2; 64], 0);
        assert_eq!(first.as_ptr().wrapping_add(64), next.as_ptr());
    }

    /// Whether a payload lies in the buffer that `first` starts (the
    /// [`ARENA_CHUNK`] bytes from it).
    fn in_buffer_of(first: &Bytes) -> impl Fn(&Bytes) -> bool {
        let start = first.as_ptr() as usize;
        move |b: &Bytes| (start..start + ARENA_CHUNK).contains(&(b.as_ptr() as usize))
    }

    #[test]
    fn a_payload_pins_at_most_one_buffer_of_arena_chunk() {
        let mut arena = Arena::default();
        let rest = 1 << 20;
        let first = arena.copy(&[1; ARENA_MAX], rest);
        let per = ARENA_CHUNK / ARENA_MAX;
        let held: Vec<Bytes> = (0..2 * per)
            .map(|i| arena.copy(&[i as u8; ARENA_MAX], rest))
            .collect();
        let in_first = in_buffer_of(&first);
        // the first buffer holds `per` payloads, the next ones go elsewhere
        assert_eq!(held.iter().filter(|b| in_first(b)).count(), per - 1);
        assert!(held[per..].iter().all(|b| !in_first(b)));
        assert_eq!(&held[per][..], &[per as u8; ARENA_MAX][..]);
    }

    proptest::proptest! {
        /// Whatever the sizes, the room after each and where records
        /// end: a payload put in a shared buffer is in one of at most
        /// [`ARENA_SPREAD`] times its length, and reads back whole.
        #[test]
        fn no_payload_pins_more_than_spread_times_its_length(
            ops in proptest::collection::vec(
                (1..=ARENA_MAX + 64, 0..6000usize, proptest::prelude::any::<bool>()),
                1..200,
            ),
        ) {
            let mut arena = Arena::default();
            for (len, rest, record_ends) in ops {
                let payload = alloc::vec![len as u8; len];
                let copy = arena.copy(&payload, rest);
                proptest::prop_assert_eq!(&copy[..], &payload[..]);
                // (a payload in the current buffer ends where its free
                // part starts)
                let shared = copy.as_ptr().wrapping_add(len) == arena.free.as_ptr();
                if shared {
                    proptest::prop_assert!(
                        arena.size <= len * ARENA_SPREAD,
                        "{} bytes in a buffer of {}", len, arena.size
                    );
                }
                if record_ends {
                    arena.release();
                }
            }
        }
    }

    /// A small payload after a large one does not share its buffer: once
    /// the large one is dropped it would keep alive thousands of times
    /// its length (a 1-byte CALL argument charged 1 byte, pinning 4 KiB).
    #[test]
    fn a_payload_keeps_alive_at_most_spread_times_its_length() {
        let mut arena = Arena::default();
        let rest = 1 << 20;
        let large = arena.copy(&[7; ARENA_MAX], rest);
        let in_large = in_buffer_of(&large);
        for len in [1, 8, 63] {
            let small = arena.copy(&alloc::vec![1; len], rest);
            assert!(
                !in_large(&small),
                "a {len}-byte payload in a buffer of {ARENA_CHUNK}"
            );
        }
        // one of its size still shares it
        assert!(in_large(&arena.copy(&[8; ARENA_MAX], rest)));
        // and a small payload's own buffer is sized for its like
        let mut arena = Arena::default();
        let small = arena.copy(&[1; 4], rest);
        assert_eq!(arena.size, 4 * ARENA_SPREAD);
        let like = arena.copy(&[2; 4], rest);
        assert_eq!(small.as_ptr().wrapping_add(4), like.as_ptr());
        let larger = arena.copy(&[3; 64], rest);
        assert_eq!(arena.size, 64 * ARENA_SPREAD, "a new buffer for it");
        assert_eq!(&larger[..], &[3; 64][..]);
    }
}
