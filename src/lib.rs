//! iumgate — a reverse proxy that hands Atlassian Data Center licences out
//! dynamically to the casual users who are active.
//!
//! One request, top to bottom: `proxy` accepts it, `identity` says who it is,
//! `gate` decides (forward, admit, wait), `proxy` forwards it, and `gate`
//! learns from the upstream's answer. See `docs/ARCHITECTURE.md`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod analyze;
pub mod app;
pub mod check;
pub mod clock;
pub mod config;
pub mod demo;
pub mod directory;
pub mod gate;
pub mod identity;
pub mod jobs;
pub mod pages;
pub mod passthrough;
pub mod pool;
pub mod product;
pub mod proxy;
pub mod sim;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod user;
pub mod wire;
