//! Typed services over serde (feature `serde`): a request type, its
//! response type, its error type and the handle name, defined once in a
//! [`Service`]; [`Node::call_service`] on the caller's side and
//! [`Node::expose_service`] on the callee's check them.
//!
//! Bodies are CBOR, written by `minicbor-serde` (structs as maps keyed by
//! field name, enums externally tagged). It was chosen by measurement
//! against `ciborium`: one encode and decode of a small struct (an id, a
//! name, four tags, a flag) took 958 ns with minicbor-serde, 2,324 ns with
//! ciborium and 737 ns with minicbor's own derive (release build, a busy
//! 2-core machine; `cargo run --release -p peernet-driver --example
//! cbor_codecs`); minicbor-serde also adds no new crate family, minicbor
//! being in the tree already.
//!
//! On the wire: the request is the CALL's arguments; the response is the
//! `ok` body; the handler's error is the `handler_error` body; a request
//! that does not decode is answered `handler_error` with a
//! [`bad_request`](crate::bad_request) body, which the caller reports as
//! [`ServiceError::BadRequest`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{Access, CallError, InvalidHandle, PeerId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cbor::{bad_request, bad_request_reason, bad_response};
use crate::cbor_shape::check_cbor;
use crate::context::Context;
use crate::error::PeerWords;
use crate::node::Node;
use crate::runtime::Runtime;

/// A typed service: its handle name and the types that cross the wire,
/// defined once and shared by both sides.
///
/// ```
/// use peernet_driver::Service;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Add { a: u32, b: u32 }
///
/// /// `add`: the sum, or an error if it overflows.
/// struct Adder;
///
/// impl Service for Adder {
///     const HANDLE: &'static str = "add";
///     type Request = Add;
///     type Response = u32;
///     type Error = String;
/// }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub trait Service: 'static {
    /// The handle name the service is exposed under.
    const HANDLE: &'static str;
    /// What the caller sends.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What the handler answers.
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// The handler's own error.
    type Error: Serialize + DeserializeOwned + Send + 'static;
}

/// A call to a typed [`Service`] failed.
///
/// Its message shows a handler's error value by its `Debug` form, cut
/// after 256 bytes, so it has one when `E: Debug`
/// ([`ServiceError::with_value_display`] shows it by its `Display`);
/// the callee's reason for a bad request and a decoder's message about
/// the reply (which may quote it) are shown escaped, their first 256
/// bytes only.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError<E> {
    /// The call itself failed (not connected, timeout, refused...).
    Call(CallError),
    /// The handler answered with its own error value.
    Handler(E),
    /// The callee could not decode our request as its handler's request
    /// type: the two sides disagree on the service's types.
    BadRequest(String),
    /// The reply (or the handler's error) did not decode as the service's
    /// type.
    BadResponse(String),
    /// The request did not encode (its `Serialize` impl failed); nothing
    /// was sent.
    Encode(String),
}

