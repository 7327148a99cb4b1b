//! The portal (`/portal`) in headless Chromium: people sign in at the
//! external OpenID Connect provider through the server's own authorization
//! server, land on their dashboard, and sign out. The browser side is
//! `conformance/smart/portal.mjs`; screenshots of every dashboard are kept
//! under `target/test-artifacts/portal`.

use conformance::e2e::{e2e, Invitee};
use conformance::http::Request;
use conformance::{document_reference, organization, patient, uid};
use serde_json::{json, Value};

fn person(invitee: &Invitee) -> Value {
    json!({ "invitation": invitee.invitation, "login": invitee.login, "userId": invitee.user_id })
}

/// Where screenshots go: the workspace's `target/test-artifacts/portal`.
fn artifacts() -> String {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    format!("{target}/test-artifacts/portal")
}

fn kinds(trail: &Value) -> Vec<&str> {
    trail
        .as_array()
        .expect("a trail")
        .iter()
        .map(|p| p["kind"].as_str().unwrap_or_default())
        .collect()
}

/// The rows of the table with this caption.
fn rows<'a>(page: &'a Value, caption: &str) -> &'a Vec<Value> {
    page["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["caption"] == caption)
        .and_then(|t| t["rows"].as_array())
        .unwrap_or_else(|| panic!("no table '{caption}' on {page:#}"))
}

fn no_serious_violations(page: &Value) {
    assert_eq!(
        page["seriousViolations"],
        json!([]),
        "axe-core found serious or critical WCAG 2.1 AA violations on {}",
        page["path"]
    );
}

#[test]
fn a_patient_signs_in_sees_their_documents_and_access_log_and_signs_out() {
    let hospital = e2e().create_id(&organization(&uid()));
    let family = format!("Portal{}", &uid()[..8]);
    let mut p = patient(&uid());
    p["managingOrganization"] = json!({ "reference": format!("Organization/{hospital}") });
    p["name"] = json!([{ "family": family, "given": ["Test"] }]);
    let patient_id = e2e().create_id(&p);
    let title = format!("Portal letter {}", &uid()[..8]);
    let mut document = document_reference(&patient_id, &uid());
    document["description"] = json!(title);
    e2e().create_id(&document);
    // Someone else's document, which must not appear.
    let other = e2e().create_id(&patient(&uid()));
    let mut hidden = document_reference(&other, &uid());
    hidden["description"] = json!("Not this patient's letter");
    e2e().create_id(&hidden);

    let invitee = e2e().invite("patient", &hospital, &format!("Patient/{patient_id}"));
    let out = e2e().run_script(
        "portal.mjs",
        "sign-in-and-out",
        json!({ "person": person(&invitee), "artifacts": artifacts() }),
    );

    // Signed in at the provider, straight back to the portal: the portal is
    // the server's own client, so there is no approval page and no picker.
    let trail = kinds(&out["signIn"]);
    assert_eq!(trail.last(), Some(&"portal"), "{out:#}");
    assert!(trail.contains(&"sign-in"), "{out:#}");
    assert!(
        !trail.contains(&"approval") && !trail.contains(&"picker"),
        "{out:#}"
    );

    let first = &out["first"];
    assert_eq!(first["h1"], "Your documents", "{out:#}");
    let header = first["person"].as_str().unwrap_or_default();
    assert!(
        header.contains(&format!("Test {family}")) && header.contains("Patient"),
        "the header names the person and their role: {header}"
    );
    let documents = rows(first, "Your documents");
    assert_eq!(documents.len(), 1, "only their own document: {documents:?}");
    assert_eq!(documents[0][0], title);
    assert_eq!(documents[0][1], "2024-05-01 10:00 UTC");
    no_serious_violations(first);

    // The second visit shows the first one's reads in their access log: by
    // them, through the portal.
    let second = &out["second"];
    let log = rows(second, "Recent access to your record");
    let by_portal = log.iter().find(|r| {
        r[1] == format!("Test {family}")
            && r[2] == "fhirledger portal"
            && r[3] == "Searched DocumentReference"
            && r[4] == "Allowed"
    });
    assert!(
        by_portal.is_some(),
        "the access log shows the portal's search: {log:#?}"
    );
    no_serious_violations(second);

    let cookie = &out["sessionCookie"];
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
    assert_eq!(cookie["path"], "/portal", "{cookie}");
    let csp = out["csp"].as_str().unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // A sign-out form without the session's CSRF token changes nothing.
    assert_eq!(out["forgedAnswer"]["status"], 403, "{out:#}");
    assert_eq!(out["forgedAnswer"]["text"], true, "{out:#}");
    assert_eq!(out["afterForged"], "Your documents", "{out:#}");

    // Signing out ends the sign-in too: the portal asks to sign in again.
    assert_eq!(out["signedOut"]["path"], "/portal/signed-out", "{out:#}");
    assert_eq!(out["signedOut"]["h1"], "You are signed out", "{out:#}");
    assert_eq!(out["again"]["kind"], "sign-in", "{out:#}");

    // The session's token was revoked: the FHIR API refuses it.
    let token = out["accessToken"].as_str().expect("the session's token");
    Request::on(&e2e().server, "GET", &format!("Patient/{patient_id}"))
        .bearer(token)
        .send()
        .assert_status(401);

    // The trail: the portal's reads name the portal as the application, and
    // the sign-out is a revocation.
    let trail = Request::on(
        &e2e().server,
        "GET",
        &format!("AuditEvent?patient={patient_id}&_count=200"),
    )
    .send();
    trail.assert_status(200);
    let events: Vec<Value> = trail.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect();
    let client_of = |e: &Value| -> Option<String> {
        e["agent"].as_array()?.iter().find_map(|a| {
            // BALP's client agent: `110153` on REST events, `110150` on
            // security events.
            let code = &a["type"]["coding"][0]["code"];
            let source = code == "110153" || code == "110150";
            source
                .then(|| a["who"]["identifier"]["value"].as_str().map(str::to_string))
                .flatten()
        })
    };
    let portal_searches = events
        .iter()
        .filter(|e| {
            client_of(e).as_deref() == Some("fhirledger-portal")
                && e["subtype"][0]["code"] == "search-type"
        })
        .count();
    assert!(
        portal_searches >= 4,
        "two dashboard visits (and one after the forged form) searched documents and the log: {portal_searches} events"
    );
    assert!(
        events.iter().any(|e| {
            client_of(e).as_deref() == Some("fhirledger-portal") && e["type"]["code"] == "110113"
        }),
        "the sign-out's revocation is in the patient's trail"
    );
}

/// `/auth/logout` (the portal's way out, OpenID Connect RP-Initiated
/// Logout) sends nobody to an address the app has not registered, and
/// without an id token of ours it asks the person rather than acting on a
/// bare link.
#[test]
fn logout_asks_without_a_hint_and_returns_only_to_registered_addresses() {
    let s = &e2e().server;
    let logout = format!("{}/auth/logout", s.public_base);
    let page = Request::on(s, "GET", &logout).no_auth().send();
    page.assert_status(200);
    assert!(
        page.text().contains("This browser is not signed in"),
        "{}",
        page.text()
    );

    let elsewhere = Request::on(
        s,
        "GET",
        &format!("{logout}?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"),
    )
    .no_auth()
    .send();
    elsewhere.assert_status(400);
    assert_eq!(elsewhere.header("location"), None);
}
