//! A reproducible synthetic population for development, tests, demos and load tests.
//!
//! Most citizens are small (one device, a few hundred events); a few are heavy
//! (several devices with hundreds of thousands of events each). Rows go in with
//! `COPY ... FROM STDIN`, so millions of rows load in seconds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::postgres::PgCopyIn;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The shape of a population.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedPlan {
    /// Citizens to create.
    #[arg(long, default_value_t = 1_000)]
    pub citizens: u64,

    /// Seed of the generator: the same seed gives the same population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Most devices an ordinary citizen has (most have one).
    #[arg(long, default_value_t = 3)]
    pub max_devices: u32,

    /// Median events of an ordinary device; the spread is log-normal.
    #[arg(long, default_value_t = 300)]
    pub median_events: u32,

    /// Heavy citizens, on top of the ordinary ones.
    #[arg(long, default_value_t = 2)]
    pub heavy_citizens: u32,

    /// Devices of each heavy citizen.
    #[arg(long, default_value_t = 3)]
    pub heavy_devices: u32,

    /// Events of each heavy device.
    #[arg(long, default_value_t = 200_000)]
    pub heavy_events: u32,

    /// Share of events that are GPS intervals; the rest are Bluetooth contacts.
    #[arg(long, default_value_t = 0.7)]
    pub gps_share: f64,
}

/// One generated citizen, for picking phone numbers to try.
#[derive(Debug, Clone, Serialize)]
pub struct SeededCitizen {
    pub phone_number: String,
    pub devices: u32,
    pub events: u64,
}

/// What a seeding run created.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub citizens: Vec<SeededCitizen>,
    pub devices: u64,
    pub gps_events: u64,
    pub bluetooth_events: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl SeedReport {
    pub fn rows(&self) -> u64 {
        self.devices + self.gps_events + self.bluetooth_events
    }

    /// The smallest, a median and the largest citizen by events.
    pub fn examples(&self) -> Vec<&SeededCitizen> {
        let mut by_size: Vec<&SeededCitizen> = self.citizens.iter().collect();
        by_size.sort_by_key(|c| c.events);
        let mut picks = Vec::new();
        for index in [0, by_size.len() / 2, by_size.len().saturating_sub(1)] {
            let Some(citizen) = by_size.get(index) else {
                continue;
            };
            if !picks
                .iter()
                .any(|p: &&SeededCitizen| p.phone_number == citizen.phone_number)
            {
                picks.push(*citizen);
            }
        }
        picks
    }
}

/// A device to generate, with everything needed to regenerate its events alone.
struct PlannedDevice {
    uuid: Uuid,
    phone: usize,
    events: u64,
    rng_seed: u64,
    start: DateTime<Utc>,
}

/// Why a population could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the population of seed {0} is already loaded; choose another --seed")]
    AlreadyLoaded(u64),
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
}

/// Fills the source tables. Existing rows are left alone; loading the same seed
/// twice is refused, since it would repeat the same devices.
pub async fn seed(pool: &PgPool, plan: &SeedPlan) -> Result<SeedReport, SeedError> {
    let started = Instant::now();
    let (citizens, devices) = plan_population(plan);

    let uuids: Vec<Uuid> = devices.iter().map(|d| d.uuid).collect();
    let loaded: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM devices WHERE uuid = ANY($1))")
            .bind(&uuids)
            .fetch_one(pool)
            .await?;
    if loaded {
        return Err(SeedError::AlreadyLoaded(plan.seed));
    }

    let mut conn = pool.acquire().await?;
    copy_devices(&mut conn, &citizens, &devices).await?;

    let mut gps_conn = pool.acquire().await?;
    let mut bt_conn = pool.acquire().await?;
    let gps_share = plan.gps_share.clamp(0.0, 1.0);
    let (gps, bt) = tokio::try_join!(
        copy_gps(&mut gps_conn, &devices, gps_share),
        copy_bluetooth(&mut bt_conn, &devices, gps_share),
    )?;

    Ok(SeedReport {
        devices: devices.len() as u64,
        citizens,
        gps_events: gps,
        bluetooth_events: bt,
        elapsed: started.elapsed(),
    })
}

