//! The runtime-agnostic async driver of peernet.
//!
//! [`Node`] is written once here, against the small [`Runtime`] trait;
//! `peernet-tokio`, `peernet-smol` and `peernet-async-std` each implement
//! `Runtime` and re-export `Node` for it, so the three offer the same API
//! by construction. All protocol logic lives in [`peernet_proto`]: this
//! crate moves bytes, time and handler results between the runtime and the
//! core.
//!
//! How it is driven:
//!
//! - one `std::sync::Mutex` holds the core [`Endpoint`](peernet_proto::Endpoint)
//!   and the driver's tables; it is never held across an `.await`, and
//!   no waker is woken, no handler run, no event sent under it. The only
//!   application code that runs under it is an access rule, the runtime's
//!   clock, and the `tracing` subscriber for the lines logged under it
//!   (none of which may call back into the node);
//! - every input and command goes through one door, `with_core`: lock,
//!   read the clock, act on the core, drain its outputs, unlock; then, with
//!   the lock dropped, wake the tasks (a connection's writer, the timer),
//!   wake the callers whose calls resolved, run the handlers;
//! - per connection a reader hands every read chunk to the core whole (no
//!   copy), and a writer writes everything queued since its last wake-up
//!   in one `write_all` (during the handshake the reader writes the next
//!   message itself, as far as the socket takes it without waiting, and
//!   leaves the rest to the writer);
//! - per call there is at most one task hand-off each way: the caller
//!   queues the CALL and wakes the writer; the reader leaves the result
//!   in the caller's slot and wakes the caller when the REPLY arrives. A
//!   handler that is ready on its first poll is answered without a task
//!   of its own;
//! - backpressure: when a connection's send queue is over
//!   `Config::send_buffer`, `call` and `send` wait for the writer to take
//!   it, instead of buffering without bound.
//!
//! Errors: one that wraps another (an I/O error, the core's reason, a
//! file's damage: [`ConnectError::Dial`], [`StartError::TrustList`],
//! [`TrustChangeError::File`], ...) returns it from
//! [`source`](std::error::Error::source) and does not repeat it in its
//! own message, so that a reporter that walks the chain (anyhow's
//! `{:#}`, eyre) says each cause once. Its `Display` alone says the
//! outer error only; [`ErrorChain`] shows the whole chain on one line,
//! as the node's own logs do. An error of a data directory's file names
//! it, what it is and its path ([`persist::FileError`]): `io: trust list
//! /var/lib/node/trust: not a regular file`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod access;
mod addr;
mod book_edits;
pub mod book_file;
mod book_save;
mod cbor;
mod cbor_shape;
mod completion;
mod config;
mod context;
mod dialer;
mod dialing;
pub mod dirlock;
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
pub mod discovery;
mod error;
mod events;
mod file_error;
mod handlers;
mod last_seen;
mod lifecycle;
mod node;
pub mod persist;
mod private_files;
mod reach;
mod rng;
mod runtime;
#[cfg(feature = "serde")]
mod service;
mod shared;
pub mod socket_end;
pub mod socket_start;
mod stats;
mod stoppable;
mod tasks;
#[cfg(test)]
mod test_log;
pub mod text;
pub mod ticket;
mod turns;
mod wake_flag;
mod write_half;

pub use addr::PeerAddr;
pub use cbor::{
    BAD_REQUEST, CborFuture, EncodeError, TypedCallError, TypedSendError, bad_request,
    bad_request_reason, cbor_handler, cbor_handler_ctx,
};
pub use cbor_shape::{
    CBOR_HEAP_SLACK, CborShapeError, MAX_CBOR_DEPTH, MAX_CBOR_HEAP_PER_BYTE, check_cbor,
};
pub use config::{MAX_EVENTS_CAPACITY, NodeConfig};
pub use context::{CallKind, Context};
pub use dirlock::{DirLock, LockError};
pub use error::{
    CallErrorExt, ConnectError, ErrorChain, PairTicketError, StartError, TrustChangeError,
};
pub use events::{EventStream, NodeEvent};
pub use handlers::HandlerResult;
pub use node::Node;
pub use persist::DataDir;
pub use runtime::{BoxFuture, BoxRead, BoxWrite, Runtime, Socket, Transport, WrapStream};
#[cfg(feature = "serde")]
pub use service::{Service, ServiceError};
pub use shared::MAX_QUEUED_EVENTS;
pub use stats::NodeStats;
pub use ticket::{Ticket, TicketError};

/// The types of the API that every runtime crate re-exports as they are
/// (`pub use peernet_driver::api::*`), next to its own `Node` alias.
pub mod api {
    #[cfg(feature = "mdns")]
    pub use crate::discovery;
    pub use crate::{
        CBOR_HEAP_SLACK, CallErrorExt, CallKind, CborFuture, CborShapeError, ConnectError, Context,
        DataDir, DirLock, EncodeError, ErrorChain, EventStream, HandlerResult, LockError,
        MAX_CBOR_DEPTH, MAX_CBOR_HEAP_PER_BYTE, MAX_EVENTS_CAPACITY, MAX_QUEUED_EVENTS, NodeConfig,
        NodeEvent, NodeStats, PairTicketError, PeerAddr, StartError, Ticket, TicketError,
        TrustChangeError, TypedCallError, TypedSendError, cbor_handler, cbor_handler_ctx,
        check_cbor,
    };
    #[cfg(feature = "serde")]
    pub use crate::{Service, ServiceError};
    pub use crate::{book_file, persist, text, ticket};
    pub use bytes::Bytes;
    pub use peernet_proto::ConnectError as CoreConnectError;
    pub use peernet_proto::book::canonical as canonical_addr;
    pub use peernet_proto::{
        Access, CallCounts, CallError, CloseReason, Config, ConfigError, Counters, Direction,
        GoodbyeCode, Handle, HandshakeCounts, HandshakeError, Identity, InvalidHandle, Label,
        PeerId, ProtocolVersion, RecordError, RejectCode, RejectCounts, ReplyStatus, SendError,
        Side, Stats, StatusCounts, TrustList,
    };
    // The errors of the types above and of `StartError`'s files, so that
    // an application names them without a dependency on the core:
    // `PeerId::from_str` (and `TicketError::PeerId`), `Label::new`, and
    // the damaged identity and trust files `StartError::Identity` and
    // `StartError::TrustList` carry.
    pub use peernet_proto::{
        AddrEntry, AddrHistory, AddrSource, BookError, DialConfig, DialFailure, is_dialable,
    };
    pub use peernet_proto::{
        InvalidIdentity, InvalidLabel, InvalidPeerId, TrustListError, TrustListErrorKind,
    };
}

pub use api::*;
