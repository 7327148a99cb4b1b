//! SMART Backend Services: `client_credentials` with `private_key_jwt`
//! client assertions (RS384 and ES384), and the token endpoint's refusals
//! (RFC 6749 §5.2, RFC 7523, SMART Backend Services).

use conformance::smart::*;
use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client_credentials request with this assertion.
fn with_assertion(client: &BackendClient, assertion: &str, scope: &str) -> TokenAnswer {
    form_post(
        client.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
}

/// Claims of a good assertion for `client`, to be spoiled by a test.
fn good_claims(client: &BackendClient) -> Value {
    let now = chrono_now();
    json!({
        "iss": client.client_id, "sub": client.client_id, "aud": client.token_url(),
        "exp": now + 240, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A good assertion for `client` signed with `key`, which is not the
/// client's, is refused as `invalid_client`.
fn assert_refused_when_signed_by(client: &BackendClient, key: &SigningKey) {
    with_assertion(client, &key.sign(&good_claims(client)), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

fn backend(scope: &str) -> BackendClient {
    BackendClient::register(server(), scope, SigningKey::rs384())
}

#[test]
fn rs384_and_es384_clients_get_tokens_that_work() {
    let patient = new_patient();
    for key in [SigningKey::rs384(), SigningKey::es384()] {
        let alg = key.alg;
        let client = BackendClient::register(server(), "system/Patient.rs", key);
        let answer = with_assertion(&client, &client.assertion(), "system/Patient.rs");
        let body = answer.ok();
        assert_eq!(body["token_type"], "Bearer", "{alg:?}: {body}");
        assert_eq!(body["scope"], "system/Patient.rs");
        assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
        assert!(
            body.get("refresh_token").is_none(),
            "no refresh token for backend clients"
        );
        assert!(body.get("id_token").is_none(), "no id token without a user");
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(answer.header("pragma"), Some("no-cache"));
        let token = answer.access_token();
        assert_eq!(jwt_header(&token)["alg"], "RS256");
        get(&format!("Patient/{patient}"))
            .bearer(&token)
            .send()
            .assert_status(200);
        // Read and search only: writing needs a scope it was not given.
        post("Patient")
            .bearer(&token)
            .json(&conformance::patient(&uid()))
            .send()
            .assert_outcome(403);
    }
}

#[test]
fn a_replayed_assertion_is_refused() {
    let client = backend("system/Patient.rs");
    let assertion = client.assertion();
    with_assertion(&client, &assertion, "system/Patient.rs").ok();
    with_assertion(&client, &assertion, "system/Patient.rs").assert_error(401, "invalid_client");
}

#[test]
fn an_assertion_for_another_audience_is_refused() {
    let client = backend("system/Patient.rs");
    let mut claims = good_claims(&client);
    claims["aud"] = json!(base());
    with_assertion(&client, &client.key.sign(&claims), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

#[test]
fn an_assertion_living_longer_than_five_minutes_is_refused() {
    let client = backend("system/Patient.rs");
    let mut claims = good_claims(&client);
    claims["exp"] = json!(chrono_now() + 600);
    with_assertion(&client, &client.key.sign(&claims), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

#[test]
fn an_expired_assertion_is_refused() {
    let client = backend("system/Patient.rs");
    let mut claims = good_claims(&client);
    claims["iat"] = json!(chrono_now() - 900);
    claims["exp"] = json!(chrono_now() - 600);
    with_assertion(&client, &client.key.sign(&claims), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

#[test]
fn an_assertion_whose_iss_is_not_its_sub_is_refused() {
    let client = backend("system/Patient.rs");
    let other = backend("system/Patient.rs");
    let mut claims = good_claims(&client);
    claims["sub"] = json!(other.client_id);
    with_assertion(&client, &client.key.sign(&claims), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

#[test]
fn an_assertion_naming_an_unknown_key_is_refused() {
    let client = backend("system/Patient.rs");
    assert_refused_when_signed_by(&client, &SigningKey::rs384());
}

#[test]
fn an_assertion_signed_by_another_key_under_the_registered_kid_is_refused() {
    let client = backend("system/Patient.rs");
    let mut impostor = SigningKey::rs384();
    impostor.kid = client.key.kid.clone();
    with_assertion(
        &client,
        &impostor.sign(&good_claims(&client)),
        "system/Patient.rs",
    )
    .assert_error(401, "invalid_client");
    // The same for an EC key.
    let ec = BackendClient::register(server(), "system/Patient.rs", SigningKey::es384());
    let mut impostor = SigningKey::es384();
    impostor.kid = ec.key.kid.clone();
    with_assertion(&ec, &impostor.sign(&good_claims(&ec)), "system/Patient.rs")
        .assert_error(401, "invalid_client");
}

#[test]
fn scopes_outside_the_registration_are_not_granted() {
    let client = backend("system/Patient.rs");
    with_assertion(&client, &client.assertion(), "system/DocumentReference.rs")
        .assert_error(400, "invalid_scope");
    with_assertion(&client, &client.assertion(), "system/Patient.cruds").ok();
    // Asking for more than registered gets the intersection, never more.
    let answer = with_assertion(
        &client,
        &client.assertion(),
        "system/Patient.cruds system/DocumentReference.rs",
    );
    assert_eq!(answer.scopes(), ["system/Patient.rs"], "{answer:?}");
    get("DocumentReference")
        .bearer(&answer.access_token())
        .send()
        .assert_outcome(403);
}

#[test]
fn client_credentials_is_only_for_backend_clients() {
    let public = AppClient::register(server(), "public", None);
    public
        .call(
            &public.token_url,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs"),
            ],
        )
        .assert_error(400, "unauthorized_client");
    let confidential = AppClient::register(server(), "confidential", None);
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        confidential
            .authenticating(auth)
            .call(
                &confidential.token_url,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "system/*.rs"),
                ],
            )
            .assert_error(400, "unauthorized_client");
    }
}

#[test]
fn an_unsupported_grant_type_is_refused() {
    let client = backend("system/Patient.rs");
    let answer = form_post(
        client.token_url(),
        &[
            ("grant_type", "password"),
            ("username", "someone"),
            ("password", "secret"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &client.assertion()),
        ],
        None,
    );
    answer.assert_error(400, "unsupported_grant_type");
}

#[test]
fn a_wrong_client_secret_is_invalid_client() {
    let client = AppClient::register(server(), "confidential", None);
    let mut wrong = client.clone();
    wrong.secret = Some("not-the-secret".into());
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        let answer = wrong
            .authenticating(auth)
            .exchange("some-code", "v".repeat(43).as_str());
        answer.assert_error(401, "invalid_client");
        assert!(answer.header("www-authenticate").is_some(), "{answer:?}");
    }
    // An unknown client is refused the same way.
    let mut unknown = client.clone();
    unknown.client_id = uuid::Uuid::new_v4().to_string();
    unknown
        .exchange("some-code", "v".repeat(43).as_str())
        .assert_error(401, "invalid_client");
}

#[test]
fn a_client_registered_with_a_jwks_url_is_checked_against_the_set_it_publishes() {
    let patient = new_patient();
    let key = SigningKey::es384();
    let host = conformance::jwks_host::JwksHost::serve(key.jwks());
    let client =
        BackendClient::register_with_jwks_uri(server(), "system/Patient.rs", key, &host.url);
    let token = client.token("system/Patient.rs");
    get(&format!("Patient/{patient}"))
        .bearer(&token)
        .send()
        .assert_status(200);
    // The set is cached: a second token does not fetch it again.
    client.token("system/Patient.rs");
    assert_eq!(host.fetches(), 1, "the JWK Set is fetched once and cached");
    // A key the client does not publish signs nothing.
    assert_refused_when_signed_by(&client, &SigningKey::es384());
}

#[test]
fn a_client_whose_jwks_url_does_not_answer_is_invalid_client() {
    // A port nothing listens on.
    let port = conformance::server::free_port();
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let client = BackendClient::register_with_jwks_uri(
        server(),
        "system/Patient.rs",
        SigningKey::rs384(),
        &url,
    );
    let (status, body) = client.request_token("system/Patient.rs");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
}

/// The server signs with aws-lc-rs; a token it issued must verify with
/// RustCrypto's `rsa` (public-key work only) against the published JWK Set,
/// so the signature is plain RS256 and not something only the signer reads.
#[test]
fn issued_tokens_verify_with_an_independent_rsa_implementation() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    let token = backend("system/Patient.rs").token("system/Patient.rs");
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "RS256", "{header}");
    let jwks = get(&format!("{}/auth/jwks", server().public_base))
        .no_auth()
        .send();
    jwks.assert_status(200);
    let jwks = jwks.json();
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .unwrap_or_else(|| panic!("the token's key is published: {jwks}"));
    let part = |name: &str| {
        let text = jwk[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {jwk}"));
        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(text).expect("base64url"))
    };
    let public = rsa::RsaPublicKey::new(part("n"), part("e")).expect("an RSA public key");
    let (message, signature) = token.rsplit_once('.').expect("a compact JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let signature = Signature::try_from(signature.as_slice()).expect("an RSA signature");
    let verifier = VerifyingKey::<sha2::Sha256>::new(public);
    if let Err(e) = verifier.verify(message.as_bytes(), &signature) {
        panic!("the server's RS256 signature does not verify: {e}");
    }

    let tampered = message.replacen('e', "f", 1);
    assert!(verifier.verify(tampered.as_bytes(), &signature).is_err());
}
