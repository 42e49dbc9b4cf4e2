//! The export worker against real PostgreSQL and Redis.

mod common;

use std::time::Duration;

use common::*;
use insight::domain::{Channel, TimeWindow};
use insight::source::rows::{BluetoothContact, GpsEvent};
use insight::store::{Attempt, Status};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn gps(from: &str, to: &str, speed: Option<f32>) -> GpsEvent {
    GpsEvent {
        time_from: Some(time(from)),
        time_to: Some(time(to)),
        latitude: Some(59.913_868),
        longitude: Some(10.752_245),
        accuracy: Some(12.5),
        speed,
        speed_accuracy: None,
        altitude: Some(20.25),
        altitude_accuracy: Some(3.0),
    }
}

fn contact(at: &str, tx_power: Option<i32>) -> BluetoothContact {
    BluetoothContact {
        paired_time: Some(time(at)),
        rssi: Some(-70),
        tx_power,
    }
}

/// Starts `insight worker` as its own process on the test's database and keys.
fn spawn_worker(env: &TestEnv, lease: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_insight"))
        .arg("worker")
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", redis_url())
        .env("INSIGHT_REDIS_PREFIX", &env.prefix)
        .env("WORKER_LEASE", lease)
        .env("WORKER_CHUNK_SIZE", "8192")
        .env("WORKER_POLL_INTERVAL", "10ms")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker")
}

