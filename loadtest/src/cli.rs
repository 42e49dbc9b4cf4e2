//! The command line: the load test's own options beside every Goose option, and the
//! `keys` subcommand that writes a development key pair for the service and the tool.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use goose::config::GooseConfiguration;
use insight::config::parse_duration;

/// Load test of the insight service: citizens ordering and downloading their data,
/// FHI bulk orders and download storms, measured with Goose.
///
/// Goose's options (users, run time, reports, `--threshold` ...) follow the load
/// test's own; `loadtest/run` wraps all of this in one capacity command.
#[derive(Debug, Parser)]
#[command(
    name = "insight-loadtest",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub load: LoadOptions,

    #[command(flatten)]
    pub goose: GooseConfiguration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an RSA key pair: `private.pem` for this tool, `jwks.json` for
    /// `insight serve` (HELSENORGE_JWKS).
    Keys(KeysArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Folder to write `private.pem` and `jwks.json` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Key id published in the JWKS and carried by every token.
    #[arg(long, default_value = "loadtest-1")]
    pub kid: String,
}

/// What the load test does, and when a run counts as failed.
#[derive(Debug, Args)]
#[command(next_help_heading = "insight workload")]
pub struct LoadOptions {
    /// Which scenarios run: `citizen`, `fhi-bulk`, `download-storm`, or `mixed` (a
    /// blend of the three, weighted by --mix).
    #[arg(long, env = "LOADTEST_WORKLOAD", value_enum, default_value = "mixed")]
    pub workload: Workload,

    /// Population file written by `insight seed --population-file FILE`.
    #[arg(
        long,
        env = "LOADTEST_POPULATION",
        value_name = "FILE",
        required = true
    )]
    pub population: Option<PathBuf>,

    /// Private key PEM written by `insight-loadtest keys` (or `DevKeyPair::private_pem`),
    /// used to sign citizens' Helsenorge tokens. Required by every workload but fhi-bulk.
    #[arg(long, env = "LOADTEST_PRIVATE_KEY", value_name = "FILE")]
    pub private_key: Option<PathBuf>,

    /// Key id of that key, as published in the service's JWKS.
    #[arg(long, env = "LOADTEST_KID", default_value = "loadtest-1")]
    pub kid: String,

    /// The API key the service expects in `Api-Key`.
    #[arg(long, env = "INSIGHT_API_KEY", hide_env_values = true, required = true)]
    pub api_key: Option<String>,

    /// `iss` of the signed tokens.
    #[arg(
        long,
        env = "HELSENORGE_JWT_ISSUER",
        default_value = "sikkerhet.helsenorge.no"
    )]
    pub issuer: String,

    /// `scp` of the signed tokens.
    #[arg(
        long,
        env = "HELSENORGE_JWT_SCOPE",
        default_value = "innsynsmittestopp"
    )]
    pub scope: String,

    /// Share of users per scenario in `mixed`, as CITIZEN:FHI:STORM weights.
    #[arg(long, default_value = "6:1:1", value_parser = parse_mix)]
    pub mix: Mix,

    /// Pause between two transactions of a user, as MIN-MAX (e.g. `1s-3s`).
    /// Default: `1s-3s` in mixed, none otherwise.
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_think_time)]
    pub think_time: Option<ThinkTime>,

    /// Also write a JSON summary (request percentiles, downloads, bytes/s, the
    /// verdict of each threshold) to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_file: Option<PathBuf>,

    #[command(flatten)]
    pub citizens: CitizenOptions,

    #[command(flatten)]
    pub fhi: FhiOptions,

    #[command(flatten)]
    pub storm: StormOptions,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub thresholds: Thresholds,
}

/// The citizen scenario.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "citizen scenario")]
pub struct CitizenOptions {
    /// Which citizens order: `any`, `typical` (40th to 60th percentile of events)
    /// or `large` (the --large-citizens with most events).
    #[arg(long, value_enum, default_value = "any")]
    pub citizen_size: Size,

    /// How many of the citizens with most events count as `large`.
    #[arg(long, default_value_t = 2)]
    pub large_citizens: usize,

    /// Keep each export after downloading it. By default a citizen deletes it, so that
    /// the next order of the same citizen runs a fresh export and time-until-ready
    /// keeps measuring the worker.
    #[arg(long)]
    pub keep_exports: bool,
}

/// The FHI bulk scenario.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "fhi-bulk scenario")]
pub struct FhiOptions {
    /// FHI orders per second over all FHI users; 0 orders as fast as the users go.
    #[arg(long, default_value_t = 0.0)]
    pub fhi_rate: f64,
}

