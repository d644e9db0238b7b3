//! The runtime-agnostic async driver of peernet.
//!
//! [`Node`] is written once here, against the small [`Runtime`] trait;
//! `peernet-tokio`, `peernet-smol` and `peernet-async-std` each implement
//! `Runtime` and re-export `Node` for it, so the three offer the same API.
//! All protocol logic lives in [`peernet_proto`]: this crate moves bytes,
//! time and handler results between the runtime and the core.
//!
//! Per call there is at most one task hand-off each way: the caller
//! queues the CALL in the core and wakes the connection's writer; the
//! reader completes the caller's oneshot when the REPLY arrives. A
//! handler that is ready at once is answered without a task of its own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cbor;
mod error;
mod events;
mod handler;
mod node;
pub mod persist;
mod runtime;
mod shared;
mod tasks;

pub use cbor::TypedCallError;
pub use error::{ConnectError, StartError};
pub use events::{EventStream, NodeEvent};
pub use handler::HandlerResult;
pub use node::{Node, NodeConfig};
pub use persist::DataDir;
pub use runtime::{BoxFuture, BoxRead, BoxWrite, Runtime};

pub use bytes::Bytes;
pub use peernet_proto::{
    self as proto, Access, CallError, CloseReason, Config, Direction, GoodbyeCode, Identity,
    InvalidHandle, Label, PeerId, RejectCode, Side, TrustList,
};
