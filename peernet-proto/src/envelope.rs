//! Envelopes: the messages of an established connection (PROTOCOL.md
//! section 3).
//!
//! Every frame body after the handshake is exactly one CBOR definite-length
//! array whose first item is an unsigned tag. [`Envelope::decode`] is strict
//! (anything else is a protocol error, reported as an [`EnvelopeError`]
//! whose `Display` is the GOODBYE reason) and zero-copy for payloads:
//! arguments and reply bodies are slices of the frame (handles, at most
//! 255 bytes and nearly always short, are stored inline; see [`Handle`]).
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
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use minicbor::Decoder;
use smol_str::SmolStr;

use crate::frame::FRAME_HEADER_LEN;

/// Longest handle name, in bytes.
pub const MAX_HANDLE_LEN: usize = 255;

const TAG_CALL: u64 = 0;
const TAG_REPLY: u64 = 1;
const TAG_SEND: u64 = 2;
const TAG_PING: u64 = 3;
const TAG_PONG: u64 = 4;
const TAG_GOODBYE: u64 = 5;
const TAG_CANCEL: u64 = 6;

// CBOR major types, already shifted into the top 3 bits of the initial byte.
const MAJOR_UINT: u8 = 0x00;
const MAJOR_BYTES: u8 = 0x40;
const MAJOR_TEXT: u8 = 0x60;
const MAJOR_ARRAY: u8 = 0x80;

const EXPECT_UINT: &str = "an unsigned integer";
const EXPECT_BYTES: &str = "a byte string";
const EXPECT_TEXT: &str = "a text string";

/// The name of a callable function on a peer: 1 to 255 bytes of UTF-8.
///
/// Stored as a [`SmolStr`]: a name of up to 23 bytes (nearly all of them)
/// lives inline, so making, cloning and dropping one neither allocates nor
/// touches a shared reference count (a slice of the received frame did, twice
/// per call); a longer one is one shared allocation. UTF-8 is checked once,
/// at construction, so reading it as `&str` costs nothing. Compares, orders and hashes exactly like its
/// `str`, so a `HashMap<Handle, _>` or `BTreeMap<Handle, _>` can be looked up
/// with a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handle(SmolStr);

/// Why a name is not a valid [`Handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHandle {
    /// The name is empty.
    #[error("empty handle")]
    Empty,
    /// The name is longer than [`MAX_HANDLE_LEN`] bytes.
    #[error("handle of {len} bytes, over the limit of 255")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name is not UTF-8.
    #[error("handle is not valid UTF-8")]
    InvalidUtf8,
}

pub(crate) const fn check_handle_len(len: usize) -> Result<(), InvalidHandle> {
    if len == 0 {
        Err(InvalidHandle::Empty)
    } else if len > MAX_HANDLE_LEN {
        Err(InvalidHandle::TooLong { len })
    } else {
        Ok(())
    }
}

