//! Verification of Helsenorge's bearer tokens into a [`Citizen`].
//!
//! Signing keys come from a PEM public key (one key, `kid` ignored) or a JWKS
//! document in a file or at a URL (key chosen by `kid`). A token naming a `kid` the
//! verifier does not know makes it reload the JWKS once, at most once per
//! [`RefreshPolicy::min_reload_interval`], so that Helsenorge can rotate keys
//! without a restart while a flood of made-up `kid`s cannot turn into a flood of
//! fetches. A JWKS URL is also refreshed in the background once the keys are older
//! than [`RefreshPolicy::max_key_age`].

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::domain::PhoneNumber;

/// A JWKS is a few kilobytes; anything far larger is not one.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a token must say to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The exact `iss` value (`sikkerhet.helsenorge.no` by default).
    pub issuer: String,
    /// The scope that `scp` must contain (`innsynsmittestopp` by default).
    pub scope: String,
    /// The name of the claim holding the citizen's phone number (`phone_number`).
    pub phone_claim: String,
    /// Clock skew tolerated on `exp` and `nbf` (30 s by default).
    pub leeway: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "sikkerhet.helsenorge.no".to_owned(),
            scope: "innsynsmittestopp".to_owned(),
            phone_claim: "phone_number".to_owned(),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Where the token signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM RSA public key: the one key, whatever `kid` a token names.
    Pem(PathBuf),
    /// A JWKS document in a file, re-read when an unknown `kid` appears.
    JwksFile(PathBuf),
    /// A JWKS document at a URL, re-fetched when an unknown `kid` appears and when
    /// the keys grow old.
    JwksUrl(reqwest::Url),
}

impl KeySource {
    /// Reads a `HELSENORGE_JWKS` setting: an `http://` or `https://` URL, else a path.
    pub fn jwks(location: &str) -> Result<Self, KeyError> {
        let is_url = location.starts_with("https://") || location.starts_with("http://");
        if !is_url {
            return Ok(Self::JwksFile(PathBuf::from(location)));
        }

        reqwest::Url::parse(location)
            .map(Self::JwksUrl)
            .map_err(|e| KeyError::InvalidUrl {
                url: location.to_owned(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Pem(path) => write!(f, "PEM public key file {}", path.display()),
            KeySource::JwksFile(path) => write!(f, "JWKS file {}", path.display()),
            KeySource::JwksUrl(url) => write!(f, "JWKS URL {url}"),
        }
    }
}

/// How often the verifier may go back to its key source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// The least time between two reloads caused by unknown `kid`s (30 s).
    pub min_reload_interval: Duration,
    /// Keys from a JWKS URL older than this are re-fetched in the background (1 h).
    pub max_key_age: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_reload_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(60 * 60),
        }
    }
}

/// Why the signing keys could not be loaded. Each names the file or URL.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {source_name}: {reason}")]
    Read { source_name: String, reason: String },

    #[error("cannot fetch {source_name}: {reason}")]
    Fetch { source_name: String, reason: String },

    #[error("{source_name} does not hold an RSA public key: {reason}")]
    InvalidPem { source_name: String, reason: String },

    #[error("{source_name} is not a JWKS document: {reason}")]
    InvalidJwks { source_name: String, reason: String },

    #[error("{source_name} holds no RS256 signing key with a key id (kid)")]
    NoUsableKeys { source_name: String },

    #[error("'{url}' is not a valid JWKS URL: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("cannot build the HTTP client for the JWKS URL: {0}")]
    HttpClient(String),
}

/// Why a request was refused. The text is short, safe to show the caller and
/// never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No acceptable token: answered with `401`.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the required scope: answered with `403`.
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    fn unauthorized(reason: impl Into<String>) -> Self {
        Self::Unauthorized(reason.into())
    }
}

/// The citizen a verified token speaks for.
///
/// `Debug` hides the person id and names and masks the phone number, so that a
/// `Citizen` can never put personal data into a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Citizen {
    /// The person id (`sub`), a national identity number in production.
    pub person_id: String,
    /// `sub_given_name`, never blank.
    pub given_name: String,
    /// `sub_middle_name`; empty when the citizen has no middle name.
    pub middle_name: String,
    /// `sub_family_name`, never blank.
    pub family_name: String,
    /// The phone number claim: whose data the citizen may order and download.
    pub phone: PhoneNumber,
}

impl Citizen {
    /// Given, middle (when there is one) and family name, separated by single spaces.
    pub fn full_name(&self) -> String {
        [&self.given_name, &self.middle_name, &self.family_name]
            .iter()
            .map(|part| part.trim())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for Citizen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Citizen")
            .field("person_id", &"[redacted]")
            .field("name", &"[redacted]")
            .field("phone", &self.phone)
            .finish()
    }
}

/// Verifies Helsenorge bearer tokens. Cheap to clone; clones share keys and reloads.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    source: KeySource,
    settings: TokenSettings,
    policy: RefreshPolicy,
    validation: Validation,
    http: Option<reqwest::Client>,
    keys: RwLock<Arc<LoadedKeys>>,
    /// Held while reloading; holds the time of the last reload attempt.
    reload_gate: Mutex<Option<Instant>>,
    reloads: AtomicU64,
}

struct LoadedKeys {
    keys: Keys,
    loaded_at: Instant,
}

