//! The CBOR subset envelopes use (RFC 8949): definite lengths, unsigned
//! integers, byte and text strings, one array. Writers emit shortest-form
//! heads; the reader accepts any integer width and refuses everything else.

use bytes::{BufMut, Bytes};

use super::EnvelopeError;
use super::arena::Arena;

// CBOR major types, already shifted into the top 3 bits of the initial byte.
pub(super) const MAJOR_UINT: u8 = 0x00;
pub(super) const MAJOR_BYTES: u8 = 0x40;
pub(super) const MAJOR_TEXT: u8 = 0x60;
pub(super) const MAJOR_ARRAY: u8 = 0x80;

pub(super) const EXPECT_UINT: &str = "an unsigned integer";
pub(super) const EXPECT_BYTES: &str = "a byte string";
pub(super) const EXPECT_TEXT: &str = "a text string";

/// Length of a CBOR item head carrying `n` in shortest form.
pub(super) const fn uint_len(n: u64) -> usize {
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
pub(super) const fn string_len(len: usize) -> usize {
    uint_len(len as u64) + len
}

pub(super) fn put_head<B: BufMut>(out: &mut B, major: u8, n: u64) {
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

pub(super) fn put_string<B: BufMut>(out: &mut B, major: u8, s: &[u8]) {
    put_head(out, major, s.len() as u64);
    out.put_slice(s);
}

/// Payloads up to this many bytes are copied out of the received buffer
/// rather than sliced from it (see [`hold`]).
pub(crate) const COPY_UP_TO: usize = 16 * 1024;

/// Which large payloads (see [`hold`]) may be slices of the body they
/// are decoded from; the others are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slicing {
    /// None: the body shares a buffer whose size the decoder cannot see
    /// (a frame in place in a read chunk).
    Never,
    /// A CALL's arguments and a REPLY's body, of a body that is a buffer
    /// of its own (a frame assembled from several reads); a SEND's
    /// arguments are copied, as the driver gives back only their length
    /// once its handler is done (`Endpoint::send_done`), which must then
    /// be all they keep alive.
    NotSends,
    /// Any, of a body that is a buffer of its own
    /// ([`super::Envelope::decode`]).
    Any,
}

impl Slicing {
    /// A connection's: `own` says whether the body is a buffer of its own.
    pub(crate) fn on_connection(own: bool) -> Slicing {
        match own {
            true => Slicing::NotSends,
            false => Slicing::Never,
        }
    }
}

/// A payload as held after decoding: a slice of `body` (no copy) when
/// `slices` says `body` is a buffer of its own and the payload is large,
/// both absolutely and as more than half of `body`; otherwise a copy, in
/// `arena` if there is one (with how many bytes of the record follow:
/// small payloads of one record share a buffer, see `arena.rs`), else of
/// its own.
///
/// A slice keeps the whole buffer alive for as long as the application
/// holds the payload: a 5-byte argument sliced from a 64 KiB read chunk
/// pinned 61 KiB. So only a buffer of its own is sliced (a frame
/// assembled from several reads, or the body a caller hands to
/// [`super::Envelope::decode`]): a frame that came in place in a read
/// chunk shares an allocation whose size the decoder cannot see (a
/// driver's read buffer), and a 17 KiB argument sliced from a record of
/// 64 KiB kept all of it. And only a payload over half of its body is:
/// at most one per body, keeping alive at most twice its size, which
/// the connection charges to the byte budgets (`connection/session.rs`).
/// Copies are cheap at the sizes that come in place; large payloads,
/// which make up most of their buffer, stay zero-copy.
fn hold(body: &Bytes, payload: &[u8], arena: Option<(&mut Arena, usize)>, slices: bool) -> Bytes {
    if slices && payload.len() > COPY_UP_TO && payload.len().saturating_mul(2) > body.len() {
        return body.slice_ref(payload);
    }
    match arena {
        Some((arena, rest)) => arena.copy(payload, rest),
        None => Bytes::copy_from_slice(payload),
    }
}

/// Why an item's head could not be read as the expected major type.
enum Bad {
    /// The input ends before the head does.
    End,
    /// The expected type, with an indefinite length.
    Indefinite,
    /// Another type, or a reserved additional-information value.
    Other,
}

/// A cursor over `input`, reading the subset: each reader checks the
/// initial byte's major type, takes the argument in any width (1, 2, 4 or
/// 8 bytes after the initial byte, or the initial byte itself below 24),
/// and leaves the cursor after the item; after an error the envelope is
/// refused, so where the cursor stands no longer matters.
///
/// Hand-written rather than through `minicbor::Decoder`: four head forms
/// and a bounds check are all the subset needs. Under callgrind
/// (`peernet-bench --profile pipe-v2`, both sides of one 64-byte call) it
/// took decoding from 1,429 to 1,137 instructions per call.
pub(super) struct Reader<'b> {
    input: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    /// A cursor at `input[pos]`.
    pub(super) fn new(input: &'b [u8], pos: usize) -> Reader<'b> {
        Reader { input, pos }
    }

    /// Where the next item starts.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Reads the head of an item of `major` type; returns its argument.
    #[inline]
    fn head(&mut self, major: u8) -> Result<u64, Bad> {
        let &initial = self.input.get(self.pos).ok_or(Bad::End)?;
        if initial & 0xe0 != major {
            return Err(Bad::Other);
        }
        let width = match initial & 0x1f {
            small @ 0..=23 => {
                self.pos += 1;
                return Ok(u64::from(small));
            }
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err(Bad::Indefinite),
            _ => return Err(Bad::Other),
        };
        let from = self.pos + 1;
        let arg = self.input.get(from..from + width).ok_or(Bad::End)?;
        self.pos = from + width;
        Ok(arg.iter().fold(0, |n, &b| n << 8 | u64::from(b)))
    }

    /// Reads a definite-length array's head; returns its item count.
    #[inline]
    pub(super) fn array(&mut self) -> Result<u64, EnvelopeError> {
        self.head(MAJOR_ARRAY).map_err(|bad| match bad {
            Bad::End => EnvelopeError::Truncated,
            Bad::Indefinite => EnvelopeError::IndefiniteLength,
            Bad::Other => EnvelopeError::NotAnArray,
        })
    }

    /// Reads an unsigned integer.
    #[inline]
    pub(super) fn uint(&mut self, field: &'static str) -> Result<u64, EnvelopeError> {
        self.head(MAJOR_UINT).map_err(|bad| match bad {
            Bad::End => EnvelopeError::Truncated,
            Bad::Indefinite | Bad::Other => EnvelopeError::WrongType {
                field,
                expected: EXPECT_UINT,
            },
        })
    }

    /// Reads a definite-length string of `major` type; returns its bytes.
    fn string(
        &mut self,
        major: u8,
        field: &'static str,
        expected: &'static str,
    ) -> Result<&'b [u8], EnvelopeError> {
        let len = self.head(major).map_err(|bad| match bad {
            Bad::End => EnvelopeError::Truncated,
            Bad::Indefinite => EnvelopeError::IndefiniteLength,
            Bad::Other => EnvelopeError::WrongType { field, expected },
        })?;
        let from = self.pos;
        let left = self.input.len() - from;
        match usize::try_from(len) {
            Ok(len) if len <= left => {
                self.pos = from + len;
                Ok(&self.input[from..from + len])
            }
            _ => Err(EnvelopeError::Truncated),
        }
    }

    /// Reads a byte string, held as [`hold`] says (`slices`: `body` is a
    /// buffer of its own).
    pub(super) fn byte_string(
        &mut self,
        body: &Bytes,
        field: &'static str,
        arena: Option<(&mut Arena, usize)>,
        slices: bool,
    ) -> Result<Bytes, EnvelopeError> {
        let bytes = self.string(MAJOR_BYTES, field, EXPECT_BYTES)?;
        // what follows in the arena's scope: the rest of the item, and
        // what the caller says follows the item
        let rest = self.input.len() - self.pos;
        let arena = arena.map(|(arena, beyond)| (arena, rest.saturating_add(beyond)));
        Ok(hold(body, bytes, arena, slices))
    }

    /// Reads a text string (valid UTF-8).
    pub(super) fn text(&mut self, field: &'static str) -> Result<&'b str, EnvelopeError> {
        let bytes = self.string(MAJOR_TEXT, field, EXPECT_TEXT)?;
        core::str::from_utf8(bytes).map_err(|_| EnvelopeError::InvalidUtf8 { field })
    }
}
