//! Helsenorge tokens for seeded citizens, signed with the load test's key and kept
//! until shortly before they expire, so that signing does not load the generator.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use insight::auth::{DevKeyPair, citizen_claims};

/// How long a signed token is valid.
const LIFETIME: Duration = Duration::from_secs(3600);
/// A cached token is signed again when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Signs and caches citizen tokens.
#[derive(Debug)]
pub struct Tokens {
    key: DevKeyPair,
    issuer: String,
    scope: String,
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

impl Tokens {
    /// Loads the private key PEM written by `insight-loadtest keys`.
    pub fn load(path: &Path, kid: &str, issuer: &str, scope: &str) -> anyhow::Result<Self> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = DevKeyPair::from_private_pem(&pem, kid)
            .with_context(|| format!("loading the private key in {}", path.display()))?;

        Ok(Self {
            key,
            issuer: issuer.to_owned(),
            scope: scope.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A valid token for the citizen with this phone number.
    pub fn for_phone(&self, phone: &str) -> Result<String, insight::auth::DevKeyError> {
        if let Some(token) = self.cached(phone) {
            return Ok(token);
        }

        let claims = citizen_claims(phone, &self.issuer, &self.scope, LIFETIME);
        let token = self.key.sign(&claims)?;

        let cached = Cached {
            token: token.clone(),
            renew_at: Instant::now() + LIFETIME - RENEW_BEFORE,
        };
        self.lock().insert(phone.to_owned(), cached);
        Ok(token)
    }

    fn cached(&self, phone: &str) -> Option<String> {
        self.lock()
            .get(phone)
            .filter(|c| c.renew_at > Instant::now())
            .map(|c| c.token.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
