//! The portal (`/portal`) in headless Chromium: people sign in at the
//! external OpenID Connect provider through the server's own authorization
//! server, land on their dashboard, and sign out. The browser side is
//! `conformance/smart/portal.mjs`; screenshots of every dashboard are kept
//! under `target/test-artifacts/portal`.

use conformance::e2e::{e2e_anchored as e2e, Invitee};
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
    table(page, caption).unwrap_or_else(|| panic!("no table '{caption}' on {page:#}"))
}

/// The rows of the table with this caption, if the page has it (an empty
/// list is a sentence, not a table).
fn table<'a>(page: &'a Value, caption: &str) -> Option<&'a Vec<Value>> {
    page["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["caption"] == caption)
        .and_then(|t| t["rows"].as_array())
}

/// `rootAt(tree_size)` of the server's contract, by a plain `eth_call`
/// (the selector and the ABI encoding done here, not by our adapter).
fn root_on_chain(tree_size: u64) -> String {
    use sha3::{Digest, Keccak256};
    let chain = e2e().chain.as_ref().expect("an anchored server");
    let selector = &Keccak256::digest(b"rootAt(uint64)")[..4];
    let call = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [
            { "to": chain.contract, "data": format!("0x{}{tree_size:064x}", hex::encode(selector)) },
            "latest"
        ],
    });
    let answer = reqwest::blocking::Client::new()
        .post(&chain.rpc_url)
        .header("Content-Type", "application/json")
        .body(call.to_string())
        .send()
        .and_then(|r| r.text())
        .expect("an eth_call answer");
    let answer: Value = serde_json::from_str(&answer).expect("JSON-RPC");
    answer["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result: {answer}"))
        .to_lowercase()
}

/// A patient of `hospital` named "Test {family}"; their id.
fn patient_of(hospital: &str, family: &str) -> String {
    let mut p = patient(&uid());
    p["managingOrganization"] = json!({ "reference": format!("Organization/{hospital}") });
    p["name"] = json!([{ "family": family, "given": ["Test"] }]);
    e2e().create_id(&p)
}

