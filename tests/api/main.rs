//! Black-box tests through HTTP and the command line. Each test runs on SQLite, or on
//! PostgreSQL when `TEST_DATABASE_URL` is set (a fresh database per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod access;
mod access_matrix;
mod audit;
mod checkout;
mod cli;
mod dashboard;
mod erasure;
mod fake_stripe;
mod faults;
mod finance;
mod gift_subscriptions;
mod gifts;
mod health;
mod helpers;
mod hostile;
mod idempotency;
mod keys;
mod licences;
mod log_capture;
mod mirror;
mod outbound;
mod plans;
mod problems;
mod rate_limits;
mod readers;
mod receiver;
mod reconcile;
mod reconcile_listings;
mod reports;
mod secrets;
mod sessions;
mod sqlite;
mod storage;
mod stripe_events;
mod teams;
mod tokens;
mod webhooks;
