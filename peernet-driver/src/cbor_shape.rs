//! The shape of a CBOR body from a peer, checked before any decoder sees
//! it: exactly one well-formed item, nested at most [`MAX_CBOR_DEPTH`]
//! deep, whose items would not take much more memory decoded than the
//! body's bytes ([`MAX_CBOR_HEAP_PER_BYTE`]).
//!
//! The decoders the typed layers use (`minicbor`, `minicbor-serde`) build
//! values recursively, one stack frame per level of nesting, with no
//! bound of their own. A few kilobytes of nested arrays would overflow a
//! thread's stack, which aborts the whole process (a stack overflow is
//! not a panic). This walk is iterative: its memory is a counter per
//! open level, and it reads each byte at most once.
//!
//! A decoded value is also larger than its bytes: each element of an
//! array or a map takes its room in its collection's buffer, 24 bytes for
//! a `String` or a `Vec` that a one-byte empty string or array decodes
//! to. A body of 512 KiB of empty strings, decoded as a `Vec<String>`,
//! took 72 bytes of heap per byte at its peak (24 per element, up to
//! three times while the `Vec` grew: minicbor pushes one element at a
//! time), and the node's byte budgets count only the bytes
//! (`peernet-driver/tests/typed_heap.rs`). The walk charges each item the
//! room it would take decoded to the standard types and refuses a body
//! whose charge is over [`MAX_CBOR_HEAP_PER_BYTE`] bytes per byte plus
//! [`CBOR_HEAP_SLACK`]: an item in an array, or a map's value, is
//! charged 24 bytes if it is a string, an array, a map, a null or an
//! undefined (a `String`, a `Vec`, an `Option<String>`), 8 bytes if it
//! is anything else (a `u64`, an `f64`); a map's key 8 bytes (a struct's
//! field name takes no room); a tag nothing (the item it holds is
//! charged). What an item takes decoded depends on the type it decodes
//! to, which the check cannot see: these are the standard types' sizes.
//! A caller's replies are checked the same before they are decoded.

/// How deep a CBOR body from a peer may nest (arrays, maps, tags and
/// indefinite-length strings each open a level), as serde_json's
/// default recursion limit. A deeper body is refused before it is
/// decoded.
pub const MAX_CBOR_DEPTH: usize = 128;

/// How many bytes of room in a decoded value's collections a CBOR body
/// from a peer may take per byte of it (beyond [`CBOR_HEAP_SLACK`]), as
/// the check charges its items (the module's doc): a body over it is
/// refused before it is decoded.
///
/// So a request decoding to the standard types (strings, `Vec`s,
/// integers up to 64 bits, `f64`, `bool`, `Option`s of strings and
/// `Vec`s, structs and tuples of them)
/// takes at most 8 bytes of heap per byte of arguments for its elements,
/// plus the slack, times the room a `Vec` keeps beyond its elements (up
/// to twice as it grows by doubling, three times while it moves to a
/// doubled buffer, four times for one element, its least room being
/// four), plus its strings' own bytes (at most one per byte): at most
/// 33 bytes of heap per byte of arguments, plus 64 KiB, at its peak. It
/// was 72 (512 KiB of empty strings decoded as a `Vec<String>`), and 84
/// for arrays of one-element arrays of empty arrays;
/// `peernet-driver/tests/typed_heap.rs` measures both. The C allocator
/// adds its own header and rounding to each block (a one-byte buffer
/// takes 32 bytes of glibc's heap).
///
/// Elements larger than they are charged take more in proportion: an
/// `Option<u64>` or a `u128` (16 bytes from a one-byte integer: a
/// `Vec<Option<u64>>` took 48 bytes per byte at its peak), a map's
/// entries (a one-entry `BTreeMap` keeps a node of room for eleven, a
/// `HashMap` for four: 57 and 33 bytes per byte as `Vec`s of
/// `{"abc": "defgh"}`), and an application's own types (an `Option<T>`
/// decoded from a one-byte null takes `size_of::<Option<T>>()`).
///
/// The bodies it refuses are dense with one-byte items: more than about
/// a thousand empty strings, empty arrays or nulls, or more than a few
/// thousand one-byte strings or pairs of integers below 24, in one body.
/// Such data travels as a byte string.
pub const MAX_CBOR_HEAP_PER_BYTE: usize = 8;

/// The room the check allows a CBOR body's items beyond
/// [`MAX_CBOR_HEAP_PER_BYTE`] per byte, whatever its size: a body of at
/// most 1,024 bytes is never refused for its items' room (each byte is
/// charged at most 24).
pub const CBOR_HEAP_SLACK: usize = 16 * 1024;

/// What the check charges an item that decodes to a header of 24 bytes
/// (a string, an array, a map, a null or an undefined in an array).
const HEADER: usize = 24;

