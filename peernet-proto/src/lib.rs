#![no_std]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod wire_code;

pub mod config;
mod connection;
pub mod endpoint;
pub mod envelope;
pub mod error;
pub mod event;
pub mod exposure;
pub mod frame;
pub mod handshake;
pub mod identity;
mod in_flight;
#[cfg_attr(feature = "testkit", doc(hidden))]
#[cfg(feature = "testkit")]
pub mod noise;
#[cfg(not(feature = "testkit"))]
mod noise;
pub mod registry;
pub mod time;
mod timers;
pub mod trust;

pub use config::Config;
pub use endpoint::{ConnId, ConnectError, Endpoint, Input, Stats};
pub use envelope::{
    Envelope, EnvelopeError, EnvelopeTooLarge, GoodbyeCode, Handle, InvalidHandle, MAX_HANDLE_LEN,
    ReplyStatus,
};
pub use error::{CallError, CloseReason, HandshakeError, Side};
pub use event::{
    CallId, Direction, Event, InboundCall, InboundCallId, InboundSend, Output, Response,
};
pub use exposure::Access;
pub use frame::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder, FrameError};
pub use handshake::RejectCode;
pub use identity::{Identity, InvalidIdentity, InvalidPeerId, PeerId};
pub use time::Instant;
pub use trust::{InvalidLabel, Label, TrustList, TrustListError, TrustListErrorKind};
