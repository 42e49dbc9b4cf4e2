//! The rules of ordering, finding and deleting exports, shared by both channels:
//! one live request per phone number and channel, an access-log row before any
//! work is queued, and visibility only to the channel (and citizen) that ordered.

use std::time::Duration;

use aws_lc_rs::hmac;
use chrono::Utc;
use sqlx::PgPool;

use crate::domain::{Channel, PhoneNumber, RequestId, TimeWindow};
use crate::source::access_log::{self, Requester};
use crate::source::rows;
use crate::store::{NewRequest, RequestRecord, Status, Store, StoreError};

/// An export ordered on a channel, for a requester, over a time window.
#[derive(Debug, Clone)]
pub struct Order {
    pub channel: Channel,
    pub requester: Requester,
    pub window: TimeWindow,
}

/// The answer to an order.
#[derive(Debug)]
pub enum Placed {
    /// A new request, or the live one ordered earlier for the same phone number.
    Accepted(RequestRecord),
    /// The phone number has no devices.
    NotFound,
}

/// Why an order or lookup could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("too many exports are queued")]
    QueueFull,
    #[error("the access log could not be written: {0}")]
    AccessLog(#[source] crate::source::SourceError),
    #[error("the source database is unavailable: {0}")]
    Source(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("concurrent orders for the same phone number kept colliding")]
    Contended,
}

/// Settings of the ordering rules.
#[derive(Debug, Clone)]
pub struct OrderSettings {
    pub helsenorge_expiry: Duration,
    pub fhi_expiry: Duration,
    pub max_queue: u64,
    pub owner_key: OwnerKey,
}

/// Places, finds and deletes export requests.
#[derive(Clone)]
pub struct Orders {
    pool: PgPool,
    store: Store,
    settings: OrderSettings,
}

/// How the owner of a request is stored: an HMAC-SHA-256 of the phone number under
/// a deployment secret, so that Redis holds no phone numbers. Phone numbers are few
/// enough to be guessed, so a plain hash would let anyone who can read Redis test
/// guesses against it; without the secret they cannot.
#[derive(Clone)]
pub struct OwnerKey(hmac::Key);

impl OwnerKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    pub fn hash(&self, phone: &PhoneNumber) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(b"insight-owner\0");
        context.update(phone.as_str().as_bytes());
        hex::encode(context.sign())
    }
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerKey(..)")
    }
}

