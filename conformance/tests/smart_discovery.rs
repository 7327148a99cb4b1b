//! SMART discovery: `/.well-known/smart-configuration` under the FHIR base,
//! the OpenID configuration at the issuer, the JWK Set, the style document
//! and the CapabilityStatement's `oauth-uris` — all public, all pointing at
//! endpoints that really answer.

use conformance::smart_flow::*;
use conformance::*;
use serde_json::Value;

fn public_json(url: &str) -> (Response, Value) {
    let resp = get(url).no_auth().send();
    resp.assert_status(200);
    assert_eq!(resp.media_type(), "application/json", "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-origin").as_deref(),
        Some("*"),
        "discovery documents are readable by browser apps (CORS): {resp:?}"
    );
    let json = resp.json();
    (resp, json)
}

fn smart_configuration() -> Value {
    public_json(&format!("{}/.well-known/smart-configuration", base())).1
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|s| s.as_str().expect("strings").to_string())
        .collect()
}

#[test]
fn smart_configuration_has_every_required_field() {
    let s = server();
    let config = smart_configuration();
    let issuer = format!("{}/auth", s.public_base);
    assert_eq!(config["issuer"], issuer.as_str(), "{config}");
    for (field, path) in [
        ("jwks_uri", "jwks"),
        ("authorization_endpoint", "authorize"),
        ("token_endpoint", "token"),
        ("introspection_endpoint", "introspect"),
        ("revocation_endpoint", "revoke"),
    ] {
        assert_eq!(
            config[field],
            format!("{issuer}/{path}").as_str(),
            "{field} is an absolute URL on the configured public base: {config}"
        );
    }
    let capabilities = strings(&config["capabilities"]);
    for required in [
        "launch-ehr",
        "launch-standalone",
        "authorize-post",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-banner",
        "context-style",
        "context-ehr-patient",
        "context-standalone-patient",
        "permission-offline",
        "permission-online",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
    ] {
        assert!(
            capabilities.iter().any(|c| c == required),
            "capability {required} missing: {capabilities:?}"
        );
    }
    assert_eq!(
        strings(&config["code_challenge_methods_supported"]),
        ["S256"],
        "only S256 (plain is refused, so it is not advertised)"
    );
    let grants = strings(&config["grant_types_supported"]);
    for g in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grants.iter().any(|x| x == g), "{g} missing: {grants:?}");
    }
    let methods = strings(&config["token_endpoint_auth_methods_supported"]);
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        assert!(methods.iter().any(|x| x == m), "{m} missing: {methods:?}");
    }
    let algs = strings(&config["token_endpoint_auth_signing_alg_values_supported"]);
    for a in ["RS384", "ES384"] {
        assert!(algs.iter().any(|x| x == a), "{a} missing: {algs:?}");
    }
    let scopes = strings(&config["scopes_supported"]);
    for sc in [
        "openid",
        "fhirUser",
        "launch",
        "launch/patient",
        "offline_access",
        "online_access",
    ] {
        assert!(scopes.iter().any(|x| x == sc), "{sc} missing: {scopes:?}");
    }
    assert!(
        strings(&config["response_types_supported"])
            .iter()
            .any(|r| r == "code"),
        "{config}"
    );
}

#[test]
fn smart_configuration_is_json_whatever_the_client_accepts() {
    for accept in [FHIR_JSON, "application/json", "*/*", "text/html"] {
        let resp = get(".well-known/smart-configuration")
            .no_auth()
            .accept(accept)
            .send();
        resp.assert_status(200);
        assert_eq!(resp.media_type(), "application/json", "Accept {accept}");
        assert!(resp.json()["token_endpoint"].is_string());
    }
}

