//! Typed calls: CBOR-encoded arguments and results (`minicbor`) on top of
//! the bytes API.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{Either, Map};
use minicbor::{Decode, Encode};
use peernet_proto::{CallError, PeerId, SendError};

use crate::handlers::HandlerResult;

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
    /// The arguments did not encode (their `Encode` impl failed); nothing
    /// was sent.
    #[error("arguments do not encode: {0}")]
    Encode(EncodeError),
}

/// A typed send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedSendError {
    /// The send itself was refused.
    #[error(transparent)]
    Send(SendError),
    /// The arguments did not encode (their `Encode` impl failed); nothing
    /// was sent.
    #[error("arguments do not encode: {0}")]
    Encode(EncodeError),
}

/// Why a value did not encode as CBOR (an `Encode` impl reported an
/// error; writing to memory itself cannot fail).
pub type EncodeError = minicbor::encode::Error<Infallible>;

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
        let args = minicbor::to_vec(args).map_err(TypedCallError::Encode)?;
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
    pub async fn send_cbor<A>(
        &self,
        peer: &PeerId,
        handle: &str,
        args: &A,
    ) -> Result<(), TypedSendError>
    where
        A: Encode<()>,
    {
        let args = minicbor::to_vec(args).map_err(TypedSendError::Encode)?;
        self.send(peer, handle, args)
            .await
            .map_err(TypedSendError::Send)
    }
}

/// The future of a [`cbor_handler`]: the typed handler's, with its outcome
/// encoded (no allocation of its own).
pub type CborFuture<Fut, T, E> =
    Either<Ready<HandlerResult>, Map<Fut, fn(Result<T, E>) -> HandlerResult>>;

/// Turns a typed async handler into a bytes handler for
/// [`Node::expose`] / [`Node::expose_to`]: arguments decoded from CBOR,
/// result and error value encoded as CBOR. Arguments that do not decode are
/// answered `handler_error` with an empty body, without running `handler`.
///
/// ```no_run
/// # async fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>) {
/// use peernet_driver::cbor_handler;
/// node.expose("add", cbor_handler(|_caller, (a, b): (u32, u32)| async move {
///     a.checked_add(b).ok_or("overflow")
/// }))
/// .unwrap();
/// # }
/// ```
pub fn cbor_handler<A, T, E, F, Fut>(
    handler: F,
) -> impl Fn(PeerId, Bytes) -> CborFuture<Fut, T, E> + Send + Sync + 'static
where
    A: for<'b> Decode<'b, ()>,
    T: Encode<()>,
    E: Encode<()>,
    F: Fn(PeerId, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>>,
{
    move |peer, args| match minicbor::decode::<A>(&args) {
        Ok(args) => Either::Right(handler(peer, args).map(encode_outcome as fn(_) -> _)),
        Err(_) => Either::Left(ready(Err(Bytes::new()))),
    }
}

fn encode_outcome<T: Encode<()>, E: Encode<()>>(outcome: Result<T, E>) -> HandlerResult {
    match outcome {
        Ok(value) => minicbor::to_vec(&value)
            .map(Bytes::from)
            .map_err(|_| Bytes::new()),
        Err(error) => Err(minicbor::to_vec(&error)
            .map(Bytes::from)
            .unwrap_or_default()),
    }
}
