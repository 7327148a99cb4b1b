//! The authorization code flow with PKCE, driven like a browser and an app:
//! standalone launch by a patient, the authorization endpoint's refusals,
//! the token endpoint's code, refresh, introspection and revocation.

use conformance::smart_flow::*;
use conformance::*;

/// Everything a patient app asks for.
const PATIENT_APP: &str =
    "openid fhirUser launch/patient patient/*.rs patient/DocumentReference.c offline_access";

/// A patient (in a fresh hospital) and a public app.
fn patient_and_app() -> (TestUser, AppClient) {
    let s = server();
    let org = new_hospital();
    (
        new_patient_user(s, &org),
        AppClient::register(s, "public", None),
    )
}

/// 401 with the invalid_token challenge on a FHIR read.
#[track_caller]
fn assert_token_rejected(token: &str, path: &str) {
    let resp = get(path).bearer(token).send();
    resp.assert_status(401);
    let challenge = resp.required_header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{resp:?}"
    );
}

#[test]
fn a_patient_completes_a_standalone_launch() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request(PATIENT_APP).set("nonce", "n-0S6_WzA2Mj");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, scopes, page) = browser.login(&login, &user).approval();
    assert!(
        page.header("cache-control")
            .is_some_and(|c| c.contains("no-store")),
        "the approval page is not cached: {page:?}"
    );
    let callback = browser.approve(&req, &scopes).callback();
    assert!(callback.location.starts_with(REDIRECT_URI), "{callback:?}");
    assert_eq!(callback.get("state"), Some(request.state()));
    let answer = client.exchange(&callback.code(), request.verifier());
    let body = answer.ok().clone();
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
    assert_eq!(body["patient"], user.fhir_id(), "{body}");
    assert_eq!(body["need_patient_banner"], true, "{body}");
    assert!(body["smart_style_url"].is_string(), "{body}");
    assert!(body["refresh_token"].is_string(), "offline_access: {body}");
    let granted = answer.scopes();
    for expected in ["openid", "fhirUser", "offline_access"] {
        assert!(granted.iter().any(|g| g == expected), "{granted:?}");
    }
    assert!(
        granted
            .iter()
            .all(|g| !g.starts_with("user/") && !g.starts_with("system/")),
        "{granted:?}"
    );

    // The id token: ours, for this app, about this user, signed with a published key.
    let id_token = answer.field("id_token");
    let claims = verify_with_jwks(s, &id_token, &client.client_id);
    assert_eq!(
        claims["fhirUser"],
        format!("{}/{}", s.fhir_base, user.fhir_user.as_deref().unwrap())
    );
    assert_eq!(claims["sub"], user.user_id.as_str());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    // The access token too.
    let access = answer.access_token();
    verify_with_jwks(s, &access, &s.fhir_base);

    // It reads the patient's own record, and nobody else's.
    let own = get(&format!("Patient/{}", user.fhir_id()))
        .bearer(&access)
        .send();
    own.assert_status(200);
    let other = new_patient();
    get(&format!("Patient/{other}"))
        .bearer(&access)
        .send()
        .assert_status(404);
}

#[test]
fn authorize_also_accepts_post() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request("openid fhirUser patient/Patient.rs");
    let browser = Browser::new(s);
    let login = browser.authorize_post(&request).login();
    let (req, scopes, _) = browser.login(&login, &user).approval();
    let callback = browser.approve(&req, &scopes).callback();
    assert_eq!(callback.get("state"), Some(request.state()));
    client.exchange(&callback.code(), request.verifier()).ok();
}

#[test]
fn state_comes_back_byte_for_byte() {
    let s = server();
    let (user, client) = patient_and_app();
    let odd = "a b+c/d?e=f&g=h#i%20j%2B ~!*'();:@$,[] é✓😀 \"<x>\" \\";
    // On success...
    let request = client
        .request("openid patient/Patient.rs")
        .set("state", odd);
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    assert_eq!(callback.get("state"), Some(odd), "{callback:?}");
    client.exchange(&callback.code(), request.verifier()).ok();
    // ...on denial...
    let request = client
        .request("openid patient/Patient.rs")
        .set("state", odd);
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, _, _) = browser.login(&login, &user).approval();
    browser
        .deny(&req)
        .callback()
        .assert_error("access_denied", odd);
    // ...and on an error found at the authorization endpoint.
    let request = client
        .request("openid patient/Patient.rs")
        .set("state", odd)
        .set("code_challenge_method", "plain");
    Browser::new(s)
        .authorize(&request)
        .callback()
        .assert_error("invalid_request", odd);
}

