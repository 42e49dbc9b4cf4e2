//! The `insight` command line: one binary, one subcommand per role.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiSettings, DatabaseSettings, LogSettings, RedisSettings, WorkerSettings};
use crate::source::seed::{SeedPlan, SeedReport};
use crate::store::Store;
use crate::{api, demo, export, source, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "insight",
    version,
    about = "Prepares and serves copies of the data held about one phone number"
)]
pub struct Cli {
    #[command(flatten)]
    log: LogSettings,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Run the export worker.
    Worker(WorkerArgs),
    /// Create the database if it is missing and apply the migrations.
    Migrate(MigrateArgs),
    /// Fill the source tables with a synthetic population.
    Seed(SeedArgs),
    /// A first look: migrate, seed, run API and worker, print commands to try.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub api: ApiSettings,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub worker: WorkerSettings,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub plan: SeedPlan,
    /// Also write every seeded citizen (phone number, devices, events) to this JSON
    /// file, for load tests.
    #[arg(long)]
    pub population_file: Option<PathBuf>,
}

/// Parses nothing more, runs the command, and turns an error into a message and
/// exit code 1.
pub fn run(cli: Cli) -> ExitCode {
    // The demo talks to a person: readable logs unless asked otherwise.
    let format = match cli.command {
        Command::Demo(_) if std::env::var_os("LOG_FORMAT").is_none() => {
            crate::config::LogFormat::Pretty
        }
        _ => cli.log.log_format,
    };
    telemetry::init_logs(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    match command {
        Command::Serve(args) => {
            let pool = connect_postgres(&args.database).await?;
            let store = connect_redis(&args.redis, 16).await?;
            api::serve(args.api, pool, store, shutdown).await
        }
        Command::Worker(args) => {
            let pool = connect_postgres(&args.database).await?;
            let pool_size = args.worker.worker_concurrency + 1;
            let store = connect_redis(&args.redis, pool_size).await?;
            tracing::info!(
                worker.concurrency = args.worker.worker_concurrency,
                "worker started"
            );
            if let Some(listen) = args.worker.worker_metrics_listen {
                let metrics = api::serve_worker_metrics(listen, shutdown.clone());
                tokio::spawn(async move {
                    if let Err(e) = metrics.await {
                        tracing::error!(error = %e, "the worker's metrics endpoint stopped");
                    }
                });
            }
            export::Worker::new(store, pool, args.worker)
                .run(shutdown)
                .await;
            tracing::info!("worker stopped");
            Ok(())
        }
        Command::Migrate(args) => {
            migrate(&args.database).await?;
            println!("database ready: migrations applied");
            Ok(())
        }
        Command::Seed(args) => {
            let pool = connect_postgres(&args.database).await?;
            let report = source::seed::seed(&pool, &args.plan)
                .await
                .context("seeding the source tables")?;
            print_seed_report(&report);
            if let Some(path) = args.population_file {
                write_population(&path, &report)?;
            }
            Ok(())
        }
        Command::Demo(args) => demo::run(args, shutdown).await,
    }
}

/// A token cancelled by SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// Applies the migrations, explaining what to do when PostgreSQL is not there.
pub async fn migrate(database: &DatabaseSettings) -> anyhow::Result<()> {
    source::migrate(&database.database_url)
        .await
        .map_err(|e| anyhow::anyhow!(postgres_help(&database.database_url, &e.to_string())))
}

/// Connects to PostgreSQL, explaining what to do when it is not there.
pub async fn connect_postgres(database: &DatabaseSettings) -> anyhow::Result<PgPool> {
    source::connect(&database.database_url, database.database_max_connections)
        .await
        .map_err(|e| anyhow::anyhow!(postgres_help(&database.database_url, &e.to_string())))
}

/// Connects to Redis, explaining what to do when it is not there.
pub async fn connect_redis(redis: &RedisSettings, pool_size: usize) -> anyhow::Result<Store> {
    Store::connect(&redis.redis_url, &redis.redis_prefix, pool_size)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Redis at {} ({e}). Start it (for example `redis-server --daemonize yes \
                 --save '' --appendonly no`) or set REDIS_URL to a running server.",
                without_password(&redis.redis_url)
            )
        })
}

fn postgres_help(url: &str, cause: &str) -> String {
    format!(
        "cannot use PostgreSQL at {} ({cause}). Start it (for example `pg_ctlcluster \
         --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set DATABASE_URL to a \
         running server.",
        without_password(url)
    )
}

/// The URL with any password replaced, so that it can be printed.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://{credentials}@{host}"),
    }
}

fn print_seed_report(report: &SeedReport) {
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "seeded {} citizens, {} devices, {} GPS events and {} Bluetooth contacts in {:.1} s ({:.0} rows/s)",
        report.citizens.len(),
        report.devices,
        report.gps_events,
        report.bluetooth_events,
        seconds,
        report.rows() as f64 / seconds.max(1e-9),
    );
    println!("phone numbers to try:");
    for citizen in report.examples() {
        println!(
            "  {}  {} device(s), {} events",
            citizen.phone_number, citizen.devices, citizen.events
        );
    }
}

fn write_population(path: &PathBuf, report: &SeedReport) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("encoding the population")?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    println!("population written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/insight"),
            "postgres://app:***@db:5432/insight"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1/insight"),
            "postgres://postgres@127.0.0.1/insight"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    fn serve_args(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
        let args = ["insight", "serve"].iter().chain(flags);
        Cli::try_parse_from(args).map(|cli| match cli.command {
            Command::Serve(args) => args,
            _ => unreachable!("parsed a serve command line"),
        })
    }

    #[test]
    fn the_download_cap_is_512_and_at_least_one() {
        let defaults = serve_args(&[]).expect("defaults parse");
        assert_eq!(defaults.api.max_downloads, 512);
        assert!(defaults.api.owner_key.is_none());
        assert_eq!(
            serve_args(&["--max-downloads", "20"])
                .expect("parses")
                .api
                .max_downloads,
            20
        );
        let zero = serve_args(&["--max-downloads", "0"]).expect_err("zero is refused");
        assert!(zero.to_string().contains("--max-downloads"), "{zero}");
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
