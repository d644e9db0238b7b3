//! The protocol's numbered codes (REPLY status, GOODBYE code, REJECT code)
//! share one shape: a number on the wire, a name in the spec, and a
//! fallback the spec assigns to numbers it does not define. One macro
//! writes that shape, so the three tables cannot drift apart.

/// Defines a code enum with `code`, `try_from_code`, `from_code` (unknown
/// codes read as the spec's fallback), `name` and `Display`.
macro_rules! wire_code {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal, )+
        }
        unknown => $fallback:ident, $fallback_doc:literal
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $code, )+
        }

        impl $name {
            /// The code on the wire.
            pub const fn code(self) -> $repr {
                self as $repr
            }

            /// The meaning of a code, or `None` for a code this version
            /// does not know.
            pub const fn try_from_code(code: $repr) -> Option<$name> {
                match code {
                    $( $code => Some($name::$variant), )+
                    _ => None,
                }
            }

            #[doc = $fallback_doc]
            pub const fn from_code(code: $repr) -> $name {
                match $name::try_from_code(code) {
                    Some(known) => known,
                    None => $name::$fallback,
                }
            }

            /// The protocol's name for the code.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
