//! The HTTP contract over real HTTP, against real PostgreSQL and Redis.

mod common;

use std::time::Duration;

use common::app::*;
use common::*;
use insight::auth::{DevKeyPair, citizen_claims};
use reqwest::Method;
use serde_json::{Value, json};

const PHONE: &str = "+4792000001";

async fn citizen_with_rows(app: &TestApp, phone: &str, rows: i64) -> uuid::Uuid {
    let uuid = app.env.insert_device(phone, &device("Pixel «Ærlig»")).await;
    app.env.insert_many_gps(uuid, rows).await;
    uuid
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

async fn access_log(app: &TestApp) -> Vec<(String, String, String, String, String)> {
    sqlx::query_as(
        "SELECT action, phone_number, person_name, organization, legal_means FROM access_log ORDER BY id",
    )
    .fetch_all(&app.env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_citizen_orders_polls_and_downloads_a_verified_archive() {
    let app = TestApp::spawn().await;
    let first = citizen_with_rows(&app, PHONE, 2_000).await;
    let second = citizen_with_rows(&app, PHONE, 10).await;

    let ordered = app.order_helsenorge(PHONE).await;
    assert_eq!(ordered.status(), 202);
    let location = ordered.headers()["location"].to_str().unwrap().to_owned();
    let body = json_of(ordered).await;
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(body["result_url"], json!(location));
    assert!(
        location.starts_with("http://127.0.0.1:")
            && location.ends_with(&format!("/helsenorge/egress/{id}"))
    );
    assert!(body["result_expires"].as_str().unwrap().ends_with('Z'));

    let path = format!("/helsenorge/egress/{id}");
    let waiting = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(waiting.status(), 202);
    assert!(waiting.headers().contains_key("retry-after"));
    assert_eq!(
        json_of(waiting).await,
        json!({"message": "Not finished processing (completed 0/2 devices)", "completed": 0, "total": 2})
    );

    app.env.run_jobs().await;
    let download = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let headers = download.headers().clone();
    assert_eq!(headers["content-type"], "application/zip");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(headers.contains_key("etag") && headers.contains_key("last-modified"));
    let bytes = download.bytes().await.unwrap().to_vec();
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );

    assert!(unzip_test(&bytes), "unzip -t refused the archive");
    let files = read_zip(bytes).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    // Devices with the same creation time are ordered by uuid.
    let mut devices = [first, second];
    devices.sort();
    let expected_names = [
        format!("{}.json", devices[0]),
        format!("{}.json", devices[1]),
        "manifest.json".to_owned(),
    ];
    assert_eq!(names, expected_names);
    let first_at = devices.iter().position(|d| *d == first).unwrap();
    let doc: Value = serde_json::from_slice(&files[first_at].1).unwrap();
    assert_eq!(doc["gps_events"].as_array().unwrap().len(), 2_000);
    assert_eq!(doc["device"]["model"], json!("Pixel «Ærlig»"));
    let manifest: Value = serde_json::from_slice(&files[2].1).unwrap();
    assert_eq!(manifest["request_id"], json!(id));
    assert_eq!(manifest["entries"][first_at]["gps_events"], json!(2_000));
    assert_eq!(
        manifest["entries"][1 - first_at]["name"],
        json!(format!("{second}.json"))
    );

    // The download's row is written once the last byte has left; give it a moment.
    let mut log = access_log(&app).await;
    for _ in 0..500 {
        if log.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = access_log(&app).await;
    }
    assert_eq!(log.len(), 2, "{log:?}");
    for (i, action) in ["order", "download"].iter().enumerate() {
        assert_eq!(log[i].0, *action);
        assert_eq!(log[i].1, PHONE);
        assert_eq!(log[i].2, "Kari Demo Nordmann");
        assert_eq!(log[i].3, "Norsk Helsenett");
        assert_eq!(log[i].4, "Innsynsoppslag fra helsenorge.no");
    }
}

#[tokio::test]
async fn ordering_again_returns_the_same_request_until_it_is_deleted() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;

    let first = json_of(app.order_helsenorge(PHONE).await).await;
    let again = app.order_helsenorge(PHONE).await;
    assert_eq!(again.status(), 202);
    assert_eq!(json_of(again).await, first);
    app.env.run_jobs().await;
    assert_eq!(
        json_of(app.order_helsenorge(PHONE).await).await,
        first,
        "a ready request is reused too"
    );
    assert_eq!(app.env.store.queue_depth().await.unwrap(), 0);

    let path = format!(
        "/helsenorge/egress/{}",
        first["request_id"].as_str().unwrap()
    );
    let deleted = app
        .call(Method::DELETE, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(
        app.env.keys_with_expiry().await.is_empty(),
        "the prepared data is gone at once"
    );

    let fresh = json_of(app.order_helsenorge(PHONE).await).await;
    assert_ne!(fresh["request_id"], first["request_id"]);
}

#[tokio::test]
async fn concurrent_orders_for_one_phone_number_make_one_request() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let orders = (0..8).map(|_| app.order_helsenorge(PHONE));
    let answers = futures_util::future::join_all(orders).await;
    let mut ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 202);
        ids.push(
            json_of(answer).await["request_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.env.store.queue_depth().await.unwrap(), 1);
}

#[tokio::test]
async fn a_phone_number_without_devices_is_not_found_in_system() {
    let app = TestApp::spawn().await;
    let answer = app.order_helsenorge("+4799999999").await;
    assert_eq!(answer.status(), 404);
    let body = json_of(answer).await;
    assert_eq!(body["found_in_system"], json!(false));
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn requests_are_visible_only_to_their_channel_and_citizen() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let path = app.ordered_path(PHONE).await;
    let id = path.rsplit('/').next().unwrap().to_owned();

    let stranger = app
        .call(Method::GET, &path, Some("+4792000002"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 404);
    assert!(json_of(stranger).await["message"].is_string());
    let stranger_delete = app
        .call(Method::DELETE, &path, Some("+4792000002"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger_delete.status(), 404);
    let via_fhi = app
        .call(Method::GET, &format!("/fhi/fhi-egress/{id}"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(via_fhi.status(), 404);
    for bad in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let answer = app
            .call(
                Method::GET,
                &format!("/helsenorge/egress/{bad}"),
                Some(PHONE),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{bad}");
    }
    let mine = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 202);
}

#[tokio::test]
async fn every_channel_route_needs_the_api_key() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::POST, "/helsenorge/egress".to_owned()),
        (Method::GET, format!("/helsenorge/egress/{id}")),
        (Method::DELETE, format!("/helsenorge/egress/{id}")),
        (Method::POST, "/fhi/fhi-egress".to_owned()),
        (Method::GET, format!("/fhi/fhi-egress/{id}")),
        (Method::DELETE, format!("/fhi/fhi-egress/{id}")),
    ] {
        for key in [None, Some("wrong"), Some("")] {
            let mut request = app
                .http
                .request(method.clone(), app.url(&path))
                .bearer_auth(app.token(PHONE));
            if let Some(key) = key {
                request = request.header("Api-Key", key);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 401, "{method} {path} with {key:?}");
            assert!(json_of(answer).await["message"].is_string());
        }
    }
}

#[tokio::test]
async fn helsenorge_tokens_are_checked() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let foreign = DevKeyPair::generate("test-key").unwrap();
    let claims = || citizen_claims(PHONE, ISSUER, SCOPE, Duration::from_secs(600));
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        app.keys.sign(&c).unwrap()
    };
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims().to_string())
        )
    };

    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        ("garbage", Some("not.a.token".into()), 401),
        ("alg none", Some(unsigned), 401),
        ("foreign key", Some(foreign.sign(&claims()).unwrap()), 401),
        (
            "expired",
            Some(with(&|c| {
                c["exp"] = json!(c["iat"].as_i64().unwrap() - 3600)
            })),
            401,
        ),
        (
            "wrong issuer",
            Some(with(&|c| c["iss"] = json!("evil.example"))),
            401,
        ),
        (
            "no phone",
            Some(with(&|c| {
                c.as_object_mut().unwrap().remove("phone_number");
            })),
            401,
        ),
        (
            "bad phone",
            Some(with(&|c| c["phone_number"] = json!("4792000001"))),
            401,
        ),
        (
            "no sub",
            Some(with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            401,
        ),
        (
            "wrong scope",
            Some(with(&|c| c["scp"] = json!("something-else"))),
            403,
        ),
        ("valid", Some(with(&|_| {})), 202),
    ];
    for (name, token, status) in cases {
        let mut request = app
            .http
            .post(app.url("/helsenorge/egress"))
            .header("Api-Key", API_KEY);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{name}");
        assert!(json_of(answer).await.is_object(), "{name}");
    }
}

