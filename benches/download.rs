//! End-to-end benchmark of downloading a ready archive, against nginx serving the
//! same bytes from a file.
//!
//! Run it with `cargo bench --bench download`. It creates its own database
//! (`insight_bench_<random>`, for the access log) and Redis key prefix
//! (`insight-bench-<random>`) and removes both at the end. nginx must be installed
//! (`apt-get install nginx-light`); without it the nginx rows are skipped.
//!
//! What it does and measures:
//!
//! 1. **Setup.** Two ready FHI requests are written straight through the public
//!    store API (`create_request`, `begin_attempt`, `store_chunk`, `record_entry`,
//!    `mark_ready`), without any source rows: each device document is a raw-deflate
//!    stream of stored blocks (level 0) over pseudo-random bytes, in 256 KiB chunks,
//!    with its true CRC-32 and sizes, so the zip is valid. The order's access-log
//!    row is written too, so that completed downloads are logged.
//! 2. **Single download.** `insight serve` runs as a child process; the large
//!    archive is downloaded with `curl` via `GET /fhi/fhi-egress/{id}`: once into a
//!    file (the warm-up, and the copy nginx serves; `unzip -tq` checks it), then
//!    `DOWNLOAD_REPEATS` times into `/dev/null`, the best kept. Every download's
//!    byte count must equal its `Content-Length`. Reported: MB/s; the server's RSS
//!    before, peak (`VmHWM`) and growth (target: growth under 32 MiB); CPU seconds
//!    per GB served of the server and of Redis.
//! 3. **Concurrency.** A fresh `insight serve` (so that its `VmHWM` is this
//!    scenario's own); `DOWNLOAD_CLIENTS` clients, one connection each (tokio +
//!    reqwest in this process, bytes discarded), make `DOWNLOAD_CONCURRENT_TOTAL`
//!    downloads of the small archive between them. Reported: total MB/s, download
//!    times, failures, the server's peak RSS (target: under 512 MiB), and the CPU
//!    seconds of the server, of Redis and of the clients.
//! 4. **nginx reference.** nginx (`sendfile on`, one worker, config in a temp dir)
//!    on another port serves the saved files: the same curl download, best of
//!    `DOWNLOAD_REPEATS` (the ratio insight/nginx is printed; target: at least
//!    0.5), and the same concurrency scenario.
//! 5. **Access log.** Every complete download through insight must have left its
//!    `download` row; the count is checked.
//!
//! How to read it: the clients share the machine's two cores with the servers
//! (curl with the single downloads, this process with the concurrent ones), so
//! the figures are loopback figures, not a network link's. When every core is
//! busy, throughput follows the CPU seconds per byte: compare the CPU columns of
//! insight (plus Redis, which it reads every byte from) with nginx's.
//!
//! Environment (defaults in brackets):
//!
//! - `DOWNLOAD_ARCHIVE_MIB` [1024]: size of the large archive's documents
//! - `DOWNLOAD_DEVICES` [4]: device documents in the large archive
//! - `DOWNLOAD_REPEATS` [2]: measured single downloads per server
//! - `DOWNLOAD_SMALL_MIB` [10]: size of the archive of the concurrency scenario
//! - `DOWNLOAD_CLIENTS` [500]: concurrent clients (connections)
//! - `DOWNLOAD_CONCURRENT_TOTAL` [1000]: downloads made by all clients together
//! - `DOWNLOAD_VERIFY` [1]: `0` skips `unzip -tq` on the saved archive
//! - `BENCH_POSTGRES_URL` [postgres://postgres@127.0.0.1:5432] (no database name),
//!   `BENCH_REDIS_URL` [redis://127.0.0.1:6379]
//!
//! MB is 10^6 bytes; MiB is 2^20 bytes. Figures are printed, never asserted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use insight::auth::DevKeyPair;
use insight::domain::{Channel, PhoneNumber, RequestId, TimeWindow};
use insight::export::DEFAULT_CHUNK_SIZE;
use insight::export::deflate::ChunkedDeflate;
use insight::orders::OwnerKey;
use insight::source::access_log::{self, Requester};
use insight::store::{Attempt, EntryRecord, Lease, NewRequest};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::task::JoinSet;
use uuid::Uuid;

