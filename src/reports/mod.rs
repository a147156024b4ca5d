//! Finance reports: revenue per period and MRR movements per month, computed from the invoices,
//! refunds and subscription history the mirror keeps (`domain::report_inputs`; the
//! `services::reports` loader reads them). Every figure is computed again from that record
//! on each request, so the same record always gives the same figures, whatever order Stripe's
//! events arrived in.

pub mod disputes;
pub mod gifts;
pub mod licences;
pub mod money;
pub mod mrr;
pub mod periods;
pub mod recognized;
pub mod revenue;
pub mod table;
