//! The messages of typed calls' errors ([`TypedCallError`](crate::TypedCallError),
//! `ServiceError`): what of a handler's value and of a peer's words
//! they show, and the methods the two share, written once.

use std::fmt;

use peernet_proto::CallError;

/// A handler's error value, as a typed call's error message ends: its
/// `Debug` form (which escapes the peer's text), cut after
/// [`HANDLER_ERROR_SHOWN`] bytes so that a peer's long value cannot
/// flood a log line.
pub(crate) struct HandlerValue<'a, E>(pub(crate) &'a E);

/// The most of a handler's error value a message shows, in bytes; and of
/// a peer's other words in a typed call's error ([`PeerWords`]), and of
/// a decoder's message a typed callee sends back
/// ([`bad_request`](crate::bad_request)).
const HANDLER_ERROR_SHOWN: usize = 256;

/// Words that came from a peer (a callee's reason for refusing our
/// arguments, a decoder's message that quotes its reply), as a typed
/// call's error message ends: their first [`HANDLER_ERROR_SHOWN`] bytes
/// (cut on a character boundary, `…` when cut), escaped
/// ([`shown`](crate::text::shown)) after the cut, so that no escape is
/// cut in two. A callee can make them as long as a frame (1 MiB by
/// default): shown whole, every message of such an error (a log line
/// per failed call) was that long, or several times longer escaped.
pub(crate) struct PeerWords<'a>(pub(crate) &'a str);

impl<'a> PeerWords<'a> {
    /// What of the words is shown, as it is (unescaped): their first
    /// [`HANDLER_ERROR_SHOWN`] bytes, cut on a character boundary; and
    /// whether anything was left out.
    pub(crate) fn start(&self) -> (&'a str, bool) {
        let mut end = self.0.len().min(HANDLER_ERROR_SHOWN);
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        (&self.0[..end], end < self.0.len())
    }
}

impl fmt::Display for PeerWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, cut) = self.start();
        write!(f, "{}", crate::text::shown(start))?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug> fmt::Display for HandlerValue<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_cut(f, format_args!("{:?}", self.0), false)
    }
}

/// A handler's error value by its own `Display`, as
/// `with_value_display` of a typed call's error shows it: escaped
/// ([`escaped`](crate::text::escaped): a `Display` may write a peer's
/// text as it is, where `Debug` escapes it), then cut after
/// [`HANDLER_ERROR_SHOWN`] bytes as [`HandlerValue`] is.
pub(crate) struct HandlerText<'a, E>(pub(crate) &'a E);

impl<E: fmt::Display> fmt::Display for HandlerText<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_cut(f, format_args!("{}", self.0), true)
    }
}

/// A typed call's error ([`TypedCallError`](crate::TypedCallError),
/// `ServiceError`): the one place that says what the two share, the
/// call's own failure and the handler's value, so that their
/// `is_transient`, `with_value_display`, `Display` and `source`
/// ([`typed_error_methods!`]) are written once.
pub(crate) trait TypedError {
    /// The handler's error type.
    type Value;
    /// The call's own failure, if the error is one (its `Call` variant).
    fn call(&self) -> Option<&CallError>;
    /// The handler's error value, if the error is one (its `Handler`
    /// variant).
    fn handler(&self) -> Option<&Self::Value>;
    /// Writes the message of every other variant (the type's own: bad
    /// requests, replies that do not decode, arguments that do not
    /// encode); never called for the two above.
    fn fmt_other(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Writes the error's message, the handler's value by `value`: the
    /// call's failure as it reads, the handler's value after `the
    /// handler answered with an error: `, the rest as the type says.
    fn fmt_with(
        &self,
        f: &mut fmt::Formatter<'_>,
        value: fn(&Self::Value, &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        if let Some(error) = self.call() {
            return fmt::Display::fmt(error, f);
        }
        if let Some(shown) = self.handler() {
            f.write_str("the handler answered with an error: ")?;
            return value(shown, f);
        }
        self.fmt_other(f)
    }
}

/// A typed call's error with its handler's value by its `Display`
/// ([`HandlerText`]): what `with_value_display` returns.
pub(crate) struct ValueShown<'a, T>(pub(crate) &'a T);

impl<T: TypedError> fmt::Display for ValueShown<'_, T>
where
    T::Value: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .fmt_with(f, |value, f| write!(f, "{}", HandlerText(value)))
    }
}

