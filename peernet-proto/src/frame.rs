//! Frames: the length-prefixed units every message travels in
//! (PROTOCOL.md section 1).
//!
//! ```text
//! | len: u32, big-endian | body: len bytes |      1 <= len <= max_frame_len
//! ```
//!
//! [`FrameDecoder`] cuts a byte stream that arrives split or coalesced in any
//! way into frame bodies; [`encode_frame`] writes one frame.

use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the frame header (the big-endian `u32` body length).
pub const FRAME_HEADER_LEN: usize = 4;

/// Default limit on a frame body: 1 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 20;

/// The most a split frame's buffer starts with beyond the bytes that came
/// with its header: what a peer commits of our memory by announcing a
/// large frame it does not send. The buffer then doubles as body bytes
/// arrive, up to the frame's length.
const FIRST_BODY_ROOM: usize = 64 * 1024;

/// Why a frame header was rejected. Either error ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announced an empty body.
    #[error("frame: length 0")]
    Empty,
    /// The header announced a body over the limit.
    #[error("frame: length {len} is over the limit of {max}")]
    TooLarge {
        /// The announced body length.
        len: u32,
        /// The limit in force when the header arrived.
        max: u32,
    },
    /// A split frame's buffer would grow past what the connection may
    /// hold now (a handshake's room in the node's
    /// `Config::max_handshake_bytes`): its bytes are refused, not buffered.
    #[error("frame: {need} bytes to buffer, over the {room} the connection may hold")]
    OverBudget {
        /// The buffer the frame's bytes so far need.
        need: usize,
        /// What the connection could still hold.
        room: usize,
    },
}

#[derive(Debug)]
enum State {
    /// Collecting the 4 header bytes; `have` of them are in `buf`.
    Header {
        buf: [u8; FRAME_HEADER_LEN],
        have: u8,
    },
    /// Header accepted; collecting a body of `len` bytes. `buf` stays
    /// unallocated until a body byte has to be kept across calls, so a body
    /// that arrives whole in the next input is still returned zero-copy.
    Body { len: usize, buf: Vec<u8> },
    /// A header was rejected. The stream has no resynchronisation point, so
    /// the decoder never recovers.
    Failed(FrameError),
}

/// Incremental frame decoder: feed it whatever the transport delivered, get
/// back whole frame bodies.
///
/// Frames that lie wholly inside one input are returned as zero-copy slices
/// of it. Only a frame split across inputs is copied, into a buffer that
/// grows with the bytes received (64 KiB, then doubling, never past the
/// frame's length): a header announcing a large frame commits at most
/// 64 KiB until its bytes come. A bad header (length 0 or over the limit)
/// is rejected as soon as its 4 bytes are known, before anything is
/// buffered or allocated for the body.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_len: u32,
    /// What a split frame's buffer starts with ([`FIRST_BODY_ROOM`]
    /// unless the connection asks for less).
    first_room: usize,
    /// The most a split frame's buffer may grow to (`usize::MAX` unless
    /// the connection asks for less): beyond, [`FrameError::OverBudget`].
    max_room: usize,
    state: State,
}

impl Default for FrameDecoder {
    /// A decoder with [`DEFAULT_MAX_FRAME_LEN`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

/// Where [`FrameDecoder::decode_in_place`] found a frame's body.
pub(crate) enum Frame {
    /// The first `len` bytes of the input.
    InPlace(usize),
    /// Split across inputs, so assembled in a buffer of its own.
    Assembled(BytesMut),
}

impl FrameDecoder {
    /// A decoder that accepts bodies of `1..=max_frame_len` bytes.
    pub fn new(max_frame_len: u32) -> Self {
        FrameDecoder {
            max_frame_len,
            first_room: FIRST_BODY_ROOM,
            max_room: usize::MAX,
            state: State::Header {
                buf: [0; FRAME_HEADER_LEN],
                have: 0,
            },
        }
    }

    /// The current limit on a frame body.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Changes the limit; it applies from the next frame header on. (The
    /// handshake uses a tiny limit, then raises it.)
    ///
    /// A header that is complete already was checked against the old limit
    /// and its frame is still delivered; a header still incomplete is checked
    /// against the new one.
    pub fn set_max_frame_len(&mut self, max: u32) {
        self.max_frame_len = max;
    }

