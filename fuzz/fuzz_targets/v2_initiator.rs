//! Version 2, initiator side, over arbitrary bytes: the first 54 bytes are
//! a RESP (or REJECT) body candidate for the vector INIT, the rest frames
//! that must be records from the responder. `read_resp` (PROTOCOL.md 6.1
//! step 3) and `open_record` plus envelope decoding never panic, and a
//! REJECT of any version surfaces as `Rejected`. The seed corpus holds the
//! vector RESP and REJECTs.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peernet_fuzz::v2::{INITIATOR_EPHEMERAL, INITIATOR_SEED, RESPONDER_SEED, open_records};
use peernet_proto::testkit::noise::{InitiatorV2, LocalStatic};
use peernet_proto::{HandshakeError, Identity};

fuzz_target!(|data: &[u8]| {
    let (resp, rest) = data.split_at(data.len().min(54));
    let me = LocalStatic::new(&Identity::from_seed(&INITIATOR_SEED));
    let responder = Identity::from_seed(&RESPONDER_SEED).peer_id();
    let (mut initiator, _init) =
        InitiatorV2::start(&me, responder, INITIATOR_EPHEMERAL).expect("a valid responder key");
    match initiator.read_resp(resp) {
        Ok(mut transport) => open_records(&mut transport.recv, Bytes::copy_from_slice(rest)),
        Err(failure) => {
            if let HandshakeError::Rejected(_) = failure.error {
                assert!(failure.send.is_none(), "a REJECT is not answered");
            }
        }
    }
});