fn plan_population(plan: &SeedPlan) -> (Vec<SeededCitizen>, Vec<PlannedDevice>) {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let epoch = Utc
        .with_ymd_and_hms(2020, 4, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let total = plan.citizens + u64::from(plan.heavy_citizens);
    let phone_offset = rng.random_range(0..10_000_000u64);
    let mut citizens = Vec::new();
    let mut devices = Vec::new();

    for index in 0..total {
        let heavy = index >= plan.citizens;
        let device_count = if heavy {
            plan.heavy_devices.max(1)
        } else {
            ordinary_device_count(&mut rng, plan.max_devices.max(1))
        };
        // 7_919 is prime and coprime with 10^7, so numbers are unique for a seed.
        let number = (phone_offset + index * 7_919) % 10_000_000;
        let mut citizen = SeededCitizen {
            phone_number: format!("+479{number:07}"),
            devices: device_count,
            events: 0,
        };

        for _ in 0..device_count {
            let events = if heavy {
                u64::from(plan.heavy_events)
            } else {
                log_normal(&mut rng, f64::from(plan.median_events.max(1)))
            };
            let start = epoch + chrono::Duration::seconds(rng.random_range(0..60 * 86_400));
            citizen.events += events;
            devices.push(PlannedDevice {
                uuid: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                phone: citizens.len(),
                events,
                rng_seed: rng.random(),
                start,
            });
        }
        citizens.push(citizen);
    }
    (citizens, devices)
}

fn ordinary_device_count(rng: &mut StdRng, max: u32) -> u32 {
    let roll: f64 = rng.random();
    let count = if roll < 0.8 {
        1
    } else if roll < 0.95 {
        2
    } else {
        rng.random_range(3..=max.max(3))
    };
    count.min(max)
}

/// A log-normal count with the given median and a spread of about ×2.7 (σ = 1),
/// capped so that only the heavy citizens reach the hundreds of thousands.
fn log_normal(rng: &mut StdRng, median: f64) -> u64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (median * normal.exp()).round().clamp(0.0, 50_000.0) as u64
}

/// Rows of one `COPY ... FROM STDIN` in text format, sent in batches of about a
/// megabyte so that memory stays flat however many rows go in.
struct CopyBatches<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    buf: String,
    rows: u64,
}

impl<'c> CopyBatches<'c> {
    const FLUSH_AT: usize = 1 << 20;

