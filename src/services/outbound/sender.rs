//! Sending one delivery: an HTTPS POST that can only reach the addresses the endpoint rules
//! allow. Names are resolved by [`CheckedResolver`], which hands the HTTP client only the
//! addresses it checked, so the connection goes to an address that was checked (no window for
//! DNS rebinding); IP literals are checked before the request. No proxy, no redirects, a time
//! limit on the whole attempt, and at most 64 KiB of the answer read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Settings;
use crate::domain::outbound::signature_header;
use crate::domain::{EndpointSecret, OutboundEventId, TargetRules};

/// How much of an answer is read.
const MAX_ANSWER: usize = 64 * 1024;

/// Resolves names to the addresses the rules allow; a name with none of those fails.
struct CheckedResolver {
    rules: TargetRules,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = resolve_checked(&rules, &host).await?;
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Every address `host` resolves to, when the rules allow every one of them.
pub async fn resolve_checked(
    rules: &TargetRules,
    host: &str,
) -> Result<Vec<SocketAddr>, crate::domain::InvalidWebhookUrl> {
    let unresolved = || crate::domain::InvalidWebhookUrl::Unresolved(host.to_owned());
    let found: Vec<SocketAddr> =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, 0)))
            .await
            .map_err(|_| unresolved())?
            .map_err(|_| unresolved())?
            .collect();
    if found.is_empty() {
        return Err(unresolved());
    }
    // One address off the rules refuses the name: a name that mixes public and private
    // addresses is how rebinding attacks are set up.
    for addr in &found {
        rules.check_address(addr.ip())?;
    }
    Ok(found)
}

/// The rules endpoint URLs follow, from the settings.
pub fn target_rules(settings: &Settings) -> TargetRules {
    TargetRules {
        allowed_hosts: settings
            .webhook_allowed_hosts
            .iter()
            .map(|host| host.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        allow_insecure: settings.allow_insecure_webhook_urls,
        allow_private: settings.allow_private_webhook_targets,
    }
}

/// What an attempt came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer with this status.
    Status(u16),
    /// No answer: why.
    Error(String),
}

/// Sends deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    rules: TargetRules,
}

impl Sender {
    /// A sender under `rules`, each attempt limited to `timeout`.
    pub fn new(rules: TargetRules, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tollgate-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver {
                rules: rules.clone(),
            }))
            .build()?;
        Ok(Self { client, rules })
    }

    /// POSTs `body` to `url`, signed with `secrets` at `timestamp` (Unix seconds).
    pub async fn send(
        &self,
        url: &str,
        id: &OutboundEventId,
        timestamp: i64,
        body: &str,
        secrets: &[EndpointSecret],
    ) -> Answer {
        // The rules may have changed since the endpoint was made: checked again each time.
        if let Err(refused) = self.rules.check(url) {
            return Answer::Error(format!("refused: {refused}"));
        }
        let secrets: Vec<&EndpointSecret> = secrets.iter().collect();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(&secrets, id, timestamp, body),
            )
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return Answer::Error(describe(&err)),
        };
        let status = response.status().as_u16();
        // The answer is read (so the connection can be reused) up to a bound, and ignored.
        let mut read = 0;
        while read < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Answer::Status(status)
    }
}

/// A transport error, with its causes, for operators.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
