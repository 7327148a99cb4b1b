//! The adapter against a real external provider (node-oidc-provider, started
//! by `conformance::oidc`): discovery, a full browser-style login, and every
//! way a login must fail.
//!
//! The browser part is blocking HTTP (reqwest with a cookie jar) and runs
//! outside the tokio runtime; the adapter's async calls run in `block_on`.

use std::net::TcpListener;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use conformance::oidc::{
    sign_in, AuthorizationResponse, ProviderOptions, TestClient, TestOidcProvider,
};
use fhirledger_oidc::{Identity, OidcError, PendingLogin, Provider, ProviderConfig};
use openidconnect::core::{
    CoreHmacKey, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::JsonWebKeyId;
use serde_json::Value;

const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/login/test-idp/callback";
const CONFIDENTIAL: (&str, &str) = ("fhirledger", "fhirledger-test-secret");
const PUBLIC: &str = "fhirledger-public";

/// The provider every test shares (started once per test binary).
fn idp() -> &'static TestOidcProvider {
    static IDP: OnceLock<TestOidcProvider> = OnceLock::new();
    IDP.get_or_init(|| {
        TestOidcProvider::start(&[
            TestClient::confidential(CONFIDENTIAL.0, CONFIDENTIAL.1, REDIRECT_URI),
            TestClient::public(PUBLIC, REDIRECT_URI),
        ])
    })
}

/// A second, unrelated provider (its own issuer and keys) with the same clients.
fn foreign_idp() -> &'static TestOidcProvider {
    static IDP: OnceLock<TestOidcProvider> = OnceLock::new();
    IDP.get_or_init(|| {
        TestOidcProvider::start(&[TestClient::confidential(
            CONFIDENTIAL.0,
            CONFIDENTIAL.1,
            REDIRECT_URI,
        )])
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn config(issuer: &str) -> ProviderConfig {
    ProviderConfig::new(
        "test-idp",
        "Test IdP",
        issuer,
        CONFIDENTIAL.0,
        Some(CONFIDENTIAL.1.to_string()),
        REDIRECT_URI,
    )
}

fn public_config(issuer: &str) -> ProviderConfig {
    ProviderConfig {
        client_id: PUBLIC.to_string(),
        client_secret: None,
        ..config(issuer)
    }
}

fn discover(
    rt: &tokio::runtime::Runtime,
    op: &TestOidcProvider,
    config: ProviderConfig,
) -> Provider {
    rt.block_on(Provider::discover(config))
        .unwrap_or_else(|e| panic!("discovery failed: {e}\n{}", op.log_tail(30)))
}

/// Begins a login and signs in as `who` in a fresh browser.
fn login(
    op: &TestOidcProvider,
    provider: &Provider,
    who: &str,
) -> (AuthorizationResponse, PendingLogin) {
    let (url, pending) = provider.begin();
    let response = sign_in(&url, who, REDIRECT_URI)
        .unwrap_or_else(|e| panic!("signing in failed: {e}\n{}", op.log_tail(30)));
    (response, pending)
}

fn code(response: &AuthorizationResponse) -> &str {
    response
        .param("code")
        .unwrap_or_else(|| panic!("no code in {}", response.url))
}

fn expected_identity(issuer: &str, login: &str) -> Identity {
    Identity {
        issuer: issuer.to_string(),
        subject: login.to_string(),
        email: Some(format!("{login}@example.org")),
        email_verified: Some(true),
        name: Some(login.to_string()),
    }
}

#[test]
fn signs_in_and_returns_who_it_was() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));
    assert_eq!(provider.name(), "test-idp");
    assert_eq!(provider.label(), "Test IdP");
    assert_eq!(provider.issuer(), idp().issuer);

    let (url, pending) = provider.begin();
    let authorize = reqwest::Url::parse(&url).unwrap();
    assert_eq!(
        authorize.as_str().split('?').next(),
        Some(format!("{}/auth", idp().issuer).as_str())
    );
    let query: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {url}"))
    };
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("client_id"), CONFIDENTIAL.0);
    assert_eq!(param("redirect_uri"), REDIRECT_URI);
    assert_eq!(param("scope"), "openid email profile");
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("state"), pending.state);
    assert_eq!(param("nonce"), pending.nonce);
    // The challenge is the verifier's SHA-256, never the verifier itself.
    assert_ne!(param("code_challenge"), pending.pkce_verifier);
    assert!(!url.contains(&pending.pkce_verifier));

    let response = sign_in(&url, "alice", REDIRECT_URI).unwrap();
    assert!(pending.matches_state(response.param("state").unwrap()));
    provider
        .check_callback_issuer(response.param("iss"))
        .unwrap();
    let identity = rt
        .block_on(provider.finish(code(&response), &pending))
        .unwrap();
    assert_eq!(identity, expected_identity(&idp().issuer, "alice"));
}

