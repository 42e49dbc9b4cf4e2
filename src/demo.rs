//! `insight demo`: one process for a first look.

use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::bail!("the demo needs the HTTP API, which is not built yet")
}
