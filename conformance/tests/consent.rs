//! Patient Consent decides what doctors read, with user tokens from the real
//! authorization-code flow, on a real server and database. Each case is a
//! fresh patient of hospital A with three documents (a progress note, a
//! restricted lab report, an image with its Binary) and the Consents the
//! case writes; [`sees`] asks every interaction that can reveal a document
//! (read, search with totals and pages, `_include`/`_revinclude`, history,
//! the Binary, a batch entry) and insists they all agree.
//!
//! The server runs the default base policy, `deny` (opt-in); the opt-out
//! policy has a second server on the same database.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use conformance::consent_case::*;
use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

/// A doctor: their account, Practitioner, PractitionerRole (if any) and token.
struct Doctor {
    user: TestUser,
    role: Option<String>,
    token: String,
}

impl Doctor {
    fn practitioner(&self) -> String {
        format!("Practitioner/{}", self.user.fhir_id())
    }
}

struct World {
    org_a: String,
    org_b: String,
    client: AppClient,
    /// Hospital A, with a PractitionerRole at A.
    a: Doctor,
    /// Hospital B, with a PractitionerRole at B.
    b: Doctor,
    /// Hospital B, no PractitionerRole.
    c: Doctor,
}

const DOCTOR_SCOPES: &str = "openid fhirUser user/*.cruds";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let s = server();
        let org_a = new_hospital();
        let org_b = new_hospital();
        let client = AppClient::register(s, "public", None);
        let doctor = |org: &str, with_role: bool| {
            let user = new_doctor(s, org);
            let role = with_role.then(|| {
                id_of(&create(&json!({
                    "resourceType": "PractitionerRole",
                    "active": true,
                    "practitioner": { "reference": format!("Practitioner/{}", user.fhir_id()) },
                    "organization": { "reference": format!("Organization/{org}") }
                })))
            });
            let token = tokens_for(s, &client, &user, DOCTOR_SCOPES).access_token();
            Doctor { user, role, token }
        };
        World {
            a: doctor(&org_a, true),
            b: doctor(&org_b, true),
            c: doctor(&org_b, false),
            org_a,
            org_b,
            client,
        }
    })
}

/// A patient of hospital A and their three documents.
type Case = PatientDocuments;

fn new_case() -> Case {
    PatientDocuments::create(&world().org_a, "Consenting")
}

/// A Consent in force of the case's patient with this provision.
fn consent_with(case: &Case, provision: Value) -> Value {
    let mut c = conformance::consent(&case.patient, &uid());
    c["provision"] = provision;
    c
}

/// Writes a Consent as an EHR would (system token); returns its id.
fn record(case: &Case, provision: Value) -> String {
    id_of(&create(&consent_with(case, provision)))
}