enum Keys {
    Single(DecodingKey),
    ByKid(HashMap<String, DecodingKey>),
}

/// The two header fields the verifier looks at before choosing a key.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

impl TokenVerifier {
    /// Loads the signing keys from `source`, failing when they cannot be read.
    pub async fn from_source(source: KeySource, settings: TokenSettings) -> Result<Self, KeyError> {
        Self::from_source_with_policy(source, settings, RefreshPolicy::default()).await
    }

    /// As [`TokenVerifier::from_source`], with its own reload timing.
    pub async fn from_source_with_policy(
        source: KeySource,
        settings: TokenSettings,
        policy: RefreshPolicy,
    ) -> Result<Self, KeyError> {
        crate::auth::install_crypto_provider();

        let http = match source {
            KeySource::JwksUrl(_) => Some(http_client()?),
            _ => None,
        };
        let keys = load_keys(&source, http.as_ref()).await?;
        tracing::info!(
            key.source = %source,
            key.count = keys.len(),
            "loaded the Helsenorge token signing keys"
        );

        let inner = Inner {
            validation: validation(&settings),
            keys: RwLock::new(Arc::new(LoadedKeys::new(keys))),
            reload_gate: Mutex::new(None),
            reloads: AtomicU64::new(0),
            source,
            settings,
            policy,
            http,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Verifies the `Authorization` header's bearer token and returns its citizen.
    ///
    /// Must run inside a Tokio runtime: keys from a JWKS URL that have grown old
    /// are re-fetched on a spawned task.
    pub async fn verify(&self, authorization_header: Option<&str>) -> Result<Citizen, AuthError> {
        let result = self.verify_token(authorization_header).await;

        if let Err(error) = &result {
            tracing::debug!(auth.reason = %error, "refused a Helsenorge bearer token");
        }
        result
    }

    async fn verify_token(&self, authorization_header: Option<&str>) -> Result<Citizen, AuthError> {
        let token = bearer_token(authorization_header)?;
        let header = jose_header(token)?;

        // Only RS256 is Helsenorge's; refusing every other `alg` before any key is
        // touched rules out `none` and HMAC-with-the-public-key tricks outright.
        if header.alg != "RS256" {
            return Err(AuthError::unauthorized(
                "only RS256-signed tokens are accepted",
            ));
        }

        let key = self.key_for(header.kid.as_deref()).await?;
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.inner.validation)
                .map_err(rejection)?
                .claims;

        let settings = &self.inner.settings;
        check_issuer(&claims, settings)?;
        check_scope(&claims, settings)?;
        citizen(&claims, settings)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let keys = self.current_keys().await;
        self.refresh_if_stale(&keys);

        if let Keys::Single(key) = &keys.keys {
            return Ok(key.clone());
        }

        let kid = kid.ok_or_else(|| AuthError::unauthorized("token header has no key id (kid)"))?;
        match keys.find(kid) {
            Some(key) => Ok(key.clone()),
            None => self.reload_for_unknown_kid(kid).await,
        }
    }

    async fn current_keys(&self) -> Arc<LoadedKeys> {
        Arc::clone(&*self.inner.keys.read().await)
    }

    /// Reloads the JWKS once for a `kid` that is not in it, within the rate limit.
    async fn reload_for_unknown_kid(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let unknown = || AuthError::unauthorized("token is signed with an unknown key");
        let mut last_attempt = self.inner.reload_gate.lock().await;

        // Requests that waited at the gate find the key another one just loaded.
        if let Some(key) = self.current_keys().await.find(kid) {
            return Ok(key.clone());
        }

        if !self.inner.may_reload(*last_attempt) {
            return Err(unknown());
        }
        *last_attempt = Some(Instant::now());
        self.inner.reload().await;

        self.current_keys()
            .await
            .find(kid)
            .cloned()
            .ok_or_else(unknown)
    }

    /// Starts a background re-fetch of a JWKS URL whose keys have grown old.
    ///
    /// The request carries on with the keys it has, so a slow or failing identity
    /// service does not hold up citizens whose keys are still valid.
    fn refresh_if_stale(&self, keys: &LoadedKeys) {
        if !self.inner.is_stale(keys) {
            return;
        }

        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let Ok(mut last_attempt) = inner.reload_gate.try_lock() else {
                return;
            };
            let still_stale = inner.is_stale(&inner.keys.read().await.clone());
            if !still_stale || !inner.may_reload(*last_attempt) {
                return;
            }
            *last_attempt = Some(Instant::now());
            inner.reload().await;
        });
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("source", &self.inner.source)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn may_reload(&self, last_attempt: Option<Instant>) -> bool {
        last_attempt.is_none_or(|at| at.elapsed() >= self.policy.min_reload_interval)
    }

    fn is_stale(&self, keys: &LoadedKeys) -> bool {
        matches!(self.source, KeySource::JwksUrl(_))
            && keys.loaded_at.elapsed() >= self.policy.max_key_age
    }

    /// Replaces the keys with a fresh load; on failure keeps the old ones.
    async fn reload(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);

