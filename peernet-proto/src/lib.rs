#![no_std]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod wire_code;

pub mod book;
mod codes;
pub mod config;
mod connection;
mod counters;
pub mod dial;
mod ending;
mod endpoint;
pub mod envelope;
pub mod error;
mod event;
mod exposure;
mod fault;
pub mod frame;
// Public only through `testkit`, for tests and fuzzers.
#[cfg_attr(not(feature = "testkit"), allow(unreachable_pub, dead_code))]
mod handshake;
pub mod identity;
mod ids;
// Version 2's crypto (PROTOCOL.md part B); public only through `testkit`.
#[cfg_attr(
    not(feature = "testkit"),
    allow(unreachable_pub, dead_code, unused_imports)
)]
mod noise;
mod orphans;
#[cfg_attr(not(feature = "testkit"), allow(unreachable_pub))]
mod rate;
mod reconnects;
#[cfg_attr(not(feature = "testkit"), allow(unreachable_pub))]
mod registry;
mod sources;
mod stats;
pub mod text;
pub mod time;
mod timers;
mod transient;
pub mod trust;

pub use book::{AddrEntry, AddrHistory, AddrSource, AddressBook, BookError, is_dialable};
pub use codes::{GoodbyeCode, RejectCode, ReplyStatus};
pub use config::{Config, ConfigError, DialConfig, ProtocolVersion};
pub use counters::{CallCounts, Counters, HandshakeCounts, RejectCounts, StatusCounts};
pub use endpoint::Endpoint;
pub use envelope::{
    Envelope, EnvelopeError, EnvelopeTooLarge, Handle, InvalidHandle, MAX_HANDLE_LEN,
};
pub use error::{CallError, CloseReason, ConnectError, DialFailure, HandshakeError, SendError};
pub use event::{
    Event, InboundCall, InboundSend, Input, LAST_COPIED, OUTPUTS_BEFORE_PAUSE, Output, Response,
};
pub use exposure::Access;
pub use frame::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder, FrameError};
pub use identity::{Identity, InvalidIdentity, InvalidPeerId, PeerId};
pub use ids::{CallId, ConnId, Direction, InboundCallId, Side};
pub use noise::RecordError;
pub use reconnects::PeerConnectLimits;
pub use sources::{
    KNOWN_FOR, MAX_KNOWN_SOURCES, NodeFailureLimit, Source, SourceLimits, SourceRefusal,
};
pub use stats::Stats;
pub use time::Instant;
pub use trust::{InvalidLabel, Label, TrustList, TrustListError, TrustListErrorKind};

/// Internals for tests, fuzzers and benches: not part of the API, no
/// stability promise. Compiled in only with the `testkit` feature.
#[cfg(feature = "testkit")]
pub mod testkit {
    /// The version-1 handshake as pure functions over frame bodies
    /// (PROTOCOL.md section 2), to build handshake frames by hand.
    pub mod handshake {
        pub use crate::handshake::*;
    }
    /// Version 2's crypto (PROTOCOL.md part B): keys, the Noise IK
    /// handshake messages and records, to check them against the vectors.
    pub mod noise {
        pub use crate::noise::*;
    }
    /// Version 2's record plaintext (PROTOCOL.md section 7), decoded as a
    /// connection decodes it: for intruders and fuzzers that speak records.
    pub mod records {
        use alloc::vec::Vec;

        use bytes::Bytes;

        use crate::envelope::{Envelope, EnvelopeError, Slicing};

        /// The envelopes of an opened record's plaintext, one CBOR item
        /// after another until it ends; the first error (an item cut by
        /// the end of the record included) stops it.
        pub fn decode_plaintext(plain: &Bytes) -> Result<Vec<Envelope>, EnvelopeError> {
            let mut out = Vec::new();
            let mut pos = 0;
            while pos < plain.len() {
                let (envelope, end) =
                    Envelope::decode_item(plain, pos, plain.len(), None, Slicing::Any)?;
                out.push(envelope);
                pos = end;
            }
            Ok(out)
        }
    }
    /// The supersede rule of PROTOCOL.md section 4.
    pub mod registry {
        pub use crate::registry::{Established, Survivor, survivor};
    }
    #[cfg(feature = "fault-injection")]
    pub use crate::config::Fault;
}