/// Which of the case's documents `token` reads, asked through every
/// interaction that can reveal one; panics when two of them disagree.
#[track_caller]
fn sees(token: &str, case: &Case) -> BTreeSet<&'static str> {
    let by_read: BTreeSet<&'static str> = case
        .documents()
        .into_iter()
        .filter(|(_, id)| status_of(&get(&format!("DocumentReference/{id}")).bearer(token).send()))
        .map(|(name, _)| name)
        .collect();
    let names = |ids: &BTreeSet<String>| case.names(ids);

    // Search, one per page, with accurate totals on every page.
    let mut found = BTreeSet::new();
    let mut next = Some(url(&format!(
        "DocumentReference?patient=Patient/{}&_count=1&_total=accurate&_sort=date",
        case.patient
    )));
    while let Some(u) = next {
        let resp = get(&u).bearer(token).send();
        resp.assert_status(200);
        let page = resp.resource("Bundle");
        assert_eq!(
            page["total"],
            by_read.len(),
            "total counts only what reads: {page}"
        );
        found.extend(doc_ids(&page));
        next = link(&page, "next");
        assert!(found.len() <= 3, "more pages than documents");
    }
    assert_eq!(names(&found), by_read, "search and read disagree");
    // An estimated total never counts what the caller does not see either.
    let resp = get(&format!(
        "DocumentReference?patient=Patient/{}&_total=estimate",
        case.patient
    ))
    .bearer(token)
    .send();
    resp.assert_status(200);
    if token != server().token() {
        // (Unrestricted callers get the planner's estimate, which may be anything.)
        assert_eq!(
            resp.json()["total"],
            by_read.len(),
            "the estimate counts hidden documents"
        );
    }

    // The type-level search by type code, and a search that includes the
    // patient: the same documents.
    let resp = get(&format!(
        "DocumentReference?subject=Patient/{}&_include=DocumentReference:subject&_total=accurate",
        case.patient
    ))
    .bearer(token)
    .send();
    resp.assert_status(200);
    assert_eq!(
        names(&doc_ids(&resp.json())),
        by_read,
        "include search disagrees"
    );

    // `_revinclude` from the Patient, when the doctor reads the Patient.
    let resp = get(&format!(
        "Patient?_id={}&_revinclude=DocumentReference:subject",
        case.patient
    ))
    .bearer(token)
    .send();
    resp.assert_status(200);
    let bundle = resp.json();
    let patient_visible = entries(&bundle)
        .iter()
        .any(|e| e["resource"]["resourceType"] == "Patient");
    if patient_visible {
        assert_eq!(names(&doc_ids(&bundle)), by_read, "revinclude disagrees");
    } else {
        assert!(
            doc_ids(&bundle).is_empty(),
            "revinclude without the patient"
        );
    }

    // History of each document.
    for (name, id) in case.documents() {
        let resp = get(&format!("DocumentReference/{id}/_history"))
            .bearer(token)
            .send();
        assert_eq!(
            status_of(&resp),
            by_read.contains(name),
            "history of {name}"
        );
    }

    // The image's Binary, raw.
    let resp = get(&format!("Binary/{}", case.binary)).bearer(token).send();
    assert_eq!(status_of(&resp), by_read.contains("img"), "the Binary");

    // A batch of reads.
    let batch = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": case.documents().iter().map(|(_, id)| json!({
            "request": { "method": "GET", "url": format!("DocumentReference/{id}") }
        })).collect::<Vec<_>>()
    });
    let resp = post(&base()).bearer(token).json(&batch).send();
    resp.assert_status(200);
    let out = resp.json();
    let by_batch: BTreeSet<&'static str> = case
        .documents()
        .iter()
        .zip(entries(&out))
        .filter(|(_, e)| {
            e["response"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("200"))
        })
        .map(|((name, _), _)| *name)
        .collect();
    assert_eq!(by_batch, by_read, "batch disagrees: {out}");
    by_read
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

const ALL: [&str; 3] = ["img", "lab", "note"];
const NONE: [&str; 0] = [];

/// Whether `token` reads the case's Patient.
fn reads_patient(token: &str, case: &Case) -> bool {
    status_of(
        &get(&format!("Patient/{}", case.patient))
            .bearer(token)
            .send(),
    )
}

// ------------------------------------------------------------- the matrix

#[test]
fn without_consent_no_doctor_reads_anything_under_the_opt_in_policy() {
    let w = world();
    let case = new_case();
    for d in [&w.a, &w.b, &w.c] {
        assert_eq!(sees(&d.token, &case), set(&NONE));
    }
    // The own hospital's doctor still reads the demographics (to file
    // documents); the other hospital's do not.
    assert!(reads_patient(&w.a.token, &case));
    assert!(!reads_patient(&w.b.token, &case));
}

#[test]
fn a_permit_to_a_doctor_opens_everything_to_that_doctor_only() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    assert_eq!(sees(&w.c.token, &case), set(&NONE));
    assert_eq!(sees(&w.a.token, &case), set(&NONE));
    // Granted anything, the doctor of another hospital reads the Patient.
    assert!(reads_patient(&w.b.token, &case));
    assert!(!reads_patient(&w.c.token, &case));
}

#[test]
fn a_permit_to_a_practitioner_role_names_its_practitioner() {
    let w = world();
    let case = new_case();
    let role = w.b.role.as_deref().expect("b has a role");
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&format!("PractitionerRole/{role}"))] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    assert_eq!(sees(&w.c.token, &case), set(&NONE));
}

