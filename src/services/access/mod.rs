//! The paywall's hot path: may this reader (or device) read this article, and the token that
//! proves it.
//!
//! A reader entitled to what the content requires is let in without a database write; anyone
//! else goes through the meter, whose check-then-count runs under the subject's lock in the
//! database (see `store::meter`), so no concurrency ever unlocks more than the limit.

mod admission;
mod breaker;
mod cache;
mod loads;
mod meters;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use breaker::Breaker;
pub use cache::{EntitlementCache, Loaded};
use writer::MeterWriter;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::entitlements::held;
use crate::domain::{
    ApiKey, ArticleId, Audience, Entitlement, GiftStatus, Held, Licence, LicenceId, MeterState,
    MeterSubject, PastDueGrace, Plan, PlanId, ReaderId, SourceKind,
};
use crate::services::ServiceError;
use crate::services::limits::RateLimits;
use crate::store::{ReaderRecord, Store, StoreError, UnlockOutcome, UnlockRequest};
use crate::tokens::{ArticleGrant, Issued, Subject, TokenError, Tokens};

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The database failed; nothing was granted or counted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token could not be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<AccessError> for ServiceError {
    fn from(err: AccessError) -> Self {
        match err {
            AccessError::Store(err) => Self::Store(err),
            AccessError::Token(err) => err.into(),
        }
    }
}

/// Why access was granted or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The reader holds the required entitlement.
    Entitled,
    /// The reader reads from an address of an institutional licence that gives the required
    /// entitlement.
    Licensed,
    /// A gift link opens this article for the reader (or device).
    Gift,
    /// A free view was counted on the meter.
    Metered,
    /// The article was unlocked earlier in this period; nothing was counted.
    AlreadyUnlocked,
    /// The meter is full for this period.
    MeterExhausted,
    /// The audience gets no free views (the site asks the visitor to register).
    NotAllowed,
    /// The content requires an entitlement free views cannot unlock, and the reader lacks it.
    NotEntitled,
}

/// A plan that would unlock refused content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Offer {
    /// The plan.
    pub plan_id: PlanId,
    /// Its name.
    pub name: String,
}

/// The answer to "may this reader read this article?".
#[derive(Debug, Clone)]
pub struct Decision {
    /// Whether the site may show the article.
    pub granted: bool,
    /// Why.
    pub reason: Reason,
    /// A token unlocking the article, when granted.
    pub token: Option<Issued>,
    /// The meter, when it was consulted.
    pub meter: Option<MeterState>,
    /// Plans that grant the required entitlement, when refused.
    pub offers: Vec<Offer>,
    /// The licence that admitted the reader by their address, when one did.
    pub licence_id: Option<LicenceId>,
    /// Why a gift code given with the question did not open the article, when it did not.
    pub gift_status: Option<GiftStatus>,
    /// Whether the decision was made from the reader's last load because the database is
    /// unreachable.
    pub stale: bool,
}

impl Decision {
    /// Access granted for `reason`, with the token that proves it.
    fn granted(reason: Reason, token: Issued) -> Self {
        Self {
            granted: true,
            reason,
            token: Some(token),
            meter: None,
            offers: Vec::new(),
            licence_id: None,
            gift_status: None,
            stale: false,
        }
    }
}

/// What a reader holds now.
#[derive(Debug, Clone)]
pub struct Entitled {
    /// Each entitlement, with when it lapses.
    pub held: Vec<Held>,
    /// Set when the answer comes from the reader's last load because the database is
    /// unreachable: the moment it stops being usable (that load's time plus `stale_if_error`),
    /// which no token made from it may outlive.
    pub stale_until: Option<DateTime<Utc>>,
}

/// A token saying what a reader holds, for `POST /v1/tokens`.
#[derive(Debug, Clone)]
pub struct ReaderToken {
    /// The token.
    pub issued: Issued,
    /// The entitlements it lists.
    pub entitlements: Vec<Entitlement>,
    /// The licence in force at the reader's address, if any: a hint for the site only.
    pub licence: Option<Licence>,
    /// Whether it was made from the reader's last load because the database is unreachable.
    pub stale: bool,
}

