//! What the version-2 targets share: the identities and ephemeral keys of
//! `vectors/v2/handshake.json` (so the vector messages are valid seeds),
//! and reading records off a byte stream.

use bytes::Bytes;
use peernet_proto::testkit::noise::{CipherState, LocalStatic, TAG_LEN};
use peernet_proto::{DEFAULT_MAX_FRAME_LEN, FrameDecoder};

/// The vectors' initiator identity seed.
pub const INITIATOR_SEED: [u8; 32] = [0x11; 32];
/// The vectors' responder identity seed.
pub const RESPONDER_SEED: [u8; 32] = [0x22; 32];
/// The vectors' initiator ephemeral secret.
pub const INITIATOR_EPHEMERAL: [u8; 32] = [0xa1; 32];
/// The vectors' responder ephemeral secret.
pub const RESPONDER_EPHEMERAL: [u8; 32] = [0xb2; 32];

/// Reads frames from `input` and opens each as a record, in order, until
/// the input ends, a frame is invalid or a record fails. Checks that an
/// opened record is its frame less the tag and advances the nonce by one,
/// and that a failed one leaves the nonce as it was.
pub fn open_records(recv: &mut CipherState, mut input: Bytes) {
    let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    while let Ok(Some(frame)) = frames.decode(&mut input) {
        let mut record = frame.to_vec();
        let before = recv.nonce();
        match recv.open_record(&mut record) {
            Ok(plain) => {
                assert_eq!(plain.len() + TAG_LEN, frame.len());
                assert_eq!(recv.nonce(), before + 1);
            }
            Err(_) => {
                assert_eq!(recv.nonce(), before, "a failed record uses no nonce");
                return;
            }
        }
    }
}

/// The `v2_records` target: a responder (identity 0x22, standard
/// exposure) established by a real version-2 handshake with the vector
/// initiator, then fed records that the initiator's real keys seal from
/// the input, some broken on purpose. Record decoding is reached past the
/// AEAD, and every broken record must end the connection at once with
/// nothing in it handed to a handler (PROTOCOL.md section 7).
///
/// Input: items of `kind (1) | len (2, big-endian) | plaintext (len)`,
/// until the input ends. `kind % 8`: 0 to 4 seal the plaintext (a record
/// of envelopes, or not); 5 seals it and flips one bit (`len`'s low byte
/// picks where); 6 seals it and cuts it short; 7 sends the previous record
/// again.
pub fn run_records(data: &[u8]) {
    use peernet_proto::testkit::noise::InitiatorV2;
    use peernet_proto::{Event, Identity, ProtocolVersion};

    use crate::{peer, responder_node};

    let mut node = responder_node(ProtocolVersion::V2);
    let conn = node.accept().expect("accept");
    let local = LocalStatic::new(&Identity::from_seed(&INITIATOR_SEED));
    let (mut initiator, init) =
        InitiatorV2::start(&local, peer(&RESPONDER_SEED), INITIATOR_EPHEMERAL)
            .expect("valid PeerId");
    node.receive(conn, frame(&init));
    node.pump();
    let resp = node.take(conn).expect("RESP");
    let mut keys = initiator.read_resp(&resp[4..]).expect("RESP reads");
    let max_plain = node.ep.config().max_frame_len as usize - TAG_LEN;

    let mut rest = data;
    let mut last: Option<Bytes> = None;
    while rest.len() >= 3 && node.is_open(conn) {
        let kind = rest[0] % 8;
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let plain = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let plain = &plain[..plain.len().min(max_plain)];
        let (record, broken) = match kind {
            7 => match &last {
                Some(r) => (r.clone(), true),
                None => continue,
            },
            _ => {
                let sealed = seal(&mut keys.send, plain);
                match kind {
                    5 => {
                        let mut r = sealed.to_vec();
                        let at = 4 + len % (r.len() - 4);
                        r[at] ^= 1 << (len % 8);
                        (Bytes::from(r), true)
                    }
                    6 => {
                        let body = &sealed[4..];
                        (frame(&body[..len % body.len()]), true)
                    }
                    _ => (sealed, false),
                }
            }
        };
        last = Some(record.clone());
        let before = node.events.len();
        node.receive(conn, record);
        for action in node.pump() {
            if let crate::Action::Transmit(c) = action {
                node.take(c);
            }
        }
        if broken {
            assert!(!node.is_open(conn), "a broken record left {conn} open");
            let handled = node.events[before..]
                .iter()
                .any(|e| matches!(e, Event::Call(_) | Event::Send(_)));
            assert!(!handled, "a broken record reached a handler");
        }
    }
    node.finish();
}

fn frame(body: &[u8]) -> Bytes {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f.into()
}

fn seal(cipher: &mut CipherState, plain: &[u8]) -> Bytes {
    let mut buf = bytes::BytesMut::with_capacity(4 + plain.len() + TAG_LEN);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(plain);
    cipher.seal_record(&mut buf, 4).expect("nonces last");
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use peernet_proto::Envelope;

    use super::run_records;

    fn item(kind: u8, plain: &[u8]) -> Vec<u8> {
        let len = u16::try_from(plain.len()).unwrap();
        [&[kind][..], &len.to_be_bytes(), plain].concat()
    }

    #[test]
    fn records_valid_broken_and_garbage_run_clean() {
        let ping = Envelope::Ping { nonce: 9 }.to_body();
        run_records(&[]);
        run_records(&item(0, &[]));
        run_records(
            &[
                item(0, &ping),
                item(1, &[ping.clone(), ping.clone()].concat()),
            ]
            .concat(),
        );
        run_records(&item(2, &ping[..ping.len() - 1]));
        run_records(&item(3, b"\xff\xff garbage"));
        for kind in [5, 6, 7] {
            for len in 0..40u8 {
                let plain = vec![len; usize::from(len)];
                run_records(&[item(0, &ping), item(kind, &plain)].concat());
            }
        }
    }
}
