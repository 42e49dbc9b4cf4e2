//! End-to-end benchmark of the export pipeline, against PostgreSQL's own `COPY`.
//!
//! Run it with `cargo bench --bench export`. It creates its own database
//! (`insight_bench_<random>`) and Redis key prefix (`insight-bench-<random>`) and
//! removes both at the end.
//!
//! What it does and measures:
//!
//! 1. **Setup.** One device with `EXPORT_GPS_EVENTS` GPS events and
//!    `EXPORT_BLUETOOTH_CONTACTS` Bluetooth contacts, written with
//!    `insight::source::seed` (the project's realistic generator), then
//!    `VACUUM ANALYZE`.
//! 2. **COPY reference.** `psql -c "\copy (SELECT … ORDER BY …) TO '/dev/null'"`
//!    for each table, the same columns and order the worker reads; each run twice,
//!    the best kept (the first warms the caches). Rows/s and MB/s of COPY's text.
//! 3. **Export.** The order is placed with `Orders::place` (channel FHI) and the
//!    built `insight worker` runs as a child process until the request is ready.
//!    The time is the request's `ready_at − created_at` (Redis-side timestamps,
//!    so process start-up is excluded; at most one 50 ms worker poll is included).
//!    Reported: rows/s, JSON MB/s in, deflated MB/s out, the compression ratio,
//!    the ratio export/COPY rows/s, the worker's CPU seconds and how busy all
//!    cores were meanwhile (worker, PostgreSQL, Redis), and the worker's peak RSS
//!    (`VmHWM`, read just before SIGTERM) next to its idle RSS.
//!    Targets: peak RSS under 64 MiB; export rows/s at least half of COPY's.
//! 4. **Deflate levels.** The first `DEFLATE_GPS_ROWS` GPS rows and
//!    `DEFLATE_BLUETOOTH_ROWS` contacts of the device are loaded into memory and
//!    encoded with `DocumentWriter` (the JSON encoding cost is printed). That JSON
//!    is deflated with `ChunkedDeflate` (flate2 with zlib-rs, 256 KiB chunks, fed
//!    in the writer's `BATCH_SIZE` batches as the worker feeds it) at levels 1, 2,
//!    3, 4, 6 and 9, best of `DEFLATE_REPEATS`. Reported: MB/s of JSON in, the
//!    ratio, the compressed size per million rows (Redis memory), and how many
//!    rows/s the compressor alone sustains compared with COPY's rows/s (it must be
//!    above 1 for the worker to keep up with PostgreSQL: the worker deflates on a
//!    blocking thread while it decodes and encodes the next batch, so the slower
//!    of the two sets its pace).
//! 5. **Pipeline per level.** The worker's loop run in this process on the whole
//!    device at each level: `rows::gps_events`/`rows::bluetooth_contacts` streamed
//!    into `DocumentWriter`, batches deflated by `BackgroundDeflate` as in
//!    `export::job`, chunks dropped instead of stored in Redis. Its rows/s
//!    against COPY's shows what each level would give end to end (the worker's
//!    level is the constant `insight::export::DEFLATE_LEVEL`, so the child itself
//!    can only run the current one).
//!
//! The machine's load average is printed at the start and the end: on two cores,
//! a build running at the same time slows every figure.
//!
//! Environment (defaults in brackets):
//!
//! - `EXPORT_GPS_EVENTS` [1000000], `EXPORT_BLUETOOTH_CONTACTS` [200000]
//! - `EXPORT_TIMEOUT_SECS` [1800]: the longest wait for the export to be ready
//! - `DEFLATE_GPS_ROWS` [200000], `DEFLATE_BLUETOOTH_ROWS` [40000],
//!   `DEFLATE_REPEATS` [2]
//! - `BENCH_POSTGRES_URL` [postgres://postgres@127.0.0.1:5432] (no database name),
//!   `BENCH_REDIS_URL` [redis://127.0.0.1:6379]
//!
//! MB is 10^6 bytes; MiB is 2^20 bytes. Figures are printed, never asserted.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::TryStreamExt;
use insight::domain::{Channel, PhoneNumber, RequestId, TimeWindow};
use insight::export::deflate::{BackgroundDeflate, ChunkedDeflate};
use insight::export::document::{BATCH_SIZE, DocumentWriter};
use insight::export::{DEFAULT_CHUNK_SIZE, DEFLATE_LEVEL};
use insight::orders::{Order, OrderSettings, Orders, OwnerKey, Placed};
use insight::source::access_log::Requester;
use insight::source::rows::{self, BluetoothContact, DeviceInfo, GpsEvent};
use insight::source::seed::{self, SeedPlan};
use insight::store::{RequestRecord, Status};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use common::{BenchEnv, MachineCpu, Service, Table, kib_to_mib, mb_per_s, per_s, setting};

