//! SMART on FHIR end to end, with independent clients: a SMART app built on
//! the `fhirclient` npm package, people signing in at an external OpenID
//! Connect provider (`oidc-provider`) in headless Chromium (`playwright-core`),
//! and a backend service signing its assertions with `jose`. The Node side
//! lives in `conformance/smart` (`e2e.mjs`, `app.mjs`, `browser.mjs`); see
//! `conformance::e2e`.

use std::collections::BTreeSet;

use conformance::e2e::{e2e, Invitee};
use conformance::{document_reference, organization, patient, practitioner, uid};
use serde_json::{json, Value};

/// What a patient-facing app asks for (the README's example).
const PATIENT_APP_SCOPE: &str = "openid fhirUser launch/patient patient/*.rs offline_access";

fn hospital() -> String {
    e2e().create_id(&organization(&uid()))
}

/// A Patient of `org` named "Test {family}".
fn patient_of(org: &str, family: &str) -> String {
    let mut p = patient(&uid());
    p["managingOrganization"] = json!({ "reference": format!("Organization/{org}") });
    p["name"] = json!([{ "family": family, "given": ["Test"] }]);
    e2e().create_id(&p)
}

fn documents_of(patient: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| e2e().create_id(&document_reference(patient, &uid())))
        .collect()
}

/// A doctor of `org`: Practitioner, PractitionerRole and an invited account.
fn doctor_of(org: &str) -> (String, Invitee) {
    let practitioner = e2e().create_id(&practitioner(&uid()));
    e2e().create_id(&json!({
        "resourceType": "PractitionerRole",
        "active": true,
        "practitioner": { "reference": format!("Practitioner/{practitioner}") },
        "organization": { "reference": format!("Organization/{org}") },
    }));
    let invitee = e2e().invite("doctor", org, &format!("Practitioner/{practitioner}"));
    (practitioner, invitee)
}

fn person(invitee: &Invitee) -> Value {
    json!({ "invitation": invitee.invitation, "login": invitee.login, "userId": invitee.user_id })
}

fn unique_family(prefix: &str) -> String {
    format!("{prefix}{}", &uid()[..10])
}

/// The ids of `DocumentReference`s an app result lists.
fn document_ids(documents: &Value) -> BTreeSet<String> {
    assert_eq!(
        documents["ok"], true,
        "the document search failed: {documents}"
    );
    documents["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_str().expect("an id").to_string())
        .collect()
}

fn assert_denied(probe: &Value, what: &str) {
    assert_eq!(probe["ok"], false, "{what} must not be readable: {probe}");
    let status = probe["status"].as_u64().unwrap_or_default();
    assert!(
        status == 403 || status == 404,
        "{what}: expected 403 or 404, got {probe}"
    );
}

/// The app's result after a successful launch, with the common checks: the
/// code was exchanged, the id token names the user, the patient in context
/// can be read.
fn app_result<'a>(out: &'a Value, fhir_user: &str, patient: &str) -> &'a Value {
    let result = &out["result"];
    assert_eq!(result["ok"], true, "the app did not get a client: {out}");
    let app = &result["app"];
    let token = &app["tokenResponse"];
    assert_eq!(token["token_type"], "Bearer", "{token}");
    assert_eq!(token["patient"], patient, "{token}");
    assert_eq!(app["patientId"], patient, "{app}");
    assert_eq!(token["has_id_token"], true, "openid was granted: {token}");
    let smart_style = token["smart_style_url"].as_str().unwrap_or_default();
    assert!(
        smart_style.starts_with(&e2e().server.public_base),
        "{token}"
    );
    // fhirclient's user API reads fhirUser from the id token.
    assert_eq!(app["fhirUser"], fhir_user, "{app}");
    let id_token_user = app["idToken"]["fhirUser"].as_str().unwrap_or_default();
    assert_eq!(
        id_token_user,
        format!("{}/{fhir_user}", e2e().server.fhir_base),
        "{app}"
    );
    assert_eq!(
        app["idToken"]["iss"],
        format!("{}/auth", e2e().server.public_base),
        "{app}"
    );
    assert_eq!(app["patient"]["ok"], true, "{app}");
    assert_eq!(app["patient"]["id"], patient, "{app}");
    app
}