#[test]
fn the_audience_must_be_this_fhir_server() {
    let s = server();
    let (user, client) = patient_and_app();
    for aud in [
        "https://other.example.org/fhir".to_string(),
        format!("{}/fhir-other", s.public_base),
        s.public_base.clone(),
    ] {
        let request = client.request("openid patient/Patient.rs").set("aud", &aud);
        Browser::new(s)
            .authorize(&request)
            .callback()
            .assert_error("invalid_request", request.state());
    }
    let request = client.request("openid patient/Patient.rs").without("aud");
    Browser::new(s)
        .authorize(&request)
        .callback()
        .assert_error("invalid_request", request.state());
    // A trailing slash is the same base.
    let request = client
        .request("openid patient/Patient.rs")
        .set("aud", &format!("{}/", s.fhir_base));
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    client.exchange(&callback.code(), request.verifier()).ok();
}

#[test]
fn pkce_s256_is_required() {
    let s = server();
    let (_, client) = patient_and_app();
    let requests = [
        client.request("openid").without("code_challenge"),
        client
            .request("openid")
            .set("code_challenge_method", "plain"),
        client.request("openid").without("code_challenge_method"),
        // plain's challenge is the verifier itself.
        client
            .request("openid")
            .set(
                "code_challenge",
                "verifier-verifier-verifier-verifier-verifier",
            )
            .set("code_challenge_method", "plain"),
    ];
    for request in requests {
        Browser::new(s)
            .authorize(&request)
            .callback()
            .assert_error("invalid_request", request.state());
    }
}

#[test]
fn an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect() {
    let s = server();
    let (_, client) = patient_and_app();
    for uri in [
        "https://evil.example.org/callback".to_string(),
        format!("{REDIRECT_URI}/more"),
        format!("{REDIRECT_URI}?x=1"),
        REDIRECT_URI.to_uppercase(),
    ] {
        let request = client.request("openid").set("redirect_uri", &uri);
        let page = Browser::new(s).authorize(&request).page();
        assert_eq!(page.status, 400, "{page:?}");
        assert!(page.header("location").is_none(), "{page:?}");
        assert!(!page.body.contains("code="), "{page:?}");
    }
    let request = client.request("openid").without("redirect_uri");
    let page = Browser::new(s).authorize(&request).page();
    assert_eq!((page.status, page.header("location")), (400, None));
    // An unknown client likewise.
    let request = client
        .request("openid")
        .set("client_id", &uuid::Uuid::new_v4().to_string());
    let page = Browser::new(s).authorize(&request).page();
    assert_eq!((page.status, page.header("location")), (400, None));
}

#[test]
fn a_wrong_or_missing_code_verifier_is_invalid_grant() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request("openid patient/Patient.rs");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    let wrong = Pkce::new().verifier;
    client
        .exchange(&callback.code(), &wrong)
        .assert_error(400, "invalid_grant");

    let request = client.request("openid patient/Patient.rs");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    client
        .call(
            &client.token_url,
            &[
                ("grant_type", "authorization_code"),
                ("code", &callback.code()),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .assert_error(400, "invalid_grant");
}

#[test]
fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let s = server();
    let (user, client) = patient_and_app();
    let other = AppClient::register(s, "public", None);
    let request = client.request("openid patient/Patient.rs");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    other
        .exchange(&callback.code(), request.verifier())
        .assert_error(400, "invalid_grant");

    let request = client.request("openid patient/Patient.rs");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    let mut elsewhere = client.clone();
    elsewhere.redirect_uri = "https://app.example.org/other".into();
    elsewhere
        .exchange(&callback.code(), request.verifier())
        .assert_error(400, "invalid_grant");
}

