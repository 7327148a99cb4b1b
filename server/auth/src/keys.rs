//! The keys signing access and id tokens: RSA 2048, RS256, each with a `kid`
//! (its RFC 7638 thumbprint). The newest key signs; older ones stay published
//! at `jwks_uri` until every token they signed has expired, so rotation never
//! breaks a live token. Keys live in PostgreSQL so every server process of a
//! deployment signs and verifies with the same set. Each process reloads the
//! set every [`RELOAD_EVERY`], and a new key only starts signing
//! [`PUBLISH_AHEAD`] after it was made, so every process (and every client
//! caching the JWKS) knows it before the first token it signs arrives.
//!
//! Private-key work (generation and every signature) is done by aws-lc-rs,
//! whose RSA is constant-time and blinded: the token endpoint signs for
//! anyone who asks, and RustCrypto's `rsa` leaks private-key bits through
//! timing (RUSTSEC-2023-0071, the Marvin attack). Verification, public-key
//! work, goes through jsonwebtoken (itself on aws-lc-rs).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use fhirledger_postgres::auth::SigningKeyRow;
use fhirledger_postgres::{PgStore, StoreError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
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
    Sign(String),
    #[error("there is no signing key")]
    NoKey,
}

/// How often each process reads the key set again.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a new key is published before it signs.
pub const PUBLISH_AHEAD: Duration = Duration::seconds(90);

/// The key that signs, parsed once per load: aws-lc-rs validates a private
/// key as it parses it, which costs more than a signature (0.7 ms against
/// 0.46 ms), so it is not done per token.
struct Signer {
    kid: String,
    key: Arc<RsaKeyPair>,
}

struct Loaded {
    signing: Option<Signer>,
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
        let signing = signer_at(&rows, Utc::now()).map(signer).transpose()?;
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
        let (kid, key) = {
            let loaded = self.read();
            let signer = loaded.signing.as_ref().ok_or(KeyError::NoKey)?;
            (signer.kid.clone(), Arc::clone(&signer.key))
        };
        sign_jwt(&kid, &key, claims)
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

/// The private key of a stored row, ready to sign. Rows hold PKCS#8 PEM
/// (earlier versions wrote it with RustCrypto's `rsa`, this one with
/// aws-lc-rs; jsonwebtoken's PEM reader takes either, and PKCS#1 too).
fn signer(row: &SigningKeyRow) -> Result<Signer, KeyError> {
    let corrupt = |reason: String| KeyError::Corrupt {
        kid: row.kid.clone(),
        reason,
    };
    let pem = EncodingKey::from_rsa_pem(row.private_pem.as_bytes())
        .map_err(|e| corrupt(e.to_string()))?;
    // For RSA, the PEM reader leaves the PKCS#1 RSAPrivateKey DER.
    let key = RsaKeyPair::from_der(pem.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    Ok(Signer {
        kid: row.kid.clone(),
        key: Arc::new(key),
    })
}

/// A compact JWS (RS256, `kid` in the header) of `claims`, laid out as
/// jsonwebtoken's `encode` does it; not `encode` itself, whose `aws_lc_rs`
/// backend parses (and validates) the private key again for every signature.
fn sign_jwt<C: Serialize>(kid: &str, key: &RsaKeyPair, claims: &C) -> Result<String, KeyError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let json = |v: Result<Vec<u8>, serde_json::Error>| v.map_err(|e| KeyError::Sign(e.to_string()));
    let mut jwt = URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(&header))?);
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(claims))?));
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        jwt.as_bytes(),
        &mut signature,
    )
    .map_err(|e| KeyError::Sign(e.to_string()))?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
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
    let key =
        RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError::Generate(e.to_string()))?;
    let pkcs8 = key
        .as_der()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let pem = pkcs8_pem(pkcs8.as_ref());
    let public = key.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    // RFC 7638: the members in lexicographic order, no whitespace.
    let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
    let jwk = serde_json::json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
    });
    Ok(SigningKeyRow {
        kid,
        alg: "RS256".into(),
        private_pem: pem,
        public_jwk: jwk,
        created_at: Utc::now(),
        retired_at: None,
    })
}