/// What the check charges any other item in an array or a map.
const SCALAR: usize = 8;

/// Why a CBOR body was refused before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborShapeError {
    /// The body nests deeper than [`MAX_CBOR_DEPTH`].
    #[error("CBOR nested deeper than {MAX_CBOR_DEPTH} levels")]
    TooDeep,
    /// The body ends inside an item.
    #[error("CBOR body ends inside an item")]
    Truncated,
    /// Bytes follow the body's one item.
    #[error("{0} bytes after the CBOR item")]
    Trailing(usize),
    /// Not well-formed CBOR (a reserved additional value, a break where
    /// none may be, an indefinite string of the wrong chunks).
    #[error("malformed CBOR")]
    Malformed,
    /// The body's items would take more room decoded than it may (its
    /// length times [`MAX_CBOR_HEAP_PER_BYTE`], plus [`CBOR_HEAP_SLACK`];
    /// the bytes allowed).
    #[error(
        "CBOR items too dense: they would take over {0} bytes decoded \
         ({MAX_CBOR_HEAP_PER_BYTE} per byte of the body, plus {CBOR_HEAP_SLACK})"
    )]
    TooDense(usize),
}

/// One open level: how many items it still holds (`None`: indefinite,
/// until a break), and for an indefinite string the major type its
/// chunks must have.
#[derive(Clone, Copy)]
struct Level {
    left: Option<u64>,
    chunks_of: Option<u8>,
    /// An indefinite map: whether it holds an odd number of items so far
    /// (a break there would cut a key from its value).
    odd_map: Option<bool>,
    /// A definite map (its next item is a key when `left` is even).
    map: bool,
}

impl Level {
    /// What the next item in this level is charged, if it is a string,
    /// an array, a map or a null (`header`), or not.
    fn charge(&self, header: bool) -> usize {
        let key = match (self.left, self.odd_map) {
            (_, Some(odd)) => !odd,
            (Some(left), None) => self.map && left % 2 == 0,
            (None, None) => false,
        };
        match (self.chunks_of, key, header) {
            // (a chunk of an indefinite string is part of its string)
            (Some(_), _, _) => 0,
            (None, false, true) => HEADER,
            (None, _, _) => SCALAR,
        }
    }
}

