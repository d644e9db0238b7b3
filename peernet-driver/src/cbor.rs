//! Typed calls: CBOR-encoded arguments and results (`minicbor`) on top of
//! the bytes API.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{Either, Map};
use minicbor::{Decode, Encode};
use peernet_proto::{CallError, PeerId, SendError};

use crate::cbor_shape::check_cbor;
use crate::context::Context;
use crate::error::PeerWords;
use crate::handlers::HandlerResult;

use crate::node::Node;
use crate::runtime::Runtime;

/// A typed call failed.
///
/// Its message shows a handler's error value by its `Debug` form, cut
/// after 256 bytes, so it has one when `E: Debug`
/// ([`TypedCallError::with_value_display`] shows it by its `Display`);
/// the callee's reason for a bad request and a decoder's message about
/// the reply (which may quote it) are shown escaped, their first 256
/// bytes only.
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedCallError<E> {
    /// The call itself failed.
    Call(CallError),
    /// The handler failed with its own (decoded) error value.
    Handler(E),
    /// The reply did not decode as the expected type.
    Decode(minicbor::decode::Error),
    /// The callee could not decode our arguments as the type its handler
    /// takes (a [`bad_request`] body): the two sides disagree on the type.
    BadRequest(String),
    /// The arguments did not encode (their `Encode` impl failed); nothing
    /// was sent.
    Encode(EncodeError),
}

crate::error::typed_error_methods! {
    TypedCallError;
    fmt_other(f) {
        TypedCallError::Decode(e) => {
            // (a decoder's message may quote the callee's bytes)
            let why = e.to_string();
            write!(f, "reply does not decode: {}", PeerWords(&why))
        }
        TypedCallError::BadRequest(why) => write!(
            f,
            "the callee could not decode the arguments: {}",
            PeerWords(why)
        ),
        TypedCallError::Encode(e) => write!(f, "arguments do not encode: {e}"),
    }
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
    /// (or the handler's error value) from CBOR, at most `timeout` (as
    /// [`Node::call`]).
    ///
    /// The types are minicbor's (version 2, the context `()`): an
    /// application adds `minicbor = { version = "2", features =
    /// ["derive"] }` to its own `Cargo.toml` and derives `Encode` and
    /// `Decode` (each field numbered, `#[n(0)]`); standard types
    /// (integers, `String`, `Vec`, `Option`, tuples, `()`) work as they
    /// are. Name the handler's error type `E` even when only the result
    /// matters: the compiler cannot guess it
    /// (`let r: Result<u32, TypedCallError<String>> = …`). For serde
    /// types, the `serde` feature's `Service` defines
    /// the handle and the three types once for both sides.
    ///
    /// ```no_run
    /// # async fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>, peer: peernet_driver::PeerId) {
    /// use std::time::Duration;
    /// use peernet_driver::TypedCallError;
    ///
    /// let sum: Result<u32, TypedCallError<String>> =
    ///     node.call_cbor(&peer, "add", &(2u32, 3u32), Duration::from_secs(5)).await;
    /// match sum {
    ///     Ok(sum) => println!("{sum}"),
    ///     Err(TypedCallError::Handler(why)) => println!("refused: {why}"),
    ///     Err(e) if e.is_transient() => println!("try again later: {e}"),
    ///     Err(e) => println!("failed: {e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TypedCallError::Call`] as [`Node::call`] fails;
    /// [`TypedCallError::Handler`] with the handler's own error value;
    /// [`TypedCallError::BadRequest`] when the callee could not decode
    /// `args` as its handler's type; [`TypedCallError::Decode`] when the
    /// reply (or the error value) does not decode as `T` (or `E`);
    /// [`TypedCallError::Encode`] when `args` did not encode (nothing
    /// sent).
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
            Ok(body) => decode(&body).map_err(TypedCallError::Decode),
            Err(CallError::HandlerError(body)) => {
                if let Some(why) = bad_request_reason(&body) {
                    return Err(TypedCallError::BadRequest(why));
                }
                match decode(&body) {
                    Ok(e) => Err(TypedCallError::Handler(e)),
                    Err(d) => Err(TypedCallError::Decode(d)),
                }
            }
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
/// result and error value encoded as CBOR. Arguments that do not decode
/// (or are not exactly one CBOR item nested at most
/// [`MAX_CBOR_DEPTH`](crate::MAX_CBOR_DEPTH) deep, or whose items would
/// take more room decoded than
/// [`MAX_CBOR_HEAP_PER_BYTE`](crate::MAX_CBOR_HEAP_PER_BYTE) allows, see
/// [`check_cbor`](crate::check_cbor)) are answered `handler_error` with a
/// [`bad_request`] body, without running `handler` ([`Node::call_cbor`]
/// reports it as [`TypedCallError::BadRequest`]), and logged at `debug`.
///
/// The node's byte budgets count the arguments' bytes while `handler`
/// holds their decoded value: decoded to the standard types (strings,
/// `Vec`s, integers up to 64 bits, `f64`, `bool`, `Option`s of strings
/// and `Vec`s, structs and tuples of them) it takes at most 33 bytes of heap per byte of arguments,
/// plus 64 KiB, at its peak ([`MAX_CBOR_HEAP_PER_BYTE`](crate::MAX_CBOR_HEAP_PER_BYTE)
/// says how, and which types take more).
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
    move |peer, args| typed(&handler, peer, peer, &args)
}