#[test]
fn a_permit_to_another_hospital_opens_to_each_of_its_doctors() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&format!("Organization/{}", w.org_b))] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    assert_eq!(sees(&w.c.token, &case), set(&ALL));
    assert_eq!(sees(&w.a.token, &case), set(&NONE));
}

#[test]
fn permits_narrowed_by_data_code_period_and_label() {
    let w = world();
    let to_b = |extra: Value| {
        let mut p = json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] });
        for (k, v) in extra.as_object().expect("an object") {
            p[k] = v.clone();
        }
        p
    };
    let case = new_case();
    record(
        &case,
        to_b(json!({ "data": [{ "meaning": "instance",
            "reference": { "reference": format!("DocumentReference/{}", case.note) } }] })),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["note"]));

    let case = new_case();
    record(
        &case,
        to_b(json!({ "code": [{ "coding": [{ "system": LOINC, "code": LAB }] }] })),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["lab"]));

    let case = new_case();
    record(
        &case,
        to_b(json!({ "dataPeriod": { "start": "2023-01-01", "end": "2024-12-31" } })),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["lab", "note"]));

    let case = new_case();
    record(
        &case,
        to_b(json!({ "securityLabel": [{ "system": CONFIDENTIALITY, "code": "R" }] })),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["lab"]));
}

#[test]
fn a_nested_deny_withholds_one_document() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({
            "type": "permit",
            "actor": [actor(&format!("Organization/{}", w.org_b))],
            "provision": [{
                "type": "deny",
                "actor": [actor(&w.c.practitioner())],
                "data": [{ "meaning": "instance",
                    "reference": { "reference": format!("DocumentReference/{}", case.lab) } }]
            }]
        }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    assert_eq!(sees(&w.c.token, &case), set(&["img", "note"]));
}

#[test]
fn consents_not_in_force_change_nothing() {
    let w = world();
    let permit_b = || json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] });
    // Inactive, draft, rejected, entered-in-error.
    for status in ["inactive", "draft", "rejected", "entered-in-error"] {
        let case = new_case();
        let mut c = consent_with(&case, permit_b());
        c["status"] = json!(status);
        create(&c);
        assert_eq!(sees(&w.b.token, &case), set(&NONE), "{status}");
    }
    // Expired and future periods.
    for period in [
        json!({ "start": "2020-01-01", "end": "2021-01-01" }),
        json!({ "start": "2999-01-01" }),
    ] {
        let case = new_case();
        let mut p = permit_b();
        p["period"] = period.clone();
        record(&case, p);
        assert_eq!(sees(&w.b.token, &case), set(&NONE), "{period}");
    }
    // A current period.
    let case = new_case();
    let mut p = permit_b();
    p["period"] = json!({ "start": "2020-01-01", "end": "2999-01-01" });
    record(&case, p);
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
}

#[test]
fn two_consents_in_force_add_up_and_deny_wins() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())],
                "code": [{ "coding": [{ "system": LOINC, "code": NOTE }] }] }),
    );
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())],
                "code": [{ "coding": [{ "system": LOINC, "code": LAB }] }] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["lab", "note"]));
    record(
        &case,
        json!({ "type": "deny", "actor": [actor(&w.b.practitioner())],
                "securityLabel": [{ "system": CONFIDENTIALITY, "code": "R" }] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&["note"]));
}

