//! The worker loop: take a job, hold its lease while exporting, and settle it as
//! ready, retried later, failed for good, or handed back at shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::job::{ExportError, ExportTotals, export_request};
use crate::config::WorkerSettings;
use crate::domain::RequestId;
use crate::store::{Attempt, Lease, Store, StoreError};

/// Longest wait between attempts of one job, however many attempts failed.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(600);
/// Longest pause after Redis failed to answer a worker.
const MAX_REDIS_BACKOFF: Duration = Duration::from_secs(5);

/// Runs export jobs until shut down.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    pool: PgPool,
    settings: WorkerSettings,
}

/// How an attempt ended.
enum Outcome {
    Exported(Result<ExportTotals, ExportError>),
    LeaseLost,
    Shutdown,
}

impl Worker {
    pub fn new(store: Store, pool: PgPool, settings: WorkerSettings) -> Self {
        crate::telemetry::metrics();
        Self {
            inner: Arc::new(Inner {
                store,
                pool,
                settings,
            }),
        }
    }

    /// Runs `WORKER_CONCURRENCY` job loops. Returns once `shutdown` is cancelled and
    /// every running job is finished or handed back.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut slots = JoinSet::new();
        for slot in 0..self.inner.settings.worker_concurrency.max(1) {
            let worker = self.clone();
            let shutdown = shutdown.clone();
            slots.spawn(async move { worker.job_loop(slot, shutdown).await });
        }
        while slots.join_next().await.is_some() {}
    }

    /// Takes jobs and runs them to the end; returns whether one was found. For tests
    /// and tools that want to drive the worker step by step.
    pub async fn run_one(&self, shutdown: &CancellationToken) -> Result<bool, StoreError> {
        let Some(id) = self
            .inner
            .store
            .claim_job(self.inner.settings.worker_lease)
            .await?
        else {
            return Ok(false);
        };
        self.run_job(id, shutdown).await;
        Ok(true)
    }

    async fn job_loop(&self, slot: usize, shutdown: CancellationToken) {
        let poll = self.inner.settings.worker_poll_interval;
        let mut redis_backoff = poll;
        while !shutdown.is_cancelled() {
            let pause = match self.run_one(&shutdown).await {
                Ok(true) => {
                    redis_backoff = poll;
                    continue;
                }
                Ok(false) => poll,
                Err(e) => {
                    warn!(worker.slot = slot, error = %e, "could not take a job from Redis; trying again");
                    redis_backoff = (redis_backoff * 2).min(MAX_REDIS_BACKOFF);
                    redis_backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn run_job(&self, id: RequestId, shutdown: &CancellationToken) {
        let span = info_span!("job", request_id = %id);
        self.settle(id, shutdown).instrument(span).await;
    }

    async fn settle(&self, id: RequestId, shutdown: &CancellationToken) {
        let store = &self.inner.store;
        let max_attempts = self.inner.settings.worker_max_attempts;
        let attempt = match store.begin_attempt(id, max_attempts).await {
            Ok(attempt) => attempt,
            Err(e) => {
                // The job stays queued; it comes back when the lease runs out.
                warn!(error = %e, "could not start an attempt; the job will be taken up again");
                return;
            }
        };

        match attempt {
            Attempt::Gone => self.drop_job(id).await,
            Attempt::Exhausted { attempts } => {
                error!(job.attempts = attempts, "export failed for good");
                metrics::counter!("insight_jobs_total", "outcome" => "failed").increment(1);
                self.discard(id).await;
            }
            Attempt::Started { lease, attempt } => self.attempt(*lease, attempt, shutdown).await,
        }
    }

    async fn attempt(&self, lease: Lease, attempt: u32, shutdown: &CancellationToken) {
        let started = Instant::now();
        let id = lease.request().id;
        info!(
            job.attempt = attempt,
            job.devices = lease.request().devices.len(),
            "export started"
        );

        let lost = CancellationToken::new();
        let renewal = tokio::spawn(self.clone().renew(id, lost.clone()).in_current_span());
        let outcome = tokio::select! {
            result = self.export(&lease) => Outcome::Exported(result),
            _ = lost.cancelled() => Outcome::LeaseLost,
            _ = shutdown.cancelled() => Outcome::Shutdown,
        };
        renewal.abort();

        let duration = started.elapsed();
        match outcome {
            Outcome::Exported(Ok(totals)) => self.finish(&lease, totals, duration).await,
            Outcome::Exported(Err(e)) if e.is_fenced() => {
                info!("the lease was taken over or the request deleted; leaving the job")
            }
            Outcome::LeaseLost => {
                info!("the lease was taken over or the request deleted; leaving the job")
            }
            Outcome::Exported(Err(e)) => self.failed_attempt(&lease, attempt, &e).await,
            Outcome::Shutdown => self.hand_back(&lease).await,
        }
    }

    async fn export(&self, lease: &Lease) -> Result<ExportTotals, ExportError> {
        let id = lease.request().id;
        let recorded: Vec<usize> = self
            .inner
            .store
            .entries(id)
            .await?
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        let mut conn = self.inner.pool.acquire().await?;
        export_request(
            lease,
            &mut conn,
            &recorded,
            self.inner.settings.worker_chunk_size,
        )
        .await
    }

    /// Keeps the lease alive while the export runs; cancels `lost` when the lease is
    /// no longer this worker's.
    async fn renew(self, id: RequestId, lost: CancellationToken) {
        let lease = self.inner.settings.worker_lease;
        let mut ticks = tokio::time::interval(lease / 3);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match self.inner.store.reschedule_job(id, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.cancel();
                    return;
                }
                Err(e) => warn!(error = %e, "could not renew the lease; trying again"),
            }
        }
    }

    async fn finish(&self, lease: &Lease, totals: ExportTotals, duration: Duration) {
        let id = lease.request().id;
        if let Err(e) = lease.mark_ready(Utc::now()).await {
            warn!(error = %e, "could not mark the export ready; it will be taken up again");
            return;
        }
        self.drop_job(id).await;
        metrics::counter!("insight_jobs_total", "outcome" => "ready").increment(1);
        metrics::histogram!("insight_job_duration_seconds").record(duration.as_secs_f64());
        metrics::counter!("insight_export_bytes_total").increment(totals.compressed_bytes);
        info!(
            export.devices = totals.devices,
            export.events = totals.events,
            export.bytes = totals.compressed_bytes,
            export.uncompressed_bytes = totals.uncompressed_bytes,
            duration_ms = duration.as_millis() as u64,
            "export ready"
        );
    }

    async fn failed_attempt(&self, lease: &Lease, attempt: u32, cause: &ExportError) {
        let id = lease.request().id;
        let reason = cause.to_string();
        warn!(job.attempt = attempt, error = %reason, "export attempt failed");
        metrics::counter!("insight_job_attempts_failed_total").increment(1);

        if attempt >= self.inner.settings.worker_max_attempts {
            let reason = format!("gave up after {attempt} attempts: {reason}");
            if lease.mark_failed(&reason).await.is_ok() {
                error!(error = %reason, "export failed for good");
                metrics::counter!("insight_jobs_total", "outcome" => "failed").increment(1);
                self.discard(id).await;
            }
            return;
        }

        if let Err(e) = lease.record_error(&reason).await {
            warn!(error = %e, "could not record the failure");
        }
        let backoff = self.inner.settings.worker_retry_backoff * 2u32.saturating_pow(attempt - 1);
        if let Err(e) = self
            .inner
            .store
            .reschedule_job(id, backoff.min(MAX_RETRY_BACKOFF))
            .await
        {
            warn!(error = %e, "could not schedule the retry; the lease will run out instead");
        }
    }

    async fn hand_back(&self, lease: &Lease) {
        let id = lease.request().id;
        let handed = lease.hand_back().await;
        let rescheduled = self.inner.store.reschedule_job(id, Duration::ZERO).await;
        match (handed, rescheduled) {
            (Ok(()), Ok(_)) => info!("shutting down: the job is handed back"),
            _ => warn!(
                "shutting down: could not hand the job back; it returns when its lease runs out"
            ),
        }
    }

    /// Frees a failed request's chunks and takes its job off the queue.
    async fn discard(&self, id: RequestId) {
        let devices = match self.inner.store.request(id).await {
            Ok(Some(request)) => request.devices.len(),
            _ => 0,
        };
        if let Err(e) = self.inner.store.discard_results(id, devices).await {
            warn!(error = %e, "could not free the chunks of a failed export; they expire on their own");
        }
        self.drop_job(id).await;
    }

    async fn drop_job(&self, id: RequestId) {
        if let Err(e) = self.inner.store.remove_job(id).await {
            warn!(error = %e, "could not remove a settled job from the queue; it will be dropped when next taken");
        }
    }
}