/// [`cbor_handler`] for a handler that gets the call's [`Context`]: its
/// deadline ([`Context::timeout`]: refuse work that would outlive the
/// caller's wait) and its cancellation signal, as
/// [`Node::expose_ctx`](crate::Node::expose_ctx) gives them to a bytes
/// handler. Expose it with `expose_ctx` or `expose_ctx_to`. Arguments
/// that do not decode are answered as [`cbor_handler`] answers them.
///
/// ```no_run
/// # async fn demo<R: peernet_driver::Runtime>(node: peernet_driver::Node<R>) {
/// use std::time::Duration;
/// use peernet_driver::cbor_handler_ctx;
///
/// node.expose_ctx("resize", cbor_handler_ctx(|ctx, (w, h): (u32, u32)| async move {
///     // the caller waits at most this long: say so at once if too short
///     match ctx.timeout() {
///         Some(left) if left < Duration::from_secs(1) => Err("too little time".to_string()),
///         _ => Ok(w.saturating_mul(h)),
///     }
/// }))
/// .unwrap();
/// # }
/// ```
pub fn cbor_handler_ctx<A, T, E, F, Fut>(
    handler: F,
) -> impl Fn(Context, Bytes) -> CborFuture<Fut, T, E> + Send + Sync + 'static
where
    A: for<'b> Decode<'b, ()>,
    T: Encode<()>,
    E: Encode<()>,
    F: Fn(Context, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>>,
{
    move |ctx: Context, args| {
        let peer = ctx.peer();
        typed(&handler, peer, ctx, &args)
    }
}

/// One call of a typed handler (`called` is what it takes first: the
/// caller's PeerId, or the call's context): the arguments decoded, the
/// outcome encoded, or a [`bad_request`] answer without running it.
fn typed<C, A, T, E, F, Fut>(
    handler: &F,
    peer: PeerId,
    called: C,
    args: &[u8],
) -> CborFuture<Fut, T, E>
where
    A: for<'b> Decode<'b, ()>,
    T: Encode<()>,
    E: Encode<()>,
    F: Fn(C, A) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match decode::<A>(args) {
        Ok(args) => Either::Right(handler(called, args).map(encode_outcome as fn(_) -> _)),
        Err(error) => {
            let why = error.to_string();
            // (escaped: a decoder's message may quote the caller's bytes,
            // and a field's text is logged as it is)
            tracing::debug!(%peer, error = %PeerWords(&why), "arguments do not decode");
            Either::Left(ready(Err(bad_request(&why))))
        }
    }
}

/// Decodes a body from a peer: exactly one CBOR item, nested at most
/// [`MAX_CBOR_DEPTH`](crate::MAX_CBOR_DEPTH) deep, and no denser than
/// [`MAX_CBOR_HEAP_PER_BYTE`](crate::MAX_CBOR_HEAP_PER_BYTE) allows
/// (checked first, so that no recursive decoder meets a deeper one, and
/// no decoder allocates for a denser one).
fn decode<T: for<'b> Decode<'b, ()>>(body: &[u8]) -> Result<T, minicbor::decode::Error> {
    check_cbor(body).map_err(minicbor::decode::Error::message)?;
    minicbor::decode(body)
}