/// Advertising only what works: every advertised endpoint exists and
/// answers as its protocol says to an empty request (not 404/405).
#[test]
fn advertised_endpoints_answer() {
    let config = smart_configuration();
    let url = |f: &str| config[f].as_str().unwrap().to_string();
    let jwks = get(&url("jwks_uri")).no_auth().send();
    jwks.assert_status(200);
    // No client: an error page for the person, never a redirect.
    let authorize = get(&url("authorization_endpoint")).no_auth().send();
    authorize.assert_status(400);
    assert!(authorize.header("location").is_none(), "{authorize:?}");
    for endpoint in [
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let answer = form_post(&url(endpoint), &[], None);
        assert!(
            matches!(answer.status, 400 | 401),
            "{endpoint} answers an empty request with an OAuth error: {answer:?}"
        );
        assert!(answer.body["error"].is_string(), "{endpoint}: {answer:?}");
    }
}

#[test]
fn openid_configuration_at_the_issuer() {
    let s = server();
    let smart = smart_configuration();
    let issuer = smart["issuer"].as_str().unwrap();
    let (_, oidc) = public_json(&format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(oidc["issuer"], issuer);
    for field in ["jwks_uri", "authorization_endpoint", "token_endpoint"] {
        assert_eq!(oidc[field], smart[field], "{field}");
    }
    assert!(strings(&oidc["id_token_signing_alg_values_supported"]).contains(&"RS256".into()));
    assert!(strings(&oidc["response_types_supported"]).contains(&"code".into()));
    assert!(oidc["subject_types_supported"].is_array(), "{oidc}");
    // RP-Initiated Logout: where apps (the portal among them) end a sign-in.
    assert_eq!(oidc["end_session_endpoint"], format!("{issuer}/logout"));
    assert!(issuer.starts_with(&s.public_base));
}

#[test]
fn jwks_publishes_the_key_of_issued_tokens_and_nothing_private() {
    let s = server();
    let token = s.token();
    let header = jwt_header(token);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"]
        .as_str()
        .expect("issued tokens name their key");
    let (_, jwks) = public_json(&format!("{}/auth/jwks", s.public_base));
    let keys = jwks["keys"].as_array().expect("a JWK Set");
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not published: {jwks}"));
    assert_eq!(key["kty"], "RSA");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "a private part ({private}) is published: {k}"
            );
        }
    }
    // The signature checks out with the published key.
    let claims = verify_with_jwks(s, token, &s.fhir_base);
    assert_eq!(claims["aud"], s.fhir_base.as_str());
}

#[test]
fn style_url_of_a_token_response_serves_a_json_style() {
    let s = server();
    let org = smart_flow::new_hospital();
    let user = new_patient_user(s, &org);
    let client = AppClient::register(s, "public", None);
    let answer = tokens_for(s, &client, &user, "openid fhirUser patient/Patient.rs");
    let style_url = answer.field("smart_style_url");
    assert!(style_url.starts_with(&s.public_base), "{style_url}");
    let (_, style) = public_json(&style_url);
    assert!(
        style.as_object().is_some_and(|o| o
            .keys()
            .any(|k| k.starts_with("color_") || k.starts_with("font_"))),
        "a SMART style document: {style}"
    );
}

#[test]
fn capability_statement_names_the_authorization_server() {
    let resp = get("metadata").no_auth().send();
    resp.assert_status(200);
    let cs = resp.resource("CapabilityStatement");
    let smart = smart_configuration();
    let security = &cs["rest"][0]["security"];
    let codes: Vec<&str> = security["service"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert!(codes.contains(&"SMART-on-FHIR"), "{security}");
    let ext = security["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        })
        .unwrap_or_else(|| panic!("no oauth-uris extension: {security}"));
    let uri = |name: &str| {
        ext["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == name)
            .and_then(|e| e["valueUri"].as_str())
            .map(str::to_string)
    };
    assert_eq!(
        uri("authorize").as_deref(),
        smart["authorization_endpoint"].as_str()
    );
    assert_eq!(uri("token").as_deref(), smart["token_endpoint"].as_str());
}

#[test]
fn discovery_answers_cors_preflights() {
    let resp = request("OPTIONS", ".well-known/smart-configuration")
        .no_auth()
        .header("Origin", "https://app.example.org")
        .header("Access-Control-Request-Method", "GET")
        .send();
    assert!(matches!(resp.status, 200 | 204), "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}