    /// What a split frame's buffer starts with beyond the bytes that came
    /// with its header (`None`: the default, 64 KiB): less for a peer
    /// that has proven nothing yet, so that its header alone commits
    /// little. From the next frame on.
    pub(crate) fn set_first_room(&mut self, room: Option<usize>) {
        self.first_room = room.unwrap_or(FIRST_BODY_ROOM);
    }

    /// The most a split frame's buffer may grow to, from now on: what
    /// would need more fails the decoder with [`FrameError::OverBudget`]
    /// before it allocates (a handshake's room in the node's budget).
    pub(crate) fn set_max_room(&mut self, room: usize) {
        self.max_room = room;
    }

    /// Bytes the buffer of a split frame has allocated (its capacity: what
    /// it holds of our memory, at least [`FrameDecoder::buffered_len`]
    /// less the header).
    pub(crate) fn held(&self) -> usize {
        match &self.state {
            State::Body { buf, .. } => buf.capacity(),
            State::Header { .. } | State::Failed(_) => 0,
        }
    }

    /// Takes bytes from the front of `input` and returns the next complete
    /// frame body, or `Ok(None)` when all of `input` was consumed and more
    /// bytes are needed. Call repeatedly until `Ok(None)`.
    ///
    /// A frame wholly inside `input` is returned zero-copy (a slice of
    /// `input`); only a frame split across calls is assembled in an internal
    /// buffer, which grows with the bytes received and never past the
    /// frame's length (see [`FrameDecoder`]). A header with
    /// `len == 0` or `len > max_frame_len` is rejected as soon as its 4 bytes
    /// are known, before anything is buffered or allocated for the body.
    /// After an error the decoder stays failed and returns the same error
    /// again; `input` is then left as it is.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        Ok(match self.decode_in_place(input)? {
            None => None,
            Some(Frame::InPlace(len)) => Some(input.split_to(len)),
            Some(Frame::Assembled(body)) => Some(body.freeze()),
        })
    }

    /// [`FrameDecoder::decode`] on a mutable buffer: the body comes out
    /// mutable and unshared, to be decrypted in place (version-2 records),
    /// with whether it is a buffer of its own (assembled from several
    /// inputs, exactly its length) rather than a part of `input`'s.
    pub(crate) fn decode_mut(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<(BytesMut, bool)>, FrameError> {
        Ok(match self.decode_in_place(input)? {
            None => None,
            Some(Frame::InPlace(len)) => Some((input.split_to(len), false)),
            Some(Frame::Assembled(body)) => Some((body, true)),
        })
    }

    /// [`FrameDecoder::decode`] without slicing out a frame that lies
    /// wholly in `input`: its body is left at the front of `input` for the
    /// caller to read and then `advance` past. The endpoint decodes
    /// envelopes straight from the received chunk this way; a `Bytes` per
    /// frame would cost two atomic reference-count updates on the chunk
    /// for each envelope.
    pub(crate) fn decode_in_place<B>(&mut self, input: &mut B) -> Result<Option<Frame>, FrameError>
    where
        B: Buf + core::ops::Deref<Target = [u8]>,
    {
        loop {
            match &mut self.state {
                State::Failed(err) => return Err(*err),
                State::Header { buf, have } => {
                    let len = if *have == 0 && input.len() >= FRAME_HEADER_LEN {
                        input.get_u32()
                    } else {
                        let take = (FRAME_HEADER_LEN - usize::from(*have)).min(input.len());
                        let start = usize::from(*have);
                        buf[start..start + take].copy_from_slice(&input[..take]);
                        input.advance(take);
                        // `take` is at most 4.
                        *have += take as u8;
                        if usize::from(*have) < FRAME_HEADER_LEN {
                            return Ok(None);
                        }
                        u32::from_be_bytes(*buf)
                    };
                    let len = self.check(len)?;
                    if input.len() >= len {
                        self.reset();
                        return Ok(Some(Frame::InPlace(len)));
                    }
                    self.state = State::Body {
                        len,
                        buf: Vec::new(),
                    };
                }
                State::Body { len, buf } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    if buf.is_empty() && input.len() >= *len {
                        let len = *len;
                        self.reset();
                        return Ok(Some(Frame::InPlace(len)));
                    }
                    let take = (*len - buf.len()).min(input.len());
                    let room = if buf.is_empty() {
                        // Room for what came, and at least the first room
                        // (FIRST_BODY_ROOM): a header alone commits no more.
                        input.len().max(self.first_room).min(*len)
                    } else if buf.capacity() - buf.len() < take {
                        // Doubles, never past the frame's length (`len` is
                        // the peer's). A reallocation, which for large
                        // buffers moves pages rather than bytes.
                        (buf.len() + take).max(buf.capacity() * 2).min(*len)
                    } else {
                        buf.capacity()
                    };
                    // What this input needs is refused past the room; the
                    // first room and the doubling are only cut to it.
                    let need = buf.len() + take;
                    if need > buf.capacity() && need > self.max_room {
                        let err = FrameError::OverBudget {
                            need,
                            room: self.max_room,
                        };
                        self.state = State::Failed(err);
                        return Err(err);
                    }
                    let room = room.min(self.max_room).max(need);
                    // (`reserve_exact`, as `reserve` may round up further)
                    buf.reserve_exact(room - buf.len());
                    buf.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if buf.len() < *len {
                        return Ok(None);
                    }
                    // (no copy: the vector's allocation becomes the frame's)
                    let frame = BytesMut::from(Bytes::from(core::mem::take(buf)));
                    self.reset();
                    return Ok(Some(Frame::Assembled(frame)));
                }
            }
        }
    }

    /// Bytes currently held for a partial frame (header bytes + body bytes so
    /// far). Never more than `4 + max_frame_len`, where the limit is the one
    /// in force when the frame's header completed.
    pub fn buffered_len(&self) -> usize {
        match &self.state {
            State::Header { have, .. } => usize::from(*have),
            State::Body { buf, .. } => FRAME_HEADER_LEN + buf.len(),
            State::Failed(_) => 0,
        }
    }

    /// Validates a complete header, failing the decoder for good if it is bad.
    fn check(&mut self, len: u32) -> Result<usize, FrameError> {
        let err = if len == 0 {
            FrameError::Empty
        } else if len > self.max_frame_len {
            FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            }
        } else {
            return Ok(len as usize);
        };
        self.state = State::Failed(err);
        Err(err)
    }

    fn reset(&mut self) {
        self.state = State::Header {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        };
    }
}

