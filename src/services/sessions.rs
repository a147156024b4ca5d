//! Dashboard sessions: opened with a `finance` or `admin` key, read-only, eight hours long,
//! revocable; and who a caller is.

use crate::clock::Clock;
use crate::domain::{
    Actor, ApiKey, AuditEntry, SESSION_LIFETIME, Session, SessionId, SessionToken, may_open_session,
};
use crate::services::ServiceError;
use crate::store::Store;

/// A session just opened: its record and its token, shown once.
#[derive(Debug)]
pub struct OpenedSession {
    /// The session.
    pub session: Session,
    /// Its bearer token.
    pub token: SessionToken,
}

/// The session operations.
pub struct Sessions<'a> {
    /// Where sessions are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
}

impl Sessions<'_> {
    /// Opens a session for `key`, acting as `actor`. Only keys that read reports open one.
    pub async fn open(&self, key: &ApiKey, actor: &Actor) -> Result<OpenedSession, ServiceError> {
        if !may_open_session(key.role) {
            return Err(ServiceError::NotPermitted {
                code: "forbidden",
                detail: format!(
                    "a {} key cannot open a dashboard session: use a finance or admin key",
                    key.role
                ),
            });
        }
        let now = self.clock.now();
        let session = Session {
            id: SessionId::generate(),
            key: key.clone(),
            expires_at: now + SESSION_LIFETIME,
        };
        let token = SessionToken::generate();
        let audit = AuditEntry::new(
            actor,
            "session.create",
            format!("session:{}", session.id),
            serde_json::json!({ "key_id": key.id.as_str(), "expires_at": session.expires_at }),
            now,
        );
        self.store
            .insert_session(
                &session.id,
                token.hash(),
                &key.id,
                now,
                session.expires_at,
                &audit,
            )
            .await?;
        tracing::info!(session_id = %session.id, key_id = %key.id, "dashboard session opened");
        Ok(OpenedSession { session, token })
    }

    /// The live session behind a presented token, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Session>, ServiceError> {
        if !SessionToken::is_well_formed(presented) {
            return Ok(None);
        }
        Ok(self
            .store
            .find_session(SessionToken::hash_of(presented), self.clock.now())
            .await?)
    }

    /// Ends a session (signing out).
    pub async fn revoke(&self, id: &SessionId) -> Result<bool, ServiceError> {
        Ok(self.store.revoke_session(id, self.clock.now()).await?)
    }
}