impl Handle {
    /// A handle named `name` (copied).
    pub fn new(name: &str) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        Ok(Handle(SmolStr::new(name)))
    }

    /// A handle for a constant name, without copying.
    ///
    /// # Panics
    ///
    /// If `name` is empty or longer than [`MAX_HANDLE_LEN`] bytes; in a
    /// `const` item that is a compile error.
    pub const fn from_static(name: &'static str) -> Handle {
        assert!(!name.is_empty(), "empty handle");
        assert!(name.len() <= MAX_HANDLE_LEN, "handle over 255 bytes");
        Handle(SmolStr::new_static(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length of the name in bytes (1 to [`MAX_HANDLE_LEN`]).
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

// Exactly like `str`, which the `Borrow<str>` contract requires.
impl Hash for Handle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Handle {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Handle {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Handle {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Handle {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.as_str()).finish()
    }
}

impl TryFrom<&str> for Handle {
    type Error = InvalidHandle;
    fn try_from(name: &str) -> Result<Handle, InvalidHandle> {
        Handle::new(name)
    }
}

impl TryFrom<String> for Handle {
    type Error = InvalidHandle;
    /// Copies a name of up to 23 bytes inline; a longer one moves into
    /// one shared allocation.
    fn try_from(name: String) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        Ok(Handle(SmolStr::from(name)))
    }
}

impl TryFrom<Bytes> for Handle {
    type Error = InvalidHandle;
    /// Checks length and UTF-8, then stores the name like
    /// [`Handle::new`].
    fn try_from(name: Bytes) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        let name = core::str::from_utf8(&name).map_err(|_| InvalidHandle::InvalidUtf8)?;
        Ok(Handle(SmolStr::new(name)))
    }
}

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
        /// The raw status code; [`ReplyStatus::from_code`] interprets it.
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
        /// The raw code; [`GoodbyeCode::from_code`] interprets it.
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
    /// Zero-copy: `handle`, `args` and `body` are slices of `body`; only a
    /// GOODBYE reason is copied (into a `String` no longer than the frame).
    /// Rejects, per PROTOCOL.md section 3, anything that is not exactly one
    /// definite-length array of the right shape. An `id` of 0 decodes: it is
    /// a protocol error, but the connection's to report. Never panics and
    /// never recurses, whatever the input.
    pub fn decode(body: &Bytes) -> Result<Envelope, EnvelopeError> {
        Envelope::decode_prefix(body, body.len())
    }

    /// Decodes the body `body[..len]` (`len` at most `body.len()`), whose
    /// byte strings become slices of `body`.
    pub(crate) fn decode_prefix(body: &Bytes, len: usize) -> Result<Envelope, EnvelopeError> {
        let mut d = Decoder::new(&body[..len]);
        let items = match head(&d, MAJOR_ARRAY) {
            Head::Definite => d
                .array()
                .map_err(|_| EnvelopeError::Truncated)?
                .ok_or(EnvelopeError::IndefiniteLength)?,
            Head::Indefinite => return Err(EnvelopeError::IndefiniteLength),
            Head::Other => return Err(EnvelopeError::NotAnArray),
            Head::End => return Err(EnvelopeError::Truncated),
        };
        if items == 0 {
            return Err(EnvelopeError::EmptyArray);
        }
        let tag = uint(&mut d, "tag")?;
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
                id: uint(&mut d, "id")?,
                handle: handle(&mut d)?,
                args: byte_string(&mut d, body, "args")?,
                timeout_ms: uint(&mut d, "timeout_ms")?,
            },
            TAG_REPLY => Envelope::Reply {
                id: uint(&mut d, "id")?,
                status: uint(&mut d, "status")?,
                body: byte_string(&mut d, body, "body")?,
            },
            TAG_SEND => Envelope::Send {
                handle: handle(&mut d)?,
                args: byte_string(&mut d, body, "args")?,
            },
            TAG_PING => Envelope::Ping {
                nonce: uint(&mut d, "nonce")?,
            },
            TAG_PONG => Envelope::Pong {
                nonce: uint(&mut d, "nonce")?,
            },
            TAG_GOODBYE => Envelope::Goodbye {
                code: uint(&mut d, "code")?,
                reason: text(&mut d, "reason")?.into(),
            },
            _ => Envelope::Cancel {
                id: uint(&mut d, "id")?,
            },
        };
        if d.position() != len {
            return Err(EnvelopeError::TrailingBytes);
        }
        Ok(envelope)
    }

    /// Exact size of the CBOR body, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        // Array head and tag: at most 5 items and tags below 24, one byte each.
        2 + match self {
            Envelope::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => call_len(*id, handle.len(), args.len(), *timeout_ms),
            Envelope::Reply { id, status, body } => {
                uint_len(*id) + uint_len(*status) + string_len(body.len())
            }
            Envelope::Send { handle, args } => send_len(handle.len(), args.len()),
            Envelope::Ping { nonce } | Envelope::Pong { nonce } => uint_len(*nonce),
            Envelope::Goodbye { code, reason } => uint_len(*code) + string_len(reason.len()),
            Envelope::Cancel { id } => uint_len(*id),
        }
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
        put_frame(out, self.encoded_len(), max_frame_len, |out| {
            self.put_body(out)
        })
    }

    /// The CBOR body alone (for tests and fuzzers; the connection uses
    /// [`Envelope::encode_frame`]).
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.encoded_len());
        self.put_body(&mut body);
        body
    }

    // Encoded by hand rather than through `minicbor::Encoder`: the heads are
    // trivial, writing straight into a `BufMut` has no error path, and
    // `encoded_len` mirrors this byte for byte.
    fn put_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Envelope::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => put_call(out, *id, handle.as_bytes(), args, *timeout_ms),
            Envelope::Reply { id, status, body } => {
                out.put_slice(&[MAJOR_ARRAY | 4, MAJOR_UINT | TAG_REPLY as u8]);
                put_head(out, MAJOR_UINT, *id);
                put_head(out, MAJOR_UINT, *status);
                put_string(out, MAJOR_BYTES, body);
            }
            Envelope::Send { handle, args } => put_send(out, handle.as_bytes(), args),
            Envelope::Ping { nonce } => {
                out.put_slice(&[MAJOR_ARRAY | 2, MAJOR_UINT | TAG_PING as u8]);
                put_head(out, MAJOR_UINT, *nonce);
            }
            Envelope::Pong { nonce } => {
                out.put_slice(&[MAJOR_ARRAY | 2, MAJOR_UINT | TAG_PONG as u8]);
                put_head(out, MAJOR_UINT, *nonce);
            }
            Envelope::Goodbye { code, reason } => {
                out.put_slice(&[MAJOR_ARRAY | 3, MAJOR_UINT | TAG_GOODBYE as u8]);
                put_head(out, MAJOR_UINT, *code);
                put_string(out, MAJOR_TEXT, reason.as_bytes());
            }
            Envelope::Cancel { id } => {
                out.put_slice(&[MAJOR_ARRAY | 2, MAJOR_UINT | TAG_CANCEL as u8]);
                put_head(out, MAJOR_UINT, *id);
            }
        }
    }
}

