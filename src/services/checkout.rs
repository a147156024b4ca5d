//! The subscribe flow: a Stripe Checkout Session for a reader and a plan, and a Billing Portal
//! session for a subscriber. The loop closes through the webhooks that follow
//! (`checkout.session.completed`, `customer.subscription.created`), which carry the reader id
//! set here.
//!
//! Every input is checked before Stripe is called: redirect URLs must be on an allowed origin,
//! so no request can make tollgate an open redirect.

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::domain::{ApiKeyId, Plan, PlanId, ReaderId, RedirectUrl, StripePriceId};
use crate::services::ServiceError;
use crate::services::access::AccessService;
use crate::services::limits::RateLimits;
use crate::stripe::client::{CheckoutPurpose, CheckoutSessionRequest, StripeClient};

/// Longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Most seats one checkout may buy.
pub const MAX_SEATS: u32 = 10_000;

/// What a site asks checkout for.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    /// Who subscribes.
    pub reader_id: &'a ReaderId,
    /// To what.
    pub plan_id: &'a PlanId,
    /// One of the plan's prices; the plan's first when `None`.
    pub price: Option<&'a StripePriceId>,
    /// Where Stripe sends the reader after paying.
    pub success_url: &'a str,
    /// Where Stripe sends the reader who gives up.
    pub cancel_url: &'a str,
    /// An address to prefill.
    pub email: Option<&'a str>,
    /// How many seats, for a plan sold by the seat.
    pub quantity: Option<u32>,
    /// Whether the reader buys the plan as a gift (a one-off payment) rather than for themselves.
    pub gift: bool,
}

/// A Checkout Session Stripe made.
#[derive(Debug, Clone)]
pub struct CheckoutStarted {
    /// Stripe's id of the session.
    pub id: String,
    /// Where to send the reader.
    pub url: String,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
}

/// The subscribe flow's operations.
pub struct Checkout<'a> {
    /// Stripe's API, when a secret key is configured.
    pub stripe: Option<&'a StripeClient>,
    /// The allowed redirect origins.
    pub settings: &'a Settings,
    /// What readers hold.
    pub access: &'a AccessService,
    /// The checkout rate limits.
    pub limits: &'a RateLimits,
}

/// The Stripe client, or the refusal that says none is configured.
pub fn stripe_client(stripe: Option<&StripeClient>) -> Result<&StripeClient, ServiceError> {
    stripe.ok_or_else(|| ServiceError::NotConfigured {
        code: "stripe_not_configured",
        detail: "no Stripe secret key is configured (stripe_secret_key)".into(),
    })
}