fn encode_outcome<T: Encode<()>, E: Encode<()>>(outcome: Result<T, E>) -> HandlerResult {
    match outcome {
        Ok(value) => minicbor::to_vec(&value)
            .map(Bytes::from)
            .map_err(|why| bad_response(&why.to_string())),
        Err(error) => minicbor::to_vec(&error)
            .map(Bytes::from)
            .map_or_else(|why| Err(bad_response(&why.to_string())), Err),
    }
}

/// The first element of a [`bad_response`] body.
const BAD_RESPONSE: &str = "peernet/bad-response";

/// The `handler_error` body for a result or error value that did not
/// encode (its `Encode` or `Serialize` impl failed):
/// `["peernet/bad-response", why]`, logged here at `warn`. A typed caller
/// does not decode it as its error type, and reports a reply that does
/// not decode.
///
/// `why` is cut and logged as a [`bad_request`]'s reason is: a value's
/// own `Encode` or `Serialize` impl wrote it, and it may quote the value
/// (what a peer sent, or a file), at any length.
pub(crate) fn bad_response(why: &str) -> Bytes {
    tracing::warn!(why = %PeerWords(why), "a typed handler's result does not encode");
    minicbor::to_vec((BAD_RESPONSE, &*cut(why)))
        .map(Bytes::from)
        .unwrap_or_default()
}

/// `words` cut to their first 256 bytes, on a character boundary, with
/// `…` after them when cut ([`PeerWords::start`]).
fn cut(words: &str) -> std::borrow::Cow<'_, str> {
    match PeerWords(words).start() {
        (start, true) => std::borrow::Cow::Owned(format!("{start}…")),
        (_, false) => std::borrow::Cow::Borrowed(words),
    }
}

/// The first element of a [`bad_request`] body.
pub const BAD_REQUEST: &str = "peernet/bad-request";

/// The `handler_error` body a typed callee (a [`cbor_handler`], or a serde
/// service) answers when the arguments do not decode as the type its
/// handler takes: the CBOR array `["peernet/bad-request", reason]` (two
/// text strings). PROTOCOL.md has no status of its own for it; a typed
/// caller recognises this body before decoding the handler's error type,
/// and reports it as its own error.
///
/// `reason` is cut to its first 256 bytes (on a character boundary,
/// `…` put after it when cut), as much as the caller's error shows: a
/// decoder's message may quote the caller's whole request, escaped and
/// longer than it, and a reply over the frame limit would reach the
/// caller as `too_large` rather than as a bad request.
pub fn bad_request(reason: &str) -> Bytes {
    let reason = cut(reason);
    let mut encoder = minicbor::Encoder::new(Vec::new());
    // (writing to a Vec cannot fail)
    let _ = encoder
        .array(2)
        .and_then(|e| e.str(BAD_REQUEST)?.str(&reason));
    Bytes::from(encoder.into_writer())
}

