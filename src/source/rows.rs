//! The source rows an export reads, streamed in time order and never collected.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::utc_time;
use crate::domain::{PhoneNumber, TimeWindow};

/// What the backend knows about one installation of the app.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeviceInfo {
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub model: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// One GPS interval, as exported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpsEvent {
    #[serde(serialize_with = "utc_time::serialize")]
    pub time_from: Option<DateTime<Utc>>,
    #[serde(serialize_with = "utc_time::serialize")]
    pub time_to: Option<DateTime<Utc>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy: Option<f32>,
    pub speed: Option<f32>,
    pub speed_accuracy: Option<f32>,
    pub altitude: Option<f32>,
    pub altitude_accuracy: Option<f32>,
}

/// One Bluetooth contact, as exported: the other device's uuid is another person's
/// pseudonym and is never read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BluetoothContact {
    #[serde(serialize_with = "utc_time::serialize")]
    pub paired_time: Option<DateTime<Utc>>,
    pub rssi: Option<i32>,
    pub tx_power: Option<i32>,
}

// Rows are read by column position, in the order of the queries below: looking
// columns up by name costs more than the rest of decoding a row.

impl FromRow<'_, PgRow> for GpsEvent {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            time_from: row.try_get(0)?,
            time_to: row.try_get(1)?,
            latitude: row.try_get(2)?,
            longitude: row.try_get(3)?,
            accuracy: row.try_get(4)?,
            speed: row.try_get(5)?,
            speed_accuracy: row.try_get(6)?,
            altitude: row.try_get(7)?,
            altitude_accuracy: row.try_get(8)?,
        })
    }
}

impl FromRow<'_, PgRow> for BluetoothContact {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            paired_time: row.try_get(0)?,
            rssi: row.try_get(1)?,
            tx_power: row.try_get(2)?,
        })
    }
}

/// The device uuids registered to a phone number, oldest first.
pub async fn devices_of(pool: &PgPool, phone: &PhoneNumber) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT uuid FROM devices WHERE phone_number = $1 ORDER BY created_at NULLS LAST, uuid",
    )
    .bind(phone.as_str())
    .fetch_all(pool)
    .await
}

/// A device's own row; `None` when it has been removed since the order.
pub async fn device_info(
    conn: &mut PgConnection,
    uuid: Uuid,
) -> Result<Option<DeviceInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT platform, os_version, app_version, model, created_at FROM devices WHERE uuid = $1",
    )
    .bind(uuid)
    .fetch_optional(conn)
    .await
}

/// A device's GPS events overlapping the window (ends included), in time order.
pub fn gps_events(
    conn: &mut PgConnection,
    uuid: Uuid,
    window: TimeWindow,
) -> BoxStream<'_, Result<GpsEvent, sqlx::Error>> {
    sqlx::query_as(
        "SELECT time_from, time_to, latitude, longitude, accuracy, speed, speed_accuracy,
                altitude, altitude_accuracy
         FROM gps_events
         WHERE uuid = $1
           AND ($2::timestamptz IS NULL OR time_to >= $2)
           AND ($3::timestamptz IS NULL OR time_from <= $3)
         ORDER BY time_from, time_to",
    )
    .bind(uuid)
    .bind(window.from)
    .bind(window.to)
    .fetch(conn)
}

/// A device's Bluetooth contacts inside the window, in time order.
pub fn bluetooth_contacts(
    conn: &mut PgConnection,
    uuid: Uuid,
    window: TimeWindow,
) -> BoxStream<'_, Result<BluetoothContact, sqlx::Error>> {
    sqlx::query_as(
        "SELECT paired_time, rssi, tx_power
         FROM bluetooth_events
         WHERE uuid = $1
           AND ($2::timestamptz IS NULL OR paired_time >= $2)
           AND ($3::timestamptz IS NULL OR paired_time <= $3)
         ORDER BY paired_time, rssi, tx_power",
    )
    .bind(uuid)
    .bind(window.from)
    .bind(window.to)
    .fetch(conn)
}