        match load_keys(&self.source, self.http.as_ref()).await {
            Ok(keys) => {
                tracing::info!(
                    key.source = %self.source,
                    key.count = keys.len(),
                    "reloaded the Helsenorge token signing keys"
                );
                *self.keys.write().await = Arc::new(LoadedKeys::new(keys));
            }
            Err(error) => {
                tracing::warn!(
                    key.source = %self.source,
                    error = %error,
                    "could not reload the Helsenorge token signing keys; keeping the old ones"
                );
            }
        }
    }
}

impl LoadedKeys {
    fn new(keys: Keys) -> Self {
        Self {
            keys,
            loaded_at: Instant::now(),
        }
    }

    fn find(&self, kid: &str) -> Option<&DecodingKey> {
        match &self.keys {
            Keys::Single(key) => Some(key),
            Keys::ByKid(keys) => keys.get(kid),
        }
    }
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::Single(_) => 1,
            Keys::ByKid(keys) => keys.len(),
        }
    }
}

fn validation(settings: &TokenSettings) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = settings.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[&settings.issuer]);

    // The security model names no audience, and the library would otherwise refuse
    // every token that carries one.
    validation.validate_aud = false;
    validation
}

fn http_client() -> Result<reqwest::Client, KeyError> {
    reqwest::Client::builder()
        .timeout(JWKS_FETCH_TIMEOUT)
        .build()
        .map_err(|e| KeyError::HttpClient(e.to_string()))
}

async fn load_keys(source: &KeySource, http: Option<&reqwest::Client>) -> Result<Keys, KeyError> {
    match source {
        KeySource::Pem(path) => {
            let pem = read_file(source, path).await?;
            pem_key(source, &pem)
        }
        KeySource::JwksFile(path) => {
            let document = read_file(source, path).await?;
            jwks_keys(source, &document)
        }
        KeySource::JwksUrl(url) => {
            let document = fetch(source, url, http).await?;
            jwks_keys(source, &document)
        }
    }
}

async fn read_file(source: &KeySource, path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    tokio::fs::read(path).await.map_err(|e| KeyError::Read {
        source_name: source.to_string(),
        reason: e.to_string(),
    })
}

async fn fetch(
    source: &KeySource,
    url: &reqwest::Url,
    http: Option<&reqwest::Client>,
) -> Result<Vec<u8>, KeyError> {
    let failed = |reason: String| KeyError::Fetch {
        source_name: source.to_string(),
        reason,
    };
    let client = match http {
        Some(client) => client.clone(),
        None => http_client()?,
    };

    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered {status}")));
    }

    let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(failed(format!(
            "the document is over {MAX_JWKS_BYTES} bytes"
        )));
    }
    Ok(body.to_vec())
}

fn pem_key(source: &KeySource, pem: &[u8]) -> Result<Keys, KeyError> {
    DecodingKey::from_rsa_pem(pem)
        .map(Keys::Single)
        .map_err(|e| KeyError::InvalidPem {
            source_name: source.to_string(),
            reason: e.to_string(),
        })
}

/// The RS256 signing keys of a JWKS, by `kid`. Keys of other kinds or uses are
/// skipped, so that an HMAC or encryption key published alongside can never be used
/// to check a signature.
fn jwks_keys(source: &KeySource, document: &[u8]) -> Result<Keys, KeyError> {
    let jwks: JwkSet = serde_json::from_slice(document).map_err(|e| KeyError::InvalidJwks {
        source_name: source.to_string(),
        reason: e.to_string(),
    })?;

    let keys: HashMap<String, DecodingKey> = jwks
        .keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.as_ref()?;
            let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                return None;
            };
            let rs256 = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
            let signing = matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            );
            if !(rs256 && signing) {
                return None;
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?;
            Some((kid.clone(), key))
        })
        .collect();

    if keys.is_empty() {
        return Err(KeyError::NoUsableKeys {
            source_name: source.to_string(),
        });
    }
    Ok(Keys::ByKid(keys))
}

fn bearer_token(authorization_header: Option<&str>) -> Result<&str, AuthError> {
    let header = authorization_header
        .ok_or_else(|| AuthError::unauthorized("missing Authorization header"))?
        .trim();

    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::unauthorized(
            "the Authorization header must use the Bearer scheme",
        ));
    }

    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::unauthorized("the bearer token is empty"));
    }
    Ok(token)
}

fn jose_header(token: &str) -> Result<JoseHeader, AuthError> {
    let malformed = || AuthError::unauthorized("malformed token");

    let encoded = token.split('.').next().ok_or_else(malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| malformed())?;
    serde_json::from_slice(&json).map_err(|_| malformed())
}

/// Turns jsonwebtoken's refusal into a reason for the caller.
fn rejection(error: jsonwebtoken::errors::Error) -> AuthError {
    let reason = match error.kind() {
        ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
        ErrorKind::ExpiredSignature => "token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "token issuer is not accepted".to_owned(),
        ErrorKind::InvalidAlgorithm => "only RS256-signed tokens are accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no '{claim}' claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim '{claim}' is malformed"),
        _ => "malformed token".to_owned(),
    };
    AuthError::Unauthorized(reason)
}

/// `iss` must be exactly the configured issuer; the library would also accept an
/// array that merely contains it.
fn check_issuer(claims: &Map<String, Value>, settings: &TokenSettings) -> Result<(), AuthError> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(issuer) if issuer == settings.issuer => Ok(()),
        _ => Err(AuthError::unauthorized("token issuer is not accepted")),
    }
}

