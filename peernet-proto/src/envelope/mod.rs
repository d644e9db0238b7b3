//! Envelopes: the messages of an established connection (PROTOCOL.md
//! section 3).
//!
//! Every frame body after the handshake is exactly one CBOR definite-length
//! array whose first item is an unsigned tag. [`Envelope::decode`] is strict
//! (anything else is a protocol error, reported as an [`EnvelopeError`]
//! whose `Display` is the GOODBYE reason) and zero-copy for large payloads:
//! arguments and reply bodies over 16 KiB that make up more than half of
//! their buffer are slices of it (on a connection, only of a frame
//! assembled in a buffer of its own), smaller ones are copied so that
//! they do not keep a whole read buffer alive (handles, at most 255 bytes and nearly always
//! short, are stored inline; see [`Handle`]). On a connection, the
//! payloads of at most 512 bytes of one version-2 record, or of one
//! version-1 read chunk, are copied into one buffer of at most 4 KiB that
//! they share (`arena.rs`).
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use peernet_proto::envelope::{Envelope, Handle};
//! use peernet_proto::frame::{FrameDecoder, DEFAULT_MAX_FRAME_LEN};
//!
//! let call = Envelope::Call {
//!     id: 1,
//!     handle: Handle::from_static("echo"),
//!     args: Bytes::from_static(b"hi"),
//!     timeout_ms: 5000,
//! };
//! let mut wire = BytesMut::new();
//! call.encode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN).unwrap();
//!
//! let mut input = wire.freeze();
//! let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
//! let body = frames.decode(&mut input).unwrap().unwrap();
//! assert_eq!(Envelope::decode(&body).unwrap(), call);
//! ```

use alloc::string::String;
#[cfg(any(test, feature = "testkit"))]
use alloc::vec::Vec;

use bytes::{BufMut, Bytes, BytesMut};
use smol_str::SmolStr;

use crate::frame::FRAME_HEADER_LEN;

mod arena;
mod cbor;
mod handle;
#[cfg(test)]
mod tests;

pub(crate) use arena::Arena;
pub(crate) use cbor::Slicing;
use cbor::{
    MAJOR_ARRAY, MAJOR_BYTES, MAJOR_TEXT, MAJOR_UINT, Reader, put_head, put_string, string_len,
    uint_len,
};
pub(crate) use handle::check_handle_len;
pub use handle::{Handle, InvalidHandle, MAX_HANDLE_LEN};

/// Longest handle name, in bytes.
const TAG_CALL: u64 = 0;
const TAG_REPLY: u64 = 1;
const TAG_SEND: u64 = 2;
const TAG_PING: u64 = 3;
const TAG_PONG: u64 = 4;
const TAG_GOODBYE: u64 = 5;
const TAG_CANCEL: u64 = 6;

/// One message of an established connection (PROTOCOL.md section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// `[0, id, handle, args, timeout_ms]`: call `handle` with `args`.
    Call {
        /// The caller's request id; 0 is a protocol error, which the
        /// connection checks, not the decoder.
        id: u64,
        /// The function to call.
        handle: Handle,
        /// The arguments, opaque to the protocol.
        args: Bytes,
        /// How long the caller waits, in milliseconds; 0 means no limit.
        timeout_ms: u64,
    },
    /// `[1, id, status, body]`: the answer to the CALL with this `id`.
    Reply {
        /// The id of the CALL answered.
        id: u64,
        /// The raw status code; [`ReplyStatus::from_code`](crate::ReplyStatus::from_code) interprets it.
        status: u64,
        /// The result or error bytes, per `status`.
        body: Bytes,
    },
    /// `[2, handle, args]`: call `handle` and expect no answer.
    Send {
        /// The function to call.
        handle: Handle,
        /// The arguments, opaque to the protocol.
        args: Bytes,
    },
    /// `[3, nonce]`: liveness probe.
    Ping {
        /// Echoed back in the PONG.
        nonce: u64,
    },
    /// `[4, nonce]`: the answer to a PING.
    Pong {
        /// The PING's nonce.
        nonce: u64,
    },
    /// `[5, code, reason]`: the sender is closing the connection.
    Goodbye {
        /// The raw code; [`GoodbyeCode::from_code`](crate::GoodbyeCode::from_code) interprets it.
        code: u64,
        /// A human-readable reason.
        reason: String,
    },
    /// `[6, id]`: the caller no longer waits for this call.
    Cancel {
        /// The id of the CALL cancelled.
        id: u64,
    },
}