#[test]
fn email_and_name_come_from_userinfo_only_when_the_id_token_lacks_them() {
    let rt = runtime();
    // The shared provider keeps them behind userinfo (its id_tokens lack
    // them: see forged_and_tampered_id_tokens_are_refused).
    let provider = discover(&rt, idp(), config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "kate");
    let identity = rt
        .block_on(provider.finish(code(&response), &pending))
        .unwrap();
    assert_eq!(identity, expected_identity(&idp().issuer, "kate"));

    // This one puts them in the id_token: no userinfo request.
    let generous = TestOidcProvider::start_with(
        &[TestClient::confidential(
            CONFIDENTIAL.0,
            CONFIDENTIAL.1,
            REDIRECT_URI,
        )],
        &ProviderOptions {
            claims_in_id_token: true,
        },
    );
    let provider = discover(&rt, &generous, config(&generous.issuer));
    let (response, pending) = login(&generous, &provider, "kate");
    let identity = rt
        .block_on(provider.finish(code(&response), &pending))
        .unwrap();
    assert_eq!(identity, expected_identity(&generous.issuer, "kate"));
    assert_eq!(generous.requests("GET /me"), 0);
    generous.stop();
}

#[test]
fn public_clients_sign_in_with_pkce_alone() {
    let rt = runtime();
    let provider = discover(&rt, idp(), public_config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "bob");
    let identity = rt
        .block_on(provider.finish(code(&response), &pending))
        .unwrap();
    assert_eq!(identity, expected_identity(&idp().issuer, "bob"));
}

#[test]
fn a_wrong_pkce_verifier_is_refused_by_the_token_endpoint() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "carol");
    let (_, other) = provider.begin();
    let wrong = PendingLogin {
        pkce_verifier: other.pkce_verifier,
        ..pending.clone()
    };
    match rt.block_on(provider.finish(code(&response), &wrong)) {
        Err(OidcError::TokenRejected { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("expected the token endpoint to refuse, got {other:?}"),
    }
}

#[test]
fn a_code_is_redeemed_only_once() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "dave");
    rt.block_on(provider.finish(code(&response), &pending))
        .unwrap();
    let again = rt.block_on(provider.finish(code(&response), &pending));
    assert!(
        matches!(&again, Err(OidcError::TokenRejected { error, .. }) if error == "invalid_grant"),
        "{again:?}"
    );
}

#[test]
fn an_id_token_of_another_login_fails_the_nonce_check() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "erin");
    let (_, other) = provider.begin();
    let wrong = PendingLogin {
        nonce: other.nonce,
        ..pending.clone()
    };
    let result = rt.block_on(provider.finish(code(&response), &wrong));
    match &result {
        Err(e @ OidcError::NonceMismatch { .. }) => {
            assert!(e.to_string().contains("nonce"), "{e}")
        }
        other => panic!("expected a nonce mismatch, got {other:?}"),
    }
}

#[test]
fn the_callback_state_and_issuer_must_be_this_logins() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));
    let (response, pending) = login(idp(), &provider, "frank");
    let (_, other) = provider.begin();
    let state = response.param("state").unwrap();
    assert!(pending.matches_state(state));
    assert!(!other.matches_state(state));
    assert!(!pending.matches_state(""));

    assert_eq!(response.param("iss"), Some(idp().issuer.as_str()));
    provider
        .check_callback_issuer(response.param("iss"))
        .unwrap();
    // oidc-provider advertises RFC 9207, so a missing `iss` is suspicious too.
    for iss in [Some("http://evil.example"), None] {
        match provider.check_callback_issuer(iss) {
            Err(e @ OidcError::CallbackIssuer { .. }) => assert!(e.to_string().contains("iss")),
            other => panic!("expected a callback issuer error for {iss:?}, got {other:?}"),
        }
    }
}

