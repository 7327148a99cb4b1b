//! The authorization server's security events are in the trail, as DICOM
//! `110114` User Authentication and `110113` Security Alert AuditEvents:
//! sign-ins and failed ones, tokens issued (with the scopes granted) and
//! refused, reused refresh tokens, revocations, accounts and clients
//! created or deactivated (through the API and the command line), and
//! hospitals deactivated. A patient's own sign-ins are in their log.

use conformance::balp::{events_with, recorded_events};
use conformance::smart::{BackendClient, SigningKey};
use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

fn type_code(event: &Value) -> String {
    event["type"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn subtype_codes(event: &Value) -> Vec<String> {
    event["subtype"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["code"].as_str().map(str::to_string))
        .collect()
}

/// The one event a token or revocation answer's request recorded of a kind.
fn only(request_id: &str, subtype: &str) -> Value {
    let events: Vec<Value> = recorded_events(request_id)
        .into_iter()
        .filter(|e| subtype_codes(e).iter().any(|s| s == subtype))
        .collect();
    assert_eq!(events.len(), 1, "{subtype} of {request_id}: {events:#?}");
    events.into_iter().next().unwrap_or_default()
}

fn granted_scopes(event: &Value) -> String {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["detail"].as_array().cloned().unwrap_or_default())
        .find(|d| d["type"] == "granted scopes")
        .and_then(|d| d["valueString"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn tokens_issued_and_refused_are_security_events() {
    let s = server();
    let backend = BackendClient::register(s, "system/Patient.rs", SigningKey::es384());
    let form = |assertion: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), "system/Patient.rs".to_string()),
            (
                "client_assertion_type".to_string(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion".to_string(), assertion.to_string()),
        ]
    };
    let send = |form: Vec<(String, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        form_post(backend.token_url(), &form, None)
    };
    let issued = send(form(&backend.assertion()));
    issued.ok();
    let event = only(
        issued.header("x-request-id").expect("a request id"),
        "ITI-71",
    );
    assert_eq!(event["type"]["system"], DCM);
    assert_eq!(type_code(&event), "110114");
    assert_eq!(event["outcome"], "0");
    assert_eq!(granted_scopes(&event), "system/Patient.rs");
    assert!(
        event["agent"].to_string().contains(&backend.client_id),
        "{event:#}"
    );

    // A forged assertion (signed by another key) is refused, and recorded.
    let forged = SigningKey::es384().sign(&json!({
        "iss": backend.client_id, "sub": backend.client_id, "aud": backend.token_url(),
        "exp": conformance::smart::chrono_now() + 60, "jti": uid(),
    }));
    let refused = send(form(&forged));
    assert_eq!(refused.status, 401, "{refused:?}");
    let event = only(
        refused.header("x-request-id").expect("a request id"),
        "ITI-71",
    );
    assert_eq!(event["outcome"], "4");
    assert!(event["outcomeDesc"]
        .as_str()
        .is_some_and(|d| d.contains("invalid_client")));
    assert_eq!(granted_scopes(&event), "");
}

/// A new patient account at a new hospital, an app, and the sign-in page
/// the app's request for `scope` leads to; the account with a wrong password.
struct SignInPage {
    org: String,
    patient: TestUser,
    wrong: TestUser,
    client: AppClient,
    browser: Browser,
    login: String,
}

impl SignInPage {
    fn open(scope: &str) -> SignInPage {
        let s = server();
        let org = new_hospital();
        let patient = new_patient_user(s, &org);
        let client = AppClient::register(s, "public", None);
        let mut wrong = patient.clone();
        wrong.password = "not-the-password".into();
        let browser = Browser::new(s);
        let request = client.request(scope);
        let login = browser.authorize(&request).login();
        SignInPage {
            org,
            patient,
            wrong,
            client,
            browser,
            login,
        }
    }
}

#[test]
fn sign_ins_refresh_reuse_and_revocation_are_in_the_trail() {
    let s = server();
    let at = SignInPage::open("openid fhirUser offline_access patient/*.rs");
    let (patient, client) = (at.patient.clone(), &at.client);

    // A wrong password, then the right one: both in the patient's log.
    at.browser.login(&at.login, &at.wrong).page();
    let answer = tokens_for(
        s,
        client,
        &patient,
        "openid fhirUser offline_access patient/*.rs",
    );
    let mine = events_with(&format!("altid={}", patient.user_id));
    let sign_ins: Vec<&Value> = mine
        .iter()
        .filter(|e| subtype_codes(e).iter().any(|c| c == "110122"))
        .collect();
    let outcomes: Vec<&str> = sign_ins
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"4") && outcomes.contains(&"0"),
        "{sign_ins:#?}"
    );
    for e in &sign_ins {
        assert_eq!(type_code(e), "110114");
        assert!(e["agent"]
            .to_string()
            .contains(&format!("Patient/{}", patient.fhir_id())));
    }
    // The patient reads their own sign-ins.
    let log = get("AuditEvent?subtype=110122")
        .bearer(&answer.access_token())
        .send();
    log.assert_status(200);
    assert!(entries(&log.json()).len() >= 2, "{:#}", log.json());

    // The code's token answer: issued with the patient's scopes.
    let refresh = answer.field("refresh_token");
    let first = client.refresh(&refresh, None);
    first.ok();
    let reused = client.refresh(&refresh, None);
    reused.assert_error(400, "invalid_grant");
    let alert = only(
        reused.header("x-request-id").expect("a request id"),
        "refresh-token-reuse",
    );
    assert_eq!(type_code(&alert), "110113");

    // Revoking a token.
    let token = tokens_for(s, client, &patient, "openid fhirUser patient/*.rs").access_token();
    let revoked = client.revoke(&token);
    revoked.ok();
    let event = only(
        revoked.header("x-request-id").expect("a request id"),
        "token-revoked",
    );
    assert_eq!(event["outcome"], "0");
    assert!(event["agent"]
        .to_string()
        .contains(&format!("Patient/{}", patient.fhir_id())));
}