#[tokio::test]
async fn fhi_orders_are_validated_field_by_field() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let valid = json!({"phone_number": PHONE, "person_name": "Ola Nordmann", "legal_means": "Smittevernloven § 7-12"});

    for (field, body) in [
        (
            "phone_number",
            json!({"person_name": "Ola", "legal_means": "x"}),
        ),
        (
            "phone_number",
            json!({"phone_number": 4792000001u64, "person_name": "Ola", "legal_means": "x"}),
        ),
        (
            "person_name",
            json!({"phone_number": PHONE, "person_name": "", "legal_means": "x"}),
        ),
        (
            "legal_means",
            json!({"phone_number": PHONE, "person_name": "Ola"}),
        ),
        (
            "time_from",
            json!({"phone_number": PHONE, "person_name": "Ola", "legal_means": "x", "time_from": "today"}),
        ),
    ] {
        let answer = app.order_fhi(body).await;
        assert_eq!(answer.status(), 400, "{field}");
        assert_eq!(json_of(answer).await["field"], json!(field));
    }

    let malformed = app
        .call(Method::POST, "/fhi/fhi-egress", None)
        .body("{\"phone_number\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        json_of(malformed).await["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let huge = app
        .call(Method::POST, "/fhi/fhi-egress", None)
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert!(json_of(huge).await["message"].is_string());

    let accepted = app.order_fhi(valid).await;
    assert_eq!(accepted.status(), 202);
    assert!(
        json_of(accepted).await["result_url"]
            .as_str()
            .unwrap()
            .contains("/fhi/fhi-egress/")
    );
    let log = access_log(&app).await;
    assert_eq!(log[0].2, "Ola Nordmann");
    assert_eq!(log[0].3, "Folkehelseinstituttet");
    assert_eq!(log[0].4, "Smittevernloven § 7-12");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let unknown = app.http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(json_of(unknown).await["message"].is_string());
    let wrong_method = app
        .call(Method::PUT, "/fhi/fhi-egress", None)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(json_of(wrong_method).await["message"].is_string());
}

