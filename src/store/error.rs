//! What a store operation can fail with, and which database errors mean "not now" (the caller
//! answers 503 and may retry) rather than "this is wrong".

use super::connections;

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or is too busy to answer in time; retrying later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, a broken invariant, corrupt data.
    #[error("database operation failed")]
    Other(#[source] anyhow::Error),
}

impl StoreError {
    /// Anything but an unavailable database: a stored value that cannot be read back, say.
    pub fn other(err: impl Into<anyhow::Error>) -> Self {
        Self::Other(err.into())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if connections::is_connection_failure(&err) {
            connections::record_failure();
        }
        if is_unavailable(&err) {
            Self::Unavailable(err.into())
        } else {
            Self::Other(err.into())
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no supported database.
    #[error("unsupported database URL scheme: expected sqlite:// or postgres://")]
    UnsupportedScheme,
    /// The URL could not be parsed, or the database could not be reached.
    #[error("could not open the database")]
    Connect(#[source] sqlx::Error),
}

/// Whether an error means "the database is not there or too busy now" rather than "this is wrong".
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // Both engines report codes made of digits, so the engine is told by the error type.
            Some(code) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                sqlite_code_is_unavailable(&code)
            }
            Some(code) => sqlstate_is_unavailable(&code),
            None => false,
        },
        _ => false,
    }
}

/// SQLite reports extended result codes; SQLITE_BUSY (5) and SQLITE_LOCKED (6) are their low
/// byte.
fn sqlite_code_is_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// PostgreSQL SQLSTATEs for "not now": connection exceptions (08), insufficient resources (53:
/// too many connections, disk full, out of memory), and an operator shutting the server down
/// (57P01 to 57P03).
fn sqlstate_is_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_locked_sqlite_codes_mean_unavailable_and_others_do_not() {
        for code in ["5", "6", "261", "517", "262"] {
            assert!(sqlite_code_is_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "11"] {
            assert!(!sqlite_code_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn postgres_resource_and_connection_states_mean_unavailable_and_others_do_not() {
        for code in ["08006", "08001", "53300", "53100", "57P01", "57P03"] {
            assert!(sqlstate_is_unavailable(code), "{code}");
        }
        // All digits, like SQLite codes, and ending in a byte of 5: still not "busy".
        for code in ["42501", "22021", "23505", "40001", "42P01"] {
            assert!(!sqlstate_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn a_timed_out_pool_is_unavailable_and_a_missing_row_is_not() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