const GPS_COLUMNS: &str = "time_from, time_to, latitude, longitude, accuracy, speed, \
                           speed_accuracy, altitude, altitude_accuracy";
const BLUETOOTH_COLUMNS: &str = "paired_time, rssi, tx_power";
const LEVELS: [u32; 6] = [1, 2, 3, 4, 6, 9];
const POLL: Duration = Duration::from_millis(50);

struct Settings {
    gps_events: u32,
    bluetooth_contacts: u32,
    timeout: Duration,
    deflate_gps_rows: i64,
    deflate_bluetooth_rows: i64,
    deflate_repeats: u32,
}

impl Settings {
    fn from_env() -> Result<Self> {
        Ok(Self {
            gps_events: setting("EXPORT_GPS_EVENTS", 1_000_000)?,
            bluetooth_contacts: setting("EXPORT_BLUETOOTH_CONTACTS", 200_000)?,
            timeout: Duration::from_secs(setting("EXPORT_TIMEOUT_SECS", 1800)?),
            deflate_gps_rows: setting("DEFLATE_GPS_ROWS", 200_000)?,
            deflate_bluetooth_rows: setting("DEFLATE_BLUETOOTH_ROWS", 40_000)?,
            deflate_repeats: setting("DEFLATE_REPEATS", 2u32)?.max(1),
        })
    }
}

/// The seeded device: its owner's phone number and uuid.
struct Device {
    phone: String,
    uuid: Uuid,
}

/// One table's COPY reference.
struct CopyRun {
    table: &'static str,
    rows: u64,
    text_bytes: u64,
    best: Duration,
    first: Duration,
}

/// What the worker did.
struct ExportRun {
    rows: u64,
    uncompressed: u64,
    compressed: u64,
    elapsed: Duration,
    /// The worker's user+system CPU time during the export.
    cpu_seconds: f64,
    /// How busy all cores were meanwhile (worker, PostgreSQL, Redis, the rest).
    machine_busy: f64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    BenchEnv::run(async |env| run(env, &settings).await).await
}

async fn run(env: &BenchEnv, settings: &Settings) -> Result<()> {
    println!("insight export benchmark");
    println!("binary: {} ({})", common::INSIGHT_BIN, build_profile());
    println!("load average at the start: {}", common::load_average());

    let device = populate(env, settings).await?;

    let copies = [
        copy_reference(
            env,
            &device,
            "gps_events",
            GPS_COLUMNS,
            "time_from, time_to",
        )
        .await?,
        copy_reference(
            env,
            &device,
            "bluetooth_events",
            BLUETOOTH_COLUMNS,
            "paired_time, rssi, tx_power",
        )
        .await?,
    ];
    print_copies(&copies);

    let export = export_through_worker(env, &device, settings).await?;
    print_export(&export, &copies);

    let copy_rows_per_s = per_s(
        copies.iter().map(|c| c.rows).sum(),
        copies.iter().map(|c| c.best.as_secs_f64()).sum(),
    );
    deflate_levels(env, &device, settings, copy_rows_per_s).await
}

