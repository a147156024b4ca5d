//! What tollgate does, one service per concern, each over the store, the clock and the settings
//! it needs: the HTTP layer parses and authorises a request, calls one service and shows the
//! result; the CLI calls the same services.

pub mod access;
pub mod audit;
pub mod checkout;
pub mod erasure;
pub mod error;
pub mod gift_subscriptions;
pub mod gifts;
pub mod idempotency;
pub mod keys;
pub mod licences;
pub mod limits;
pub mod mirror;
pub mod outbound;
pub mod plans;
pub mod readers;
pub mod reconcile;
pub mod reports;
pub mod sessions;
pub mod storage;
pub mod teams;
pub mod webhooks;

pub use error::ServiceError;
