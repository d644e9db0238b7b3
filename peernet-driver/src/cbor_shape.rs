//! The shape of a CBOR body from a peer, checked before any decoder sees
//! it: exactly one well-formed item, nested at most [`MAX_CBOR_DEPTH`]
//! deep.
//!
//! The decoders the typed layers use (`minicbor`, `minicbor-serde`) build
//! values recursively, one stack frame per level of nesting, with no
//! bound of their own. A few kilobytes of nested arrays would overflow a
//! thread's stack, which aborts the whole process (a stack overflow is
//! not a panic). This walk is iterative: its memory is a counter per
//! open level, and it reads each byte at most once.

/// How deep a CBOR body from a peer may nest (arrays, maps, tags and
/// indefinite-length strings each open a level), as serde_json's
/// default recursion limit. A deeper body is refused before it is
/// decoded.
pub const MAX_CBOR_DEPTH: usize = 128;

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
}

/// Checks that `body` is exactly one well-formed CBOR item nested at most
/// [`MAX_CBOR_DEPTH`] deep.
pub fn check_cbor(body: &[u8]) -> Result<(), CborShapeError> {
    let mut levels: Vec<Level> = Vec::new();
    let mut at = 0usize;
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
                }),
                (4, left) => Some(Level {
                    left,
                    chunks_of: None,
                    odd_map: None,
                }),
                (5, left) => Some(Level {
                    left: left.map(|n| n.saturating_mul(2)),
                    chunks_of: None,
                    odd_map: left.is_none().then_some(false),
                }),
                // a tag holds one item
                (6, _) => Some(Level {
                    left: Some(1),
                    chunks_of: None,
                    odd_map: None,
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
}
