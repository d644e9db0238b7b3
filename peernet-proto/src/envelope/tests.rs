use super::*;
use crate::codes::{GoodbyeCode, ReplyStatus};
use alloc::string::ToString;
use alloc::vec;
use cbor::{EXPECT_TEXT, EXPECT_UINT};

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
fn large_payloads_are_slices_small_ones_copies_and_handles_inline() {
    // A large payload that is most of its frame: zero-copy.
    let big = vec![7u8; cbor::COPY_UP_TO + 1];
    let big_call = Envelope::Call {
        id: 1,
        handle: Handle::from_static("echo"),
        args: Bytes::from(big.clone()),
        timeout_ms: 5000,
    };
    let body = Bytes::from(big_call.to_body());
    let range = body.as_ptr_range();
    let Envelope::Call { handle, args, .. } = Envelope::decode(&body).unwrap() else {
        panic!("not a call");
    };
    assert!(range.contains(&args.as_ptr()));
    assert_eq!(&args[..], &big[..]);
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

/// Issue 13, limit 7: a small payload does not keep its read chunk alive.
/// Before, a 5-byte argument decoded from a 64 KiB chunk pinned the chunk
/// (61 KiB held per 5-byte call); now it holds 5 bytes of its own.
#[test]
fn small_payloads_do_not_pin_their_chunk() {
    let frame = call(1, b"hello", 0).to_body();
    let mut chunk = frame.clone();
    chunk.resize(64 * 1024, 0); // the rest of a full read buffer
    let chunk = Bytes::from(chunk);
    let Ok(Envelope::Call { args, .. }) =
        Envelope::decode_prefix(&chunk, frame.len(), None, Slicing::Any)
    else {
        panic!("not a call");
    };
    assert_eq!(&args[..], b"hello");
    assert!(!chunk.as_ptr_range().contains(&args.as_ptr()), "copied");
    // A payload over 16 KiB but not over half of its buffer: copied too.
    let mid = Envelope::Call {
        id: 2,
        handle: Handle::from_static("echo"),
        args: Bytes::from(vec![1u8; cbor::COPY_UP_TO + 1]),
        timeout_ms: 0,
    };
    let frame = mid.to_body();
    let mut chunk = frame.clone();
    chunk.resize(frame.len() * 5, 0);
    let chunk = Bytes::from(chunk);
    let Ok(Envelope::Call { args, .. }) =
        Envelope::decode_prefix(&chunk, frame.len(), None, Slicing::Any)
    else {
        panic!("not a call");
    };
    assert!(!chunk.as_ptr_range().contains(&args.as_ptr()));
}

/// A connection's decoder slices a large CALL argument of a buffer of
/// its own, never a SEND's: the driver gives back only a SEND's length
/// (`Endpoint::send_done`). `Envelope::decode` slices both.
#[test]
fn a_connection_never_slices_a_sends_arguments() {
    let big = Bytes::from(vec![7u8; cbor::COPY_UP_TO + 1]);
    let send = Envelope::Send {
        handle: Handle::from_static("log"),
        args: big.clone(),
    };
    let call = Envelope::Call {
        id: 1,
        handle: Handle::from_static("log"),
        args: big,
        timeout_ms: 0,
    };
    for (name, envelope, slicing, sliced) in [
        ("SEND", &send, Slicing::NotSends, false),
        ("SEND", &send, Slicing::Any, true),
        ("CALL", &call, Slicing::NotSends, true),
        ("CALL", &call, Slicing::Never, false),
    ] {
        let body = Bytes::from(envelope.to_body());
        let decoded = Envelope::decode_prefix(&body, body.len(), None, slicing).unwrap();
        assert_eq!(&decoded, envelope);
        let (Envelope::Send { args, .. } | Envelope::Call { args, .. }) = decoded else {
            panic!("not a SEND or a CALL");
        };
        let is_slice = body.as_ptr_range().contains(&args.as_ptr());
        assert_eq!(is_slice, sliced, "{name}, {slicing:?}");
    }
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
    // Every width, on the array's count too: 1-byte count, 4- and 8-byte
    // integers, a byte string whose length takes 2 bytes.
    assert_eq!(
        decode_hex("9802031b0000000000000005"),
        Ok(Envelope::Ping { nonce: 5 })
    );
    assert_eq!(
        decode_hex("84011a000000070059000161"),
        Ok(Envelope::Reply {
            id: 7,
            status: 0,
            body: Bytes::from_static(b"a"),
        })
    );
}

#[test]
fn a_head_cut_before_its_argument_is_truncated() {
    for hex in ["8203", "820319", "82031900", "98", "85000178", "85000164"] {
        assert_eq!(decode_hex(hex), Err(EnvelopeError::Truncated), "{hex}");
    }
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
