//! The Redis side: export requests, the job queue with its leases, and the stored
//! chunks and manifest entries of prepared exports.
//!
//! Every key of one request carries the hash tag `{<request_id>}`, so that a request
//! lives in one Redis Cluster slot and the multi-key scripts below stay legal there.
//! Every key expires at the request's expiry time; the queue key expires when the
//! last request in it does.

mod keys;
mod lease;
mod queue;
mod request;
mod scripts;

use std::time::Duration;

use fred::prelude::*;

pub use keys::Keys;
pub use lease::{Attempt, Lease};
pub use request::{EntryRecord, NewRequest, RequestRecord, Status};

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis holds a malformed value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The worker's lease was taken over (or the request deleted); it must stop.
    #[error("the job's lease was taken over or its request is gone")]
    Fenced,
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    fn corrupt(key: &str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            key: key.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// True when Redis refused a write because it is out of memory.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, StoreError::Redis(e) if e.details().contains("OOM"))
    }
}

/// A connection pool to Redis and the key layout of this deployment.
#[derive(Clone)]
pub struct Store {
    client: Pool,
    keys: Keys,
}

impl Store {
    /// Connects to `url` (`redis://…`, or `redis-cluster://host:port,host:port`) and
    /// fails fast when the first connection cannot be made.
    pub async fn connect(url: &str, prefix: &str, pool_size: usize) -> Result<Self, StoreError> {
        let keys = Keys::new(prefix).map_err(StoreError::Config)?;
        let config = parse_url(url)?;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
                c.internal_command_timeout = Duration::from_secs(10);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(10);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(pool_size.max(1))?;
        client.init().await?;
        Ok(Self { client, keys })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Answers when Redis does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.client.ping(None).await?;
        Ok(())
    }

    /// Closes the connections.
    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }
}

/// Turns the service's Redis URL into fred's configuration. Cluster URLs list their
/// seed nodes comma-separated: `redis-cluster://[user:pass@]host:port,host:port`.
fn parse_url(url: &str) -> Result<Config, StoreError> {
    let Some(rest) = url.strip_prefix("redis-cluster://") else {
        return Config::from_url(url).map_err(|e| StoreError::Config(format!("REDIS_URL: {e}")));
    };

    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, rest),
    };
    let mut nodes = hosts.split(',').map(str::trim).filter(|h| !h.is_empty());
    let first = nodes
        .next()
        .ok_or_else(|| StoreError::Config("REDIS_URL names no cluster node".into()))?;
    let mut fred_url = format!("redis-cluster://{}", first.trim_end_matches('/'));
    if let Some(credentials) = credentials {
        fred_url = format!(
            "redis-cluster://{credentials}@{}",
            first.trim_end_matches('/')
        );
    }
    let others: Vec<String> = nodes.map(|n| format!("node={n}")).collect();
    if !others.is_empty() {
        fred_url = format!("{fred_url}?{}", others.join("&"));
    }
    Config::from_url_clustered(&fred_url).map_err(|e| StoreError::Config(format!("REDIS_URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_every_seed_node() {
        let config = parse_url("redis-cluster://a:7000,b:7001, c:7002").unwrap();
        let ServerConfig::Clustered { hosts, .. } = config.server else {
            panic!("not a cluster config");
        };
        let mut ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
        ports.sort_unstable();
        assert_eq!(ports, [7000, 7001, 7002]);
    }

    #[test]
    fn plain_urls_are_centralized() {
        let config = parse_url("redis://127.0.0.1:6379").unwrap();
        assert!(matches!(config.server, ServerConfig::Centralized { .. }));
    }

    #[test]
    fn empty_cluster_urls_are_refused() {
        assert!(parse_url("redis-cluster://").is_err());
    }
}