/// The pages a flow went through, by kind.
fn kinds(trail: &Value) -> Vec<String> {
    trail
        .as_array()
        .expect("a trail")
        .iter()
        .map(|p| p["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn standalone_launch_as_a_patient_signing_in_at_the_external_provider() {
    let org = hospital();
    let me = patient_of(&org, &unique_family("Self"));
    let mine = documents_of(&me, 2);
    let other = patient_of(&org, &unique_family("Other"));
    let theirs = documents_of(&other, 1);
    let other_doc = theirs.iter().next().unwrap().clone();
    let invitee = e2e().invite("patient", &org, &format!("Patient/{me}"));

    let out = e2e().run(
        "standalone",
        json!({
            "person": person(&invitee),
            "scope": PATIENT_APP_SCOPE,
            "clientScope": "openid fhirUser launch launch/patient patient/*.rs user/*.rs offline_access online_access",
            "probes": [
                { "name": "otherPatient", "url": format!("Patient/{other}") },
                { "name": "otherDocument", "url": format!("DocumentReference/{other_doc}") },
                { "name": "otherPatientsDocuments", "url": format!("DocumentReference?patient={other}") },
                { "name": "ownDocuments", "url": format!("DocumentReference?patient={me}") },
            ],
        }),
    );

    // The invitation was redeemed at the provider, and the launch signed in there.
    assert_eq!(
        kinds(&out["invitation"]),
        [
            "invitation",
            "provider-login",
            "provider-consent",
            "signed-in"
        ],
        "{}",
        out["invitation"]
    );
    assert_eq!(
        kinds(&out["trail"]),
        [
            "sign-in",
            "provider-login",
            "provider-consent",
            "approval",
            "app"
        ],
        "a patient needs no picker: {}",
        out["trail"]
    );
    // The state the app sent came back with the code.
    assert_eq!(
        out["result"]["params"]["state"], out["launches"][0]["state"],
        "{out}"
    );

    let app = app_result(&out, &format!("Patient/{me}"), &me);
    let token = &app["tokenResponse"];
    assert_eq!(token["need_patient_banner"], true, "{token}");
    assert_eq!(token["has_refresh_token"], true, "offline_access: {token}");
    let granted: BTreeSet<&str> = token["scope"].as_str().unwrap().split(' ').collect();
    for s in ["openid", "fhirUser", "launch/patient", "offline_access"] {
        assert!(granted.contains(s), "{s} not granted: {token}");
    }
    assert!(
        granted.iter().all(|s| !s.starts_with("user/")),
        "nothing beyond the request: {token}"
    );
    assert_eq!(app["userType"], "Patient");
    assert_eq!(app["user"]["ok"], true, "the app reads its user: {app}");

    // Only this patient's data.
    assert_eq!(document_ids(&app["documents"]), mine, "{app}");
    let own: BTreeSet<String> = app["probes"]["ownDocuments"]["ids"]
        .as_array()
        .expect("own documents")
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap()
                .trim_start_matches("DocumentReference/")
                .to_string()
        })
        .collect();
    assert_eq!(own, mine, "{app}");
    assert_denied(&app["probes"]["otherPatient"], "another patient");
    assert_denied(
        &app["probes"]["otherDocument"],
        "another patient's document",
    );
    let others = &app["probes"]["otherPatientsDocuments"];
    assert!(
        others["ok"] == false || others["ids"].as_array().is_some_and(|a| a.is_empty()),
        "another patient's documents must not be found: {others}"
    );

    // fhirclient's refresh() rotates the tokens.
    let refresh = &app["refresh"];
    assert_eq!(refresh["ok"], true, "client.refresh() failed: {refresh}");
    assert_eq!(refresh["newAccessToken"], true, "{refresh}");
    assert_eq!(refresh["newRefreshToken"], true, "rotation: {refresh}");
    assert_eq!(refresh["patient"], me.as_str(), "{refresh}");
    assert_eq!(refresh["readAfterRefresh"], "Patient", "{refresh}");
}