impl Checkout<'_> {
    /// Starts checkout for the site holding the key `caller`. Refused when the plan is archived,
    /// the price is not the plan's, or the reader's subscriptions already grant everything the
    /// plan grants (they belong in the billing portal).
    pub async fn start(
        &self,
        caller: &ApiKeyId,
        request: &CheckoutRequest<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutStarted, ServiceError> {
        self.limits
            .checkout_per_key
            .admit(caller.as_str(), "API key")?;
        self.limits
            .checkout_per_reader
            .admit(request.reader_id.as_str(), "reader")?;
        let success_url = self.redirect("success_url", request.success_url)?;
        let cancel_url = self.redirect("cancel_url", request.cancel_url)?;
        let email = request.email.map(email).transpose()?;
        let holdings = self.access.fresh_holdings(request.reader_id).await?;
        let plan = holdings
            .plans
            .iter()
            .find(|plan| &plan.id == request.plan_id)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("no plan has the id `{}`", request.plan_id))
            })?;
        if plan.archived_at.is_some() {
            return Err(ServiceError::conflict(
                "plan_archived",
                format!(
                    "plan `{}` is archived and takes no new subscribers",
                    plan.id
                ),
            ));
        }
        let (price, quantity) = if request.gift {
            let gift = plan.spec.gift.as_ref().ok_or_else(|| {
                ServiceError::invalid(
                    "plan_not_giftable",
                    format!("plan `{}` has no gift_price: it cannot be given", plan.id),
                )
            })?;
            if request.price.is_some_and(|price| price != &gift.price) {
                return Err(ServiceError::invalid(
                    "price_not_in_plan",
                    format!("a gift of plan `{}` is bought at its gift_price", plan.id),
                ));
            }
            if request.quantity.is_some_and(|quantity| quantity != 1) {
                return Err(ServiceError::invalid(
                    "quantity_not_allowed",
                    "a gift subscription is bought one at a time",
                ));
            }
            (&gift.price, 1)
        } else {
            (
                self.subscription_price(plan, request)?,
                self.quantity(plan, request)?,
            )
        };
        // A subscriber may buy gifts; a subscription they hold already belongs in the portal.
        if !request.gift && holdings.subscribed_to_all(&plan.spec.entitlements) {
            return Err(ServiceError::conflict(
                "already_subscribed",
                format!(
                    "reader `{}` already has a subscription granting what plan `{}` grants; send \
                     them to the billing portal (POST /v1/portal/sessions) to change it",
                    request.reader_id, plan.id
                ),
            ));
        }
        let client = stripe_client(self.stripe)?;
        let form = CheckoutSessionRequest {
            price: price.as_str(),
            success_url: success_url.as_str(),
            cancel_url: cancel_url.as_str(),
            reader_id: request.reader_id.as_str(),
            customer: holdings.record.current_customer(),
            customer_email: email,
            trial_days: Some(plan.spec.trial_days),
            allow_promotion_codes: plan.spec.allow_promotion_codes,
            quantity,
            purpose: match (&plan.spec.gift, request.gift) {
                (Some(gift), true) => CheckoutPurpose::Gift {
                    plan_id: plan.id.as_str(),
                    months: gift.months,
                },
                _ => CheckoutPurpose::Subscription,
            },
        };
        let session = client
            .create_checkout_session(&form, idempotency_key)
            .await?;
        tracing::info!(
            session_id = %session.id,
            reader_id = %request.reader_id,
            plan_id = %plan.id,
            gift = request.gift,
            "checkout session created"
        );
        let expires_at = DateTime::from_timestamp(session.expires_at, 0).ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "Stripe gave an expiry out of range: {}",
                session.expires_at
            ))
        })?;
        Ok(CheckoutStarted {
            id: session.id,
            url: session.url,
            expires_at,
        })
    }

    /// A Billing Portal session for the reader's Stripe customer; its URL.
    pub async fn portal(
        &self,
        reader: &ReaderId,
        return_url: &str,
        idempotency_key: Option<&str>,
    ) -> Result<String, ServiceError> {
        let return_url = self.redirect("return_url", return_url)?;
        let holdings = self.access.fresh_holdings(reader).await?;
        let customer = holdings.record.current_customer().ok_or_else(|| {
            ServiceError::NotFound(format!(
                "reader `{reader}` has no Stripe customer yet: they have never been through checkout"
            ))
        })?;
        let client = stripe_client(self.stripe)?;
        let session = client
            .create_portal_session(customer, return_url.as_str(), idempotency_key)
            .await?;
        tracing::info!(reader_id = %reader, "billing portal session created");
        Ok(session.url)
    }

    /// The subscription price asked for: one of the plan's, its first by default.
    fn subscription_price<'p>(
        &self,
        plan: &'p Plan,
        request: &CheckoutRequest<'p>,
    ) -> Result<&'p StripePriceId, ServiceError> {
        match request.price {
            Some(price) if plan.spec.stripe_prices.contains(price) => Ok(price),
            Some(price) => Err(ServiceError::invalid(
                "price_not_in_plan",
                format!("price `{price}` is not one of plan `{}`'s prices", plan.id),
            )),
            None => plan.spec.stripe_prices.first().ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!("plan {} has no price", plan.id))
            }),
        }
    }

    /// How many seats: 1 to [`MAX_SEATS`] for a plan sold by the seat, only 1 for others.
    fn quantity(&self, plan: &Plan, request: &CheckoutRequest<'_>) -> Result<u32, ServiceError> {
        match request.quantity {
            None => Ok(1),
            Some(quantity) if plan.spec.seats && (1..=MAX_SEATS).contains(&quantity) => {
                Ok(quantity)
            }
            Some(1) => Ok(1),
            Some(_) if plan.spec.seats => Err(ServiceError::invalid(
                "quantity_not_allowed",
                format!("quantity must be between 1 and {MAX_SEATS} seats"),
            )),
            Some(_) => Err(ServiceError::invalid(
                "quantity_not_allowed",
                format!(
                    "plan `{}` is not sold by the seat: quantity must be 1",
                    plan.id
                ),
            )),
        }
    }

    /// A redirect URL, checked against the allowed origins.
    fn redirect(&self, field: &str, raw: &str) -> Result<RedirectUrl, ServiceError> {
        RedirectUrl::parse(raw, &self.settings.allowed_redirect_origins)
            .map_err(|e| ServiceError::invalid("invalid_redirect_url", format!("{field} {e}")))
    }
}

/// An e-mail address to prefill at checkout: a plausible `local@domain`, checked no further
/// (Stripe's form lets the reader correct it).
fn email(raw: &str) -> Result<&str, ServiceError> {
    let plausible = raw.len() <= MAX_EMAIL
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        && raw.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(raw)
    } else {
        Err(ServiceError::invalid(
            "invalid_email",
            format!(
                "email must be an address such as reader@example.com, at most {MAX_EMAIL} characters"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_pass_and_others_do_not() {
        assert!(email("reader@example.com").is_ok());
        assert!(email("first.last+news@mail.example.co.uk").is_ok());
        for bad in [
            "",
            "reader",
            "@example.com",
            "reader@",
            "reader@example",
            "reader@@example.com",
            "reader@.example.com",
            "reader@example.com.",
            "read er@example.com",
            "reader@example.com\n",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
