//! Version 2 for raw intruders: INITs (real, replayed, with a wrong
//! `mac1`), and records sealed, opened and broken on purpose with the
//! keys of a real handshake. Every byte is built with the core's own
//! crypto (`peernet_proto::testkit::noise`); nothing here re-implements it.

use bytes::{BufMut, Bytes, BytesMut};
use peernet_proto::frame::encode_frame;
use peernet_proto::testkit::noise::{INIT_LEN, InitiatorV2, LocalStatic, Transport};
use peernet_proto::testkit::records::decode_plaintext;
use peernet_proto::{Envelope, Handle, Identity, PeerId};

use super::super::node::HANDLES;
use super::super::rng::SimRng;
use super::Byzantine;

/// The arguments of the SEND a broken record carries: the victim must
/// never hand it to a handler more often than valid records carried it.
pub const MARK: &[u8] = b"sent-in-a-bad-record";

/// Where mac1 starts in an INIT body.
const MAC1_AT: usize = INIT_LEN - 16;

fn frame(body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(body, &mut out);
    out.freeze()
}

/// A raw initiator's version-2 state: waiting for RESP, then the record
/// keys.
pub struct Session {
    initiator: Option<InitiatorV2>,
    transport: Option<Transport>,
}

/// A real INIT from `identity` to `victim`: the state waiting for RESP and
/// the INIT frame.
pub fn start(identity: &Identity, victim: PeerId, rng: &mut SimRng) -> (Session, Vec<u8>) {
    let local = LocalStatic::new(identity);
    let (initiator, init) =
        InitiatorV2::start(&local, victim, rng.array32()).expect("a simulated PeerId is valid");
    let session = Session {
        initiator: Some(initiator),
        transport: None,
    };
    (session, frame(&init).to_vec())
}

/// An INIT frame under a fresh key whose `mac1` is wrong for `victim`:
/// either one bit of it flipped, or the INIT made for another PeerId. The
/// victim must answer REJECT `unexpected_peer` before any X25519 work.
pub fn wrong_mac1_init(victim: PeerId, rng: &mut SimRng) -> Vec<u8> {
    let id = Identity::from_seed(&rng.array32());
    let local = LocalStatic::new(&id);
    let (_, mut init) = if rng.chance(0.5) {
        let (state, mut init) =
            InitiatorV2::start(&local, victim, rng.array32()).expect("valid PeerId");
        let i = MAC1_AT + rng.index(16);
        init[i] ^= 1 << rng.below(8);
        (state, init)
    } else {
        let other = Identity::from_seed(&rng.array32()).peer_id();
        InitiatorV2::start(&local, other, rng.array32()).expect("valid PeerId")
    };
    // Now and then the rest of the INIT is garbage too: mac1 is checked
    // first, so the answer stays the same.
    if rng.chance(0.2) {
        let i = 6 + rng.index(MAC1_AT - 6);
        init[i] ^= 0xff;
    }
    frame(&init).to_vec()
}

impl Session {
    /// Reads RESP (or a REJECT): `true` when the keys are there.
    pub fn read_resp(&mut self, body: &[u8]) -> bool {
        let Some(mut initiator) = self.initiator.take() else {
            return false;
        };
        match initiator.read_resp(body) {
            Ok(transport) => {
                self.transport = Some(transport);
                true
            }
            Err(_) => false,
        }
    }

    /// One record holding `plain`, framed.
    pub fn seal(&mut self, plain: &[u8]) -> Bytes {
        let transport = self.transport.as_mut().expect("keyed");
        let mut buf = BytesMut::with_capacity(4 + plain.len() + 16);
        buf.put_u32(0);
        buf.extend_from_slice(plain);
        transport
            .send
            .seal_record(&mut buf, 4)
            .expect("a simulated run never exhausts a nonce");
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }

    /// Seals envelope bodies into records of at most `max_plain` bytes of
    /// plaintext each: one envelope a record, or as many as fit when
    /// `batch`.
    pub fn seal_all(&mut self, bodies: &[Vec<u8>], batch: bool, max_plain: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut plain: Vec<u8> = Vec::new();
        for body in bodies {
            if !plain.is_empty() && (!batch || plain.len() + body.len() > max_plain) {
                out.push(self.seal(&plain));
                plain.clear();
            }
            plain.extend_from_slice(body);
        }
        if !plain.is_empty() {
            out.push(self.seal(&plain));
        }
        out
    }

    /// Opens a record from the victim: its envelopes, or `None` if it did
    /// not open or decode.
    pub fn open(&mut self, record: &[u8]) -> Option<Vec<Envelope>> {
        let transport = self.transport.as_mut()?;
        let mut buf = record.to_vec();
        let plain = transport.recv.open_record(&mut buf).ok()?;
        decode_plaintext(&Bytes::copy_from_slice(plain)).ok()
    }

    /// The writes of a record attack, the index of the write after which
    /// the victim must have ended the connection, and how many times the
    /// [`MARK`] SEND travelled in a record that opens.
    pub fn bad_records(&mut self, what: Byzantine, rng: &mut SimRng) -> (Vec<Bytes>, usize, u32) {
        let mark = Envelope::Send {
            handle: Handle::new(HANDLES[rng.index(4)]).expect("valid"),
            args: Bytes::from_static(MARK),
        }
        .to_body();
        match what {
            // One bit of the ciphertext or the tag.
            Byzantine::TamperedRecord => {
                let mut r = self.seal(&mark).to_vec();
                let i = 4 + rng.index(r.len() - 4);
                r[i] ^= 1 << rng.below(8);
                (vec![r.into()], 0, 0)
            }
            // The same record twice: the second reuses a nonce.
            Byzantine::ReplayedRecord => {
                let r = self.seal(&mark);
                (vec![r.clone(), r], 1, 1)
            }
            // Two records swapped: the first to arrive has the wrong nonce.
            Byzantine::ReorderedRecord => {
                let r1 = self.seal(&mark);
                let r2 = self.seal(&mark);
                (vec![r2, r1], 0, 0)
            }
            // A record cut short and framed again (sometimes shorter than
            // a tag).
            Byzantine::TruncatedRecord => {
                let r = self.seal(&mark);
                let body = &r[4..];
                let keep = if rng.chance(0.3) {
                    rng.range(1, 15) as usize
                } else {
                    rng.range(1, body.len() as u64 - 1) as usize
                };
                (vec![frame(&body[..keep])], 0, 0)
            }
            // A valid record whose plaintext ends inside an envelope: a
            // protocol error (GOODBYE sealed), nothing of the cut SEND.
            _ => {
                let mut plain = Envelope::Ping { nonce: rng.u64() }.to_body();
                let cut = rng.range(1, mark.len() as u64 - 1) as usize;
                plain.extend_from_slice(&mark[..cut]);
                (vec![self.seal(&plain)], 0, 0)
            }
        }
    }
}
