//! The PostgreSQL side: connecting, migrations, the source rows an export reads,
//! the synthetic population for development and tests, and the access log.

pub mod access_log;
pub mod download_log;
pub mod rows;
pub mod seed;
mod utc_time;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::{MigrateDatabase, Migrator};
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The project's migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What can go wrong with the source database.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens a pool; fails fast when PostgreSQL cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, SourceError> {
    // Streaming a large device's rows takes seconds by nature; that is not worth a
    // warning on every export.
    let options = PgConnectOptions::from_str(url)?
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Creates the database when it is missing, then applies every migration.
pub async fn migrate(url: &str) -> Result<(), SourceError> {
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("created the database");
    }
    let pool = connect(url, 1).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}
