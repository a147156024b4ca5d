//! Why an event's object cannot be read.

/// Why an event's object cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A field the change cannot do without is missing or of the wrong kind.
    #[error("`{0}` is missing or not what Stripe sends")]
    Missing(&'static str),
    /// A status Stripe did not have when tollgate was written.
    #[error("unknown {kind} `{value}`")]
    UnknownStatus {
        /// What kind of status.
        kind: &'static str,
        /// The value.
        value: String,
    },
}