    async fn start(conn: &'c mut PgConnection, statement: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            copy: conn.copy_in_raw(statement).await?,
            buf: String::with_capacity(Self::FLUSH_AT + 4096),
            rows: 0,
        })
    }

    /// Counts the row just written into `buf`, and sends the batch when it is full.
    async fn row_written(&mut self) -> Result<(), sqlx::Error> {
        self.rows += 1;
        if self.buf.len() >= Self::FLUSH_AT {
            self.copy.send(self.buf.as_bytes()).await?;
            self.buf.clear();
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, sqlx::Error> {
        self.copy.send(self.buf.as_bytes()).await?;
        self.copy.finish().await?;
        Ok(self.rows)
    }
}

async fn copy_devices(
    conn: &mut PgConnection,
    citizens: &[SeededCitizen],
    devices: &[PlannedDevice],
) -> Result<(), sqlx::Error> {
    let platforms = [
        ("ios", "17.4", "iPhone 13"),
        ("android", "14", "Pixel 7"),
        ("android", "13", "Galaxy S22 «Ærlig»"),
    ];
    let mut copy = CopyBatches::start(
        conn,
        "COPY devices (uuid, phone_number, platform, os_version, app_version, model, created_at) FROM STDIN",
    )
    .await?;
    for (index, device) in devices.iter().enumerate() {
        let (platform, os, model) = platforms[index % platforms.len()];
        let phone = &citizens[device.phone].phone_number;
        let _ = writeln!(
            copy.buf,
            "{}\t{phone}\t{platform}\t{os}\t1.{}.0\t{model}\t{}",
            device.uuid,
            index % 4,
            PgTime(device.start.timestamp()),
        );
        copy.row_written().await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Events of one device split between GPS and Bluetooth, drawn from its own seed so
/// that both tables can be written at once and still agree.
fn split_events(device: &PlannedDevice, gps_share: f64) -> (u64, u64) {
    let gps = (device.events as f64 * gps_share).round() as u64;
    (gps, device.events - gps)
}

async fn copy_gps(
    conn: &mut PgConnection,
    devices: &[PlannedDevice],
    gps_share: f64,
) -> Result<u64, sqlx::Error> {
    let mut copy = CopyBatches::start(
        conn,
        "COPY gps_events (uuid, time_from, time_to, latitude, longitude, accuracy, speed,
                          speed_accuracy, altitude, altitude_accuracy) FROM STDIN",
    )
    .await?;
    for device in devices {
        let (count, _) = split_events(device, gps_share);
        let mut rng = StdRng::seed_from_u64(device.rng_seed);
        let mut at = device.start.timestamp();
        let (mut lat, mut lon) = (
            59.9 + rng.random_range(-1.0..1.0),
            10.7 + rng.random_range(-1.0..1.0),
        );
        for _ in 0..count {
            at += rng.random_range(10..600);
            let until = at + rng.random_range(0..300);
            lat += rng.random_range(-0.001..0.001);
            lon += rng.random_range(-0.001..0.001);
            let _ = write!(
                copy.buf,
                "{}\t{}\t{}\t{lat:.6}\t{lon:.6}",
                device.uuid,
                PgTime(at),
                PgTime(until)
            );
            for (value, nullable) in [
                (rng.random_range(3.0..40.0f32), false),
                (rng.random_range(0.0..3.0f32), true),
                (rng.random_range(0.0..1.0f32), true),
                (rng.random_range(0.0..120.0f32), true),
                (rng.random_range(1.0..10.0f32), true),
            ] {
                if nullable && rng.random_bool(0.05) {
                    copy.buf.push_str("\t\\N");
                } else {
                    let _ = write!(copy.buf, "\t{value:.1}");
                }
            }
            copy.buf.push('\n');
            copy.row_written().await?;
        }
    }
    copy.finish().await
}

async fn copy_bluetooth(
    conn: &mut PgConnection,
    devices: &[PlannedDevice],
    gps_share: f64,
) -> Result<u64, sqlx::Error> {
    let mut copy = CopyBatches::start(
        conn,
        "COPY bluetooth_events (uuid, paired_uuid, paired_time, rssi, tx_power) FROM STDIN",
    )
    .await?;
    for device in devices {
        let (_, count) = split_events(device, gps_share);
        let mut rng = StdRng::seed_from_u64(device.rng_seed ^ 0x5eed_b1e7);
        let mut at = device.start.timestamp();
        for _ in 0..count {
            at += rng.random_range(5..900);
            let other = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
            let rssi = rng.random_range(-100..-30);
            let _ = write!(
                copy.buf,
                "{}\t{other}\t{}\t{rssi}\t",
                device.uuid,
                PgTime(at)
            );
            if rng.random_bool(0.1) {
                copy.buf.push_str("\\N\n");
            } else {
                let _ = writeln!(copy.buf, "{}", rng.random_range(-20..20));
            }
            copy.row_written().await?;
        }
    }
    copy.finish().await
}

/// Unix seconds written as a PostgreSQL text timestamp in UTC, straight into the
/// batch without an intermediate string.
struct PgTime(i64);

impl std::fmt::Display for PgTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match DateTime::from_timestamp(self.0, 0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S+00")),
            None => f.write_str("\\N"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SeedPlan {
        SeedPlan {
            citizens: 200,
            seed: 7,
            max_devices: 4,
            median_events: 100,
            heavy_citizens: 1,
            heavy_devices: 2,
            heavy_events: 5_000,
            gps_share: 0.7,
        }
    }

    #[test]
    fn the_same_seed_plans_the_same_population() {
        let (a, da) = plan_population(&plan());
        let (b, db) = plan_population(&plan());
        let phones =
            |c: &[SeededCitizen]| c.iter().map(|c| c.phone_number.clone()).collect::<Vec<_>>();
        assert_eq!(phones(&a), phones(&b));
        assert_eq!(
            da.iter().map(|d| (d.uuid, d.events)).collect::<Vec<_>>(),
            db.iter().map(|d| (d.uuid, d.events)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn phone_numbers_are_unique_and_valid() {
        let (citizens, _) = plan_population(&plan());
        let mut phones: Vec<_> = citizens.iter().map(|c| c.phone_number.clone()).collect();
        for phone in &phones {
            assert!(crate::domain::PhoneNumber::parse(phone).is_ok(), "{phone}");
        }
        phones.sort();
        phones.dedup();
        assert_eq!(phones.len(), citizens.len());
    }

    #[test]
    fn most_citizens_are_small_and_the_heavy_ones_are_heavy() {
        let (citizens, _) = plan_population(&plan());
        let single = citizens.iter().filter(|c| c.devices == 1).count();
        assert!(single > citizens.len() / 2);
        let heaviest = citizens.iter().map(|c| c.events).max().unwrap();
        assert_eq!(heaviest, 10_000);
    }
}
