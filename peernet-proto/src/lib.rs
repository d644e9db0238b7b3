#![no_std]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod identity;
pub mod time;

pub use identity::{Identity, InvalidIdentity, InvalidPeerId, PeerId};
pub use time::Instant;