/// An envelope that does not fit in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("envelope of {len} bytes is over the frame limit of {max}")]
pub struct EnvelopeTooLarge {
    /// The envelope's encoded length (the frame body).
    pub len: usize,
    /// The frame limit it was checked against.
    pub max: u32,
}

/// Why a frame body is not an envelope. Each is a protocol error; its
/// `Display` is the short reason sent in GOODBYE `protocol_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The body is not a CBOR array.
    #[error("envelope: not an array")]
    NotAnArray,
    /// The array, or a string in it, has indefinite length.
    #[error("envelope: indefinite-length item")]
    IndefiniteLength,
    /// The array has no items, so not even a tag.
    #[error("envelope: empty array")]
    EmptyArray,
    /// The tag is not one of the 7 known.
    #[error("envelope: unknown tag {0}")]
    UnknownTag(u64),
    /// The array has the wrong number of items for its tag.
    #[error("envelope: tag {tag} takes {expected} items, got {got}")]
    WrongLength {
        /// The envelope's tag.
        tag: u64,
        /// How many items that tag takes, the tag included.
        expected: u64,
        /// How many the array claims.
        got: u64,
    },
    /// An item has the wrong CBOR type.
    #[error("envelope: {field} is not {expected}")]
    WrongType {
        /// The item, as named in PROTOCOL.md (`tag`, `id`, `handle`, ...).
        field: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// The frame goes on after the array.
    #[error("envelope: bytes left over after the array")]
    TrailingBytes,
    /// The frame ends inside an item, or an item claims more bytes than the
    /// frame holds.
    #[error("envelope: truncated")]
    Truncated,
    /// The handle is empty or too long.
    #[error("envelope: {0}")]
    InvalidHandle(InvalidHandle),
    /// A text item is not UTF-8.
    #[error("envelope: {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The item (`handle` or `reason`).
        field: &'static str,
    },
}

impl From<InvalidHandle> for EnvelopeError {
    fn from(e: InvalidHandle) -> Self {
        EnvelopeError::InvalidHandle(e)
    }
}

impl Envelope {
    /// Decodes one frame body.
    ///
    /// Zero-copy for large payloads: `args` and `body` over 16 KiB that are
    /// more than half of `body` are slices of it; smaller ones are copied,
    /// so a payload never pins more than twice its size of `body` (and
    /// what `body` itself keeps alive). A GOODBYE reason is copied (into a `String`
    /// no longer than the frame), a handle stored inline.
    /// Rejects, per PROTOCOL.md section 3, anything that is not exactly one
    /// definite-length array of the right shape. An `id` of 0 decodes: it is
    /// a protocol error, but the connection's to report. Never panics and
    /// never recurses, whatever the input.
    pub fn decode(body: &Bytes) -> Result<Envelope, EnvelopeError> {
        Envelope::decode_prefix(body, body.len(), None, Slicing::Any)
    }

    /// Decodes the body `body[..len]` (`len` at most `body.len()`), whose
    /// large byte strings become slices of `body` as `slices` allows
    /// (see `decode`), and the rest copies (into `arena` if there is
    /// one).
    pub(crate) fn decode_prefix(
        body: &Bytes,
        len: usize,
        arena: Option<(&mut Arena, usize)>,
        slices: Slicing,
    ) -> Result<Envelope, EnvelopeError> {
        let (envelope, end) = Envelope::decode_item(body, 0, len, arena, slices)?;
        if end != len {
            return Err(EnvelopeError::TrailingBytes);
        }
        Ok(envelope)
    }

