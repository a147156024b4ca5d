//! What admits a reader besides what they hold and the meter: an institutional licence, by the
//! address they read from (only a key that may assert addresses may say it), and a gift link.
//! Both are counted: the licence's usage per month, the link's recipients.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::AccessService;
use crate::domain::{ApiKey, ArticleId, GiftCode, GiftStatus, Licence, LicenceId, MeterSubject};
use crate::services::ServiceError;
use crate::store::{Redemption, StoreError};

impl AccessService {
    /// The licence in force whose ranges hold `address`, when the caller may assert one.
    pub async fn licence_at(
        &self,
        caller: &ApiKey,
        address: Option<IpAddr>,
    ) -> Result<Option<Licence>, ServiceError> {
        Self::may_assert(caller, address)?;
        let Some(address) = address else {
            return Ok(None);
        };
        Ok(self
            .store
            .licence_at_address(address, self.clock.now())
            .await?)
    }

    /// Notes an article opened under `licence`, for its usage report: once per subject,
    /// article and month of the reporting time zone.
    pub(super) async fn count_licensed(
        &self,
        licence: &LicenceId,
        subject: &MeterSubject,
        article: &ArticleId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let zone = self.settings.billing().reporting_time_zone;
        let month = now.with_timezone(&zone).format("%Y-%m").to_string();
        let who = format!("{}:{}", subject.audience.as_str(), subject.id.as_str());
        self.store
            .record_licensed_opening(licence, &month, &who, article.as_str(), now)
            .await
    }

    /// Whether the gift `code` opens `article` for `subject` now, counting them among its
    /// recipients if it does; why not if it does not.
    pub(super) async fn open_gift(
        &self,
        code: &str,
        subject: &MeterSubject,
        article: &ArticleId,
        now: DateTime<Utc>,
    ) -> Result<Result<(), GiftStatus>, StoreError> {
        if !GiftCode::is_well_formed(code) {
            return Ok(Err(GiftStatus::Unknown));
        }
        let Some(link) = self.store.gift_by_code(&GiftCode::hash_of(code)).await? else {
            return Ok(Err(GiftStatus::Unknown));
        };
        if let Some(status) = link.refusal(article, now) {
            return Ok(Err(status));
        }
        let recipient = format!("{}:{}", subject.audience.as_str(), subject.id.as_str());
        Ok(
            match self.store.redeem_gift(&link.id, &recipient, now).await? {
                Redemption::Opened { .. } => Ok(()),
                Redemption::Full => Err(GiftStatus::RecipientsExhausted),
            },
        )
    }

    /// Refuses an address from a key that may not assert one.
    pub(super) fn may_assert(caller: &ApiKey, address: Option<IpAddr>) -> Result<(), ServiceError> {
        if address.is_some() && !caller.may_assert_ip {
            return Err(ServiceError::NotPermitted {
                code: "ip_assertion_not_allowed",
                detail:
                    "this API key may not send a reader's address (`ip`): ask an admin for a key \
                         created with `may_assert_ip`"
                        .into(),
            });
        }
        Ok(())
    }
}
