//! The README's first command: `insight demo` starts, prints commands, and those
//! commands order, poll and download a valid archive. Its logs hold no full phone
//! number.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

#[tokio::test]
async fn the_demo_prints_a_flow_that_downloads_an_archive() {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("insight_test_demo_{}", &tag[..12]);
    let prefix = format!("test-demo-{}", &tag[..12]);
    let work = tempfile::tempdir().unwrap();

    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_insight"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--citizens",
            "50",
            "--key-dir",
        ])
        .arg(work.path())
        .env("DATABASE_URL", format!("{}/{database}", postgres_base()))
        .env("REDIS_URL", redis_url())
        .env("INSIGHT_REDIS_PREFIX", &prefix)
        .env("LOG_FORMAT", "json")
        .env(
            "RUST_LOG",
            "debug,sqlx=warn,fred=warn,hyper=warn,h2=warn,reqwest=warn",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Read the printed instructions up to the FHI example, the last command.
    let mut stdout = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            let last = line.contains("/fhi/fhi-egress");
            printed.push(line);
            if last {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the demo printed no instructions: {printed:?}"
    );
    let start = printed
        .iter()
        .position(|l| l.starts_with("export API_KEY"))
        .unwrap();
    let end = printed
        .iter()
        .position(|l| l.starts_with("unzip -l"))
        .unwrap();
    let flow = printed[start..=end].join("\n");
    let fhi_example = printed.last().unwrap().clone();

    let ran = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&flow)
            .current_dir(work.path())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        out.contains("Not finished processing") || out.contains("manifest.json"),
        "{out}"
    );
    assert!(out.contains("manifest.json"), "{out}");
    let archive = std::fs::read(work.path().join("insight.zip")).unwrap();
    assert!(common::app::unzip_test(&archive));

    // Stop it like an operator would, then read everything it logged.
    terminate_cleanly(&mut demo).await;
    let mut logs = String::new();
    demo.stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();

    let phone = fhi_example
        .split("\"phone_number\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(phone.starts_with("+47") && phone.len() == 11, "{phone}");
    assert!(logs.contains("export ready"), "{logs}");
    assert!(
        !logs.contains(&phone),
        "a log line holds the full phone number"
    );
    assert!(
        !logs.contains(&phone[1..]),
        "a log line holds the phone number's digits"
    );
    let token = flow
        .split("TOKEN='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert!(!logs.contains(token), "a log line holds the token");
    let key = flow
        .split("API_KEY='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert!(!logs.contains(key), "a log line holds the API key");

    let admin = insight::source::connect(&format!("{}/postgres", postgres_base()), 1)
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&admin)
        .await;
}
