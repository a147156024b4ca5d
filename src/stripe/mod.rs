//! Stripe: webhook signatures and the events they carry.

pub mod event;
pub mod signature;
