//! Stripe's webhook deliveries and the inbox they fill. Every verified event is stored before it
//! is acknowledged, once however often it is delivered, and then applied to the mirror; events
//! of a type tollgate does not apply, or from the other Stripe mode, are stored as skipped.

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{Actor, AuditEntry, EventStatus, NewWebhookEvent, StripeEventId, WebhookEvent};
use crate::services::ServiceError;
use crate::services::mirror::Mirror;
use crate::store::{EventFilter, Store};
use crate::stripe::event::Envelope;
use crate::stripe::{objects, signature};

/// What receiving a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Whether the event was new, rather than a redelivery of one stored before.
    pub new: bool,
}

/// The webhook operations.
pub struct Webhooks<'a> {
    /// Where events are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// The webhook secrets, tolerance and Stripe mode.
    pub settings: &'a Settings,
    /// Applies stored events.
    pub mirror: &'a Mirror,
}

impl Webhooks<'_> {
    /// Verifies `body` against its `Stripe-Signature` header, stores the event and applies it.
    /// Once stored, the event is acknowledged whatever applying it does: a failure is kept and
    /// retried.
    pub async fn receive(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<Received, ServiceError> {
        let stripe = self.settings.stripe();
        if stripe.webhook_secrets.is_empty() {
            // Not a client error: Stripe keeps retrying, so nothing is lost while an operator
            // configures.
            return Err(ServiceError::NotConfigured {
                code: "webhooks_not_configured",
                detail: "no Stripe webhook secret is configured (stripe_webhook_secrets)".into(),
            });
        }
        signature::verify(
            signature_header,
            body,
            stripe.webhook_secrets,
            stripe.webhook_tolerance,
            self.clock.now(),
        )
        .map_err(|err| ServiceError::Unacceptable {
            code: "invalid_signature",
            detail: err.to_string(),
        })?;
        let envelope = Envelope::parse(body).map_err(|err| {
            // Signed by Stripe yet not an event: nothing to store it under, so it is refused,
            // and operators must hear of it, since Stripe will retry it until it gives up.
            tracing::warn!(bytes = body.len(), reason = %err, "a signed webhook body is not a Stripe event");
            ServiceError::Unacceptable {
                code: "invalid_event",
                detail: err.to_string(),
            }
        })?;
        let span = tracing::Span::current();
        span.record("event_id", envelope.id.as_str());
        span.record("event_type", envelope.kind.as_str());
        // Envelope::parse succeeded, so the body is valid JSON and therefore UTF-8.
        let text = String::from_utf8(body.to_vec()).map_err(|_| ServiceError::Unacceptable {
            code: "malformed_json",
            detail: "the body is not UTF-8".into(),
        })?;
        let text = self.without_erased_readers(&envelope, text).await?;
        let note = self.skip_reason(&envelope);
        let status = if note.is_some() {
            EventStatus::Skipped
        } else {
            EventStatus::Pending
        };
        let now = self.clock.now();
        let event = NewWebhookEvent {
            status,
            note,
            id: envelope.id,
            kind: envelope.kind,
            created: envelope.created,
            api_version: envelope.api_version,
            livemode: envelope.livemode,
            body: text,
            received_at: now,
            // Should the process stop before applying it, the retry task will.
            next_attempt_at: (status == EventStatus::Pending)
                .then(|| self.mirror.retry_policy().next_attempt(1, now, now))
                .flatten(),
        };
        let new = self.store.record_webhook_event(&event).await?;
        tracing::info!(new, status = %event.status, "Stripe event received");
        if status == EventStatus::Pending
            && let Err(err) = self.mirror.apply(&event.id).await
        {
            tracing::warn!(error = %err, "applying a stored Stripe event failed; it will be retried");
        }
        Ok(Received { new })
    }

    /// `body` with the ids of erased readers it names rewritten to their pseudonyms, so that
    /// they are not stored again; as it was when it names none (or cannot be read, which
    /// applying it reports).
    async fn without_erased_readers(
        &self,
        envelope: &Envelope,
        body: String,
    ) -> Result<String, ServiceError> {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Ok(body);
        };
        let Ok(mut changes) = objects::changes(envelope.kind.as_str(), &json) else {
            return Ok(body);
        };
        let scrubbed = self
            .mirror
            .tombstones()
            .scrub(self.store, &mut changes, &body)
            .await?;
        Ok(scrubbed.unwrap_or(body))
    }

    /// Why an event is stored without being applied, if it is.
    fn skip_reason(&self, envelope: &Envelope) -> Option<String> {
        let livemode = self.settings.stripe().livemode;
        if envelope.livemode != livemode {
            Some(format!(
                "a {} event, and tollgate applies {} events",
                mode(envelope.livemode),
                mode(livemode)
            ))
        } else if !objects::is_applied(envelope.kind.as_str()) {
            Some(format!("tollgate does not apply {} events", envelope.kind))
        } else {
            None
        }
    }

    /// Stored events, newest first, without their bodies.
    pub async fn list(&self, filter: &EventFilter) -> Result<Vec<WebhookEvent>, ServiceError> {
        Ok(self.store.list_webhook_events(filter).await?)
    }

    /// Applies one pending or failed event now (as the caller named it), and shows where it
    /// stands afterwards.
    pub async fn retry(&self, raw_id: &str, actor: &Actor) -> Result<WebhookEvent, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no Stripe event `{raw_id}` is stored"));
        // Stored ids follow the rule; one that breaks it names no stored event (and PostgreSQL
        // refuses some of them, a NUL say, as text at all).
        let id = StripeEventId::parse(raw_id).ok_or_else(not_found)?;
        let event = self.store.stored_event(&id).await?.ok_or_else(not_found)?;
        match event.status {
            EventStatus::Applied => {
                return Err(ServiceError::conflict(
                    "event_already_applied",
                    "the event is applied already; applying it again would change nothing",
                ));
            }
            EventStatus::Skipped => {
                return Err(ServiceError::conflict(
                    "event_not_applicable",
                    "the event is of a type or Stripe mode tollgate does not apply",
                ));
            }
            EventStatus::Pending | EventStatus::Failed => {}
        }
        let outcome = self.mirror.apply(&event.id).await?;
        tracing::info!(?outcome, "Stripe event retried by an operator");
        // The attempt is the mirror's own transaction, which records its outcome on the event;
        // the entry that an operator asked for it follows.
        self.store
            .append_audit_entry(&AuditEntry::new(
                actor,
                "webhook_event.retry",
                format!("webhook_event:{}", event.id),
                serde_json::json!({ "outcome": format!("{outcome:?}") }),
                self.clock.now(),
            ))
            .await?;
        let filter = EventFilter {
            id: Some(event.id.clone()),
            limit: 1,
            ..EventFilter::default()
        };
        self.store
            .list_webhook_events(&filter)
            .await?
            .pop()
            .ok_or_else(not_found)
    }
}

fn mode(livemode: bool) -> &'static str {
    if livemode { "live-mode" } else { "test-mode" }
}
