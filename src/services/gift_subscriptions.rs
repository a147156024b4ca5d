//! Gift subscriptions: codes issued for gift purchases as their checkout events are applied, the
//! buyer's list, reveals of a code to its buyer, and redemption into a grant of the plan's
//! entitlements for the months bought.

use chrono::{DateTime, Months, TimeDelta, Utc};

use crate::clock::Clock;
use crate::domain::{
    Actor, AuditEntry, Change, CodeSealer, GiftSubscription, GiftSubscriptionId,
    GiftSubscriptionStatus, Grant, IssuedCode, NewGrant, ReaderId, SubscriptionCode,
};
use crate::services::ServiceError;
use crate::services::access::EntitlementCache;
use crate::store::{Redeemed, Store, StoreError};

/// What issues codes for gift purchases: the key that seals them and how long they last.
pub struct CodeIssuer {
    /// Seals codes at rest; `None` when no `gift_code_key` is configured.
    pub sealer: Option<CodeSealer>,
    /// How long a code can be redeemed after its purchase.
    pub validity: TimeDelta,
}

impl CodeIssuer {
    /// The issuer the settings describe (the key was checked when they were loaded).
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        use secrecy::ExposeSecret;
        Self {
            sealer: settings
                .gift_code_key
                .as_ref()
                .and_then(|key| CodeSealer::from_base64(key.expose_secret())),
            validity: settings.gifts().code_validity,
        }
    }

    /// Issues a code for every gift purchase among `changes` that has none yet. An error says
    /// why a purchase cannot be recorded now (the event is kept and tried again).
    pub async fn issue(&self, store: &dyn Store, changes: &mut [Change]) -> Result<(), String> {
        for change in changes {
            let Change::GiftPurchased(purchase) = change else {
                continue;
            };
            if purchase.issued.is_some() {
                continue;
            }
            let sealer = self.sealer.as_ref().ok_or_else(|| {
                "a gift subscription was bought but no gift_code_key is configured to seal its \
                 code; set it and the event is applied on its next attempt"
                    .to_owned()
            })?;
            let months = match purchase.months {
                Some(months) => months,
                None => store
                    .get_plan(&purchase.plan_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|plan| plan.spec.gift.map(|gift| gift.months))
                    .ok_or_else(|| {
                        format!(
                            "the gift of plan {} names no months and the plan has no gift offer",
                            purchase.plan_id
                        )
                    })?,
            };
            let id = GiftSubscriptionId::generate();
            let code = SubscriptionCode::generate();
            purchase.issued = Some(IssuedCode {
                hash: SubscriptionCode::hash_of(code.expose()),
                sealed: sealer.seal(&id, &code),
                id,
                months,
                expires_at: purchase.purchased_at + self.validity,
            });
        }
        Ok(())
    }
}

/// A code revealed to its buyer.
#[derive(Debug)]
pub struct Revealed {
    /// The gift.
    pub gift: GiftSubscription,
    /// Its code.
    pub code: SubscriptionCode,
}

/// A redemption's grant, and whether it was made now.
#[derive(Debug, Clone)]
pub struct Redemption {
    /// The gift redeemed.
    pub gift_id: GiftSubscriptionId,
    /// The grant it made.
    pub grant: Grant,
    /// Whether the grant was made now, rather than by an earlier redemption.
    pub new: bool,
}

/// The gift subscription operations.
pub struct GiftSubscriptions<'a> {
    /// Where gifts and grants are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// Issues and opens codes.
    pub codes: &'a CodeIssuer,
    /// Readers' cached entitlements.
    pub cache: &'a EntitlementCache,
}

