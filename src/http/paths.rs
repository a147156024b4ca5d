//! Ids in request paths that more than one resource reads.

use super::error::ApiError;
use crate::domain::ReaderId;

/// The reader id in a path: one that breaks the rule is refused before anything is read.
pub fn reader_id(raw: &str) -> Result<ReaderId, ApiError> {
    ReaderId::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "invalid_reader_id",
            format!("a reader id has {}", ReaderId::RULE),
        )
    })
}
