//! SMART helpers for the tests: signing keys for client assertions, the
//! `fhirledger` admin commands, and backend clients that get real tokens
//! from the server's token endpoint (SMART Backend Services).

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use crate::server::TestServer;

/// A key pair a client signs its assertions with.
#[derive(Clone)]
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: String,
    encoding: EncodingKey,
    /// The public half, as a JWK.
    pub public_jwk: Value,
}

impl SigningKey {
    /// A fresh RSA 2048 key for RS384.
    pub fn rs384() -> SigningKey {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
        let kid = format!("rs-{}", uuid::Uuid::new_v4());
        SigningKey {
            alg: Algorithm::RS384,
            encoding: EncodingKey::from_rsa_der(&rsa_pkcs1(&key)),
            public_jwk: json!({
                "kty": "RSA", "alg": "RS384", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            }),
            kid,
        }
    }

    /// A fresh P-384 key for ES384.
    pub fn es384() -> SigningKey {
        let secret = p384::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec();
        let point = secret.public_key().to_encoded_point(false);
        let kid = format!("ec-{}", uuid::Uuid::new_v4());
        SigningKey {
            alg: Algorithm::ES384,
            encoding: EncodingKey::from_ec_der(&der),
            public_jwk: json!({
                "kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            }),
            kid,
        }
    }

    /// The public JWK Set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk] })
    }

    /// Signs `claims` with this key (its `kid` in the header).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }
}

fn rsa_pkcs1(key: &rsa::RsaPrivateKey) -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    key.to_pkcs1_der().expect("PKCS#1").as_bytes().to_vec()
}

/// Runs `fhirledger {args}` against the test server's database and parses
/// the JSON it prints; panics with its stderr when it fails.
pub fn cli(server: &TestServer, args: &[&str]) -> Value {
    Deployment::of(server).cli(args)
}

/// Runs `fhirledger {args}` against the test server's database.
pub fn cli_output(server: &TestServer, args: &[&str]) -> std::process::Output {
    Deployment::of(server).cli_output(args)
}

/// A running fhirledger as the admin commands see it: its binary, its
/// database and its public base URL.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub binary: std::path::PathBuf,
    pub database_url: String,
    pub public_base: String,
}

/// Where the SMART drivers find a server: a test's own [`TestServer`], or a
/// [`Deployment`] started elsewhere (the benchmark harness's).
pub trait Site {
    fn deployment(&self) -> Deployment;
}

impl Site for TestServer {
    fn deployment(&self) -> Deployment {
        Deployment::of(self)
    }
}

impl Site for Deployment {
    fn deployment(&self) -> Deployment {
        self.clone()
    }
}

impl Deployment {
    /// The FHIR base: `{public_base}/fhir`, as the server serves it.
    pub fn fhir_base(&self) -> String {
        format!("{}/fhir", self.public_base)
    }

    pub fn of(server: &TestServer) -> Deployment {
        Deployment {
            binary: crate::server::server_binary().to_path_buf(),
            database_url: server.database_url.clone(),
            public_base: server.public_base.clone(),
        }
    }

    /// Runs `fhirledger {args}` against this deployment's database.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .args(args)
            .env("FHIRLEDGER_DATABASE_URL", &self.database_url)
            .env("FHIRLEDGER_BASE_URL", &self.public_base)
            .env("FHIRLEDGER_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("cannot run fhirledger {args:?}: {e}"))
    }

    /// Runs `fhirledger {args}` and parses the JSON it prints.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "fhirledger {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "fhirledger {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// A registered backend client.
#[derive(Clone)]
pub struct BackendClient {
    pub client_id: String,
    pub key: SigningKey,
    token_url: String,
}

impl BackendClient {
    /// Registers a backend client holding `scope` with `fhirledger client add`.
    pub fn register(server: &TestServer, scope: &str, key: SigningKey) -> BackendClient {
        Self::register_at(&Deployment::of(server), scope, key)
    }

    /// Registers a backend client of any deployment, its JWK Set given inline.
    pub fn register_at(deployment: &Deployment, scope: &str, key: SigningKey) -> BackendClient {
        let file = std::env::temp_dir().join(format!("fhirledger-jwks-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, key.jwks().to_string()).expect("writing the JWK Set");
        let client = Self::add(
            deployment,
            scope,
            key,
            "--jwks-file",
            &file.to_string_lossy(),
        );
        let _ = std::fs::remove_file(&file);
        client
    }

    /// Registers a backend client whose JWK Set the server fetches from `url`.
    pub fn register_with_jwks_uri(
        server: &TestServer,
        scope: &str,
        key: SigningKey,
        url: &str,
    ) -> BackendClient {
        Self::add(&Deployment::of(server), scope, key, "--jwks-uri", url)
    }

    /// `fhirledger client add --kind backend` with the keys given by `key_flag`.
    fn add(
        deployment: &Deployment,
        scope: &str,
        key: SigningKey,
        key_flag: &str,
        key_value: &str,
    ) -> BackendClient {
        let out = deployment.cli(&[
            "client",
            "add",
            "--name",
            "conformance backend",
            "--kind",
            "backend",
            key_flag,
            key_value,
            "--scope",
            scope,
        ]);
        BackendClient {
            client_id: out["client_id"].as_str().expect("a client_id").to_string(),
            key,
            token_url: format!("{}/auth/token", deployment.public_base),
        }
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// A fresh client assertion (`private_key_jwt`), valid for four minutes.
    pub fn assertion(&self) -> String {
        let now = chrono_now();
        self.key.sign(&json!({
            "iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
            "exp": now + 240, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
        }))
    }

    /// The token endpoint's answer to a client_credentials request.
    pub fn request_token(&self, scope: &str) -> (u16, Value) {
        self.request_token_via(&self.token_url, scope)
    }

    /// The same request sent to `endpoint`: another process of the same
    /// deployment (the assertion's audience stays the public token URL).
    pub fn request_token_via(&self, endpoint: &str, scope: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &self.assertion()),
        ];
        post_form(endpoint, &form)
    }

    /// An access token for `scope`; panics when refused.
    pub fn token(&self, scope: &str) -> String {
        let (status, body) = self.request_token(scope);
        assert_eq!(status, 200, "the token endpoint refused: {body}");
        body["access_token"]
            .as_str()
            .expect("an access_token")
            .to_string()
    }
}

/// POSTs a form and returns the status and JSON body.
pub fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = crate::http::client()
        .post(url)
        .form(form)
        .send()
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Seconds since the epoch.
pub fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Every scope the test server's own backend client holds.
pub const ALL_SYSTEM_SCOPES: &str = "system/*.cruds fhirledger.launch";
