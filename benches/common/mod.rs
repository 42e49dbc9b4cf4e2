//! Shared by the end-to-end benchmarks (`benches/export.rs`, `benches/download.rs`):
//!
//! - [`BenchEnv`]: a private PostgreSQL database (`insight_bench_<random>`) and a
//!   private Redis key prefix (`insight-bench-<random>`), both removed by
//!   [`BenchEnv::cleanup`].
//! - [`Service`]: the built `insight` binary run as a child process, with its memory
//!   read from `/proc` and a SIGTERM to stop it.
//! - Small helpers: settings from the environment, free ports, rates and tables.
//!
//! Both benchmarks connect to `BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`, a server URL without a database name) and
//! `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fred::prelude::*;
use insight::store::Store;
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// The `insight` binary cargo built for this benchmark.
pub const INSIGHT_BIN: &str = env!("CARGO_BIN_EXE_insight");

/// How long a stopped child may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A setting from the environment, or its default when unset.
pub fn setting<T>(name: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw:?} is not valid: {e}")),
        Err(_) => Ok(default),
    }
}

pub fn postgres_base() -> String {
    std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

pub fn redis_url() -> String {
    std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One benchmark run's private database and key space.
pub struct BenchEnv {
    pub database_name: String,
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub pool: PgPool,
    pub store: Store,
    /// Redis's own process, when it runs on this machine, to count its CPU time.
    pub redis_pid: Option<u32>,
}

impl BenchEnv {
    /// Creates and migrates the database and connects to both stores.
    async fn create() -> Result<Self> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let database_name = format!("insight_bench_{}", &tag[..12]);
        let database_url = format!("{}/{database_name}", postgres_base());
        let prefix = format!("insight-bench-{}", &tag[..12]);
        let redis_url = redis_url();

        insight::source::migrate(&database_url)
            .await
            .with_context(|| format!("creating the bench database {database_name}"))?;
        let pool = insight::source::connect(&database_url, 4)
            .await
            .context("connecting to the bench database")?;
        let store = Store::connect(&redis_url, &prefix, 4)
            .await
            .with_context(|| format!("connecting to Redis at {redis_url}"))?;
        let redis_pid = redis_pid(&redis_url).await?;

        Ok(Self {
            database_name,
            database_url,
            redis_url,
            prefix,
            pool,
            store,
            redis_pid,
        })
    }

    /// Runs `bench` in a fresh environment and cleans up whatever happened; the
    /// benchmark's own error is the one reported.
    pub async fn run(bench: impl AsyncFnOnce(&BenchEnv) -> Result<()>) -> Result<()> {
        let env = Self::create().await?;
        let outcome = bench(&env).await;
        let cleaned = env.cleanup().await;
        outcome?;
        cleaned
    }

    /// Drops the database and deletes every key under the prefix. Both steps are
    /// tried even when the first fails.
    async fn cleanup(self) -> Result<()> {
        self.pool.close().await;
        self.store.close().await;

        let database = drop_database(&self.database_name).await;
        let keys = delete_keys(&self.redis_url, &self.prefix).await;
        println!("\nload average at the end: {}", load_average());
        println!(
            "cleanup: dropped database {} and {} Redis keys under {}:*",
            self.database_name,
            keys.as_ref().map_or(0, |n| *n),
            self.prefix
        );
        database?;
        keys.map(|_| ())
    }
}

async fn drop_database(name: &str) -> Result<()> {
    let admin = insight::source::connect(&format!("{}/postgres", postgres_base()), 1)
        .await
        .context("connecting to the postgres database to drop the bench database")?;
    // FORCE ends any connection a killed child may have left behind.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .with_context(|| format!("dropping {name}"))?;
    admin.close().await;
    Ok(())
}

/// A plain Redis client, for what the store does not offer.
async fn raw_redis(url: &str) -> Result<Client> {
    let config = Config::from_url(url).context("REDIS url")?;
    let client = Builder::from_config(config)
        .build()
        .context("building a Redis client")?;
    client.init().await.context("connecting to Redis")?;
    Ok(client)
}

/// Redis's `process_id`, if that process is visible here (Redis on this machine).
async fn redis_pid(url: &str) -> Result<Option<u32>> {
    let client = raw_redis(url).await?;
    let info: String = client
        .info(Some(fred::types::InfoKind::Server))
        .await
        .context("INFO server")?;
    let _ = client.quit().await;
    let pid = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("process_id:"))
        .and_then(|pid| pid.parse().ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}/stat")).exists());
    Ok(pid)
}

/// Deletes `prefix:*`; answers how many keys went. The prefix is random and ours
/// alone, so `KEYS` over it is safe here.
async fn delete_keys(url: &str, prefix: &str) -> Result<usize> {
    let client = raw_redis(url).await?;
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}:*")])
        .await
        .context("listing the bench keys")?;
    let count = keys.len();
    for batch in keys.chunks(500) {
        let _: i64 = client
            .del(batch.to_vec())
            .await
            .context("deleting the bench keys")?;
    }
    let _ = client.quit().await;
    Ok(count)
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident.
    pub peak_kib: u64,
}

