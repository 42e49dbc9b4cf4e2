//! The job queue: a sorted set of request ids scored by the time (ms, Redis's clock)
//! at which each may next be taken. A taken job's score is moved to the end of its
//! lease, so a job whose worker dies becomes due again by itself: delivery is at
//! least once, and the request's lease generation keeps a late worker from writing.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Value;

use super::{Store, StoreError, scripts};
use crate::domain::RequestId;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues a request's job; the queue key lives at least until `expires_at_ms`.
    pub async fn enqueue(&self, id: RequestId, expires_at_ms: i64) -> Result<(), StoreError> {
        let args: Vec<Value> = vec![id.to_string().into(), expires_at_ms.into()];
        let _: i64 = self
            .client
            .eval(scripts::ENQUEUE, vec![self.keys.queue()], args)
            .await?;
        Ok(())
    }

    /// Takes the job due first, if any, for `lease`.
    pub async fn claim_job(&self, lease: Duration) -> Result<Option<RequestId>, StoreError> {
        let key = self.keys.queue();
        let args: Vec<Value> = vec![millis(lease).into()];
        let taken: Option<String> = self
            .client
            .eval(scripts::CLAIM, vec![key.clone()], args)
            .await?;
        taken
            .map(|raw| raw.parse().map_err(|e| StoreError::corrupt(&key, e)))
            .transpose()
    }

    /// Moves a queued job's next turn to `delay` from now: renews a lease, schedules a
    /// retry, or (with zero) hands a job back. False when the job is not queued.
    pub async fn reschedule_job(&self, id: RequestId, delay: Duration) -> Result<bool, StoreError> {
        let args: Vec<Value> = vec![id.to_string().into(), millis(delay).into()];
        let moved: i64 = self
            .client
            .eval(scripts::RESCHEDULE, vec![self.keys.queue()], args)
            .await?;
        Ok(moved == 1)
    }

    /// Takes a job off the queue for good.
    pub async fn remove_job(&self, id: RequestId) -> Result<(), StoreError> {
        let _: i64 = self.client.zrem(self.keys.queue(), id.to_string()).await?;
        Ok(())
    }

    /// Jobs queued or running.
    pub async fn queue_depth(&self) -> Result<u64, StoreError> {
        Ok(self.client.zcard(self.keys.queue()).await?)
    }
}