use common::{
    BenchEnv, CpuMeter, CpuShares, MachineCpu, Memory, Service, Table, kib_to_mib, mb_per_s,
    setting,
};

/// Pseudo-random bytes are generated and deflated this much at a time.
const WRITE_BLOCK: usize = 1 << 20;
/// The longest any single download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

struct Settings {
    archive_mib: u64,
    devices: usize,
    repeats: u32,
    small_mib: u64,
    clients: usize,
    concurrent_total: usize,
    verify: bool,
}

impl Settings {
    fn from_env() -> Result<Self> {
        Ok(Self {
            archive_mib: setting("DOWNLOAD_ARCHIVE_MIB", 1024u64)?.max(1),
            devices: setting("DOWNLOAD_DEVICES", 4usize)?.max(1),
            repeats: setting("DOWNLOAD_REPEATS", 2u32)?.max(1),
            small_mib: setting("DOWNLOAD_SMALL_MIB", 10u64)?.max(1),
            clients: setting("DOWNLOAD_CLIENTS", 500usize)?.max(1),
            concurrent_total: setting("DOWNLOAD_CONCURRENT_TOTAL", 1000usize)?.max(1),
            verify: setting("DOWNLOAD_VERIFY", 1u8)? != 0,
        })
    }
}

/// What the API child needs, and where files go.
struct Fixture {
    dir: tempfile::TempDir,
    api_key: String,
    jwks: PathBuf,
}

/// One measured single download.
struct Download {
    bytes: u64,
    seconds: f64,
}

/// A server's memory in one scenario.
struct ServerFigures {
    before: Memory,
    after: Memory,
}

/// The outcome of the concurrency scenario against one server.
struct Concurrent {
    /// How busy all cores were (server, these clients, the rest), in percent.
    machine_busy: f64,
    cpu: CpuShares,
    downloads: usize,
    failures: Vec<String>,
    bytes: u64,
    seconds: f64,
    median: Duration,
    slowest: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    BenchEnv::run(async |env| run(env, &settings).await).await
}

async fn run(env: &BenchEnv, settings: &Settings) -> Result<()> {
    println!("insight download benchmark");
    println!("binary: {}", common::INSIGHT_BIN);
    println!("load average at the start: {}", common::load_average());
    let fixture = fixture()?;

    let started = Instant::now();
    let large = ready_archive(env, settings.archive_mib << 20, settings.devices).await?;
    let small = ready_archive(env, settings.small_mib << 20, 1).await?;
    println!(
        "setup: stored {} MiB in {} documents and {} MiB in 1 document in Redis in {:.1} s\n",
        settings.archive_mib,
        settings.devices,
        settings.small_mib,
        started.elapsed().as_secs_f64()
    );

    let single = single_download(env, &fixture, settings, large, small).await?;
    let concurrent = concurrent_downloads(env, &fixture, settings, small, single.completed).await?;
    let nginx = nginx_reference(&fixture, settings).await?;

    print_single(settings, &single, nginx.as_ref());
    print_concurrent(settings, &concurrent, nginx.as_ref().map(|n| &n.concurrent));
    print_access_log(env, &single, &concurrent).await
}

fn fixture() -> Result<Fixture> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let keys = DevKeyPair::generate("bench-key").context("generating a dev key pair")?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, keys.jwks_json()).context("writing the JWKS")?;
    // nginx's document root: the archives are saved here.
    std::fs::create_dir_all(dir.path().join("www")).context("creating the www dir")?;
    Ok(Fixture {
        api_key: format!("bench-{}", Uuid::new_v4().simple()),
        jwks,
        dir,
    })
}

