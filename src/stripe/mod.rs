//! Stripe: webhook signatures and the events they carry.

pub mod client;
pub mod event;
pub mod objects;
pub mod signature;
