//! Typed calls: CBOR-encoded arguments and results (`minicbor`) on top of
//! the bytes API.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use minicbor::{Decode, Encode};
use peernet_proto::{Access, CallError, InvalidHandle, PeerId};

use crate::node::Node;
use crate::runtime::Runtime;

/// A typed call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedCallError<E> {
    /// The call itself failed.
    #[error(transparent)]
    Call(CallError),
    /// The handler failed with its own (decoded) error value.
    #[error("handler error")]
    Handler(E),
    /// The reply did not decode as the expected type.
    #[error("reply does not decode: {0}")]
    Decode(minicbor::decode::Error),
}

impl<R: Runtime> Node<R> {
    /// Calls `handle` with `args` encoded as CBOR and decodes the result
    /// (or the handler's error value) from CBOR.
    pub async fn call_cbor<A, T, E>(
        &self,
        peer: &PeerId,
        handle: &str,
        args: &A,
        timeout: impl Into<Option<std::time::Duration>>,
    ) -> Result<T, TypedCallError<E>>
    where
        A: Encode<()>,
        T: for<'b> Decode<'b, ()>,
        E: for<'b> Decode<'b, ()>,
    {
        let args =
            minicbor::to_vec(args).map_err(|_| TypedCallError::Call(CallError::MessageTooLarge))?;
        match self.call(peer, handle, args, timeout).await {
            Ok(body) => minicbor::decode(&body).map_err(TypedCallError::Decode),
            Err(CallError::HandlerError(body)) => match minicbor::decode(&body) {
                Ok(e) => Err(TypedCallError::Handler(e)),
                Err(d) => Err(TypedCallError::Decode(d)),
            },
            Err(e) => Err(TypedCallError::Call(e)),
        }
    }

    /// Sends `args` encoded as CBOR, fire-and-forget (see [`Node::send`]).
    pub async fn send_cbor<A>(&self, peer: &PeerId, handle: &str, args: &A) -> Result<(), CallError>
    where
        A: Encode<()>,
    {
        let args = minicbor::to_vec(args).map_err(|_| CallError::MessageTooLarge)?;
        self.send(peer, handle, args).await
    }

    /// Exposes a typed handler to every trusted peer: arguments decoded
    /// from CBOR, result and error value encoded as CBOR. Arguments that do
    /// not decode are answered `handler_error` with an empty body, without
    /// running the handler.
    pub fn expose_cbor<A, T, E, F, Fut>(&self, handle: &str, handler: F) -> Result<(), InvalidHandle>
    where
        A: for<'b> Decode<'b, ()> + Send + 'static,
        T: Encode<()> + Send + 'static,
        E: Encode<()> + Send + 'static,
        F: Fn(PeerId, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.expose_cbor_to(handle, Access::Anyone, handler)
    }

    /// [`Node::expose_cbor`] for the trusted peers `access` allows.
    pub fn expose_cbor_to<A, T, E, F, Fut>(
        &self,
        handle: &str,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        A: for<'b> Decode<'b, ()> + Send + 'static,
        T: Encode<()> + Send + 'static,
        E: Encode<()> + Send + 'static,
        F: Fn(PeerId, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.expose_to(handle, access, move |peer, args: Bytes| {
            let handler = handler.clone();
            let decoded = minicbor::decode::<A>(&args);
            async move {
                let args = decoded.map_err(|_| Bytes::new())?;
                match handler(peer, args).await {
                    Ok(value) => minicbor::to_vec(&value)
                        .map(Bytes::from)
                        .map_err(|_| Bytes::new()),
                    Err(error) => Err(minicbor::to_vec(&error)
                        .map(Bytes::from)
                        .unwrap_or_default()),
                }
            }
        })
    }
}
