//! Notices that the database is unreachable, so that the access path stops waiting for it.
//!
//! A heartbeat asks the database a trivial question every `HEARTBEAT` over a connection of its
//! own, outside the pool, and the breaker opens when two in a row fail or go unanswered for
//! `PROBE_TIMEOUT`, or at once when an entitlement load finds the database unreachable. While
//! it is open the access path does not ask the database: readers whose last load is recent
//! enough are answered from it (marked stale); anyone else (a reader with no recent load, a key
//! not checked lately) is asked for at most `WHILE_OPEN` and then gets a 503, instead of each
//! request waiting out the pool's acquire timeout; requests already waiting for the database
//! when it opens stop waiting. The first heartbeat or request that is answered closes it.
//!
//! Only reads open it: a database that reads but cannot write (a locked SQLite file) still
//! answers every entitled reader afresh, and refuses meter writes with a 503 as it always has.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{Store, StoreError};

/// How often the heartbeat asks the database.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// Longest the heartbeat waits for an answer before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Longest a read asked while the breaker is open may take: the database may be back before
/// the heartbeat has seen it, but a caller with nothing to fall back on is not kept waiting for
/// the pool's acquire timeout.
const WHILE_OPEN: Duration = Duration::from_millis(250);

/// Heartbeats in a row that must fail to open the breaker: one slow answer on a busy machine is
/// not an outage.
const FAILURES_TO_OPEN: u32 = 2;

/// Whether the database is known to be unreachable now, and how many answers came from last
/// loads. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Breaker {
    open: Arc<watch::Sender<bool>>,
    unreachable: IntGauge,
    stale_answers: IntCounterVec,
}

impl Breaker {
    /// A closed breaker, its metrics registered in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let unreachable = IntGauge::new(
            "tollgate_database_unreachable",
            "1 while the access path finds the database unreachable and answers from last loads",
        )?;
        let stale_answers = IntCounterVec::new(
            Opts::new(
                "tollgate_stale_answers_total",
                "Answers given from a reader's last load while the database was unreachable, \
                 by route (access, tokens)",
            ),
            &["route"],
        )?;
        registry.register(Box::new(unreachable.clone()))?;
        registry.register(Box::new(stale_answers.clone()))?;
        Ok(Self {
            open: Arc::new(watch::Sender::new(false)),
            unreachable,
            stale_answers,
        })
    }

    /// Counts one answer given from a last load, on `route`.
    pub fn count_stale(&self, route: &str) {
        self.stale_answers.with_label_values(&[route]).inc();
    }

    /// Whether the database is known to be unreachable.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Resolves when the breaker opens (at once when it is open).
    pub async fn opened(&self) {
        let mut open = self.open.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while we hold it.
        let _ = open.wait_for(|open| *open).await;
    }

    /// What `read` comes to, unless the breaker is open or opens first (`None`). A read that
    /// finds the database unreachable opens it.
    pub async fn unless_open<T>(
        &self,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<Result<T, StoreError>> {
        if self.is_open() {
            return None;
        }
        let outcome = tokio::select! {
            biased;
            outcome = read => outcome,
            () = self.opened() => return None,
        };
        if matches!(outcome, Err(StoreError::Unavailable(_))) {
            self.trip();
        }
        Some(outcome)
    }

    /// Opens the breaker: the database was found unreachable.
    pub fn trip(&self) {
        if self.set(true) {
            tracing::warn!("the database is unreachable: the access path answers from last loads");
        }
    }

    /// `read` asked while the breaker is open, for a caller with nothing else to answer from:
    /// within `WHILE_OPEN`, or `Unavailable`. An answer closes the breaker.
    pub async fn read_while_open<T>(
        &self,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(WHILE_OPEN, read).await {
            Ok(Ok(answer)) => {
                self.answered();
                Ok(answer)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "the database is unreachable"
            ))),
        }
    }

    /// Closes the breaker: the database just answered a request.
    pub fn answered(&self) {
        if self.set(false) {
            tracing::info!("the database answers again");
        }
    }

    /// Sets the state; whether it changed.
    fn set(&self, open: bool) -> bool {
        let changed = self
            .open
            .send_if_modified(|now| std::mem::replace(now, open) != open);
        if changed {
            self.unreachable.set(i64::from(open));
        }
        changed
    }

    /// Starts the heartbeat that opens and closes the breaker; it runs until aborted.
    pub fn spawn_heartbeat(&self, store: Arc<dyn Store>) -> JoinHandle<()> {
        let breaker = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            let mut ticks = tokio::time::interval(HEARTBEAT);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match tokio::time::timeout(PROBE_TIMEOUT, store.probe()).await {
                    Ok(Ok(())) => {
                        failures = 0;
                        breaker.answered();
                    }
                    _ => {
                        failures += 1;
                        if failures >= FAILURES_TO_OPEN {
                            breaker.trip();
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_waiting_when_it_opens_are_released_and_it_closes_again() {
        let breaker = Breaker::register(&Registry::new()).unwrap();
        assert!(!breaker.is_open());
        let waiting = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.opened().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        breaker.trip();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a waiter was not released when the breaker opened")
            .unwrap();
        assert!(breaker.is_open());
        assert_eq!(breaker.unreachable.get(), 1);
        assert!(breaker.set(false));
        assert!(!breaker.is_open());
        assert_eq!(breaker.unreachable.get(), 0);
    }
}