/// Redeems a code by hand, as a client would, for the raw id_token.
fn raw_id_token(
    issuer: &str,
    response: &AuthorizationResponse,
    pending: &PendingLogin,
    client: (&str, Option<&str>),
) -> String {
    let http = reqwest::blocking::Client::new();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code(response)),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pending.pkce_verifier.as_str()),
    ];
    let mut request = http.post(format!("{issuer}/token"));
    match client.1 {
        Some(secret) => request = request.basic_auth(client.0, Some(secret)),
        None => form.push(("client_id", client.0)),
    }
    let body: Value = request.form(&form).send().unwrap().json().unwrap();
    body["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token in {body}"))
        .to_string()
}

fn parts(jwt: &str) -> (Value, Value) {
    let mut it = jwt.split('.');
    let mut decode = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
    };
    (decode(), decode())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// An RSA key that is not the provider's, as openidconnect wants it, under
/// key id `kid`. Generated once (slow in debug builds); its size does not
/// matter, as nobody can verify with it.
fn foreign_rsa_key(kid: &str) -> CoreRsaPrivateSigningKey {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    static PEM: OnceLock<String> = OnceLock::new();
    let pem = PEM.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string()
    });
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_string()))).unwrap()
}

fn invalid(result: Result<Identity, OidcError>, what: &str) -> String {
    match result {
        Err(OidcError::InvalidIdToken { reason, .. }) => reason,
        other => panic!("{what}: expected an invalid id_token error, got {other:?}"),
    }
}

