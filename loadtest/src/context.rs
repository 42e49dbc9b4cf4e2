//! What every Goose user shares: the population and its pools, the token signer, the
//! API key, the bounds of every wait, and the counters Goose does not keep.
//!
//! Goose transactions are plain functions of a user, so the context lives in a
//! process-wide cell, filled once before the attack starts.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use goose::config::GooseConfiguration;
use goose::prelude::TransactionError;

use crate::cli::{Limits, LoadOptions, Workload};
use crate::pacer::Pacer;
use crate::population::{self, Citizen, Lending, Rotation};
use crate::stats::Stats;
use crate::tokens::Tokens;

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// Shared state of a load test.
#[derive(Debug)]
pub struct Context {
    pub citizens: Vec<Citizen>,
    /// Citizens of the citizen scenario, one user at a time.
    pub citizen_pool: Lending,
    /// Phone numbers of FHI orders, round robin.
    pub fhi_pool: Rotation,
    /// Citizens whose archives the storm downloads; never deleted by anyone.
    pub storm_pool: Vec<usize>,
    pub tokens: Option<Tokens>,
    pub api_key: String,
    pub limits: Limits,
    pub keep_exports: bool,
    pub storm_read_rate: Option<u64>,
    pub fhi_pacer: Option<Pacer>,
    /// When the run is due to end, if its length is known: long waits stop there.
    pub deadline: Option<Instant>,
    pub stats: Stats,
}

impl Context {
    pub fn build(options: &LoadOptions, goose: &GooseConfiguration) -> anyhow::Result<Self> {
        let workload = options.workload;
        let path = options
            .population
            .as_deref()
            .context("--population is required")?;
        let citizens = population::load(path)?;

        let storm_pool = storm_pool(&citizens, options);
        let citizen_pool = citizen_pool(&citizens, options, &storm_pool)?;
        if workload.has_storm() && storm_pool.is_empty() {
            bail!("--storm-archives must be at least 1 for the download storm");
        }

        Ok(Self {
            citizen_pool,
            fhi_pool: Rotation::new(population::select(&citizens, crate::cli::Size::Any, 0)),
            storm_pool,
            tokens: tokens(options)?,
            api_key: options.api_key.clone().context("--api-key is required")?,
            limits: options.limits.clone(),
            keep_exports: options.citizens.keep_exports,
            storm_read_rate: Some(options.storm.storm_read_rate).filter(|&r| r > 0),
            fhi_pacer: Pacer::per_second(options.fhi.fhi_rate),
            deadline: run_deadline(goose),
            stats: Stats::default(),
            citizens,
        })
    }

    /// Whether the run is past its planned end.
    pub fn run_ended(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A Helsenorge token for the citizen.
    pub fn token_for(&self, citizen: &Citizen) -> Result<String, Box<TransactionError>> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or_else(|| fail("no --private-key: cannot sign Helsenorge tokens"))?;
        tokens
            .for_phone(&citizen.phone_number)
            .map_err(|e| fail(format!("signing a token: {e}")))
    }
}

/// Stores the context for every user; once per process.
pub fn install(context: Context) -> anyhow::Result<()> {
    CONTEXT
        .set(context)
        .map_err(|_| anyhow::anyhow!("the load-test context was already installed"))
}

/// The context, from a transaction.
pub fn context() -> Result<&'static Context, Box<TransactionError>> {
    CONTEXT
        .get()
        .ok_or_else(|| fail("the load-test context is missing"))
}

/// The context, after the run.
pub fn installed() -> Option<&'static Context> {
    CONTEXT.get()
}

/// A short pause for a transaction that has nothing to do (no free citizen, the run
/// ending): returning at once would have Goose call it again in a tight loop that
/// never yields, and starve the runtime of the threads that end the run.
pub async fn idle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A transaction error with this message.
pub fn fail(message: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message.into()))
}

fn storm_pool(citizens: &[Citizen], options: &LoadOptions) -> Vec<usize> {
    if !options.workload.has_storm() {
        return Vec::new();
    }
    let storm = &options.storm;
    let mut pool = population::select(citizens, storm.storm_size, options.citizens.large_citizens);
    pool.truncate(storm.storm_archives);
    pool
}

fn citizen_pool(
    citizens: &[Citizen],
    options: &LoadOptions,
    storm_pool: &[usize],
) -> anyhow::Result<Lending> {
    if !options.workload.has_citizens() {
        return Ok(Lending::new(Vec::new()));
    }
    let wanted = &options.citizens;
    let pool: Vec<usize> = population::select(citizens, wanted.citizen_size, wanted.large_citizens)
        .into_iter()
        .filter(|i| !storm_pool.contains(i))
        .collect();

    if pool.is_empty() {
        bail!(
            "no {:?} citizen is left for the citizen scenario once the storm has taken its \
             {} archives: seed more citizens, or change --citizen-size or --storm-archives",
            wanted.citizen_size,
            storm_pool.len()
        );
    }
    Ok(Lending::new(pool))
}

fn tokens(options: &LoadOptions) -> anyhow::Result<Option<Tokens>> {
    let needs_tokens = options.workload != Workload::FhiBulk;

    match (&options.private_key, needs_tokens) {
        (Some(path), _) => {
            Tokens::load(path, &options.kid, &options.issuer, &options.scope).map(Some)
        }
        (None, false) => Ok(None),
        (None, true) => bail!(
            "--private-key is required by the {} workload (write one with `insight-loadtest keys`)",
            options.workload.name()
        ),
    }
}

/// When the users are due to stop: ramp up plus `--run-time`, from now. `None` for a
/// run without a known length (a test plan, iterations, or no run time).
fn run_deadline(goose: &GooseConfiguration) -> Option<Instant> {
    let run = goose::util::parse_timespan(goose.run_time.as_deref()?)?;
    let users = goose.users.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });

    let ramp = match (&goose.increase_time, &goose.increase_rate) {
        (Some(time), _) => goose::util::parse_timespan(time)? as f64,
        (None, Some(rate)) => users as f64 / rate.parse::<f64>().ok().filter(|r| *r > 0.0)?,
        (None, None) => users as f64,
    };

    Some(Instant::now() + Duration::from_secs_f64(ramp + run as f64))
}