/// What one access question is about.
#[derive(Debug, Clone, Copy)]
pub struct AccessQuestion<'a> {
    /// Who asks to read.
    pub subject: &'a MeterSubject,
    /// What they ask to read.
    pub article: &'a ArticleId,
    /// The entitlement it requires.
    pub requires: &'a Entitlement,
    /// The address they read from, as the site saw it, when the site's key may say so.
    pub address: Option<IpAddr>,
    /// A gift link's code the reader came with.
    pub gift: Option<&'a str>,
}

/// What a reader holds at one moment, with what it follows from.
#[derive(Debug, Clone)]
pub struct Holdings {
    /// Everything the mirror holds about the reader.
    pub record: ReaderRecord,
    /// Every plan, archived or not: the cached list itself, shared, not a copy.
    pub plans: Arc<Vec<Plan>>,
    /// What the reader holds, each entitlement with its sources and when it lapses.
    pub held: Vec<Held>,
    /// The moment.
    pub now: DateTime<Utc>,
}

impl Holdings {
    /// Whether the reader's subscriptions (grants aside) already grant every one of
    /// `entitlements`.
    pub fn subscribed_to_all(&self, entitlements: &[Entitlement]) -> bool {
        entitlements.iter().all(|wanted| {
            self.held.iter().any(|h| {
                &h.name == wanted && h.sources.iter().any(|s| s.kind == SourceKind::Subscription)
            })
        })
    }
}

/// Decides access, counts the meter and issues tokens.
pub struct AccessService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
    cache: EntitlementCache,
    breaker: Breaker,
    writer: MeterWriter,
    tokens: Tokens,
    limits: Arc<RateLimits>,
}