impl Orders {
    pub fn new(pool: PgPool, store: Store, settings: OrderSettings) -> Self {
        Self {
            pool,
            store,
            settings,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn expiry(&self, channel: Channel) -> Duration {
        match channel {
            Channel::Helsenorge => self.settings.helsenorge_expiry,
            Channel::Fhi => self.settings.fhi_expiry,
        }
    }

    /// Orders an export, or answers the live request already ordered for the same
    /// phone number on the same channel.
    pub async fn place(&self, order: &Order) -> Result<Placed, OrderError> {
        let devices = rows::devices_of(&self.pool, &order.requester.phone).await?;
        if devices.is_empty() {
            return Ok(Placed::NotFound);
        }
        let owner = self.settings.owner_key.hash(&order.requester.phone);

        // A concurrent order can win the owner pointer between our read and our
        // claim; then its request is the answer, read on the next round.
        for _ in 0..4 {
            let current = self.store.owner_request(order.channel, &owner).await?;
            if let Some(live) = self.live_request(current, order.channel).await? {
                return Ok(Placed::Accepted(live));
            }
            if self.store.queue_depth().await? >= self.settings.max_queue {
                return Err(OrderError::QueueFull);
            }

            // The request exists before the owner points at it, so that a pointer
            // to a missing request always means a dead one.
            let now = Utc::now();
            let new = NewRequest {
                id: RequestId::new(),
                channel: order.channel,
                owner_hash: owner.clone(),
                devices: devices.clone(),
                window: order.window,
                created_at: now,
                expires_at: now + self.expiry(order.channel),
            };
            self.store.create_request(&new).await?;
            let winner = self
                .store
                .claim_owner(order.channel, &owner, current, new.id, new.expires_at)
                .await?;
            if winner == new.id {
                return self.start(order, new).await.map(Placed::Accepted);
            }
            let keys = self.store.keys().all_of(new.id, 0);
            self.store.delete_keys(keys).await?;
        }
        Err(OrderError::Contended)
    }

    async fn live_request(
        &self,
        id: Option<RequestId>,
        channel: Channel,
    ) -> Result<Option<RequestRecord>, StoreError> {
        let Some(id) = id else { return Ok(None) };
        let live = self.store.request(id).await?.filter(|r| {
            r.channel == channel && matches!(r.status, Status::Pending | Status::Ready)
        });
        Ok(live)
    }

    /// Logs the order, then queues its request. Undoes the request and its owner
    /// pointer when either step fails, so that the next order starts afresh.
    async fn start(&self, order: &Order, new: NewRequest) -> Result<RequestRecord, OrderError> {
        let logged =
            access_log::log_order(&self.pool, new.id, order.channel, &order.requester).await;
        if let Err(e) = logged {
            self.abandon(&new).await;
            return Err(OrderError::AccessLog(e));
        }

        let queued = self
            .store
            .enqueue(new.id, new.expires_at.timestamp_millis())
            .await;
        if let Err(e) = queued {
            self.abandon(&new).await;
            return Err(e.into());
        }

        metrics::counter!("insight_orders_total", "channel" => order.channel.as_str()).increment(1);
        tracing::info!(request_id = %new.id, channel = order.channel.as_str(), devices = new.devices.len(), "export ordered");
        Ok(RequestRecord {
            id: new.id,
            channel: new.channel,
            owner_hash: new.owner_hash,
            status: Status::Pending,
            completed: 0,
            devices: new.devices,
            window: new.window,
            created_at: new.created_at,
            expires_at: new.expires_at,
            ready_at: None,
            attempts: 0,
            error: None,
        })
    }

    async fn abandon(&self, new: &NewRequest) {
        let keys = self.store.keys().all_of(new.id, new.devices.len());
        let undone = async {
            self.store.delete_keys(keys).await?;
            self.store.remove_job(new.id).await?;
            self.store
                .release_owner(new.channel, &new.owner_hash, new.id)
                .await
        };
        if let Err(e) = undone.await {
            tracing::warn!(request_id = %new.id, error = %e, "could not undo a failed order; its keys expire on their own");
        }
    }

    /// The request, if it exists and the caller may see it: it must have been
    /// ordered on `channel` and, when `owner` is given, for that phone number.
    pub async fn find(
        &self,
        channel: Channel,
        id: RequestId,
        owner: Option<&PhoneNumber>,
    ) -> Result<Option<RequestRecord>, StoreError> {
        let Some(request) = self.store.request(id).await? else {
            return Ok(None);
        };
        let visible = request.channel == channel
            && request.expires_at > Utc::now()
            && owner.is_none_or(|phone| self.settings.owner_key.hash(phone) == request.owner_hash);
        Ok(visible.then_some(request))
    }

    /// Deletes a visible request and all its data at once.
    pub async fn delete(&self, request: &RequestRecord) -> Result<(), StoreError> {
        self.store.delete_request(request).await?;
        tracing::info!(request_id = %request.id, "export deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(number: &str) -> PhoneNumber {
        PhoneNumber::parse(number).expect("a valid phone number")
    }

    #[test]
    fn owner_hashes_depend_on_the_phone_number_and_the_secret() {
        let key = OwnerKey::new(b"one secret");
        let hash = key.hash(&phone("+4791234567"));
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            hash,
            OwnerKey::new(b"one secret").hash(&phone("+4791234567"))
        );
        assert_ne!(hash, key.hash(&phone("+4791234568")));
        assert_ne!(
            hash,
            OwnerKey::new(b"another secret").hash(&phone("+4791234567"))
        );
        assert_eq!(
            format!("{key:?}"),
            "OwnerKey(..)",
            "the secret is never printed"
        );
    }
}
