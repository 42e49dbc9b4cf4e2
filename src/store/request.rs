//! Export requests as Redis holds them: creation, lookup, the owner index that makes
//! ordering idempotent, manifest entries and deletion.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError, scripts};
use crate::domain::{Channel, RequestId, TimeWindow};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ready,
    Failed,
}

impl Status {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Status::Pending),
            "ready" => Some(Status::Ready),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// What an order stores about a new request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: RequestId,
    pub channel: Channel,
    pub owner_hash: String,
    pub devices: Vec<Uuid>,
    pub window: TimeWindow,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A request as read back from Redis.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub id: RequestId,
    pub channel: Channel,
    pub owner_hash: String,
    pub status: Status,
    pub devices: Vec<Uuid>,
    pub completed: usize,
    pub window: TimeWindow,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    /// Why the last attempt failed, for operators.
    pub error: Option<String>,
}

/// One finished device document in a request's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub uuid: Uuid,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Every chunk but the last holds exactly this many bytes.
    pub chunk_size: u64,
    pub chunks: u64,
    pub gps_events: u64,
    pub bluetooth_contacts: u64,
}

impl Store {
    /// Stores a new pending request; its key expires at `expires_at`.
    pub async fn create_request(&self, request: &NewRequest) -> Result<(), StoreError> {
        let devices = serde_json::to_string(&request.devices)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let mut args: Vec<Value> = Vec::new();
        let mut field = |name: &str, value: String| {
            args.push(name.into());
            args.push(value.into());
        };
        field("channel", request.channel.as_str().to_owned());
        field("owner", request.owner_hash.clone());
        field("status", "pending".to_owned());
        field("total", request.devices.len().to_string());
        field("completed", "0".to_owned());
        field("devices", devices);
        field(
            "created_at",
            request.created_at.timestamp_millis().to_string(),
        );
        field(
            "expires_at",
            request.expires_at.timestamp_millis().to_string(),
        );
        field("attempts", "0".to_owned());
        field("gen", "0".to_owned());
        if let Some(from) = request.window.from {
            field("time_from", from.timestamp_micros().to_string());
        }
        if let Some(to) = request.window.to {
            field("time_to", to.timestamp_micros().to_string());
        }
        args.push(request.expires_at.timestamp_millis().into());

        let key = self.keys.request(request.id);
        let _: i64 = self
            .client
            .eval(scripts::CREATE_REQUEST, vec![key], args)
            .await?;
        Ok(())
    }

