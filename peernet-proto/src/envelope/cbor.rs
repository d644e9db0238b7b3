//! The CBOR subset envelopes use (RFC 8949): definite lengths, unsigned
//! integers, byte and text strings, one array. Writers emit shortest-form
//! heads; readers accept any integer width and refuse everything else
//! before minicbor sees it.

use bytes::{BufMut, Bytes};
use minicbor::Decoder;

use super::EnvelopeError;

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

/// What the next item's initial byte says about it, for one expected major
/// type.
pub(super) enum Head {
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
pub(super) fn head(d: &Decoder<'_>, major: u8) -> Head {
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

pub(super) fn uint(d: &mut Decoder<'_>, field: &'static str) -> Result<u64, EnvelopeError> {
    match head(d, MAJOR_UINT) {
        Head::Definite => d.u64().map_err(|_| EnvelopeError::Truncated),
        Head::Indefinite | Head::Other => Err(EnvelopeError::WrongType {
            field,
            expected: EXPECT_UINT,
        }),
        Head::End => Err(EnvelopeError::Truncated),
    }
}

/// Payloads up to this many bytes are copied out of the received buffer
/// rather than sliced from it (see [`hold`]).
pub(crate) const COPY_UP_TO: usize = 16 * 1024;

/// A payload as held after decoding: a slice of `body` (no copy) when it
/// is large, both absolutely and as a share of `body`; otherwise a copy of
/// its own.
///
/// A slice keeps the whole received buffer alive for as long as the
/// application holds the payload: a 5-byte argument sliced from a 64 KiB
/// read chunk pinned 61 KiB. Copying what is at most 16 KiB, or less than
/// a quarter of the buffer it came from, bounds what any payload pins to
/// four times its own size (plus 16 KiB), at the price of a copy that is
/// cheap at that size; large payloads, which make up most of their buffer,
/// stay zero-copy.
fn hold(body: &Bytes, payload: &[u8]) -> Bytes {
    if payload.len() <= COPY_UP_TO || payload.len().saturating_mul(4) < body.len() {
        Bytes::copy_from_slice(payload)
    } else {
        body.slice_ref(payload)
    }
}

pub(super) fn byte_string(
    d: &mut Decoder<'_>,
    body: &Bytes,
    field: &'static str,
) -> Result<Bytes, EnvelopeError> {
    match head(d, MAJOR_BYTES) {
        Head::Definite => d
            .bytes()
            .map(|b| hold(body, b))
            .map_err(|_| EnvelopeError::Truncated),
        Head::Indefinite => Err(EnvelopeError::IndefiniteLength),
        Head::Other => Err(EnvelopeError::WrongType {
            field,
            expected: EXPECT_BYTES,
        }),
        Head::End => Err(EnvelopeError::Truncated),
    }
}

pub(super) fn text<'b>(d: &mut Decoder<'b>, field: &'static str) -> Result<&'b str, EnvelopeError> {
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