#[tokio::test]
async fn a_failed_export_answers_500_and_can_be_ordered_again() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let path = app.ordered_path(PHONE).await;
    sqlx::query("ALTER TABLE gps_events RENAME TO gps_gone")
        .execute(&app.env.pool)
        .await
        .unwrap();
    app.env.run_jobs().await;
    sqlx::query("ALTER TABLE gps_gone RENAME TO gps_events")
        .execute(&app.env.pool)
        .await
        .unwrap();

    let failed = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    assert!(
        json_of(failed).await["message"]
            .as_str()
            .unwrap()
            .contains("order it again")
    );
    let again = app.ordered_path(PHONE).await;
    assert_ne!(again, path);
}

#[tokio::test]
async fn an_order_whose_access_log_row_cannot_be_written_is_refused() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    sqlx::query("ALTER TABLE access_log RENAME TO access_log_gone")
        .execute(&app.env.pool)
        .await
        .unwrap();
    let refused = app.order_helsenorge(PHONE).await;
    assert_eq!(refused.status(), 503);
    assert!(json_of(refused).await["message"].is_string());
    assert_eq!(app.env.store.queue_depth().await.unwrap(), 0);
    assert!(
        app.env.keys_with_expiry().await.is_empty(),
        "nothing is left behind"
    );

    sqlx::query("ALTER TABLE access_log_gone RENAME TO access_log")
        .execute(&app.env.pool)
        .await
        .unwrap();
    assert_eq!(app.order_helsenorge(PHONE).await.status(), 202);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.max_queue = 1).await;
    citizen_with_rows(&app, PHONE, 5).await;
    citizen_with_rows(&app, "+4792000002", 5).await;
    assert_eq!(app.order_helsenorge(PHONE).await.status(), 202);
    let refused = app.order_helsenorge("+4792000002").await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn an_expired_request_answers_404() {
    let app = TestApp::spawn_with(|s| s.helsenorge_expiry = Duration::from_secs(2)).await;
    citizen_with_rows(&app, PHONE, 5).await;
    let path = app.ordered_path(PHONE).await;
    app.env.run_jobs().await;
    assert_eq!(
        app.call(Method::GET, &path, Some(PHONE))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let expired = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 404);
    assert!(
        app.env.keys_with_expiry().await.is_empty(),
        "every key expired with the request"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(json_of(ready).await["redis"], json!("ok"));
    citizen_with_rows(&app, PHONE, 5).await;
    app.order_helsenorge(PHONE).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("insight_orders_total"), "{metrics}");
    assert!(metrics.contains("insight_queue_depth"), "{metrics}");
}