/// PKCS#8 DER as PEM (RFC 7468: base64 in lines of 64 characters).
fn pkcs8_pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        // base64 is ASCII, so any byte index is a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
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

    /// The claims of a signed token, checked the way the server checks its
    /// own tokens (jsonwebtoken against the published JWK).
    fn verified_by_the_server(token: &str, row: &SigningKeyRow) -> serde_json::Value {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        let key = decoding_key(row).expect("the published key");
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .expect("the server accepts its own token")
            .claims
    }

    /// Checks a token's RS256 signature with RustCrypto's `rsa` (public-key
    /// work only), against the JWK the server publishes.
    fn verified_independently(token: &str, jwk: &serde_json::Value) -> Result<(), String> {
        use rsa::pkcs1v15::{Signature, VerifyingKey};
        use rsa::signature::Verifier;
        let part = |name: &str| {
            jwk[name]
                .as_str()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or(format!("the JWK's {name}"))
        };
        let public = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&part("n")?),
            rsa::BigUint::from_bytes_be(&part("e")?),
        )
        .map_err(|e| e.to_string())?;
        let (message, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?;
        let signature = Signature::try_from(signature.as_slice()).map_err(|e| e.to_string())?;
        VerifyingKey::<sha2::Sha256>::new(public)
            .verify(message.as_bytes(), &signature)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tokens_verify_with_an_rsa_implementation_other_than_the_signers() {
        let row = generate().expect("a key");
        assert_eq!(row.public_jwk["kty"], "RSA");
        assert_eq!(row.public_jwk["alg"], "RS256");
        let claims = serde_json::json!({"iss": "https://ehr.example/auth", "sub": "x", "exp": 1});
        let signer = signer(&row).expect("the stored key loads");
        let token = sign_jwt(&signer.kid, &signer.key, &claims).expect("signed");

        let header: serde_json::Value = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice(&h).ok())
            .expect("a JSON header");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], row.kid);
        assert_eq!(verified_independently(&token, &row.public_jwk), Ok(()));
        assert_eq!(verified_by_the_server(&token, &row), claims);

        // A signature over other claims does not pass for these.
        let other =
            sign_jwt(&signer.kid, &signer.key, &serde_json::json!({"sub": "y"})).expect("signed");
        let (_, other_signature) = other.rsplit_once('.').expect("a JWS");
        let (message, _) = token.rsplit_once('.').expect("a JWS");
        assert!(
            verified_independently(&format!("{message}.{other_signature}"), &row.public_jwk)
                .is_err()
        );
    }

    #[test]
    fn keys_stored_by_earlier_versions_still_sign() {
        // Earlier versions made keys with RustCrypto's rsa and stored PKCS#8 PEM.
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let old = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
        let mut row = generate().expect("a key");
        row.private_pem = old.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
        row.public_jwk["n"] = URL_SAFE_NO_PAD.encode(old.n().to_bytes_be()).into();
        row.public_jwk["e"] = URL_SAFE_NO_PAD.encode(old.e().to_bytes_be()).into();
        let signer = signer(&row).expect("an old key loads");
        let token =
            sign_jwt(&signer.kid, &signer.key, &serde_json::json!({"sub": "x"})).expect("signed");
        assert_eq!(verified_independently(&token, &row.public_jwk), Ok(()));
        assert_eq!(verified_by_the_server(&token, &row)["sub"], "x");
    }

    #[test]
    fn a_damaged_stored_key_is_reported_not_used() {
        let mut row = generate().expect("a key");
        // Damage the key material, not the PEM armour.
        let (armour, body) = row.private_pem.split_at(40);
        row.private_pem = format!("{armour}{}", body.replacen(['A', 'B', 'C'], "Q", 40));
        assert!(matches!(signer(&row), Err(KeyError::Corrupt { .. })));
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
