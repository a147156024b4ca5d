//! Entitlement tokens: short-lived JWTs signed with an asymmetric key, and the JWKS that lets
//! sites verify them offline.
//!
//! Keys live in the database (generated on first start, rotated on demand) so that every instance
//! signs with the same key and serves the same JWKS, or in PEM files the operator manages. Each
//! instance keeps the key set in memory and reloads it every [`REFRESH_INTERVAL`]; a retired key
//! stays published until every token it can have signed has expired.

pub mod keys;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::Header;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{Settings, SigningAlgorithm};
use crate::domain::{Actor, AuditEntry, MeterState};
use crate::store::{Store, StoreError, StoredSigningKey};
pub use keys::{KeyError, SigningKey, algorithm_name};

/// How often an instance reloads the key set, so a rotation made elsewhere reaches it.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
const REFRESH_DELTA: TimeDelta = TimeDelta::seconds(REFRESH_INTERVAL.as_secs() as i64);

/// Clock differences between tollgate and the sites that verify its tokens.
const CLOCK_LEEWAY: TimeDelta = TimeDelta::seconds(60);

/// What can go wrong with tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A key could not be made or read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An operator's key file could not be read.
    #[error("could not read the signing key file {path}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("could not sign a token")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// Keys come from files the operator manages; tollgate cannot rotate them.
    #[error("signing keys are read from files; rotate them by changing signing_key_files")]
    ManagedByFiles,
}

/// A key as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Its id.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: &'static str,
    /// Whether it signs new tokens.
    pub current: bool,
    /// When it was made (database keys only).
    pub created_at: Option<DateTime<Utc>>,
    /// When a newer key took over.
    pub retired_at: Option<DateTime<Utc>>,
    /// Until when the JWKS lists it; `None` while it is current or file-managed.
    pub published_until: Option<DateTime<Utc>>,
}

/// The keys one instance signs with and publishes.
struct KeySet {
    current: Arc<SigningKey>,
    /// The JOSE header of the current key's tokens, as JSON in base64url, made once.
    encoded_header: String,
    jwks: bytes::Bytes,
    keys: Vec<KeyInfo>,
}

/// A signed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
}

/// Who a token is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A registered reader.
    Reader(&'a str),
    /// An anonymous device.
    Device(&'a str),
}

/// The meter as an article token carries it (instants in Unix seconds, as JWTs count time).
#[derive(Debug, Serialize)]
struct MeterClaim {
    used: u32,
    limit: u32,
    remaining: u32,
    period_start: i64,
    resets_at: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_type: Option<&'static str>,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    scope: &'static str,
    ent: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    art: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meter: Option<MeterClaim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lic: Option<&'a str>,
}

/// What an article token unlocks, and what allowed it.
#[derive(Debug, Clone, Copy)]
pub struct ArticleGrant<'a> {
    /// The article.
    pub article: &'a str,
    /// The meter that counted it, when it did.
    pub meter: Option<&'a MeterState>,
    /// The licence that admitted the reader, when one did.
    pub licence: Option<&'a str>,
    /// The latest the token may expire, when what allowed it may not be used past then.
    pub not_after: Option<DateTime<Utc>>,
}

/// Signs tokens and publishes the keys that verify them. Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    issuer: String,
    audience: String,
    entitlement_ttl: TimeDelta,
    article_ttl: TimeDelta,
    algorithm: SigningAlgorithm,
    from_files: bool,
    keys: RwLock<Arc<KeySet>>,
}

