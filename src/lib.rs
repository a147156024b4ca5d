//! tollgate: subscription billing and entitlement service for publishers with a metered paywall.

pub mod access;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod mirror;
pub mod rate_limit;
pub mod reconcile;
pub mod reports;
pub mod routes;
pub mod startup;
pub mod store;
pub mod stripe;
pub mod telemetry;
pub mod tokens;