/// Checks that `body` is exactly one well-formed CBOR item nested at most
/// [`MAX_CBOR_DEPTH`] deep, whose items would take at most
/// [`MAX_CBOR_HEAP_PER_BYTE`] bytes of room decoded per byte of it, plus
/// [`CBOR_HEAP_SLACK`] (the module's doc says how they are charged).
pub fn check_cbor(body: &[u8]) -> Result<(), CborShapeError> {
    let mut levels: Vec<Level> = Vec::new();
    let mut at = 0usize;
    let allowed = body
        .len()
        .saturating_mul(MAX_CBOR_HEAP_PER_BYTE)
        .saturating_add(CBOR_HEAP_SLACK);
    let mut charged = 0usize;
    // (one top-level item: the walk ends when it is complete)
    let mut done = false;
    while !done {
        let &initial = body.get(at).ok_or(CborShapeError::Truncated)?;
        at += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        if initial == 0xff {
            // a break closes the innermost indefinite level
            match levels.pop() {
                Some(Level {
                    left: None,
                    odd_map: None | Some(false),
                    ..
                }) => {}
                _ => return Err(CborShapeError::Malformed),
            }
        } else {
            if let Some(Level {
                chunks_of: Some(kind),
                ..
            }) = levels.last()
            {
                // an indefinite string holds definite strings of its kind
                if major != *kind || info == 31 {
                    return Err(CborShapeError::Malformed);
                }
            }
            let argument = match info {
                0..=23 => Some(u64::from(info)),
                24..=27 => {
                    let len = 1usize << (info - 24);
                    let bytes = body.get(at..at + len).ok_or(CborShapeError::Truncated)?;
                    at += len;
                    Some(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
                }
                31 if matches!(major, 2..=5) => None,
                _ => return Err(CborShapeError::Malformed),
            };
            // a simple value in a byte of its own is 32 or more
            if major == 7 && info == 24 && argument < Some(32) {
                return Err(CborShapeError::Malformed);
            }
            // (a tag is charged nothing: the item it holds is charged as
            // an element)
            if let Some(level) = levels.last().filter(|_| major != 6) {
                let header = matches!(major, 2..=5) || (major == 7 && matches!(info, 22 | 23));
                charged += level.charge(header);
                if charged > allowed {
                    return Err(CborShapeError::TooDense(allowed));
                }
            }
            let opened = match (major, argument) {
                // a definite string: skip its bytes
                (2 | 3, Some(len)) => {
                    let len = usize::try_from(len).map_err(|_| CborShapeError::Truncated)?;
                    let end = at.checked_add(len).ok_or(CborShapeError::Truncated)?;
                    if end > body.len() {
                        return Err(CborShapeError::Truncated);
                    }
                    at = end;
                    None
                }
                (2 | 3, None) => Some(Level {
                    left: None,
                    chunks_of: Some(major),
                    odd_map: None,
                    map: false,
                }),
                (4, left) => Some(Level {
                    left,
                    chunks_of: None,
                    odd_map: None,
                    map: false,
                }),
                (5, left) => Some(Level {
                    left: left.map(|n| n.saturating_mul(2)),
                    chunks_of: None,
                    odd_map: left.is_none().then_some(false),
                    map: left.is_some(),
                }),
                // a tag holds one item
                (6, _) => Some(Level {
                    left: Some(1),
                    chunks_of: None,
                    odd_map: None,
                    map: false,
                }),
                // integers and simple values / floats: nothing inside
                _ => None,
            };
            match opened {
                Some(level) if level.left != Some(0) => {
                    if levels.len() == MAX_CBOR_DEPTH {
                        return Err(CborShapeError::TooDeep);
                    }
                    levels.push(level);
                    continue;
                }
                // an empty container is a complete item at once
                _ => {}
            }
        }
        // An item completed: it counts against the levels it closes.
        loop {
            match levels.last_mut() {
                None => {
                    done = true;
                    break;
                }
                Some(Level {
                    left: None,
                    odd_map,
                    ..
                }) => {
                    if let Some(odd) = odd_map {
                        *odd = !*odd;
                    }
                    break;
                }
                Some(Level { left: Some(n), .. }) => {
                    *n -= 1;
                    if *n > 0 {
                        break;
                    }
                    levels.pop();
                }
            }
        }
    }
    match body.len() - at {
        0 => Ok(()),
        extra => Err(CborShapeError::Trailing(extra)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut body = vec![0x81; depth];
        body.push(0x00);
        body
    }

    #[test]
    fn values_the_encoders_make_pass() {
        let values: Vec<Vec<u8>> = vec![
            minicbor::to_vec(0u8).unwrap(),
            minicbor::to_vec(u64::MAX).unwrap(),
            minicbor::to_vec(-5i64).unwrap(),
            minicbor::to_vec("text").unwrap(),
            minicbor::to_vec(minicbor::bytes::ByteVec::from(vec![1u8; 300])).unwrap(),
            minicbor::to_vec((1u8, "two", [3u32, 4, 5], 1.5f64)).unwrap(),
            minicbor::to_vec(Vec::<u8>::new()).unwrap(),
            minicbor::to_vec(std::collections::BTreeMap::from([(1u8, vec![2u8])])).unwrap(),
            minicbor::to_vec(Some(true)).unwrap(),
        ];
        for body in values {
            assert_eq!(check_cbor(&body), Ok(()), "{body:02x?}");
        }
        // indefinite array, map and strings, and a tag
        for body in [
            &[0x9f, 0x01, 0x02, 0xff][..],
            &[0xbf, 0x01, 0x02, 0xff],
            &[0xbf, 0xff],
            &[0xf8, 0x20],
            &[0x5f, 0x41, 0xaa, 0x40, 0xff],
            &[0x7f, 0x61, 0x61, 0xff],
            &[0xc1, 0x1a, 0, 0, 0, 1],
            &[0x9f, 0x80, 0xa0, 0x9f, 0xff, 0xff],
        ] {
            assert_eq!(check_cbor(body), Ok(()), "{body:02x?}");
        }
        assert_eq!(check_cbor(&nested_arrays(MAX_CBOR_DEPTH)), Ok(()));
    }

    #[test]
    fn deep_truncated_trailing_and_malformed_bodies_are_refused() {
        assert_eq!(
            check_cbor(&nested_arrays(MAX_CBOR_DEPTH + 1)),
            Err(CborShapeError::TooDeep)
        );
        // deep through tags, maps and indefinite arrays too
        for open in [0xc1u8, 0xa1, 0x9f] {
            let mut body = vec![open; 100_000];
            body.push(0);
            assert_eq!(check_cbor(&body), Err(CborShapeError::TooDeep));
        }
        for body in [
            &[][..],
            &[0x82, 0x01],
            &[0x19, 0x01],
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x43, 0x01, 0x02],
            &[0x9f, 0x01],
        ] {
            assert_eq!(
                check_cbor(body),
                Err(CborShapeError::Truncated),
                "{body:02x?}"
            );
        }
        assert_eq!(
            check_cbor(&[0x01, 0x02, 0x03]),
            Err(CborShapeError::Trailing(2))
        );
        for body in [
            &[0xff][..],
            &[0x82, 0xff],
            &[0x1c],
            &[0x1f],
            &[0x5f, 0x61, 0x61, 0xff],
            &[0x5f, 0x5f, 0xff, 0xff],
            // an indefinite map cut between a key and its value
            &[0xbf, 0x01, 0xff],
            &[0xbf, 0x01, 0x02, 0x03, 0xff],
            // a simple value below 32 in a byte of its own
            &[0xf8, 0x10],
        ] {
            assert_eq!(
                check_cbor(body),
                Err(CborShapeError::Malformed),
                "{body:02x?}"
            );
        }
    }

    /// An array of `n` copies of `item`.
    fn array_of(n: usize, item: &[u8]) -> Vec<u8> {
        let mut encoder = minicbor::Encoder::new(Vec::new());
        encoder.array(n as u64).unwrap();
        let mut body = encoder.into_writer();
        for _ in 0..n {
            body.extend_from_slice(item);
        }
        body
    }

    /// What the check allows a body of `len` bytes.
    fn allowed(len: usize) -> usize {
        len * MAX_CBOR_HEAP_PER_BYTE + CBOR_HEAP_SLACK
    }

    /// Items that decode to a 24-byte header each (a `String`, a `Vec`, an
    /// `Option<String>`) from one byte are refused past the slack: before
    /// the check, 512 KiB of them took 72 bytes of heap per byte.
    #[test]
    fn bodies_dense_with_one_byte_headers_are_refused() {
        for item in [0x40u8, 0x60, 0x80, 0xa0, 0xf6, 0xf7] {
            let body = array_of(2048, &[item]);
            assert_eq!(
                check_cbor(&body),
                Err(CborShapeError::TooDense(allowed(body.len()))),
                "{item:02x}"
            );
        }
        // one-byte strings, empty arrays in arrays, pairs of small integers
        for (n, item) in [
            (4096, &[0x61, b'a'][..]),
            (4096, &[0x81, 0x80]),
            (4096, &[0x82, 0x00, 0x00]),
            (4096, &[0xc1, 0x80]),
        ] {
            let body = array_of(n, item);
            assert!(
                matches!(check_cbor(&body), Err(CborShapeError::TooDense(_))),
                "{item:02x?}"
            );
        }
        // deep in a body, too: the charge counts every level
        let mut body = vec![0x82, 0x00];
        body.extend(array_of(2048, &[0x60]));
        assert!(matches!(
            check_cbor(&body),
            Err(CborShapeError::TooDense(_))
        ));
        let reason = CborShapeError::TooDense(allowed(body.len())).to_string();
        assert!(reason.contains("too dense"), "{reason}");
    }

    /// What ordinary requests hold passes, however long: integers (a
    /// `Vec<u8>` is an array of them), strings of two bytes or more,
    /// structs as maps keyed by short field names, indefinite strings of
    /// many chunks; and any body of at most 1,024 bytes.
    #[test]
    fn ordinary_bodies_pass_however_long() {
        let ordinary = [
            array_of(100_000, &[0x01]),
            array_of(100_000, &[0x18, 0xff]),
            array_of(100_000, &[0xf5]),
            array_of(100_000, &[0x62, b'a', b'b']),
            // {"x": 1, "y": 2}, and as an indefinite map
            array_of(100_000, &[0xa2, 0x61, b'x', 0x01, 0x61, b'y', 0x02]),
            array_of(100_000, &[0xbf, 0x61, b'x', 0x01, 0x61, b'y', 0x02, 0xff]),
            // pairs of integers of a byte, a tagged two-byte string
            array_of(100_000, &[0x82, 0x18, 0x20, 0x18, 0x21]),
            array_of(100_000, &[0xc1, 0x62, b'a', b'b']),
            minicbor::to_vec(vec!["a name of some length"; 100_000]).unwrap(),
        ];
        for body in &ordinary {
            assert_eq!(check_cbor(body), Ok(()), "{:02x?}", &body[..12]);
        }
        // an indefinite string of empty chunks is one string
        let mut chunks = vec![0x7f];
        chunks.extend(std::iter::repeat_n(0x60, 100_000));
        chunks.push(0xff);
        assert_eq!(check_cbor(&chunks), Ok(()));
        // the densest body of 1,024 bytes: 1,021 empty strings (and
        // five more, refused)
        let body = array_of(1021, &[0x60]);
        assert_eq!(body.len(), 1024);
        assert_eq!(check_cbor(&body), Ok(()));
        assert_eq!(
            check_cbor(&array_of(1026, &[0x60])),
            Err(CborShapeError::TooDense(allowed(1029)))
        );
    }
}
