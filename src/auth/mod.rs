//! Authentication: the gateway's `Api-Key` header and Helsenorge's bearer tokens.
//!
//! This module owns the rules of the security model that concern who is calling:
//!
//! - [`ApiKey`]: the key the API gateway forwards on every `/helsenorge` and `/fhi`
//!   request, compared in constant time.
//! - [`TokenVerifier`]: verification of Helsenorge's RS256 bearer tokens (signing
//!   keys from a PEM file or a JWKS file or URL, reloaded when an unknown `kid`
//!   appears) into a [`Citizen`]. It answers [`AuthError::Unauthorized`] or
//!   [`AuthError::Forbidden`]; the HTTP layer turns those into `401` and `403`.
//! - [`devkeys`]: RSA key pairs generated at run time and citizen tokens signed with
//!   them, for `insight demo`, tests and load tests. No key material is committed.
//!
//! Nothing here ever logs a token or the API key.

mod api_key;
pub mod devkeys;
mod jwt;

pub use api_key::ApiKey;
pub use devkeys::{DevKeyError, DevKeyPair, citizen_claims};
pub use jwt::{
    AuthError, Citizen, KeyError, KeySource, RefreshPolicy, TokenSettings, TokenVerifier,
};

/// Makes aws-lc-rs jsonwebtoken's crypto backend for this process.
///
/// jsonwebtoken 12 infers its backend from its crate features and panics on first
/// use when feature unification enables both `aws_lc_rs` and `rust_crypto`; an
/// explicit choice keeps that from depending on what other dependencies enable. A
/// provider installed earlier by someone else is left in place.
pub(crate) fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