/// The patient's Consent sharing all their documents with the doctor
/// (recorded as an EHR would, with the system token): doctors read
/// documents only as Consent allows.
fn shares_with(patient: &str, practitioner: &str) {
    let mut consent = conformance::consent(patient, &uid());
    consent["provision"] = json!({ "type": "permit", "actor": [{
        "role": { "text": "reader" },
        "reference": { "reference": format!("Practitioner/{practitioner}") } }] });
    conformance::create(&consent);
}

#[test]
fn ehr_launch_as_a_doctor() {
    let org = hospital();
    let p = patient_of(&org, &unique_family("Launched"));
    let docs = documents_of(&p, 2);
    let neighbour = patient_of(&org, &unique_family("Neighbour"));
    documents_of(&neighbour, 1);
    let (practitioner, doctor) = doctor_of(&org);
    shares_with(&p, &practitioner);
    shares_with(&neighbour, &practitioner);

    let out = e2e().run(
        "ehr-launch",
        json!({
            "person": person(&doctor),
            "patientId": p,
            "scope": "launch openid fhirUser patient/*.rs",
            "clientScope": "launch launch/patient openid fhirUser patient/*.rs user/*.rs",
            "probes": [{ "name": "neighbour", "url": format!("Patient/{neighbour}") }],
        }),
    );
    assert_eq!(out["launch"]["status"], 201, "POST /auth/launch: {out}");
    assert_eq!(
        kinds(&out["trail"]),
        [
            "sign-in",
            "provider-login",
            "provider-consent",
            "approval",
            "app"
        ],
        "the launch fixes the patient, so no picker: {}",
        out["trail"]
    );
    // fhirclient sent the launch value on to the authorization endpoint.
    let authorize_url = out["launches"][0]["authorizeUrl"].as_str().unwrap();
    assert!(authorize_url.contains("launch="), "{authorize_url}");

    let app = app_result(&out, &format!("Practitioner/{practitioner}"), &p);
    let token = &app["tokenResponse"];
    assert_eq!(
        token["need_patient_banner"], false,
        "the EHR shows the patient: {token}"
    );
    let granted: BTreeSet<&str> = token["scope"].as_str().unwrap().split(' ').collect();
    assert!(granted.contains("launch"), "{token}");
    assert_eq!(app["userType"], "Practitioner");
    // patient/ scopes: the launch patient's compartment, nobody else's.
    assert_eq!(document_ids(&app["documents"]), docs, "{app}");
    assert_denied(
        &app["probes"]["neighbour"],
        "another patient of the hospital",
    );
}