/// Stores a ready FHI request whose documents hold `bytes` bytes in all, and the
/// access-log row of its order.
async fn ready_archive(env: &BenchEnv, bytes: u64, devices: usize) -> Result<RequestId> {
    let phone = PhoneNumber::parse("+4790000000").context("phone number")?;
    let now = Utc::now();
    let request = NewRequest {
        id: RequestId::new(),
        channel: Channel::Fhi,
        owner_hash: OwnerKey::new(b"bench-owner-key").hash(&phone),
        devices: (0..devices).map(|_| Uuid::new_v4()).collect(),
        window: TimeWindow::default(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(2),
    };
    env.store.create_request(&request).await?;
    let lease = match env.store.begin_attempt(request.id, 1).await? {
        Attempt::Started { lease, .. } => lease,
        _ => bail!("could not start an attempt at the new request"),
    };

    let per_device = bytes / devices as u64;
    for (index, &uuid) in request.devices.iter().enumerate() {
        let size = if index + 1 == devices {
            bytes - per_device * (devices as u64 - 1)
        } else {
            per_device
        };
        let entry = store_document(&lease, index, uuid, size).await?;
        lease.record_entry(index, &entry).await?;
    }
    lease.mark_ready(Utc::now()).await?;

    let requester = Requester {
        phone,
        person_name: "Benchmark".into(),
        person_id: None,
        person_organization: Some("insight benches".into()),
        legal_means: "performance test".into(),
    };
    access_log::log_order(&env.pool, request.id, Channel::Fhi, &requester)
        .await
        .context("writing the order's access-log row")?;
    Ok(request.id)
}

/// Stores one document of `size` pseudo-random bytes as stored deflate blocks.
/// Random bytes keep Redis and the network from seeing anything compressible.
async fn store_document(lease: &Lease, index: usize, uuid: Uuid, size: u64) -> Result<EntryRecord> {
    let mut rng = StdRng::seed_from_u64(index as u64);
    let mut stream = ChunkedDeflate::new(DEFAULT_CHUNK_SIZE, 0);
    let mut block = vec![0u8; WRITE_BLOCK];
    let mut chunks = 0u64;

    let mut left = size;
    while left > 0 {
        let n = left.min(WRITE_BLOCK as u64) as usize;
        rng.fill_bytes(&mut block[..n]);
        stream.write(&block[..n])?;
        while let Some(chunk) = stream.take_chunk() {
            lease.store_chunk(index, chunks, chunk).await?;
            chunks += 1;
        }
        left -= n as u64;
    }

    let (rest, deflated) = stream.finish()?;
    for chunk in rest {
        lease.store_chunk(index, chunks, chunk).await?;
        chunks += 1;
    }
    Ok(EntryRecord {
        uuid,
        crc32: deflated.crc32,
        compressed_size: deflated.compressed_size,
        uncompressed_size: deflated.uncompressed_size,
        chunk_size: DEFAULT_CHUNK_SIZE as u64,
        chunks,
        gps_events: 0,
        bluetooth_contacts: 0,
    })
}

/// Starts `insight serve` on a free port, allowed as many downloads at once as the
/// benchmark has clients, and waits until `/readyz` answers 200.
async fn start_api(
    env: &BenchEnv,
    fixture: &Fixture,
    settings: &Settings,
    name: &str,
) -> Result<(Service, String)> {
    let port = common::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut api = Service::start(
        name,
        &["serve"],
        &[
            ("INSIGHT_LISTEN", format!("127.0.0.1:{port}")),
            ("INSIGHT_API_KEY", fixture.api_key.clone()),
            ("HELSENORGE_JWKS", fixture.jwks.display().to_string()),
            ("DATABASE_URL", env.database_url.clone()),
            ("REDIS_URL", env.redis_url.clone()),
            ("INSIGHT_REDIS_PREFIX", env.prefix.clone()),
            ("INSIGHT_MAX_DOWNLOADS", settings.clients.max(1).to_string()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        fixture.dir.path(),
    )?;
    wait_for_ok(&mut api, &format!("{base}/readyz")).await?;
    Ok((api, base))
}

/// Polls `url` every 100 ms for at most 20 s.
async fn wait_for_ok(service: &mut Service, url: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        service.ensure_running()?;
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{} did not answer {url} within 20 s", service.name)
}

/// Downloads with curl, into `out` or `/dev/null`; checks the status and that the
/// bytes received equal `Content-Length`.
async fn curl(url: &str, api_key: &str, out: Option<&Path>) -> Result<Download> {
    let target = out.map_or_else(|| "/dev/null".to_owned(), |p| p.display().to_string());
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time"])
        .arg(DOWNLOAD_TIMEOUT.as_secs().to_string())
        .args(["-o", &target, "-H", &format!("Api-Key: {api_key}"), "-w"])
        .arg("%{http_code} %{size_download} %{time_total} %header{content-length}")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "curl {url} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let fields: Vec<&str> = text.split_whitespace().collect();
    let [status, size, seconds, length] = fields[..] else {
        bail!("unexpected curl output {text:?}");
    };
    if status != "200" {
        bail!("GET {url} answered {status}");
    }
    let bytes: u64 = size.parse().context("curl's size_download")?;
    if length.parse::<u64>().ok() != Some(bytes) {
        bail!("GET {url}: received {bytes} bytes, Content-Length says {length}");
    }
    Ok(Download {
        bytes,
        seconds: seconds.parse().context("curl's time_total")?,
    })
}

/// The fastest of `repeats` curl downloads into `/dev/null`.
async fn best_download(url: &str, api_key: &str, repeats: u32) -> Result<Download> {
    let mut best: Option<Download> = None;
    for _ in 0..repeats {
        let run = curl(url, api_key, None).await?;
        if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
            best = Some(run);
        }
    }
    best.context("no download ran")
}

/// Runs `unzip -tq`, which reads every entry and checks its CRC-32.
async fn unzip_test(path: &Path) -> Result<()> {
    let output = tokio::process::Command::new("unzip")
        .arg("-tq")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running unzip (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "unzip -tq rejected the archive: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

struct Single {
    /// Complete downloads served, each of which must have its access-log row.
    completed: u64,
    /// The best of the measured downloads.
    download: Download,
    /// CPU time over all the measured downloads (curl's own is not counted).
    cpu: CpuShares,
    server: ServerFigures,
}

/// Scenario 1: the large archive, one client at a time. Also saves both archives
/// as files for nginx.
async fn single_download(
    env: &BenchEnv,
    fixture: &Fixture,
    settings: &Settings,
    large: RequestId,
    small: RequestId,
) -> Result<Single> {
    let (api, base) = start_api(env, fixture, settings, "insight serve (single)").await?;
    let before = api.memory()?;

    // The first download warms Redis and the page cache, and keeps the bytes.
    let url = format!("{base}/fhi/fhi-egress/{large}");
    let saved = curl(&url, &fixture.api_key, Some(&file_of(fixture, "large.zip"))).await?;
    println!(
        "saved the large archive: {} bytes ({:.0} MB/s into a file)",
        saved.bytes,
        mb_per_s(saved.bytes, saved.seconds)
    );
    if settings.verify {
        unzip_test(&file_of(fixture, "large.zip")).await?;
        println!("unzip -tq: the archive is valid");
    }

    let meter = CpuMeter::start(api.pid(), env.redis_pid)?;
    let download = best_download(&url, &fixture.api_key, settings.repeats).await?;
    let cpu = meter.stop()?;
    let after = api.memory()?;

    let small_url = format!("{base}/fhi/fhi-egress/{small}");
    curl(
        &small_url,
        &fixture.api_key,
        Some(&file_of(fixture, "small.zip")),
    )
    .await?;

    // Every complete download so far: the saved copy, the measured ones, the small.
    let completed = u64::from(settings.repeats) + 2;
    wait_for_logged(env, completed).await?;
    api.stop().await?.report();

    Ok(Single {
        completed,
        download,
        cpu,
        server: ServerFigures { before, after },
    })
}

fn file_of(fixture: &Fixture, name: &str) -> PathBuf {
    fixture.dir.path().join("www").join(name)
}

struct ConcurrentRun {
    result: Concurrent,
    server: ServerFigures,
}

/// Scenario 2: many clients at once, on a fresh server.
async fn concurrent_downloads(
    env: &BenchEnv,
    fixture: &Fixture,
    settings: &Settings,
    small: RequestId,
    completed_before: u64,
) -> Result<ConcurrentRun> {
    let (api, base) = start_api(env, fixture, settings, "insight serve (concurrent)").await?;
    let before = api.memory()?;

    let url = format!("{base}/fhi/fhi-egress/{small}");
    let meter = CpuMeter::start(api.pid(), env.redis_pid)?;
    let mut result = many_clients(&url, &fixture.api_key, settings).await?;
    result.cpu = meter.stop()?;
    let after = api.memory()?;
    let succeeded = (result.downloads - result.failures.len()) as u64;
    wait_for_logged(env, completed_before + succeeded).await?;
    api.stop().await?.report();

    Ok(ConcurrentRun {
        result,
        server: ServerFigures { before, after },
    })
}

/// `clients` tasks, each with its own connection, share `concurrent_total`
/// downloads; all start together.
async fn many_clients(url: &str, api_key: &str, settings: &Settings) -> Result<Concurrent> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.clients)
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let start = Arc::new(tokio::sync::Barrier::new(settings.clients));
    let mut tasks = JoinSet::new();
    for client in 0..settings.clients {
        let share = settings.concurrent_total / settings.clients
            + usize::from(client < settings.concurrent_total % settings.clients);
        let (http, url, key, start) = (
            http.clone(),
            url.to_owned(),
            api_key.to_owned(),
            start.clone(),
        );
        tasks.spawn(async move {
            start.wait().await;
            let mut results = Vec::with_capacity(share);
            for _ in 0..share {
                results.push(fetch(&http, &url, &key).await);
            }
            results
        });
    }

    let machine = MachineCpu::read()?;
    let started = Instant::now();
    let mut outcome = Concurrent {
        machine_busy: 0.0,
        cpu: CpuShares::default(),
        downloads: 0,
        failures: Vec::new(),
        bytes: 0,
        seconds: 0.0,
        median: Duration::ZERO,
        slowest: Duration::ZERO,
    };
    let mut times = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for result in joined.context("a client task panicked")? {
            outcome.downloads += 1;
            match result {
                Ok((bytes, took)) => {
                    outcome.bytes += bytes;
                    times.push(took);
                }
                Err(e) => outcome.failures.push(format!("{e:#}")),
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.machine_busy = machine.busy_percent_since()?;
    times.sort_unstable();
    outcome.median = times.get(times.len() / 2).copied().unwrap_or_default();
    outcome.slowest = times.last().copied().unwrap_or_default();
    Ok(outcome)
}

/// One download whose body is counted and dropped; fails unless it is a `200`
/// whose length matches `Content-Length`.
async fn fetch(http: &reqwest::Client, url: &str, api_key: &str) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let mut response = http
        .get(url)
        .header("Api-Key", api_key)
        .send()
        .await
        .context("sending the request")?;
    if response.status() != reqwest::StatusCode::OK {
        bail!("answered {}", response.status());
    }
    let expected = response.content_length().context("no Content-Length")?;
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.context("reading the body")? {
        bytes += chunk.len() as u64;
    }
    if bytes != expected {
        bail!("received {bytes} bytes, Content-Length says {expected}");
    }
    Ok((bytes, started.elapsed()))
}

struct NginxFigures {
    single: Download,
    single_cpu: CpuShares,
    concurrent: Concurrent,
}

/// Scenario 3: nginx serving the saved archives; `None` when nginx is missing.
async fn nginx_reference(fixture: &Fixture, settings: &Settings) -> Result<Option<NginxFigures>> {
    let Some(nginx) = find_nginx() else {
        println!("nginx not found: skipping the reference (apt-get install nginx-light)");
        return Ok(None);
    };
    let port = common::free_port()?;
    let conf = write_nginx_conf(fixture, port)?;
    let mut server = NginxProcess::start(&nginx, &conf, fixture.dir.path())?;
    server.wait_until_serving(port).await?;

    // nginx is stopped whether or not the measurements succeed.
    let base = format!("http://127.0.0.1:{port}");
    let measured = nginx_measure(&base, fixture, settings, server.pid).await;
    server.stop().await?;
    measured.map(Some)
}

async fn nginx_measure(
    base: &str,
    fixture: &Fixture,
    settings: &Settings,
    pid: u32,
) -> Result<NginxFigures> {
    // The first download reads the file into the page cache, as insight's first
    // download warmed Redis.
    let large = format!("{base}/large.zip");
    curl(&large, &fixture.api_key, None).await?;

    let meter = CpuMeter::start(pid, None)?;
    let single = best_download(&large, &fixture.api_key, settings.repeats).await?;
    let single_cpu = meter.stop()?;

    let meter = CpuMeter::start(pid, None)?;
    let mut concurrent =
        many_clients(&format!("{base}/small.zip"), &fixture.api_key, settings).await?;
    concurrent.cpu = meter.stop()?;
    Ok(NginxFigures {
        single,
        single_cpu,
        concurrent,
    })
}

fn find_nginx() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A minimal static-file server on 127.0.0.1: all its files stay in the temp dir.
fn write_nginx_conf(fixture: &Fixture, port: u16) -> Result<PathBuf> {
    let dir = fixture.dir.path().display().to_string();
    let conf = format!(
        "daemon off;
user root;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ application/zip zip; }}
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
    }}
}}
"
    );
    std::fs::create_dir_all(fixture.dir.path().join("nginx-tmp")).context("nginx temp dir")?;
    let path = fixture.dir.path().join("nginx.conf");
    std::fs::write(&path, conf).context("writing nginx.conf")?;
    Ok(path)
}