impl AccessService {
    /// The service over `store`; starts the meter's writer task.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        (cache, breaker): (EntitlementCache, Breaker),
        tokens: Tokens,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            limits,
            breaker,
            writer: MeterWriter::spawn(Arc::clone(&store)),
            store,
            clock,
            settings,
            cache,
            tokens,
        }
    }

    /// The tokens this service signs.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// How long a `past_due` subscription keeps giving.
    pub fn grace(&self) -> PastDueGrace {
        self.settings.billing().past_due_grace
    }

    /// Whether the database is known to be unreachable.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The in-memory copy of entitlements and plans.
    pub fn cache(&self) -> &EntitlementCache {
        &self.cache
    }

    /// Every plan, archived or not.
    pub async fn plans(&self) -> Result<Arc<Vec<Plan>>, StoreError> {
        if let Some(plans) = self.cache.plans() {
            return Ok(plans);
        }
        let plans = Arc::new(self.store.list_plans().await?);
        self.cache.put_plans(Arc::clone(&plans));
        Ok(plans)
    }

    /// What a reader holds at `now` by `record` under `plans`: the one rule, wherever the
    /// record and plans come from.
    fn holdings_of(&self, record: &ReaderRecord, plans: &[Plan], now: DateTime<Utc>) -> Vec<Held> {
        held(
            &record.subscriptions,
            plans,
            &record.grants,
            &record.licences,
            &record.teams,
            now,
            self.grace(),
        )
    }

    /// What the reader holds now, read from the database rather than the cache, with the record
    /// and plans it follows from: for answers that must be current (a staff view, checkout)
    /// rather than fast.
    pub async fn fresh_holdings(&self, reader: &ReaderId) -> Result<Holdings, StoreError> {
        let record = self.store.reader(reader).await?;
        let plans = self.store.list_plans().await?;
        let now = self.clock.now();
        let held = self.holdings_of(&record, &plans, now);
        Ok(Holdings {
            record,
            plans: Arc::new(plans),
            held,
            now,
        })
    }

    /// A token saying what the reader holds now, the entitlements it lists, and whether it was
    /// made from the reader's last load because the database is unreachable.
    pub async fn entitlements_token(
        &self,
        reader: &ReaderId,
    ) -> Result<(Issued, Vec<Entitlement>, bool), AccessError> {
        let now = self.clock.now();
        let Entitled { held, stale_until } = self.entitlements(reader, now).await?;
        if stale_until.is_some() {
            self.breaker.count_stale("tokens");
        }
        let names: Vec<&str> = held.iter().map(|h| h.name.as_str()).collect();
        // The token ends when the first entitlement it lists lapses, and a token made from a
        // last load no later than that load may be used.
        let lapses_at = held
            .iter()
            .filter_map(|h| h.lapses_at)
            .chain(stale_until)
            .min();
        let issued =
            self.tokens
                .entitlements_token(Subject::Reader(reader.as_str()), &names, lapses_at)?;
        Ok((
            issued,
            held.into_iter().map(|h| h.name).collect(),
            stale_until.is_some(),
        ))
    }

    /// [`Self::entitlements_token`] for the site holding `caller`, with the licence in force at
    /// the reader's `address`, if any: a hint for the site only. What a licence gives by address
    /// is never put in a token, so that each article read under it is decided, and counted, on
    /// its own.
    pub async fn token_for(
        &self,
        caller: &ApiKey,
        reader: &ReaderId,
        address: Option<IpAddr>,
    ) -> Result<ReaderToken, ServiceError> {
        let (issued, entitlements, stale) = self.entitlements_token(reader).await?;
        // The licence is a hint read from the database: none while it is unreachable.
        let licence = if stale {
            None
        } else {
            self.licence_at(caller, address).await?
        };
        Ok(ReaderToken {
            issued,
            entitlements,
            licence,
            stale,
        })
    }

    /// Decides `question` for the site holding the key `caller`: within the rate limits of
    /// that key and of the subject, and with an address only from a key that may assert one.
    pub async fn decide(
        &self,
        caller: &ApiKey,
        question: AccessQuestion<'_>,
    ) -> Result<Decision, ServiceError> {
        Self::may_assert(caller, question.address)?;
        self.limits
            .access_per_key
            .admit(caller.id.as_str(), "API key")?;
        let subject = question.subject;
        self.limits.access_per_reader.admit(
            &format!("{}:{}", subject.audience.as_str(), subject.id.as_str()),
            "reader or device",
        )?;
        let decision = self.decide_unlimited(&question).await?;
        if let (Some(licence), Some(address)) = (&decision.licence_id, question.address) {
            tracing::info!(key_id = %caller.id, %address, licence_id = %licence, article_id = %question.article, "access granted by licence");
        }
        Ok(decision)
    }

    async fn decide_unlimited(
        &self,
        question: &AccessQuestion<'_>,
    ) -> Result<Decision, AccessError> {
        let AccessQuestion {
            subject,
            article,
            requires,
            gift,
            ..
        } = *question;
        let now = self.clock.now();
        let Entitled { held, stale_until } = match subject.audience {
            Audience::Registered => self.entitlements(&subject.id, now).await?,
            Audience::Anonymous => Entitled {
                held: Vec::new(),
                stale_until: None,
            },
        };
        let names: Vec<&str> = held.iter().map(|h| h.name.as_str()).collect();
        let token_subject = match subject.audience {
            Audience::Registered => Subject::Reader(subject.id.as_str()),
            Audience::Anonymous => Subject::Device(subject.id.as_str()),
        };
        if let Some(entitled) = held.iter().find(|h| &h.name == requires) {
            // A seat of a licence is the only thing giving it: the licence's usage counts it.
            let mut sources = entitled.sources.iter();
            if let Some(seat) = sources.next().filter(|s| s.kind == SourceKind::Licence)
                && sources.all(|s| s.kind == SourceKind::Licence)
            {
                if stale_until.is_some() {
                    return Err(Self::unreachable().into());
                }
                let licence = LicenceId::from_stored(seat.id.clone());
                self.count_licensed(&licence, subject, article, now).await?;
            }
            let grant = ArticleGrant {
                article: article.as_str(),
                meter: None,
                licence: None,
                not_after: stale_until,
            };
            let token = self.tokens.article_token(token_subject, &names, grant)?;
            if stale_until.is_some() {
                self.breaker.count_stale("access");
            }
            return Ok(Decision {
                stale: stale_until.is_some(),
                ..Decision::granted(Reason::Entitled, token)
            });
        }
        if stale_until.is_some() {
            // Nothing is metered, counted or opened from a last load.
            return Err(Self::unreachable().into());
        }
        let gift_status = match gift {
            Some(code) => match self.open_gift(code, subject, article, now).await? {
                Ok(()) => {
                    let grant = ArticleGrant {
                        article: article.as_str(),
                        meter: None,
                        licence: None,
                        not_after: None,
                    };
                    let token = self.tokens.article_token(token_subject, &names, grant)?;
                    return Ok(Decision::granted(Reason::Gift, token));
                }
                Err(status) => Some(status),
            },
            None => None,
        };
        let mut decision = self
            .licence_or_meter(question, &names, token_subject, now)
            .await?;
        decision.gift_status = gift_status;
        Ok(decision)
    }

    /// The decision for a reader who holds nothing that opens the article: by the licence of
    /// their address, or by the meter.
    async fn licence_or_meter(
        &self,
        question: &AccessQuestion<'_>,
        names: &[&str],
        token_subject: Subject<'_>,
        now: DateTime<Utc>,
    ) -> Result<Decision, AccessError> {
        let AccessQuestion {
            subject,
            article,
            requires,
            address,
            ..
        } = *question;
        if let Some(address) = address
            && let Some(licence) = self.store.licence_at_address(address, now).await?
            && licence.spec.entitlements.contains(requires)
        {
            self.count_licensed(&licence.id, subject, article, now)
                .await?;
            let grant = ArticleGrant {
                article: article.as_str(),
                meter: None,
                licence: Some(licence.id.as_str()),
                not_after: None,
            };
            let token = self.tokens.article_token(token_subject, names, grant)?;
            return Ok(Decision {
                licence_id: Some(licence.id),
                ..Decision::granted(Reason::Licensed, token)
            });
        }
        if !self.settings.meterable_entitlements.contains(requires) {
            return self.refused(Reason::NotEntitled, None, requires).await;
        }
        let policy = self.settings.meter_policy(subject.audience);
        if policy.limit == 0 {
            return self.refused(Reason::NotAllowed, None, requires).await;
        }
        let window = policy.window(now);
        // Where the writer says so, a read first: a re-read or a full meter needs no write, and
        // neither answer can be made wrong by a concurrent request (unlocks only add; only time
        // frees a slot).
        let seen = if self.writer.read_first() {
            Some(
                self.store
                    .meter_usage(subject, Some(article), &window)
                    .await?,
            )
        } else {
            None
        };
        let (outcome, usage) = match seen {
            Some(seen) if seen.has_article => (UnlockOutcome::AlreadyUnlocked, seen),
            Some(seen) if seen.used >= policy.limit => (UnlockOutcome::Exhausted, seen),
            _ => {
                let unlock = self
                    .writer
                    .unlock(UnlockRequest {
                        subject: subject.clone(),
                        article: article.clone(),
                        window,
                        limit: policy.limit,
                    })
                    .await?;
                (unlock.outcome, unlock.usage)
            }
        };
        let meter = policy.state(&window, &usage);
        let reason = match outcome {
            UnlockOutcome::Unlocked => {
                self.cache.forget_meter(subject);
                Reason::Metered
            }
            UnlockOutcome::AlreadyUnlocked => Reason::AlreadyUnlocked,
            UnlockOutcome::Exhausted => {
                return self
                    .refused(Reason::MeterExhausted, Some(meter), requires)
                    .await;
            }
        };
        let grant = ArticleGrant {
            article: article.as_str(),
            meter: Some(&meter),
            licence: None,
            not_after: None,
        };
        let token = self.tokens.article_token(token_subject, names, grant)?;
        Ok(Decision {
            meter: Some(meter),
            ..Decision::granted(reason, token)
        })
    }

    async fn refused(
        &self,
        reason: Reason,
        meter: Option<MeterState>,
        requires: &Entitlement,
    ) -> Result<Decision, AccessError> {
        let offers = self
            .plans()
            .await?
            .iter()
            .filter(|plan| plan.archived_at.is_none() && plan.spec.entitlements.contains(requires))
            .map(|plan| Offer {
                plan_id: plan.id.clone(),
                name: plan.spec.name.clone(),
            })
            .collect();
        Ok(Decision {
            granted: false,
            reason,
            token: None,
            meter,
            offers,
            licence_id: None,
            gift_status: None,
            stale: false,
        })
    }

    /// The error of a question that needs the database while it is unreachable.
    pub fn unreachable() -> StoreError {
        StoreError::Unavailable(anyhow::anyhow!(
            "the database is unreachable: only entitlements already loaded can be answered"
        ))
    }
}