/// The download-storm scenario.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "download-storm scenario")]
pub struct StormOptions {
    /// Size class of the citizens whose archives are downloaded over and over.
    #[arg(long, value_enum, default_value = "typical")]
    pub storm_size: Size,

    /// How many different archives the storm downloads (reserved: the citizen
    /// scenario never deletes them).
    #[arg(long, default_value_t = 8)]
    pub storm_archives: usize,

    /// Bytes per second one storm download reads at (a slow client); 0 reads as
    /// fast as the service sends.
    #[arg(long, default_value_t = 0)]
    pub storm_read_rate: u64,
}

/// Bounds on every wait, so that each loop ends by itself.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "bounds")]
pub struct Limits {
    /// Longest wait for an export to become ready after its order.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// Most polls of one export before giving up.
    #[arg(long, default_value_t = 600)]
    pub max_polls: u32,

    /// Longest wait between two polls, even when `Retry-After` asks for more (off:
    /// `Retry-After` is honoured as given). For short smoke runs; a real client waits.
    #[arg(long, value_parser = parse_duration)]
    pub retry_after_cap: Option<Duration>,

    /// Longest time one download (headers and body) may take.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub download_timeout: Duration,
}

/// Pass/fail rules judged when the run ends; any that fails makes the exit code 1.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "thresholds")]
pub struct Thresholds {
    /// Highest allowed 95th percentile of each order request (POST), in ms.
    #[arg(long, default_value_t = 250.0)]
    pub max_order_p95: f64,

    /// Highest allowed 99th percentile of each order request, in ms (off by default).
    #[arg(long)]
    pub max_order_p99: Option<f64>,

    /// Highest allowed 95th percentile of time-until-ready as the client saw it, in
    /// seconds (off by default).
    #[arg(long)]
    pub max_ready_p95: Option<f64>,

    /// Highest allowed share of failed requests, in percent.
    #[arg(long, default_value_t = 1.0)]
    pub max_error_rate: f64,

    /// Most failed requests and transactions allowed in the whole run.
    #[arg(long, default_value_t = 0)]
    pub max_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Citizen,
    FhiBulk,
    DownloadStorm,
    Mixed,
}

impl Workload {
    pub fn has_citizens(self) -> bool {
        matches!(self, Workload::Citizen | Workload::Mixed)
    }

    pub fn has_storm(self) -> bool {
        matches!(self, Workload::DownloadStorm | Workload::Mixed)
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Citizen => "citizen",
            Workload::FhiBulk => "fhi-bulk",
            Workload::DownloadStorm => "download-storm",
            Workload::Mixed => "mixed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Size {
    Any,
    Typical,
    Large,
}

/// Scenario weights of the mixed workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub citizen: usize,
    pub fhi: usize,
    pub storm: usize,
}

/// The pause between a user's transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkTime {
    pub min: Duration,
    pub max: Duration,
}

fn parse_mix(raw: &str) -> Result<Mix, String> {
    let weights: Vec<usize> = raw
        .split(':')
        .map(|w| w.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("'{raw}': {e}; write three weights like 6:1:1"))?;

    match weights[..] {
        [citizen, fhi, storm] if citizen + fhi + storm > 0 => Ok(Mix {
            citizen,
            fhi,
            storm,
        }),
        _ => Err(format!(
            "'{raw}' is not CITIZEN:FHI:STORM with at least one weight above 0"
        )),
    }
}

fn parse_think_time(raw: &str) -> Result<ThinkTime, String> {
    let (min, max) = raw.split_once('-').unwrap_or((raw, raw));
    let min = parse_duration(min).map_err(|e| e.to_string())?;
    let max = parse_duration(max).map_err(|e| e.to_string())?;

    if min > max {
        return Err(format!("'{raw}': the minimum is above the maximum"));
    }
    Ok(ThinkTime { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn mix_takes_three_weights() {
        assert_eq!(
            parse_mix("6:1:1"),
            Ok(Mix {
                citizen: 6,
                fhi: 1,
                storm: 1
            })
        );
        assert!(parse_mix("0:0:0").is_err());
        assert!(parse_mix("6:1").is_err());
        assert!(parse_mix("a:b:c").is_err());
    }

    #[test]
    fn think_time_is_a_range_or_one_value() {
        let range = parse_think_time("1s-3s").expect("a range");
        assert_eq!(range.min, Duration::from_secs(1));
        assert_eq!(range.max, Duration::from_secs(3));

        let fixed = parse_think_time("500ms").expect("one value");
        assert_eq!(fixed.min, fixed.max);

        assert!(parse_think_time("3s-1s").is_err());
    }
}