    /// The request, or `None` when it does not exist (never did, expired or deleted).
    pub async fn request(&self, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
        let key = self.keys.request(id);
        let fields: HashMap<String, String> = self.client.hgetall(&key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_request(id, &key, &fields).map(Some)
    }

    /// The recorded device entries of a request, in device order. Devices not yet
    /// finished are absent.
    pub async fn entries(&self, id: RequestId) -> Result<Vec<(usize, EntryRecord)>, StoreError> {
        let key = self.keys.entries(id);
        let fields: HashMap<String, String> = self.client.hgetall(&key).await?;
        let mut entries = fields
            .iter()
            .map(|(index, json)| {
                let index = index.parse().map_err(|e| StoreError::corrupt(&key, e))?;
                let entry = serde_json::from_str(json).map_err(|e| StoreError::corrupt(&key, e))?;
                Ok((index, entry))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        entries.sort_by_key(|(index, _)| *index);
        Ok(entries)
    }

    /// One stored chunk of a device document; `None` when it is missing.
    pub async fn chunk(
        &self,
        id: RequestId,
        device: usize,
        chunk: u64,
    ) -> Result<Option<Bytes>, StoreError> {
        let key = self.keys.device(id, device);
        Ok(self.client.hget(key, chunk).await?)
    }

    /// The request currently registered for an owner on a channel.
    pub async fn owner_request(
        &self,
        channel: Channel,
        owner_hash: &str,
    ) -> Result<Option<RequestId>, StoreError> {
        let key = self.keys.owner(channel, owner_hash);
        let current: Option<String> = self.client.get(&key).await?;
        current
            .map(|raw| raw.parse().map_err(|e| StoreError::corrupt(&key, e)))
            .transpose()
    }

    /// Registers `new` as the owner's request if the owner still points at
    /// `expected`. Answers the request the owner points at afterwards: `new` when the
    /// claim won, another id when a concurrent order got there first.
    pub async fn claim_owner(
        &self,
        channel: Channel,
        owner_hash: &str,
        expected: Option<RequestId>,
        new: RequestId,
        expires_at: DateTime<Utc>,
    ) -> Result<RequestId, StoreError> {
        let key = self.keys.owner(channel, owner_hash);
        let expected = expected.map(|id| id.to_string()).unwrap_or_default();
        let args: Vec<Value> = vec![
            expected.into(),
            new.to_string().into(),
            expires_at.timestamp_millis().into(),
        ];
        let current: String = self
            .client
            .eval(scripts::CLAIM_OWNER, vec![key.clone()], args)
            .await?;
        current.parse().map_err(|e| StoreError::corrupt(&key, e))
    }

    /// Removes the owner's pointer if it points at `id`.
    pub async fn release_owner(
        &self,
        channel: Channel,
        owner_hash: &str,
        id: RequestId,
    ) -> Result<(), StoreError> {
        let key = self.keys.owner(channel, owner_hash);
        let args: Vec<Value> = vec![id.to_string().into()];
        let _: i64 = self
            .client
            .eval(scripts::RELEASE_OWNER, vec![key], args)
            .await?;
        Ok(())
    }

    /// Removes every key of the request, its job and its owner pointer. A worker
    /// still exporting it is fenced off, since its generation is gone with the key.
    pub async fn delete_request(&self, request: &RequestRecord) -> Result<(), StoreError> {
        let keys = self.keys.all_of(request.id, request.devices.len());
        let _: i64 = self.client.del(keys).await?;
        self.remove_job(request.id).await?;
        self.release_owner(request.channel, &request.owner_hash, request.id)
            .await
    }

    /// Removes keys of one request.
    pub async fn delete_keys(&self, keys: Vec<String>) -> Result<(), StoreError> {
        let _: i64 = self.client.del(keys).await?;
        Ok(())
    }

    /// Frees the chunks of a request that failed for good; the request itself stays
    /// until it expires so that its status can be answered.
    pub async fn discard_results(&self, id: RequestId, devices: usize) -> Result<(), StoreError> {
        let mut keys = self.keys.all_of(id, devices);
        keys.remove(0);
        let _: i64 = self.client.del(keys).await?;
        Ok(())
    }
}

fn parse_request(
    id: RequestId,
    key: &str,
    fields: &HashMap<String, String>,
) -> Result<RequestRecord, StoreError> {
    let text = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| StoreError::corrupt(key, format!("missing field {name}")))
    };
    let number = |name: &str| -> Result<i64, StoreError> {
        text(name)?
            .parse()
            .map_err(|e| StoreError::corrupt(key, format!("{name}: {e}")))
    };
    let millis = |name: &str| -> Result<DateTime<Utc>, StoreError> {
        let ms = number(name)?;
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| StoreError::corrupt(key, format!("{name} out of range")))
    };
    let micros = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        if !fields.contains_key(name) {
            return Ok(None);
        }
        let us = number(name)?;
        Ok(DateTime::from_timestamp_micros(us))
    };

    let channel = text("channel")?
        .parse()
        .map_err(|e: String| StoreError::corrupt(key, e))?;
    let status =
        Status::parse(text("status")?).ok_or_else(|| StoreError::corrupt(key, "unknown status"))?;
    let devices: Vec<Uuid> =
        serde_json::from_str(text("devices")?).map_err(|e| StoreError::corrupt(key, e))?;
    let ready_at = if fields.contains_key("ready_at") {
        Some(millis("ready_at")?)
    } else {
        None
    };

    Ok(RequestRecord {
        id,
        channel,
        owner_hash: text("owner")?.to_owned(),
        status,
        devices,
        completed: usize::try_from(number("completed")?).unwrap_or(0),
        window: TimeWindow {
            from: micros("time_from")?,
            to: micros("time_to")?,
        },
        created_at: millis("created_at")?,
        expires_at: millis("expires_at")?,
        ready_at,
        attempts: u32::try_from(number("attempts")?).unwrap_or(0),
        error: fields.get("error").cloned(),
    })
}