#[test]
fn the_author_always_reads_their_document() {
    let w = world();
    let case = new_case();
    // A document authored by doctor C (another hospital) through their
    // Practitioner, and one by doctor B through B's PractitionerRole.
    let mut by_c = document_of(&case.patient, NOTE, "2024-07-01T00:00:00Z");
    by_c["author"] = json!([{ "reference": w.c.practitioner() }]);
    let by_c = id_of(&create(&by_c));
    let mut by_b = document_of(&case.patient, NOTE, "2024-07-02T00:00:00Z");
    by_b["author"] = json!([{ "reference": format!("PractitionerRole/{}",
        w.b.role.as_deref().expect("a role")) }]);
    let by_b = id_of(&create(&by_b));
    let reads = |d: &Doctor, id: &str| {
        status_of(
            &get(&format!("DocumentReference/{id}"))
                .bearer(&d.token)
                .send(),
        )
    };
    assert!(reads(&w.c, &by_c) && !reads(&w.b, &by_c));
    assert!(reads(&w.b, &by_b) && !reads(&w.c, &by_b));
    // Even a Consent denying them everything does not hide their own work.
    record(
        &case,
        json!({ "type": "deny", "actor": [actor(&w.c.practitioner())] }),
    );
    assert!(reads(&w.c, &by_c));
    for (_, id) in case.documents() {
        assert!(!reads(&w.c, id));
    }
    let resp = get(&format!(
        "DocumentReference?patient=Patient/{}&_total=accurate",
        case.patient
    ))
    .bearer(&w.c.token)
    .send();
    resp.assert_status(200);
    assert_eq!(resp.json()["total"], 1, "only their own document counts");
}

#[test]
fn revoking_takes_effect_on_the_very_next_request() {
    let w = world();
    let case = new_case();
    let consent = consent_with(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] }),
    );
    let created = create(&consent);
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    let id = id_of(&created);
    let mut revoked = created.clone();
    revoked["status"] = json!("inactive");

    // Searches race the revoking write; none that starts after the write
    // answered may return a document.
    let query = format!(
        "DocumentReference?patient=Patient/{}&_total=accurate",
        case.patient
    );
    let token = w.b.token.clone();
    let searches = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let started = Instant::now();
            let resp = get(&query).bearer(&token).send();
            resp.assert_status(200);
            seen.push((started, resp.json()["total"].as_u64().unwrap_or(99)));
        }
        seen
    });
    put(&format!("Consent/{id}"))
        .json(&revoked)
        .send()
        .assert_status(200);
    let revoked_at = Instant::now();
    let seen = searches.join().expect("the searches ran");
    for (started, total) in seen {
        if started > revoked_at {
            assert_eq!(total, 0, "a search after the revocation saw documents");
        }
    }
    assert_eq!(sees(&w.b.token, &case), set(&NONE));

    // Deleting a Consent revokes too.
    let again = record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] }),
    );
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    delete(&format!("Consent/{again}"))
        .send()
        .assert_status(204);
    assert_eq!(sees(&w.b.token, &case), set(&NONE));
}

#[test]
fn a_new_document_follows_the_consents_already_in_force() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())],
                "code": [{ "coding": [{ "system": LOINC, "code": NOTE }] }] }),
    );
    let later = id_of(&create(&document_of(
        &case.patient,
        NOTE,
        "2025-01-01T00:00:00Z",
    )));
    get(&format!("DocumentReference/{later}"))
        .bearer(&w.b.token)
        .send()
        .assert_status(200);
    // Documents arriving together in a transaction Bundle follow it too.
    let entry = |code: &str| {
        json!({ "resource": document_of(&case.patient, code, "2025-02-01T00:00:00Z"),
                "request": { "method": "POST", "url": "DocumentReference" } })
    };
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction",
                         "entry": [entry(NOTE), entry(LAB)] });
    let resp = post(&base()).json(&bundle).send();
    resp.assert_status(200);
    let out = resp.json();
    let created: Vec<String> = entries(&out)
        .iter()
        .filter_map(|e| e["response"]["location"].as_str())
        .filter_map(|l| l.split("DocumentReference/").nth(1))
        .filter_map(|l| l.split('/').next())
        .map(str::to_string)
        .collect();
    assert_eq!(created.len(), 2, "{out}");
    get(&format!("DocumentReference/{}", created[0]))
        .bearer(&w.b.token)
        .send()
        .assert_status(200);
    get(&format!("DocumentReference/{}", created[1]))
        .bearer(&w.b.token)
        .send()
        .assert_outcome(404);
    // Changing its type moves it out of the Consent at once.
    let mut changed = read("DocumentReference", &later);
    changed["type"] = json!({ "coding": [{ "system": LOINC, "code": LAB }] });
    put(&format!("DocumentReference/{later}"))
        .json(&changed)
        .send()
        .assert_status(200);
    get(&format!("DocumentReference/{later}"))
        .bearer(&w.b.token)
        .send()
        .assert_outcome(404);
}

