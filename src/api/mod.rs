//! The HTTP API (`insight serve`): ordering, polling and downloading on the
//! Helsenorge and FHI channels, plus health, readiness and metrics for operators.

mod download;
mod error;
mod fhi_body;
mod routes;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use download::Archive;
pub use error::ApiError;

use crate::auth::{ApiKey, KeySource, TokenSettings, TokenVerifier};
use crate::config::ApiSettings;
use crate::orders::{OrderSettings, Orders, OwnerKey};
use crate::source::download_log::DownloadLog;
use crate::store::Store;

/// Order bodies are a few hundred bytes; this leaves room and no more.
const BODY_LIMIT: usize = 16 * 1024;

/// After the HTTP server has stopped, how long the access-log rows of completed
/// downloads may take to be written.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(10);

static API_KEY_HEADER: HeaderName = HeaderName::from_static("api-key");
static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    orders: Orders,
    download_log: DownloadLog,
    downloads: Arc<Semaphore>,
    api_key: Arc<ApiKey>,
    tokens: TokenVerifier,
    public_base_url: Option<String>,
    request_timeout: Duration,
    body_limit: usize,
}

impl AppState {
    fn new(
        orders: Orders,
        download_log: DownloadLog,
        api_key: ApiKey,
        tokens: TokenVerifier,
        settings: &ApiSettings,
    ) -> Self {
        crate::telemetry::metrics();
        Self {
            orders,
            download_log,
            downloads: Arc::new(Semaphore::new(settings.max_downloads as usize)),
            api_key: Arc::new(api_key),
            tokens,
            public_base_url: settings.public_base_url.clone(),
            request_timeout: settings.request_timeout,
            body_limit: BODY_LIMIT,
        }
    }

    /// Builds the state from settings: the API key and token keys are required.
    pub async fn from_settings(
        settings: &ApiSettings,
        pool: PgPool,
        store: Store,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;

        let api_key = settings
            .api_key
            .as_ref()
            .map(|key| key.expose_secret())
            .filter(|key| !key.is_empty())
            .context(
                "INSIGHT_API_KEY is required: set it to the key the API gateway sends in Api-Key",
            )?;
        let owner_key = match settings.owner_key.as_ref().map(|k| k.expose_secret()) {
            Some("") => {
                anyhow::bail!("INSIGHT_OWNER_KEY is set but empty: set a secret, or unset it")
            }
            Some(secret) => OwnerKey::new(secret.as_bytes()),
            None => OwnerKey::new(api_key.as_bytes()),
        };
        let api_key = ApiKey::new(api_key.to_owned());
        let tokens = token_verifier(settings).await?;
        let download_log = DownloadLog::start(pool.clone());
        let orders = Orders::new(
            pool,
            store,
            OrderSettings {
                helsenorge_expiry: settings.helsenorge_expiry,
                fhi_expiry: settings.fhi_expiry,
                max_queue: settings.max_queue,
                owner_key,
            },
        );
        Ok(Self::new(orders, download_log, api_key, tokens, settings))
    }
}

async fn token_verifier(settings: &ApiSettings) -> anyhow::Result<TokenVerifier> {
    let keys = &settings.token_keys;
    let source = match (&keys.helsenorge_jwks, &keys.helsenorge_jwt_public_key) {
        (Some(jwks), _) => KeySource::jwks(jwks).context("HELSENORGE_JWKS")?,
        (None, Some(pem)) => KeySource::Pem(pem.clone()),
        (None, None) => anyhow::bail!(
            "HELSENORGE_JWKS (a JWKS path or URL) or HELSENORGE_JWT_PUBLIC_KEY (a PEM path) is required \
             to verify Helsenorge tokens"
        ),
    };
    let token_settings = TokenSettings {
        issuer: keys.helsenorge_jwt_issuer.clone(),
        scope: keys.helsenorge_jwt_scope.clone(),
        phone_claim: keys.helsenorge_phone_claim.clone(),
        ..TokenSettings::default()
    };
    TokenVerifier::from_source(source, token_settings)
        .await
        .context("loading Helsenorge's token signing keys")
}

/// Every route, with its layers.
fn router(state: AppState) -> Router {
    let channels = Router::new()
        .route("/helsenorge/egress", post(routes::helsenorge_order))
        .route(
            "/helsenorge/egress/{request_id}",
            get(routes::helsenorge_result).delete(routes::helsenorge_delete),
        )
        .route("/fhi/fhi-egress", post(routes::fhi_order))
        .route(
            "/fhi/fhi-egress/{request_id}",
            get(routes::fhi_result).delete(routes::fhi_delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));

    Router::new()
        .merge(channels)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(&REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), http.request_id = id)
                })
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER.clone(), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            API_KEY_HEADER.clone(),
        ]))
        .with_state(state)
}

/// Runs the API until `shutdown`, then lets running downloads go on for at most
/// `shutdown_grace` before closing.
pub async fn serve(
    settings: ApiSettings,
    pool: PgPool,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = AppState::from_settings(&settings, pool, store).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (INSIGHT_LISTEN)", settings.listen))?;
    run(listener, state, shutdown, settings.shutdown_grace).await
}

/// Serves the API on `listener` until `shutdown` plus at most `grace`, then writes
/// the access-log rows of the downloads completed so far.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let served = serve_http(listener, router(state.clone()), shutdown, grace).await;
    state.download_log.finish(ACCESS_LOG_FLUSH).await;
    served
}

async fn serve_http(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(listen = %address, "API listening");
    }
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "downloads still running after the shutdown grace; closing them");
        }
    }
    tracing::info!("API stopped");
    Ok(())
}

async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(&API_KEY_HEADER).map(|v| v.as_bytes());
    match presented {
        Some(key) if state.api_key.matches(key) => next.run(request).await,
        _ => ApiError::Unauthorized("a valid Api-Key header is required".into()).into_response(),
    }
}

async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request timed out");
            ApiError::Timeout.into_response()
        }
    }
}

fn panic_answer(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::Internal.into_response()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let limit = Duration::from_secs(2);
    let redis = tokio::time::timeout(limit, state.orders.store().ping()).await;
    let postgres =
        tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(state.orders.pool())).await;
    let redis_ok = matches!(redis, Ok(Ok(())));
    let postgres_ok = matches!(postgres, Ok(Ok(_)));
    let body = serde_json::json!({
        "message": if redis_ok && postgres_ok { "ready" } else { "not ready" },
        "redis": if redis_ok { "ok" } else { "unreachable" },
        "postgres": if postgres_ok { "ok" } else { "unreachable" },
    });
    let status = if redis_ok && postgres_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(depth) = state.orders.store().queue_depth().await {
        metrics::gauge!("insight_queue_depth").set(depth as f64);
    }
    prometheus_text()
}

fn prometheus_text() -> Response {
    let text = crate::telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The worker's own small HTTP endpoint: `/metrics` for its job figures and
/// `/healthz`, until `shutdown`.
pub async fn serve_worker_metrics(
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|| async { prometheus_text() }))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound });
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (WORKER_METRICS_LISTEN)"))?;
    tracing::info!(listen = %listen, "worker metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving worker metrics")
}