#[test]
fn a_replayed_code_is_refused_and_revokes_its_tokens() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request("openid patient/Patient.rs offline_access");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    let code = callback.code();
    let first = client.exchange(&code, request.verifier());
    let access = first.access_token();
    let refresh = first.field("refresh_token");
    let own = format!("Patient/{}", user.fhir_id());
    get(&own).bearer(&access).send().assert_status(200);

    client
        .exchange(&code, request.verifier())
        .assert_error(400, "invalid_grant");
    assert_token_rejected(&access, &own);
    client
        .refresh(&refresh, None)
        .assert_error(400, "invalid_grant");
    assert_eq!(client.introspect(&access).ok()["active"], false);
}

#[test]
fn denying_sends_access_denied_with_the_state() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request(PATIENT_APP);
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, _, _) = browser.login(&login, &user).approval();
    browser
        .deny(&req)
        .callback()
        .assert_error("access_denied", request.state());
    // The request is answered: approving it afterwards issues nothing.
    let after = browser.approve(&req, &["openid".to_string()]);
    assert!(
        !matches!(&after, Step::Callback(c) if c.get("code").is_some()),
        "{after:?}"
    );
}

#[test]
fn scope_escalation_at_authorize_is_not_granted() {
    let s = server();
    let (user, client) = patient_and_app();
    let doc = conformance::create(&document(user.fhir_id(), "note"));
    let request =
        client.request("openid user/*.cruds system/*.cruds patient/*.cruds fhirledger.admin");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, offered, _) = browser.login(&login, &user).approval();
    assert!(
        offered
            .iter()
            .all(|s| !s.contains("user/") && !s.contains("system/") && !s.contains("admin")),
        "the approval page offers what the role may not have: {offered:?}"
    );
    // Even ticking them by hand grants nothing more.
    let mut ticked = offered.clone();
    ticked.extend([
        "user/*.cruds".to_string(),
        "system/*.cruds".into(),
        "fhirledger.admin".into(),
    ]);
    let callback = browser.approve(&req, &ticked).callback();
    let answer = client.exchange(&callback.code(), request.verifier());
    let granted = answer.scopes();
    assert!(
        granted.iter().all(|g| !g.starts_with("user/")
            && !g.starts_with("system/")
            && g != "fhirledger.admin"),
        "{granted:?}"
    );
    let token = answer.access_token();
    // Patients may not delete documents, nor write the group's directory
    // (which they may read, to name whom they share with).
    delete(&format!("DocumentReference/{}", id_of(&doc)))
        .bearer(&token)
        .send()
        .assert_outcome(403);
    conformance::http::post("Practitioner")
        .bearer(&token)
        .json(&conformance::practitioner(&conformance::uid()))
        .send()
        .assert_outcome(403);
    get("Practitioner").bearer(&token).send().assert_status(200);
    get(&format!("DocumentReference/{}", id_of(&doc)))
        .bearer(&token)
        .send()
        .assert_status(200);
}

#[test]
fn an_unticked_scope_is_not_granted() {
    let s = server();
    let (user, client) = patient_and_app();
    let doc = conformance::create(&document(user.fhir_id(), "note"));
    let request = client.request("openid fhirUser patient/Patient.rs patient/DocumentReference.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, offered, _) = browser.login(&login, &user).approval();
    assert!(
        offered.iter().any(|s| s == "patient/DocumentReference.rs"),
        "{offered:?}"
    );
    let kept: Vec<String> = offered
        .into_iter()
        .filter(|s| s != "patient/DocumentReference.rs")
        .collect();
    let callback = browser.approve(&req, &kept).callback();
    let answer = client.exchange(&callback.code(), request.verifier());
    let granted = answer.scopes();
    assert!(
        !granted.iter().any(|g| g.contains("DocumentReference")),
        "{granted:?}"
    );
    let token = answer.access_token();
    get(&format!("DocumentReference/{}", id_of(&doc)))
        .bearer(&token)
        .send()
        .assert_outcome(403);
    get(&format!("Patient/{}", user.fhir_id()))
        .bearer(&token)
        .send()
        .assert_status(200);
}

#[test]
fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    let s = server();
    let (user, client) = patient_and_app();
    let first = tokens_for(
        s,
        &client,
        &user,
        "openid patient/Patient.rs offline_access",
    );
    let r1 = first.field("refresh_token");
    let second = client.refresh(&r1, None);
    let r2 = second.field("refresh_token");
    assert_ne!(r1, r2, "the refresh token rotates");
    assert_eq!(second.header("cache-control"), Some("no-store"));
    assert_eq!(second.ok()["patient"], user.fhir_id());
    let a2 = second.access_token();
    let own = format!("Patient/{}", user.fhir_id());
    get(&own).bearer(&a2).send().assert_status(200);

    // The old one again: somebody holds a copy, so the whole grant goes.
    client.refresh(&r1, None).assert_error(400, "invalid_grant");
    assert_token_rejected(&a2, &own);
    assert_token_rejected(&first.access_token(), &own);
    client.refresh(&r2, None).assert_error(400, "invalid_grant");
}