/// A doctor of `hospital` named "Doc {family}" (a Practitioner with a
/// PractitionerRole there) and their account's invitation; the
/// Practitioner's id.
fn doctor_of(hospital: &str, family: &str) -> (String, Invitee) {
    let mut practitioner = conformance::practitioner(&uid());
    practitioner["name"] = json!([{ "family": family, "given": ["Doc"] }]);
    let practitioner_id = e2e().create_id(&practitioner);
    e2e().create_id(&json!({
        "resourceType": "PractitionerRole",
        "active": true,
        "practitioner": { "reference": format!("Practitioner/{practitioner_id}") },
        "organization": { "reference": format!("Organization/{hospital}") },
    }));
    let invitee = e2e().invite(
        "doctor",
        hospital,
        &format!("Practitioner/{practitioner_id}"),
    );
    (practitioner_id, invitee)
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
    // 29 older documents: the dashboard shows the newest ten, the rest are
    // on the pages of all their documents.
    for day in 1..=29 {
        let mut older = document_reference(&patient_id, &uid());
        older["description"] = json!(format!("Older letter {day:02}"));
        older["date"] = json!(format!("2020-01-{day:02}T00:00:00Z"));
        e2e().create_id(&older);
    }
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
    assert_eq!(documents.len(), 10, "their ten newest: {documents:?}");
    // Columns: document, kind, date, author, hospital.
    assert_eq!(documents[0][0], title);
    assert_eq!(documents[0][1], "Progress note");
    // 10:00 UTC, shown in the person's time zone (the browser's: Tokyo).
    assert_eq!(documents[0][2], "2024-05-01 19:00 GMT+9");
    assert_eq!(documents[1][0], "Older letter 29");
    assert_eq!(documents[9][0], "Older letter 21");
    no_serious_violations(first);

    // All of them, newest first, 25 a page; nobody else's.
    let all = &out["documents"];
    assert_eq!(all["h1"], "All your documents", "{all:#}");
    let page_one = rows(all, "All your documents");
    let page_two = rows(&out["olderDocuments"], "All your documents");
    assert_eq!((page_one.len(), page_two.len()), (25, 5), "{out:#}");
    let titles: Vec<&str> = page_one
        .iter()
        .chain(page_two)
        .filter_map(|r| r[0].as_str())
        .collect();
    let mut expected = vec![title.clone()];
    expected.extend((1..=29).rev().map(|day| format!("Older letter {day:02}")));
    assert_eq!(titles, expected);
    assert_eq!(
        out["olderDocumentsHasOlder"], false,
        "the last page links no further"
    );
    no_serious_violations(all);

    // The second visit shows the first one's reads in their access log: by
    // them, through the portal.
    let second = &out["second"];
    let log = rows(second, "Recent access to your record");
    // Columns: when, who, app, what, why, outcome, on chain.
    let by_portal = log.iter().find(|r| {
        r[1] == format!("Test {family}")
            && r[2] == "fhirledger portal"
            && r[3] == "Searched DocumentReference"
            && r[4] == "Their own record"
            && r[5] == "Allowed"
    });
    assert!(
        by_portal.is_some(),
        "the access log shows the portal's search: {log:#?}"
    );
    assert!(
        log.iter().any(|r| r[1] == "You" && r[3] == "Signed in"),
        "their own sign-in reads as theirs: {log:#?}"
    );
    no_serious_violations(second);
    let whole = &out["log"];
    assert_eq!(whole["h1"], "Your access log", "{whole:#}");
    assert!(
        rows(whole, "Your access log").len() >= log.len(),
        "the whole log holds at least the dashboard's recent entries"
    );
    no_serious_violations(whole);
    no_serious_violations(&out["shareForm"]);

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

    // A stale session cookie: a form is refused in plain words and nothing
    // happens; a page sends the person through sign-in again.
    assert_eq!(out["staleForm"]["status"], 401, "{out:#}");
    assert_eq!(out["staleForm"]["ended"], true, "{out:#}");
    assert_eq!(out["stalePage"]["status"], 303, "{out:#}");
    assert!(
        out["stalePage"]["location"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/portal/sign-in?next=%2Fportal&expired=1"),
        "{out:#}"
    );

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
    // The client agent names the client by the id our issuer gave it
    // (BALP: the Source of a query, the Destination of a read, the
    // Application of a security event).
    let issuer = format!("{}/auth", e2e().server.public_base);
    let client_of = |e: &Value| -> Option<String> {
        e["agent"].as_array()?.iter().find_map(|a| {
            let id = &a["who"]["identifier"];
            (id["system"] == issuer.as_str())
                .then(|| id["value"].as_str().map(str::to_string))
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
    // Each search event's query entity keeps the page's request as sent
    // (base64) and describes the FHIR search the page performed.
    let query_of = |e: &Value| -> Option<(String, String)> {
        let q = e["entity"]
            .as_array()?
            .iter()
            .find(|x| x["type"]["code"] == "2")?;
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            q["query"].as_str()?,
        )
        .ok()?;
        Some((
            String::from_utf8(raw).ok()?,
            q["description"].as_str()?.to_string(),
        ))
    };
    assert!(
        events.iter().filter_map(query_of).any(|(raw, described)| {
            raw.starts_with("GET /portal")
                && described.starts_with(&format!("GET DocumentReference?patient={patient_id}&"))
        }),
        "a dashboard's search names the page and the search: {:#?}",
        events.iter().filter_map(query_of).collect::<Vec<_>>()
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

/// The README's demo path in the browser (the patient with JavaScript off:
/// granting and revoking are plain forms): a patient shares their progress
/// notes with a doctor of another hospital; the doctor sees that document
/// and not the other, and opens it; the patient sees those reads in their
/// access log, then revokes; the doctor no longer sees it.
#[test]
fn a_patient_shares_a_kind_of_document_with_a_doctor_of_another_hospital_and_revokes() {
    let home = e2e().create_id(&organization(&uid()));
    let other = e2e().create_id(&organization(&uid()));
    let patient_family = format!("Sharer{}", &uid()[..8]);
    let patient_id = patient_of(&home, &patient_family);
    let note_title = format!("Shared note {}", &uid()[..8]);
    let mut note = document_reference(&patient_id, &uid());
    note["description"] = json!(note_title);
    let note_id = e2e().create_id(&note);
    let lab_title = format!("Kept lab {}", &uid()[..8]);
    let mut lab = document_reference(&patient_id, &uid());
    lab["description"] = json!(lab_title);
    lab["type"] = json!({"coding": [{"system": "http://loinc.org", "code": "11502-2", "display": "Laboratory report"}]});
    let lab_id = e2e().create_id(&lab);

    let doctor_family = format!("Reader{}", &uid()[..8]);
    let (practitioner_id, doctor) = doctor_of(&other, &doctor_family);
    let patient_account = e2e().invite("patient", &home, &format!("Patient/{patient_id}"));
    let officer = e2e().invite_as("compliance-officer", Some(&home), None);

    let out = e2e().run_script(
        "portal.mjs",
        "share-and-revoke",
        json!({
            "patient": person(&patient_account),
            "doctor": person(&doctor),
            "doctorFamily": doctor_family,
            "patientFamily": patient_family,
            "patientId": patient_id,
            "shared": { "id": note_id, "title": note_title },
            "kept": { "id": lab_id, "title": lab_title },
            "emergencyReason": "Unconscious in the emergency room",
            "officer": person(&officer),
            "artifacts": artifacts(),
        }),
    );
    // (The patient's pages, shown here with JavaScript off, are checked
    // with it on in the other tests.)
    for page in [
        "doctorDashboard",
        "patientPage",
        "documentPage",
        "doctorAfter",
        "noAccess",
        "emergencyPage",
        "trail",
        "filtered",
    ] {
        no_serious_violations(&out[page]);
    }

    // The share, as the patient sees it, is a Consent in force.
    assert!(
        out["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("shared"),
        "{out:#}"
    );
    let shares = rows(&out["afterShare"], "Your shares");
    let share = shares
        .iter()
        .find(|r| r[0] == format!("Doc {doctor_family}"))
        .unwrap_or_else(|| panic!("the share is listed: {shares:#?}"));
    assert_eq!(share[1], "Documents of these kinds: Progress note");
    // (The scenario has revoked it since: its first version is the share.)
    let consents = Request::on(
        &e2e().server,
        "GET",
        &format!("Consent?patient={patient_id}"),
    )
    .send();
    consents.assert_status(200);
    let consent_id = consents.json()["entry"][0]["resource"]["id"]
        .as_str()
        .expect("the share's Consent")
        .to_string();
    let first = Request::on(
        &e2e().server,
        "GET",
        &format!("Consent/{consent_id}/_history/1"),
    )
    .send();
    first.assert_status(200);
    let consent = first.json();
    assert_eq!(consent["status"], "active", "{consent:#}");
    assert_eq!(
        consent["provision"]["actor"][0]["reference"]["reference"],
        format!("Practitioner/{practitioner_id}"),
        "{consent:#}"
    );
    assert_eq!(
        consent["provision"]["code"][0]["coding"][0]["code"],
        "11506-3"
    );
    assert_eq!(consent["policyRule"]["coding"][0]["code"], "OPTIN");

    // The doctor sees the patient and the shared note, not the lab report.
    let patients = rows(&out["doctorDashboard"], "Your patients");
    assert!(
        patients
            .iter()
            .any(|r| r[0] == format!("Test {patient_family}")),
        "{patients:#?}"
    );
    let documents = rows(&out["patientPage"], "Documents you may read");
    let titles: Vec<&str> = documents.iter().filter_map(|r| r[0].as_str()).collect();
    assert_eq!(titles, vec![note_title.as_str()], "{documents:#?}");
    assert_eq!(out["documentPage"]["h1"], note_title);
    assert_eq!(out["content"]["status"], 200, "{out:#}");
    assert_eq!(out["content"]["text"], "hello world", "{out:#}");
    assert_eq!(out["keptAnswer"]["status"], 404, "{out:#}");
    assert_eq!(out["keptAnswer"]["notFound"], true, "{out:#}");

    // The patient's access log shows the doctor's reads through the portal.
    let log = rows(&out["withLog"], "Recent access to your record");
    assert!(
        log.iter().any(|r| r[1] == format!("Doc {doctor_family}")
            && r[2] == "fhirledger portal"
            && r[3] == "Read DocumentReference"
            && r[4] == "The patient's consent"),
        "{log:#?}"
    );

    // Revoked: the share is gone, the Consent inactive, the doctor sees nothing.
    assert!(
        out["revokedNotice"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{out:#}"
    );
    assert!(
        !out["afterRevoke"]["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t["caption"] == "Your shares"),
        "no share is left: {:#}",
        out["afterRevoke"]
    );
    let now = Request::on(&e2e().server, "GET", &format!("Consent/{consent_id}")).send();
    now.assert_status(200);
    assert_eq!(now.json()["status"], "inactive");
    assert_eq!(out["againAnswer"]["status"], 404, "{out:#}");
    assert!(
        !table(&out["doctorAfter"], "Your patients")
            .into_iter()
            .flatten()
            .any(|r| r[0] == format!("Test {patient_family}")),
        "{:#}",
        out["doctorAfter"]
    );

    // Emergency access: the doctor without access is offered it, opens the
    // record with a reason and sees every document for a while; the patient
    // sees the emergency, with the reason, in their log.
    assert_eq!(out["noAccess"]["h1"], "You have no access to this patient");
    assert!(
        out["emergencyNotice"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Emergency access until"),
        "{out:#}"
    );
    let opened = rows(&out["emergencyPage"], "Documents you may read");
    let mut titles: Vec<&str> = opened.iter().filter_map(|r| r[0].as_str()).collect();
    titles.sort_unstable();
    let mut expected = vec![lab_title.as_str(), note_title.as_str()];
    expected.sort_unstable();
    assert_eq!(titles, expected, "{opened:#?}");
    let log = rows(&out["patientLog"], "Your access log");
    assert!(
        log.iter().any(|r| r[1] == format!("Doc {doctor_family}")
            && r[4] == "Emergency access: Unconscious in the emergency room"),
        "{log:#?}"
    );

    // The compliance officer of the patient's hospital finds the doctor's
    // reads of the patient's record, and exports exactly those.
    assert_eq!(out["trail"]["h1"], "Audit trail");
    let found = rows(&out["filtered"], "Events");
    assert!(!found.is_empty(), "{:#}", out["filtered"]);
    assert!(
        found.iter().all(|r| r[1] == format!("Doc {doctor_family}")
            && r[3].as_str().unwrap_or("").starts_with("Read")),
        "{found:#?}"
    );
    // Revoking again (a second window) says so and changes nothing.
    assert_eq!(
        out["revokedTwice"]["status"], 409,
        "{:#}",
        out["revokedTwice"]
    );
    assert!(
        out["revokedTwice"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Already revoked"),
        "{:#}",
        out["revokedTwice"]
    );

    // One click on an anchored entry proves it against the chain; the
    // chain, asked here directly over JSON-RPC, holds the page's root.
    let proof = &out["proof"];
    assert_eq!(proof["page"]["h1"], "Proof of this entry", "{proof:#}");
    no_serious_violations(&proof["page"]);
    assert!(
        proof["notice"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Verified on chain:"),
        "{proof:#}"
    );
    assert_eq!(
        proof["facts"]["On chain"], "the same root, read from the contract just now",
        "{proof:#}"
    );
    let size: u64 = proof["facts"]["Checkpoint"]
        .as_str()
        .and_then(|s| s.strip_suffix(" entries"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a checkpoint size: {proof:#}"));
    assert_eq!(
        root_on_chain(size),
        proof["facts"]["Root"].as_str().unwrap_or_default(),
        "{proof:#}"
    );

    let exported = &out["exported"];
    assert_eq!(exported["status"], 200, "{exported:#}");
    assert_eq!(exported["type"], "application/fhir+ndjson");
    let events = exported["events"].as_array().expect("events");
    assert!(events.len() >= found.len(), "{exported:#}");
    assert!(
        events
            .iter()
            .all(|e| e["action"] == "R" && e["who"] == format!("Doc {doctor_family}")),
        "{exported:#}"
    );
}

/// The administrators in the browser: the solution admin onboards a
/// hospital and assigns it an admin, who onboards a doctor; removing the
/// doctor ends their session, deactivating the hospital ends its admin's.
#[test]
fn administrators_onboard_a_hospital_its_admin_and_a_doctor_and_offboard_them() {
    let admin = e2e().invite_as("solution-admin", None, None);
    let tag = &uid()[..8];
    // A patient of some other hospital, whom the new hospital's admin must
    // not open.
    let elsewhere = e2e().create_id(&organization(&uid()));
    let mut other = patient(&uid());
    other["managingOrganization"] = json!({ "reference": format!("Organization/{elsewhere}") });
    let other_patient = e2e().create_id(&other);
    let hospital_name = format!("Portal Hospital {tag}");
    let out = e2e().run_script(
        "portal.mjs",
        "administration",
        json!({
            "admin": person(&admin),
            "hospitalName": hospital_name,
            "otherPatientId": other_patient,
            "hospitalAdminEmail": format!("hospital-admin-{tag}@e2e.example.org"),
            "doctor": { "given": "Nina", "family": format!("New{tag}"), "email": format!("doctor-{tag}@e2e.example.org") },
            "artifacts": artifacts(),
        }),
    );
    for page in [
        "solution",
        "onboarded",
        "hospital",
        "doctor",
        "withDoctor",
        "deactivated",
    ] {
        no_serious_violations(&out[page]);
    }
    let hospitals = rows(&out["onboarded"], "Hospitals");
    assert!(
        hospitals
            .iter()
            .any(|r| r[0] == hospital_name.as_str() && r[1] == "Active"),
        "{hospitals:#?}"
    );
    for invitation in ["adminInvitation", "doctorInvitation"] {
        assert!(
            out[invitation]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{}/auth/invite/", e2e().server.public_base)),
            "{out:#}"
        );
    }
    assert_eq!(out["hospital"]["h1"], "Your hospital");
    assert_eq!(out["otherHospital"]["h1"], "Not found", "{out:#}");
    assert!(
        !out["otherHospital"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&other_patient),
        "{out:#}"
    );
    assert!(
        out["hospital"]["person"]
            .as_str()
            .unwrap_or_default()
            .contains(&hospital_name),
        "the hospital admin works for the new hospital: {:#}",
        out["hospital"]
    );
    assert_eq!(out["doctor"]["h1"], "Your patients");
    let doctors = rows(&out["withDoctor"], "Doctors");
    assert!(
        doctors.iter().any(|r| r[0] == format!("Nina New{tag}")),
        "{doctors:#?}"
    );
    assert!(
        out["removedNotice"]
            .as_str()
            .unwrap_or_default()
            .contains("removed"),
        "{out:#}"
    );
    assert_eq!(out["doctorAfter"]["kind"], "sign-in", "{out:#}");
    let hospitals = rows(&out["deactivated"], "Hospitals");
    assert!(
        hospitals
            .iter()
            .any(|r| r[0] == hospital_name.as_str() && r[1] == "Deactivated"),
        "{hospitals:#?}"
    );
    // The hospital admin's session ended at once, and the sign-in they are
    // sent through refuses them: their hospital is deactivated.
    let after = out["hospitalAdminAfter"]["trail"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(after["path"], "/portal/callback", "{out:#}");
    assert_eq!(after["h1"], "You are not signed in", "{out:#}");
    assert!(
        out["hospitalAdminRefusal"]
            .as_str()
            .unwrap_or_default()
            .contains("deactivated"),
        "{out:#}"
    );
}

/// Uploads in the browser: a patient uploads a file of over 100 MiB from
/// their dashboard (the form states the limit first, a progress bar shows
/// while it goes), and reads it back byte for byte; a doctor of their
/// hospital uploads a letter for them from the patient's page.
#[test]
fn a_patient_uploads_a_large_file_and_a_doctor_uploads_for_their_patient() {
    let hospital = e2e().create_id(&organization(&uid()));
    let patient_id = patient_of(&hospital, &format!("Uploader{}", &uid()[..8]));
    let filer = format!("Filer{}", &uid()[..8]);
    let (practitioner_id, doctor) = doctor_of(&hospital, &filer);
    let patient_account = e2e().invite("patient", &hospital, &format!("Patient/{patient_id}"));
    let bytes: u64 = 101 * 1024 * 1024;
    let out = e2e().run_script(
        "portal.mjs",
        "upload",
        json!({
            "patient": person(&patient_account),
            "doctor": person(&doctor),
            "patientId": patient_id,
            "bytes": bytes,
            "patientTitle": "My knee scan",
            "doctorTitle": "Referral to physiotherapy",
            "artifacts": artifacts(),
        }),
    );
    no_serious_violations(&out["dashboard"]);
    no_serious_violations(&out["patientPage"]);
    assert!(
        out["limitLabel"]
            .as_str()
            .unwrap_or_default()
            .contains("MiB"),
        "the form states the limit: {out:#}"
    );
    assert_eq!(
        out["progressShown"], true,
        "the progress bar showed: {out:#}"
    );
    assert_eq!(out["notice"], "The document is uploaded.", "{out:#}");
    let documents = rows(&out["dashboard"], "Your documents");
    assert!(
        documents.iter().any(|r| r[0] == "My knee scan"),
        "{documents:#?}"
    );
    assert_eq!(out["returned"]["status"], 200, "{out:#}");
    assert_eq!(out["returned"]["bytes"], bytes, "{out:#}");
    assert_eq!(out["returned"]["sha256"], out["sha256"], "{out:#}");

    let documents = rows(&out["patientPage"], "Documents you may read");
    assert!(
        documents.iter().any(|r| r[0] == "Referral to physiotherapy"
            && r[1] == "Referral note"
            && r[3] == format!("Doc {filer}")
            && r[4]
                .as_str()
                .unwrap_or_default()
                .starts_with("Conformance Hospital")),
        "the doctor's letter, its author and hospital named: {documents:#?}"
    );
    assert_eq!(out["letter"]["status"], 200, "{out:#}");
    assert_eq!(out["letter"]["text"], "A referral letter.", "{out:#}");

    // Each upload is one DocumentReference pointing at its Binary, written
    // as the uploader.
    let found = Request::on(
        &e2e().server,
        "GET",
        &format!("DocumentReference?patient={patient_id}"),
    )
    .send();
    found.assert_status(200);
    let entries = found.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    for e in &entries {
        let d = &e["resource"];
        let url = d["content"][0]["attachment"]["url"]
            .as_str()
            .unwrap_or_default();
        assert!(url.starts_with("Binary/"), "{d:#}");
        Request::on(&e2e().server, "GET", url)
            .send()
            .assert_status(200);
    }
    let letter = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|d| d["description"] == "Referral to physiotherapy")
        .expect("the doctor's letter");
    assert_eq!(
        letter["author"][0]["reference"],
        format!("Practitioner/{practitioner_id}")
    );
    assert_eq!(
        letter["custodian"]["reference"],
        format!("Organization/{hospital}")
    );
}

/// Whether a live page's script pointed out (`fresh`) a new row naming `name`.
fn pointed_out(page: &Value, name: &str) -> bool {
    page["fresh"]
        .as_array()
        .expect("fresh rows")
        .iter()
        .any(|r| r.as_str().unwrap_or_default().contains(name))
}

/// Live pages: with both pages open, a patient's share appears on the
/// doctor's dashboard, and so does a patient their hospital's admin
/// onboards, and the doctor's read in the patient's access log,
/// each without a reload (server-sent events, then the page fetched again
/// through the access decision); the patient's own page views do not
/// refresh their log; a stream of another person's kind is refused.
#[test]
fn open_pages_show_a_new_share_and_a_new_access_without_a_reload() {
    let home = e2e().create_id(&organization(&uid()));
    let other = e2e().create_id(&organization(&uid()));
    let patient_family = format!("Live{}", &uid()[..8]);
    let patient_id = patient_of(&home, &patient_family);
    let title = format!("Live note {}", &uid()[..8]);
    let mut note = document_reference(&patient_id, &uid());
    note["description"] = json!(title);
    let note_id = e2e().create_id(&note);
    let doctor_family = format!("Watcher{}", &uid()[..8]);
    let (_, doctor) = doctor_of(&other, &doctor_family);
    let patient_account = e2e().invite("patient", &home, &format!("Patient/{patient_id}"));
    let hospital_admin = e2e().invite_as("hospital-admin", Some(&other), None);
    let onboarded_family = format!("Onboarded{}", &uid()[..8]);

    let out = e2e().run_script(
        "portal.mjs",
        "live",
        json!({
            "patient": person(&patient_account),
            "doctor": person(&doctor),
            "hospitalAdmin": person(&hospital_admin),
            "onboardedFamily": onboarded_family,
            "doctorFamily": doctor_family,
            "patientFamily": patient_family,
            "shared": { "id": note_id, "title": title },
            "artifacts": artifacts(),
        }),
    );
    // Before the share the doctor does not see the patient.
    let before = table(&out["doctorBefore"], "Your patients")
        .cloned()
        .unwrap_or_default();
    assert!(
        !before
            .iter()
            .any(|r| r[0].as_str().unwrap_or_default().contains(&patient_family)),
        "{before:#?}"
    );
    assert_eq!(out["streams"]["foreignTopic"], 404, "{out:#}");
    assert_eq!(out["streams"]["unknownTopic"], 404, "{out:#}");

    let doctor_after = &out["doctorAfter"];
    assert_eq!(doctor_after["sameLoad"], true, "not reloaded: {out:#}");
    assert!(
        pointed_out(doctor_after, &patient_family),
        "the new patient is pointed out: {doctor_after:#}"
    );
    assert_eq!(doctor_after["announced"], "1 new entry", "{doctor_after:#}");
    no_serious_violations(&doctor_after["page"]);

    // A patient onboarded at the doctor's hospital appears the same way.
    let onboarded = &out["doctorOnboarded"];
    assert_eq!(onboarded["sameLoad"], true, "not reloaded: {out:#}");
    assert!(
        pointed_out(onboarded, &onboarded_family),
        "the onboarded patient is pointed out: {onboarded:#}"
    );

    let log_after = &out["logAfter"];
    assert_eq!(log_after["sameLoad"], true, "not reloaded: {out:#}");
    assert!(
        pointed_out(log_after, &doctor_family),
        "the doctor's read is pointed out: {log_after:#}"
    );
    no_serious_violations(&log_after["page"]);
    let log = rows(&log_after["page"], "Your access log");
    assert!(
        log.iter().any(
            |r| r[1].as_str().unwrap_or_default().contains(&doctor_family)
                && r[3].as_str().unwrap_or_default().contains("Read")
        ),
        "{log:#?}"
    );
    // The share and the doctor's two page views are a handful of news; a
    // log refreshed by its own reads would have fetched itself over and over.
    let refetched = out["refetches"]["patientLog"].as_u64().expect("a count");
    assert!(
        (1..=4).contains(&refetched),
        "the log fetched itself {refetched} times: {out:#}"
    );
}

#[test]
fn a_doctor_pages_through_more_patients_than_the_dashboard_lists() {
    let hospital = e2e().create_id(&organization(&uid()));
    // 53 patients of the doctor's hospital, in family-name order by number.
    let stem = format!("Paged{}", &uid()[..8]);
    let families: Vec<String> = (0..53).map(|i| format!("{stem}{i:02}")).collect();
    for family in &families {
        patient_of(&hospital, family);
    }
    let (_, doctor) = doctor_of(&hospital, &format!("Pager{}", &uid()[..8]));
    let out = e2e().run_script(
        "portal.mjs",
        "patients-pages",
        json!({ "doctor": person(&doctor), "artifacts": artifacts() }),
    );
    let names = |page: &Value| -> Vec<String> {
        rows(page, "Your patients")
            .iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect()
    };
    let first = names(&out["first"]);
    let more = names(&out["more"]);
    assert_eq!((first.len(), more.len()), (50, 3), "{out:#}");
    let expected: Vec<String> = families.iter().map(|f| format!("Test {f}")).collect();
    assert_eq!(
        [first, more].concat(),
        expected,
        "every patient once, in name order"
    );
    assert_eq!(out["moreHasMore"], false, "the last page links no further");
    assert_eq!(names(&out["back"]).len(), 50, "back on the first page");
    no_serious_violations(&out["first"]);
}
