//! Development and test key material: RSA key pairs generated at run time, the
//! JWKS and PEM documents that publish them, and citizen tokens signed with them.
//!
//! `insight demo`, the integration tests and the load-test tool use these to play
//! Helsenorge's identity service. Nothing here is meant for production signing, and
//! no key is ever committed to the repository: a process that needs the same key as
//! another passes [`DevKeyPair::private_pem`] along and loads it with
//! [`DevKeyPair::from_private_pem`].

use std::fmt;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Why development key material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("RSA key generation failed")]
    Generate,

    #[error("the RSA key could not be serialized")]
    Encode,

    #[error("not an unencrypted PKCS#8 RSA private key in PEM form: {0}")]
    InvalidPem(String),

    #[error("the token claims could not be serialized: {0}")]
    Claims(#[from] serde_json::Error),

    #[error("RS256 signing failed")]
    Sign,
}

/// An RSA 2048 key pair with its key id, signing RS256 tokens as Helsenorge would.
///
/// `Debug` shows the key id only.
pub struct DevKeyPair {
    kid: String,
    key_pair: KeyPair,
    private_pem: String,
    public_pem: String,
}

impl DevKeyPair {
    /// Generates a fresh RSA 2048 key pair published under `kid`.
    pub fn generate(kid: &str) -> Result<Self, DevKeyError> {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| DevKeyError::Generate)?;
        Self::from_key_pair(kid, key_pair)
    }

    /// Loads a key pair written earlier by [`DevKeyPair::private_pem`].
    pub fn from_private_pem(pem: &str, kid: &str) -> Result<Self, DevKeyError> {
        let der = pem_decode(pem, PRIVATE_KEY_LABEL)?;
        let key_pair =
            KeyPair::from_pkcs8(&der).map_err(|e| DevKeyError::InvalidPem(e.to_string()))?;
        Self::from_key_pair(kid, key_pair)
    }

    fn from_key_pair(kid: &str, key_pair: KeyPair) -> Result<Self, DevKeyError> {
        let private_der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
            key_pair.as_der().map_err(|_| DevKeyError::Encode)?;
        let public_der: aws_lc_rs::encoding::PublicKeyX509Der<'_> = key_pair
            .public_key()
            .as_der()
            .map_err(|_| DevKeyError::Encode)?;

        Ok(Self {
            kid: kid.to_owned(),
            private_pem: pem_encode(PRIVATE_KEY_LABEL, private_der.as_ref()),
            public_pem: pem_encode(PUBLIC_KEY_LABEL, public_der.as_ref()),
            key_pair,
        })
    }

    /// The key id that tokens carry in their header and the JWKS publishes.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as one JWK (`kty` RSA, `kid`, `alg` RS256, `use` sig, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let public = self.key_pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero();
        let e = public.exponent().big_endian_without_leading_zero();

        json!({
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(n),
            "e": URL_SAFE_NO_PAD.encode(e),
        })
    }

    /// A JWKS document holding this public key only.
    pub fn jwks_json(&self) -> String {
        jwks_document(&[self])
    }

    /// The public key as a PEM `PUBLIC KEY` (X.509 SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        self.public_pem.clone()
    }

    /// The private key as an unencrypted PKCS#8 PEM `PRIVATE KEY`.
    pub fn private_pem(&self) -> String {
        self.private_pem.clone()
    }

    /// Signs `claims` as an RS256 JWT whose header carries this key's `kid`.
    ///
    /// The token is assembled here rather than through jsonwebtoken's encoder, which
    /// re-parses the private key on every call; the load-test tool signs many.
    pub fn sign(&self, claims: &Value) -> Result<String, DevKeyError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?),
        );

        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| DevKeyError::Sign)?;

        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

impl fmt::Debug for DevKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A JWKS document publishing the public keys of `keys`, as during a key rotation.
pub fn jwks_document(keys: &[&DevKeyPair]) -> String {
    let keys: Vec<Value> = keys.iter().map(|key| key.jwk()).collect();
    json!({ "keys": keys }).to_string()
}