#[test]
fn standalone_launch_as_a_doctor_picks_among_their_hospitals_patients() {
    let org = hospital();
    let elsewhere = hospital();
    let first = patient_of(&org, &unique_family("Ames"));
    let second = patient_of(&org, &unique_family("Baker"));
    let docs = documents_of(&second, 1);
    documents_of(&first, 1);
    let foreign = patient_of(&elsewhere, &unique_family("Carter"));
    let (practitioner, doctor) = doctor_of(&org);
    shares_with(&second, &practitioner);
    shares_with(&first, &practitioner);

    let out = e2e().run(
        "picker",
        json!({
            "person": person(&doctor),
            "pick": second,
            "scope": "openid fhirUser launch/patient patient/*.rs",
            "clientScope": "openid fhirUser launch/patient patient/*.rs",
        }),
    );
    assert_eq!(
        kinds(&out["trail"]),
        [
            "sign-in",
            "provider-login",
            "provider-consent",
            "picker",
            "approval",
            "app"
        ],
        "{}",
        out["trail"]
    );
    let offered: BTreeSet<String> = out["pickers"][0]
        .as_array()
        .expect("the picker's choices")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        offered,
        BTreeSet::from([first.clone(), second.clone()]),
        "only the doctor's hospital's patients (not {foreign}): {}",
        out["pickers"]
    );
    let app = app_result(&out, &format!("Practitioner/{practitioner}"), &second);
    assert_eq!(app["tokenResponse"]["need_patient_banner"], true);
    assert_eq!(document_ids(&app["documents"]), docs, "{app}");
    // The picker's list is a search like any other: each patient it showed
    // finds in their log that this doctor looked them up, for the app.
    for listed in [&first, &second] {
        let searches = picker_searches(listed, &practitioner);
        assert!(
            !searches.is_empty(),
            "Patient/{listed} has the picker's search in their log"
        );
        for event in &searches {
            conformance::balp::assert_valid_audit_event(event, "the picker's search");
            let app_agent = event["agent"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["network"]["type"] == "2")
                .expect("the app as an agent");
            assert!(
                app_agent["who"]["identifier"]["value"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{event:#}"
            );
        }
    }
}

/// The Patient searches by `Practitioner/{practitioner}` that the e2e
/// server's trail holds about `patient`.
fn picker_searches(patient: &str, practitioner: &str) -> Vec<Value> {
    let store = fhirledger_postgres::PgStore::connect(
        &e2e().server.database_url,
        &fhirledger_postgres::PoolConfig::default(),
    )
    .expect("a pool on the e2e server's database");
    store
        .audit_events_with(&format!("entity=Patient/{patient}"))
        .expect("the trail")
        .iter()
        .map(|c| serde_json::from_str::<Value>(c).expect("stored JSON"))
        .filter(|e| e["subtype"][0]["code"] == "search-type")
        .filter(|e| {
            e.to_string()
                .contains(&format!("\"Practitioner/{practitioner}\""))
        })
        .collect()
}

#[test]
fn backend_service_gets_a_token_with_a_cli_registered_key() {
    let org = hospital();
    let p = patient_of(&org, &unique_family("Backend"));
    let docs = documents_of(&p, 2);
    let out = e2e().run(
        "backend",
        json!({
            "patientId": p,
            "scope": "system/Patient.rs system/DocumentReference.rs",
        }),
    );
    for alg in ["ES384", "RS384"] {
        let r = &out[alg];
        assert_eq!(r["token"]["status"], 200, "{alg}: {r}");
        assert_eq!(r["token"]["token_type"], "Bearer", "{alg}: {r}");
        assert_eq!(
            r["token"]["scope"], "system/Patient.rs system/DocumentReference.rs",
            "{alg}: {r}"
        );
        assert_eq!(r["token"]["has_refresh_token"], false, "{alg}: {r}");
        assert!(
            r["token"]["cacheControl"]
                .as_str()
                .is_some_and(|c| c.contains("no-store")),
            "{alg}: {r}"
        );
        assert_eq!(r["patient"]["value"], p.as_str(), "{alg}: {r}");
        let found: BTreeSet<String> = r["documents"]["value"]
            .as_array()
            .unwrap_or_else(|| panic!("{alg}: {r}"))
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        assert_eq!(found, docs, "{alg}: {r}");
        // The same assertion again: its jti was used.
        assert_eq!(r["replay"]["status"], 401, "{alg}: {r}");
        assert_eq!(r["replay"]["error"], "invalid_client", "{alg}: {r}");
    }
}

#[test]
fn authorization_pages_are_accessible_and_work_without_javascript() {
    let org = hospital();
    let one = patient_of(&org, &unique_family("Dunn"));
    let family = unique_family("Evans");
    let two = patient_of(&org, &family);
    documents_of(&two, 1);
    let (_, doctor) = doctor_of(&org);

    let out = e2e().run(
        "pages",
        json!({
            "person": person(&doctor),
            "pick": { "id": two, "family": family },
            "scope": "openid fhirUser launch/patient patient/Patient.rs patient/DocumentReference.rs",
            "clientScope": "openid fhirUser launch/patient patient/*.rs",
            "untick": "patient/DocumentReference.rs",
        }),
    );
    assert_eq!(out["javaScriptEnabled"], false);

    // Each page: a language, one h1, every control found by its label.
    for name in ["sign-in", "picker", "approval"] {
        let page = &out["checks"][name];
        assert_eq!(page["lang"], "en", "{name}: {page}");
        assert_eq!(
            page["h1s"].as_array().map(Vec::len),
            Some(1),
            "{name}: {page}"
        );
        let controls = page["controls"].as_array().expect("controls");
        assert!(!controls.is_empty(), "{name} has form controls: {page}");
        for c in controls {
            assert_eq!(
                c["foundByLabel"], true,
                "{name}: a control without a label that finds it: {c}"
            );
        }
    }
    let sign_in = &out["checks"]["sign-in"];
    assert!(
        sign_in["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "Sign in with Test IdP"),
        "{sign_in}"
    );

    // The picker's search (a GET form) narrows the list.
    let before: BTreeSet<&str> = out["pickerBefore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        before.contains(one.as_str()) && before.contains(two.as_str()),
        "{}",
        out["pickerBefore"]
    );
    let searched: Vec<&str> = out["pickerSearched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(searched, [two.as_str()], "searched for {family}: {out}");

    // The approval page words each permission plainly (no raw scope
    // strings), and the unticked one is not granted.
    let permissions = out["allowed"]["approvals"][0]["permissions"]
        .as_array()
        .expect("permissions");
    for p in permissions {
        let label = p["label"].as_str().unwrap();
        assert!(
            !label.contains('/') && !label.contains(".rs"),
            "plain words, not scopes: {p}"
        );
        assert_eq!(p["checked"], true, "everything starts ticked: {p}");
    }
    let result = &out["allowed"]["result"];
    assert_eq!(result["ok"], true, "{result}");
    let app = &result["app"];
    let granted: BTreeSet<&str> = app["tokenResponse"]["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert!(
        !granted.contains("patient/DocumentReference.rs"),
        "{granted:?}"
    );
    assert!(granted.contains("patient/Patient.rs"), "{granted:?}");
    assert_eq!(app["tokenResponse"]["patient"], two.as_str());
    assert_eq!(app["patient"]["ok"], true, "{app}");
    assert_eq!(app["documents"]["ok"], false, "unticked: {app}");
    assert_eq!(app["documents"]["status"], 403, "{app}");

    // Deny: access_denied with the app's own state.
    let denied = &out["denied"];
    assert_eq!(
        kinds(&denied["trail"]),
        ["picker", "approval", "app"],
        "still signed in: {denied}"
    );
    let params = &denied["result"]["params"];
    assert_eq!(denied["result"]["ok"], false, "{denied}");
    assert_eq!(params["error"], "access_denied", "{denied}");
    assert!(denied["sentState"].is_string(), "{denied}");
    assert_eq!(params["state"], denied["sentState"], "{denied}");

    // A redirect URI that is not registered: an error page, no redirect.
    let wrong = &out["wrongRedirect"];
    assert!(
        wrong["sentRedirectUri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/not-registered")),
        "{wrong}"
    );
    assert_eq!(wrong["status"], 400, "{wrong}");
    assert_eq!(wrong["kind"], "error", "{wrong}");
    assert_eq!(
        wrong["origin"],
        e2e().server.public_base.as_str(),
        "{wrong}"
    );
    assert_eq!(wrong["page"]["lang"], "en", "{wrong}");
    assert_eq!(
        wrong["page"]["h1s"].as_array().map(Vec::len),
        Some(1),
        "{wrong}"
    );
    assert!(
        !wrong["appRequests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("/not-registered")),
        "the browser must never be sent to an unregistered redirect URI: {wrong}"
    );
}
