//! What the node serves: exposing a handle to peers (`expose*`, with or
//! without an access rule or a call context) and closing it (`unexpose`).

use std::future::Future;

use bytes::Bytes;
use peernet_proto::{Access, InvalidHandle, PeerId};

use crate::access;
use crate::context::Context;
use crate::handlers::{self, HandlerResult};
use crate::runtime::Runtime;
use crate::shared::Phase;

use super::Node;

impl<R: Runtime> Node<R> {
    /// Exposes `handle` to every trusted peer. `handler` runs for each call
    /// with the caller's proven PeerId and the arguments. `Err(bytes)`
    /// reaches the caller as `CallError::HandlerError(bytes)`; a handler
    /// that panics answers `handler_panicked` and the connection lives.
    /// For CBOR-typed arguments and results, wrap the handler in
    /// [`cbor_handler`](crate::cbor_handler); for the call's deadline and
    /// cancellation signal, expose it with [`Node::expose_ctx`].
    ///
    /// A handler that finishes on its first poll costs no task. One that
    /// waits runs as a task of its own, which a CANCEL (or the caller's
    /// timeout, or the connection's end) stops. A peer has at most
    /// `max_inbound_calls` of each running: a CALL beyond is answered
    /// `overloaded`, a SEND beyond is dropped ([`Node::dropped_sends`]).
    ///
    /// A panic is caught, but only after the process's panic hook has run
    /// on the thread that polled the handler: the default hook writes to
    /// stderr and, with `RUST_BACKTRACE` set, captures and prints a
    /// backtrace, which costs far more than answering the call (the
    /// symbols are read from the binary's debug information). A peer
    /// allowed to call a handler that can panic can make the node do that
    /// work in a loop; this node logs such panics rate-limited per peer,
    /// but the hook is the application's: install one that stays quiet
    /// for handler panics if that matters.
    ///
    /// # Errors
    ///
    /// [`InvalidHandle`] for an empty name or one over 255 bytes (the
    /// same for every `expose` method). On a node already closed (shut
    /// down, or its last handle dropped) nothing is installed: the handler
    /// (and a rule) are dropped at once, and `Ok` is returned.
    pub fn expose<F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.expose_to(handle, Access::Anyone, handler)
    }

    /// Exposes `handle` to the trusted peers `access` allows (a set, or a
    /// rule over the caller's PeerId: [`Access::rule`]); others get
    /// `forbidden`.
    ///
    /// A rule runs as each call arrives, under the node's lock: it must
    /// be quick and self-contained (capture what it needs). A rule that
    /// panics, or that calls back into the node, denies the call and is
    /// logged at `error`; the connection and the node go on serving.
    pub fn expose_to<F, Fut>(
        &self,
        handle: &str,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        F: Fn(PeerId, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.install(handle, access, handlers::boxed(handler))
    }

    /// [`Node::expose`] with a handler that gets the call's [`Context`]:
    /// the caller, what is left of its timeout (to hand on to nested calls,
    /// see [`Node::call_in`]), a cancellation signal, and whether it is a
    /// CALL or a SEND. For CBOR-typed arguments and results, wrap the
    /// handler in [`cbor_handler_ctx`](crate::cbor_handler_ctx).
    ///
    /// ```no_run
    /// # async fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>, store: peernet_driver::PeerId) {
    /// let inner = node.clone();
    /// node.expose_ctx("lookup", move |ctx, key| {
    ///     let node = inner.clone();
    ///     // asks `store` within what is left of our caller's budget
    ///     async move { node.call_in(&ctx, &store, "get", key).await.map_err(|_| "store".into()) }
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn expose_ctx<F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.expose_ctx_to(handle, Access::Anyone, handler)
    }

    /// [`Node::expose_to`] with a handler that gets the call's [`Context`]
    /// (see [`Node::expose_ctx`]).
    pub fn expose_ctx_to<F, Fut>(
        &self,
        handle: &str,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.install(handle, access, handlers::boxed_ctx(handler))
    }

    fn install(
        &self,
        handle: &str,
        access: Access,
        handler: handlers::DynHandler,
    ) -> Result<(), InvalidHandle> {
        peernet_proto::Handle::new(handle)?;
        let access = access::contained(handle, access);
        // (a handler replaced is dropped after the lock: its captured
        // state is the application's, and its drop may take the lock)
        let mut refused = None;
        let replaced = self.shared.with_core(|inner, _| {
            if inner.phase == Phase::Closed {
                // Nothing is served any more, and what it would keep (a
                // handle of this node, say) would keep the closed node's
                // state alive for good: it goes, after the lock.
                refused = Some((access, handler));
                return Ok(None);
            }
            inner.ep.expose(handle, access)?;
            Ok(inner.handlers.insert(handle.to_owned(), handler))
        })?;
        drop((replaced, refused));
        Ok(())
    }

    /// Closes `handle`: later calls get `no_such_handle`; calls already
    /// running finish. Returns false if it was not exposed.
    pub fn unexpose(&self, handle: &str) -> bool {
        let (removed, was) = self
            .shared
            .with_core(|inner, _| (inner.handlers.remove(handle), inner.ep.unexpose(handle)));
        // (after the lock, as in `install`)
        drop(removed);
        was
    }
}
