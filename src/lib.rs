//! tollgate: subscription billing and entitlement service for publishers with a metered paywall.
//!
//! Layers, each using only those before it: `domain`, `clock`, `config` (rules and values, no
//! I/O) ← `store`, `reports`, `tokens`, `stripe` (persistence, report arithmetic, token signing,
//! Stripe's API) ← `services` (what tollgate does) ← `http` (what every route shares) ←
//! `routes` (one module per resource) ← `startup`, `telemetry`. `tests/architecture.rs` holds
//! the code to it.

pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod reports;
pub mod routes;
pub mod services;
pub mod startup;
pub mod store;
pub mod stripe;
pub mod telemetry;
pub mod tokens;
