//! What every route shares: the error type and its problem bodies, the key check, idempotent
//! POSTs, the shared state, the JSON body reader and paging.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod json;
pub mod paging;
pub mod paths;
pub mod state;
pub mod views;
