//! A worker's hold on one request while it exports it. Every write goes through a
//! script fenced by the lease generation, so a worker whose lease was taken over,
//! or whose request was deleted, can no longer change anything.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fred::prelude::*;
use fred::types::Value;

use super::{EntryRecord, RequestRecord, Store, StoreError, scripts};
use crate::domain::RequestId;

/// The outcome of starting an attempt at a job.
pub enum Attempt {
    /// The request is gone, or no longer pending: nothing to do.
    Gone,
    /// Every attempt was used; the request is now failed.
    Exhausted { attempts: u32 },
    /// The attempt is this worker's.
    Started { lease: Box<Lease>, attempt: u32 },
}

/// The right to write into one request, valid while its generation is current.
pub struct Lease {
    store: Store,
    request: RequestRecord,
    generation: String,
}

impl Store {
    /// Starts attempt number `attempts + 1` at a request, unless it is used up.
    pub async fn begin_attempt(
        &self,
        id: RequestId,
        max_attempts: u32,
    ) -> Result<Attempt, StoreError> {
        let key = self.keys.request(id);
        let args: Vec<Value> = vec![max_attempts.into()];
        let answer: Vec<Value> = self
            .client
            .eval(scripts::BEGIN_ATTEMPT, vec![key.clone()], args)
            .await?;
        let word = answer.first().and_then(Value::as_string);
        let number = |i: usize| answer.get(i).and_then(Value::as_u64);

        match word.as_deref() {
            Some("gone") => Ok(Attempt::Gone),
            Some("exhausted") => Ok(Attempt::Exhausted {
                attempts: number(1).and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            }),
            Some("started") => {
                let generation = answer
                    .get(1)
                    .and_then(Value::as_string)
                    .ok_or_else(|| StoreError::corrupt(&key, "no generation"))?;
                let attempt = number(2).and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
                let request = self.request(id).await?.ok_or(StoreError::Fenced)?;
                let lease = Box::new(Lease {
                    store: self.clone(),
                    request,
                    generation,
                });
                Ok(Attempt::Started { lease, attempt })
            }
            _ => Err(StoreError::corrupt(&key, "unexpected answer to an attempt")),
        }
    }
}

impl Lease {
    pub fn request(&self) -> &RequestRecord {
        &self.request
    }

    fn expires_ms(&self) -> i64 {
        self.request.expires_at.timestamp_millis()
    }

    async fn fenced(
        &self,
        script: &str,
        second_key: Option<String>,
        args: Vec<Value>,
    ) -> Result<i64, StoreError> {
        let mut keys = vec![self.store.keys.request(self.request.id)];
        keys.extend(second_key);
        let mut all_args: Vec<Value> = vec![self.generation.clone().into()];
        all_args.extend(args);
        let answer: i64 = self.store.client.eval(script, keys, all_args).await?;
        if answer == 0 {
            return Err(StoreError::Fenced);
        }
        Ok(answer)
    }

    /// Empties a device's chunk key, so that a retried device starts clean.
    pub async fn reset_device(&self, device: usize) -> Result<(), StoreError> {
        let key = self.store.keys.device(self.request.id, device);
        self.fenced(scripts::RESET_DEVICE, Some(key), vec![])
            .await?;
        Ok(())
    }

    /// Stores one chunk of a device's deflated document.
    pub async fn store_chunk(
        &self,
        device: usize,
        index: u64,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let key = self.store.keys.device(self.request.id, device);
        let args: Vec<Value> = vec![
            index.to_string().into(),
            bytes.into(),
            self.expires_ms().into(),
        ];
        self.fenced(scripts::STORE_CHUNK, Some(key), args).await?;
        Ok(())
    }

    /// Makes a device whose chunks are all stored visible in the manifest.
    pub async fn record_entry(&self, device: usize, entry: &EntryRecord) -> Result<(), StoreError> {
        let key = self.store.keys.entries(self.request.id);
        let json = serde_json::to_string(entry).map_err(|e| StoreError::corrupt(&key, e))?;
        let args: Vec<Value> = vec![
            device.to_string().into(),
            json.into(),
            self.expires_ms().into(),
        ];
        self.fenced(scripts::RECORD_ENTRY, Some(key), args).await?;
        Ok(())
    }

    /// Marks the request ready. Fails when a device entry is missing.
    pub async fn mark_ready(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let args: Vec<Value> = vec![at.timestamp_millis().into()];
        let answer = self.fenced(scripts::MARK_READY, None, args).await?;
        if answer < 0 {
            let key = self.store.keys.request(self.request.id);
            return Err(StoreError::corrupt(
                &key,
                "not every device entry is recorded",
            ));
        }
        Ok(())
    }

    /// Keeps why this attempt failed, for operators and the final failure.
    pub async fn record_error(&self, reason: &str) -> Result<(), StoreError> {
        self.fenced(scripts::RECORD_ERROR, None, vec![reason.into()])
            .await?;
        Ok(())
    }

    /// Fails the request for good.
    pub async fn mark_failed(&self, reason: &str) -> Result<(), StoreError> {
        self.fenced(scripts::MARK_FAILED, None, vec![reason.into()])
            .await?;
        Ok(())
    }

    /// Gives the attempt back uncounted and ends this lease.
    pub async fn hand_back(&self) -> Result<(), StoreError> {
        self.fenced(scripts::HAND_BACK, None, vec![]).await?;
        Ok(())
    }

    /// True while this lease's generation is still the request's.
    pub async fn is_current(&self) -> Result<bool, StoreError> {
        let key = self.store.keys.request(self.request.id);
        let generation: Option<String> = self.store.client.hget(key, "gen").await?;
        Ok(generation.as_deref() == Some(self.generation.as_str()))
    }
}
