//! The one test kit of peernet (unpublished).
//!
//! Every harness that drives real `peernet-proto` endpoints builds on it:
//! the core's integration tests (`peernet-proto/tests`), the simulation
//! (`tests/src/sim`) and the fuzz targets (`fuzz/`).
//!
//! - [`link`]: a simulated transport between two endpoints: bytes in
//!   flight per direction, delivered in chunks, a FIN behind the last
//!   bytes, a capacity (backpressure) and a hold (a peer that stops
//!   reading or vanished);
//! - [`node`]: one endpoint, the events it produced, and optionally the
//!   [`model`] that checks every output it produces;
//! - [`world`]: N nodes joined by links on one virtual clock ([`World`]),
//!   and [`Pair`], the two-node view the core's tests use;
//! - [`model`]: the invariants, once: the named list ([`Invariant`]), the
//!   per-endpoint [`Model`], the table limits, and the checks on call
//!   results and closing reasons that the simulation and the fuzzers share;
//! - [`setup`]: identities, the test and fuzz configurations, endpoints
//!   built from seeds;
//! - [`heap`]: a global allocator counting live heap bytes, for tests of
//!   what a peer's input keeps alive.

pub mod heap;
pub mod link;
pub mod model;
pub mod node;
pub mod setup;
pub mod world;

pub use link::{Link, Pipe};
pub use model::{Breach, Invariant, Model, Rule};
pub use node::{Action, Node, call_results, policy};
pub use setup::{fuzz_config, identity, test_config, test_config_v2};
pub use world::{Net, Pair, Who, World};
