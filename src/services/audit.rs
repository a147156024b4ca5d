//! Reading the audit log.

use crate::domain::AuditEntry;
use crate::services::ServiceError;
use crate::store::{AuditFilter, Store};

/// The audit log's reader.
pub struct AuditLog<'a> {
    /// Where entries are kept.
    pub store: &'a dyn Store,
}

impl AuditLog<'_> {
    /// The entries `filter` selects, oldest first.
    pub async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, ServiceError> {
        Ok(self.store.audit_entries(filter).await?)
    }
}