#[test]
fn conditional_matching_never_sees_hidden_documents() {
    let w = world();
    let case = new_case();
    let identifier = read("DocumentReference", &case.note)["identifier"][0]["value"]
        .as_str()
        .expect("an identifier")
        .to_string();
    // Doctor A (the patient's hospital) may file documents for the patient
    // but reads none: a conditional create matching the hidden note creates.
    let mut doc = document_of(&case.patient, NOTE, "2024-09-01T00:00:00Z");
    doc["author"] = json!([{ "reference": w.a.practitioner() }]);
    let resp = post("DocumentReference")
        .bearer(&w.a.token)
        .header("If-None-Exist", format!("identifier=urn:test|{identifier}"))
        .json(&doc)
        .send();
    resp.assert_status(201);
    // Once permitted, the same condition finds the note.
    record(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.a.practitioner())] }),
    );
    let resp = post("DocumentReference")
        .bearer(&w.a.token)
        .header("If-None-Exist", format!("identifier=urn:test|{identifier}"))
        .json(&doc)
        .send();
    resp.assert_status(200);
}

#[test]
fn system_clients_are_not_subject_to_consent() {
    let case = new_case();
    record(&case, json!({ "type": "deny" }));
    assert_eq!(sees(server().token(), &case), set(&ALL));
}

// ------------------------------------------------------------- the writes

#[test]
fn references_that_decide_access_must_resolve() {
    let case = new_case();
    let resp = post("DocumentReference")
        .json(&document_of("does-not-exist", NOTE, "2024-01-01T00:00:00Z"))
        .send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "DocumentReference.subject");

    let mut authored = document_of(&case.patient, NOTE, "2024-01-01T00:00:00Z");
    authored["author"] = json!([{ "reference": "Practitioner/nobody-here" }]);
    let resp = post("DocumentReference").json(&authored).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "DocumentReference.author");

    let mut c = conformance::consent("does-not-exist", &uid());
    c["provision"] = json!({ "type": "permit" });
    let resp = post("Consent").json(&c).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "Consent.patient");

    let c = consent_with(
        &case,
        json!({ "type": "permit", "actor": [actor("Practitioner/nobody-here")] }),
    );
    let resp = post("Consent").json(&c).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "Consent.provision.actor.reference");

    // A patient with documents cannot be deleted from under them.
    delete(&format!("Patient/{}", case.patient))
        .send()
        .assert_outcome(409);
    read("Patient", &case.patient);

    // In a transaction, a reference to another entry resolves.
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "fullUrl": "urn:uuid:4f1c1a52-0b4e-4d8b-9c07-0d2a9d7b8e11",
              "resource": patient(&uid()),
              "request": { "method": "POST", "url": "Patient" } },
            { "resource": {
                  "resourceType": "DocumentReference", "status": "current",
                  "subject": { "reference": "urn:uuid:4f1c1a52-0b4e-4d8b-9c07-0d2a9d7b8e11" },
                  "content": [{ "attachment": { "contentType": "text/plain", "data": "aGk=" } }] },
              "request": { "method": "POST", "url": "DocumentReference" } }
        ]
    });
    post(&base()).json(&bundle).send().assert_status(200);
    // And a dangling one fails the whole transaction.
    let mut dangling = bundle.clone();
    dangling["entry"][1]["resource"]["subject"] = json!({ "reference": "Patient/does-not-exist" });
    post(&base()).json(&dangling).send().assert_outcome(422);
}