#[test]
fn accounts_clients_and_hospitals_administered_are_security_alerts() {
    let s = server();
    let org = new_hospital();
    // The command line: `user add` and `client add`.
    let officer = TestUser::create(s, "compliance-officer", Some(&org), None);
    let created = events_with("subtype=administration")
        .into_iter()
        .filter(|e| {
            e["subtype"]
                .to_string()
                .contains(&format!("account {} created", officer.user_id))
        })
        .collect::<Vec<_>>();
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(type_code(&created[0]), "110113");
    assert!(created[0].to_string().contains("fhirledger command line"));

    // A hospital admin onboards and removes a doctor through the API.
    let admin = TestUser::create(s, "hospital-admin", Some(&org), None);
    const ADMIN_APP: &str = "openid fhirUser fhirledger.admin user/*.cruds";
    let app = AppClient::register(s, "public", Some(ADMIN_APP));
    let token = tokens_for(s, &app, &admin, ADMIN_APP).access_token();
    let onboarded = post_admin(
        s,
        &token,
        "users",
        &json!({ "role": "doctor", "email": unique_email("dr"), "organization": org }),
    );
    let user_id = onboarded["user_id"]
        .as_str()
        .expect("a user id")
        .to_string();
    let removed = reqwest::blocking::Client::new()
        .delete(format!("{}/auth/admin/users/{user_id}", s.public_base))
        .bearer_auth(&token)
        .send()
        .expect("the admin API answers");
    assert_eq!(removed.status().as_u16(), 204);
    let about: Vec<Value> = events_with("subtype=administration")
        .into_iter()
        .filter(|e| e["subtype"].to_string().contains(&user_id))
        .collect();
    let said: Vec<String> = about.iter().map(|e| e["subtype"].to_string()).collect();
    assert_eq!(about.len(), 2, "{said:#?}");
    assert!(
        said[0].contains("created") && said[1].contains("deactivated"),
        "{said:#?}"
    );
    for e in &about {
        assert!(e["agent"].to_string().contains(&admin.user_id), "{e:#}");
    }

    // A hospital deactivated: an alert in the same transaction as the update.
    let path = format!("Organization/{org}");
    let mut organization = read("Organization", &org);
    organization["active"] = json!(false);
    let resp = put(&path).json(&organization).send();
    resp.assert_status(200);
    let alerts: Vec<Value> = recorded_events(&resp.required_header("x-request-id"))
        .into_iter()
        .filter(|e| type_code(e) == "110113")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0]["subtype"]
        .to_string()
        .contains(&format!("Organization/{org} deactivated")));
}