#[test]
fn a_refresh_can_narrow_the_scope_but_never_widen_it() {
    let s = server();
    let (user, client) = patient_and_app();
    let doc = conformance::create(&document(user.fhir_id(), "note"));
    let first = tokens_for(
        s,
        &client,
        &user,
        "openid patient/Patient.rs patient/DocumentReference.rs offline_access",
    );
    let r1 = first.field("refresh_token");
    // Widening is refused (and does not use up the refresh token).
    for wider in [
        "openid patient/Patient.rs patient/DocumentReference.rs patient/Consent.rs offline_access",
        "openid patient/Patient.rs patient/DocumentReference.crs offline_access",
        "patient/*.rs offline_access",
        "user/Patient.rs offline_access",
    ] {
        client
            .refresh(&r1, Some(wider))
            .assert_error(400, "invalid_scope");
    }
    let narrowed = client.refresh(&r1, Some("patient/Patient.rs offline_access"));
    assert_eq!(narrowed.scopes(), ["offline_access", "patient/Patient.rs"]);
    let token = narrowed.access_token();
    get(&format!("Patient/{}", user.fhir_id()))
        .bearer(&token)
        .send()
        .assert_status(200);
    get(&format!("DocumentReference/{}", id_of(&doc)))
        .bearer(&token)
        .send()
        .assert_outcome(403);
    // The narrowed refresh token cannot win the scope back.
    let r2 = narrowed.field("refresh_token");
    client
        .refresh(
            &r2,
            Some("patient/Patient.rs patient/DocumentReference.rs offline_access"),
        )
        .assert_error(400, "invalid_scope");
}

#[test]
fn no_refresh_token_without_offline_or_online_access() {
    let s = server();
    let (user, client) = patient_and_app();
    let answer = tokens_for(s, &client, &user, "openid patient/Patient.rs");
    assert!(answer.ok().get("refresh_token").is_none(), "{answer:?}");
    let online = tokens_for(s, &client, &user, "openid patient/Patient.rs online_access");
    assert!(online.ok()["refresh_token"].is_string(), "{online:?}");
}

#[test]
fn a_confidential_client_authenticates_with_basic_or_post() {
    let s = server();
    let org = new_hospital();
    let user = new_patient_user(s, &org);
    let client = AppClient::register(s, "confidential", None);
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        let c = client.authenticating(auth);
        let request = c.request("openid patient/Patient.rs offline_access");
        let callback = Browser::new(s).sign_in_and_approve(&request, &user);
        let answer = c.exchange(&callback.code(), request.verifier());
        let refresh = answer.field("refresh_token");
        c.refresh(&refresh, None).ok();
    }
    // Without its secret, a confidential client is refused.
    let request = client.request("openid patient/Patient.rs");
    let callback = Browser::new(s).sign_in_and_approve(&request, &user);
    client
        .authenticating(ClientAuth::None)
        .exchange(&callback.code(), request.verifier())
        .assert_error(401, "invalid_client");
}

#[test]
fn a_revoked_access_token_stops_working_on_the_next_request() {
    let s = server();
    let (user, client) = patient_and_app();
    let answer = tokens_for(s, &client, &user, "openid patient/Patient.rs");
    let token = answer.access_token();
    let own = format!("Patient/{}", user.fhir_id());
    get(&own).bearer(&token).send().assert_status(200);
    let revoked = client.revoke(&token);
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_token_rejected(&token, &own);
    assert_eq!(
        client.introspect(&token).ok(),
        &serde_json::json!({"active": false})
    );
    // Revoking again, or something unknown, is still 200 (RFC 7009 §2.2).
    assert_eq!(client.revoke(&token).status, 200);
    assert_eq!(client.revoke("no-such-token").status, 200);
}

