//! The capacity command, `loadtest/run`, end to end in its smoke form: real Redis
//! and PostgreSQL, a freshly seeded database, `insight serve` and `insight worker`
//! as processes, a few seconds of the mixed workload, and the results folder it
//! leaves behind. It runs the debug binaries that `cargo test --workspace` has just
//! built (`insight` for the service's own tests, `insight-loadtest` for this one),
//! so no release build is needed; its figures are not capacity figures, and no
//! latency is judged here.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[test]
fn the_smoke_run_leaves_a_complete_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the load test lives inside the workspace")
        .to_path_buf();
    // <target>/debug/insight-loadtest, or <target>/release/ under `--release`: the
    // script finds both binaries there from <target> and the profile.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_insight-loadtest"))
        .parent()
        .expect("the binary lies in <target>/<profile>/");
    let target_dir = bin_dir
        .parent()
        .expect("the binary lies in <target>/<profile>/");
    let profile: &[&str] = if bin_dir.ends_with("release") {
        &[]
    } else {
        &["--debug"]
    };
    assert!(
        bin_dir.join("insight").is_file(),
        "no build of insight in {}: run the tests with `cargo test --workspace`",
        bin_dir.display()
    );
    let results = tempfile::tempdir().expect("temporary results folder");
    let run_name = format!("insight_loadtest_smoke_{}", std::process::id());

    let output = Command::new(root.join("loadtest/run"))
        .arg("--smoke")
        .args(profile)
        .arg("--no-build")
        .args(["--port", &free_port().to_string()])
        .args(["--worker-metrics-port", &free_port().to_string()])
        .args(["--db", &run_name])
        .args(["--redis-prefix", &run_name])
        .arg("--results")
        .arg(results.path())
        // Judge behaviour, not speed: an order slower than ten minutes is a hang.
        .args(["--max-order-p95", "600000"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("loadtest/run starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest/run --smoke failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );

    let run = only_run_folder(results.path());
    for file in [
        "report.html",
        "report.json",
        "summary.json",
        "run.json",
        "metrics.txt",
        "worker-metrics.txt",
        "samples.csv",
        "population.json",
        "serve.log",
        "worker.log",
    ] {
        let path = run.join(file);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} is missing or empty", path.display());
    }

    let summary = read_json(&run.join("summary.json"));
    assert_eq!(
        summary["passed"], true,
        "thresholds: {}",
        summary["thresholds"]
    );
    assert_eq!(summary["failed_requests"], 0);
    assert_eq!(summary["transaction_errors"], 0);
    assert!(
        count(&summary["orders"]["count"]) > 0,
        "no orders: {summary}"
    );
    assert!(
        count(&summary["downloads"]["complete_downloads"]) > 0,
        "no archive was downloaded to its end: {summary}"
    );
    let requests = summary["requests"]
        .as_object()
        .expect("summary.json lists its requests");
    for prefix in ["POST ", "GET ", "BODY ", "READY "] {
        let (name, row) = requests
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}row among {:?}", requests.keys()));
        assert!(count(&row["count"]) > 0, "{name}: {row}");
        for percentile in ["p50_ms", "p95_ms", "p99_ms"] {
            assert!(
                row[percentile].as_f64().is_some_and(|ms| ms >= 0.0),
                "{name} has no {percentile}: {row}"
            );
        }
    }

    let report = read_json(&run.join("report.json"));
    assert!(
        report.as_object().is_some_and(|o| !o.is_empty()),
        "Goose's JSON report is empty"
    );
    let html = fs::read_to_string(run.join("report.html")).expect("report.html is text");
    assert!(html.contains("<html"), "report.html is not an HTML page");

    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["exit_code"], 0);
    assert_eq!(
        run_json["build"],
        if profile.is_empty() {
            "release"
        } else {
            "debug"
        }
    );
    assert!(count(&run_json["serve_peak_rss_kib"]) > 0, "{run_json}");

    let metrics = fs::read_to_string(run.join("metrics.txt")).expect("metrics.txt is text");
    assert!(
        metrics.contains("insight_"),
        "metrics.txt holds no insight metrics:\n{metrics}"
    );
    let worker_metrics =
        fs::read_to_string(run.join("worker-metrics.txt")).expect("worker-metrics.txt is text");
    assert!(
        worker_metrics.contains("insight_jobs_total"),
        "worker-metrics.txt counts no jobs:\n{worker_metrics}"
    );
}

/// A port nobody listens on at the moment.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

/// The one `<timestamp>` folder a run leaves in its results folder.
fn only_run_folder(results: &Path) -> PathBuf {
    let folders: Vec<PathBuf> = fs::read_dir(results)
        .expect("results folder is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(folders.len(), 1, "expected one run folder: {folders:?}");
    folders.into_iter().next().expect("one folder")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}
