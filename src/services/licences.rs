//! Institutional licences: admins make, change and delete them; sites enrol readers in them by
//! the e-mail domain they proved. Every write that changes what a reader holds empties the
//! cached entitlements it touches.

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::time::rfc3339;
use crate::domain::{
    Actor, AuditEntry, EmailDomain, Entitlement, IpRange, Licence, LicenceConflict, LicenceId,
    LicenceSpec, ReaderId,
};
use crate::services::ServiceError;
use crate::services::access::EntitlementCache;
use crate::store::{LicenceMember, LicenceWrite, SeatClaim, Store};

/// Changes to a licence; what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct LicencePatch {
    /// A new name.
    pub name: Option<String>,
    /// New entitlements.
    pub entitlements: Option<Vec<Entitlement>>,
    /// New ranges.
    pub ip_ranges: Option<Vec<IpRange>>,
    /// New domains.
    pub email_domains: Option<Vec<EmailDomain>>,
    /// New seats: `Some(None)` for no limit.
    pub seats: Option<Option<u32>>,
    /// A new start.
    pub starts_at: Option<DateTime<Utc>>,
    /// A new end.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a seat claim came to, for the caller.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The licence.
    pub licence: Licence,
    /// Whether the reader was enrolled now, rather than before.
    pub new: bool,
}

/// The licence operations.
pub struct Licences<'a> {
    /// Where licences are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// Readers' cached entitlements.
    pub cache: &'a EntitlementCache,
}

impl Licences<'_> {
    /// Makes a licence, unless it overlaps one in force at the same time.
    pub async fn create(
        &self,
        spec: LicenceSpec,
        by: &str,
        actor: &Actor,
    ) -> Result<Licence, ServiceError> {
        let now = self.clock.now();
        let spec = spec.new(now).map_err(invalid)?;
        let licence = Licence {
            id: LicenceId::generate(),
            spec,
            members: 0,
            created_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            "licence.create",
            format!("licence:{}", licence.id),
            spec_changes(&licence.spec),
            now,
        );
        match self
            .store
            .create_licence(&licence, Some(by), now, &audit)
            .await?
        {
            LicenceWrite::Written(licence) => {
                tracing::info!(licence_id = %licence.id, "licence created");
                Ok(licence)
            }
            other => Err(refusal(other, &licence.id)),
        }
    }

    /// Every licence, by id.
    pub async fn list(&self) -> Result<Vec<Licence>, ServiceError> {
        Ok(self.store.list_licences().await?)
    }

    /// The licence `raw_id`.
    pub async fn get(&self, raw_id: &str) -> Result<Licence, ServiceError> {
        let id = licence_id(raw_id)?;
        self.store
            .licence(&id)
            .await?
            .ok_or_else(|| not_found(raw_id))
    }

    /// Changes the licence `raw_id`, under the rules a new one follows.
    pub async fn update(
        &self,
        raw_id: &str,
        patch: LicencePatch,
        actor: &Actor,
    ) -> Result<Licence, ServiceError> {
        let current = self.get(raw_id).await?;
        let mut spec = current.spec;
        let LicencePatch {
            name,
            entitlements,
            ip_ranges,
            email_domains,
            seats,
            starts_at,
            expires_at,
        } = patch;
        spec.name = name.unwrap_or(spec.name);
        spec.entitlements = entitlements.unwrap_or(spec.entitlements);
        spec.ip_ranges = ip_ranges.unwrap_or(spec.ip_ranges);
        spec.email_domains = email_domains.unwrap_or(spec.email_domains);
        spec.seats = seats.unwrap_or(spec.seats);
        spec.starts_at = starts_at.unwrap_or(spec.starts_at);
        spec.expires_at = expires_at.unwrap_or(spec.expires_at);
        let now = self.clock.now();
        let spec = spec.new(now).map_err(invalid)?;
        let audit = AuditEntry::new(
            actor,
            "licence.update",
            format!("licence:{}", current.id),
            spec_changes(&spec),
            now,
        );
        match self
            .store
            .replace_licence(&current.id, &spec, now, &audit)
            .await?
        {
            LicenceWrite::Written(licence) => {
                // Its members' entitlements may have changed with it.
                self.cache.forget_all();
                tracing::info!(licence_id = %licence.id, "licence changed");
                Ok(licence)
            }
            LicenceWrite::NotFound => Err(not_found(raw_id)),
            other => Err(refusal(other, &current.id)),
        }
    }

    /// Deletes the licence `raw_id`: its readers lose what it gave at once.
    pub async fn delete(&self, raw_id: &str, actor: &Actor) -> Result<(), ServiceError> {
        let id = licence_id(raw_id)?;
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "licence.delete",
            format!("licence:{id}"),
            serde_json::json!({}),
            now,
        );
        if !self.store.delete_licence(&id, now, &audit).await? {
            return Err(not_found(raw_id));
        }
        self.cache.forget_all();
        tracing::info!(licence_id = %id, "licence deleted");
        Ok(())
    }

    /// Enrols `reader` in the licence in force for `email`'s domain, while seats remain. The
    /// site vouches that the reader proved the address.
    pub async fn claim(&self, reader: &ReaderId, email: &str) -> Result<Enrolment, ServiceError> {
        let domain = EmailDomain::of_email(email).ok_or_else(|| {
            ServiceError::invalid(
                "invalid_email",
                "email must be an address whose domain is not itself a public suffix",
            )
        })?;
        let now = self.clock.now();
        let licence = self
            .store
            .licence_for_domain(&domain, now)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("no licence in force covers `{domain}`"))
            })?;
        let new = match self
            .store
            .claim_seat(&licence.id, reader, &domain, now)
            .await?
        {
            SeatClaim::Enrolled => true,
            SeatClaim::AlreadyMember => false,
            SeatClaim::NoSeatsLeft => {
                return Err(ServiceError::conflict(
                    "no_seats_left",
                    format!("every seat of licence {} is taken", licence.id),
                ));
            }
            SeatClaim::NotFound => {
                return Err(ServiceError::NotFound(format!(
                    "no licence in force covers `{domain}`"
                )));
            }
        };
        if new {
            self.cache.forget_reader(reader).await;
            tracing::info!(licence_id = %licence.id, "reader enrolled in a licence");
        }
        // Read again, so the member count includes this claim.
        let licence = self.store.licence(&licence.id).await?.unwrap_or(licence);
        Ok(Enrolment { licence, new })
    }

    /// The licence's members.
    pub async fn members(&self, raw_id: &str) -> Result<Vec<LicenceMember>, ServiceError> {
        let licence = self.get(raw_id).await?;
        Ok(self.store.licence_members(&licence.id).await?)
    }

    /// Frees `reader`'s seat in the licence `raw_id`.
    pub async fn remove_member(
        &self,
        raw_id: &str,
        reader: &ReaderId,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let id = licence_id(raw_id)?;
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "licence.remove_member",
            format!("licence:{id}"),
            serde_json::json!({ "reader_id": reader }),
            now,
        );
        if !self
            .store
            .remove_licence_member(&id, reader, now, &audit)
            .await?
        {
            return Err(ServiceError::NotFound(format!(
                "reader `{reader}` holds no seat of licence `{raw_id}`"
            )));
        }
        self.cache.forget_reader(reader).await;
        tracing::info!(licence_id = %id, "reader removed from a licence");
        Ok(())
    }
}