/// The reason of a [`bad_request`] body, if `body` is one.
pub fn bad_request_reason(body: &[u8]) -> Option<String> {
    let mut decoder = minicbor::Decoder::new(body);
    if decoder.array().ok()? != Some(2) || decoder.str().ok()? != BAD_REQUEST {
        return None;
    }
    let reason = decoder.str().ok()?.to_owned();
    (decoder.position() == body.len()).then_some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose `Encode` fails.
    struct Unencodable;

    impl<C> Encode<C> for Unencodable {
        fn encode<W: minicbor::encode::Write>(
            &self,
            _: &mut minicbor::Encoder<W>,
            _: &mut C,
        ) -> Result<(), minicbor::encode::Error<W::Error>> {
            Err(minicbor::encode::Error::message("cannot"))
        }
    }

    /// A value whose encoder says a great deal.
    struct Wordy;

    impl<C> Encode<C> for Wordy {
        fn encode<W: minicbor::encode::Write>(
            &self,
            _: &mut minicbor::Encoder<W>,
            _: &mut C,
        ) -> Result<(), minicbor::encode::Error<W::Error>> {
            Err(minicbor::encode::Error::message("é".repeat(1 << 20)))
        }
    }

    /// An encoder's words are cut before they are sent, as a bad
    /// request's are: whole, they made a reply over the frame limit.
    #[test]
    fn a_bad_responses_words_are_cut_before_they_are_sent() {
        let body = encode_outcome::<Wordy, u8>(Ok(Wordy)).expect_err("a handler error");
        let (tag, why): (String, String) = minicbor::decode(&body).unwrap();
        assert_eq!(tag, BAD_RESPONSE);
        assert!(why.len() <= 256 + "…".len(), "{} bytes", why.len());
        assert!(why.starts_with("éé") && why.ends_with('…'), "{why}");
    }

    #[test]
    fn a_result_that_does_not_encode_is_a_bad_response() {
        for outcome in [
            encode_outcome::<Unencodable, u8>(Ok(Unencodable)),
            encode_outcome::<u8, Unencodable>(Err(Unencodable)),
        ] {
            let body = outcome.expect_err("a handler error");
            let (tag, why): (String, String) = minicbor::decode(&body).unwrap();
            assert_eq!(tag, BAD_RESPONSE);
            assert!(why.contains("cannot"), "{why}");
        }
        assert_eq!(
            encode_outcome::<u8, u8>(Ok(7)).unwrap(),
            minicbor::to_vec(7u8).unwrap()
        );
    }

    /// The callee's words in a bad request are shown escaped: they come
    /// from the peer.
    #[test]
    fn a_bad_requests_reason_is_shown_escaped() {
        let error = TypedCallError::<()>::BadRequest("no\nFORGED \u{1b}[2J".into());
        assert_eq!(
            error.to_string(),
            "the callee could not decode the arguments: no\\nFORGED \\u{1b}[2J"
        );
    }

    /// A decoder's ordinary message is shown as it is, its quotes too;
    /// only what a terminal would act on or hide is escaped, and a
    /// backslash, as `\\` (quotes came out as `\"` when `escape_debug`
    /// did it).
    #[test]
    fn a_decoders_message_keeps_its_quotes() {
        let said = "unknown variant `x\"y`, expected \"up\" \u{202e}\u{200b}";
        let shown = "unknown variant `x\"y`, expected \"up\" \\u{202e}\\u{200b}";
        let error = TypedCallError::<()>::BadRequest(said.into());
        assert_eq!(
            error.to_string(),
            format!("the callee could not decode the arguments: {shown}")
        );
        let error = TypedCallError::<()>::Decode(minicbor::decode::Error::message(said));
        assert!(error.to_string().ends_with(shown), "{error}");
    }

    /// Review s52 (files): a decoder's message that quotes the caller's
    /// request whole was sent back whole, so a request near the frame
    /// limit got a reply over it (`too_large`, not a bad request). The
    /// reason sent is cut as the caller's error shows it.
    #[test]
    fn a_bad_requests_reason_is_cut_before_it_is_sent() {
        let said = format!("unknown variant `{}`", "é".repeat(1 << 20));
        let body = bad_request(&said);
        assert!(body.len() < 300, "{} bytes", body.len());
        // (the 120th `é` would end at byte 257: cut before it)
        let why = bad_request_reason(&body).unwrap();
        assert_eq!(why, format!("unknown variant `{}…", "é".repeat(119)));
    }

    #[test]
    fn bad_request_bodies_round_trip_and_nothing_else_is_one() {
        let body = bad_request("expected u32");
        assert_eq!(bad_request_reason(&body).as_deref(), Some("expected u32"));
        assert_eq!(bad_request_reason(b""), None);
        let other = minicbor::to_vec(("peernet/other", "x")).unwrap();
        assert_eq!(bad_request_reason(&other), None);
        let longer = minicbor::to_vec((BAD_REQUEST, "x", 1u8)).unwrap();
        assert_eq!(bad_request_reason(&longer), None);
        let mut trailing = body.to_vec();
        trailing.push(0);
        assert_eq!(bad_request_reason(&trailing), None);
    }
}
