//! Envelope codec cost: a CALL encoded into a frame, cut back out of the
//! stream and decoded, against a bare minicbor encode + decode of the same
//! 5-item array as the baseline.
//!
//! `cargo bench -p peernet-proto --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use minicbor::{Decoder, Encoder};
use peernet_proto::envelope::{Envelope, Handle};
use peernet_proto::frame::{DEFAULT_MAX_FRAME_LEN, FrameDecoder};

const ID: u64 = 0x1234_5678_9abc;
const HANDLE: &str = "store.put";
const TIMEOUT_MS: u64 = 30_000;
const SIZES: [usize; 2] = [64, 1024];

fn call(args_len: usize) -> Envelope {
    Envelope::Call {
        id: ID,
        handle: Handle::from_static(HANDLE),
        args: Bytes::from((0..args_len).map(|i| i as u8).collect::<Vec<u8>>()),
        timeout_ms: TIMEOUT_MS,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("call");
    for size in SIZES {
        group.throughput(Throughput::Elements(1));
        let env = call(size);
        let args = match &env {
            Envelope::Call { args, .. } => args.clone(),
            _ => unreachable!(),
        };

        // What a connection does per CALL: frame it into the write buffer,
        // then on the other side cut the frame out of the read buffer and
        // decode it.
        group.bench_with_input(BenchmarkId::new("roundtrip", size), &env, |b, env| {
            let mut wire = BytesMut::with_capacity(64 * 1024);
            let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
            b.iter(|| {
                black_box(env)
                    .encode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN)
                    .unwrap();
                let mut input = wire.split().freeze();
                let body = frames.decode(&mut input).unwrap().unwrap();
                Envelope::decode(black_box(&body)).unwrap()
            });
        });

        group.bench_with_input(BenchmarkId::new("encode_frame", size), &env, |b, env| {
            let mut wire = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                wire.clear();
                black_box(env)
                    .encode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN)
                    .unwrap();
                black_box(wire.len())
            });
        });

        let mut framed = BytesMut::new();
        env.encode_frame(&mut framed, DEFAULT_MAX_FRAME_LEN)
            .unwrap();
        let framed = framed.freeze();
        group.bench_with_input(
            BenchmarkId::new("frame_and_decode", size),
            &framed,
            |b, framed| {
                let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
                b.iter(|| {
                    let mut input = black_box(framed).clone();
                    let body = frames.decode(&mut input).unwrap().unwrap();
                    Envelope::decode(&body).unwrap()
                });
            },
        );

        let body = framed.slice(4..);
        group.bench_with_input(BenchmarkId::new("decode", size), &body, |b, body| {
            b.iter(|| Envelope::decode(black_box(body)).unwrap());
        });

        // Baseline: minicbor alone, same array, borrowed output, no framing.
        group.bench_with_input(
            BenchmarkId::new("minicbor_baseline", size),
            &args,
            |b, args| {
                let mut buf = Vec::with_capacity(64 * 1024);
                b.iter(|| {
                    buf.clear();
                    Encoder::new(&mut buf)
                        .array(5)
                        .unwrap()
                        .u64(0)
                        .unwrap()
                        .u64(black_box(ID))
                        .unwrap()
                        .str(black_box(HANDLE))
                        .unwrap()
                        .bytes(black_box(args))
                        .unwrap()
                        .u64(black_box(TIMEOUT_MS))
                        .unwrap();
                    let mut d = Decoder::new(black_box(&buf));
                    assert_eq!(d.array().unwrap(), Some(5));
                    let tag = d.u64().unwrap();
                    let id = d.u64().unwrap();
                    let handle = d.str().unwrap();
                    let args = d.bytes().unwrap();
                    let timeout = d.u64().unwrap();
                    black_box((tag, id, handle, args, timeout));
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