/// A Redis server of the test's own, to be stopped under the app.
async fn private_redis() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start");
}

#[tokio::test]
async fn redis_going_away_answers_503_not_a_hang() {
    let (mut redis, url) = private_redis().await;
    let mut env = TestEnv::new().await;
    env.store = insight::store::Store::connect(&url, &env.prefix, 2)
        .await
        .unwrap();
    let app = TestApp::spawn_on(env, |_| {}).await;
    citizen_with_rows(&app, PHONE, 5).await;
    let path = app.ordered_path(PHONE).await;

    redis.kill().await.unwrap();
    let answer = app
        .call(Method::GET, &path, Some(PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    assert!(
        json_of(answer).await["message"]
            .as_str()
            .unwrap()
            .contains("unavailable")
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(json_of(ready).await["redis"], json!("unreachable"));
}

#[tokio::test]
async fn postgres_going_away_answers_503() {
    let app = TestApp::spawn().await;
    citizen_with_rows(&app, PHONE, 5).await;
    let admin = insight::source::connect(&format!("{}/postgres", postgres_base()), 1)
        .await
        .unwrap();
    sqlx::query(&format!(
        "DROP DATABASE {} WITH (FORCE)",
        app.env.database_name
    ))
    .execute(&admin)
    .await
    .unwrap();

    let answer = app.order_helsenorge(PHONE).await;
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    assert!(json_of(answer).await["message"].is_string());
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(json_of(ready).await["postgres"], json!("unreachable"));
}

#[tokio::test]
async fn a_missing_api_key_or_an_empty_owner_key_stops_start_up() {
    use insight::api::AppState;
    use secrecy::SecretString;

    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, DevKeyPair::generate("k").unwrap().jwks_json()).unwrap();
    let start = |settings| {
        let (pool, store) = (env.pool.clone(), env.store.clone());
        async move {
            match AppState::from_settings(&settings, pool, store).await {
                Ok(_) => String::new(),
                Err(e) => format!("{e:#}"),
            }
        }
    };

    let settings = || api_settings(jwks.to_string_lossy().into_owned());
    let mut no_api_key = settings();
    no_api_key.api_key = None;
    let mut empty_owner_key = settings();
    empty_owner_key.owner_key = Some(SecretString::from(""));
    let mut owner_key = settings();
    owner_key.owner_key = Some(SecretString::from("a deployment secret"));

    for (settings, expected) in [
        (no_api_key, Some("INSIGHT_API_KEY is required")),
        (empty_owner_key, Some("INSIGHT_OWNER_KEY is set but empty")),
        (owner_key, None),
    ] {
        let error = start(settings).await;
        match expected {
            Some(message) => assert!(error.contains(message), "{error:?} lacks {message:?}"),
            None => assert_eq!(error, "", "a set owner key starts"),
        }
    }
}
