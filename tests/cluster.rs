//! The service on a real Redis Cluster of its own: three masters started by the
//! test, with the request's keys, the queue and the owner pointers spread over
//! them. Orders, the export, downloads, ranges and deletes work exactly as on a
//! standalone Redis.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::app::*;
use common::*;
use reqwest::Method;
use serde_json::json;
use tokio::process::{Child, Command};

const PHONE: &str = "+4794000001";
const MASTERS: usize = 3;

/// Three cluster-enabled `redis-server`s in `dir`, joined into one cluster with
/// every slot covered. They are killed when the children are dropped.
struct Cluster {
    _nodes: Vec<Child>,
    ports: Vec<u16>,
}

impl Cluster {
    async fn start(dir: &Path) -> Self {
        let ports = free_ports(MASTERS);
        let mut nodes = Vec::new();
        for port in &ports {
            let node = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server starts");
            nodes.push(node);
        }
        for port in &ports {
            wait_for(|| async { cli(*port, &["ping"]).await.as_deref() == Some("PONG") }).await;
        }

        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &ports {
            wait_for(|| async {
                cli(*port, &["cluster", "info"])
                    .await
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            })
            .await;
        }
        Self {
            _nodes: nodes,
            ports,
        }
    }

    fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// How many keys each node holds.
    async fn keys_per_node(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for port in &self.ports {
            let count = cli(*port, &["dbsize"]).await.unwrap_or_default();
            counts.push(count.trim().parse().unwrap_or(0));
        }
        counts
    }
}

/// Ports free for a node and its cluster bus (the port plus 10 000).
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let bus_free =
            port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
        if bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

async fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn wait_for<F, Fut>(mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Redis Cluster did not come up within 10 s");
}

#[tokio::test]
async fn orders_exports_and_downloads_work_on_a_redis_cluster() {
    let dir = tempfile::tempdir().expect("cluster folder");
    let cluster = Cluster::start(dir.path()).await;
    let mut env = TestEnv::new().await;
    env.store = insight::store::Store::connect(&cluster.url(), &env.prefix, 2)
        .await
        .expect("connect to the cluster");
    let app = TestApp::spawn_on(env, |_| {}).await;
    for name in ["one", "two", "three"] {
        let uuid = app.env.insert_device(PHONE, &device(name)).await;
        app.env.insert_many_gps(uuid, 3_000).await;
    }
    let others: Vec<String> = (2..9).map(|n| format!("+479400000{n}")).collect();
    for phone in &others {
        let uuid = app.env.insert_device(phone, &device("other")).await;
        app.env.insert_many_gps(uuid, 10).await;
    }

    // A citizen's order, and FHI orders for nine phone numbers.
    let path = app.ordered_path(PHONE).await;
    assert_eq!(
        app.ordered_path(PHONE).await,
        path,
        "orders stay idempotent"
    );
    let waiting = app.send(Method::GET, &path, Some(PHONE)).await;
    assert_eq!(waiting.status(), 202);
    let mut fhi_paths = Vec::new();
    for phone in std::iter::once(PHONE).chain(others.iter().map(String::as_str)) {
        let ordered = app
            .order_fhi(json!({"phone_number": phone, "person_name": "Kari", "legal_means": "test"}))
            .await;
        assert_eq!(ordered.status(), 202);
        let body: serde_json::Value = ordered.json().await.unwrap();
        fhi_paths.push(format!(
            "/fhi/fhi-egress/{}",
            body["request_id"].as_str().unwrap()
        ));
    }
    // Ten requests, ten owner pointers and the queue: spread over the nodes (all
    // on one node has a chance of about 3 in 10^10).
    let spread = cluster.keys_per_node().await;
    assert!(
        spread.iter().filter(|&&n| n > 0).count() >= 2,
        "every key on one node: {spread:?}"
    );

    // The exports, and the citizen's whole archive.
    app.env.run_jobs().await;
    let whole = app.send(Method::GET, &path, Some(PHONE)).await;
    assert_eq!(whole.status(), 200);
    let bytes = whole.bytes().await.unwrap();
    assert!(unzip_test(&bytes), "unzip -t refused the archive");
    let files = read_zip(bytes.to_vec()).await;
    assert_eq!(files.len(), 4, "three devices and the manifest");
    for (name, content) in &files[..3] {
        let document: serde_json::Value = serde_json::from_slice(content).unwrap();
        assert_eq!(
            document["gps_events"].as_array().map(Vec::len),
            Some(3_000),
            "{name}"
        );
    }

    // A range across the stored chunks is the same slice of the whole.
    let ranged = app
        .call(Method::GET, &path, Some(PHONE))
        .header("Range", "bytes=1000-60999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), bytes.slice(1000..61_000));

    // Every FHI archive, then deletes on both channels.
    for fhi_path in &fhi_paths {
        let archive = app.send(Method::GET, fhi_path, None).await;
        assert_eq!(archive.status(), 200);
        assert!(unzip_test(&archive.bytes().await.unwrap()));
    }
    let all = std::iter::once((path.as_str(), Some(PHONE)))
        .chain(fhi_paths.iter().map(|p| (p.as_str(), None)));
    for (path, phone) in all {
        let deleted = app.send(Method::DELETE, path, phone).await;
        assert_eq!(deleted.status(), 204);
        let gone = app.send(Method::GET, path, phone).await;
        assert_eq!(gone.status(), 404);
    }
    assert_eq!(
        cluster.keys_per_node().await.iter().sum::<u64>(),
        0,
        "deleted requests leave no key behind"
    );
}
