//! Version 2's records alone: sealing and opening one record in place
//! with ring's ChaCha20-Poly1305, at the sizes the pipelined workloads
//! produce (a lone 64-byte call's envelope, 1 KiB, a window of 64 such
//! envelopes, 16 KiB). What the AEAD costs per byte bounds what
//! encryption can cost a pipelined call:
//!
//! ```sh
//! cargo bench -p peernet-proto --bench records
//! ```

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use peernet_proto::testkit::noise::{CipherState, TAG_LEN};

const KEY: [u8; 32] = [7; 32];

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    for size in [90usize, 1024, 5_800, 16 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &size, |b, &size| {
            let mut send = CipherState::with_nonce(KEY, 0);
            let mut buf = BytesMut::with_capacity(size + TAG_LEN);
            b.iter(|| {
                buf.clear();
                buf.resize(size, 0x5a);
                send.seal_record(&mut buf, 0).expect("nonce left");
                black_box(&buf);
            });
        });
        let mut sealed = BytesMut::with_capacity(size + TAG_LEN);
        sealed.resize(size, 0x5a);
        CipherState::with_nonce(KEY, 0)
            .seal_record(&mut sealed, 0)
            .expect("nonce left");
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, sealed| {
            b.iter_batched_ref(
                || (CipherState::with_nonce(KEY, 0), sealed.clone()),
                |(recv, record)| {
                    let plain = recv.open_record(&mut record[..]).expect("opens");
                    assert_eq!(plain.len(), size);
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
