//! Erasing a reader (`DELETE /v1/readers/{reader_id}`), and the tombstones that keep them
//! erased: whatever Stripe later says about an erased reader (a webhook, a reconcile) names
//! their pseudonym by the time it reaches the mirror, so they are never linked again.

use crate::clock::Clock;
use crate::domain::erasure::{Erasure, Pseudonymizer, Replacement, is_pseudonym};
use crate::domain::{Actor, Change, MeterSubject, ReaderId, Standing};
use crate::services::ServiceError;
use crate::services::access::AccessService;
use crate::store::{Store, StoreError};

/// The pseudonyms of erased readers, and the changes and texts that must carry them.
#[derive(Clone, Debug, Default)]
pub struct Tombstones {
    pseudonyms: Option<Pseudonymizer>,
}

impl Tombstones {
    /// Tombstones under the settings' `erasure_key` (checked when they were loaded); without
    /// one, no reader can be erased, and none is looked for.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        use secrecy::ExposeSecret;
        Self {
            pseudonyms: settings
                .erasure_key
                .as_ref()
                .and_then(|key| Pseudonymizer::from_base64(key.expose_secret())),
        }
    }

    /// The pseudonymizer, when a key is configured.
    pub fn pseudonymizer(&self) -> Option<&Pseudonymizer> {
        self.pseudonyms.as_ref()
    }

    /// The erased readers `changes` name, each with their pseudonym.
    async fn erased_in(
        &self,
        store: &dyn Store,
        changes: &mut [Change],
    ) -> Result<Vec<(ReaderId, ReaderId)>, StoreError> {
        let Some(pseudonyms) = &self.pseudonyms else {
            return Ok(Vec::new());
        };
        let mut pairs: Vec<(ReaderId, ReaderId)> = changes
            .iter_mut()
            .filter_map(reader_of)
            .filter(|reader| !is_pseudonym(reader.as_str()))
            .map(|reader| (reader.clone(), pseudonyms.pseudonym(reader)))
            .collect();
        pairs.sort();
        pairs.dedup();
        if pairs.is_empty() {
            return Ok(pairs);
        }
        let candidates: Vec<ReaderId> = pairs.iter().map(|(_, p)| p.clone()).collect();
        let erased = store.erased_readers(&candidates).await?;
        pairs.retain(|(_, pseudonym)| erased.contains(pseudonym));
        Ok(pairs)
    }

    /// Puts erased readers' pseudonyms in place of their ids in `changes`.
    pub async fn resolve(
        &self,
        store: &dyn Store,
        changes: &mut [Change],
    ) -> Result<(), StoreError> {
        let erased = self.erased_in(store, changes).await?;
        for reader in changes.iter_mut().filter_map(reader_of) {
            if let Some((_, pseudonym)) = erased.iter().find(|(id, _)| id == reader) {
                *reader = pseudonym.clone();
            }
        }
        Ok(())
    }

    /// `body` (a Stripe event as received, carrying `changes`) with erased readers' ids
    /// rewritten to their pseudonyms; `None` when it names none.
    pub async fn scrub(
        &self,
        store: &dyn Store,
        changes: &mut [Change],
        body: &str,
    ) -> Result<Option<String>, StoreError> {
        let erased = self.erased_in(store, changes).await?;
        Ok(erased.iter().fold(None, |scrubbed, (reader, pseudonym)| {
            let swap = Replacement {
                id: reader.as_str(),
                pseudonym: pseudonym.as_str(),
            };
            swap.in_text(scrubbed.as_deref().unwrap_or(body))
                .or(scrubbed)
        }))
    }
}

/// The reader a change names, if it names one.
fn reader_of(change: &mut Change) -> Option<&mut ReaderId> {
    match change {
        Change::LinkCustomer { reader_id, .. } => Some(reader_id),
        Change::Subscription { reader_id, .. } => reader_id.as_mut(),
        Change::GiftPurchased(purchase) => Some(&mut purchase.buyer),
        Change::Invoice(_)
        | Change::InvoicePayment(_)
        | Change::Refunds(_)
        | Change::Dispute(_)
        | Change::Price(_)
        | Change::CustomerDeleted { .. } => None,
    }
}

/// The erasure operation.
pub struct Erasures<'a> {
    /// Where the reader's records are.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// The access path, whose cache must forget the reader.
    pub access: &'a AccessService,
    /// The pseudonyms.
    pub tombstones: &'a Tombstones,
}

impl Erasures<'_> {
    /// Erases `reader` on behalf of `actor`. Refused while they have a subscription in good
    /// standing: it would go on being billed for a reader who no longer exists here.
    pub async fn erase(&self, reader: &ReaderId, actor: &Actor) -> Result<Erasure, ServiceError> {
        let pseudonyms =
            self.tombstones
                .pseudonymizer()
                .ok_or_else(|| ServiceError::NotConfigured {
                    code: "erasure_key_not_configured",
                    detail: "no erasure_key is configured: readers cannot be erased until one is \
                             (the pseudonyms kept for the books are made with it)"
                        .into(),
                })?;
        if is_pseudonym(reader.as_str()) {
            return Err(ServiceError::invalid(
                "already_pseudonymous",
                format!("`{reader}` is the pseudonym of an erased reader; it names nobody"),
            ));
        }
        let now = self.clock.now();
        let record = self.store.reader(reader).await?;
        let grace = self.access.grace();
        if let Some(subscription) = record
            .subscriptions
            .iter()
            .find(|s| matches!(s.standing(now, grace), Standing::Good { .. }))
        {
            return Err(ServiceError::Conflict {
                code: "subscription_active",
                detail: format!(
                    "reader `{reader}` has subscription {} in good standing ({}): cancel it at \
                     Stripe first, then erase the reader",
                    subscription.id, subscription.status
                ),
            });
        }
        let pseudonym = pseudonyms.pseudonym(reader);
        let erasure = self
            .store
            .erase_reader(reader, &pseudonym, actor, now)
            .await?;
        let cache = self.access.cache();
        cache.forget_reader(reader).await;
        cache.forget_meter(&MeterSubject::reader(reader.clone()));
        tracing::info!(
            pseudonym = %erasure.pseudonym,
            repeated = erasure.repeated,
            stripe_customers = erasure.stripe_customers.len(),
            "reader erased"
        );
        Ok(erasure)
    }
}
