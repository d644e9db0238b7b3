//! Workspace-level tests of peernet.
//!
//! - [`sim`]: a deterministic simulator that runs many real
//!   `peernet-proto` endpoints over a simulated network with faults and
//!   intruders, and checks named invariants after every step (driven by
//!   `tests/simulation.rs` and `tests/sim_scenarios.rs`).

pub mod sim;