impl Tokens {
    /// Loads the signing keys: from the configured files, or from the database, generating and
    /// storing the first key if there is none.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: &Settings,
    ) -> Result<Self, TokenError> {
        let settings = settings.tokens();
        let from_files = !settings.key_files.is_empty();
        let keys = if from_files {
            file_key_set(settings.key_files)?
        } else {
            db_key_set(
                store.as_ref(),
                clock.now(),
                settings.algorithm,
                publish_window(settings.entitlement_ttl, settings.article_ttl),
            )
            .await?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                issuer: settings.issuer.to_owned(),
                audience: settings.audience.to_owned(),
                entitlement_ttl: settings.entitlement_ttl,
                article_ttl: settings.article_ttl,
                algorithm: settings.algorithm,
                from_files,
                keys: RwLock::new(Arc::new(keys)),
            }),
        })
    }

    fn key_set(&self) -> Arc<KeySet> {
        let guard = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    fn publish_window(&self) -> TimeDelta {
        publish_window(self.inner.entitlement_ttl, self.inner.article_ttl)
    }

    /// Reloads the key set from the database (a rotation elsewhere shows up here).
    pub async fn refresh(&self) -> Result<(), TokenError> {
        if self.inner.from_files {
            return Ok(());
        }
        let keys = db_key_set(
            self.inner.store.as_ref(),
            self.inner.clock.now(),
            self.inner.algorithm,
            self.publish_window(),
        )
        .await?;
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Reloads the key set every [`REFRESH_INTERVAL`] until aborted.
    pub fn spawn_refresh_task(&self) -> JoinHandle<()> {
        let tokens = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(REFRESH_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = tokens.refresh().await {
                    tracing::warn!(error = %error, "reloading the signing keys failed");
                }
            }
        })
    }

    /// Makes a new key the signing key from now on; the old one stays published until its
    /// tokens have expired. The new key's id and the retired one's.
    pub async fn rotate(&self, actor: &Actor) -> Result<(String, Option<String>), TokenError> {
        if self.inner.from_files {
            return Err(TokenError::ManagedByFiles);
        }
        let (kid, retired) = rotate(
            self.inner.store.as_ref(),
            self.inner.clock.now(),
            self.inner.algorithm,
            actor,
        )
        .await?;
        self.refresh().await?;
        Ok((kid, retired))
    }

    /// The JWKS document, ready to serve.
    pub fn jwks(&self) -> bytes::Bytes {
        self.key_set().jwks.clone()
    }

    /// Every key this instance signs with or publishes.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.key_set().keys.clone()
    }

    /// A token saying what `subject` is entitled to now. It never outlives the entitlements:
    /// `lapses_at` (when the first of them lapses) caps its expiry.
    pub fn entitlements_token(
        &self,
        subject: Subject<'_>,
        entitlements: &[&str],
        lapses_at: Option<DateTime<Utc>>,
    ) -> Result<Issued, TokenError> {
        self.sign(subject, entitlements, lapses_at, "entitlements", None)
    }

    /// A token that unlocks one article for `subject`, with the meter or licence that allowed
    /// it.
    pub fn article_token(
        &self,
        subject: Subject<'_>,
        entitlements: &[&str],
        grant: ArticleGrant<'_>,
    ) -> Result<Issued, TokenError> {
        self.sign(
            subject,
            entitlements,
            grant.not_after,
            "article",
            Some(grant),
        )
    }

    fn sign(
        &self,
        subject: Subject<'_>,
        entitlements: &[&str],
        lapses_at: Option<DateTime<Utc>>,
        scope: &'static str,
        grant: Option<ArticleGrant<'_>>,
    ) -> Result<Issued, TokenError> {
        let now = self.inner.clock.now();
        let ttl = if grant.is_some() {
            self.inner.article_ttl
        } else {
            self.inner.entitlement_ttl
        };
        let mut expires_at = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Some(lapses_at) = lapses_at {
            expires_at = expires_at.min(lapses_at);
        }
        // JWTs count whole seconds: never let a token end before it begins.
        let iat = now.timestamp();
        let exp = expires_at.timestamp().max(iat + 1);
        let (sub, sub_type) = match subject {
            Subject::Reader(id) => (id, None),
            Subject::Device(id) => (id, Some("device")),
        };
        let claims = Claims {
            iss: &self.inner.issuer,
            sub,
            sub_type,
            aud: &self.inner.audience,
            iat,
            nbf: iat,
            exp,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope,
            ent: entitlements,
            art: grant.map(|g| g.article),
            lic: grant.and_then(|g| g.licence),
            meter: grant.and_then(|g| g.meter).map(|m| MeterClaim {
                used: m.used,
                limit: m.limit,
                remaining: m.remaining,
                period_start: m.period_start.timestamp(),
                resets_at: m.resets_at.map(|t| t.timestamp()),
            }),
        };
        let keys = self.key_set();
        let token = keys.current.sign_jws(&keys.encoded_header, &claims)?;
        Ok(Issued {
            token,
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or(expires_at),
        })
    }
}

/// How long a retired key stays published: the longest token lifetime, plus the time other
/// instances may go on signing with it before they reload, plus clock leeway.
fn publish_window(entitlement_ttl: TimeDelta, article_ttl: TimeDelta) -> TimeDelta {
    entitlement_ttl.max(article_ttl) + REFRESH_DELTA + CLOCK_LEEWAY
}

