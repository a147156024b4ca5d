//! Gift articles: a reader entitled to articles (through the sources the settings allow) makes a
//! link that opens one article for a few people, within an allowance per period; and revokes it.
//! Redeeming a link is part of the access decision (`services::access`).

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{ArticleId, Entitlement, GiftCode, GiftId, GiftLink, ReaderId};
use crate::services::ServiceError;
use crate::services::access::AccessService;
use crate::store::{GiftWrite, Store};

/// A link just made, with its code: the only time the code is shown.
#[derive(Debug)]
pub struct MadeGift {
    /// The link.
    pub link: GiftLink,
    /// Its code, for the giver to share.
    pub code: GiftCode,
    /// Links the giver may still make this period.
    pub remaining_this_period: u32,
}

/// The gift operations.
pub struct Gifts<'a> {
    /// Where links are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// The gift settings.
    pub settings: &'a Settings,
    /// What readers hold.
    pub access: &'a AccessService,
}

impl Gifts<'_> {
    /// Makes a link with which `giver` shares `article`, within their allowance.
    pub async fn create(
        &self,
        giver: ReaderId,
        article: ArticleId,
    ) -> Result<MadeGift, ServiceError> {
        let gifts = self.settings.gifts();
        let now = self.clock.now();
        let articles = Entitlement::from_stored("articles".into());
        let entitled = self.access.entitlements(&giver, now).await?;
        if entitled.stale_until.is_some() {
            // A gift link is a write: never made from a last load.
            return Err(AccessService::unreachable().into());
        }
        let held = entitled.held;
        let may_give = held.iter().any(|h| {
            h.name == articles
                && h.sources
                    .iter()
                    .any(|s| gifts.giver_sources.contains(&s.kind))
        });
        if !may_give {
            return Err(ServiceError::conflict(
                "giver_not_entitled",
                format!(
                    "reader `{giver}` holds `articles` through none of the sources that may give \
                     articles ({})",
                    gifts
                        .giver_sources
                        .iter()
                        .map(|kind| format!("{kind:?}").to_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let code = GiftCode::generate();
        let link = GiftLink {
            id: GiftId::generate(),
            giver,
            article,
            created_at: now,
            expires_at: now + gifts.link_ttl,
            revoked_at: None,
            max_recipients: gifts.max_recipients,
            recipients: 0,
        };
        let window = gifts.allowance.window(now);
        match self
            .store
            .create_gift_link(
                &link,
                &code.hash(),
                window.counts_from,
                gifts.allowance.limit,
            )
            .await?
        {
            GiftWrite::Made { used } => {
                tracing::info!(gift_id = %link.id, "gift link made");
                Ok(MadeGift {
                    remaining_this_period: gifts.allowance.limit.saturating_sub(used),
                    link,
                    code,
                })
            }
            GiftWrite::AllowanceExhausted => Err(ServiceError::conflict(
                "gift_allowance_exhausted",
                format!(
                    "reader `{}` has made {} gift links this period, as many as they may",
                    link.giver, gifts.allowance.limit
                ),
            )),
        }
    }

    /// Revokes `giver`'s link `raw_id`: it opens its article for nobody from now on.
    pub async fn revoke(&self, raw_id: &str, giver: &ReaderId) -> Result<(), ServiceError> {
        let not_found = || {
            ServiceError::NotFound(format!(
                "reader `{giver}` has no gift link `{raw_id}` that is not revoked"
            ))
        };
        let id = GiftId::parse(raw_id).ok_or_else(not_found)?;
        if self.store.revoke_gift(&id, giver, self.clock.now()).await? {
            tracing::info!(gift_id = %id, "gift link revoked");
            Ok(())
        } else {
            Err(not_found())
        }
    }
}
