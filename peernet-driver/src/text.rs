//! Text that is not ours (a peer's words, a decoder's message that
//! quotes them, a path) made harmless for a terminal or a log line: the
//! core's one escaper ([`peernet_proto::text`]), which the driver's error
//! messages, the core's close reasons and the `peernet` tool all use.
//!
//! ```
//! use peernet_driver::text::{Layout, escape, escaped};
//!
//! let said = "unknown variant `\u{1b}[2J`, expected \"up\"";
//! assert_eq!(
//!     escape(said.as_bytes(), Layout::Line),
//!     r#"unknown variant `\u{1b}[2J`, expected "up""#
//! );
//! assert_eq!(escaped(said, Layout::Line).to_string(), escape(said.as_bytes(), Layout::Line));
//! ```

use std::path::Path;

pub use peernet_proto::text::{Escaped, Layout, escape, escaped, escapes, is_bidi_control};

/// A message that quotes a peer's words (a decoder's, serde's) as part
/// of one line of an error or a log: [`escaped`] in [`Layout::Line`],
/// written where it is shown.
pub(crate) fn shown(message: &str) -> Escaped<'_> {
    escaped(message, Layout::Line)
}

/// A path as the driver's error messages and log fields, and the
/// `peernet` tool's, show it: [`escaped`] in [`Layout::Line`], so that a
/// file or directory name holding a newline or a terminal's escape
/// sequence can neither forge a log line nor act on a terminal (a byte
/// that is not UTF-8 is shown as `\xNN`, where [`Path::display`] would
/// show `�`, so two names that differ only there are told apart). A
/// backslash is shown doubled, as every backslash the escaper shows.
///
/// ```
/// use peernet_driver::text::shown_path;
/// use std::path::Path;
///
/// assert_eq!(shown_path(Path::new("/srv/node\n")).to_string(), r"/srv/node\n");
/// # #[cfg(unix)] {
/// use std::os::unix::ffi::OsStrExt;
/// let path = Path::new(std::ffi::OsStr::from_bytes(b"/srv/x\xff"));
/// assert_eq!(shown_path(path).to_string(), r"/srv/x\xff");
/// # }
/// ```
pub fn shown_path(path: &Path) -> Escaped<'_> {
    escaped(path.as_os_str().as_encoded_bytes(), Layout::Line)
}