#[test]
fn revoking_a_refresh_token_ends_the_grant() {
    let s = server();
    let (user, client) = patient_and_app();
    let answer = tokens_for(
        s,
        &client,
        &user,
        "openid patient/Patient.rs offline_access",
    );
    let refresh = answer.field("refresh_token");
    assert_eq!(client.introspect(&refresh).ok()["active"], true);
    assert_eq!(client.revoke(&refresh).status, 200);
    assert_eq!(client.introspect(&refresh).ok()["active"], false);
    client
        .refresh(&refresh, None)
        .assert_error(400, "invalid_grant");
    assert_token_rejected(
        &answer.access_token(),
        &format!("Patient/{}", user.fhir_id()),
    );
}

#[test]
fn introspection_describes_a_live_token() {
    let s = server();
    let (user, client) = patient_and_app();
    let answer = tokens_for(s, &client, &user, "openid fhirUser patient/Patient.rs");
    let token = answer.access_token();
    let info = client.introspect(&token);
    let info = info.ok();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], answer.field("scope").as_str());
    assert_eq!(info["client_id"], client.client_id.as_str());
    assert_eq!(info["sub"], user.user_id.as_str());
    assert_eq!(info["patient"], user.fhir_id());
    assert_eq!(
        info["fhirUser"],
        format!("{}/{}", s.fhir_base, user.fhir_user.as_deref().unwrap())
    );
    let exp = info["exp"].as_i64().expect("exp");
    assert!(exp > conformance::smart::chrono_now(), "{info}");
    // Garbage and forged tokens are simply inactive.
    for not_live in [
        "garbage".to_string(),
        format!("{token}x"),
        forge_token(s, &{
            let mut c = access_claims_like(s, &token);
            c["exp"] = serde_json::json!(conformance::smart::chrono_now() - 10);
            c
        }),
    ] {
        assert_eq!(
            client.introspect(&not_live).ok(),
            &serde_json::json!({"active": false})
        );
    }
    // Another public client may not learn about this app's tokens.
    let other = AppClient::register(s, "public", None);
    assert_eq!(other.introspect(&token).ok()["active"], false);
}

#[test]
fn an_id_token_only_with_openid_and_fhir_user_only_when_granted() {
    let s = server();
    let (user, client) = patient_and_app();
    let none = tokens_for(s, &client, &user, "patient/Patient.rs");
    assert!(none.ok().get("id_token").is_none(), "{none:?}");
    let plain = tokens_for(s, &client, &user, "openid patient/Patient.rs");
    let claims = verify_with_jwks(s, &plain.field("id_token"), &client.client_id);
    assert!(
        claims.get("fhirUser").is_none(),
        "fhirUser was not granted: {claims}"
    );
    assert_eq!(claims["sub"], user.user_id.as_str());
}

#[test]
fn a_repeated_parameter_is_refused() {
    let s = server();
    let (_, client) = patient_and_app();
    let mut request = client.request("openid patient/Patient.rs");
    request
        .params
        .push(("scope".into(), "patient/*.cruds".into()));
    Browser::new(s)
        .authorize(&request)
        .callback()
        .assert_error("invalid_request", request.state());
}

#[test]
fn a_wrong_password_shows_the_sign_in_page_again() {
    let s = server();
    let (user, client) = patient_and_app();
    let request = client.request("openid patient/Patient.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let mut wrong = user.clone();
    wrong.password = "not-the-password".into();
    let page = browser.post_page(
        &format!("{}/auth/login", s.public_base),
        &[
            ("request", login.as_str()),
            ("email", &wrong.email),
            ("password", &wrong.password),
        ],
    );
    assert_eq!(page.status, 401, "{page:?}");
    assert!(page.header("set-cookie").is_none(), "no session: {page:?}");
    assert!(
        inputs(&page.body)
            .iter()
            .any(|i| i.attr("name") == Some("password")),
        "the sign-in form again"
    );
    // Nothing can be approved without signing in.
    let refused = browser.approve(&login, &["openid".into()]);
    assert!(
        matches!(&refused, Step::Other(p) if p.status == 403),
        "{refused:?}"
    );
    // The right password then works.
    let (req, scopes, _) = browser.login(&login, &user).approval();
    let callback = browser.approve(&req, &scopes).callback();
    client.exchange(&callback.code(), request.verifier()).ok();
}
