//! Events out to the publisher's other services: the endpoints admins register (here), the
//! dispatcher that delivers what the outbox holds (`dispatcher.rs`, sending through
//! `sender.rs`), and the watcher that announces what readers hold when it changes
//! (`watcher.rs`).

mod dispatcher;
mod sender;
mod watcher;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::outbound::event_types;
use crate::domain::{Actor, AuditEntry, DeliveryId, EndpointId, EndpointSecret, InvalidWebhookUrl};
use crate::services::ServiceError;
use crate::store::{
    Delivery, DeliveryFilter, Endpoint, EndpointPatch, NewEndpoint, Retried, Store,
};

pub use dispatcher::{DispatchMetrics, Dispatcher};
pub use sender::{Answer, Sender, target_rules};
pub use watcher::EntitlementWatcher;

/// The longest span a replay may cover.
const MAX_REPLAY: TimeDelta = TimeDelta::days(31);

/// What an admin asks for in a new endpoint.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    /// Where to send events.
    pub url: String,
    /// Which types, or `*`.
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: String,
}

/// A new endpoint, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its secret.
    pub secret: EndpointSecret,
}

/// A rotated secret.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    /// The endpoint.
    pub id: EndpointId,
    /// Its new secret (shown once).
    pub secret: EndpointSecret,
    /// Until when the one before keeps signing.
    pub previous_expires_at: DateTime<Utc>,
}

/// The webhook endpoint operations (admin).
pub struct WebhookEndpoints<'a> {
    /// Where endpoints are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// The settings (URL rules, secret overlap).
    pub settings: &'a Settings,
}