    /// Decodes the one CBOR item that starts at `body[start]` and ends by
    /// `body[end]` (a record's plaintext holds several, one after
    /// another); returns it and where it ended. An item cut by `end` is
    /// `Truncated`.
    ///
    /// Small payloads are copied into `arena` when there is one (a
    /// connection's: see `arena.rs`), with how many bytes of the arena's
    /// scope follow the item (0 for a record's envelopes, the rest of the
    /// read chunk for a version-1 frame); else each into a buffer of its
    /// own. A large one is a slice of `body` only if `slices` allows it
    /// (`cbor::hold`).
    pub(crate) fn decode_item(
        body: &Bytes,
        start: usize,
        end: usize,
        arena: Option<(&mut Arena, usize)>,
        slices: Slicing,
    ) -> Result<(Envelope, usize), EnvelopeError> {
        let mut d = Reader::new(&body[..end], start);
        let items = d.array()?;
        if items == 0 {
            return Err(EnvelopeError::EmptyArray);
        }
        let tag = d.uint("tag")?;
        let expected = match tag {
            TAG_CALL => 5,
            TAG_REPLY => 4,
            TAG_SEND | TAG_GOODBYE => 3,
            TAG_PING | TAG_PONG | TAG_CANCEL => 2,
            _ => return Err(EnvelopeError::UnknownTag(tag)),
        };
        if items != expected {
            return Err(EnvelopeError::WrongLength {
                tag,
                expected,
                got: items,
            });
        }
        // Struct fields are evaluated in source order, which is wire order.
        let envelope = match tag {
            TAG_CALL => Envelope::Call {
                id: d.uint("id")?,
                handle: handle(&mut d)?,
                args: d.byte_string(body, "args", arena, slices != Slicing::Never)?,
                timeout_ms: d.uint("timeout_ms")?,
            },
            TAG_REPLY => Envelope::Reply {
                id: d.uint("id")?,
                status: d.uint("status")?,
                body: d.byte_string(body, "body", arena, slices != Slicing::Never)?,
            },
            TAG_SEND => Envelope::Send {
                handle: handle(&mut d)?,
                args: d.byte_string(body, "args", arena, slices == Slicing::Any)?,
            },
            TAG_PING => Envelope::Ping {
                nonce: d.uint("nonce")?,
            },
            TAG_PONG => Envelope::Pong {
                nonce: d.uint("nonce")?,
            },
            TAG_GOODBYE => Envelope::Goodbye {
                code: d.uint("code")?,
                reason: d.text("reason")?.into(),
            },
            _ => Envelope::Cancel { id: d.uint("id")? },
        };
        Ok((envelope, d.position()))
    }

    /// Exact size of the CBOR body, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        self.as_ref().body_len()
    }

    /// Appends one whole frame (4-byte big-endian length + CBOR body) to
    /// `out`, with definite lengths and shortest-form integers.
    ///
    /// If the body would be longer than `max_frame_len`, returns the error
    /// and leaves `out` untouched.
    pub fn encode_frame(
        &self,
        out: &mut BytesMut,
        max_frame_len: u32,
    ) -> Result<(), EnvelopeTooLarge> {
        self.as_ref().encode_frame(out, max_frame_len)
    }

    /// The CBOR body alone (for tests and fuzzers, behind the `testkit`
    /// feature; the connection uses [`Envelope::encode_frame`]).
    #[cfg(any(test, feature = "testkit"))]
    #[doc(hidden)]
    pub fn to_body(&self) -> Vec<u8> {
        let env = self.as_ref();
        let mut body = Vec::with_capacity(env.body_len());
        env.put_body(&mut body);
        body
    }

    /// The same envelope, borrowed: what the encoder reads.
    pub(crate) fn as_ref(&self) -> EnvelopeRef<'_> {
        match self {
            Envelope::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => EnvelopeRef::Call {
                id: *id,
                handle: handle.as_str(),
                args,
                timeout_ms: *timeout_ms,
            },
            Envelope::Reply { id, status, body } => EnvelopeRef::Reply {
                id: *id,
                status: *status,
                body,
            },
            Envelope::Send { handle, args } => EnvelopeRef::Send {
                handle: handle.as_str(),
                args,
            },
            Envelope::Ping { nonce } => EnvelopeRef::Ping { nonce: *nonce },
            Envelope::Pong { nonce } => EnvelopeRef::Pong { nonce: *nonce },
            Envelope::Goodbye { code, reason } => EnvelopeRef::Goodbye {
                code: *code,
                reason,
            },
            Envelope::Cancel { id } => EnvelopeRef::Cancel { id: *id },
        }
    }
}

/// An envelope to encode, its payloads borrowed: the one encoder every
/// outgoing envelope goes through. [`Envelope::encode_frame`] borrows
/// itself as one; the connection builds a CALL or SEND straight from the
/// caller's `&str` and `&[u8]`, so they are copied once, into the frame,
/// with no [`Handle`] made on the way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EnvelopeRef<'a> {
    Call {
        id: u64,
        handle: &'a str,
        args: &'a [u8],
        timeout_ms: u64,
    },
    Reply {
        id: u64,
        status: u64,
        body: &'a [u8],
    },
    Send {
        handle: &'a str,
        args: &'a [u8],
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Goodbye {
        code: u64,
        reason: &'a str,
    },
    Cancel {
        id: u64,
    },
}