/// Appends the frame of a CALL whose handle is a checked name (see
/// [`check_handle_len`]), exactly as [`Envelope::encode_frame`] would, but
/// without building a [`Handle`]: the caller's `&str` is copied straight
/// into `out`, once, instead of into a fresh handle first.
pub(crate) fn encode_call_frame(
    out: &mut BytesMut,
    max_frame_len: u32,
    (id, handle, args, timeout_ms): (u64, &str, &[u8], u64),
) -> Result<(), EnvelopeTooLarge> {
    let len = 2 + call_len(id, handle.len(), args.len(), timeout_ms);
    put_frame(out, len, max_frame_len, |out| {
        put_call(out, id, handle.as_bytes(), args, timeout_ms)
    })
}

/// [`encode_call_frame`] for a SEND.
pub(crate) fn encode_send_frame(
    out: &mut BytesMut,
    max_frame_len: u32,
    handle: &str,
    args: &[u8],
) -> Result<(), EnvelopeTooLarge> {
    let len = 2 + send_len(handle.len(), args.len());
    put_frame(out, len, max_frame_len, |out| {
        put_send(out, handle.as_bytes(), args)
    })
}

/// Appends a frame whose body is `len` bytes written by `put_body`, or
/// leaves `out` untouched if `len` is over `max_frame_len`.
fn put_frame(
    out: &mut BytesMut,
    len: usize,
    max_frame_len: u32,
    put_body: impl FnOnce(&mut BytesMut),
) -> Result<(), EnvelopeTooLarge> {
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
    put_body(out);
    debug_assert_eq!(out.len() - start, FRAME_HEADER_LEN + len);
    Ok(())
}

// The CALL and SEND bodies (less array head and tag in the lengths),
// shared by `Envelope` and the borrowed encoders above.

const fn call_len(id: u64, handle_len: usize, args_len: usize, timeout_ms: u64) -> usize {
    uint_len(id) + string_len(handle_len) + string_len(args_len) + uint_len(timeout_ms)
}

const fn send_len(handle_len: usize, args_len: usize) -> usize {
    string_len(handle_len) + string_len(args_len)
}