impl GiftSubscriptions<'_> {
    /// The gifts `buyer` bought, newest first, without their codes.
    pub async fn of_buyer(&self, buyer: &ReaderId) -> Result<Vec<GiftSubscription>, ServiceError> {
        Ok(self.store.gift_subscriptions_of(buyer).await?)
    }

    /// The code of the gift `raw_id`, for its buyer `buyer`, as long as it is unredeemed.
    pub async fn reveal(
        &self,
        raw_id: &str,
        buyer: &ReaderId,
        actor: &Actor,
    ) -> Result<Revealed, ServiceError> {
        let not_found =
            || ServiceError::NotFound(format!("reader `{buyer}` bought no gift `{raw_id}`"));
        let id = GiftSubscriptionId::parse(raw_id).ok_or_else(not_found)?;
        let (gift, sealed) = self
            .store
            .gift_subscription(&id)
            .await?
            .filter(|(gift, _)| &gift.buyer == buyer)
            .ok_or_else(not_found)?;
        match gift.status(self.clock.now()) {
            GiftSubscriptionStatus::Redeemed => return Err(already_redeemed(&gift.id)),
            GiftSubscriptionStatus::Expired => return Err(expired(&gift)),
            GiftSubscriptionStatus::Unredeemed => {}
        }
        let sealer = self
            .codes
            .sealer
            .as_ref()
            .ok_or_else(|| ServiceError::NotConfigured {
                code: "gift_code_key_not_configured",
                detail: "no gift_code_key is configured: gift codes cannot be unsealed".into(),
            })?;
        let code = sealed
            .and_then(|sealed| sealer.open(&gift.id, &sealed))
            .ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!(
                    "the code of gift {} does not open under the configured gift_code_key",
                    gift.id
                ))
            })?;
        // Who saw a code is on the record (the code itself never is).
        self.store
            .append_audit_entry(&AuditEntry::new(
                actor,
                "gift_subscription.reveal",
                format!("gift_subscription:{}", gift.id),
                serde_json::json!({ "buyer": buyer }),
                self.clock.now(),
            ))
            .await?;
        tracing::info!(gift_subscription_id = %gift.id, "gift subscription code revealed");
        Ok(Revealed { gift, code })
    }

    /// Redeems `code` for `reader`: a grant of the plan's entitlements for the months bought,
    /// from now. Redeeming again as the same reader returns the same grant.
    pub async fn redeem(
        &self,
        code: &str,
        reader: &ReaderId,
        by: &str,
    ) -> Result<Redemption, ServiceError> {
        if !SubscriptionCode::is_well_formed(code) {
            return Err(ServiceError::invalid(
                "invalid_gift_code",
                "code must be a gift subscription code: `gsc_` and 32 hex digits",
            ));
        }
        let hash = SubscriptionCode::hash_of(code);
        let not_found = || ServiceError::NotFound("no gift subscription has this code".into());
        let gift = self
            .store
            .gift_subscription_by_code(&hash)
            .await?
            .ok_or_else(not_found)?;
        let now = self.clock.now();
        let plan = self.store.get_plan(&gift.plan_id).await?.ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "gift {} gives plan {}, which no longer exists",
                gift.id,
                gift.plan_id
            ))
        })?;
        let mut grant = NewGrant::new(
            reader.clone(),
            plan.spec.entitlements,
            months_after(now, gift.months)?,
            format!(
                "gift subscription {} ({} months of {})",
                gift.id, gift.months, gift.plan_id
            ),
            now,
            Some(by.to_owned()),
        )
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("gift grant: {e}")))?;
        grant.gift_subscription = Some(gift.id.as_str().to_owned());
        let outcome = self
            .store
            .redeem_gift_subscription(&hash, &grant, now)
            .await?;
        let (grant, new) = match outcome {
            Redeemed::Granted(grant) => (grant, true),
            Redeemed::AlreadyYours(id) => match self.earlier_grant(reader, &id).await? {
                Some(grant) => (grant, false),
                // Their grant was revoked since: the gift is spent.
                None => return Err(already_redeemed(&gift.id)),
            },
            Redeemed::Taken => return Err(already_redeemed(&gift.id)),
            Redeemed::Expired => return Err(expired(&gift)),
            Redeemed::NotFound => return Err(not_found()),
        };
        if new {
            self.cache.forget_reader(reader).await;
            tracing::info!(gift_subscription_id = %gift.id, grant_id = %grant.id, "gift subscription redeemed");
        }
        Ok(Redemption {
            gift_id: gift.id,
            grant,
            new,
        })
    }

    /// The grant an earlier redemption made for `reader`, unless it was revoked.
    async fn earlier_grant(
        &self,
        reader: &ReaderId,
        id: &crate::domain::GrantId,
    ) -> Result<Option<Grant>, StoreError> {
        let record = self.store.reader(reader).await?;
        Ok(record.grants.into_iter().find(|grant| &grant.id == id))
    }

    /// What time it is, for views that show a gift's status.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// `months` calendar months after `from`.
fn months_after(from: DateTime<Utc>, months: u32) -> Result<DateTime<Utc>, ServiceError> {
    from.checked_add_months(Months::new(months))
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("{months} months after {from}")))
}

fn already_redeemed(id: &GiftSubscriptionId) -> ServiceError {
    ServiceError::conflict(
        "gift_already_redeemed",
        format!("gift subscription {id} was redeemed already"),
    )
}

fn expired(gift: &GiftSubscription) -> ServiceError {
    ServiceError::conflict(
        "gift_expired",
        format!(
            "gift subscription {} could be redeemed until {}",
            gift.id,
            crate::domain::time::rfc3339(gift.expires_at)
        ),
    )
}