/// A complete, valid claim set for a citizen token, valid from now for `valid_for`.
///
/// It carries `sub`, `sub_given_name`, `sub_middle_name`, `sub_family_name`,
/// `phone_number`, `iss`, `scp`, `iat`, `nbf` and `exp`; tests alter or remove
/// claims from it. The person id is synthetic and derived from the phone number, so
/// one phone number always yields the same citizen.
pub fn citizen_claims(phone: &str, issuer: &str, scope: &str, valid_for: Duration) -> Value {
    let now = chrono::Utc::now().timestamp();
    let lifetime = i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX);
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();

    json!({
        "sub": format!("dev-{digits}"),
        "sub_given_name": "Kari",
        "sub_middle_name": "Demo",
        "sub_family_name": "Nordmann",
        "phone_number": phone,
        "iss": issuer,
        "scp": scope,
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(lifetime),
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");

    // RFC 7468 wraps the base64 text at 64 characters; base64 is ASCII, so
    // splitting the bytes never splits a character.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }

    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, DevKeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let missing_block = || DevKeyError::InvalidPem(format!("no '{begin}' block"));

    let (_, after_begin) = pem.split_once(&begin).ok_or_else(missing_block)?;
    let (body, _) = after_begin.split_once(&end).ok_or_else(missing_block)?;

    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(base64)
        .map_err(|e| DevKeyError::InvalidPem(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::LazyLock;

    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    static KEY: LazyLock<DevKeyPair> =
        LazyLock::new(|| DevKeyPair::generate("dev-key-1").expect("generate a test key"));

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation
    }

    fn claims() -> Value {
        citizen_claims(
            "+4791234567",
            "sikkerhet.helsenorge.no",
            "innsynsmittestopp",
            Duration::from_secs(300),
        )
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_jwk() {
        crate::auth::install_crypto_provider();
        let jwks: JwkSet = serde_json::from_str(&KEY.jwks_json()).expect("parse the JWKS");
        let jwk = jwks.find("dev-key-1").expect("the kid is published");
        let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");

        let token = KEY.sign(&claims()).expect("sign");
        let decoded =
            jsonwebtoken::decode::<Value>(&token, &key, &validation()).expect("token verifies");

        assert_eq!(decoded.header.kid.as_deref(), Some("dev-key-1"));
        assert_eq!(decoded.header.alg, Algorithm::RS256);
        assert_eq!(
            decoded.claims,
            claims_without_times(&claims(), &decoded.claims)
        );
    }

    // The clock may tick between two calls of `claims()`; compare the rest.
    fn claims_without_times(expected: &Value, actual: &Value) -> Value {
        let mut expected = expected.clone();
        for field in ["iat", "nbf", "exp"] {
            expected[field] = actual[field].clone();
        }
        expected
    }

    #[test]
    fn a_signed_token_verifies_with_the_public_pem() {
        crate::auth::install_crypto_provider();
        let key = DecodingKey::from_rsa_pem(KEY.public_pem().as_bytes()).expect("parse PEM");

        let token = KEY.sign(&claims()).expect("sign");

        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation()).is_ok());
    }

    #[test]
    fn the_jwk_describes_an_rs256_signing_key() {
        let jwk = KEY.jwk();

        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["kid"], "dev-key-1");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n is a string"))
            .expect("n is base64url");
        assert_eq!(n.len(), 256, "a 2048-bit modulus");
    }

    #[test]
    fn the_private_pem_loads_back_into_the_same_key() {
        let pem = KEY.private_pem();

        let loaded = DevKeyPair::from_private_pem(&pem, "dev-key-1").expect("load PEM");

        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(loaded.jwk(), KEY.jwk());
        assert_eq!(loaded.public_pem(), KEY.public_pem());
    }

    #[test]
    fn a_pem_that_is_not_a_private_key_is_refused() {
        let public = KEY.public_pem();

        assert!(DevKeyPair::from_private_pem(&public, "k").is_err());
        assert!(DevKeyPair::from_private_pem("garbage", "k").is_err());
    }

    #[test]
    fn debug_shows_only_the_kid() {
        let shown = format!("{:?}", *KEY);

        assert!(shown.contains("dev-key-1"));
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn jwks_document_publishes_every_key() {
        let other = DevKeyPair::from_private_pem(&KEY.private_pem(), "dev-key-2")
            .expect("load PEM under another kid");

        let jwks: HashMap<String, Vec<Value>> =
            serde_json::from_str(&jwks_document(&[&KEY, &other])).expect("parse");

        let kids: Vec<&Value> = jwks["keys"].iter().map(|k| &k["kid"]).collect();
        assert_eq!(kids, ["dev-key-1", "dev-key-2"]);
    }

    #[test]
    fn citizen_claims_are_complete_and_valid_for_the_given_time() {
        let claims = claims();

        for name in [
            "sub",
            "sub_given_name",
            "sub_middle_name",
            "sub_family_name",
            "phone_number",
        ] {
            assert!(claims[name].is_string(), "{name} is missing");
        }
        assert_eq!(claims["iss"], "sikkerhet.helsenorge.no");
        assert_eq!(claims["scp"], "innsynsmittestopp");
        assert_eq!(claims["phone_number"], "+4791234567");
        assert_eq!(claims["sub"], "dev-4791234567");
        let nbf = claims["nbf"].as_i64().expect("nbf");
        assert_eq!(claims["exp"].as_i64().expect("exp") - nbf, 300);
        assert!((nbf - chrono::Utc::now().timestamp()).abs() <= 1);
    }
}
