//! The access-log rows of completed downloads, written in the background.
//!
//! A download learns that it is complete when its last byte leaves, long after its
//! handler has answered, so nobody waits for its row. Instead of one insert per
//! download competing for the pool (hundreds of downloads can end in the same
//! second), one task writes whatever has queued up in a single statement, and
//! retries with backoff until PostgreSQL takes it. A row is lost only when the queue
//! overflows or the process stops before PostgreSQL comes back; both are logged at
//! error level with the request ids concerned.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::access_log::{self, CompletedDownload};
use crate::domain::RequestId;

/// Completed downloads that may wait for PostgreSQL: minutes of a heavy load.
const QUEUE_CAPACITY: usize = 65_536;
/// Rows written by one statement at most.
const BATCH: usize = 512;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Takes completed downloads and has their rows written. Cheap to clone.
#[derive(Clone)]
pub struct DownloadLog {
    queue: mpsc::Sender<CompletedDownload>,
    writer: Arc<Mutex<Option<Writer>>>,
}

struct Writer {
    stop: oneshot::Sender<Instant>,
    task: JoinHandle<()>,
}

impl DownloadLog {
    /// Starts the writing task on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let (queue, received) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopping) = oneshot::channel();
        let task = tokio::spawn(write_rows(pool, received, stopping));
        Self {
            queue,
            writer: Arc::new(Mutex::new(Some(Writer { stop, task }))),
        }
    }

    /// Queues the row of a download that has just reached the archive's last byte.
    pub fn completed(&self, request_id: RequestId) {
        let download = CompletedDownload {
            request_id,
            at: Utc::now(),
        };
        if let Err(e) = self.queue.try_send(download) {
            metrics::counter!("insight_access_log_lost_total").increment(1);
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "the queue of unwritten rows is full",
                mpsc::error::TrySendError::Closed(_) => "the service is stopping",
            };
            tracing::error!(request_id = %request_id, reason, "download complete, but its access-log row is lost");
        }
    }

    /// Stops taking rows and writes those queued, retrying for at most `limit`;
    /// what is still unwritten then is logged as lost. Later calls do nothing.
    pub async fn finish(&self, limit: Duration) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Writer { stop, mut task }) = writer else {
            return;
        };
        let _ = stop.send(Instant::now() + limit);
        // The task gives up by itself at the deadline; a statement still running
        // then is bounded by the pool's own timeouts, and this bounds the rest.
        if tokio::time::timeout(limit + LONGEST_RETRY, &mut task)
            .await
            .is_err()
        {
            task.abort();
            tracing::error!("the access log of completed downloads did not finish writing in time");
        }
    }
}

/// The writing task's state.
struct RowWriter {
    pool: PgPool,
    queue: mpsc::Receiver<CompletedDownload>,
    stopping: oneshot::Receiver<Instant>,
    /// Set by a stop: when to give up on rows PostgreSQL does not take.
    deadline: Option<Instant>,
}

/// The writing task: batches of queued rows until the queue is closed and empty.
async fn write_rows(
    pool: PgPool,
    queue: mpsc::Receiver<CompletedDownload>,
    stopping: oneshot::Receiver<Instant>,
) {
    let mut writer = RowWriter {
        pool,
        queue,
        stopping,
        deadline: None,
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = writer.queue.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
            }
            stop = &mut writer.stopping, if writer.deadline.is_none() => {
                writer.stop(stop);
                continue;
            }
        }
        writer.write(&batch).await;
        batch.clear();
    }
}

impl RowWriter {
    /// Takes no more rows, and gives up on failing ones at the deadline (at once
    /// when the handle went away without a deadline).
    fn stop(&mut self, deadline: Result<Instant, oneshot::error::RecvError>) {
        self.deadline = Some(deadline.unwrap_or_else(|_| Instant::now()));
        self.queue.close();
    }

    /// Writes one batch, retrying with backoff until it is written or the deadline
    /// of a stop has passed.
    async fn write(&mut self, batch: &[CompletedDownload]) {
        let mut wait = FIRST_RETRY;
        loop {
            let e = match access_log::log_downloads(&self.pool, batch).await {
                Ok(orphans) => {
                    for request_id in orphans {
                        tracing::warn!(request_id = %request_id, "download complete, but its order has no access-log row");
                    }
                    return;
                }
                Err(e) => e,
            };
            metrics::counter!("insight_access_log_write_failures_total").increment(1);
            if self.deadline.is_some_and(|at| Instant::now() + wait > at) {
                metrics::counter!("insight_access_log_lost_total").increment(batch.len() as u64);
                for download in batch {
                    tracing::error!(request_id = %download.request_id, error = %e, "stopping, and the access-log row of a completed download is lost");
                }
                return;
            }
            tracing::warn!(rows = batch.len(), error = %e, retry_in_ms = wait.as_millis() as u64, "cannot write the access log of completed downloads; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                stop = &mut self.stopping, if self.deadline.is_none() => self.stop(stop),
            }
            wait = (wait * 2).min(LONGEST_RETRY);
        }
    }
}
