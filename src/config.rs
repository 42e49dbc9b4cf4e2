//! Settings, in one typed place. Every setting is a flag with an environment
//! variable behind it (flags win), documented once here and shown by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

/// Where the source database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL holding the source tables and the access log.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/insight"
    )]
    pub database_url: String,

    /// Most connections one process opens to PostgreSQL.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

/// Where Redis is, and which part of it is ours.
#[derive(Debug, Clone, Args)]
pub struct RedisSettings {
    /// Redis for the queue and prepared results; `redis-cluster://host:port,...`
    /// selects cluster mode.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every key this service writes, so that several deployments (or
    /// test runs) can share one Redis.
    #[arg(long, env = "INSIGHT_REDIS_PREFIX", default_value = "insight")]
    pub redis_prefix: String,
}

/// How a request's jobs are run by `insight worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Jobs one worker process runs at once. One keeps the load on the source
    /// database predictable.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1)]
    pub worker_concurrency: usize,

    /// How long a taken job stays with its worker without a renewal; a worker that
    /// dies loses its job to another after this long.
    #[arg(long, env = "WORKER_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub worker_lease: Duration,

    /// Attempts a job gets before its request is marked failed.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", default_value_t = 5)]
    pub worker_max_attempts: u32,

    /// Wait before the first retry of a failed attempt; doubles with each attempt.
    #[arg(long, env = "WORKER_RETRY_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub worker_retry_backoff: Duration,

    /// How often an idle worker looks for a job.
    #[arg(long, env = "WORKER_POLL_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub worker_poll_interval: Duration,

    /// Size of one stored chunk of a deflated device document, in bytes.
    #[arg(long, env = "WORKER_CHUNK_SIZE", default_value_t = crate::export::DEFAULT_CHUNK_SIZE)]
    pub worker_chunk_size: usize,

    /// Address where the worker serves `/metrics` and `/healthz` (job counts,
    /// durations, failures); unset, it serves none.
    #[arg(long, env = "WORKER_METRICS_LISTEN")]
    pub worker_metrics_listen: Option<SocketAddr>,
}

/// Output of the service's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// `json` for machines, `pretty` for people. Levels come from `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

/// Where Helsenorge's token signing keys come from.
#[derive(Debug, Clone, Args)]
pub struct TokenKeySettings {
    /// Path or URL of the JWKS document holding Helsenorge's signing keys.
    #[arg(long, env = "HELSENORGE_JWKS")]
    pub helsenorge_jwks: Option<String>,

    /// Path of a PEM public key, instead of a JWKS document.
    #[arg(
        long,
        env = "HELSENORGE_JWT_PUBLIC_KEY",
        conflicts_with = "helsenorge_jwks"
    )]
    pub helsenorge_jwt_public_key: Option<PathBuf>,

    /// Required `iss` of Helsenorge tokens.
    #[arg(
        long,
        env = "HELSENORGE_JWT_ISSUER",
        default_value = "sikkerhet.helsenorge.no"
    )]
    pub helsenorge_jwt_issuer: String,

    /// Scope a Helsenorge token must carry in `scp`.
    #[arg(
        long,
        env = "HELSENORGE_JWT_SCOPE",
        default_value = "innsynsmittestopp"
    )]
    pub helsenorge_jwt_scope: String,

    /// Claim holding the citizen's phone number.
    #[arg(long, env = "HELSENORGE_PHONE_CLAIM", default_value = "phone_number")]
    pub helsenorge_phone_claim: String,
}

/// What `insight serve` needs beyond the stores.
#[derive(Debug, Clone, Args)]
pub struct ApiSettings {
    /// Address the HTTP API listens on.
    #[arg(long, env = "INSIGHT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Key the API gateway sends in `Api-Key`; required.
    #[arg(long, env = "INSIGHT_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,

    /// Secret under which phone numbers are hashed for Redis (HMAC-SHA-256); every
    /// API replica needs the same. Unset, the API key serves, and requests ordered
    /// before the API key changes are no longer found by their owners.
    #[arg(long, env = "INSIGHT_OWNER_KEY", hide_env_values = true)]
    pub owner_key: Option<SecretString>,

    #[command(flatten)]
    pub token_keys: TokenKeySettings,

    /// How long a Helsenorge export is kept.
    #[arg(long, env = "HELSENORGE_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub helsenorge_expiry: Duration,

    /// How long an FHI export is kept.
    #[arg(long, env = "FHI_EXPIRY", default_value = "4h", value_parser = parse_duration)]
    pub fhi_expiry: Duration,

    /// Base of `result_url` (e.g. `https://insight.example.no`); unset, it is built
    /// from the request's `Host`.
    #[arg(long, env = "PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,

    /// Queued and running jobs beyond which new orders answer 503.
    #[arg(long, env = "INSIGHT_MAX_QUEUE", default_value_t = 10_000)]
    pub max_queue: u64,

    /// Downloads served at once; more answer 503 with `Retry-After`. Each open
    /// download holds about 0.9 MiB while its client reads slowly, so this bounds
    /// the API's memory: 512 is about 460 MiB.
    #[arg(long, env = "INSIGHT_MAX_DOWNLOADS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_downloads: u32,

    /// Time limit of every request except a download's body.
    #[arg(long, env = "INSIGHT_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long running downloads may go on after a shutdown signal.
    #[arg(long, env = "INSIGHT_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Why a duration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a duration: write a whole number and a unit, like 250ms, 90s, 15m, 24h or 7d"
)]
pub struct InvalidDuration(String);

/// Parses `250ms`, `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(raw.to_owned());
    let trimmed = raw.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        for bad in [
            "",
            "90",
            "s",
            "1.5h",
            "-3s",
            "10 years",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