impl WebhookEndpoints<'_> {
    /// Registers an endpoint.
    pub async fn create(
        &self,
        request: EndpointRequest,
        actor: &Actor,
    ) -> Result<CreatedEndpoint, ServiceError> {
        let url = self.checked_url(&request.url).await?;
        let types = checked_types(&request.event_types)?;
        let description = checked_description(request.description)?;
        let now = self.clock.now();
        let endpoint = NewEndpoint {
            id: EndpointId::generate(),
            url,
            description,
            event_types: types,
            secret: EndpointSecret::generate(),
            at: now,
        };
        let audit = AuditEntry::new(
            actor,
            "webhook_endpoint.create",
            format!("webhook_endpoint:{}", endpoint.id),
            json!({
                "url": endpoint.url, "event_types": endpoint.event_types,
                "description": endpoint.description,
            }),
            now,
        );
        let stored = self.store.create_endpoint(&endpoint, &audit).await?;
        tracing::info!(endpoint_id = %stored.id, "webhook endpoint created");
        Ok(CreatedEndpoint {
            endpoint: stored,
            secret: endpoint.secret,
        })
    }

    /// Endpoints by id, a page at a time.
    pub async fn list(
        &self,
        after: Option<&EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, ServiceError> {
        Ok(self.store.endpoints(after, limit).await?)
    }

    /// The endpoint `id`.
    pub async fn get(&self, id: &str) -> Result<Endpoint, ServiceError> {
        let id = parse_id(id)?;
        self.store
            .endpoint(&id)
            .await?
            .ok_or_else(|| not_found(&id))
    }

    /// Changes the endpoint `id`.
    pub async fn update(
        &self,
        id: &str,
        url: Option<String>,
        types: Option<Vec<String>>,
        description: Option<String>,
        enabled: Option<bool>,
        actor: &Actor,
    ) -> Result<Endpoint, ServiceError> {
        let id = parse_id(id)?;
        let patch = EndpointPatch {
            url: match url {
                Some(url) => Some(self.checked_url(&url).await?),
                None => None,
            },
            event_types: types.as_deref().map(checked_types).transpose()?,
            description: description.map(checked_description).transpose()?,
            enabled,
        };
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "webhook_endpoint.update",
            format!("webhook_endpoint:{id}"),
            json!({
                "url": patch.url, "event_types": patch.event_types,
                "description": patch.description, "enabled": patch.enabled,
            }),
            now,
        );
        self.store
            .update_endpoint(&id, &patch, now, &audit)
            .await?
            .ok_or_else(|| not_found(&id))
    }

    /// Deletes the endpoint `id` and its deliveries.
    pub async fn delete(&self, id: &str, actor: &Actor) -> Result<(), ServiceError> {
        let id = parse_id(id)?;
        let audit = AuditEntry::new(
            actor,
            "webhook_endpoint.delete",
            format!("webhook_endpoint:{id}"),
            json!({}),
            self.clock.now(),
        );
        if self.store.delete_endpoint(&id, &audit).await? {
            tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
            Ok(())
        } else {
            Err(not_found(&id))
        }
    }

    /// Gives the endpoint `id` a new secret; the one before signs too for the overlap.
    pub async fn rotate_secret(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<RotatedSecret, ServiceError> {
        let id = parse_id(id)?;
        let now = self.clock.now();
        let overlap =
            TimeDelta::from_std(self.settings.webhook_secret_overlap).unwrap_or(TimeDelta::days(1));
        let secret = EndpointSecret::generate();
        let previous_expires_at = now + overlap;
        let audit = AuditEntry::new(
            actor,
            "webhook_endpoint.rotate_secret",
            format!("webhook_endpoint:{id}"),
            json!({ "previous_secret_expires_at": crate::domain::time::rfc3339(previous_expires_at) }),
            now,
        );
        if !self
            .store
            .rotate_endpoint_secret(&id, &secret, previous_expires_at, now, &audit)
            .await?
        {
            return Err(not_found(&id));
        }
        tracing::info!(endpoint_id = %id, "webhook endpoint secret rotated");
        Ok(RotatedSecret {
            id,
            secret,
            previous_expires_at,
        })
    }

    /// The endpoint's deliveries, a page at a time.
    pub async fn deliveries(
        &self,
        id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, ServiceError> {
        let id = parse_id(id)?;
        self.store
            .deliveries(&id, filter)
            .await?
            .ok_or_else(|| not_found(&id))
    }

    /// Makes one delivery due now.
    pub async fn retry(
        &self,
        id: &str,
        delivery: &str,
        actor: &Actor,
    ) -> Result<Delivery, ServiceError> {
        let id = parse_id(id)?;
        let missing = || {
            ServiceError::NotFound(format!(
                "webhook endpoint `{id}` has no delivery `{delivery}`"
            ))
        };
        let delivery_id = DeliveryId::parse(delivery).ok_or_else(missing)?;
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "webhook_delivery.retry",
            format!("webhook_delivery:{delivery_id}"),
            json!({ "endpoint_id": id }),
            now,
        );
        match self
            .store
            .retry_delivery(&id, &delivery_id, now, &audit)
            .await?
        {
            Retried::Scheduled(delivery) => Ok(delivery),
            Retried::InFlight => Err(ServiceError::conflict(
                "delivery_in_flight",
                format!("delivery `{delivery_id}` is being attempted now; ask again once it ends"),
            )),
            Retried::NotFound => Err(missing()),
        }
    }

    /// Delivers every event from `from` to `to` of the endpoint's types to it again; how many.
    pub async fn replay(
        &self,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<u64, ServiceError> {
        let id = parse_id(id)?;
        if from >= to {
            return Err(ServiceError::invalid(
                "invalid_body",
                "`from` must be before `to`",
            ));
        }
        if to - from > MAX_REPLAY {
            return Err(ServiceError::invalid(
                "invalid_body",
                "a replay covers at most 31 days: split longer ones",
            ));
        }
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "webhook_endpoint.replay",
            format!("webhook_endpoint:{id}"),
            json!({
                "from": crate::domain::time::rfc3339(from),
                "to": crate::domain::time::rfc3339(to),
            }),
            now,
        );
        let scheduled = self
            .store
            .replay_events(&id, from, to, now, &audit)
            .await?
            .ok_or_else(|| not_found(&id))?;
        tracing::info!(endpoint_id = %id, scheduled, "webhook events replayed");
        Ok(scheduled)
    }

    /// `url` when it follows the rules, the addresses its host resolves to included.
    async fn checked_url(&self, url: &str) -> Result<String, ServiceError> {
        let rules = target_rules(self.settings);
        let refused =
            |e: InvalidWebhookUrl| ServiceError::invalid("invalid_webhook_url", e.to_string());
        let (parsed, name) = rules.check(url).map_err(refused)?;
        if let Some(name) = name {
            sender::resolve_checked(&rules, &name)
                .await
                .map_err(refused)?;
        }
        // As stored and sent: normalised (punycode, percent-encoding) it may have grown.
        let url = parsed.to_string();
        if url.len() > 2048 {
            return Err(refused(InvalidWebhookUrl::TooLong));
        }
        Ok(url)
    }
}

fn parse_id(id: &str) -> Result<EndpointId, ServiceError> {
    EndpointId::parse(id)
        .ok_or_else(|| ServiceError::NotFound(format!("no webhook endpoint has the id `{id}`")))
}

fn not_found(id: &EndpointId) -> ServiceError {
    ServiceError::NotFound(format!("no webhook endpoint has the id `{id}`"))
}

fn checked_types(types: &[String]) -> Result<Vec<String>, ServiceError> {
    event_types(types).map_err(|e| match e {
        crate::domain::outbound::InvalidEventTypes::Unknown(_) => {
            ServiceError::invalid("unknown_event_type", e.to_string())
        }
        crate::domain::outbound::InvalidEventTypes::Count
        | crate::domain::outbound::InvalidEventTypes::Repeated => {
            ServiceError::invalid("invalid_body", e.to_string())
        }
    })
}

fn checked_description(description: String) -> Result<String, ServiceError> {
    if description.chars().count() > 500 || description.contains('\0') {
        return Err(ServiceError::invalid(
            "invalid_body",
            "description must be at most 500 characters, without NUL",
        ));
    }
    Ok(description)
}