crate::error::typed_error_methods! {
    ServiceError;
    fmt_other(f) {
        ServiceError::BadRequest(why) => {
            write!(
                f,
                "the callee could not decode the request: {}",
                PeerWords(why)
            )
        }
        // (serde quotes what it could not take as it came, such as
        // an unknown variant's name: the callee's words)
        ServiceError::BadResponse(why) => {
            write!(f, "the reply does not decode: {}", PeerWords(why))
        }
        ServiceError::Encode(why) => write!(f, "the request does not encode: {why}"),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, String> {
    minicbor_serde::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Decodes a body from a peer: exactly one CBOR item, nested at most
/// [`MAX_CBOR_DEPTH`](crate::MAX_CBOR_DEPTH) deep (checked first: serde's
/// buffering of a tagged, untagged or flattened type recurses once per
/// level, whatever the type), and no denser than
/// [`MAX_CBOR_HEAP_PER_BYTE`](crate::MAX_CBOR_HEAP_PER_BYTE) allows (the
/// decoded value's room in its collections).
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    check_cbor(body).map_err(|e| e.to_string())?;
    minicbor_serde::from_slice(body).map_err(|e| e.to_string())
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<R: Runtime> Node<R> {
    /// Calls the service `S` (a value of it names it: usually a unit
    /// struct) on `peer` with `request`, at most `timeout`
    /// (`None`: no limit; in a handler, pass [`Context::timeout`]), and
    /// decodes the response.
    pub async fn call_service<S: Service>(
        &self,
        _service: S,
        peer: &PeerId,
        request: &S::Request,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<S::Response, ServiceError<S::Error>> {
        let args = encode(request).map_err(ServiceError::Encode)?;
        match self.call(peer, S::HANDLE, args, timeout).await {
            Ok(body) => decode(&body).map_err(ServiceError::BadResponse),
            Err(CallError::HandlerError(body)) => {
                if let Some(why) = bad_request_reason(&body) {
                    return Err(ServiceError::BadRequest(why));
                }
                match decode(&body) {
                    Ok(error) => Err(ServiceError::Handler(error)),
                    Err(why) => Err(ServiceError::BadResponse(why)),
                }
            }
            Err(error) => Err(ServiceError::Call(error)),
        }
    }

    /// Exposes the service `S` (named by a value of it) to every trusted
    /// peer, under [`Service::HANDLE`]: `handler` gets the
    /// call's [`Context`] and the decoded request; its response or error
    /// is encoded back. A request that does not decode (or whose items
    /// would take more room decoded than
    /// [`MAX_CBOR_HEAP_PER_BYTE`](crate::MAX_CBOR_HEAP_PER_BYTE) allows)
    /// is answered with a bad-request body without running `handler`.
    pub fn expose_service<S, F, Fut>(&self, service: S, handler: F) -> Result<(), InvalidHandle>
    where
        S: Service,
        F: Fn(Context, S::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S::Response, S::Error>> + Send + 'static,
    {
        self.expose_service_to(service, Access::Anyone, handler)
    }

    /// [`Node::expose_service`] for the trusted peers `access` allows.
    pub fn expose_service_to<S, F, Fut>(
        &self,
        _service: S,
        access: Access,
        handler: F,
    ) -> Result<(), InvalidHandle>
    where
        S: Service,
        F: Fn(Context, S::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S::Response, S::Error>> + Send + 'static,
    {
        self.expose_ctx_to(S::HANDLE, access, move |ctx, args: Bytes| {
            let peer = ctx.peer();
            let fut = decode::<S::Request>(&args).map(|request| handler(ctx, request));
            async move {
                match fut {
                    Err(why) => {
                        // (a field's text is logged as it is: serde quotes the
                        // caller's words in it, such as an unknown variant)
                        tracing::debug!(%peer, handle = S::HANDLE, why = %PeerWords(&why), "request does not decode");
                        Err(bad_request(&why))
                    }
                    Ok(fut) => match fut.await {
                        Ok(response) => encode(&response).map_err(|why| bad_response(&why)),
                        Err(error) => Err(encode(&error).unwrap_or_else(|why| bad_response(&why))),
                    },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceError;

    /// serde's ordinary messages are shown as they are, quotes and all;
    /// only what a terminal would act on or hide is escaped (quotes came
    /// out as `\"` when `escape_debug` did it).
    #[test]
    fn serdes_messages_keep_their_quotes() {
        let said = "invalid type: string \"a\u{1b}[2J\", expected `u32`";
        let shown = "invalid type: string \"a\\u{1b}[2J\", expected `u32`";
        let error = ServiceError::<()>::BadResponse(said.into());
        assert_eq!(
            error.to_string(),
            format!("the reply does not decode: {shown}")
        );
        let error = ServiceError::<()>::BadRequest(said.into());
        assert_eq!(
            error.to_string(),
            format!("the callee could not decode the request: {shown}")
        );
    }
}