#[test]
fn who_may_write_consents() {
    let w = world();
    let s = server();
    let case = new_case();
    let other = new_case();
    // The patient, for themselves.
    let patient = TestUser::create(
        s,
        "patient",
        Some(&w.org_a),
        Some(&format!("Patient/{}", case.patient)),
    );
    let token =
        tokens_for(s, &w.client, &patient, "openid fhirUser patient/*.cruds").access_token();
    let mine = consent_with(
        &case,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] }),
    );
    post("Consent")
        .bearer(&token)
        .json(&mine)
        .send()
        .assert_status(201);
    assert_eq!(sees(&w.b.token, &case), set(&ALL));
    // Not for someone else: 422 naming the patient, nothing written.
    let theirs = consent_with(
        &other,
        json!({ "type": "permit", "actor": [actor(&w.b.practitioner())] }),
    );
    let resp = post("Consent").bearer(&token).json(&theirs).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "Consent.patient");
    assert_eq!(sees(&w.b.token, &other), set(&NONE));
    // Unknown codes for scope and action.
    let mut bad_scope = mine.clone();
    bad_scope["scope"] = json!({ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "no-such-scope" }] });
    let resp = post("Consent").bearer(&token).json(&bad_scope).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "Consent.scope");
    let mut bad_action = mine.clone();
    bad_action["provision"]["provision"] = json!([{ "type": "deny", "action": [{ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "no-such-action" }] }] }]);
    let resp = post("Consent").bearer(&token).json(&bad_action).send();
    let outcome = resp.assert_outcome(422);
    assert_issue_at(&resp, &outcome, "Consent.provision");
    // Doctors may not write Consents.
    post("Consent")
        .bearer(&w.a.token)
        .json(&mine)
        .send()
        .assert_outcome(403);
}

// ------------------------------------------------------ emergency access

fn break_glass(token: &str, patient: &str, reason: Option<&str>) -> Response {
    let body = match reason {
        Some(r) => json!({ "resourceType": "Parameters",
            "parameter": [{ "name": "reason", "valueString": r }] }),
        None => json!({ "resourceType": "Parameters" }),
    };
    post(&format!("Patient/{patient}/$emergency-access"))
        .bearer(token)
        .json(&body)
        .send()
}

#[test]
fn emergency_access_opens_a_patient_to_one_doctor_even_against_a_deny() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "deny", "actor": [actor(&w.c.practitioner())] }),
    );
    assert_eq!(sees(&w.c.token, &case), set(&NONE));
    assert!(!reads_patient(&w.c.token, &case));
    // No reason: 400, nothing granted.
    break_glass(&w.c.token, &case.patient, None).assert_outcome(400);
    assert_eq!(sees(&w.c.token, &case), set(&NONE));

    let resp = break_glass(&w.c.token, &case.patient, Some("unconscious in the ER"));
    resp.assert_status(200);
    let out = resp.resource("Parameters");
    let expires = out["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "expires"))
        .and_then(|p| p["valueInstant"].as_str())
        .unwrap_or_else(|| resp.fail("no expires"));
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("an instant");
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (58..=60).contains(&minutes),
        "the default is 60 minutes: {minutes}"
    );
    assert_eq!(sees(&w.c.token, &case), set(&ALL));
    assert!(reads_patient(&w.c.token, &case));
    // Only that doctor.
    assert_eq!(sees(&w.b.token, &case), set(&NONE));
    // Unknown patients are 404.
    break_glass(&w.c.token, "no-such-patient", Some("x")).assert_outcome(404);
}

