//! `FrameDecoder` over an arbitrary stream, cut into arbitrary chunks, with
//! an arbitrary limit that may change between frames (as the endpoint
//! raises it after the handshake). Checked against a straightforward
//! reference decoder over the whole stream: same frames, same error, same
//! bytes held at the end, never more than `4 + max_frame_len` held, and a
//! failed decoder stays failed without consuming anything.
//!
//! Input: `max (3 bytes BE) | split | switch_after | new_max (3 bytes BE) |
//! stream`. `split` 0 feeds the stream whole, else in chunks of
//! 1..=split bytes; after `switch_after` frames (255: never) the limit
//! becomes `new_max`.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use peernet_fuzz::Feed;
use peernet_proto::frame::encode_frame;
use peernet_proto::{FrameDecoder, FrameError};

const HEADER: usize = 8;

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

struct Outcome {
    frames: Vec<Bytes>,
    error: Option<FrameError>,
    /// Bytes of an incomplete trailing frame (header included).
    partial: usize,
}

/// The reference: the spec, read off the whole stream at once.
fn reference(stream: &[u8], max: u32, switch_after: usize, new_max: u32) -> Outcome {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let limit = if frames.len() >= switch_after {
            new_max
        } else {
            max
        };
        let rest = &stream[at..];
        if rest.len() < 4 {
            return Outcome {
                frames,
                error: None,
                partial: rest.len(),
            };
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len == 0 {
            return Outcome {
                frames,
                error: Some(FrameError::Empty),
                partial: 0,
            };
        }
        if len > limit {
            let error = FrameError::TooLarge { len, max: limit };
            return Outcome {
                frames,
                error: Some(error),
                partial: 0,
            };
        }
        let len = len as usize;
        if rest.len() < 4 + len {
            return Outcome {
                frames,
                error: None,
                partial: rest.len(),
            };
        }
        frames.push(Bytes::copy_from_slice(&rest[4..4 + len]));
        at += 4 + len;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let max = u24(&data[0..3]);
    let split = data[3];
    let switch_after = match data[4] {
        255 => usize::MAX,
        n => usize::from(n),
    };
    let new_max = u24(&data[5..8]);
    let stream = &data[HEADER..];
    let expected = reference(stream, max, switch_after, new_max);

    // The same chunking as the endpoint targets use.
    let mut feed_bytes = vec![0, split, 0];
    feed_bytes.extend_from_slice(stream);
    let chunks = Feed::parse(&feed_bytes).chunks();

    let mut dec = FrameDecoder::new(max);
    if switch_after == 0 {
        dec.set_max_frame_len(new_max);
    }
    let mut frames: Vec<Bytes> = Vec::new();
    let mut error = None;
    'feed: for mut chunk in chunks {
        loop {
            let limit = dec.max_frame_len();
            match dec.decode(&mut chunk) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= limit as usize);
                    frames.push(frame);
                    if frames.len() == switch_after {
                        dec.set_max_frame_len(new_max);
                    }
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.buffered_len(), 0, "a failed decoder holds nothing");
                    // Sticky, and consumes nothing.
                    let mut again = Bytes::from_static(&[0, 0, 0, 1, 7]);
                    assert_eq!(dec.decode(&mut again), Err(e));
                    assert_eq!(again.len(), 5);
                    error = Some(e);
                    break 'feed;
                }
            }
            let limit = dec.max_frame_len().max(limit) as usize;
            assert!(dec.buffered_len() <= 4 + limit, "held more than one frame");
        }
        assert!(dec.buffered_len() <= 4 + dec.max_frame_len().max(max) as usize);
    }

    assert_eq!(frames, expected.frames, "frames differ from the reference");
    assert_eq!(error, expected.error, "error differs from the reference");
    if error.is_none() {
        assert_eq!(
            dec.buffered_len(),
            expected.partial,
            "bytes held at the end"
        );
    }
    // Re-encoding the frames gives back the stream they came from.
    let mut wire = BytesMut::new();
    for f in &frames {
        encode_frame(f, &mut wire);
    }
    assert_eq!(&wire[..], &stream[..wire.len()]);
});
