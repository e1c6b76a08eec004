//! iumgate — a reverse proxy that hands Atlassian Data Center licences out
//! dynamically to the casual users who are active.
//!
//! One request, top to bottom: `proxy` accepts it, `identity` says who it is,
//! `gate` decides (forward, admit, wait), `proxy` forwards it, and `gate`
//! learns from the upstream's answer. See `docs/ARCHITECTURE.md`.

pub mod access_log;
pub mod admin;
pub mod alerts;
pub mod app;
pub mod audit;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod directory;
pub mod gate;
pub mod identity;
pub mod jobs;
pub mod line_writer;
pub mod pages;
pub mod passthrough;
pub mod proxy;
pub mod sso;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod wire;

// The parts that need none of the proxy live in their own crates (crates/);
// re-exported so `iumgate::pool::…`, `crate::product::…` keep their paths.
pub use iumgate_analyze as analyze;
pub use iumgate_core::{pool, product, user};
pub use iumgate_sim as sim;