#[test]
fn forged_and_tampered_id_tokens_are_refused() {
    // Its own provider, so that its key set fetches can be counted.
    let own = TestOidcProvider::start(&[TestClient::confidential(
        CONFIDENTIAL.0,
        CONFIDENTIAL.1,
        REDIRECT_URI,
    )]);
    let rt = runtime();
    let provider = discover(&rt, &own, config(&own.issuer));
    assert_eq!(own.requests("GET /jwks"), 1);
    let (response, pending) = login(&own, &provider, "grace");
    let genuine = raw_id_token(
        &own.issuer,
        &response,
        &pending,
        (CONFIDENTIAL.0, Some(CONFIDENTIAL.1)),
    );
    let verify = |token: &str| rt.block_on(provider.verify_id_token(token, &pending.nonce));

    // The genuine token passes; email and name are served by userinfo, not in it.
    let identity = verify(&genuine).unwrap();
    assert_eq!((identity.email, identity.name), (None, None));
    assert_eq!(
        (identity.issuer.as_str(), identity.subject.as_str()),
        (own.issuer.as_str(), "grace")
    );

    let (header, payload) = parts(&genuine);
    let signature = genuine.rsplit('.').next().unwrap();
    let kid = header["kid"].as_str().unwrap().to_string();

    // Another subject under the genuine signature.
    let mut changed = payload.clone();
    changed["sub"] = Value::from("mallory");
    let tampered = format!("{}.{}.{signature}", b64(&header), b64(&changed));
    let reason = invalid(verify(&tampered), "tampered payload");
    assert!(reason.contains("ignature"), "{reason}");

    // Unsigned.
    let unsigned = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&payload)
    );
    invalid(verify(&unsigned), "alg none");

    // Genuine claims, MACed with the client secret: the provider only signs with RS256.
    let claims: CoreIdTokenClaims = serde_json::from_value(payload.clone()).unwrap();
    let hmac = CoreIdToken::new(
        claims.clone(),
        &CoreHmacKey::new(CONFIDENTIAL.1.as_bytes()),
        CoreJwsSigningAlgorithm::HmacSha256,
        None,
        None,
    )
    .unwrap();
    let reason = invalid(verify(&hmac.to_string()), "HS256 with the client secret");
    assert!(reason.contains("HS256"), "{reason}");

    // Genuine claims, signed by another key under the provider's key id.
    let forged = CoreIdToken::new(
        claims.clone(),
        &foreign_rsa_key(&kid),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap();
    invalid(verify(&forged.to_string()), "foreign key, provider's kid");

    assert_eq!(
        own.requests("GET /jwks"),
        1,
        "a known key id needs no new key set"
    );

    // ... and under a key id the provider does not have: the adapter fetches
    // the key set again, in case the provider rotated its keys, and still
    // finds none; a second such token within 30 s fetches nothing.
    let forged = CoreIdToken::new(
        claims,
        &foreign_rsa_key("not-a-provider-key"),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap()
    .to_string();
    let reason = invalid(verify(&forged), "foreign key, unknown kid");
    assert!(reason.contains("No matching key"), "{reason}");
    assert_eq!(own.requests("GET /jwks"), 2);
    invalid(verify(&forged), "foreign key, unknown kid, again");
    assert_eq!(own.requests("GET /jwks"), 2);

    // Not a JWT at all.
    invalid(verify("not.a.jwt"), "garbage");
    own.stop();
}

#[test]
fn id_tokens_for_another_issuer_or_client_are_refused() {
    let rt = runtime();
    let provider = discover(&rt, idp(), config(&idp().issuer));

    // Issued by another provider to a client with the same id.
    let foreign = discover(&rt, foreign_idp(), config(&foreign_idp().issuer));
    let (response, pending) = login(foreign_idp(), &foreign, "heidi");
    let token = raw_id_token(
        &foreign_idp().issuer,
        &response,
        &pending,
        (CONFIDENTIAL.0, Some(CONFIDENTIAL.1)),
    );
    let reason = invalid(
        rt.block_on(provider.verify_id_token(&token, &pending.nonce)),
        "foreign issuer",
    );
    assert!(reason.contains("ssuer"), "{reason}");

    // Issued by this provider to another client.
    let public = discover(&rt, idp(), public_config(&idp().issuer));
    let (response, pending) = login(idp(), &public, "ivan");
    let token = raw_id_token(&idp().issuer, &response, &pending, (PUBLIC, None));
    let reason = invalid(
        rt.block_on(provider.verify_id_token(&token, &pending.nonce)),
        "other audience",
    );
    assert!(reason.contains("udience"), "{reason}");
}

fn discovery_error(config: ProviderConfig) -> OidcError {
    match runtime().block_on(Provider::discover(config)) {
        Ok(p) => panic!("discovery of {p:?} should have failed"),
        Err(e) => e,
    }
}

#[test]
fn an_unreachable_issuer_is_a_clear_transient_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let e = discovery_error(config(&issuer));
    assert!(matches!(e, OidcError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());
    let message = e.to_string();
    assert!(
        message.contains("test-idp") && message.contains("unreachable"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{issuer}/.well-known/openid-configuration")),
        "{message}"
    );
}

#[test]
fn https_issuers_are_spoken_to_over_tls() {
    // The test provider speaks plain http: the TLS handshake fails, which
    // shows that https is supported at all (production providers use it).
    let issuer = idp().issuer.replace("http://", "https://");
    let e = discovery_error(config(&issuer));
    assert!(matches!(e, OidcError::Unreachable { .. }), "{e:?}");
    let message = e.to_string();
    assert!(!message.contains("scheme"), "{message}");
}

#[test]
fn the_discovered_issuer_must_be_the_configured_one() {
    let port = idp().issuer.rsplit(':').next().unwrap();
    for configured in [
        format!("http://localhost:{port}"),
        format!("{}/", idp().issuer),
    ] {
        match discovery_error(config(&configured)) {
            OidcError::IssuerMismatch {
                expected, found, ..
            } => {
                assert_eq!(expected, configured);
                assert_eq!(found, idp().issuer);
            }
            other => panic!("expected an issuer mismatch for {configured}, got {other:?}"),
        }
    }
}

#[test]
fn a_wrong_issuer_path_or_configuration_fails_discovery_clearly() {
    let e = discovery_error(config(&format!("{}/realms/nope", idp().issuer)));
    assert!(matches!(e, OidcError::Discovery { .. }), "{e:?}");
    assert!(e.to_string().contains("404"), "{e}");
    assert!(!e.is_transient());

    let mut bad = config(&idp().issuer);
    bad.name = "no spaces please".into();
    assert!(matches!(discovery_error(bad), OidcError::Config { .. }));
}

#[test]
fn discovery_can_be_repeated_and_providers_shared() {
    let rt = runtime();
    let first = discover(&rt, idp(), config(&idp().issuer));
    let second = discover(&rt, idp(), first.config().clone());
    let shared = second.clone();
    let (response, pending) = login(idp(), &first, "judy");
    // A login begun with one discovery can be finished with another.
    let identity = rt
        .block_on(shared.finish(code(&response), &pending))
        .unwrap();
    assert_eq!(identity, expected_identity(&idp().issuer, "judy"));
}