/// Appends one frame, header + `body`, to `out`.
///
/// The caller has checked the length against its `max_frame_len`; `body`
/// must not be empty (checked in debug builds only).
///
/// # Panics
///
/// If `body` is longer than `u32::MAX` bytes, which no frame limit allows.
pub fn encode_frame(body: &[u8], out: &mut BytesMut) {
    debug_assert!(!body.is_empty(), "a frame body is never empty");
    let len = u32::try_from(body.len()).expect("frame body longer than u32::MAX bytes");
    out.reserve(FRAME_HEADER_LEN + body.len());
    out.put_u32(len);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn frame(body: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        encode_frame(body, &mut out);
        out.freeze()
    }

    fn decode_all(dec: &mut FrameDecoder, mut input: Bytes) -> Result<Vec<Bytes>, FrameError> {
        let mut frames = Vec::new();
        while let Some(f) = dec.decode(&mut input)? {
            frames.push(f);
        }
        assert!(input.is_empty());
        Ok(frames)
    }

    #[test]
    fn encode_writes_big_endian_header() {
        assert_eq!(&frame(b"\x80")[..], b"\x00\x00\x00\x01\x80");
        let body = vec![7u8; 0x0102];
        let f = frame(&body);
        assert_eq!(&f[..4], &[0, 0, 1, 2]);
        assert_eq!(&f[4..], &body[..]);
    }

    #[test]
    fn len_exactly_max_is_accepted() {
        let mut dec = FrameDecoder::new(8);
        let frames = decode_all(&mut dec, frame(&[1; 8])).unwrap();
        assert_eq!(frames, vec![Bytes::from_static(&[1; 8])]);
        assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn len_max_plus_one_is_rejected_at_the_header() {
        let mut dec = FrameDecoder::new(8);
        let mut input = Bytes::from_static(&[0, 0, 0, 9]);
        assert_eq!(
            dec.decode(&mut input),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        );
        assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn zero_len_is_rejected() {
        let mut dec = FrameDecoder::new(8);
        let mut input = Bytes::from_static(&[0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(dec.decode(&mut input), Err(FrameError::Empty));
    }

    #[test]
    fn failure_is_sticky() {
        let mut dec = FrameDecoder::new(8);
        let mut input = Bytes::from_static(&[0, 0, 0, 0]);
        assert_eq!(dec.decode(&mut input), Err(FrameError::Empty));
        let mut good = frame(b"ok");
        assert_eq!(dec.decode(&mut good), Err(FrameError::Empty));
        assert_eq!(good.len(), 6, "a failed decoder consumes nothing");
    }

    #[test]
    fn split_header_is_checked_once_complete() {
        let mut dec = FrameDecoder::new(8);
        for b in [0u8, 0, 0] {
            assert_eq!(dec.decode(&mut Bytes::copy_from_slice(&[b])), Ok(None));
        }
        assert_eq!(dec.buffered_len(), 3);
        assert_eq!(
            dec.decode(&mut Bytes::from_static(&[100, 1, 2])),
            Err(FrameError::TooLarge { len: 100, max: 8 })
        );
    }

    #[test]
    fn body_after_split_header_is_zero_copy() {
        let mut dec = FrameDecoder::new(8);
        assert_eq!(dec.decode(&mut Bytes::from_static(&[0, 0])), Ok(None));
        assert_eq!(dec.decode(&mut Bytes::from_static(&[0, 3])), Ok(None));
        assert_eq!(dec.buffered_len(), 4);
        let mut rest = Bytes::from_static(b"abcX");
        let base = rest.as_ptr();
        let body = dec.decode(&mut rest).unwrap().unwrap();
        assert_eq!(&body[..], b"abc");
        assert_eq!(body.as_ptr(), base);
        assert_eq!(&rest[..], b"X");
    }

    #[test]
    fn whole_frame_is_a_slice_of_the_input() {
        let input = Bytes::from(vec![0, 0, 0, 2, b'h', b'i', 0, 0, 0, 1, b'!']);
        let base = input.as_ptr() as usize;
        let mut dec = FrameDecoder::new(8);
        let frames = decode_all(&mut dec, input).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].as_ptr() as usize, base + 4);
        assert_eq!(frames[1].as_ptr() as usize, base + 10);
    }

    #[test]
    fn split_body_buffer_is_exactly_the_frame() {
        let mut dec = FrameDecoder::new(100);
        let wire = frame(&[5; 50]);
        assert_eq!(dec.decode(&mut wire.slice(..10)), Ok(None));
        assert_eq!(dec.buffered_len(), 10);
        match &dec.state {
            State::Body { buf, .. } => assert_eq!(buf.capacity(), 50),
            other => panic!("unexpected state {other:?}"),
        }
        let body = dec.decode(&mut wire.slice(10..)).unwrap().unwrap();
        assert_eq!(&body[..], &[5; 50]);
        assert_eq!(dec.buffered_len(), 0);
    }

    /// A header announcing a frame of 4 MiB with one body byte commits
    /// 64 KiB, not 4 MiB; the buffer grows as the bytes come, by doubling,
    /// and ends exactly the frame's length.
    #[test]
    fn a_large_split_frame_grows_with_its_bytes() {
        let len = 4 << 20;
        let mut dec = FrameDecoder::new(len as u32);
        let wire = frame(&vec![9; len]);
        let capacity = |dec: &FrameDecoder| match &dec.state {
            State::Body { buf, .. } => buf.capacity(),
            other => panic!("unexpected state {other:?}"),
        };
        assert_eq!(dec.decode(&mut wire.slice(..5)), Ok(None));
        assert_eq!(capacity(&dec), FIRST_BODY_ROOM);
        let mut at = 5;
        let mut grew = Vec::new();
        while at + 10_000 < wire.len() {
            assert_eq!(dec.decode(&mut wire.slice(at..at + 10_000)), Ok(None));
            at += 10_000;
            let received = at - FRAME_HEADER_LEN;
            let cap = capacity(&dec);
            assert!(cap >= received && cap <= len, "{cap} for {received}");
            assert!(
                cap <= (2 * received).max(FIRST_BODY_ROOM),
                "{cap} for {received}"
            );
            if grew.last() != Some(&cap) {
                grew.push(cap);
            }
        }
        assert_eq!(grew.first(), Some(&FIRST_BODY_ROOM));
        let body = dec.decode(&mut wire.slice(at..)).unwrap().unwrap();
        assert_eq!(body.len(), len);
        assert!(body.iter().all(|b| *b == 9));
        // doubled from 64 KiB: 64, 128, …, 2,048 KiB, then exactly 4 MiB
        assert_eq!(grew.len(), 7, "{grew:?}");
        assert_eq!(grew.last(), Some(&len));
    }

    /// A split frame's buffer grows only within the room the connection
    /// gives it (its doubling cut to the room, not refused): the read
    /// that needs more fails the decoder before it allocates, whatever
    /// was kept, and `held` is what it allocated.
    #[test]
    fn a_split_frame_grows_only_within_its_room() {
        let len = 1 << 20;
        let mut dec = FrameDecoder::new(len as u32);
        dec.set_max_room(256 * 1024);
        let wire = frame(&vec![3; len]);
        assert_eq!(dec.held(), 0);
        assert_eq!(dec.decode(&mut wire.slice(..100_000)), Ok(None));
        assert_eq!(dec.held(), 100_000 - FRAME_HEADER_LEN);
        assert_eq!(dec.decode(&mut wire.slice(100_000..200_000)), Ok(None));
        assert_eq!(dec.held(), 200_000 - FRAME_HEADER_LEN);
        // doubling would pass the room: it grows to the room instead
        assert_eq!(dec.decode(&mut wire.slice(200_000..250_000)), Ok(None));
        assert_eq!(dec.held(), 256 * 1024);
        let over = FrameError::OverBudget {
            need: 300_000 - FRAME_HEADER_LEN,
            room: 256 * 1024,
        };
        assert_eq!(dec.decode(&mut wire.slice(250_000..300_000)), Err(over));
        assert_eq!(dec.held(), 0, "failed: nothing kept");
        // a frame that comes whole needs no room
        let mut dec = FrameDecoder::new(len as u32);
        dec.set_max_room(0);
        assert_eq!(decode_all(&mut dec, wire.clone()).unwrap().len(), 1);
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut wire = BytesMut::new();
        encode_frame(b"hello", &mut wire);
        encode_frame(b"w", &mut wire);
        let wire = wire.freeze();
        let mut dec = FrameDecoder::new(8);
        let mut frames = Vec::new();
        for i in 0..wire.len() {
            let mut one = wire.slice(i..=i);
            while let Some(f) = dec.decode(&mut one).unwrap() {
                frames.push(f);
            }
            assert!(one.is_empty());
        }
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"hello"), Bytes::from_static(b"w")]
        );
    }

    #[test]
    fn set_max_frame_len_applies_from_the_next_header() {
        let mut dec = FrameDecoder::new(4);
        assert_eq!(dec.max_frame_len(), 4);
        let wire = frame(&[1; 4]);
        // Header complete under the old limit: the frame is still delivered.
        assert_eq!(dec.decode(&mut wire.slice(..6)), Ok(None));
        dec.set_max_frame_len(2);
        assert_eq!(
            dec.decode(&mut wire.slice(6..)),
            Ok(Some(Bytes::from_static(&[1; 4])))
        );
        // The next header is held to the new limit.
        assert_eq!(
            dec.decode(&mut frame(&[1; 3])),
            Err(FrameError::TooLarge { len: 3, max: 2 })
        );

        let mut dec = FrameDecoder::new(4);
        assert_eq!(
            decode_all(&mut dec, frame(&[1; 5])),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        );
        let mut dec = FrameDecoder::new(4);
        dec.set_max_frame_len(DEFAULT_MAX_FRAME_LEN);
        assert_eq!(decode_all(&mut dec, frame(&[1; 5])).unwrap().len(), 1);
    }

    #[test]
    fn empty_input_needs_more() {
        let mut dec = FrameDecoder::default();
        assert_eq!(dec.max_frame_len(), DEFAULT_MAX_FRAME_LEN);
        assert_eq!(dec.decode(&mut Bytes::new()), Ok(None));
        assert_eq!(dec.buffered_len(), 0);
    }
}
