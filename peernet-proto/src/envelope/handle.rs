//! [`Handle`]: the name of a callable function on a peer.

use alloc::string::String;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};

use bytes::Bytes;
use smol_str::SmolStr;

/// Longest handle name, in bytes.
pub const MAX_HANDLE_LEN: usize = 255;

/// The name of a callable function on a peer: 1 to 255 bytes of UTF-8.
///
/// Stored as a [`SmolStr`]: a name of up to 23 bytes (nearly all of them)
/// lives inline, so making, cloning and dropping one neither allocates nor
/// touches a shared reference count (a slice of the received frame did, twice
/// per call); a longer one is one shared allocation. UTF-8 is checked once,
/// at construction, so reading it as `&str` costs nothing. Compares, orders and hashes exactly like its
/// `str`, so a `HashMap<Handle, _>` or `BTreeMap<Handle, _>` can be looked up
/// with a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handle(pub(super) SmolStr);

/// Why a name is not a valid [`Handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidHandle {
    /// The name is empty.
    #[error("empty handle")]
    Empty,
    /// The name is longer than [`MAX_HANDLE_LEN`] bytes.
    #[error("handle of {len} bytes, over the limit of 255")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name is not UTF-8.
    #[error("handle is not valid UTF-8")]
    InvalidUtf8,
}

/// Checks a handle name's length (1 to [`MAX_HANDLE_LEN`] bytes).
pub(crate) const fn check_handle_len(len: usize) -> Result<(), InvalidHandle> {
    if len == 0 {
        Err(InvalidHandle::Empty)
    } else if len > MAX_HANDLE_LEN {
        Err(InvalidHandle::TooLong { len })
    } else {
        Ok(())
    }
}

impl Handle {
    /// A handle named `name` (copied).
    pub fn new(name: &str) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        Ok(Handle(SmolStr::new(name)))
    }

    /// A handle for a constant name, without copying.
    ///
    /// # Panics
    ///
    /// If `name` is empty or longer than [`MAX_HANDLE_LEN`] bytes; in a
    /// `const` item that is a compile error.
    pub const fn from_static(name: &'static str) -> Handle {
        assert!(!name.is_empty(), "empty handle");
        assert!(name.len() <= MAX_HANDLE_LEN, "handle over 255 bytes");
        Handle(SmolStr::new_static(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length of the name in bytes (1 to [`MAX_HANDLE_LEN`]).
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

// Exactly like `str`, which the `Borrow<str>` contract requires.
impl Hash for Handle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Handle {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Handle {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Handle {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Handle {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.as_str()).finish()
    }
}

impl TryFrom<&str> for Handle {
    type Error = InvalidHandle;
    fn try_from(name: &str) -> Result<Handle, InvalidHandle> {
        Handle::new(name)
    }
}

impl TryFrom<String> for Handle {
    type Error = InvalidHandle;
    /// Copies a name of up to 23 bytes inline; a longer one moves into
    /// one shared allocation.
    fn try_from(name: String) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        Ok(Handle(SmolStr::from(name)))
    }
}

impl TryFrom<Bytes> for Handle {
    type Error = InvalidHandle;
    /// Checks length and UTF-8, then stores the name like
    /// [`Handle::new`].
    fn try_from(name: Bytes) -> Result<Handle, InvalidHandle> {
        check_handle_len(name.len())?;
        let name = core::str::from_utf8(&name).map_err(|_| InvalidHandle::InvalidUtf8)?;
        Ok(Handle(SmolStr::new(name)))
    }
}