/// `scp` is either one space-separated string or an array of scopes.
fn check_scope(claims: &Map<String, Value>, settings: &TokenSettings) -> Result<(), AuthError> {
    let wanted = settings.scope.as_str();
    let granted = match claims.get("scp") {
        Some(Value::String(scopes)) => scopes.split_whitespace().any(|s| s == wanted),
        Some(Value::Array(scopes)) => scopes.iter().any(|s| s.as_str() == Some(wanted)),
        _ => false,
    };

    if granted {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "token does not grant the '{wanted}' scope"
        )))
    }
}

fn citizen(claims: &Map<String, Value>, settings: &TokenSettings) -> Result<Citizen, AuthError> {
    Ok(Citizen {
        person_id: required_text(claims, "sub")?,
        given_name: required_text(claims, "sub_given_name")?,
        middle_name: string_claim(claims, "sub_middle_name")?.to_owned(),
        family_name: required_text(claims, "sub_family_name")?,
        phone: phone(claims, &settings.phone_claim)?,
    })
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, AuthError> {
    match claims.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(AuthError::Unauthorized(format!(
            "token claim '{name}' is not a string"
        ))),
        None => Err(AuthError::Unauthorized(format!(
            "token has no '{name}' claim"
        ))),
    }
}

/// A string claim that must not be blank.
fn required_text(claims: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    let value = string_claim(claims, name)?.trim();
    if value.is_empty() {
        return Err(AuthError::Unauthorized(format!(
            "token claim '{name}' is empty"
        )));
    }
    Ok(value.to_owned())
}

