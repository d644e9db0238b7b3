//! Properties of version-2 records (PROTOCOL.md section 7): what is sealed
//! opens to the same bytes, any single flipped bit makes a record fail to
//! open, and nonces advance one per record so that replayed, reordered or
//! dropped records fail.

use peernet_proto::testkit::noise::{CipherState, RecordError, TAG_LEN};
use proptest::prelude::*;

fn pair(key: [u8; 32]) -> (CipherState, CipherState) {
    (
        CipherState::with_nonce(key, 0),
        CipherState::with_nonce(key, 0),
    )
}

proptest! {
    #[test]
    fn seal_then_open_round_trips(
        key in any::<[u8; 32]>(),
        prefix in proptest::collection::vec(any::<u8>(), 0..8),
        plain in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (mut send, mut recv) = pair(key);
        let mut buf = prefix.clone();
        buf.extend_from_slice(&plain);
        send.seal_record(&mut buf, prefix.len()).unwrap();
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..], "the prefix is left alone");
        prop_assert_eq!(buf.len(), prefix.len() + plain.len() + TAG_LEN);
        if !plain.is_empty() {
            prop_assert_ne!(&buf[prefix.len()..buf.len() - TAG_LEN], &plain[..]);
        }
        let opened = recv.open_record(&mut buf[prefix.len()..]).unwrap();
        prop_assert_eq!(opened, &plain[..]);
    }

    #[test]
    fn any_single_bit_flip_fails_to_open(
        key in any::<[u8; 32]>(),
        plain in proptest::collection::vec(any::<u8>(), 0..256),
        bit in any::<prop::sample::Index>(),
    ) {
        let (mut send, mut recv) = pair(key);
        let mut record = plain.clone();
        send.seal_record(&mut record, 0).unwrap();
        let bit = bit.index(record.len() * 8);
        let mut flipped = record.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(recv.open_record(&mut flipped), Err(RecordError::DecryptFailed));
        prop_assert_eq!(recv.nonce(), 0, "a failed record consumes no nonce");
        // So the intact record still opens.
        prop_assert_eq!(recv.open_record(&mut record).unwrap(), &plain[..]);
    }

    #[test]
    fn nonces_advance_and_order_is_enforced(
        key in any::<[u8; 32]>(),
        plains in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 2..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut send, mut recv) = pair(key);
        let records: Vec<Vec<u8>> = plains
            .iter()
            .enumerate()
            .map(|(i, plain)| {
                prop_assert_eq!(send.nonce(), i as u64);
                let mut record = plain.clone();
                send.seal_record(&mut record, 0).unwrap();
                Ok(record)
            })
            .collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(send.nonce(), plains.len() as u64);
        // Equal plaintexts still give different records.
        prop_assert_ne!(&records[0], &records[1]);
        // Skipping a record (or reordering) fails ...
        let mut second = records[1].clone();
        prop_assert_eq!(recv.open_record(&mut second), Err(RecordError::DecryptFailed));
        // ... in order everything opens, and a replay then fails.
        for (i, (record, plain)) in records.iter().zip(&plains).enumerate() {
            let mut record = record.clone();
            prop_assert_eq!(recv.open_record(&mut record).unwrap(), &plain[..]);
            prop_assert_eq!(recv.nonce(), i as u64 + 1);
        }
        let mut replay = records[cut.index(records.len())].clone();
        prop_assert_eq!(recv.open_record(&mut replay), Err(RecordError::DecryptFailed));
        // A cut record fails too.
        let mut short = records[0][..TAG_LEN - 1].to_vec();
        prop_assert_eq!(recv.open_record(&mut short), Err(RecordError::DecryptFailed));
    }
}