/// The one AuditEvent of request `request_id`, checked against R4 and BALP.
#[track_caller]
fn only_event(request_id: &str) -> Value {
    let events = conformance::balp::recorded_events(request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    events.into_iter().next().unwrap_or_default()
}

#[test]
fn a_hidden_document_answers_404_and_its_patient_sees_the_attempt() {
    let w = world();
    let case = new_case();
    let resp = get(&format!("DocumentReference/{}", case.note))
        .bearer(&w.b.token)
        .send();
    resp.assert_status(404);
    let request_id = resp.required_header("x-request-id");
    let event = only_event(&request_id);
    assert_eq!(event["outcome"], "4");
    assert_eq!(event["agent"][0]["who"]["reference"], w.b.practitioner());
    assert_eq!(
        conformance::balp::entity_refs(&event, "1"),
        [format!("Patient/{}", case.patient)]
    );
    // It is among the patient's events.
    let theirs = get(&format!(
        "AuditEvent?patient=Patient/{}&entity-type=XrequestId&_count=100",
        case.patient
    ))
    .send();
    theirs.assert_status(200);
    assert!(
        theirs.text().contains(&request_id),
        "the attempt is not in the patient's log"
    );
}

#[test]
fn emergency_access_is_in_the_trail_with_its_reason() {
    let w = world();
    let case = new_case();
    let reason = "unconscious, allergies unknown";
    let resp = break_glass(&w.b.token, &case.patient, Some(reason));
    resp.assert_status(200);
    let request_id = resp.required_header("x-request-id");
    let event = only_event(&request_id);
    assert_eq!(event["subtype"][1]["code"], "$emergency-access");
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
    assert_eq!(event["purposeOfEvent"][0]["text"], reason);
    let doctor = &event["agent"][0];
    assert_eq!(doctor["who"]["reference"], w.b.practitioner());
    assert_eq!(
        doctor["policy"][0],
        "urn:fhirledger:access:emergency-access"
    );
    assert_eq!(
        conformance::balp::entity_refs(&event, "1"),
        [format!("Patient/{}", case.patient)]
    );
}

#[test]
fn a_patient_may_switch_emergency_access_off() {
    let w = world();
    let case = new_case();
    record(
        &case,
        json!({ "type": "deny", "purpose": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG" }] }),
    );
    let resp = break_glass(&w.b.token, &case.patient, Some("trauma"));
    let outcome = resp.assert_outcome(403);
    assert!(
        outcome.to_string().contains("emergency access off"),
        "{outcome}"
    );
    assert_eq!(sees(&w.b.token, &case), set(&NONE));
}

#[test]
fn only_doctors_break_the_glass() {
    let w = world();
    let case = new_case();
    let admin = TestUser::create(server(), "hospital-admin", Some(&w.org_a), None);
    let token = tokens_for(server(), &w.client, &admin, "openid user/Patient.rs").access_token();
    break_glass(&token, &case.patient, Some("curious")).assert_outcome(403);
    break_glass(server().token(), &case.patient, Some("a backend")).assert_outcome(403);
}

// --------------------------------------------------------------- $access

fn explain(token: &str, document: &str, actor: &str) -> (bool, String) {
    let resp = get(&format!(
        "DocumentReference/{document}/$access?actor={actor}"
    ))
    .bearer(token)
    .send();
    resp.assert_status(200);
    // Asking is itself in the trail: an operation on the document.
    let events = conformance::balp::recorded_events(&resp.required_header("x-request-id"));
    let asked = events
        .iter()
        .find(|e| e["subtype"].to_string().contains("$access"))
        .unwrap_or_else(|| resp.fail(&format!("no $access event in {events:#?}")));
    assert!(conformance::balp::entity_refs(asked, "4")
        .contains(&format!("DocumentReference/{document}")));
    let out = resp.resource("Parameters");
    let find = |name: &str| {
        out["parameter"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| resp.fail(&format!("no {name}")))
    };
    (
        find("allowed")["valueBoolean"]
            .as_bool()
            .unwrap_or_else(|| resp.fail("allowed")),
        find("reason")["valueString"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn access_explains_what_decided() {
    let w = world();
    let case = new_case();
    let permit = record(
        &case,
        json!({ "type": "permit", "actor": [actor(&format!("Organization/{}", w.org_b))] }),
    );
    let deny = record(
        &case,
        json!({ "type": "deny", "actor": [actor(&w.c.practitioner())],
                "code": [{ "coding": [{ "system": LOINC, "code": LAB }] }] }),
    );
    let system = server().token();
    assert_eq!(
        explain(system, &case.note, &w.c.practitioner()),
        (true, format!("Consent/{permit}"))
    );
    assert_eq!(
        explain(system, &case.lab, &w.c.practitioner()),
        (false, format!("Consent/{deny}"))
    );
    assert_eq!(
        explain(system, &case.note, &w.a.practitioner()),
        (false, "base policy".to_string())
    );
    // The patient asks about their own document; doctors may not ask.
    let patient = TestUser::create(
        server(),
        "patient",
        Some(&w.org_a),
        Some(&format!("Patient/{}", case.patient)),
    );
    let token = tokens_for(
        server(),
        &w.client,
        &patient,
        "openid fhirUser patient/*.rs",
    )
    .access_token();
    assert_eq!(
        explain(&token, &case.lab, &w.b.practitioner()),
        (true, format!("Consent/{permit}"))
    );
    get(&format!(
        "DocumentReference/{}/$access?actor={}",
        case.note,
        w.b.practitioner()
    ))
    .bearer(&w.b.token)
    .send()
    .assert_outcome(403);
    // Another patient's document reads as absent to the patient.
    let other = new_case();
    get(&format!(
        "DocumentReference/{}/$access?actor={}",
        other.note,
        w.b.practitioner()
    ))
    .bearer(&token)
    .send()
    .assert_outcome(404);
    // Authorship and emergency access are named.
    let mut mine = document_of(&case.patient, NOTE, "2024-10-01T00:00:00Z");
    mine["author"] = json!([{ "reference": w.a.practitioner() }]);
    let mine = id_of(&create(&mine));
    assert_eq!(
        explain(system, &mine, &w.a.practitioner()),
        (true, "author".to_string())
    );
    break_glass(&w.a.token, &case.patient, Some("emergency")).assert_status(200);
    assert_eq!(
        explain(system, &case.note, &w.a.practitioner()),
        (true, "emergency access".to_string())
    );
}

// ------------------------------------------------- the opt-out base policy

#[test]
fn under_the_opt_out_policy_the_own_hospital_reads_unless_denied() {
    static OPT_OUT: OnceLock<TestServer> = OnceLock::new();
    let s: &'static TestServer = OPT_OUT.get_or_init(|| {
        conformance::server::start_server_with(|_| {
            vec![(
                "FHIRLEDGER_CONSENT_DEFAULT".to_string(),
                "permit".to_string(),
            )]
        })
    });
    let w = world();
    let client = AppClient::register(s, "public", None);
    let token = |d: &Doctor| tokens_for(s, &client, &d.user, DOCTOR_SCOPES).access_token();
    let (a, b) = (token(&w.a), token(&w.b));
    let sees_on = |token: &str, case: &Case| -> BTreeSet<&'static str> {
        case.documents()
            .into_iter()
            .filter(|(_, id)| {
                status_of(
                    &Request::on(s, "GET", &format!("DocumentReference/{id}"))
                        .bearer(token)
                        .send(),
                )
            })
            .map(|(name, _)| name)
            .collect()
    };
    let total_on = |token: &str, case: &Case| {
        let resp = Request::on(
            s,
            "GET",
            &format!(
                "DocumentReference?patient=Patient/{}&_total=accurate",
                case.patient
            ),
        )
        .bearer(token)
        .send();
        resp.assert_status(200);
        resp.json()["total"].as_u64().unwrap_or(99)
    };
    // No Consent: the patient's own hospital reads, the other does not.
    let case = new_case();
    assert_eq!(sees_on(&a, &case), set(&ALL));
    assert_eq!(total_on(&a, &case), 3);
    assert_eq!(sees_on(&b, &case), set(&NONE));
    // A deny-all Consent closes it, on the next request.
    record(&case, json!({ "type": "deny" }));
    assert_eq!(sees_on(&a, &case), set(&NONE));
    assert_eq!(total_on(&a, &case), 0);
    // The same data on the opt-in server: nobody read it before either.
    assert_eq!(sees(&w.a.token, &new_case()), set(&NONE));
}

#[test]
fn the_capability_statement_lists_the_consent_operations() {
    let resp = get("metadata").no_auth().send();
    resp.assert_status(200);
    let statement = resp.json();
    let operations = |t: &str| -> Vec<String> {
        statement["rest"][0]["resource"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["type"] == t))
            .and_then(|r| r["operation"].as_array())
            .map(|ops| {
                ops.iter()
                    .filter_map(|o| o["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(operations("Patient"), ["emergency-access"]);
    assert_eq!(operations("DocumentReference"), ["access"]);
}
