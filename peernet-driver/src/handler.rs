//! Handlers: async functions of (caller, args) that the application
//! exposes under a handle name.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use peernet_proto::PeerId;

use crate::runtime::BoxFuture;

/// What a handler returns: the result bytes, or its own error bytes
/// (status `handler_error` on the caller's side).
pub type HandlerResult = Result<Bytes, Bytes>;

/// A handler as stored by the node.
pub(crate) type DynHandler = Arc<dyn Fn(PeerId, Bytes) -> BoxFuture<HandlerResult> + Send + Sync>;

/// Boxes an async function into a [`DynHandler`].
pub(crate) fn boxed<F, Fut>(handler: F) -> DynHandler
where
    F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |peer, args| Box::pin(handler(peer, args)))
}
