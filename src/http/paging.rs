//! Listings a page at a time.

use super::error::ApiError;

/// The page size of a listing: `limit` when given, else 100; at most 500.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    const DEFAULT: u32 = 100;
    const MAX: u32 = 500;
    let limit = limit.unwrap_or(DEFAULT);
    if (1..=MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX}"),
        ))
    }
}

/// Splits rows fetched with one more than `limit` (the extra row tells whether another page
/// follows) into the page to show and, when more follow, the cursor of its last row.
pub fn paginate<T, C>(
    mut rows: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(cursor) } else { None };
    (rows, next)
}