pub fn memory_of(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("{path} has no {name}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name, which may hold spaces, start after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path} is malformed"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("{path} is malformed"))
    };
    // utime and stime are fields 14 and 15 of stat; here 0-based after the name.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// CPU seconds of a process and its direct children (nginx's workers, say).
pub fn cpu_seconds_of_tree(pid: u32) -> Result<f64> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut total = cpu_seconds_of(pid)?;
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        total += cpu_seconds_of(child).unwrap_or(0.0);
    }
    Ok(total)
}

/// CPU seconds spent by the server under test, by Redis and by this process (whose
/// clients load the server) over one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuShares {
    pub server: f64,
    pub redis: Option<f64>,
    pub clients: f64,
}

/// Reads [`CpuShares`] at the start and answers the difference at the end.
pub struct CpuMeter {
    server_pid: u32,
    redis_pid: Option<u32>,
    start: CpuShares,
}

impl CpuMeter {
    pub fn start(server_pid: u32, redis_pid: Option<u32>) -> Result<Self> {
        let start = Self::read(server_pid, redis_pid)?;
        Ok(Self {
            server_pid,
            redis_pid,
            start,
        })
    }

    pub fn stop(&self) -> Result<CpuShares> {
        let now = Self::read(self.server_pid, self.redis_pid)?;
        Ok(CpuShares {
            server: now.server - self.start.server,
            redis: now.redis.zip(self.start.redis).map(|(b, a)| b - a),
            clients: now.clients - self.start.clients,
        })
    }

    fn read(server_pid: u32, redis_pid: Option<u32>) -> Result<CpuShares> {
        Ok(CpuShares {
            server: cpu_seconds_of_tree(server_pid)?,
            redis: redis_pid.map(cpu_seconds_of).transpose()?,
            clients: cpu_seconds_of(std::process::id())?,
        })
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// How busy the whole machine was between two readings of `/proc/stat`: both the
/// benchmark's processes and everything else on the machine.
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    pub fn read() -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("cpu "))
            .context("/proc/stat has no cpu line")?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are idle.
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        Ok(Self {
            busy: total - idle,
            total,
        })
    }

    /// Busy share of all cores since `self`, in percent.
    pub fn busy_percent_since(&self) -> Result<f64> {
        let now = Self::read()?;
        let total = now.total.saturating_sub(self.total).max(1);
        Ok(100.0 * now.busy.saturating_sub(self.busy) as f64 / total as f64)
    }
}

/// The `insight` binary running as a child process, its output in a log file.
pub struct Service {
    pub name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Service {
    /// Starts `insight <args>` with `envs`. The open-file limit is raised to the
    /// hard limit first (through `sh`, which then `exec`s the binary, so the pid is
    /// the service's own) so that hundreds of clients can connect.
    pub fn start(
        name: &str,
        args: &[&str],
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#)
            .arg(INSIGHT_BIN)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // An early return from the benchmark must not leave the child running.
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {INSIGHT_BIN} {}", args.join(" ")))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn memory(&self) -> Result<Memory> {
        memory_of(self.pid)
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(self.pid)
    }

    /// Fails when the child has exited, with the end of its log.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking the child")? {
            bail!(
                "{} exited early ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit; kills the child if it takes too long.
    pub async fn stop(mut self) -> Result<Stopped> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        if !sent.success() {
            bail!("could not send SIGTERM to {} ({})", self.name, self.pid);
        }
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => Ok(Stopped {
                status: status.context("waiting for the child")?,
                name: self.name,
                log: self.log,
            }),
            Err(_) => {
                self.child.kill().await.context("killing the child")?;
                bail!(
                    "{} did not stop within {STOP_GRACE:?} of SIGTERM",
                    self.name
                )
            }
        }
    }

    fn log_tail(&self, last: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(last)..].join("\n")
    }
}

/// A child that has exited, and what it logged.
pub struct Stopped {
    pub name: String,
    pub status: ExitStatus,
    log: PathBuf,
}

impl Stopped {
    /// Prints how it exited and what it logged at `RUST_LOG=warn`: ideally nothing.
    pub fn report(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let exit = if self.status.success() {
            "exited cleanly after SIGTERM".to_owned()
        } else {
            format!("exited with {} after SIGTERM", self.status)
        };
        if lines.is_empty() {
            println!("{}: {exit}; no warnings or errors logged", self.name);
            return;
        }
        println!(
            "{}: {exit}; {} log lines at warn or above, the first ones:",
            self.name,
            lines.len()
        );
        for line in lines.iter().take(3) {
            println!("  {}", truncate(line, 300));
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The 1, 5 and 15 minute load averages. Printed at the start and end of a run:
/// this machine has two cores, so anything else running (a build, say) shows up
/// in every figure.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

/// Bytes per second in MB/s (10^6 bytes).
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}

pub fn per_s(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A plain text table with right-aligned columns after the first.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let columns = self.header.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&self.header[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i == 0 {
                    out.push_str(&format!("{cell:<w$}", w = widths[i]));
                } else {
                    out.push_str(&format!("  {cell:>w$}", w = widths[i]));
                }
            }
            out
        };
        println!("{}", line(&self.header));
        let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        println!("{}", "-".repeat(total));
        for row in &self.rows {
            println!("{}", line(row));
        }
    }
}