fn phone(claims: &Map<String, Value>, name: &str) -> Result<PhoneNumber, AuthError> {
    let raw = string_claim(claims, name)?;

    // PhoneNumber::parse demands the `+` too; checking it here first keeps the
    // security model's rule visible where the claim is read.
    if !raw.starts_with('+') {
        return Err(AuthError::Unauthorized(format!(
            "token claim '{name}' must start with '+'"
        )));
    }
    PhoneNumber::parse(raw).map_err(|_| {
        AuthError::Unauthorized(format!("token claim '{name}' is not an E.164 phone number"))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::LazyLock;
    use std::sync::atomic::AtomicUsize;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::auth::devkeys::{DevKeyPair, citizen_claims, jwks_document};

    const ISSUER: &str = "sikkerhet.helsenorge.no";
    const SCOPE: &str = "innsynsmittestopp";
    const PHONE: &str = "+4791234567";

    fn generate(kid: &str) -> DevKeyPair {
        DevKeyPair::generate(kid).expect("generate a test key")
    }

    static KEY: LazyLock<DevKeyPair> = LazyLock::new(|| generate("key-1"));
    static NEXT_KEY: LazyLock<DevKeyPair> = LazyLock::new(|| generate("key-2"));
    static THIRD_KEY: LazyLock<DevKeyPair> = LazyLock::new(|| generate("key-3"));
    // Someone else's key published under our key's id.
    static FOREIGN_KEY: LazyLock<DevKeyPair> = LazyLock::new(|| generate("key-1"));

    struct Fixture {
        _dir: TempDir,
        path: PathBuf,
        verifier: TokenVerifier,
    }

    impl Fixture {
        async fn verify(&self, token: &str) -> Result<Citizen, AuthError> {
            self.verifier.verify(Some(&format!("Bearer {token}"))).await
        }

        fn publish(&self, keys: &[&DevKeyPair]) {
            std::fs::write(&self.path, jwks_document(keys)).expect("rewrite the JWKS");
        }

        fn reloads(&self) -> u64 {
            self.verifier.inner.reloads.load(Ordering::Relaxed)
        }
    }

    async fn fixture(
        file: &str,
        contents: &str,
        source: fn(PathBuf) -> KeySource,
        settings: TokenSettings,
        policy: RefreshPolicy,
    ) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file);
        std::fs::write(&path, contents).expect("write the key file");

        let verifier =
            TokenVerifier::from_source_with_policy(source(path.clone()), settings, policy)
                .await
                .expect("load the keys");
        Fixture {
            _dir: dir,
            path,
            verifier,
        }
    }

    async fn jwks_verifier(keys: &[&DevKeyPair], policy: RefreshPolicy) -> Fixture {
        let jwks = jwks_document(keys);
        let settings = TokenSettings::default();
        fixture("jwks.json", &jwks, KeySource::JwksFile, settings, policy).await
    }

    async fn verifier() -> Fixture {
        jwks_verifier(&[&KEY], RefreshPolicy::default()).await
    }

    async fn pem_verifier() -> Fixture {
        let pem = KEY.public_pem();
        let settings = TokenSettings::default();
        let policy = RefreshPolicy::default();
        fixture("public.pem", &pem, KeySource::Pem, settings, policy).await
    }

    fn valid_claims() -> Value {
        citizen_claims(PHONE, ISSUER, SCOPE, Duration::from_secs(300))
    }

    fn sign(key: &DevKeyPair, claims: &Value) -> String {
        key.sign(claims).expect("sign")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    async fn verify_claims(claims: Value) -> Result<Citizen, AuthError> {
        verifier().await.verify(&sign(&KEY, &claims)).await
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        if let Some(map) = claims.as_object_mut() {
            map.remove(name);
        }
        claims
    }

    #[track_caller]
    fn assert_unauthorized(result: Result<Citizen, AuthError>, reason_part: &str) {
        match result {
            Err(AuthError::Unauthorized(reason)) => {
                assert!(
                    reason.contains(reason_part),
                    "reason {reason:?} lacks {reason_part:?}"
                )
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_forbidden(result: Result<Citizen, AuthError>) {
        assert!(
            matches!(result, Err(AuthError::Forbidden(_))),
            "expected Forbidden, got {result:?}"
        );
    }

    fn base64url(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_citizen() {
        let citizen = verify_claims(valid_claims()).await.expect("accepted");

        assert_eq!(citizen.person_id, "dev-4791234567");
        assert_eq!(citizen.given_name, "Kari");
        assert_eq!(citizen.middle_name, "Demo");
        assert_eq!(citizen.family_name, "Nordmann");
        assert_eq!(citizen.phone.as_str(), PHONE);
        assert_eq!(citizen.full_name(), "Kari Demo Nordmann");
    }

    #[tokio::test]
    async fn an_empty_middle_name_is_accepted_and_left_out_of_the_full_name() {
        let claims = with(valid_claims(), "sub_middle_name", json!(""));

        let citizen = verify_claims(claims).await.expect("accepted");

        assert_eq!(citizen.middle_name, "");
        assert_eq!(citizen.full_name(), "Kari Nordmann");
    }

    #[tokio::test]
    async fn a_missing_header_is_unauthorized() {
        let fixture = verifier().await;

        assert_unauthorized(fixture.verifier.verify(None).await, "missing");
    }

    #[tokio::test]
    async fn a_scheme_other_than_bearer_is_unauthorized() {
        let fixture = verifier().await;
        let token = sign(&KEY, &valid_claims());

        for header in [
            format!("Basic {token}"),
            format!("Token {token}"),
            token.clone(),
            "Basic dXNlcjpwYXNz".to_owned(),
        ] {
            let result = fixture.verifier.verify(Some(&header)).await;
            assert_unauthorized(result, "Bearer");
        }
    }

    #[tokio::test]
    async fn the_bearer_scheme_is_case_insensitive() {
        let fixture = verifier().await;
        let token = sign(&KEY, &valid_claims());

        for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
            let header = format!("{scheme} {token}");
            assert!(
                fixture.verifier.verify(Some(&header)).await.is_ok(),
                "{scheme}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_tokens_are_unauthorized_and_not_echoed() {
        let fixture = verifier().await;

        for garbage in [
            "not-a-jwt",
            "a.b.c",
            "eyJhbGciOiJSUzI1NiJ9.e30",
            "...",
            "Bearer",
        ] {
            let result = fixture.verify(garbage).await;
            match &result {
                Err(AuthError::Unauthorized(reason)) => {
                    assert!(!reason.contains(garbage), "{reason:?} echoes the token")
                }
                other => panic!("expected Unauthorized for {garbage:?}, got {other:?}"),
            }
        }
        let empty = fixture.verifier.verify(Some("Bearer   ")).await;
        assert_unauthorized(empty, "empty");
    }

    #[tokio::test]
    async fn an_unsigned_alg_none_token_is_unauthorized() {
        let fixture = verifier().await;
        let header = json!({"alg": "none", "typ": "JWT", "kid": "key-1"});
        let unsigned = format!("{}.{}", base64url(&header), base64url(&valid_claims()));

        assert_unauthorized(fixture.verify(&format!("{unsigned}.")).await, "RS256");
        assert_unauthorized(fixture.verify(&unsigned).await, "RS256");
        let stolen_signature = sign(&KEY, &valid_claims());
        let (_, signature) = stolen_signature.rsplit_once('.').expect("three parts");
        let resigned = format!("{unsigned}.{signature}");
        assert_unauthorized(fixture.verify(&resigned).await, "RS256");
    }

    fn hs256_with_the_public_key_as_secret() -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KEY.kid().to_owned());
        let secret = EncodingKey::from_secret(KEY.public_pem().as_bytes()).expect("secret");

        jsonwebtoken::encode(&header, &valid_claims(), &secret).expect("sign HS256")
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_is_unauthorized() {
        let token = hs256_with_the_public_key_as_secret();

        let from_jwks = verifier().await.verify(&token).await;
        let from_pem = pem_verifier().await.verify(&token).await;

        assert_unauthorized(from_jwks, "RS256");
        assert_unauthorized(from_pem, "RS256");
    }

    #[tokio::test]
    async fn other_algorithms_are_unauthorized() {
        let fixture = verifier().await;
        let valid = sign(&KEY, &valid_claims());
        let (_, rest) = valid.split_once('.').expect("three parts");

        for alg in [
            "RS384", "RS512", "PS256", "ES256", "HS512", "EdDSA", "rs256",
        ] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": "key-1"});
            let token = format!("{}.{rest}", base64url(&header));
            assert_unauthorized(fixture.verify(&token).await, "RS256");
        }
    }

    #[tokio::test]
    async fn a_token_signed_by_a_foreign_key_with_our_kid_is_unauthorized() {
        let token = sign(&FOREIGN_KEY, &valid_claims());

        assert_unauthorized(verifier().await.verify(&token).await, "signature");
        assert_unauthorized(pem_verifier().await.verify(&token).await, "signature");
    }

    #[tokio::test]
    async fn a_tampered_payload_is_unauthorized() {
        let token = sign(&KEY, &valid_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other_phone = with(valid_claims(), "phone_number", json!("+4799999999"));
        let tampered = format!("{}.{}.{}", parts[0], base64url(&other_phone), parts[2]);

        assert_unauthorized(verifier().await.verify(&tampered).await, "signature");
    }

    #[tokio::test]
    async fn a_token_expired_beyond_the_leeway_is_unauthorized() {
        let claims = with(valid_claims(), "exp", json!(now() - 60));

        assert_unauthorized(verify_claims(claims).await, "expired");
    }

    #[tokio::test]
    async fn a_token_expired_within_the_leeway_is_accepted() {
        let claims = with(valid_claims(), "exp", json!(now() - 10));

        assert!(verify_claims(claims).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_exp_is_unauthorized() {
        let claims = without(valid_claims(), "exp");

        assert_unauthorized(verify_claims(claims).await, "exp");
    }

    #[tokio::test]
    async fn a_token_not_valid_yet_is_unauthorized() {
        let claims = with(valid_claims(), "nbf", json!(now() + 120));

        assert_unauthorized(verify_claims(claims).await, "not valid yet");
    }

    #[tokio::test]
    async fn nbf_within_the_leeway_or_absent_is_accepted() {
        let soon = with(valid_claims(), "nbf", json!(now() + 10));
        let absent = without(valid_claims(), "nbf");

        assert!(verify_claims(soon).await.is_ok());
        assert!(verify_claims(absent).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_or_missing_issuer_is_unauthorized() {
        let wrong = with(valid_claims(), "iss", json!("evil.example.com"));
        let array = with(valid_claims(), "iss", json!([ISSUER, "evil.example.com"]));
        let missing = without(valid_claims(), "iss");

        assert_unauthorized(verify_claims(wrong).await, "issuer");
        assert_unauthorized(verify_claims(array).await, "iss");
        assert_unauthorized(verify_claims(missing).await, "iss");
    }

    #[tokio::test]
    async fn each_required_claim_must_be_present() {
        let fixture = verifier().await;

        for claim in [
            "sub",
            "sub_given_name",
            "sub_middle_name",
            "sub_family_name",
            "phone_number",
        ] {
            let token = sign(&KEY, &without(valid_claims(), claim));
            assert_unauthorized(fixture.verify(&token).await, claim);

            let not_a_string = sign(&KEY, &with(valid_claims(), claim, json!(42)));
            assert_unauthorized(fixture.verify(&not_a_string).await, claim);
        }
    }

    #[tokio::test]
    async fn blank_person_id_and_names_are_unauthorized() {
        let fixture = verifier().await;

        for claim in ["sub", "sub_given_name", "sub_family_name"] {
            let token = sign(&KEY, &with(valid_claims(), claim, json!("  ")));
            assert_unauthorized(fixture.verify(&token).await, claim);
        }
    }

    #[tokio::test]
    async fn a_phone_number_without_plus_is_unauthorized() {
        let fixture = verifier().await;

        for phone in ["4791234567", "004791234567", "+47abc", "+47", ""] {
            let token = sign(&KEY, &with(valid_claims(), "phone_number", json!(phone)));
            assert_unauthorized(fixture.verify(&token).await, "phone_number");
        }
    }

    #[tokio::test]
    async fn the_phone_claim_name_is_a_setting() {
        let settings = TokenSettings {
            phone_claim: "mobile".to_owned(),
            ..TokenSettings::default()
        };
        let jwks = jwks_document(&[&KEY]);
        let policy = RefreshPolicy::default();
        let fixture = fixture("jwks.json", &jwks, KeySource::JwksFile, settings, policy).await;
        let claims = with(valid_claims(), "mobile", json!("+4798765432"));
        let only_default = valid_claims();

        let citizen = fixture
            .verify(&sign(&KEY, &without(claims, "phone_number")))
            .await;
        let refused = fixture.verify(&sign(&KEY, &only_default)).await;

        assert_eq!(citizen.expect("accepted").phone.as_str(), "+4798765432");
        assert_unauthorized(refused, "mobile");
    }

    #[tokio::test]
    async fn the_scope_may_be_a_string_a_list_in_a_string_or_an_array() {
        let fixture = verifier().await;

        for scp in [
            json!("innsynsmittestopp"),
            json!("openid innsynsmittestopp profile"),
            json!(["openid", "innsynsmittestopp"]),
        ] {
            let token = sign(&KEY, &with(valid_claims(), "scp", scp.clone()));
            assert!(fixture.verify(&token).await.is_ok(), "scp {scp}");
        }
    }

    #[tokio::test]
    async fn a_missing_or_wrong_scope_is_forbidden() {
        let fixture = verifier().await;

        for scp in [
            json!("openid"),
            json!("innsynsmittestopp-admin"),
            json!("openid,innsynsmittestopp"),
            json!(["openid innsynsmittestopp"]),
            json!([]),
            json!(42),
        ] {
            let token = sign(&KEY, &with(valid_claims(), "scp", scp));
            assert_forbidden(fixture.verify(&token).await);
        }
        let missing = sign(&KEY, &without(valid_claims(), "scp"));
        assert_forbidden(fixture.verify(&missing).await);
    }

    #[tokio::test]
    async fn a_jwks_token_without_kid_is_unauthorized() {
        let encoding_key = EncodingKey::from_rsa_pem(KEY.private_pem().as_bytes()).expect("key");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &valid_claims(),
            &encoding_key,
        )
        .expect("sign");

        assert_unauthorized(verifier().await.verify(&token).await, "kid");
    }

    #[tokio::test]
    async fn an_unknown_kid_reloads_the_jwks_once_within_the_rate_limit() {
        let fixture = verifier().await;

        fixture.publish(&[&KEY, &NEXT_KEY]);
        let rotated = fixture.verify(&sign(&NEXT_KEY, &valid_claims())).await;
        assert!(rotated.is_ok(), "{rotated:?}");
        assert_eq!(fixture.reloads(), 1);

        fixture.publish(&[&KEY, &NEXT_KEY, &THIRD_KEY]);
        let too_soon = fixture.verify(&sign(&THIRD_KEY, &valid_claims())).await;
        assert_unauthorized(too_soon, "unknown key");
        assert_eq!(fixture.reloads(), 1);
    }

    #[tokio::test]
    async fn an_unknown_kid_reloads_again_once_the_interval_has_passed() {
        let policy = RefreshPolicy {
            min_reload_interval: Duration::from_millis(500),
            ..RefreshPolicy::default()
        };
        let fixture = jwks_verifier(&[&KEY], policy).await;
        let token = sign(&NEXT_KEY, &valid_claims());

        assert_unauthorized(fixture.verify(&token).await, "unknown key");
        assert_unauthorized(fixture.verify(&token).await, "unknown key");
        assert_eq!(fixture.reloads(), 1);

        fixture.publish(&[&KEY, &NEXT_KEY]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(fixture.verify(&token).await.is_ok());
        assert_eq!(fixture.reloads(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_verifies_with_a_new_kid_reload_once() {
        let fixture = verifier().await;
        fixture.publish(&[&KEY, &NEXT_KEY]);
        let header = format!("Bearer {}", sign(&NEXT_KEY, &valid_claims()));

        let verifies = (0..20).map(|_| {
            let verifier = fixture.verifier.clone();
            let header = header.clone();
            tokio::spawn(async move { verifier.verify(Some(&header)).await })
        });
        let results = futures_util::future::join_all(verifies).await;

        for result in results {
            assert!(result.expect("task").is_ok());
        }
        assert_eq!(fixture.reloads(), 1);
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_old_keys() {
        let fixture = verifier().await;
        std::fs::write(&fixture.path, "{ not json").expect("break the JWKS");

        let unknown = fixture.verify(&sign(&NEXT_KEY, &valid_claims())).await;
        let known = fixture.verify(&sign(&KEY, &valid_claims())).await;

        assert_unauthorized(unknown, "unknown key");
        assert!(known.is_ok());
        assert_eq!(fixture.reloads(), 1);
    }

    #[tokio::test]
    async fn a_pem_source_accepts_its_key_whatever_the_kid() {
        let fixture = pem_verifier().await;
        let other_kid =
            DevKeyPair::from_private_pem(&KEY.private_pem(), "any-kid").expect("load the key");
        let encoding_key = EncodingKey::from_rsa_pem(KEY.private_pem().as_bytes()).expect("key");
        let no_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &valid_claims(),
            &encoding_key,
        )
        .expect("sign");

        assert!(fixture.verify(&sign(&KEY, &valid_claims())).await.is_ok());
        assert!(
            fixture
                .verify(&sign(&other_kid, &valid_claims()))
                .await
                .is_ok()
        );
        assert!(fixture.verify(&no_kid).await.is_ok());
        assert_eq!(fixture.reloads(), 0);
    }

    async fn load_error(source: KeySource) -> String {
        let result = TokenVerifier::from_source(source, TokenSettings::default()).await;
        match result {
            Err(error) => error.to_string(),
            Ok(_) => panic!("the keys should not load"),
        }
    }

    #[tokio::test]
    async fn unreadable_or_invalid_key_files_fail_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.json");
        let garbage = dir.path().join("garbage.txt");
        std::fs::write(&garbage, "not a key").expect("write");
        let hmac_only = dir.path().join("hmac.json");
        let oct = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]});
        std::fs::write(&hmac_only, oct.to_string()).expect("write");

        let shown = |path: &Path| path.display().to_string();
        let cases = [
            (KeySource::JwksFile(missing.clone()), shown(&missing)),
            (KeySource::Pem(missing.clone()), shown(&missing)),
            (KeySource::JwksFile(garbage.clone()), shown(&garbage)),
            (KeySource::Pem(garbage.clone()), shown(&garbage)),
            (KeySource::JwksFile(hmac_only.clone()), shown(&hmac_only)),
        ];
        for (source, path) in cases {
            let error = load_error(source).await;
            assert!(error.contains(&path), "{error:?} does not name {path}");
        }
    }

    #[tokio::test]
    async fn a_jwks_skips_keys_that_are_not_rs256_signing_keys() {
        let mut encryption_key = NEXT_KEY.jwk();
        encryption_key["use"] = json!("enc");
        let mut rs512_key = THIRD_KEY.jwk();
        rs512_key["alg"] = json!("RS512");
        let jwks = json!({"keys": [
            KEY.jwk(),
            encryption_key,
            rs512_key,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]});
        let settings = TokenSettings::default();
        let policy = RefreshPolicy::default();
        let fixture = fixture(
            "jwks.json",
            &jwks.to_string(),
            KeySource::JwksFile,
            settings,
            policy,
        )
        .await;

        assert!(fixture.verify(&sign(&KEY, &valid_claims())).await.is_ok());
        let encryption = fixture.verify(&sign(&NEXT_KEY, &valid_claims())).await;
        assert_unauthorized(encryption, "unknown key");
    }

    #[test]
    fn a_jwks_setting_is_a_url_or_a_path() {
        let url = KeySource::jwks("https://helsenorge.example/jwks.json").expect("a URL");
        let path = KeySource::jwks("/etc/insight/jwks.json").expect("a path");

        assert!(matches!(url, KeySource::JwksUrl(u) if u.host_str() == Some("helsenorge.example")));
        assert_eq!(
            path,
            KeySource::JwksFile(PathBuf::from("/etc/insight/jwks.json"))
        );
        assert!(KeySource::jwks("https://").is_err());
    }

    #[test]
    fn citizen_debug_hides_personal_data() {
        let citizen = Citizen {
            person_id: "12345678901".to_owned(),
            given_name: "Kari".to_owned(),
            middle_name: String::new(),
            family_name: "Nordmann".to_owned(),
            phone: PhoneNumber::parse(PHONE).expect("phone"),
        };

        let shown = format!("{citizen:?}");

        for secret in ["12345678901", "Kari", "Nordmann", PHONE] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
    }

    /// A JWKS endpoint on 127.0.0.1 that answers every request with `document`.
    struct JwksServer {
        url: reqwest::Url,
        document: Arc<std::sync::Mutex<String>>,
        requests: Arc<AtomicUsize>,
    }

    impl JwksServer {
        async fn start(document: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("local address");
            let document = Arc::new(std::sync::Mutex::new(document));
            let requests = Arc::new(AtomicUsize::new(0));

            let served = (Arc::clone(&document), Arc::clone(&requests));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    served.1.fetch_add(1, Ordering::SeqCst);
                    let body = served.0.lock().expect("document").clone();
                    tokio::spawn(answer(stream, body));
                }
            });

            let url = format!("http://{address}/.well-known/jwks.json");
            Self {
                url: reqwest::Url::parse(&url).expect("url"),
                document,
                requests,
            }
        }

        fn publish(&self, keys: &[&DevKeyPair]) {
            *self.document.lock().expect("document") = jwks_document(keys);
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    async fn answer(mut stream: tokio::net::TcpStream, body: String) {
        let mut request = Vec::new();
        let mut buffer = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }

        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    async fn url_verifier(server: &JwksServer, policy: RefreshPolicy) -> TokenVerifier {
        let source = KeySource::JwksUrl(server.url.clone());
        TokenVerifier::from_source_with_policy(source, TokenSettings::default(), policy)
            .await
            .expect("fetch the JWKS")
    }

    #[tokio::test]
    async fn a_jwks_url_is_fetched_again_for_an_unknown_kid() {
        let server = JwksServer::start(jwks_document(&[&KEY])).await;
        let verifier = url_verifier(&server, RefreshPolicy::default()).await;
        let known = format!("Bearer {}", sign(&KEY, &valid_claims()));
        let rotated = format!("Bearer {}", sign(&NEXT_KEY, &valid_claims()));

        assert!(verifier.verify(Some(&known)).await.is_ok());
        assert_eq!(server.requests(), 1);

        server.publish(&[&KEY, &NEXT_KEY]);
        let result = verifier.verify(Some(&rotated)).await;

        assert!(result.is_ok(), "{result:?}");
        assert_eq!(server.requests(), 2);
    }

    #[tokio::test]
    async fn old_keys_from_a_jwks_url_are_refreshed_in_the_background() {
        let policy = RefreshPolicy {
            min_reload_interval: Duration::from_secs(3600),
            max_key_age: Duration::from_millis(200),
        };
        let server = JwksServer::start(jwks_document(&[&KEY])).await;
        let verifier = url_verifier(&server, policy).await;
        let known = format!("Bearer {}", sign(&KEY, &valid_claims()));
        let rotated = format!("Bearer {}", sign(&NEXT_KEY, &valid_claims()));

        tokio::time::sleep(Duration::from_millis(250)).await;
        server.publish(&[&KEY, &NEXT_KEY]);
        assert!(verifier.verify(Some(&known)).await.is_ok());
        wait_for(|| verifier.inner.reloads.load(Ordering::Relaxed) == 1).await;
        // The refresh counts once it has started; let it install the new keys.
        drop(verifier.inner.reload_gate.lock().await);

        let result = verifier.verify(Some(&rotated)).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(server.requests(), 2);
    }

    async fn wait_for(condition: impl Fn() -> bool) {
        for _ in 0..200 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the condition did not become true within 2 s");
    }

    #[tokio::test]
    async fn an_unreachable_jwks_url_fails_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let url = format!("http://{address}/jwks.json");

        let error = load_error(KeySource::jwks(&url).expect("a URL")).await;

        assert!(error.contains(&url), "{error:?} does not name {url}");
    }
}