/// Where cargo put the binary says which profile built it: `cargo bench` uses the
/// `bench` profile, which inherits `release` and shares `target/release`.
fn build_profile() -> &'static str {
    let path = common::INSIGHT_BIN;
    if path.contains("/release/") {
        "built by the release/bench profile"
    } else if path.contains("/debug/") {
        "built by the dev profile: figures are not representative"
    } else {
        "profile unknown"
    }
}

/// Seeds one heavy citizen with one device, then vacuums and analyzes so that the
/// planner and visibility map look like a production table's.
async fn populate(env: &BenchEnv, settings: &Settings) -> Result<Device> {
    let started = Instant::now();
    let events = settings.gps_events + settings.bluetooth_contacts;
    let plan = SeedPlan {
        citizens: 0,
        seed: rand::random(),
        max_devices: 1,
        median_events: 1,
        heavy_citizens: 1,
        heavy_devices: 1,
        heavy_events: events,
        gps_share: f64::from(settings.gps_events) / f64::from(events.max(1)),
    };
    let report = seed::seed(&env.pool, &plan)
        .await
        .context("seeding the device")?;
    let phone = report
        .citizens
        .first()
        .context("the seed created no citizen")?
        .phone_number
        .clone();

    sqlx::query("VACUUM ANALYZE")
        .execute(&env.pool)
        .await
        .context("VACUUM ANALYZE")?;

    let uuid: Uuid = sqlx::query_scalar("SELECT uuid FROM devices WHERE phone_number = $1")
        .bind(&phone)
        .fetch_one(&env.pool)
        .await
        .context("finding the seeded device")?;
    println!(
        "setup: 1 device, {} GPS events, {} Bluetooth contacts, seeded and analyzed in {:.1} s\n",
        report.gps_events,
        report.bluetooth_events,
        started.elapsed().as_secs_f64()
    );
    Ok(Device { phone, uuid })
}

/// Times `\copy (query) TO '/dev/null'` twice, then counts the text bytes once.
async fn copy_reference(
    env: &BenchEnv,
    device: &Device,
    table: &'static str,
    columns: &str,
    order: &str,
) -> Result<CopyRun> {
    let query = format!(
        "SELECT {columns} FROM {table} WHERE uuid = '{}' ORDER BY {order}",
        device.uuid
    );
    let first = timed_copy(env, &query).await?;
    let second = timed_copy(env, &query).await?;
    let (rows, text_bytes) = copy_size(env, &query).await?;
    Ok(CopyRun {
        table,
        rows,
        text_bytes,
        best: first.min(second),
        first,
    })
}

async fn timed_copy(env: &BenchEnv, query: &str) -> Result<Duration> {
    let started = Instant::now();
    let status = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &env.database_url, "-c"])
        .arg(format!("\\copy ({query}) TO '/dev/null'"))
        .stdin(Stdio::null())
        .status()
        .await
        .context("running psql (is the PostgreSQL client installed?)")?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("psql \\copy failed: {status}");
    }
    Ok(elapsed)
}