/// nginx in the foreground (`daemon off`), stopped with SIGTERM.
struct NginxProcess {
    child: tokio::process::Child,
    /// The master's; its worker is its child.
    pid: u32,
}

impl NginxProcess {
    fn start(nginx: &Path, conf: &Path, dir: &Path) -> Result<Self> {
        let child = tokio::process::Command::new(nginx)
            .arg("-c")
            .arg(conf)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let pid = child.id().context("nginx has no pid")?;
        Ok(Self { child, pid })
    }

    /// Polls the port every 100 ms for at most 10 s.
    async fn wait_until_serving(&mut self, port: u16) -> Result<()> {
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                bail!("nginx exited early: {status}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("nginx did not listen on port {port} within 10 s")
    }

    async fn stop(mut self) -> Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.context("killing nginx")?;
        }
        Ok(())
    }
}

fn print_single(settings: &Settings, single: &Single, nginx: Option<&NginxFigures>) {
    let insight_rate = mb_per_s(single.download.bytes, single.download.seconds);
    let server = &single.server;
    let growth_kib = server.after.peak_kib.saturating_sub(server.before.rss_kib);
    // CPU was counted over all the measured downloads.
    let gb = single.download.bytes as f64 * f64::from(settings.repeats) / 1e9;

    println!(
        "\nsingle download of {:.1} MiB (curl; MB/s of the best of {} runs)",
        common::mib(single.download.bytes),
        settings.repeats
    );
    let mut table = Table::new(&[
        "server",
        "MB/s",
        "seconds",
        "RSS before MiB",
        "peak RSS MiB",
        "growth MiB",
        "server CPU s/GB",
        "Redis CPU s/GB",
    ]);
    table.row(vec![
        "insight serve".to_owned(),
        format!("{insight_rate:.0}"),
        format!("{:.2}", single.download.seconds),
        format!("{:.1}", kib_to_mib(server.before.rss_kib)),
        format!("{:.1}", kib_to_mib(server.after.peak_kib)),
        format!("{:.1}", kib_to_mib(growth_kib)),
        format!("{:.2}", single.cpu.server / gb),
        per_gb(single.cpu.redis, gb),
    ]);
    if let Some(n) = nginx {
        table.row(vec![
            "nginx (sendfile)".to_owned(),
            format!("{:.0}", mb_per_s(n.single.bytes, n.single.seconds)),
            format!("{:.2}", n.single.seconds),
            String::new(),
            String::new(),
            String::new(),
            format!("{:.2}", n.single_cpu.server / gb),
            String::new(),
        ]);
    }
    table.print();

    let growth_met = kib_to_mib(growth_kib) < 32.0;
    match nginx {
        Some(n) => {
            let ratio = insight_rate / mb_per_s(n.single.bytes, n.single.seconds).max(1e-9);
            println!(
                "insight/nginx: {ratio:.2}; targets: ratio >= 0.5: {}; RSS growth < 32 MiB: {}",
                verdict(ratio >= 0.5),
                verdict(growth_met)
            );
        }
        None => println!("targets: RSS growth < 32 MiB: {}", verdict(growth_met)),
    }
}

