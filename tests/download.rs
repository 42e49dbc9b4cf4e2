//! Downloads of ready archives: ranges, validators, HEAD, and failures mid-stream.

mod common;

use std::time::Duration;

use common::app::*;
use common::*;
use reqwest::Method;

const PHONE: &str = "+4793000001";

/// A ready export of two devices, spread over many small chunks. Answers the FHI
/// result path.
async fn ready_export(app: &TestApp, rows: i64) -> String {
    for _ in 0..2 {
        let uuid = app.env.insert_device(PHONE, &device("ranges")).await;
        app.env.insert_many_gps(uuid, rows).await;
    }
    let ordered = app
        .order_fhi(
            serde_json::json!({"phone_number": PHONE, "person_name": "Ola", "legal_means": "test"}),
        )
        .await;
    let body: serde_json::Value = ordered.json().await.unwrap();
    app.env.run_jobs().await;
    format!("/fhi/fhi-egress/{}", body["request_id"].as_str().unwrap())
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.call(Method::GET, path, None);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn downloads_logged(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM access_log WHERE action = 'download'")
        .fetch_one(&app.env.pool)
        .await
        .unwrap()
}

/// Waits (up to 20 s) until `expected` downloads are logged, and answers how many are.
async fn downloads_logged_by_now(app: &TestApp, expected: i64) -> i64 {
    for _ in 0..200 {
        let logged = downloads_logged(app).await;
        if logged >= expected {
            return logged;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    downloads_logged(app).await
}

#[tokio::test]
async fn every_range_is_the_same_slice_of_the_whole_archive() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 20_000).await;
    let full = get(&app, &path, &[]).await;
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let whole = full.bytes().await.unwrap();
    let len = whole.len();
    assert!(
        len > 50_000,
        "want an archive over many chunks, got {len} bytes"
    );

    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 1),
        ("bytes=0-99".into(), 0, 100),
        ("bytes=4090-8200".into(), 4090, 8201),
        (format!("bytes={}-", len / 2), len / 2, len),
        ("bytes=-22".into(), len - 22, len),
        (format!("bytes=-{}", len * 2), 0, len),
        (format!("bytes={}-{}", len - 1, len + 100), len - 1, len),
    ];
    for (range, start, end) in cases {
        let answer = get(&app, &path, &[("range", &range)]).await;
        assert_eq!(answer.status(), 206, "{range}");
        assert_eq!(
            answer.headers()["content-range"].to_str().unwrap(),
            format!("bytes {start}-{}/{len}", end - 1),
            "{range}"
        );
        assert_eq!(
            answer.headers()["content-length"].to_str().unwrap(),
            (end - start).to_string()
        );
        assert_eq!(answer.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(
            answer.bytes().await.unwrap(),
            whole.slice(start..end),
            "{range}"
        );
    }

    let again = get(&app, &path, &[]).await;
    assert_eq!(
        again.headers()["etag"].to_str().unwrap(),
        etag,
        "the archive is deterministic"
    );
    assert_eq!(again.bytes().await.unwrap(), whole);
}

#[tokio::test]
async fn an_interrupted_download_resumes_into_a_valid_archive() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 5_000).await;
    let head = app.call(Method::HEAD, &path, None).send().await.unwrap();
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    let len: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let first = get(&app, &path, &[("range", &format!("bytes=0-{}", len / 3))])
        .await
        .bytes()
        .await
        .unwrap();
    let rest = get(
        &app,
        &path,
        &[
            ("range", &format!("bytes={}-", first.len())),
            ("if-range", &etag),
        ],
    )
    .await;
    assert_eq!(rest.status(), 206);
    let mut joined = first.to_vec();
    joined.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(joined.len(), len);
    assert!(unzip_test(&joined));
    assert_eq!(read_zip(joined).await.len(), 3);
}

#[tokio::test]
async fn a_stale_if_range_or_several_ranges_answer_the_whole_archive() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 100).await;
    let whole = get(&app, &path, &[]).await.bytes().await.unwrap();

    let stale = get(
        &app,
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"something-else\"")],
    )
    .await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap(), whole);
    let several = get(&app, &path, &[("range", "bytes=0-9,20-29")]).await;
    assert_eq!(several.status(), 200);
    assert_eq!(several.bytes().await.unwrap().len(), whole.len());
}

#[tokio::test]
async fn a_range_past_the_end_answers_416() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 100).await;
    let len = get(&app, &path, &[]).await.bytes().await.unwrap().len();
    let answer = get(&app, &path, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(answer.status(), 416);
    assert_eq!(
        answer.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{len}")
    );
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn head_answers_the_headers_of_get_without_a_body() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 1_000).await;
    let get_answer = get(&app, &path, &[]).await;
    let head = app.call(Method::HEAD, &path, None).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for name in [
        "content-length",
        "content-type",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-disposition",
    ] {
        assert_eq!(
            head.headers().get(name),
            get_answer.headers().get(name),
            "{name}"
        );
    }
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_chunk_missing_mid_stream_aborts_the_connection() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 20_000).await;
    let id: insight::domain::RequestId = path.rsplit('/').next().unwrap().parse().unwrap();
    let entries = app.env.store.entries(id).await.unwrap();
    let (index, entry) = &entries[1];
    assert!(entry.chunks > 2);
    let key = app.env.store.keys().device(id, *index);
    let _: i64 = fred::prelude::HashesInterface::hdel(&app.env.redis, &key, entry.chunks / 2)
        .await
        .unwrap();

    let answer = get(&app, &path, &[]).await;
    assert_eq!(
        answer.status(),
        200,
        "the headers are known before any chunk is read"
    );
    let expected: usize = answer.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let read = answer.bytes().await;
    assert!(
        read.is_err(),
        "a truncated archive must not end like a whole one"
    );
    assert!(expected > 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(downloads_logged(&app).await, 0);
}