fn put_call<B: BufMut>(out: &mut B, id: u64, handle: &[u8], args: &[u8], timeout_ms: u64) {
    out.put_slice(&[MAJOR_ARRAY | 5, MAJOR_UINT | TAG_CALL as u8]);
    put_head(out, MAJOR_UINT, id);
    put_string(out, MAJOR_TEXT, handle);
    put_string(out, MAJOR_BYTES, args);
    put_head(out, MAJOR_UINT, timeout_ms);
}

fn put_send<B: BufMut>(out: &mut B, handle: &[u8], args: &[u8]) {
    out.put_slice(&[MAJOR_ARRAY | 3, MAJOR_UINT | TAG_SEND as u8]);
    put_string(out, MAJOR_TEXT, handle);
    put_string(out, MAJOR_BYTES, args);
}

/// Length of a CBOR item head carrying `n` in shortest form.
const fn uint_len(n: u64) -> usize {
    if n < 24 {
        1
    } else if n <= 0xff {
        2
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Length of a byte or text string of `len` bytes, head included.
const fn string_len(len: usize) -> usize {
    uint_len(len as u64) + len
}

fn put_head<B: BufMut>(out: &mut B, major: u8, n: u64) {
    if n < 24 {
        out.put_u8(major | n as u8);
    } else if n <= 0xff {
        out.put_slice(&[major | 24, n as u8]);
    } else if n <= 0xffff {
        out.put_u8(major | 25);
        out.put_u16(n as u16);
    } else if n <= 0xffff_ffff {
        out.put_u8(major | 26);
        out.put_u32(n as u32);
    } else {
        out.put_u8(major | 27);
        out.put_u64(n);
    }
}

fn put_string<B: BufMut>(out: &mut B, major: u8, s: &[u8]) {
    put_head(out, major, s.len() as u64);
    out.put_slice(s);
}

/// What the next item's initial byte says about it, for one expected major
/// type.
enum Head {
    /// The expected type, definite length (or any integer width).
    Definite,
    /// The expected type, indefinite length.
    Indefinite,
    /// Any other type, or a reserved additional-information value.
    Other,
    /// No bytes left.
    End,
}

// The readers classify the initial byte themselves before minicbor reads the
// item: that leaves running out of input as minicbor's only possible failure
// (its type-mismatch errors would allocate a message), and skips its
// `datatype()`, whose `Result` carries minicbor's large error type and costs
// more than the whole check.
fn head(d: &Decoder<'_>, major: u8) -> Head {
    match d.input().get(d.position()) {
        None => Head::End,
        Some(&b) if b & 0xe0 != major => Head::Other,
        Some(&b) => match b & 0x1f {
            0..=27 => Head::Definite,
            31 => Head::Indefinite,
            _ => Head::Other,
        },
    }
}

fn uint(d: &mut Decoder<'_>, field: &'static str) -> Result<u64, EnvelopeError> {
    match head(d, MAJOR_UINT) {
        Head::Definite => d.u64().map_err(|_| EnvelopeError::Truncated),
        Head::Indefinite | Head::Other => Err(EnvelopeError::WrongType {
            field,
            expected: EXPECT_UINT,
        }),
        Head::End => Err(EnvelopeError::Truncated),
    }
}

fn byte_string(
    d: &mut Decoder<'_>,
    body: &Bytes,
    field: &'static str,
) -> Result<Bytes, EnvelopeError> {
    match head(d, MAJOR_BYTES) {
        Head::Definite => d
            .bytes()
            .map(|b| body.slice_ref(b))
            .map_err(|_| EnvelopeError::Truncated),
        Head::Indefinite => Err(EnvelopeError::IndefiniteLength),
        Head::Other => Err(EnvelopeError::WrongType {
            field,
            expected: EXPECT_BYTES,
        }),
        Head::End => Err(EnvelopeError::Truncated),
    }
}

fn text<'b>(d: &mut Decoder<'b>, field: &'static str) -> Result<&'b str, EnvelopeError> {
    match head(d, MAJOR_TEXT) {
        Head::Definite => d.str().map_err(|e| {
            if e.is_end_of_input() {
                EnvelopeError::Truncated
            } else {
                EnvelopeError::InvalidUtf8 { field }
            }
        }),
        Head::Indefinite => Err(EnvelopeError::IndefiniteLength),
        Head::Other => Err(EnvelopeError::WrongType {
            field,
            expected: EXPECT_TEXT,
        }),
        Head::End => Err(EnvelopeError::Truncated),
    }
}

fn handle(d: &mut Decoder<'_>) -> Result<Handle, EnvelopeError> {
    let name = text(d, "handle")?;
    check_handle_len(name.len())?;
    Ok(Handle(SmolStr::new(name)))
}

wire_code! {
    /// REPLY status codes (PROTOCOL.md section 3.1).
    pub enum ReplyStatus: u64 {
        /// `ok`: the body is the handler's result.
        Ok = 0 => "ok",
        /// `no_such_handle`: the handle is not exposed (default deny).
        NoSuchHandle = 1 => "no_such_handle",
        /// `forbidden`: exposed, but this caller is not authorized.
        Forbidden = 2 => "forbidden",
        /// `handler_error`: the body is the handler's own error bytes.
        HandlerError = 3 => "handler_error",
        /// `handler_panicked`: the handler crashed; the body is empty or a
        /// short UTF-8 note.
        HandlerPanicked = 4 => "handler_panicked",
        /// `overloaded`: too many calls in flight from this connection.
        Overloaded = 5 => "overloaded",
        /// `shutting_down`: the callee is closing and takes no new calls.
        ShuttingDown = 6 => "shutting_down",
        /// `too_large`: the handler's result does not fit in one frame.
        TooLarge = 7 => "too_large",
    }
    unknown => HandlerError,
    "The status for a code; an unknown code is `HandlerError`, as the protocol tells a caller to treat it."
}

wire_code! {
    /// GOODBYE codes (PROTOCOL.md section 3.3).
    pub enum GoodbyeCode: u64 {
        /// `normal`: the sender closes on purpose.
        Normal = 0 => "normal",
        /// `superseded`: another connection between the same peers replaces this one.
        Superseded = 1 => "superseded",
        /// `revoked`: the receiver was removed from the sender's trust list.
        Revoked = 2 => "revoked",
        /// `protocol_error`: the receiver broke the protocol; the reason says how.
        ProtocolError = 3 => "protocol_error",
        /// `idle_timeout`: nothing arrived for `idle_timeout`.
        IdleTimeout = 4 => "idle_timeout",
    }
    unknown => Normal,
    "The code's meaning; an unknown code is `Normal`, as the protocol says."
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn decode_hex(hex: &str) -> Result<Envelope, EnvelopeError> {
        Envelope::decode(&Bytes::from(hex::decode(hex).unwrap()))
    }

    fn call(id: u64, args: &'static [u8], timeout_ms: u64) -> Envelope {
        Envelope::Call {
            id,
            handle: Handle::from_static("echo"),
            args: Bytes::from_static(args),
            timeout_ms,
        }
    }

    fn call_to(handle: &str) -> Envelope {
        Envelope::Call {
            id: 1,
            handle: Handle::new(handle).unwrap(),
            args: Bytes::new(),
            timeout_ms: 0,
        }
    }

    #[test]
    fn handle_limits() {
        assert_eq!(Handle::new(""), Err(InvalidHandle::Empty));
        assert!(Handle::new(&"a".repeat(255)).is_ok());
        assert_eq!(
            Handle::new(&"a".repeat(256)),
            Err(InvalidHandle::TooLong { len: 256 })
        );
        assert_eq!(
            Handle::try_from(Bytes::from_static(b"\xc3\x28")),
            Err(InvalidHandle::InvalidUtf8)
        );
        let h = Handle::try_from(String::from("store.put")).unwrap();
        assert_eq!(h, "store.put");
        assert_eq!(h.to_string(), "store.put");
        assert_eq!(alloc::format!("{h:?}"), "Handle(\"store.put\")");
        assert_eq!(h.len(), 9);
    }

    #[test]
    #[should_panic(expected = "empty handle")]
    fn from_static_rejects_empty() {
        let _ = Handle::from_static("");
    }

    #[cfg(feature = "std")]
    #[test]
    fn handle_hashes_and_orders_like_str() {
        use core::hash::BuildHasher;
        let s = std::hash::RandomState::new();
        let h = Handle::from_static("ping");
        assert_eq!(s.hash_one(&h), s.hash_one("ping"));
        let mut names = vec![
            Handle::from_static("b"),
            Handle::from_static("ab"),
            Handle::from_static("a"),
        ];
        names.sort();
        assert_eq!(names, ["a", "ab", "b"]);
        let map: std::collections::HashMap<Handle, u8> = [(h, 1)].into_iter().collect();
        assert_eq!(map.get("ping"), Some(&1));
    }

    #[test]
    fn payloads_are_slices_of_the_frame_and_handles_inline() {
        let body = Bytes::from(call(1, b"hi", 5000).to_body());
        let range = body.as_ptr_range();
        let Envelope::Call { handle, args, .. } = Envelope::decode(&body).unwrap() else {
            panic!("not a call");
        };
        assert!(range.contains(&args.as_ptr()));
        // the handle lives in the `Handle` itself, not in the frame
        let handle_at = handle.as_bytes().as_ptr();
        assert!(!range.contains(&handle_at));
        let inline = (&raw const handle).cast::<u8>();
        let size = core::mem::size_of::<Handle>();
        assert!((inline..inline.wrapping_add(size)).contains(&handle_at));
        // a long name is stored once, and still compares like its `str`
        let long = "x".repeat(MAX_HANDLE_LEN);
        let body = Bytes::from(call_to(&long).to_body());
        let Envelope::Call { handle, .. } = Envelope::decode(&body).unwrap() else {
            panic!("not a call");
        };
        assert_eq!(handle, long.as_str());
    }

    #[test]
    fn integer_boundaries_round_trip_in_shortest_form() {
        for (n, len) in [
            (0u64, 1),
            (23, 1),
            (24, 2),
            (255, 2),
            (256, 3),
            (65535, 3),
            (65536, 5),
            (u32::MAX as u64, 5),
            (u32::MAX as u64 + 1, 9),
            (u64::MAX, 9),
        ] {
            let ping = Envelope::Ping { nonce: n };
            let body = ping.to_body();
            assert_eq!(body.len(), 2 + len, "nonce {n}");
            assert_eq!(ping.encoded_len(), body.len());
            assert_eq!(Envelope::decode(&Bytes::from(body)), Ok(ping));
        }
    }

    #[test]
    fn non_shortest_integers_are_accepted() {
        // [3, 5] with the nonce as a 2-byte uint: wasteful, not invalid.
        assert_eq!(decode_hex("8203190005"), Ok(Envelope::Ping { nonce: 5 }));
    }

    #[test]
    fn error_reasons() {
        let cases: &[(&str, EnvelopeError, &str)] = &[
            ("05", EnvelopeError::NotAnArray, "envelope: not an array"),
            ("", EnvelopeError::Truncated, "envelope: truncated"),
            ("80", EnvelopeError::EmptyArray, "envelope: empty array"),
            (
                "820701",
                EnvelopeError::UnknownTag(7),
                "envelope: unknown tag 7",
            ),
            (
                "840001646563686f40",
                EnvelopeError::WrongLength {
                    tag: 0,
                    expected: 5,
                    got: 4,
                },
                "envelope: tag 0 takes 5 items, got 4",
            ),
            (
                "846463616c6c01646563686f40",
                EnvelopeError::WrongType {
                    field: "tag",
                    expected: EXPECT_UINT,
                },
                "envelope: tag is not an unsigned integer",
            ),
            (
                "850001446563686f4000",
                EnvelopeError::WrongType {
                    field: "handle",
                    expected: EXPECT_TEXT,
                },
                "envelope: handle is not a text string",
            ),
            (
                "850020646563686f4000",
                EnvelopeError::WrongType {
                    field: "id",
                    expected: EXPECT_UINT,
                },
                "envelope: id is not an unsigned integer",
            ),
            (
                "840101f540",
                EnvelopeError::WrongType {
                    field: "status",
                    expected: EXPECT_UINT,
                },
                "envelope: status is not an unsigned integer",
            ),
            (
                "8305004178",
                EnvelopeError::WrongType {
                    field: "reason",
                    expected: EXPECT_TEXT,
                },
                "envelope: reason is not a text string",
            ),
            (
                "9f0301ff",
                EnvelopeError::IndefiniteLength,
                "envelope: indefinite-length item",
            ),
            (
                "850001646563686f5f4100ff00",
                EnvelopeError::IndefiniteLength,
                "envelope: indefinite-length item",
            ),
            (
                "82030100",
                EnvelopeError::TrailingBytes,
                "envelope: bytes left over after the array",
            ),
            (
                "850001646563686f4661626364",
                EnvelopeError::Truncated,
                "envelope: truncated",
            ),
            (
                "850001646563686f5b0000000100000000",
                EnvelopeError::Truncated,
                "envelope: truncated",
            ),
            (
                "850001604000",
                EnvelopeError::InvalidHandle(InvalidHandle::Empty),
                "envelope: empty handle",
            ),
            (
                "85000162c3284000",
                EnvelopeError::InvalidUtf8 { field: "handle" },
                "envelope: handle is not valid UTF-8",
            ),
            (
                "83050162c328",
                EnvelopeError::InvalidUtf8 { field: "reason" },
                "envelope: reason is not valid UTF-8",
            ),
            // A CBOR tag (major type 6) where the envelope tag belongs.
            (
                "82c10301",
                EnvelopeError::WrongType {
                    field: "tag",
                    expected: EXPECT_UINT,
                },
                "envelope: tag is not an unsigned integer",
            ),
            // Reserved additional-information values 28..30.
            (
                "821c",
                EnvelopeError::WrongType {
                    field: "tag",
                    expected: EXPECT_UINT,
                },
                "envelope: tag is not an unsigned integer",
            ),
            ("9c", EnvelopeError::NotAnArray, "envelope: not an array"),
        ];
        for (hex, err, reason) in cases {
            assert_eq!(decode_hex(hex).as_ref(), Err(err), "{hex}");
            assert_eq!(err.to_string(), *reason, "{hex}");
        }
    }

    #[test]
    fn encode_frame_respects_the_limit() {
        let env = call(1, &[0; 100], 0);
        let len = env.encoded_len();
        let mut out = BytesMut::from(&b"xy"[..]);
        assert_eq!(
            env.encode_frame(&mut out, len as u32 - 1),
            Err(EnvelopeTooLarge {
                len,
                max: len as u32 - 1
            })
        );
        assert_eq!(&out[..], b"xy");
        env.encode_frame(&mut out, len as u32).unwrap();
        assert_eq!(out.len(), 2 + 4 + len);
        assert_eq!(&out[2..6], &(len as u32).to_be_bytes());
        assert_eq!(&out[6..], &env.to_body()[..]);
    }

    #[test]
    fn status_and_goodbye_codes() {
        for code in 0..8 {
            assert_eq!(ReplyStatus::from_code(code).code(), code);
        }
        assert_eq!(ReplyStatus::from_code(8), ReplyStatus::HandlerError);
        assert_eq!(ReplyStatus::try_from_code(u64::MAX), None);
        assert_eq!(ReplyStatus::NoSuchHandle.to_string(), "no_such_handle");
        assert_eq!(ReplyStatus::HandlerPanicked.name(), "handler_panicked");
        assert_eq!(ReplyStatus::ShuttingDown.name(), "shutting_down");
        assert_eq!(ReplyStatus::TooLarge.name(), "too_large");
        for code in 0..5 {
            assert_eq!(GoodbyeCode::from_code(code).code(), code);
        }
        assert_eq!(GoodbyeCode::from_code(5), GoodbyeCode::Normal);
        assert_eq!(GoodbyeCode::ProtocolError.to_string(), "protocol_error");
        assert_eq!(GoodbyeCode::IdleTimeout.name(), "idle_timeout");
    }
}