/// Makes a new signing key current in the store, on behalf of `actor`; the new key's id and the
/// retired one's.
pub async fn rotate(
    store: &dyn Store,
    now: DateTime<Utc>,
    algorithm: SigningAlgorithm,
    actor: &Actor,
) -> Result<(String, Option<String>), TokenError> {
    let key = SigningKey::generate(algorithm)?;
    let stored = key.to_stored(now)?;
    let audit = AuditEntry::new(
        actor,
        "signing_key.rotate",
        format!("signing_key:{}", key.kid),
        serde_json::json!({ "algorithm": stored.algorithm }),
        now,
    );
    let retired = store.rotate_signing_key(&stored, now, &audit).await?;
    tracing::info!(kid = %key.kid, retired = ?retired, "signing key rotated");
    Ok((key.kid, retired))
}

/// The JOSE header of `key`'s tokens (`alg`, `typ`, `kid`) as JSON in base64url.
fn encoded_header(key: &SigningKey) -> Result<String, TokenError> {
    use base64::Engine;
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    let json = serde_json::to_vec(&header).map_err(jsonwebtoken::errors::Error::from)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn jwks(jwks: Vec<Jwk>) -> bytes::Bytes {
    serde_json::to_vec(&JwkSet { keys: jwks })
        .map(bytes::Bytes::from)
        .unwrap_or_default()
}

fn file_key_set(files: &[PathBuf]) -> Result<KeySet, TokenError> {
    let mut keys = Vec::new();
    for path in files {
        let pem = std::fs::read_to_string(path).map_err(|source| TokenError::File {
            path: path.display().to_string(),
            source,
        })?;
        keys.push(SigningKey::from_pem(&pem)?);
    }
    let mut keys = keys.into_iter();
    let current = keys.next().ok_or(TokenError::Key(KeyError::Unsupported))?;
    let others: Vec<SigningKey> = keys.collect();
    let info = |key: &SigningKey, current: bool| KeyInfo {
        kid: key.kid.clone(),
        algorithm: algorithm_name(key.algorithm),
        current,
        created_at: None,
        retired_at: None,
        published_until: None,
    };
    let mut infos = vec![info(&current, true)];
    infos.extend(others.iter().map(|k| info(k, false)));
    let mut published = vec![current.jwk.clone()];
    published.extend(others.iter().map(|k| k.jwk.clone()));
    Ok(KeySet {
        encoded_header: encoded_header(&current)?,
        current: Arc::new(current),
        jwks: jwks(published),
        keys: infos,
    })
}

async fn db_key_set(
    store: &dyn Store,
    now: DateTime<Utc>,
    algorithm: SigningAlgorithm,
    window: TimeDelta,
) -> Result<KeySet, TokenError> {
    let mut stored = store.signing_keys().await?;
    if !stored.iter().any(|k| k.retired_at.is_none()) {
        let key = SigningKey::generate(algorithm)?;
        let current = store.ensure_signing_key(&key.to_stored(now)?).await?;
        tracing::info!(kid = %current.kid, "signing key in use");
        stored = store.signing_keys().await?;
    }
    let mut current = None;
    let mut published = Vec::new();
    let mut infos = Vec::new();
    for key in stored {
        let published_until = key.retired_at.map(|t| t + window);
        if published_until.is_some_and(|until| until <= now) {
            continue;
        }
        let jwk: Jwk = serde_json::from_str(&key.public_jwk)
            .map_err(|e| StoreError::Other(anyhow::anyhow!("stored JWK of {}: {e}", key.kid)))?;
        infos.push(info_of(&key, published_until));
        published.push(jwk);
        if key.retired_at.is_none() && current.is_none() {
            current = Some(SigningKey::from_stored(&key)?);
        }
    }
    let current = current.ok_or(TokenError::Key(KeyError::Unsupported))?;
    Ok(KeySet {
        encoded_header: encoded_header(&current)?,
        current: Arc::new(current),
        jwks: jwks(published),
        keys: infos,
    })
}

fn info_of(key: &StoredSigningKey, published_until: Option<DateTime<Utc>>) -> KeyInfo {
    KeyInfo {
        kid: key.kid.clone(),
        algorithm: if key.algorithm == "ES256" {
            "ES256"
        } else {
            "EdDSA"
        },
        current: key.retired_at.is_none(),
        created_at: Some(key.created_at),
        retired_at: key.retired_at,
        published_until,
    }
}