#[tokio::test]
async fn a_client_that_disconnects_leaves_the_server_serving() {
    let app = TestApp::spawn().await;
    let request = synthetic_ready_export(&app.env, PHONE, 24 << 20).await;
    let path = format!("/fhi/fhi-egress/{}", request.id);
    let mut answer = get(&app, &path, &[]).await;
    let first = answer.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(answer);

    let whole = get(&app, &path, &[]).await.bytes().await.unwrap();
    assert!(unzip_test(&whole));
    assert_eq!(
        downloads_logged_by_now(&app, 1).await,
        1,
        "only the finished download is logged"
    );
}

#[tokio::test]
async fn a_shutdown_lets_running_downloads_finish_and_refuses_new_ones() {
    let app = TestApp::spawn().await;
    let request = synthetic_ready_export(&app.env, PHONE, 24 << 20).await;
    let mut answer = get(&app, &format!("/fhi/fhi-egress/{}", request.id), &[]).await;
    let expected: usize = answer.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut received = answer.chunk().await.unwrap().unwrap().len();

    app.shut_down();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during shutdown"
    );

    while let Some(chunk) = answer.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, expected);
    assert!(expected > 24 << 20);
}

#[tokio::test]
async fn every_download_of_a_busy_moment_is_logged_with_its_order() {
    let app = TestApp::spawn().await;
    let path = ready_export(&app, 200).await;
    let downloads = (0..64).map(|_| async {
        let whole = get(&app, &path, &[]).await.bytes().await.unwrap();
        assert!(unzip_test(&whole));
    });
    futures_util::future::join_all(downloads).await;

    assert_eq!(downloads_logged_by_now(&app, 64).await, 64);
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT DISTINCT phone_number, person_name, legal_means FROM access_log")
            .fetch_all(&app.env.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![(PHONE.into(), "Ola".into(), "test".into())]);
}

/// Downloads a ready archive whole while the access-log table is renamed away, so
/// that its row cannot be written until [`restore_access_log`].
async fn download_while_the_access_log_fails(app: &TestApp) {
    let path = ready_export(app, 200).await;
    rename_access_log(app, "access_log", "access_log_away").await;
    let whole = get(app, &path, &[]).await.bytes().await.unwrap();
    assert!(unzip_test(&whole));
}

async fn restore_access_log(app: &TestApp) {
    rename_access_log(app, "access_log_away", "access_log").await;
}

async fn rename_access_log(app: &TestApp, from: &str, to: &str) {
    sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .execute(&app.env.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_download_completed_while_the_access_log_fails_is_logged_once_it_works() {
    let app = TestApp::spawn().await;
    download_while_the_access_log_fails(&app).await;
    // Long enough for several failed attempts to write the row.
    tokio::time::sleep(Duration::from_millis(800)).await;
    restore_access_log(&app).await;

    assert_eq!(downloads_logged_by_now(&app, 1).await, 1);
}

#[tokio::test]
async fn downloads_beyond_the_limit_answer_503_until_one_ends() {
    let app = TestApp::spawn_with(|settings| settings.max_downloads = 1).await;
    let request = synthetic_ready_export(&app.env, PHONE, 24 << 20).await;
    let path = format!("/fhi/fhi-egress/{}", request.id);
    let mut running = get(&app, &path, &[]).await;
    assert_eq!(running.status(), 200);
    assert!(!running.chunk().await.unwrap().unwrap().is_empty());

    let refused = get(&app, &path, &[]).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["message"],
        "too many downloads are running; try again later"
    );
    let head = app.call(Method::HEAD, &path, None).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD sends no body and needs no slot");

    drop(running);
    let mut answer = None;
    for _ in 0..50 {
        let attempt = get(&app, &path, &[]).await;
        if attempt.status() == 200 {
            answer = Some(attempt);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let whole = answer
        .expect("the slot of the abandoned download came back")
        .bytes()
        .await
        .unwrap();
    assert!(unzip_test(&whole));
}

#[tokio::test]
async fn a_shutdown_still_writes_the_rows_of_completed_downloads() {
    let app = TestApp::spawn().await;
    download_while_the_access_log_fails(&app).await;

    // The server stops at once; the row waits, retried, for PostgreSQL to take it.
    app.shut_down();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err(),
        "the server still answers"
    );
    restore_access_log(&app).await;
    assert_eq!(downloads_logged_by_now(&app, 1).await, 1);
}