/// `POST /auth/admin/{what}` with a bearer token; the created JSON.
fn post_admin(s: &TestServer, token: &str, what: &str, body: &Value) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/auth/admin/{what}", s.public_base))
        .bearer_auth(token)
        .json(body)
        .send()
        .expect("the admin API answers");
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().expect("JSON")
}

#[test]
fn repeated_failed_sign_ins_lock_the_account_for_a_while_and_the_lock_is_in_its_log() {
    let s = server();
    let at = SignInPage::open("openid fhirUser patient/*.rs");
    let (patient, wrong, browser, login) = (&at.patient, &at.wrong, &at.browser, &at.login);
    // Four wrong passwords are answered as wrong; the fifth locks.
    for _ in 0..4 {
        let page = browser.login(login, wrong).page();
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("The email or password is wrong."));
    }
    let locked = browser.login(login, wrong).page();
    assert_eq!(locked.status, 429, "{}", locked.body);
    let retry: i64 = locked
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Now even the right password is refused, before it is checked.
    let refused = browser.login(login, patient).page();
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("Too many failed sign-ins"));

    // The owner's log: the failures, the lock, the refused attempt.
    let mine = events_with(&format!("altid={}", patient.user_id));
    let reasons: Vec<String> = mine
        .iter()
        .filter(|e| subtype_codes(e).iter().any(|c| c == "110122"))
        .filter_map(|e| e["outcomeDesc"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("account locked until")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("sign-in locked until")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .filter(|r| r.contains("wrong password"))
            .count()
            >= 5,
        "{reasons:#?}"
    );

    // Other accounts sign in as before.
    let other = new_patient_user(s, &at.org);
    tokens_for(s, &at.client, &other, "openid fhirUser patient/*.rs").access_token();
}

#[test]
fn token_requests_are_limited_per_client_and_each_refusal_is_in_the_trail() {
    let limited = conformance::server::start_server_with(|_| {
        vec![
            (
                "FHIRLEDGER_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE".into(),
                "3".into(),
            ),
            ("FHIRLEDGER_TRUSTED_PROXIES".into(), "127.0.0.1".into()),
        ]
    });
    // A backend client gets three tokens within the minute; the fourth
    // request is refused with 429, Retry-After and an OAuth error.
    let backend = BackendClient::register(&limited, "system/Patient.rs", SigningKey::es384());
    for _ in 0..3 {
        backend.token("system/Patient.rs");
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "system/Patient.rs"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &backend.assertion()),
    ];
    let refused = form_post(backend.token_url(), &form, None);
    refused.assert_error(429, "temporarily_unavailable");
    let retry: i64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    // The refusal is a security event naming the client.
    let event = only(
        refused.header("x-request-id").expect("a request id"),
        "ITI-71",
    );
    assert_eq!(event["outcome"], "4");
    assert!(
        event["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("temporarily_unavailable")
                && d.contains("more than 3 token requests")),
        "{event:#}"
    );
    assert!(
        event["agent"].to_string().contains(&backend.client_id),
        "{event:#}"
    );
    // Another client is not affected.
    BackendClient::register(&limited, "system/Patient.rs", SigningKey::rs384())
        .token("system/Patient.rs");

    // A public client cannot be authenticated, so anyone may name it: its
    // count is per address, and one address over the limit does not lock
    // the app out for the others.
    let app = AppClient::register(&limited, "public", None);
    let exchange = |address: &str| {
        conformance::http::client()
            .post(&app.token_url)
            .header("X-Forwarded-For", address)
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", app.client_id.as_str()),
                ("code", "not-a-code"),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &"v".repeat(43)),
            ])
            .send()
            .expect("POST token")
    };
    for _ in 0..3 {
        assert_eq!(exchange("192.0.2.10").status().as_u16(), 400);
    }
    let over = exchange("192.0.2.10");
    assert_eq!(over.status().as_u16(), 429);
    assert!(over.headers().contains_key("retry-after"));
    assert_eq!(exchange("192.0.2.11").status().as_u16(), 400);
}
