//! The HTTP API (`insight serve`).

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::ApiSettings;
use crate::store::Store;

pub async fn serve(
    _settings: ApiSettings,
    _pool: PgPool,
    _store: Store,
    _shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::bail!("the HTTP API is not built yet")
}
