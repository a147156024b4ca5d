//! The one value every handler may reach, shared by all workers, and the services it opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::services::ServiceError;
use crate::services::access::AccessService;
use crate::services::audit::AuditLog;
use crate::services::checkout::{Checkout, stripe_client};
use crate::services::erasure::Erasures;
use crate::services::gift_subscriptions::{CodeIssuer, GiftSubscriptions};
use crate::services::gifts::Gifts;
use crate::services::idempotency::Idempotency;
use crate::services::keys::{KeyCache, Keys};
use crate::services::licences::Licences;
use crate::services::limits::RateLimits;
use crate::services::mirror::Mirror;
use crate::services::outbound::WebhookEndpoints;
use crate::services::plans::Plans;
use crate::services::readers::Readers;
use crate::services::reconcile::{LogLines, Reconcile};
use crate::services::reports::{ReportCache, Reports};
use crate::services::sessions::Sessions;
use crate::services::teams::Teams;
use crate::services::webhooks::Webhooks;
use crate::store::Store;
use crate::stripe::client::StripeClient;

/// What every handler may reach: one value, shared by all workers.
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The settings the service was started with.
    pub settings: Arc<Settings>,
    /// Every metric the service exports.
    pub metrics: prometheus::Registry,
    /// Requests being served now, which a shutdown waits for.
    pub in_flight: InFlight,
    /// Applies stored Stripe events.
    pub mirror: Mirror,
    /// Stripe's API, when a secret key is configured.
    pub stripe: Option<StripeClient>,
    /// Access decisions, the meter and tokens.
    pub access: AccessService,
    /// Recently checked API keys.
    pub key_cache: KeyCache,
    /// Rate limits on access decisions and checkout.
    pub limits: Arc<RateLimits>,
    /// Seals and opens gift subscription codes.
    pub gift_codes: Arc<CodeIssuer>,
    /// MRR answers kept computed.
    pub report_cache: ReportCache,
}

impl AppState {
    /// The API key operations.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            cache: &self.key_cache,
        }
    }

    /// The dashboard session operations.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
        }
    }

    /// The gift operations.
    pub fn gifts(&self) -> Gifts<'_> {
        Gifts {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            settings: &self.settings,
            access: &self.access,
        }
    }

    /// The licence operations.
    pub fn licences(&self) -> Licences<'_> {
        Licences {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            cache: self.access.cache(),
        }
    }

    /// The plan operations.
    pub fn plans(&self) -> Plans<'_> {
        Plans {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            cache: self.access.cache(),
        }
    }

    /// What the mirror holds about readers, and their grants.
    pub fn readers(&self) -> Readers<'_> {
        Readers {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            access: &self.access,
        }
    }

    /// Erasing readers.
    pub fn erasures(&self) -> Erasures<'_> {
        Erasures {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            access: &self.access,
            tombstones: self.mirror.tombstones(),
        }
    }

    /// The gift subscription operations.
    pub fn gift_subscriptions(&self) -> GiftSubscriptions<'_> {
        GiftSubscriptions {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            codes: &self.gift_codes,
            cache: self.access.cache(),
        }
    }

    /// The webhook endpoint operations.
    pub fn webhook_endpoints(&self) -> WebhookEndpoints<'_> {
        WebhookEndpoints {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            settings: &self.settings,
        }
    }

    /// The audit log's reader.
    pub fn audit_log(&self) -> AuditLog<'_> {
        AuditLog {
            store: self.store.as_ref(),
        }
    }

    /// The idempotency operations.
    pub fn idempotency(&self) -> Idempotency<'_> {
        Idempotency {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
        }
    }

    /// The team seat operations.
    pub fn teams(&self) -> Teams<'_> {
        Teams {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            access: &self.access,
        }
    }

    /// The subscribe flow.
    pub fn checkout(&self) -> Checkout<'_> {
        Checkout {
            stripe: self.stripe.as_ref(),
            settings: &self.settings,
            access: &self.access,
            limits: &self.limits,
        }
    }

    /// Stripe's webhook deliveries and the inbox they fill.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            settings: &self.settings,
            mirror: &self.mirror,
        }
    }

    /// Reconciling the mirror against Stripe's API.
    pub fn reconcile(&self) -> Result<Reconcile<'_>, ServiceError> {
        Ok(Reconcile {
            client: stripe_client(self.stripe.as_ref())?,
            store: self.store.as_ref(),
            mirror: &self.mirror,
            window: self.settings.stripe().sync_window,
            progress: &LogLines,
        })
    }

    /// Finance reports.
    pub fn reports(&self) -> Reports<'_> {
        Reports {
            store: self.store.as_ref(),
            time_zone: self.settings.billing().reporting_time_zone,
            grace: self.settings.billing().past_due_grace,
            cache: &self.report_cache,
        }
    }
}

/// Counts the requests being served, so that a shutdown can wait for them. actix-web's own
/// graceful stop was seen to close connections whose request body was still arriving.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// One request being served; dropping it ends it.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    /// Marks a request as started until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(&self.0))
    }

    /// How many requests are being served.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits until no request is being served, or `within` has passed; `true` if none is left.
    pub async fn drained(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