impl EnvelopeRef<'_> {
    /// Exact size of the CBOR body.
    pub(crate) fn body_len(&self) -> usize {
        // Array head and tag: at most 5 items and tags below 24, one byte each.
        2 + match *self {
            EnvelopeRef::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => {
                uint_len(id)
                    + string_len(handle.len())
                    + string_len(args.len())
                    + uint_len(timeout_ms)
            }
            EnvelopeRef::Reply { id, status, body } => {
                uint_len(id) + uint_len(status) + string_len(body.len())
            }
            EnvelopeRef::Send { handle, args } => string_len(handle.len()) + string_len(args.len()),
            EnvelopeRef::Ping { nonce } | EnvelopeRef::Pong { nonce } => uint_len(nonce),
            EnvelopeRef::Goodbye { code, reason } => uint_len(code) + string_len(reason.len()),
            EnvelopeRef::Cancel { id } => uint_len(id),
        }
    }

    /// Appends one whole frame, or leaves `out` untouched if the body is
    /// over `max_frame_len`.
    pub(crate) fn encode_frame(
        &self,
        out: &mut BytesMut,
        max_frame_len: u32,
    ) -> Result<(), EnvelopeTooLarge> {
        let len = self.body_len();
        let frame_len = match u32::try_from(len) {
            Ok(l) if l <= max_frame_len => l,
            _ => {
                return Err(EnvelopeTooLarge {
                    len,
                    max: max_frame_len,
                });
            }
        };
        // One reservation up front, so writing the body never reallocates.
        out.reserve(FRAME_HEADER_LEN + len);
        let start = out.len();
        out.put_u32(frame_len);
        self.put_body(out);
        debug_assert_eq!(out.len() - start, FRAME_HEADER_LEN + len);
        Ok(())
    }

    /// Appends the CBOR body alone (a record's plaintext item), whose
    /// length `len` the caller has from [`EnvelopeRef::body_len`] (and
    /// has checked against the record's room).
    pub(crate) fn encode_item(&self, out: &mut BytesMut, len: usize) {
        debug_assert_eq!(len, self.body_len());
        out.reserve(len);
        let start = out.len();
        self.put_body(out);
        debug_assert_eq!(out.len() - start, len);
    }

    // Encoded by hand rather than through `minicbor::Encoder`: the heads are
    // trivial, writing straight into a `BufMut` has no error path, and
    // `body_len` mirrors this byte for byte.
    fn put_body<B: BufMut>(&self, out: &mut B) {
        let (items, tag) = match self {
            EnvelopeRef::Call { .. } => (5, TAG_CALL),
            EnvelopeRef::Reply { .. } => (4, TAG_REPLY),
            EnvelopeRef::Send { .. } => (3, TAG_SEND),
            EnvelopeRef::Ping { .. } => (2, TAG_PING),
            EnvelopeRef::Pong { .. } => (2, TAG_PONG),
            EnvelopeRef::Goodbye { .. } => (3, TAG_GOODBYE),
            EnvelopeRef::Cancel { .. } => (2, TAG_CANCEL),
        };
        out.put_slice(&[MAJOR_ARRAY | items, MAJOR_UINT | tag as u8]);
        match *self {
            EnvelopeRef::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => {
                put_head(out, MAJOR_UINT, id);
                put_string(out, MAJOR_TEXT, handle.as_bytes());
                put_string(out, MAJOR_BYTES, args);
                put_head(out, MAJOR_UINT, timeout_ms);
            }
            EnvelopeRef::Reply { id, status, body } => {
                put_head(out, MAJOR_UINT, id);
                put_head(out, MAJOR_UINT, status);
                put_string(out, MAJOR_BYTES, body);
            }
            EnvelopeRef::Send { handle, args } => {
                put_string(out, MAJOR_TEXT, handle.as_bytes());
                put_string(out, MAJOR_BYTES, args);
            }
            EnvelopeRef::Ping { nonce } | EnvelopeRef::Pong { nonce } => {
                put_head(out, MAJOR_UINT, nonce)
            }
            EnvelopeRef::Goodbye { code, reason } => {
                put_head(out, MAJOR_UINT, code);
                put_string(out, MAJOR_TEXT, reason.as_bytes());
            }
            EnvelopeRef::Cancel { id } => put_head(out, MAJOR_UINT, id),
        }
    }
}

fn handle(d: &mut Reader<'_>) -> Result<Handle, EnvelopeError> {
    let name = d.text("handle")?;
    check_handle_len(name.len())?;
    Ok(Handle(SmolStr::new(name)))
}
