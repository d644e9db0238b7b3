//! Version 2, responder side, over arbitrary bytes: the first 150 bytes are
//! an INIT body candidate, the rest are frames that must be records from
//! the initiator. `check_init` and `accept` (PROTOCOL.md 6.1 step 2) and
//! then `open_record` plus envelope decoding (section 7) never panic;
//! what they accept is consistent: only the trusted initiator is ever
//! accepted, RESP has its fixed length, a record opens to at most its
//! frame less the tag, and a record that fails leaves the receive nonce
//! where it was. The seed corpus holds the vector INIT (it passes `mac1`
//! for this responder) and the vector records.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peernet_fuzz::v2::{INITIATOR_SEED, RESPONDER_EPHEMERAL, RESPONDER_SEED, open_records};
use peernet_proto::testkit::noise::{LocalStatic, RESP_LEN, check_init};
use peernet_proto::{Identity, TrustList};

fuzz_target!(|data: &[u8]| {
    let (init, rest) = data.split_at(data.len().min(150));
    let me = LocalStatic::new(&Identity::from_seed(&RESPONDER_SEED));
    let initiator = Identity::from_seed(&INITIATOR_SEED).peer_id();
    let trust: TrustList = [initiator].into_iter().collect();
    let Ok(checked) = check_init(&me, init) else {
        return;
    };
    let Ok(accepted) = checked.accept(&me, &trust, false, RESPONDER_EPHEMERAL) else {
        return;
    };
    assert_eq!(accepted.peer, initiator, "only the trusted initiator");
    assert_eq!(accepted.resp.len(), RESP_LEN);
    let mut transport = accepted.transport;
    open_records(&mut transport.recv, Bytes::copy_from_slice(rest));
});
