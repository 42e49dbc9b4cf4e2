//! A running API on a free port, backed by a [`TestEnv`], with development keys.

use std::time::Duration;

use insight::api::{AppState, run};
use insight::auth::{DevKeyPair, citizen_claims};
use insight::config::{ApiSettings, TokenKeySettings};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::TestEnv;

pub const API_KEY: &str = "test-api-key-0123456789";
pub const ISSUER: &str = "sikkerhet.helsenorge.no";
pub const SCOPE: &str = "innsynsmittestopp";

pub struct TestApp {
    pub env: TestEnv,
    pub base: String,
    pub http: reqwest::Client,
    pub keys: DevKeyPair,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts an app after `adjust` has changed its settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut ApiSettings)) -> Self {
        Self::spawn_on(TestEnv::new().await, adjust).await
    }

    /// Starts an app on a prepared environment.
    pub async fn spawn_on(env: TestEnv, adjust: impl FnOnce(&mut ApiSettings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = DevKeyPair::generate("test-key").expect("generate keys");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, keys.jwks_json()).expect("write JWKS");

        let mut settings = api_settings(jwks.to_string_lossy().into_owned());
        adjust(&mut settings);
        let state = AppState::from_settings(&settings, env.pool.clone(), env.store.clone())
            .await
            .expect("build the app state");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        tokio::spawn(run(
            listener,
            state,
            shutdown.clone(),
            Duration::from_secs(1),
        ));

        Self {
            env,
            base,
            http: reqwest::Client::builder().build().expect("client"),
            keys,
            shutdown,
            _dir: dir,
        }
    }

    /// Starts the graceful shutdown an operator's SIGTERM would.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A valid citizen token for `phone`.
    pub fn token(&self, phone: &str) -> String {
        self.keys
            .sign(&citizen_claims(
                phone,
                ISSUER,
                SCOPE,
                Duration::from_secs(600),
            ))
            .expect("sign")
    }

    /// A request on a channel route with the API key, and a citizen token for
    /// `/helsenorge` routes when `phone` is given.
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        phone: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Api-Key", API_KEY);
        if let Some(phone) = phone {
            request = request.bearer_auth(self.token(phone));
        }
        request
    }

    /// Sends [`TestApp::call`] as it is.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        phone: Option<&str>,
    ) -> reqwest::Response {
        self.call(method, path, phone)
            .send()
            .await
            .expect("request")
    }

    pub async fn order_helsenorge(&self, phone: &str) -> reqwest::Response {
        self.call(reqwest::Method::POST, "/helsenorge/egress", Some(phone))
            .send()
            .await
            .expect("order")
    }

    pub async fn order_fhi(&self, body: serde_json::Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, "/fhi/fhi-egress", None)
            .json(&body)
            .send()
            .await
            .expect("order")
    }

    /// Orders for `phone` through Helsenorge and answers the result path.
    pub async fn ordered_path(&self, phone: &str) -> String {
        let response = self.order_helsenorge(phone).await;
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.expect("json");
        format!(
            "/helsenorge/egress/{}",
            body["request_id"].as_str().expect("request_id")
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn api_settings(jwks: String) -> ApiSettings {
    ApiSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        api_key: Some(SecretString::from(API_KEY)),
        owner_key: None,
        token_keys: TokenKeySettings {
            helsenorge_jwks: Some(jwks),
            helsenorge_jwt_public_key: None,
            helsenorge_jwt_issuer: ISSUER.into(),
            helsenorge_jwt_scope: SCOPE.into(),
            helsenorge_phone_claim: "phone_number".into(),
        },
        helsenorge_expiry: Duration::from_secs(3600),
        fhi_expiry: Duration::from_secs(1800),
        public_base_url: None,
        max_queue: 1000,
        max_downloads: 64,
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
    }
}

/// Reads every entry of a zip with async_zip's checking reader and answers
/// (name, contents) pairs.
pub async fn read_zip(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    use async_zip::base::read1::seek::ZipArchiveReader;
    use futures_util::io::{AsyncReadExt, Cursor};

    let mut reader = ZipArchiveReader::open(Cursor::new(bytes))
        .await
        .expect("a zip archive");
    let names: Vec<String> = reader
        .cdrs()
        .iter()
        .map(|cdr| {
            cdr.insecure_file_name
                .as_str()
                .expect("utf-8 name")
                .to_owned()
        })
        .collect();
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let mut content = Vec::new();
        let mut file = reader.file(i).await.expect("entry");
        file.read_to_end(&mut content)
            .await
            .expect("entry passes CRC and size checks");
        out.push((name, content));
    }
    out
}

/// Runs `unzip -t` on the archive and answers whether it passed.
pub fn unzip_test(bytes: &[u8]) -> bool {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bytes).expect("write archive");
    std::process::Command::new("unzip")
        .arg("-tq")
        .arg(file.path())
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}