/// Rows and bytes of COPY's text output, counted as it streams by.
async fn copy_size(env: &BenchEnv, query: &str) -> Result<(u64, u64)> {
    let mut child = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &env.database_url, "-c"])
        .arg(format!("\\copy ({query}) TO STDOUT"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running psql")?;
    let mut out = child.stdout.take().context("psql has no stdout")?;

    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut rows) = (0u64, 0u64);
    loop {
        let n = out.read(&mut buf).await.context("reading psql's output")?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let status = child.wait().await.context("waiting for psql")?;
    if !status.success() {
        bail!("psql \\copy to stdout failed: {status}");
    }
    Ok((rows, bytes))
}

fn print_copies(copies: &[CopyRun]) {
    println!("PostgreSQL COPY reference (psql \\copy … TO '/dev/null', best of 2)");
    let mut table = Table::new(&[
        "table", "rows", "text MB", "first s", "best s", "rows/s", "MB/s",
    ]);
    for c in copies {
        let secs = c.best.as_secs_f64();
        table.row(vec![
            c.table.to_owned(),
            c.rows.to_string(),
            format!("{:.1}", c.text_bytes as f64 / 1e6),
            format!("{:.3}", c.first.as_secs_f64()),
            format!("{secs:.3}"),
            format!("{:.0}", per_s(c.rows, secs)),
            format!("{:.1}", mb_per_s(c.text_bytes, secs)),
        ]);
    }
    let rows: u64 = copies.iter().map(|c| c.rows).sum();
    let bytes: u64 = copies.iter().map(|c| c.text_bytes).sum();
    let secs: f64 = copies.iter().map(|c| c.best.as_secs_f64()).sum();
    table.row(vec![
        "both".to_owned(),
        rows.to_string(),
        format!("{:.1}", bytes as f64 / 1e6),
        String::new(),
        format!("{secs:.3}"),
        format!("{:.0}", per_s(rows, secs)),
        format!("{:.1}", mb_per_s(bytes, secs)),
    ]);
    table.print();
    println!();
}

/// Starts the worker, places the order, waits for the request to be ready, reads
/// the worker's peak memory and stops it.
async fn export_through_worker(
    env: &BenchEnv,
    device: &Device,
    settings: &Settings,
) -> Result<ExportRun> {
    let logs = tempfile::tempdir().context("creating a temp dir for logs")?;
    let mut worker = Service::start(
        "insight worker",
        &["worker"],
        &[
            ("DATABASE_URL", env.database_url.clone()),
            ("REDIS_URL", env.redis_url.clone()),
            ("INSIGHT_REDIS_PREFIX", env.prefix.clone()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
            ("WORKER_POLL_INTERVAL", "50ms".to_owned()),
        ],
        logs.path(),
    )?;

    // Let it connect and settle, so that its idle footprint can be compared.
    tokio::time::sleep(Duration::from_secs(1)).await;
    worker.ensure_running()?;
    let idle = worker.memory()?;
    let cpu_idle = worker.cpu_seconds()?;

    let machine = MachineCpu::read()?;
    let request = place_order(env, device).await?;
    let ready = wait_until_ready(env, &mut worker, request.id, settings.timeout).await?;
    let machine_busy = machine.busy_percent_since()?;
    let peak = worker.memory()?;
    let cpu_seconds = worker.cpu_seconds()? - cpu_idle;
    let stopped = worker.stop().await?;

    let entries = env.store.entries(request.id).await?;
    let elapsed = (ready.ready_at.unwrap_or(ready.created_at) - ready.created_at)
        .to_std()
        .unwrap_or_default();
    stopped.report();
    Ok(ExportRun {
        rows: entries
            .iter()
            .map(|(_, e)| e.gps_events + e.bluetooth_contacts)
            .sum(),
        uncompressed: entries.iter().map(|(_, e)| e.uncompressed_size).sum(),
        compressed: entries.iter().map(|(_, e)| e.compressed_size).sum(),
        elapsed,
        cpu_seconds,
        machine_busy,
        idle_rss_kib: idle.rss_kib,
        peak_rss_kib: peak.peak_kib,
    })
}

async fn place_order(env: &BenchEnv, device: &Device) -> Result<RequestRecord> {
    let orders = Orders::new(
        env.pool.clone(),
        env.store.clone(),
        OrderSettings {
            helsenorge_expiry: Duration::from_secs(3600),
            fhi_expiry: Duration::from_secs(3600),
            max_queue: 10,
            owner_key: OwnerKey::new(b"bench-owner-key"),
        },
    );
    let order = Order {
        channel: Channel::Fhi,
        requester: Requester {
            phone: PhoneNumber::parse(&device.phone).context("the seeded phone number")?,
            person_name: "Benchmark".into(),
            person_id: None,
            person_organization: Some("insight benches".into()),
            legal_means: "performance test".into(),
        },
        window: TimeWindow::default(),
    };
    match orders.place(&order).await.context("placing the order")? {
        Placed::Accepted(request) => Ok(request),
        Placed::NotFound => bail!("the seeded phone number has no devices"),
    }
}

/// Polls the request every 50 ms, for at most `timeout`.
async fn wait_until_ready(
    env: &BenchEnv,
    worker: &mut Service,
    id: RequestId,
    timeout: Duration,
) -> Result<RequestRecord> {
    let polls = (timeout.as_millis() / POLL.as_millis()).max(1);
    for _ in 0..polls {
        let request = env
            .store
            .request(id)
            .await?
            .context("the request vanished")?;
        match request.status {
            Status::Ready => return Ok(request),
            Status::Failed => bail!("the export failed: {:?}", request.error),
            Status::Pending => {}
        }
        worker.ensure_running()?;
        tokio::time::sleep(POLL).await;
    }
    bail!("the export was not ready within {timeout:?} (EXPORT_TIMEOUT_SECS)")
}

fn print_export(export: &ExportRun, copies: &[CopyRun]) {
    let secs = export.elapsed.as_secs_f64();
    let rows_per_s = per_s(export.rows, secs);
    let copy_rows: u64 = copies.iter().map(|c| c.rows).sum();
    let copy_secs: f64 = copies.iter().map(|c| c.best.as_secs_f64()).sum();
    let copy_rows_per_s = per_s(copy_rows, copy_secs);

    println!(
        "\nexport through `insight worker` (level {DEFLATE_LEVEL}, {} KiB chunks)",
        DEFAULT_CHUNK_SIZE / 1024
    );
    let mut table = Table::new(&["measure", "value"]);
    let mut add = |name: &str, value: String| table.row(vec![name.to_owned(), value]);
    add("rows", export.rows.to_string());
    add("seconds (ready_at - created_at)", format!("{secs:.3}"));
    add("rows/s", format!("{rows_per_s:.0}"));
    add("worker CPU seconds", format!("{:.3}", export.cpu_seconds));
    add("all cores busy %", format!("{:.0}", export.machine_busy));
    add(
        "JSON MB",
        format!("{:.1}", export.uncompressed as f64 / 1e6),
    );
    add(
        "deflated MB",
        format!("{:.1}", export.compressed as f64 / 1e6),
    );
    add(
        "JSON MB/s in",
        format!("{:.1}", mb_per_s(export.uncompressed, secs)),
    );
    add(
        "deflated MB/s out",
        format!("{:.1}", mb_per_s(export.compressed, secs)),
    );
    add(
        "compression ratio",
        format!(
            "{:.2}",
            export.uncompressed as f64 / export.compressed.max(1) as f64
        ),
    );
    add(
        "worker RSS idle MiB",
        format!("{:.1}", kib_to_mib(export.idle_rss_kib)),
    );
    add(
        "worker peak RSS MiB (VmHWM)",
        format!("{:.1}", kib_to_mib(export.peak_rss_kib)),
    );
    add("COPY rows/s (both tables)", format!("{copy_rows_per_s:.0}"));
    add(
        "export/COPY rows/s",
        format!("{:.2}", rows_per_s / copy_rows_per_s.max(1e-9)),
    );
    table.print();
    println!(
        "targets: peak RSS < 64 MiB: {}; export >= 0.5 x COPY rows/s: {}\n",
        verdict(kib_to_mib(export.peak_rss_kib) < 64.0),
        verdict(rows_per_s >= 0.5 * copy_rows_per_s)
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The deflate level tables: first compression alone on one realistic document,
/// then the worker's whole loop on the full device at each level.
async fn deflate_levels(
    env: &BenchEnv,
    device: &Device,
    settings: &Settings,
    copy_rows_per_s: f64,
) -> Result<()> {
    let sample = Sample::load(env, device, settings).await?;
    let (encode_secs, json) = sample.encode(settings.deflate_repeats)?;
    let rows = sample.rows();
    println!(
        "deflate levels: {rows} rows, {:.1} MB of JSON ({} bytes per row), fed in {} KiB \
         batches, {} KiB chunks, best of {}",
        json.len() as f64 / 1e6,
        json.len() / rows.max(1) as usize,
        BATCH_SIZE / 1024,
        DEFAULT_CHUNK_SIZE / 1024,
        settings.deflate_repeats
    );
    println!(
        "JSON encoding alone (DocumentWriter, rows in memory): {:.0} rows/s, {:.1} MB/s",
        per_s(rows, encode_secs),
        mb_per_s(json.len() as u64, encode_secs)
    );

    let mut table = Table::new(&[
        "level",
        "MB/s in",
        "ratio",
        "MiB per 1M rows",
        "rows/s",
        "rows/s vs COPY",
    ]);
    for level in LEVELS {
        let (secs, compressed) = best_deflate(&json, level, settings.deflate_repeats)?;
        let rows_per_s = per_s(rows, secs);
        table.row(vec![
            level_name(level),
            format!("{:.1}", mb_per_s(json.len() as u64, secs)),
            format!("{:.2}", json.len() as f64 / compressed.max(1) as f64),
            format!("{:.1}", common::mib(compressed) * 1e6 / rows.max(1) as f64),
            format!("{rows_per_s:.0}"),
            format!("{:.2}", rows_per_s / copy_rows_per_s.max(1e-9)),
        ]);
    }
    table.print();
    println!(
        "(rows/s vs COPY: how much faster the compressor alone is than PostgreSQL's COPY of \
         the same rows; decoding and JSON encoding need the rest of the time)\n"
    );

    pipeline_levels(env, device, copy_rows_per_s).await
}

fn level_name(level: u32) -> String {
    if level == DEFLATE_LEVEL {
        format!("{level} (current)")
    } else {
        level.to_string()
    }
}

/// The first rows of the device, held in memory so that encoding can be timed
/// without PostgreSQL.
struct Sample {
    uuid: Uuid,
    info: Option<DeviceInfo>,
    gps: Vec<GpsEvent>,
    contacts: Vec<BluetoothContact>,
}

impl Sample {
    async fn load(env: &BenchEnv, device: &Device, settings: &Settings) -> Result<Self> {
        let info = sqlx::query_as(
            "SELECT platform, os_version, app_version, model, created_at FROM devices WHERE uuid = $1",
        )
        .bind(device.uuid)
        .fetch_optional(&env.pool)
        .await?;
        let gps = sqlx::query_as(&format!(
            "SELECT {GPS_COLUMNS} FROM gps_events WHERE uuid = $1 \
             ORDER BY time_from, time_to LIMIT $2"
        ))
        .bind(device.uuid)
        .bind(settings.deflate_gps_rows)
        .fetch_all(&env.pool)
        .await?;
        let contacts = sqlx::query_as(&format!(
            "SELECT {BLUETOOTH_COLUMNS} FROM bluetooth_events WHERE uuid = $1 \
             ORDER BY paired_time, rssi, tx_power LIMIT $2"
        ))
        .bind(device.uuid)
        .bind(settings.deflate_bluetooth_rows)
        .fetch_all(&env.pool)
        .await?;
        Ok(Self {
            uuid: device.uuid,
            info,
            gps,
            contacts,
        })
    }

    fn rows(&self) -> u64 {
        (self.gps.len() + self.contacts.len()) as u64
    }

    /// Encodes the document as the worker does; answers the best time and the JSON.
    fn encode(&self, repeats: u32) -> Result<(f64, Vec<u8>)> {
        let mut best = f64::INFINITY;
        let mut batches = Vec::new();
        for _ in 0..repeats {
            batches.clear();
            let started = Instant::now();
            let mut writer = DocumentWriter::begin(self.uuid, self.info.as_ref())?;
            for event in &self.gps {
                writer.gps_event(event)?;
                batches.extend(writer.take_batch());
            }
            for contact in &self.contacts {
                writer.bluetooth_contact(contact)?;
                batches.extend(writer.take_batch());
            }
            batches.push(writer.finish().last_batch);
            best = best.min(started.elapsed().as_secs_f64());
        }
        Ok((best, batches.concat()))
    }
}

/// The best time of `repeats` deflations of `json` at `level`, and the compressed
/// size. Chunks are dropped as they fill, as the worker hands them to Redis.
fn best_deflate(json: &[u8], level: u32, repeats: u32) -> Result<(f64, u64)> {
    let mut best = f64::INFINITY;
    let mut compressed = 0;
    for _ in 0..repeats {
        let started = Instant::now();
        let mut stream = ChunkedDeflate::new(DEFAULT_CHUNK_SIZE, level);
        for part in json.chunks(BATCH_SIZE) {
            stream.write(part)?;
            while stream.take_chunk().is_some() {}
        }
        let (_, summary) = stream.finish()?;
        best = best.min(started.elapsed().as_secs_f64());
        compressed = summary.compressed_size;
    }
    Ok((best, compressed))
}

/// The worker's loop in this process, at each level, on the whole device: rows
/// streamed from PostgreSQL, encoded and deflated; chunks dropped instead of
/// stored. It shows what a level costs end to end, without Redis or the child.
/// The CPU columns tell a busy core from a waiting one: this process's CPU time
/// is the worker's share, the rest of the busy cores mostly PostgreSQL's.
async fn pipeline_levels(env: &BenchEnv, device: &Device, copy_rows_per_s: f64) -> Result<()> {
    println!(
        "worker pipeline in this process (PostgreSQL rows -> JSON -> deflate, no Redis), whole device"
    );
    let mut table = Table::new(&[
        "level",
        "seconds",
        "rows/s",
        "export/COPY rows/s",
        "ratio",
        "own CPU s",
        "all cores busy %",
    ]);
    let me = std::process::id();
    for level in LEVELS {
        let cpu_before = common::cpu_seconds_of(me)?;
        let machine = MachineCpu::read()?;
        let (secs, rows, json, compressed) = pipeline(env, device, level).await?;
        let busy = machine.busy_percent_since()?;
        let cpu = common::cpu_seconds_of(me)? - cpu_before;
        let rows_per_s = per_s(rows, secs);
        table.row(vec![
            level_name(level),
            format!("{secs:.3}"),
            format!("{rows_per_s:.0}"),
            format!("{:.2}", rows_per_s / copy_rows_per_s.max(1e-9)),
            format!("{:.2}", json as f64 / compressed.max(1) as f64),
            format!("{cpu:.2}"),
            format!("{busy:.0}"),
        ]);
    }
    table.print();
    Ok(())
}

/// One pass, as `export::job` does it: seconds, rows, JSON bytes and compressed
/// bytes.
async fn pipeline(env: &BenchEnv, device: &Device, level: u32) -> Result<(f64, u64, u64, u64)> {
    let mut conn = env.pool.acquire().await?;
    let started = Instant::now();
    let info = rows::device_info(&mut conn, device.uuid).await?;
    let mut doc = DocumentWriter::begin(device.uuid, info.as_ref())?;
    let mut deflate = BackgroundDeflate::new(DEFAULT_CHUNK_SIZE, level);

    let mut gps = rows::gps_events(&mut conn, device.uuid, TimeWindow::default());
    while let Some(event) = gps.try_next().await? {
        doc.gps_event(&event)?;
        if let Some(batch) = doc.take_batch() {
            deflate.write(batch).await?;
        }
    }
    drop(gps);

    let mut contacts = rows::bluetooth_contacts(&mut conn, device.uuid, TimeWindow::default());
    while let Some(contact) = contacts.try_next().await? {
        doc.bluetooth_contact(&contact)?;
        if let Some(batch) = doc.take_batch() {
            deflate.write(batch).await?;
        }
    }
    drop(contacts);

    let finished = doc.finish();
    let (_, deflated) = deflate.finish(finished.last_batch).await?;
    let secs = started.elapsed().as_secs_f64();
    Ok((
        secs,
        finished.gps_events + finished.bluetooth_contacts,
        deflated.uncompressed_size,
        deflated.compressed_size,
    ))
}