/// A typed call's error with its handler's value by its `Debug` form
/// ([`HandlerValue`]): its `Display`.
pub(crate) fn fmt_debug<T: TypedError>(error: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result
where
    T::Value: fmt::Debug,
{
    error.fmt_with(f, |value, f| write!(f, "{}", HandlerValue(value)))
}

/// Whether trying a typed call again later may work: only its call's
/// own failure of the moment ([`CallError::is_transient`]).
pub(crate) fn is_transient<T: TypedError>(error: &T) -> bool {
    error.call().is_some_and(CallError::is_transient)
}

/// The public methods and trait impls of a typed call's error `$error`
/// (an enum with the type parameter `E` and the variants `Call` and
/// `Handler`), written once for both, their documentation too:
/// `is_transient` and `with_value_display`, its [`TypedError`] (the
/// arms of its other variants' messages given in `fmt_other(f) { … }`),
/// its `Display` (the handler's value by its `Debug` form) and its
/// `Error` (the call's failure stands for itself, as
/// `#[error(transparent)]`; the rest say all in their message).
macro_rules! typed_error_methods {
    ($error:ident; fmt_other($f:ident) { $($other:tt)* }) => {
        impl<E> $error<E> {
            /// Whether trying the same call again later may work: the
            /// call itself failed for a reason of the moment
            /// ([`CallError::is_transient`](peernet_proto::CallError::is_transient):
            /// a timeout, an overloaded or restarting callee, a lost
            /// connection). False for the handler's own error, a request
            /// the callee could not decode, a reply we could not decode
            /// and a request that did not encode: the same call fails
            /// the same way.
            ///
            /// ```
            #[doc = concat!("use peernet_driver::{CallError, ", stringify!($error), "};")]
            ///
            #[doc = concat!("assert!(", stringify!($error), "::<String>::Call(CallError::Overloaded).is_transient());")]
            #[doc = concat!("assert!(!", stringify!($error), "::Handler(\"no\".to_string()).is_transient());")]
            /// ```
            pub fn is_transient(&self) -> bool {
                $crate::error::typed::is_transient(self)
            }

            /// This error's message, but with a handler's error value
            /// shown by its own `Display` (escaped, its first 256 bytes)
            /// where the error's `Display` shows its `Debug` form (which
            /// every error type has; a `Display` only one written to be
            /// read): `the handler answered with an error: needs 500 ms,
            /// 99 left` rather than `… WouldMissDeadline { left_ms: 99,
            /// needs_ms: 500 }`. Every other variant reads as the
            /// error's `Display`.
            ///
            /// ```
            #[doc = concat!("use peernet_driver::", stringify!($error), ";")]
            ///
            #[doc = concat!("let refused = ", stringify!($error), "::Handler(\"no such user\\n\".to_string());")]
            /// assert_eq!(
            ///     refused.to_string(),
            ///     r#"the handler answered with an error: "no such user\n""#
            /// );
            /// assert_eq!(
            ///     refused.with_value_display().to_string(),
            ///     r"the handler answered with an error: no such user\n"
            /// );
            /// ```
            pub fn with_value_display(&self) -> impl std::fmt::Display + '_
            where
                E: std::fmt::Display,
            {
                $crate::error::typed::ValueShown(self)
            }
        }

        impl<E> $crate::error::TypedError for $error<E> {
            type Value = E;

            fn call(&self) -> Option<&peernet_proto::CallError> {
                match self {
                    $error::Call(e) => Some(e),
                    _ => None,
                }
            }

            fn handler(&self) -> Option<&E> {
                match self {
                    $error::Handler(e) => Some(e),
                    _ => None,
                }
            }

            fn fmt_other(&self, $f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    // (written by `fmt_with`)
                    $error::Call(_) | $error::Handler(_) => Ok(()),
                    $($other)*
                }
            }
        }

        impl<E: std::fmt::Debug> std::fmt::Display for $error<E> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::error::typed::fmt_debug(self, f)
            }
        }

        impl<E: std::fmt::Debug> std::error::Error for $error<E> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                $crate::error::TypedError::call(self).and_then(std::error::Error::source)
            }
        }
    };
}
pub(crate) use typed_error_methods;

/// Writes `args` to `out`, escaped if `escape`, at most
/// [`HANDLER_ERROR_SHOWN`] bytes of it (cut on a character boundary,
/// `…` after it when cut).
fn write_cut(out: &mut fmt::Formatter<'_>, args: fmt::Arguments<'_>, escape: bool) -> fmt::Result {
    /// Passes on at most `left` bytes, cut on a character boundary.
    struct Cut<'a, 'b> {
        out: &'a mut fmt::Formatter<'b>,
        left: usize,
        cut: bool,
        escape: bool,
    }
    impl Cut<'_, '_> {
        fn pass(&mut self, s: &str) -> fmt::Result {
            if self.cut {
                return Ok(());
            }
            let mut end = s.len().min(self.left);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.left -= end;
            self.cut = end < s.len();
            self.out.write_str(&s[..end])
        }
    }
    impl fmt::Write for Cut<'_, '_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if !self.escape {
                return self.pass(s);
            }
            // (escaped a character at a time, so that the cut falls
            // between two escapes, never inside one)
            for c in s.chars() {
                let mut buf = [0; 4];
                let one = c.encode_utf8(&mut buf).as_bytes();
                let piece = crate::text::escape(one, crate::text::Layout::Line);
                if self.cut || piece.len() > self.left {
                    self.cut = true;
                    return Ok(());
                }
                self.left -= piece.len();
                self.out.write_str(&piece)?;
            }
            Ok(())
        }
    }
    let mut cut = Cut {
        out,
        left: HANDLER_ERROR_SHOWN,
        cut: false,
        escape,
    };
    fmt::write(&mut cut, args)?;
    if cut.cut {
        cut.out.write_str("…")?;
    }
    Ok(())
}
