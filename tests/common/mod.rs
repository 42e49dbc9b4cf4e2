//! Shared set-up for integration tests: every test gets its own PostgreSQL database
//! and its own Redis key prefix, so tests run in parallel against the real servers.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::*;
use insight::config::WorkerSettings;
use insight::domain::{Channel, PhoneNumber, RequestId, TimeWindow};
use insight::export::Worker;
use insight::orders::{Order, OrderSettings, Orders, OwnerKey, Placed};
use insight::source::access_log::Requester;
use insight::source::rows::{BluetoothContact, DeviceInfo, GpsEvent};
use insight::store::{RequestRecord, Status, Store};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub mod app;

/// The PostgreSQL server tests create their databases on.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One test's private database and key space.
pub struct TestEnv {
    pub database_name: String,
    pub database_url: String,
    pub prefix: String,
    pub pool: PgPool,
    pub store: Store,
    pub redis: Client,
}

impl TestEnv {
    pub async fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let database_name = format!("insight_test_{}", &tag[..16]);
        let database_url = format!("{}/{database_name}", postgres_base());
        insight::source::migrate(&database_url)
            .await
            .expect("migrate the test database");
        let pool = insight::source::connect(&database_url, 8)
            .await
            .expect("connect to the test database");
        let prefix = format!("test-{}", &tag[..16]);
        let store = Store::connect(&redis_url(), &prefix, 4)
            .await
            .expect("connect to Redis");
        let redis = Builder::from_config(Config::from_url(&redis_url()).expect("redis url"))
            .build()
            .expect("redis client");
        redis.init().await.expect("connect a raw Redis client");
        Self {
            database_name,
            database_url,
            prefix,
            pool,
            store,
            redis,
        }
    }

    pub fn orders(&self) -> Orders {
        self.orders_with(OrderSettings {
            helsenorge_expiry: Duration::from_secs(3600),
            fhi_expiry: Duration::from_secs(1800),
            max_queue: 1000,
            owner_key: OwnerKey::new(b"test-owner-key"),
        })
    }

    pub fn orders_with(&self, settings: OrderSettings) -> Orders {
        Orders::new(self.pool.clone(), self.store.clone(), settings)
    }

    pub fn worker(&self) -> Worker {
        self.worker_with(worker_settings())
    }

    pub fn worker_with(&self, settings: WorkerSettings) -> Worker {
        Worker::new(self.store.clone(), self.pool.clone(), settings)
    }

    /// Runs queued jobs until none is due.
    pub async fn run_jobs(&self) {
        let worker = self.worker();
        let never = CancellationToken::new();
        while worker.run_one(&never).await.expect("run a job") {}
    }

    /// Orders an export on a channel with default person fields.
    pub async fn order(&self, channel: Channel, phone: &str, window: TimeWindow) -> RequestRecord {
        match self
            .orders()
            .place(&order(channel, phone, window))
            .await
            .expect("place an order")
        {
            Placed::Accepted(request) => request,
            Placed::NotFound => panic!("no devices for {phone}"),
        }
    }

    pub async fn request(&self, id: RequestId) -> RequestRecord {
        self.store
            .request(id)
            .await
            .expect("read request")
            .expect("request exists")
    }

    /// Every Redis key of this test, with its absolute expiry (ms; -1 for none).
    pub async fn keys_with_expiry(&self) -> Vec<(String, i64)> {
        let keys: Vec<String> = self
            .redis
            .custom(fred::cmd!("KEYS"), vec![format!("{}:*", self.prefix)])
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let at: i64 = self
                .redis
                .custom(fred::cmd!("PEXPIRETIME"), vec![key.clone()])
                .await
                .expect("PEXPIRETIME");
            out.push((key, at));
        }
        out.sort();
        out
    }

    pub async fn insert_device(&self, phone: &str, info: &DeviceInfo) -> Uuid {
        let uuid = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO devices (uuid, phone_number, platform, os_version, app_version, model, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid)
        .bind(phone)
        .bind(&info.platform)
        .bind(&info.os_version)
        .bind(&info.app_version)
        .bind(&info.model)
        .bind(info.created_at)
        .execute(&self.pool)
        .await
        .expect("insert device");
        uuid
    }

    pub async fn insert_gps(&self, uuid: Uuid, event: &GpsEvent) {
        sqlx::query(
            "INSERT INTO gps_events (uuid, time_from, time_to, latitude, longitude, accuracy, speed,
                                     speed_accuracy, altitude, altitude_accuracy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid)
        .bind(event.time_from)
        .bind(event.time_to)
        .bind(event.latitude)
        .bind(event.longitude)
        .bind(event.accuracy)
        .bind(event.speed)
        .bind(event.speed_accuracy)
        .bind(event.altitude)
        .bind(event.altitude_accuracy)
        .execute(&self.pool)
        .await
        .expect("insert gps event");
    }

    pub async fn insert_bluetooth(&self, uuid: Uuid, contact: &BluetoothContact) {
        sqlx::query(
            "INSERT INTO bluetooth_events (uuid, paired_uuid, paired_time, rssi, tx_power)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid)
        .bind(Uuid::new_v4())
        .bind(contact.paired_time)
        .bind(contact.rssi)
        .bind(contact.tx_power)
        .execute(&self.pool)
        .await
        .expect("insert bluetooth contact");
    }

    /// Inserts `count` GPS rows for a device in one statement, a minute apart.
    pub async fn insert_many_gps(&self, uuid: Uuid, count: i64) {
        sqlx::query(
            "INSERT INTO gps_events (uuid, time_from, time_to, latitude, longitude, accuracy)
             SELECT $1, timestamptz '2020-04-01 00:00:00+00' + i * interval '1 minute',
                    timestamptz '2020-04-01 00:00:30+00' + i * interval '1 minute',
                    59.9 + i * 1e-6, 10.7, 5
             FROM generate_series(1, $2) AS i",
        )
        .bind(uuid)
        .bind(count)
        .execute(&self.pool)
        .await
        .expect("insert gps rows");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let name = self.database_name.clone();
        let prefix = self.prefix.clone();
        // Clean-up is best effort; a leftover is harmless and named after its test run.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(pool) =
                    insight::source::connect(&format!("{}/postgres", postgres_base()), 1).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                }
                if let Ok(config) = Config::from_url(&redis_url())
                    && let Ok(client) = Builder::from_config(config).build()
                    && client.init().await.is_ok()
                {
                    let pattern = vec![format!("{prefix}:*")];
                    let keys: Vec<String> = client
                        .custom(fred::cmd!("KEYS"), pattern)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<i64, _> = client.del(keys).await;
                    }
                }
            });
        })
        .join();
    }
}

pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        worker_concurrency: 1,
        worker_lease: Duration::from_secs(30),
        worker_max_attempts: 3,
        worker_retry_backoff: Duration::ZERO,
        worker_poll_interval: Duration::from_millis(20),
        worker_chunk_size: 4096,
        worker_metrics_listen: None,
    }
}

pub fn order(channel: Channel, phone: &str, window: TimeWindow) -> Order {
    Order {
        channel,
        requester: Requester {
            phone: PhoneNumber::parse(phone).expect("valid phone"),
            person_name: "Kari Nordmann".into(),
            person_id: Some("12345678901".into()),
            person_organization: None,
            legal_means: "Innsynsoppslag fra helsenorge.no".into(),
        },
        window,
    }
}

pub fn time(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 time")
}

pub fn device(model: &str) -> DeviceInfo {
    DeviceInfo {
        platform: Some("android".into()),
        os_version: Some("14".into()),
        app_version: Some("1.2.0".into()),
        model: Some(model.into()),
        created_at: Some(time("2020-04-01T10:00:00Z")),
    }
}

/// A ready FHI export of one device whose document is `size` bytes of
/// incompressible data (deflate "stored" blocks), written straight into the store:
/// large archives without exporting millions of rows.
pub async fn synthetic_ready_export(env: &TestEnv, phone: &str, size: usize) -> RequestRecord {
    use std::io::Write;

    let uuid = env.insert_device(phone, &device("synthetic")).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;
    env.store
        .claim_job(Duration::from_secs(60))
        .await
        .expect("claim");
    let insight::store::Attempt::Started { lease, .. } = env
        .store
        .begin_attempt(request.id, 5)
        .await
        .expect("begin attempt")
    else {
        panic!("no attempt started");
    };

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::none());
    encoder.write_all(&data).expect("deflate");
    let compressed = encoder.finish().expect("deflate");
    let chunk_size = 256 * 1024;
    let mut chunks = 0;
    for (index, chunk) in compressed.chunks(chunk_size).enumerate() {
        let bytes = bytes::Bytes::copy_from_slice(chunk);
        lease
            .store_chunk(0, index as u64, bytes)
            .await
            .expect("store chunk");
        chunks += 1;
    }
    let entry = insight::store::EntryRecord {
        uuid,
        crc32: crc32fast::hash(&data),
        compressed_size: compressed.len() as u64,
        uncompressed_size: size as u64,
        chunk_size: chunk_size as u64,
        chunks,
        gps_events: 0,
        bluetooth_contacts: 0,
    };
    lease.record_entry(0, &entry).await.expect("record entry");
    lease.mark_ready(Utc::now()).await.expect("mark ready");
    env.store.remove_job(request.id).await.expect("remove job");
    request
}

/// A stored device document, joined from its chunks and inflated.
pub async fn stored_document(env: &TestEnv, id: RequestId, index: usize) -> serde_json::Value {
    use std::io::Read;
    let entries = env.store.entries(id).await.expect("read entries");
    let (_, entry) = entries
        .iter()
        .find(|(i, _)| *i == index)
        .expect("entry recorded");
    let mut compressed = Vec::new();
    for chunk in 0..entry.chunks {
        let bytes = env
            .store
            .chunk(id, index, chunk)
            .await
            .expect("read chunk")
            .expect("chunk stored");
        compressed.extend_from_slice(&bytes);
    }
    assert_eq!(compressed.len() as u64, entry.compressed_size);
    let mut text = Vec::new();
    flate2::read::DeflateDecoder::new(&compressed[..])
        .read_to_end(&mut text)
        .expect("inflate");
    assert_eq!(text.len() as u64, entry.uncompressed_size);
    assert_eq!(crc32fast::hash(&text), entry.crc32);
    serde_json::from_slice(&text).expect("a JSON document")
}

/// Sends SIGTERM, as an operator's shutdown would, and expects exit code 0 within
/// 30 seconds.
pub async fn terminate_cleanly(child: &mut tokio::process::Child) {
    let pid = child.id().expect("a running child");
    let sent = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped within 30 s")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}

pub fn assert_status(request: &RequestRecord, status: Status) {
    assert_eq!(
        request.status, status,
        "request {:?}: error {:?}",
        request.id, request.error
    );
}
