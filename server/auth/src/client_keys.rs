//! The public keys of asymmetric and backend clients: their registered
//! inline JWK Set, or the set behind their `jwks_uri`, fetched and cached
//! (re-fetched when an assertion names a `kid` the cache lacks, at most
//! every [`REFETCH_AFTER`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fhirledger_postgres::auth::ClientRow;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

/// How long a fetched JWK Set is used before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(300);
/// The shortest time between two fetches of the same set.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// The largest JWK Set accepted from a client's URL.
const MAX_JWKS_BYTES: usize = 256 * 1024;

struct Cached {
    keys: Vec<serde_json::Value>,
    fetched: Instant,
}

/// Client key sets, inline or fetched.
pub struct ClientKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl ClientKeys {
    pub fn new(http: reqwest::Client) -> ClientKeys {
        ClientKeys {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client's keys that may have signed with `alg` (and carry `kid`, when given).
    pub async fn keys_for(
        &self,
        client: &ClientRow,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, String> {
        let set = match (&client.jwks, &client.jwks_uri) {
            (Some(jwks), _) => jwk_list(jwks),
            (None, Some(url)) => self.fetched(url, kid).await?,
            (None, None) => return Err("the client has no registered keys".into()),
        };
        let keys: Vec<DecodingKey> = set
            .iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
            .filter(|jwk| usable(jwk, kid, alg))
            .filter_map(|jwk| DecodingKey::from_jwk(&jwk).ok())
            .collect();
        if keys.is_empty() {
            return Err(match kid {
                Some(kid) => format!("no registered {alg:?} key has kid '{kid}'"),
                None => format!("no registered key can check an {alg:?} signature"),
            });
        }
        Ok(keys)
    }

    async fn fetched(
        &self,
        url: &str,
        kid: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, String> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(url) {
            let has_kid = kid.is_none_or(|k| c.keys.iter().any(|j| j["kid"] == k));
            let age = c.fetched.elapsed();
            if (age < CACHE_FOR && has_kid) || age < REFETCH_AFTER {
                return Ok(c.keys.clone());
            }
        }
        let keys = self.fetch(url).await?;
        cache.insert(
            url.to_string(),
            Cached {
                keys: keys.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(keys)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<serde_json::Value>, String> {
        let resp = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching the client's JWK Set from {url} failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the client's jwks_uri {url} answered {}",
                resp.status()
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the client's JWK Set: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("the client's JWK Set is too large".into());
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the client's JWK Set is not JSON: {e}"))?;
        Ok(jwk_list(&value))
    }
}

/// The `keys` of a JWK Set, each kept as JSON so one odd key cannot spoil the set.
fn jwk_list(set: &serde_json::Value) -> Vec<serde_json::Value> {
    set["keys"].as_array().cloned().unwrap_or_default()
}

/// A key that matches the assertion's `kid` and algorithm and may sign.
fn usable(jwk: &Jwk, kid: Option<&str>, alg: Algorithm) -> bool {
    if let Some(kid) = kid {
        if jwk.common.key_id.as_deref() != Some(kid) {
            return false;
        }
    }
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    if let Some(key_alg) = &jwk.common.key_algorithm {
        if format!("{key_alg:?}") != format!("{alg:?}") {
            return false;
        }
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    }
}

/// Checks a JWK Set given at registration: JSON with at least one usable signing key.
pub fn validate_jwks(set: &serde_json::Value) -> Result<(), String> {
    let keys = jwk_list(set);
    if keys.is_empty() {
        return Err("the JWK Set has no keys".into());
    }
    let usable = keys
        .iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
        .filter(|jwk| {
            [
                Algorithm::RS384,
                Algorithm::ES384,
                Algorithm::RS256,
                Algorithm::ES256,
            ]
            .iter()
            .any(|alg| usable(jwk, None, *alg))
        })
        .filter(|jwk| DecodingKey::from_jwk(jwk).is_ok())
        .count();
    if usable == 0 {
        return Err(
            "the JWK Set has no RSA or P-256/P-384 public key usable for signatures".into(),
        );
    }
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err("the JWK Set contains a private key; register only public keys".into());
    }
    Ok(())
}