fn licence_id(raw: &str) -> Result<LicenceId, ServiceError> {
    LicenceId::parse(raw).ok_or_else(|| not_found(raw))
}

fn not_found(raw: &str) -> ServiceError {
    ServiceError::NotFound(format!("no licence has the id `{raw}`"))
}

fn invalid(err: crate::domain::InvalidLicence) -> ServiceError {
    ServiceError::invalid("invalid_body", err.to_string())
}

/// The problem for a licence write the store refused.
fn refusal(write: LicenceWrite, id: &LicenceId) -> ServiceError {
    match write {
        LicenceWrite::Conflict(LicenceConflict::IpRange {
            other,
            range,
            theirs,
        }) => ServiceError::conflict(
            "ip_range_overlap",
            format!(
                "IP range {range} overlaps {theirs} of licence {other}, which is in force at the \
                 same time"
            ),
        ),
        LicenceWrite::Conflict(LicenceConflict::EmailDomain { other, domain }) => {
            ServiceError::conflict(
                "email_domain_taken",
                format!(
                    "e-mail domain {domain} belongs to licence {other}, which is in force at the \
                     same time"
                ),
            )
        }
        LicenceWrite::SeatsBelowMembers(members) => ServiceError::conflict(
            "seats_below_members",
            format!("licence {id} has {members} members: remove some before lowering its seats"),
        ),
        LicenceWrite::NotFound => not_found(id.as_str()),
        LicenceWrite::Written(_) => {
            ServiceError::Internal(anyhow::anyhow!("a written licence was taken for a refusal"))
        }
    }
}

/// What an audit entry records of a licence.
fn spec_changes(spec: &LicenceSpec) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name,
        "entitlements": spec.entitlements,
        "ip_ranges": spec.ip_ranges.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "email_domains": spec.email_domains,
        "seats": spec.seats,
        "starts_at": rfc3339(spec.starts_at),
        "expires_at": rfc3339(spec.expires_at),
    })
}
