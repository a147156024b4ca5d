//! The meter's writer: unlock requests are queued to one task that commits them in batches, one
//! transaction (and one disk flush) for every request that arrived while the previous batch was
//! committing. Each request is answered only after its batch is durable.
//!
//! SQLite has one writer at a time, so batching is what lets it count thousands of unlocks a
//! second. On PostgreSQL a batch is one statement (the `tollgate_unlock` function), so a batch
//! costs one round trip to the database, less than one read per request: there every metered
//! request goes straight to the writer.
//!
//! One task per instance on either backend. A batch's cost is mostly fixed (a round trip, a
//! statement, a commit), so the fewer batches the cheaper each request: on PostgreSQL one task
//! costs a metered request less CPU, in tollgate and in the database, than four tasks did, and
//! serves more requests a second (docs/performance.md). Under more load a batch
//! grows, up to [`MAX_BATCH`], rather than more batches running at once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Backend, Store, StoreError, Unlock, UnlockRequest};

/// Most requests one transaction commits.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before new ones are refused with 503.
const QUEUE: usize = 4096;

struct Job {
    request: UnlockRequest,
    reply: oneshot::Sender<Result<Unlock, StoreError>>,
}

/// Queues unlock requests to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct MeterWriter {
    jobs: mpsc::Sender<Job>,
    read_first: bool,
}

impl MeterWriter {
    /// Starts the writer task; it stops when the last clone of the writer is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let read_first = store.backend() == Backend::Sqlite;
        tokio::spawn(run(store, receiver));
        Self { jobs, read_first }
    }

    /// Whether a request should read the meter before queueing for the writer, so that a
    /// re-read or a full meter is answered without waiting for it. Worth it where the writer is
    /// the bottleneck and a read is cheap (SQLite: one writer, reads in-process); not where a
    /// read costs a round trip and a batch costs one for all its requests (PostgreSQL).
    pub fn read_first(&self) -> bool {
        self.read_first
    }

    /// Unlocks the request's article unless its meter is full, once the outcome is durable.
    pub async fn unlock(&self, request: UnlockRequest) -> Result<Unlock, StoreError> {
        let (reply, answer) = oneshot::channel();
        let busy = |what: &str| StoreError::Unavailable(anyhow::anyhow!("the meter writer {what}"));
        self.jobs
            .try_send(Job { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => busy("queue is full"),
                mpsc::error::TrySendError::Closed(_) => busy("has stopped"),
            })?;
        answer.await.map_err(|_| busy("stopped before answering"))?
    }
}

async fn run(store: Arc<dyn Store>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A client that went away no longer needs its unlock: skip it rather than count it.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let requests: Vec<UnlockRequest> = batch.iter().map(|job| job.request.clone()).collect();
        match store.unlock(&requests).await {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                let unavailable = matches!(error, StoreError::Unavailable(_));
                tracing::error!(error = %error, requests = batch.len(), "a batch of unlocks failed; nothing of it was counted");
                for job in batch.drain(..) {
                    let cause = anyhow::anyhow!("the unlock batch failed");
                    let _ = job.reply.send(Err(if unavailable {
                        StoreError::Unavailable(cause)
                    } else {
                        StoreError::Other(cause)
                    }));
                }
            }
        }
    }
}