fn per_gb(seconds: Option<f64>, gb: f64) -> String {
    seconds.map_or_else(|| "n/a".to_owned(), |s| format!("{:.2}", s / gb))
}

fn print_concurrent(settings: &Settings, run: &ConcurrentRun, nginx: Option<&Concurrent>) {
    println!(
        "\n{} clients (one connection each), {} downloads of the {} MiB archive in all",
        settings.clients, settings.concurrent_total, settings.small_mib
    );
    let mut table = Table::new(&[
        "server",
        "downloads",
        "failures",
        "MB/s total",
        "seconds",
        "median s",
        "slowest s",
        "peak RSS MiB",
        "server CPU s",
        "Redis CPU s",
        "client CPU s",
        "all cores busy %",
    ]);
    let row = |name: &str, c: &Concurrent, peak: String| {
        vec![
            name.to_owned(),
            c.downloads.to_string(),
            c.failures.len().to_string(),
            format!("{:.0}", mb_per_s(c.bytes, c.seconds)),
            format!("{:.2}", c.seconds),
            format!("{:.2}", c.median.as_secs_f64()),
            format!("{:.2}", c.slowest.as_secs_f64()),
            peak,
            format!("{:.2}", c.cpu.server),
            c.cpu.redis.map_or_else(String::new, |s| format!("{s:.2}")),
            format!("{:.2}", c.cpu.clients),
            format!("{:.0}", c.machine_busy),
        ]
    };
    table.row(row(
        "insight serve",
        &run.result,
        format!("{:.1}", kib_to_mib(run.server.after.peak_kib)),
    ));
    if let Some(n) = nginx {
        table.row(row("nginx (sendfile)", n, String::new()));
    }
    table.print();
    println!(
        "insight serve RSS before: {:.1} MiB; target: peak RSS < 512 MiB: {}; failures: {}",
        kib_to_mib(run.server.before.rss_kib),
        verdict(kib_to_mib(run.server.after.peak_kib) < 512.0),
        if run.result.failures.is_empty() {
            "none"
        } else {
            "see below"
        }
    );
    for failure in run.result.failures.iter().take(5) {
        println!("  failure: {failure}");
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Access-log rows of completed downloads.
async fn logged_downloads(env: &BenchEnv) -> Result<u64> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM access_log WHERE action = 'download'")
            .fetch_one(&env.pool)
            .await
            .context("counting access-log rows")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The server logs a download just after its last byte; waits (at most 5 s) for
/// `expected` rows before the server is stopped, so that none is cut off.
async fn wait_for_logged(env: &BenchEnv, expected: u64) -> Result<u64> {
    let mut logged = 0;
    for _ in 0..50 {
        logged = logged_downloads(env).await?;
        if logged >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(logged)
}

async fn print_access_log(
    env: &BenchEnv,
    single: &Single,
    concurrent: &ConcurrentRun,
) -> Result<()> {
    let run = &concurrent.result;
    let completed = single.completed + (run.downloads - run.failures.len()) as u64;
    let logged = logged_downloads(env).await?;
    println!(
        "\naccess log: {logged} download rows for {completed} complete downloads through insight{}",
        if logged == completed {
            ""
        } else {
            " (MISMATCH)"
        }
    );
    Ok(())
}
