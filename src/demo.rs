//! `insight demo`: one process for a first look. It migrates, seeds a small
//! population when the database has none, runs the API and a worker side by side,
//! and prints commands (with a generated development API key and a freshly signed
//! citizen token) that order, poll and download an archive.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::auth::{DevKeyPair, citizen_claims};
use crate::cli::{connect_postgres, connect_redis, migrate};
use crate::config::{
    ApiSettings, DatabaseSettings, RedisSettings, TokenKeySettings, WorkerSettings,
};
use crate::export::{DEFAULT_CHUNK_SIZE, Worker};
use crate::source::seed::{SeedPlan, seed};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub redis: RedisSettings,

    /// Address the demo API listens on (port 0 picks a free one).
    #[arg(long, env = "INSIGHT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Citizens to seed when the database holds none.
    #[arg(long, default_value_t = 200)]
    pub citizens: u64,

    /// Folder for the demo's development key files.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("insight-demo"))]
    pub key_dir: PathBuf,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    migrate(&args.database).await?;
    let pool = connect_postgres(&args.database).await?;
    let store = connect_redis(&args.redis, 8).await?;
    let phone = demo_phone_number(&pool, args.citizens).await?;

    let api_key = format!("dev-{}", hex::encode(rand::rng().random::<[u8; 16]>()));
    let keys = DevKeyPair::generate("insight-demo").context("generating a development key pair")?;
    std::fs::create_dir_all(&args.key_dir)
        .with_context(|| format!("creating {}", args.key_dir.display()))?;
    let jwks = args.key_dir.join("jwks.json");
    std::fs::write(&jwks, keys.jwks_json())
        .with_context(|| format!("writing {}", jwks.display()))?;
    let settings = api_settings(&args, &api_key, &jwks);

    let state = api::AppState::from_settings(&settings, pool.clone(), store.clone()).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (set --listen or INSIGHT_LISTEN)",
            args.listen
        )
    })?;
    let address = listener
        .local_addr()
        .context("reading the listening address")?;
    let server = tokio::spawn(api::run(
        listener,
        state,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    let worker = Worker::new(store, pool, worker_settings());
    let working = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });

    let claims = citizen_claims(
        &phone,
        &settings.token_keys.helsenorge_jwt_issuer,
        &settings.token_keys.helsenorge_jwt_scope,
        Duration::from_secs(3600),
    );
    let token = keys.sign(&claims).context("signing the demo token")?;
    println!("{}", instructions(address, &api_key, &token, &phone));

    let _ = working.await;
    server.await.context("the API task failed")??;
    Ok(())
}

/// A phone number with a few devices and events, seeding a population first when
/// the database has none (an existing population is left alone).
async fn demo_phone_number(pool: &PgPool, citizens: u64) -> anyhow::Result<String> {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(pool)
        .await
        .context("counting devices")?;
    if existing == 0 {
        let plan = SeedPlan {
            citizens,
            seed: 1,
            max_devices: 3,
            median_events: 300,
            heavy_citizens: 1,
            heavy_devices: 2,
            heavy_events: 100_000,
            gps_share: 0.7,
        };
        let report = seed(pool, &plan)
            .await
            .context("seeding the demo population")?;
        println!(
            "seeded {} citizens with {} devices and {} events",
            report.citizens.len(),
            report.devices,
            report.gps_events + report.bluetooth_events
        );
    }
    sqlx::query_scalar(
        "SELECT d.phone_number FROM devices d
         GROUP BY d.phone_number
         ORDER BY count(*) DESC, d.phone_number
         LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .context("picking a phone number")
}

fn api_settings(args: &DemoArgs, api_key: &str, jwks: &std::path::Path) -> ApiSettings {
    ApiSettings {
        listen: args.listen,
        api_key: Some(SecretString::from(api_key.to_owned())),
        owner_key: None,
        token_keys: TokenKeySettings {
            helsenorge_jwks: Some(jwks.to_string_lossy().into_owned()),
            helsenorge_jwt_public_key: None,
            helsenorge_jwt_issuer: "sikkerhet.helsenorge.no".into(),
            helsenorge_jwt_scope: "innsynsmittestopp".into(),
            helsenorge_phone_claim: "phone_number".into(),
        },
        helsenorge_expiry: Duration::from_secs(24 * 3600),
        fhi_expiry: Duration::from_secs(4 * 3600),
        public_base_url: None,
        max_queue: 10_000,
        max_downloads: 64,
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(5),
    }
}

fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        worker_concurrency: 1,
        worker_lease: Duration::from_secs(30),
        worker_max_attempts: 5,
        worker_retry_backoff: Duration::from_secs(5),
        worker_poll_interval: Duration::from_millis(100),
        worker_chunk_size: DEFAULT_CHUNK_SIZE,
        worker_metrics_listen: None,
    }
}

fn instructions(address: SocketAddr, api_key: &str, token: &str, phone: &str) -> String {
    let masked = crate::domain::PhoneNumber::parse(phone)
        .map(|p| p.masked())
        .unwrap_or_default();
    format!(
        r#"
insight demo is running on http://{address} (Ctrl-C stops it).

Paste these lines into another shell. They order an export for the citizen with
phone number {masked} through Helsenorge, poll until it is ready, and download it:

export API_KEY='{api_key}'
export TOKEN='{token}'
URL=$(curl -s -X POST -H "Api-Key: $API_KEY" -H "Authorization: Bearer $TOKEN" http://{address}/helsenorge/egress | sed -n 's/.*"result_url":"\([^"]*\)".*/\1/p')
echo "ordered: $URL"
while [ "$(curl -s -o insight.zip -w '%{{http_code}}' -H "Api-Key: $API_KEY" -H "Authorization: Bearer $TOKEN" "$URL")" = 202 ]; do cat insight.zip; echo; sleep 1; done
unzip -l insight.zip

FHI orders for any phone number, with a JSON body:

curl -s -X POST -H "Api-Key: $API_KEY" -H 'Content-Type: application/json' -d '{{"phone_number": "{phone}", "person_name": "Ola Nordmann", "legal_means": "Smittevernloven"}}' http://{address}/fhi/fhi-egress
"#
    )
}