/// Waits (up to a minute) until a key exists: the worker has reached that point.
async fn wait_for_key(env: &TestEnv, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let exists: i64 = fred::prelude::KeysInterface::exists(&env.redis, key)
            .await
            .unwrap();
        if exists == 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never wrote {key}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn every_device_document_equals_its_source_rows() {
    let env = TestEnv::new().await;
    let phone = "+4791000001";
    let first = env
        .insert_device(phone, &device("Pixel «Ærlig» 日本"))
        .await;
    let second = env.insert_device(phone, &device("iPhone")).await;
    let third = env.insert_device(phone, &device("no rows")).await;
    let other = env
        .insert_device("+4791000002", &device("someone else"))
        .await;

    // Inserted out of order: the document must still be in time order.
    let late = gps("2020-04-02T10:00:00Z", "2020-04-02T10:05:00.5Z", Some(1.5));
    let early = gps("2020-04-01T09:00:00Z", "2020-04-01T09:01:00Z", None);
    env.insert_gps(first, &late).await;
    env.insert_gps(first, &early).await;
    env.insert_bluetooth(first, &contact("2020-04-03T12:00:00Z", Some(12)))
        .await;
    env.insert_bluetooth(first, &contact("2020-04-01T12:00:00Z", None))
        .await;
    env.insert_gps(second, &early).await;
    env.insert_gps(other, &early).await;

    let request = env
        .order(Channel::Helsenorge, phone, TimeWindow::default())
        .await;
    assert_eq!(request.devices.len(), 3);
    env.run_jobs().await;

    let done = env.request(request.id).await;
    assert_status(&done, Status::Ready);
    assert_eq!(done.completed, 3);

    let first_doc = stored_document(
        &env,
        request.id,
        request.devices.iter().position(|d| *d == first).unwrap(),
    )
    .await;
    assert_eq!(
        first_doc,
        json!({
            "uuid": first.to_string(),
            "device": {"platform": "android", "os_version": "14", "app_version": "1.2.0",
                       "model": "Pixel «Ærlig» 日本", "created_at": "2020-04-01T10:00:00Z"},
            "gps_events": [
                {"time_from": "2020-04-01T09:00:00Z", "time_to": "2020-04-01T09:01:00Z",
                 "latitude": 59.913868, "longitude": 10.752245, "accuracy": 12.5, "speed": null,
                 "speed_accuracy": null, "altitude": 20.25, "altitude_accuracy": 3.0},
                {"time_from": "2020-04-02T10:00:00Z", "time_to": "2020-04-02T10:05:00.500Z",
                 "latitude": 59.913868, "longitude": 10.752245, "accuracy": 12.5, "speed": 1.5,
                 "speed_accuracy": null, "altitude": 20.25, "altitude_accuracy": 3.0}
            ],
            "bluetooth_contacts": [
                {"paired_time": "2020-04-01T12:00:00Z", "rssi": -70, "tx_power": null},
                {"paired_time": "2020-04-03T12:00:00Z", "rssi": -70, "tx_power": 12}
            ]
        })
    );
    let empty_doc = stored_document(
        &env,
        request.id,
        request.devices.iter().position(|d| *d == third).unwrap(),
    )
    .await;
    assert_eq!(empty_doc["gps_events"], json!([]));
    assert_eq!(empty_doc["bluetooth_contacts"], json!([]));

    let entries = env.store.entries(request.id).await.unwrap();
    let counts: Vec<(u64, u64)> = entries
        .iter()
        .map(|(_, e)| (e.gps_events, e.bluetooth_contacts))
        .collect();
    let first_index = request.devices.iter().position(|d| *d == first).unwrap();
    assert_eq!(counts[first_index], (2, 2));
}

#[tokio::test]
async fn the_time_window_keeps_overlapping_gps_and_contained_contacts() {
    let env = TestEnv::new().await;
    let phone = "+4791000003";
    let uuid = env.insert_device(phone, &device("window")).await;
    env.insert_gps(
        uuid,
        &gps("2020-04-01T07:00:00Z", "2020-04-01T07:59:59Z", None),
    )
    .await; // before
    env.insert_gps(
        uuid,
        &gps("2020-04-01T07:30:00Z", "2020-04-01T08:00:00Z", None),
    )
    .await; // ends at start
    env.insert_gps(
        uuid,
        &gps("2020-04-01T09:00:00Z", "2020-04-01T09:30:00Z", None),
    )
    .await; // inside
    env.insert_gps(
        uuid,
        &gps("2020-04-01T10:00:00Z", "2020-04-01T11:00:00Z", None),
    )
    .await; // starts at end
    env.insert_gps(
        uuid,
        &gps("2020-04-01T10:00:01Z", "2020-04-01T11:00:00Z", None),
    )
    .await; // after
    env.insert_bluetooth(uuid, &contact("2020-04-01T07:59:59Z", None))
        .await;
    env.insert_bluetooth(uuid, &contact("2020-04-01T08:00:00Z", Some(1)))
        .await;
    env.insert_bluetooth(uuid, &contact("2020-04-01T10:00:00Z", Some(2)))
        .await;
    env.insert_bluetooth(uuid, &contact("2020-04-01T10:00:01Z", None))
        .await;

    let window = TimeWindow::new(
        Some(time("2020-04-01T08:00:00Z")),
        Some(time("2020-04-01T10:00:00Z")),
    )
    .unwrap();
    let request = env.order(Channel::Fhi, phone, window).await;
    env.run_jobs().await;

    let doc = stored_document(&env, request.id, 0).await;
    let starts: Vec<&str> = doc["gps_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time_from"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2020-04-01T07:30:00Z",
            "2020-04-01T09:00:00Z",
            "2020-04-01T10:00:00Z"
        ]
    );
    let contacts: Vec<&str> = doc["bluetooth_contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["paired_time"].as_str().unwrap())
        .collect();
    assert_eq!(contacts, ["2020-04-01T08:00:00Z", "2020-04-01T10:00:00Z"]);
}

#[tokio::test]
async fn every_key_expires_with_its_request() {
    let env = TestEnv::new().await;
    let phone = "+4791000004";
    let uuid = env.insert_device(phone, &device("expiry")).await;
    env.insert_many_gps(uuid, 5_000).await;
    let request = env
        .order(Channel::Helsenorge, phone, TimeWindow::default())
        .await;
    env.run_jobs().await;
    assert_status(&env.request(request.id).await, Status::Ready);

    let expires = request.expires_at.timestamp_millis();
    let keys = env.keys_with_expiry().await;
    assert!(keys.len() >= 4, "{keys:?}");
    for (key, at) in keys {
        assert!(at > 0, "{key} has no expiry");
        if key.contains(&request.id.to_string()) || key.contains(":owner:") {
            assert_eq!(at, expires, "{key}");
        } else {
            assert!(at >= expires, "{key} expires before the request");
        }
    }
}

#[tokio::test]
async fn a_persistent_failure_ends_failed_with_its_reason() {
    let env = TestEnv::new().await;
    let phone = "+4791000005";
    env.insert_device(phone, &device("doomed")).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;
    sqlx::query("ALTER TABLE gps_events RENAME TO gps_events_gone")
        .execute(&env.pool)
        .await
        .unwrap();

    env.run_jobs().await;

    let failed = env.request(request.id).await;
    assert_status(&failed, Status::Failed);
    assert_eq!(failed.attempts, 3);
    let reason = failed.error.unwrap();
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("gps_events"),
        "{reason}"
    );
    assert_eq!(env.store.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_succeeds() {
    let env = TestEnv::new().await;
    let phone = "+4791000006";
    let uuid = env.insert_device(phone, &device("flaky")).await;
    env.insert_many_gps(uuid, 100).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;

    sqlx::query("ALTER TABLE gps_events RENAME TO gps_events_away")
        .execute(&env.pool)
        .await
        .unwrap();
    let worker = env.worker();
    assert!(worker.run_one(&CancellationToken::new()).await.unwrap());
    let after_failure = env.request(request.id).await;
    assert_status(&after_failure, Status::Pending);
    assert!(after_failure.error.is_some());

    sqlx::query("ALTER TABLE gps_events_away RENAME TO gps_events")
        .execute(&env.pool)
        .await
        .unwrap();
    env.run_jobs().await;
    assert_status(&env.request(request.id).await, Status::Ready);
    assert_eq!(
        stored_document(&env, request.id, 0).await["gps_events"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_write() {
    let env = TestEnv::new().await;
    let phone = "+4791000007";
    env.insert_device(phone, &device("fenced")).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;

    let Attempt::Started { lease: stale, .. } =
        env.store.begin_attempt(request.id, 5).await.unwrap()
    else {
        panic!("first attempt not started");
    };
    let Attempt::Started { lease: current, .. } =
        env.store.begin_attempt(request.id, 5).await.unwrap()
    else {
        panic!("second attempt not started");
    };

    let refused = stale
        .store_chunk(0, 0, bytes::Bytes::from_static(b"stale"))
        .await;
    assert!(
        matches!(refused, Err(insight::store::StoreError::Fenced)),
        "{refused:?}"
    );
    assert!(stale.mark_failed("stale").await.is_err());
    assert!(
        current
            .store_chunk(0, 0, bytes::Bytes::from_static(b"fresh"))
            .await
            .is_ok()
    );
    assert_eq!(
        env.store.chunk(request.id, 0, 0).await.unwrap().unwrap(),
        "fresh"
    );
}

#[tokio::test]
async fn a_deleted_request_is_not_exported() {
    let env = TestEnv::new().await;
    let phone = "+4791000008";
    env.insert_device(phone, &device("deleted")).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;
    env.orders().delete(&request).await.unwrap();

    env.run_jobs().await;
    assert!(env.store.request(request.id).await.unwrap().is_none());
    assert!(env.keys_with_expiry().await.is_empty());
}

#[tokio::test]
async fn a_killed_worker_job_is_finished_by_another_with_every_row_once() {
    let env = TestEnv::new().await;
    let phone = "+4791000009";
    let small = env.insert_device(phone, &device("small")).await;
    env.insert_many_gps(small, 1_000).await;
    let big = env.insert_device(phone, &device("big")).await;
    env.insert_many_gps(big, 300_000).await;
    sqlx::query("UPDATE devices SET created_at = created_at + interval '1 day' WHERE uuid = $1")
        .bind(big)
        .execute(&env.pool)
        .await
        .unwrap();
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;
    assert_eq!(request.devices, [small, big]);

    let mut child = spawn_worker(&env, "2s");

    // Kill it once the big device is half-written: its chunk key exists.
    let big_key = env.store.keys().device(request.id, 1);
    wait_for_key(&env, &big_key).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let interrupted = env.request(request.id).await;
    assert_status(&interrupted, Status::Pending);
    assert_eq!(interrupted.completed, 1);

    // The job is not due again until its lease runs out.
    let worker = env.worker();
    assert!(!worker.run_one(&CancellationToken::new()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    env.run_jobs().await;

    let done = env.request(request.id).await;
    assert_status(&done, Status::Ready);
    assert_eq!(done.attempts, 2);
    let doc = stored_document(&env, request.id, 1).await;
    let events = doc["gps_events"].as_array().unwrap();
    assert_eq!(events.len(), 300_000);
    let starts: Vec<&str> = events
        .iter()
        .map(|e| e["time_from"].as_str().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "rows repeated or out of order"
    );
    assert_eq!(
        stored_document(&env, request.id, 0).await["gps_events"]
            .as_array()
            .unwrap()
            .len(),
        1_000
    );
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_hands_its_job_back_and_exits_cleanly() {
    let env = TestEnv::new().await;
    let phone = "+4791000010";
    let big = env.insert_device(phone, &device("big")).await;
    env.insert_many_gps(big, 300_000).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;

    let mut child = spawn_worker(&env, "60s");
    let key = env.store.keys().device(request.id, 0);
    wait_for_key(&env, &key).await;
    terminate_cleanly(&mut child).await;

    // Handed back: due at once, attempt not counted, and the next worker finishes it.
    let handed = env.request(request.id).await;
    assert_status(&handed, Status::Pending);
    assert_eq!(handed.attempts, 0);
    env.run_jobs().await;
    assert_status(&env.request(request.id).await, Status::Ready);
}

#[tokio::test]
async fn the_worker_serves_its_job_metrics() {
    let env = TestEnv::new().await;
    let phone = "+4791000011";
    let uuid = env.insert_device(phone, &device("metrics")).await;
    env.insert_many_gps(uuid, 100).await;
    let request = env.order(Channel::Fhi, phone, TimeWindow::default()).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_insight"));
    command
        .arg("worker")
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", redis_url())
        .env("INSIGHT_REDIS_PREFIX", &env.prefix)
        .env("WORKER_POLL_INTERVAL", "10ms")
        .env("WORKER_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let _child = command.spawn().unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while env.request(request.id).await.status != Status::Ready {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the export never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("insight_jobs_total{outcome=\"ready\"} 1"),
        "{text}"
    );
    assert!(text.contains("insight_job_duration_seconds"), "{text}");
}
