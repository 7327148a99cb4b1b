//! The keys signing access and id tokens: RSA 2048, RS256, each with a `kid`
//! (its RFC 7638 thumbprint). The newest key signs; older ones stay published
//! at `jwks_uri` until every token they signed has expired, so rotation never
//! breaks a live token. Keys live in PostgreSQL so every server process of a
//! deployment signs and verifies with the same set. Each process reloads the
//! set every [`RELOAD_EVERY`], and a new key only starts signing
//! [`PUBLISH_AHEAD`] after it was made, so every process (and every client
//! caching the JWKS) knows it before the first token it signs arrives.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use fhirledger_postgres::auth::SigningKeyRow;
use fhirledger_postgres::{PgStore, StoreError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why keys could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key storage: {0}")]
    Store(#[from] StoreError),
    #[error("key generation: {0}")]
    Generate(String),
    #[error("stored key {kid} is unusable: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("there is no signing key")]
    NoKey,
}

/// How often each process reads the key set again.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a new key is published before it signs.
pub const PUBLISH_AHEAD: Duration = Duration::seconds(90);

struct Loaded {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    newest: Option<DateTime<Utc>>,
}

/// The deployment's signing keys.
pub struct KeyRing {
    store: PgStore,
    loaded: RwLock<Loaded>,
}

impl KeyRing {
    /// Loads the keys, first making one when there is none or the newest is
    /// older than `rotate_after`, and dropping keys retired longer ago than
    /// `retention` (the longest a token lives).
    pub fn open(
        store: PgStore,
        rotate_after: Duration,
        retention: Duration,
    ) -> Result<KeyRing, KeyError> {
        let ring = KeyRing {
            store,
            loaded: RwLock::new(Loaded {
                signing: None,
                verifying: HashMap::new(),
                jwks: serde_json::json!({ "keys": [] }),
                newest: None,
            }),
        };
        ring.maintain(rotate_after, retention)?;
        Ok(ring)
    }

    /// Rotates when due, forgets expired keys and reloads the set.
    pub fn maintain(&self, rotate_after: Duration, retention: Duration) -> Result<(), KeyError> {
        self.store
            .forget_keys_retired_before(Utc::now() - retention - PUBLISH_AHEAD)?;
        self.reload()?;
        let due = self
            .read()
            .newest
            .is_none_or(|created| created + rotate_after <= Utc::now());
        if due {
            self.rotate()?;
        }
        Ok(())
    }

    /// Makes a new key the signing key; the old ones stay published.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let row = generate()?;
        let kid = row.kid.clone();
        self.store.rotate_signing_key(&row)?;
        self.reload()?;
        tracing::info!(%kid, "new token signing key");
        Ok(kid)
    }

    /// Reads the key set from the store again.
    pub fn reload(&self) -> Result<(), KeyError> {
        let rows = self.store.signing_keys()?;
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        for row in &rows {
            verifying.insert(row.kid.clone(), decoding_key(row)?);
            published.push(row.public_jwk.clone());
        }
        let signing = match signer_at(&rows, Utc::now()) {
            Some(row) => Some((
                row.kid.clone(),
                EncodingKey::from_rsa_pem(row.private_pem.as_bytes()).map_err(|e| {
                    KeyError::Corrupt {
                        kid: row.kid.clone(),
                        reason: e.to_string(),
                    }
                })?,
            )),
            None => None,
        };
        let newest = rows.iter().map(|r| r.created_at).max();
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        *loaded = Loaded {
            signing,
            verifying,
            jwks: serde_json::json!({ "keys": published }),
            newest,
        };
        Ok(())
    }

    /// Signs claims with the current key (RS256, `kid` in the header).
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        let loaded = self.read();
        let (kid, key) = loaded.signing.as_ref().ok_or(KeyError::NoKey)?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// The public key of `kid`, when it is one of ours.
    pub fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        self.read().verifying.get(kid).cloned()
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        self.read().jwks.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The key that signs at `now`, of `rows` (newest first): the newest one
/// published for at least [`PUBLISH_AHEAD`]; when none has been, the one
/// published longest (on a first start, the only key, at once).
fn signer_at(rows: &[SigningKeyRow], now: DateTime<Utc>) -> Option<&SigningKeyRow> {
    let ready = now - PUBLISH_AHEAD;
    rows.iter()
        .find(|r| r.created_at <= ready)
        .or_else(|| rows.last())
}

fn decoding_key(row: &SigningKeyRow) -> Result<DecodingKey, KeyError> {
    let corrupt = |reason: String| KeyError::Corrupt {
        kid: row.kid.clone(),
        reason,
    };
    let n = row.public_jwk["n"]
        .as_str()
        .ok_or_else(|| corrupt("no n".into()))?;
    let e = row.public_jwk["e"]
        .as_str()
        .ok_or_else(|| corrupt("no e".into()))?;
    DecodingKey::from_rsa_components(n, e).map_err(|e| corrupt(e.to_string()))
}

/// A fresh RSA 2048 key with its JWK and thumbprint `kid`.
fn generate() -> Result<SigningKeyRow, KeyError> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    // RFC 7638: the members in lexicographic order, no whitespace.
    let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
    let jwk = serde_json::json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
    });
    Ok(SigningKeyRow {
        kid,
        alg: "RS256".into(),
        private_pem: pem.to_string(),
        public_jwk: jwk,
        created_at: Utc::now(),
        retired_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_made(at: DateTime<Utc>) -> SigningKeyRow {
        let mut row = generate().expect("a key");
        row.created_at = at;
        row
    }

    #[test]
    fn a_new_key_signs_only_once_it_has_been_published_long_enough() {
        let now = Utc::now();
        let old = key_made(now - Duration::days(30));
        let new = key_made(now);
        let rows = vec![new.clone(), old.clone()];
        let signer = |at| signer_at(&rows, at).map(|r| r.kid.clone());
        assert_eq!(signer(now), Some(old.kid.clone()), "the old key signs on");
        assert_eq!(
            signer(now + PUBLISH_AHEAD - Duration::seconds(1)),
            Some(old.kid)
        );
        assert_eq!(signer(now + PUBLISH_AHEAD), Some(new.kid));
    }

    #[test]
    fn a_key_rotated_soon_after_the_first_waits_its_turn_too() {
        let now = Utc::now();
        let first = key_made(now - Duration::seconds(5));
        let second = key_made(now);
        let rows = vec![second.clone(), first.clone()];
        assert_eq!(signer_at(&rows, now).map(|r| &r.kid), Some(&first.kid));
        assert_eq!(
            signer_at(&rows, now + PUBLISH_AHEAD).map(|r| &r.kid),
            Some(&second.kid)
        );
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let now = Utc::now();
        let first = key_made(now);
        assert_eq!(
            signer_at(std::slice::from_ref(&first), now).map(|r| &r.kid),
            Some(&first.kid)
        );
        assert!(signer_at(&[], now).is_none());
    }
}
