//! Batch and transaction Bundles: `POST /fhir` (FHIR R4 http.html#transaction).

use std::collections::{HashMap, HashSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use base64::Engine;
use conformance::examples::load;
use conformance::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The test that counts DocumentReference history writes alone; every other
/// test that writes DocumentReferences holds this for reading.
static DOCUMENTS: RwLock<()> = RwLock::new(());

fn documents_shared() -> RwLockReadGuard<'static, ()> {
    DOCUMENTS.read().unwrap_or_else(|p| p.into_inner())
}

fn documents_exclusive() -> RwLockWriteGuard<'static, ()> {
    DOCUMENTS.write().unwrap_or_else(|p| p.into_inner())
}

/// A fresh `urn:uuid:` in the canonical 8-4-4-4-12 form.
fn urn() -> String {
    let h = uid();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn transaction(entries: Vec<Value>) -> Value {
    bundle("transaction", entries)
}

fn batch(entries: Vec<Value>) -> Value {
    bundle("batch", entries)
}

/// POSTs a Bundle (JSON) to the base.
fn submit(b: &Value) -> Response {
    post(&base()).json(b).send()
}

/// POSTs a Bundle, asserts 200 and a response Bundle of `kind`; returns its
/// entries.
#[track_caller]
fn submit_ok(b: &Value, kind: &str) -> (Response, Vec<Value>) {
    let resp = submit(b);
    resp.assert_status(200);
    let out = resp.resource("Bundle");
    if out["type"] != kind {
        resp.fail(&format!("expected a {kind} Bundle"));
    }
    let n = b["entry"].as_array().map_or(0, Vec::len);
    let got = entries(&out);
    if got.len() != n {
        resp.fail(&format!("expected {n} response entries, got {}", got.len()));
    }
    (resp, got)
}

fn entry(method: &str, url: &str, resource: Option<Value>, full_url: Option<&str>) -> Value {
    let mut e = json!({"request": {"method": method, "url": url}});
    if let Some(r) = resource {
        e["resource"] = r;
    }
    if let Some(f) = full_url {
        e["fullUrl"] = json!(f);
    }
    e
}

fn post_entry(full_url: &str, resource: Value) -> Value {
    let rt = resource["resourceType"].as_str().unwrap_or("").to_string();
    entry("POST", &rt, Some(resource), Some(full_url))
}

fn status_of(e: &Value) -> String {
    e["response"]["status"].as_str().unwrap_or("").to_string()
}

fn statuses(entries: &[Value]) -> Vec<String> {
    entries.iter().map(status_of).collect()
}

/// The status code of an entry response ("201 Created" → 201).
fn code_of(e: &Value) -> u16 {
    status_of(e)
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// (type, id, version) of an entry's `response.location`.
#[track_caller]
fn location(e: &Value) -> (String, String, u64) {
    let loc = e["response"]["location"]
        .as_str()
        .unwrap_or_else(|| panic!("the entry response has no location: {e}"));
    let parts: Vec<&str> = loc.split('/').collect();
    match parts.as_slice() {
        [t, id, "_history", v] => (
            t.to_string(),
            id.to_string(),
            v.parse().unwrap_or_else(|_| panic!("bad version in {loc}")),
        ),
        _ => panic!("location {loc:?} is not Type/id/_history/version"),
    }
}

#[track_caller]
fn assert_written(e: &Value, status: &str, rt: &str, version: u64) -> String {
    assert_eq!(status_of(e), status, "entry: {e}");
    let (t, id, v) = location(e);
    assert_eq!(t, rt, "entry: {e}");
    assert_eq!(v, version, "entry: {e}");
    assert_eq!(
        e["response"]["etag"],
        format!("W/\"{version}\""),
        "entry: {e}"
    );
    assert!(
        e["response"]["lastModified"].as_str().is_some(),
        "no lastModified: {e}"
    );
    id
}

#[track_caller]
fn assert_absent(path: &str) {
    let resp = get(path).send();
    if resp.status != 404 {
        resp.fail(&format!("{path} must not exist"));
    }
}

/// Asserts a failed transaction: the status, an OperationOutcome and an
/// issue located in `Bundle.entry[i]`.
#[track_caller]
fn assert_failed_at(resp: &Response, status: u16, i: usize) -> Value {
    let oo = resp.assert_outcome(status);
    assert_issue_at(resp, &oo, &format!("Bundle.entry[{i}]"));
    oo
}

/// The versions of `rt` written at or after `since` (a server instant).
fn history_since(rt: &str, since: &str) -> Vec<Value> {
    all_pages(&format!(
        "{rt}/_history?_count=1000&_since={}",
        url_encode(since)
    ))
}

/// Whether any version in `versions` carries identifier `value`.
fn carries_identifier(versions: &[Value], value: &str) -> bool {
    versions.iter().any(|e| {
        e["resource"]["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["value"] == value)
    })
}

/// A server timestamp to ask history from: the lastUpdated of a marker
/// resource created now.
fn server_now() -> String {
    let marker = create(&organization(&uid()));
    marker["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------
// The official example
// ---------------------------------------------------------------------------

/// `Bundle-bundle-transaction.json` as published, and its adaptation.
///
/// Its entry 7 posts a `Parameters` resource to `ValueSet/$lookup`: an
/// operation on a type this server does not host (it hosts
/// DocumentReference, Consent, Patient, Practitioner, PractitionerRole,
/// Organization, Binary, AuditEvent; every other entry is about Patient).
/// The original must be refused with a clear 4xx naming that entry, and
/// nothing written; the adapted copy leaves that one entry out and must run.
///
/// This test uses the example's fixed ids (Patient/123, 123a, 234, 12334)
/// and identifiers, so it expects the fresh database every test binary gets.
/// What each adapted entry does on that empty server:
///  0. POST Patient → 201, new id;
///  1. POST Patient ifNoneExist identifier=…|234234 → nothing matches → 201;
///  2. PUT Patient/123 → update as create → 201, version 1;
///  3. PUT Patient?identifier=…|456456 → nothing matches, no body id → 201, new id;
///  4. PUT Patient/123a ifMatch W/"2" → Patient/123a does not exist, so the
///     version cannot match: 412 and the whole transaction fails. The test
///     runs it there first, then creates Patient/123a at version 2 and runs
///     the transaction again, which then succeeds (200, version 3);
///  5. DELETE Patient/234 → nothing there → 204;
///  6. DELETE Patient?identifier=123456 → nothing matches → 204;
///  8. GET Patient?name=peter → a search: 200 with a searchset once search
///     exists (until then its entry reports the search's own error); a GET
///     never undoes the writes;
///  9. GET Patient/12334 (ifNoneMatch, ifModifiedSince) → 404 in its entry.
#[test]
fn official_transaction_example() {
    let original = load("Bundle-bundle-transaction.json");
    let orig_entries = entries(&original);
    assert_eq!(orig_entries.len(), 10);
    assert_eq!(orig_entries[7]["request"]["url"], "ValueSet/$lookup");

    // As published: refused, pointing at the unhosted entry; nothing written.
    let resp = submit(&original);
    assert!(
        (400..500).contains(&resp.status),
        "the original example must get a 4xx: {resp:?}"
    );
    let oo = assert_failed_at(&resp, 404, 7);
    assert!(
        oo.to_string().contains("ValueSet"),
        "the outcome names the unhosted type: {oo}"
    );
    assert_absent("Patient/123");

    let mut adapted = original.clone();
    adapted["entry"].as_array_mut().expect("entries").remove(7);

    // On the empty server the ifMatch of entry 4 cannot hold: nothing is written.
    let resp = submit(&adapted);
    assert_failed_at(&resp, 412, 4);
    assert_absent("Patient/123");
    assert_absent("Patient/123a");

    // Patient/123a at version 2, as the example expects.
    let mut p = patient(&uid());
    p["id"] = json!("123a");
    put("Patient/123a").json(&p).send().assert_status(201);
    put("Patient/123a").json(&p).send().assert_status(200);

    let (_, out) = submit_ok(&adapted, "transaction-response");
    let first = assert_written(&out[0], "201 Created", "Patient", 1);
    let second = assert_written(&out[1], "201 Created", "Patient", 1);
    assert_eq!(assert_written(&out[2], "201 Created", "Patient", 1), "123");
    let fourth = assert_written(&out[3], "201 Created", "Patient", 1);
    assert_eq!(assert_written(&out[4], "200 OK", "Patient", 3), "123a");
    assert_eq!(status_of(&out[5]), "204 No Content");
    assert_eq!(status_of(&out[6]), "204 No Content");
    match code_of(&out[7]) {
        200 => assert_eq!(out[7]["resource"]["type"], "searchset", "{}", out[7]),
        _ => assert_eq!(
            out[7]["response"]["outcome"]["resourceType"], "OperationOutcome",
            "a failed search says why: {}",
            out[7]
        ),
    }
    assert_eq!(status_of(&out[8]), "404 Not Found");
    assert_eq!(
        out[8]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    let ids: HashSet<&String> = [&first, &second, &fourth].into_iter().collect();
    assert_eq!(ids.len(), 3, "three distinct new patients");

    let p1 = read("Patient", &second);
    assert_eq!(p1["identifier"][0]["value"], "234234");
    assert_eq!(p1["name"][0]["family"], "Chalmers");
    let p3 = read("Patient", &fourth);
    assert_eq!(p3["identifier"][0]["value"], "456456");
    let p123 = read("Patient", "123");
    assert_eq!(p123["name"][0]["given"], json!(["Peter", "James"]));
    assert_eq!(read("Patient", "123a")["meta"]["versionId"], "3");

    // Again: the conditional entries now find what the first run made, and
    // the ifMatch (W/"2", now stale) fails the whole transaction again.
    let resp = submit(&adapted);
    assert_failed_at(&resp, 412, 4);
    assert_eq!(read("Patient", "123")["meta"]["versionId"], "1");
    assert_eq!(read("Patient", &fourth)["meta"]["versionId"], "1");
}

// ---------------------------------------------------------------------------
// IHE MHD Provide Document Bundle
// ---------------------------------------------------------------------------

#[test]
fn mhd_provide_document_bundle_round_trip() {
    let _docs = documents_shared();
    let patient_id = new_patient();
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let binary_url = urn();
    let doc_url = urn();
    let ident = uid();
    // The List (SubmissionSet) of MHD is not a hosted type, so it is left out.
    let doc = json!({
        "resourceType": "DocumentReference",
        "identifier": [{"system": ID_SYSTEM, "value": ident}],
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "date": "2024-05-01T10:00:00Z",
        "content": [{"attachment": {
            "contentType": "application/pdf",
            "url": binary_url,
            "size": bytes.len(),
            "title": "report.pdf"
        }}]
    });
    let binary = json!({
        "resourceType": "Binary",
        "contentType": "application/pdf",
        "data": b64(&bytes)
    });
    // The DocumentReference comes first and refers forward to the Binary.
    let b = transaction(vec![
        post_entry(&doc_url, doc),
        post_entry(&binary_url, binary),
    ]);
    let (_, out) = submit_ok(&b, "transaction-response");
    let doc_id = assert_written(&out[0], "201 Created", "DocumentReference", 1);
    let binary_id = assert_written(&out[1], "201 Created", "Binary", 1);

    let stored = read("DocumentReference", &doc_id);
    assert_eq!(
        stored["content"][0]["attachment"]["url"],
        format!("Binary/{binary_id}"),
        "the attachment URL names the stored Binary"
    );
    assert_eq!(
        stored["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    let url = stored["content"][0]["attachment"]["url"]
        .as_str()
        .expect("url");
    let raw = get(url).accept("application/pdf").send();
    raw.assert_status(200);
    assert_eq!(raw.media_type(), "application/pdf");
    assert!(raw.body == bytes, "the Binary's bytes equal the original");
    // And as a FHIR Binary resource.
    let res = get(url).accept(FHIR_JSON).send().resource("Binary");
    assert_eq!(res["data"], b64(&bytes));
}

// ---------------------------------------------------------------------------
// Size and atomicity
// ---------------------------------------------------------------------------

#[test]
fn a_thousand_document_references_commit_as_one() {
    let _docs = documents_exclusive();
    let patient_id = new_patient();
    let before = all_pages("DocumentReference/_history?_count=1000").len();
    let idents: Vec<String> = (0..1000).map(|_| uid()).collect();
    let b = transaction(
        idents
            .iter()
            .map(|i| post_entry(&urn(), document_reference(&patient_id, i)))
            .collect(),
    );
    let started = Instant::now();
    let (_, out) = submit_ok(&b, "transaction-response");
    eprintln!(
        "1,000-entry transaction: {:?} ({} bytes)",
        started.elapsed(),
        b.to_string().len()
    );
    let ids: Vec<String> = out
        .iter()
        .map(|e| assert_written(e, "201 Created", "DocumentReference", 1))
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);

    let history = all_pages("DocumentReference/_history?_count=1000");
    assert_eq!(history.len(), before + 1000, "type history grew by 1,000");
    let in_history: HashSet<String> = history
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    for (id, ident) in ids.iter().zip(&idents) {
        assert!(in_history.contains(id), "{id} is in the type history");
        let doc = read("DocumentReference", id);
        assert_eq!(doc["identifier"][0]["value"], ident.as_str());
    }
}

#[test]
fn a_transaction_whose_last_entry_is_invalid_leaves_nothing_behind() {
    let _docs = documents_shared();
    let since = server_now();
    let patient_ident = uid();
    let doc_ident = uid();
    let put_id = uid();
    let patient_url = urn();
    let mut bad = document_reference("x", &uid());
    bad["status"] = json!("not-a-status");
    let mut put_patient = patient(&uid());
    put_patient["id"] = json!(put_id);
    let mut doc = document_reference("x", &doc_ident);
    doc["subject"] = json!({"reference": patient_url});
    let b = transaction(vec![
        post_entry(&patient_url, patient(&patient_ident)),
        post_entry(&urn(), doc),
        entry("PUT", &format!("Patient/{put_id}"), Some(put_patient), None),
        post_entry(&urn(), bad),
    ]);
    let resp = submit(&b);
    let oo = assert_failed_at(&resp, 422, 3);
    assert_issue_at(&resp, &oo, "Bundle.entry[3].resource.status");

    assert_absent(&format!("Patient/{put_id}"));
    assert!(!carries_identifier(
        &history_since("Patient", &since),
        &patient_ident
    ));
    assert!(!carries_identifier(
        &history_since("DocumentReference", &since),
        &doc_ident
    ));
}

#[test]
fn a_write_failing_after_others_ran_rolls_them_back() {
    let since = server_now();
    let doomed = new_patient();
    let guarded_target = new_patient();
    let ident = uid();
    let mut stale = entry(
        "PUT",
        &format!("Patient/{guarded_target}"),
        Some(read("Patient", &guarded_target)),
        None,
    );
    stale["request"]["ifMatch"] = json!("W/\"5\"");
    // The DELETE runs first and the POST next; the stale PUT runs last and
    // fails, so both must be undone.
    let b = transaction(vec![
        stale,
        post_entry(&urn(), patient(&ident)),
        entry("DELETE", &format!("Patient/{doomed}"), None, None),
    ]);
    let resp = submit(&b);
    assert_failed_at(&resp, 412, 0);
    assert_eq!(read("Patient", &doomed)["meta"]["versionId"], "1");
    assert!(!carries_identifier(
        &history_since("Patient", &since),
        &ident
    ));
}

#[test]
fn if_match_conflict_in_an_entry_is_412_and_rolls_back() {
    let existing = new_patient();
    let new_id = uid();
    let mut fresh = patient(&uid());
    fresh["id"] = json!(new_id);
    let mut changed = read("Patient", &existing);
    changed["gender"] = json!("male");
    let mut guarded = entry(
        "PUT",
        &format!("Patient/{existing}"),
        Some(changed.clone()),
        None,
    );
    guarded["request"]["ifMatch"] = json!("W/\"2\"");
    let b = transaction(vec![
        entry("PUT", &format!("Patient/{new_id}"), Some(fresh), None),
        guarded,
    ]);
    let resp = submit(&b);
    let oo = assert_failed_at(&resp, 412, 1);
    assert!(oo["issue"][0]["code"].as_str().is_some());
    assert_absent(&format!("Patient/{new_id}"));
    let now = read("Patient", &existing);
    assert_eq!(now["meta"]["versionId"], "1");
    assert_eq!(now["gender"], "female");

    // With the right version the same transaction commits.
    let mut guarded = entry("PUT", &format!("Patient/{existing}"), Some(changed), None);
    guarded["request"]["ifMatch"] = json!("W/\"1\"");
    let (_, out) = submit_ok(&transaction(vec![guarded]), "transaction-response");
    assert_written(&out[0], "200 OK", "Patient", 2);
    assert_eq!(read("Patient", &existing)["gender"], "male");
}

// ---------------------------------------------------------------------------
// Processing rules
// ---------------------------------------------------------------------------

#[test]
fn deletes_run_before_posts() {
    let ident = uid();
    let old = id_of(&create(&patient(&ident)));
    let mut conditional = post_entry(&urn(), patient(&ident));
    conditional["request"]["ifNoneExist"] = json!(format!("identifier={}", token(&ident)));
    // The POST is listed first, but the DELETE runs first: the conditional
    // create no longer finds the old patient and creates a new one.
    let b = transaction(vec![
        conditional,
        entry(
            "DELETE",
            &format!("Patient?identifier={}", token(&ident)),
            None,
            None,
        ),
    ]);
    let (_, out) = submit_ok(&b, "transaction-response");
    let new = assert_written(&out[0], "201 Created", "Patient", 1);
    assert_ne!(new, old);
    assert_eq!(status_of(&out[1]), "204 No Content");
    assert_eq!(out[1]["response"]["etag"], "W/\"2\"");
    get(&format!("Patient/{old}")).send().assert_status(410);
    read("Patient", &new);
}

#[test]
fn urn_uuid_references_are_rewritten_between_entries_in_both_directions() {
    let _docs = documents_shared();
    let (p, org, org2, role, prac, doc) = (urn(), urn(), urn(), urn(), urn(), urn());
    let prac_id = uid();
    let mut patient_r = patient(&uid());
    patient_r["managingOrganization"] = json!({"reference": org});
    patient_r["generalPractitioner"] = json!([{"reference": role}]);
    let mut org_r = organization(&uid());
    org_r["partOf"] = json!({"reference": org2});
    let mut org2_r = organization(&uid());
    org2_r["partOf"] = json!({"reference": org}); // a cycle
    let role_r = json!({
        "resourceType": "PractitionerRole",
        "active": true,
        "practitioner": {"reference": prac},
        "organization": {"reference": org}
    });
    let mut prac_r = practitioner(&uid());
    prac_r["id"] = json!(prac_id);
    let mut doc_r = document_reference("x", &uid());
    doc_r["subject"] = json!({"reference": p});
    doc_r["author"] = json!([{"reference": prac}, {"reference": role}]);
    let b = transaction(vec![
        post_entry(&doc, doc_r), // refers forward only
        post_entry(&p, patient_r),
        post_entry(&org, org_r),
        post_entry(&role, role_r),
        post_entry(&org2, org2_r), // refers backward
        // A PUT keeps the id of its URL; references to its fullUrl use it.
        entry(
            "PUT",
            &format!("Practitioner/{prac_id}"),
            Some(prac_r),
            Some(&prac),
        ),
    ]);
    let (_, out) = submit_ok(&b, "transaction-response");
    let doc_id = assert_written(&out[0], "201 Created", "DocumentReference", 1);
    let p_id = assert_written(&out[1], "201 Created", "Patient", 1);
    let org_id = assert_written(&out[2], "201 Created", "Organization", 1);
    let role_id = assert_written(&out[3], "201 Created", "PractitionerRole", 1);
    let org2_id = assert_written(&out[4], "201 Created", "Organization", 1);
    assert_eq!(
        assert_written(&out[5], "201 Created", "Practitioner", 1),
        prac_id
    );

    let d = read("DocumentReference", &doc_id);
    assert_eq!(d["subject"]["reference"], format!("Patient/{p_id}"));
    assert_eq!(
        d["author"][0]["reference"],
        format!("Practitioner/{prac_id}")
    );
    assert_eq!(
        d["author"][1]["reference"],
        format!("PractitionerRole/{role_id}")
    );
    let pt = read("Patient", &p_id);
    assert_eq!(
        pt["managingOrganization"]["reference"],
        format!("Organization/{org_id}")
    );
    assert_eq!(
        pt["generalPractitioner"][0]["reference"],
        format!("PractitionerRole/{role_id}")
    );
    let o = read("Organization", &org_id);
    assert_eq!(o["partOf"]["reference"], format!("Organization/{org2_id}"));
    let o2 = read("Organization", &org2_id);
    assert_eq!(o2["partOf"]["reference"], format!("Organization/{org_id}"));
    let r = read("PractitionerRole", &role_id);
    assert_eq!(
        r["practitioner"]["reference"],
        format!("Practitioner/{prac_id}")
    );
    assert_eq!(
        r["organization"]["reference"],
        format!("Organization/{org_id}")
    );
}

#[test]
fn an_unresolvable_urn_reference_is_400() {
    let mut p = patient(&uid());
    p["managingOrganization"] = json!({"reference": urn()});
    let resp = submit(&transaction(vec![post_entry(&urn(), p)]));
    assert_failed_at(&resp, 400, 0);
}

#[test]
fn a_reference_to_an_entry_of_the_wrong_type_is_422() {
    let _docs = documents_shared();
    let org = urn();
    let mut doc = document_reference("x", &uid());
    doc["subject"] = json!({"reference": org});
    let resp = submit(&transaction(vec![
        post_entry(&urn(), doc),
        post_entry(&org, organization(&uid())),
    ]));
    let oo = assert_failed_at(&resp, 422, 0);
    assert_issue_at(&resp, &oo, "Bundle.entry[0].resource.subject");
}

#[test]
fn conditional_create_in_a_transaction_finds_the_existing_resource() {
    let _docs = documents_shared();
    let ident = uid();
    let existing = id_of(&create(&patient(&ident)));
    let p = urn();
    let mut conditional = post_entry(&p, patient(&ident));
    conditional["request"]["ifNoneExist"] = json!(format!("identifier={}", token(&ident)));
    let mut doc = document_reference("x", &uid());
    doc["subject"] = json!({"reference": p});
    let b = transaction(vec![post_entry(&urn(), doc), conditional]);
    let (_, out) = submit_ok(&b, "transaction-response");
    let doc_id = assert_written(&out[0], "201 Created", "DocumentReference", 1);
    assert_eq!(assert_written(&out[1], "200 OK", "Patient", 1), existing);
    // The reference to the conditional entry names the resource it found.
    assert_eq!(
        read("DocumentReference", &doc_id)["subject"]["reference"],
        format!("Patient/{existing}")
    );
    assert_eq!(read("Patient", &existing)["meta"]["versionId"], "1");
}

#[test]
fn conditional_update_and_delete_in_a_transaction() {
    let (a, b_ident, c) = (uid(), uid(), uid());
    let a_id = id_of(&create(&patient(&a)));
    let c_id = id_of(&create(&patient(&c)));
    let mut changed = patient(&a);
    changed["gender"] = json!("other");
    let b = transaction(vec![
        entry(
            "PUT",
            &format!("Patient?identifier={}", token(&a)),
            Some(changed),
            None,
        ),
        entry(
            "PUT",
            &format!("Patient?identifier={}", token(&b_ident)),
            Some(patient(&b_ident)),
            None,
        ),
        entry(
            "DELETE",
            &format!("Patient?identifier={}", token(&c)),
            None,
            None,
        ),
    ]);
    let (_, out) = submit_ok(&b, "transaction-response");
    assert_eq!(assert_written(&out[0], "200 OK", "Patient", 2), a_id);
    let b_id = assert_written(&out[1], "201 Created", "Patient", 1);
    assert_eq!(status_of(&out[2]), "204 No Content");
    assert_eq!(read("Patient", &a_id)["gender"], "other");
    read("Patient", &b_id);
    get(&format!("Patient/{c_id}")).send().assert_status(410);
}

#[test]
fn conditional_references_resolve_to_the_single_match() {
    let _docs = documents_shared();
    let ident = uid();
    let existing = id_of(&create(&patient(&ident)));
    let mut doc = document_reference("x", &uid());
    doc["subject"] = json!({"reference": format!("Patient?identifier={}", token(&ident))});
    let (_, out) = submit_ok(
        &transaction(vec![post_entry(&urn(), doc.clone())]),
        "transaction-response",
    );
    let id = assert_written(&out[0], "201 Created", "DocumentReference", 1);
    assert_eq!(
        read("DocumentReference", &id)["subject"]["reference"],
        format!("Patient/{existing}")
    );

    // A patient created by the same transaction is found too.
    let new_ident = uid();
    let mut doc2 = document_reference("x", &uid());
    doc2["subject"] = json!({"reference": format!("Patient?identifier={}", token(&new_ident))});
    let (_, out) = submit_ok(
        &transaction(vec![
            post_entry(&urn(), doc2),
            post_entry(&urn(), patient(&new_ident)),
        ]),
        "transaction-response",
    );
    let doc2_id = assert_written(&out[0], "201 Created", "DocumentReference", 1);
    let p_id = assert_written(&out[1], "201 Created", "Patient", 1);
    assert_eq!(
        read("DocumentReference", &doc2_id)["subject"]["reference"],
        format!("Patient/{p_id}")
    );

    // Several matches: 412, nothing written.
    create(&patient(&ident));
    let resp = submit(&transaction(vec![post_entry(&urn(), doc)]));
    let oo = assert_failed_at(&resp, 412, 0);
    assert!(oo.to_string().contains("matches 2"), "{oo}");

    // No match: 412 too.
    let mut doc3 = document_reference("x", &uid());
    doc3["subject"] = json!({"reference": format!("Patient?identifier={}", token(&uid()))});
    let resp = submit(&transaction(vec![post_entry(&urn(), doc3)]));
    let oo = assert_failed_at(&resp, 412, 0);
    assert!(oo.to_string().contains("matches no Patient"), "{oo}");
    // A parameter conditional references do not support: 400.
    let mut doc4 = document_reference("x", &uid());
    doc4["subject"] = json!({"reference": "Patient?name=x"});
    let resp = submit(&transaction(vec![post_entry(&urn(), doc4)]));
    assert_failed_at(&resp, 400, 0);
}

#[test]
fn two_entries_writing_one_resource_is_400() {
    let id = uid();
    let mut p = patient(&uid());
    p["id"] = json!(id);
    let resp = submit(&transaction(vec![
        entry("PUT", &format!("Patient/{id}"), Some(p.clone()), None),
        entry("PUT", &format!("Patient/{id}"), Some(p.clone()), None),
    ]));
    assert_failed_at(&resp, 400, 1);
    assert_absent(&format!("Patient/{id}"));

    let resp = submit(&transaction(vec![
        entry("PUT", &format!("Patient/{id}"), Some(p.clone()), None),
        entry("DELETE", &format!("Patient/{id}"), None, None),
    ]));
    resp.assert_outcome(400);
    assert_absent(&format!("Patient/{id}"));

    // A conditional create and a conditional update of the same patient.
    let ident = uid();
    let mut create_entry = post_entry(&urn(), patient(&ident));
    create_entry["request"]["ifNoneExist"] = json!(format!("identifier={}", token(&ident)));
    let resp = submit(&transaction(vec![
        create_entry,
        entry(
            "PUT",
            &format!("Patient?identifier={}", token(&ident)),
            Some(patient(&ident)),
            None,
        ),
    ]));
    resp.assert_outcome(400);

    // Two conditional deletes that find the same patient.
    let ident = uid();
    let target = id_of(&create(&patient(&ident)));
    let resp = submit(&transaction(vec![
        entry(
            "DELETE",
            &format!("Patient?identifier={}", token(&ident)),
            None,
            None,
        ),
        entry("DELETE", &format!("Patient?_id={target}"), None, None),
    ]));
    resp.assert_outcome(400);
    read("Patient", &target);
}

// ---------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------

#[test]
fn batch_entries_succeed_or_fail_independently() {
    let _docs = documents_shared();
    let existing = new_patient();
    let doomed = new_patient();
    let put_id = uid();
    let mut put_patient = patient(&uid());
    put_patient["id"] = json!(put_id);
    let mut bad_doc = document_reference(&existing, &uid());
    bad_doc["status"] = json!("nope");
    let mut stale = entry(
        "PUT",
        &format!("Patient/{existing}"),
        Some(read("Patient", &existing)),
        None,
    );
    stale["request"]["ifMatch"] = json!("W/\"7\"");
    let created_ident = uid();
    let b = batch(vec![
        post_entry(&urn(), patient(&created_ident)), // 0: 201
        post_entry(&urn(), bad_doc),                 // 1: 422
        entry("PUT", &format!("Patient/{put_id}"), Some(put_patient), None), // 2: 201
        entry("DELETE", &format!("Patient/{doomed}"), None, None), // 3: 204
        stale,                                       // 4: 412
        entry("PATCH", &format!("Patient/{existing}"), None, None), // 5: 400
        post_entry(
            &urn(),
            json!({"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}),
        ), // 6: 404
        entry("DELETE", "AuditEvent/example", None, None), // 7: 405
        entry("GET", &format!("Patient/{existing}"), None, None), // 8: 200
        entry("POST", "Patient", None, None),        // 9: 400 (no resource)
    ]);
    let (resp, out) = submit_ok(&b, "batch-response");
    let codes: Vec<u16> = out.iter().map(code_of).collect();
    assert_eq!(
        codes,
        vec![201, 422, 201, 204, 412, 400, 404, 405, 200, 400],
        "{resp:?}"
    );
    for (i, e) in out.iter().enumerate() {
        let failed = code_of(e) >= 400;
        assert_eq!(
            e["response"]["outcome"]["resourceType"] == "OperationOutcome",
            failed,
            "entry {i}: {e}"
        );
        if failed {
            let paths = issue_paths(&e["response"]["outcome"]);
            assert!(
                paths
                    .iter()
                    .any(|p| p.starts_with(&format!("Bundle.entry[{i}]"))),
                "entry {i} outcome is located at its entry: {paths:?}"
            );
        }
    }
    let created = assert_written(&out[0], "201 Created", "Patient", 1);
    assert_eq!(
        read("Patient", &created)["identifier"][0]["value"],
        created_ident.as_str()
    );
    read("Patient", &put_id);
    get(&format!("Patient/{doomed}")).send().assert_status(410);
    assert_eq!(read("Patient", &existing)["meta"]["versionId"], "1");
    assert_eq!(out[8]["resource"]["id"], existing.as_str());
}

#[test]
fn a_batch_entry_with_a_structurally_bad_resource_fails_alone() {
    let mut bad = patient(&uid());
    bad["unknownElement"] = json!(true);
    let ident = uid();
    let b = batch(vec![
        post_entry(&urn(), patient(&ident)),
        post_entry(&urn(), bad),
    ]);
    let (_, out) = submit_ok(&b, "batch-response");
    let id = assert_written(&out[0], "201 Created", "Patient", 1);
    assert_eq!(code_of(&out[1]), 400, "{}", out[1]);
    let paths = issue_paths(&out[1]["response"]["outcome"]);
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("Bundle.entry[1].resource.unknownElement")),
        "{paths:?}"
    );
    read("Patient", &id);

    // In a transaction the same entry fails the whole Bundle.
    let mut bad = patient(&uid());
    bad["unknownElement"] = json!(true);
    let resp = submit(&transaction(vec![
        post_entry(&urn(), patient(&uid())),
        post_entry(&urn(), bad),
    ]));
    let oo = resp.assert_outcome(400);
    assert_issue_at(&resp, &oo, "Bundle.entry[1].resource.unknownElement");
}

#[test]
fn batch_get_entries_read_vread_and_report_missing() {
    let id = new_patient();
    let mut p = read("Patient", &id);
    p["gender"] = json!("male");
    put(&format!("Patient/{id}"))
        .json(&p)
        .send()
        .assert_status(200);
    let gone = new_patient();
    delete(&format!("Patient/{gone}")).send().assert_status(204);
    let mut not_modified = entry("GET", &format!("Patient/{id}"), None, None);
    not_modified["request"]["ifNoneMatch"] = json!("W/\"2\"");
    let b = batch(vec![
        entry("GET", &format!("Patient/{id}"), None, None),
        entry(
            "GET",
            &format!("{}/Patient/{id}/_history/1", base()),
            None,
            None,
        ),
        entry("GET", &format!("Patient/{}", uid()), None, None),
        entry("GET", &format!("Patient/{gone}"), None, None),
        entry("GET", &format!("Patient/{id}/_history/9"), None, None),
        not_modified,
        entry("GET", "Encounter/1", None, None),
        entry("HEAD", &format!("Patient/{id}"), None, None),
    ]);
    let (_, out) = submit_ok(&b, "batch-response");
    assert_eq!(
        statuses(&out),
        vec![
            "200 OK",
            "200 OK",
            "404 Not Found",
            "410 Gone",
            "404 Not Found",
            "304 Not Modified",
            "404 Not Found",
            "200 OK"
        ]
    );
    assert_eq!(out[0]["resource"]["id"], id.as_str());
    assert_eq!(out[0]["resource"]["gender"], "male");
    assert_eq!(out[0]["response"]["etag"], "W/\"2\"");
    assert_eq!(out[0]["fullUrl"], format!("{}/Patient/{id}", base()));
    assert_eq!(out[1]["resource"]["gender"], "female");
    assert_eq!(out[1]["resource"]["meta"]["versionId"], "1");
    for i in [2, 3, 4, 6] {
        assert_eq!(
            out[i]["response"]["outcome"]["resourceType"], "OperationOutcome",
            "{}",
            out[i]
        );
    }
    assert!(out[5].get("resource").is_none());
    assert!(out[7].get("resource").is_none());
}

// ---------------------------------------------------------------------------
// Formats, preferences, errors
// ---------------------------------------------------------------------------

#[test]
fn xml_bundle_in_and_out() {
    let ident = uid();
    let prac_id = uid();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="urn:uuid:5f3a1c2e-8b4d-4e6f-9a0b-1c2d3e4f5a6b"/>
    <resource>
      <Patient>
        <identifier>
          <system value="{ID_SYSTEM}"/>
          <value value="{ident}"/>
        </identifier>
        <active value="true"/>
        <generalPractitioner>
          <reference value="Practitioner/{prac_id}"/>
        </generalPractitioner>
      </Patient>
    </resource>
    <request>
      <method value="POST"/>
      <url value="Patient"/>
    </request>
  </entry>
  <entry>
    <resource>
      <Practitioner>
        <id value="{prac_id}"/>
        <name>
          <family value="Xml"/>
        </name>
      </Practitioner>
    </resource>
    <request>
      <method value="PUT"/>
      <url value="Practitioner/{prac_id}"/>
    </request>
  </entry>
</Bundle>"#
    );
    let resp = post(&base()).xml(xml).accept(FHIR_XML).send();
    resp.assert_status(200);
    assert_eq!(resp.media_type(), FHIR_XML);
    let text = resp.text();
    assert!(
        text.contains("<Bundle xmlns=\"http://hl7.org/fhir\">"),
        "{text}"
    );
    assert!(
        text.contains("<type value=\"transaction-response\"/>"),
        "{text}"
    );
    assert_eq!(
        text.matches("<status value=\"201 Created\"/>").count(),
        2,
        "{text}"
    );
    let loc = text
        .split("<location value=\"Patient/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| resp.fail("no Patient location"))
        .to_string();
    let p = read("Patient", &loc);
    assert_eq!(p["identifier"][0]["value"], ident.as_str());
    assert_eq!(read("Practitioner", &prac_id)["name"][0]["family"], "Xml");

    // A JSON Bundle answered in XML, and an XML failure as an XML outcome.
    let (_, _) = submit_ok(
        &batch(vec![entry("GET", &format!("Patient/{loc}"), None, None)]),
        "batch-response",
    );
    let resp = post(&base())
        .json(&transaction(vec![entry("PATCH", "Patient/x", None, None)]))
        .accept(FHIR_XML)
        .send();
    resp.assert_status(400);
    assert_eq!(resp.media_type(), FHIR_XML);
    assert!(resp.text().contains("OperationOutcome"));
}

#[test]
fn prefer_return_representation_and_operation_outcome() {
    let ident = uid();
    let resp = post(&base())
        .prefer("return=representation")
        .json(&transaction(vec![post_entry(&urn(), patient(&ident))]))
        .send();
    resp.assert_status(200);
    let out = entries(&resp.resource("Bundle"));
    assert_eq!(out[0]["resource"]["identifier"][0]["value"], ident.as_str());
    assert_eq!(out[0]["resource"]["meta"]["versionId"], "1");

    let resp = post(&base())
        .prefer("return=OperationOutcome")
        .json(&batch(vec![post_entry(&urn(), patient(&uid()))]))
        .send();
    resp.assert_status(200);
    let out = entries(&resp.resource("Bundle"));
    assert_eq!(
        out[0]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert!(out[0].get("resource").is_none());

    // By default, entries carry no resource.
    let (_, out) = submit_ok(
        &transaction(vec![post_entry(&urn(), patient(&uid()))]),
        "transaction-response",
    );
    assert!(out[0].get("resource").is_none());
}

#[test]
fn empty_bundles_answer_empty_responses() {
    let (resp, _) = submit_ok(
        &json!({"resourceType": "Bundle", "type": "transaction"}),
        "transaction-response",
    );
    assert!(resp.resource("Bundle").get("entry").is_none());
    submit_ok(
        &json!({"resourceType": "Bundle", "type": "batch"}),
        "batch-response",
    );
}

#[test]
fn malformed_bundles_are_refused_without_5xx() {
    let bad_bodies: Vec<(Vec<u8>, u16)> = vec![
        (b"{not json".to_vec(), 400),
        (b"[]".to_vec(), 400),
        (patient(&uid()).to_string().into_bytes(), 400),
        (
            json!({"resourceType": "Bundle", "type": "collection"})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "searchset"})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle"}).to_string().into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": patient(&uid())}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "GET"}}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", "url": "http://elsewhere.example/fhir/Patient"}, "resource": patient(&uid())}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": organization(&uid())}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "PUT", "url": "Patient"}, "resource": patient(&uid())}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "PUT", "url": "Patient?name=x"}, "resource": patient(&uid())}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": patient(&uid())}], "bogus": 1})
                .to_string()
                .into_bytes(),
            400,
        ),
        (b"\xff\xfe".to_vec(), 400),
    ];
    for (body, status) in bad_bodies {
        let resp = post(&base()).content_type(FHIR_JSON).bytes(body).send();
        resp.assert_outcome(status);
    }
    let resp = post(&base())
        .xml("<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"transaction\"/><entry>")
        .accept(FHIR_JSON)
        .send();
    resp.assert_outcome(400);
    let resp = post(&base()).bytes(b"{}".to_vec()).send();
    resp.assert_outcome(415);
    // An empty array is not FHIR JSON (leave `entry` out instead).
    post(&base())
        .json(&transaction(vec![]))
        .send()
        .assert_outcome(400);
    // Accept without a FHIR type: JSON.
    let resp = post(&base())
        .json(&json!({"resourceType": "Bundle", "type": "batch"}))
        .header("Accept", "text/html")
        .send();
    resp.assert_status(200);
    resp.resource("Bundle");
}

#[test]
fn a_bundle_over_the_body_limit_is_413() {
    let small = small_limit_server();
    let filler = "x".repeat(SMALL_BODY_LIMIT as usize);
    let mut p = patient(&uid());
    p["name"][0]["text"] = json!(filler);
    let b = transaction(vec![post_entry(&urn(), p)]);
    let resp = Request::on(small, "POST", &small.fhir_base).json(&b).send();
    resp.assert_outcome(413);
}

#[test]
fn metadata_declares_transaction_and_batch() {
    let cs = get("metadata").send().resource("CapabilityStatement");
    let codes: Vec<&str> = cs["rest"][0]["interaction"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["code"].as_str())
        .collect();
    assert!(codes.contains(&"transaction"), "{codes:?}");
    assert!(codes.contains(&"batch"), "{codes:?}");
}

/// Many transactions at once each commit whole (no deadlock, no mixing).
#[test]
fn concurrent_transactions_commit_independently() {
    let _docs = documents_shared();
    let patient_id = new_patient();
    let shared_ident = uid();
    let results: Vec<Vec<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let patient_id = patient_id.clone();
                let shared_ident = shared_ident.clone();
                s.spawn(move || {
                    let p = urn();
                    let mut conditional = post_entry(&p, patient(&shared_ident));
                    conditional["request"]["ifNoneExist"] =
                        json!(format!("identifier={}", token(&shared_ident)));
                    let mut entries = vec![conditional];
                    for _ in 0..20 {
                        let mut d = document_reference(&patient_id, &uid());
                        d["author"] = json!([{"reference": p}]);
                        entries.push(post_entry(&urn(), d));
                    }
                    submit_ok(&transaction(entries), "transaction-response").1
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    // The conditional create made exactly one patient, and every document
    // of every transaction refers to it.
    let mut patients: HashMap<String, usize> = HashMap::new();
    for out in &results {
        let (_, id, _) = location(&out[0]);
        *patients.entry(id).or_default() += 1;
    }
    assert_eq!(patients.len(), 1, "{patients:?}");
    let the_patient = patients.keys().next().cloned().unwrap_or_default();
    for out in &results {
        let (_, doc, _) = location(&out[1]);
        assert_eq!(
            read("DocumentReference", &doc)["author"][0]["reference"],
            format!("Patient/{the_patient}")
        );
    }
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

/// A valid Bundle exercising most features, for mutation.
fn rich_bundle(kind: &str) -> Value {
    let (p, b) = (urn(), urn());
    let mut doc = document_reference("x", &uid());
    doc["subject"] = json!({"reference": p});
    doc["content"][0]["attachment"] = json!({"contentType": "text/plain", "url": b});
    let mut conditional = post_entry(&p, patient(&uid()));
    conditional["request"]["ifNoneExist"] = json!(format!("identifier={}", token(&uid())));
    let id = uid();
    let mut put_patient = patient(&uid());
    put_patient["id"] = json!(id);
    let mut guarded = entry("PUT", &format!("Patient/{id}"), Some(put_patient), None);
    guarded["request"]["ifMatch"] = json!("W/\"1\"");
    bundle(
        kind,
        vec![
            post_entry(&urn(), doc),
            conditional,
            post_entry(
                &b,
                json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="}),
            ),
            guarded,
            entry(
                "DELETE",
                &format!("Patient?identifier={}", token(&uid())),
                None,
                None,
            ),
            entry("GET", &format!("Patient/{}", uid()), None, None),
            entry("GET", "Patient?name=x", None, None),
        ],
    )
}

/// Mutated Bundles (values swapped for odd ones, bytes flipped) get 4xx or
/// 200, never a 5xx, and the server keeps running.
#[test]
fn mutated_bundles_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let _docs = documents_shared();
    let seed: u64 = rand::thread_rng().gen();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let odd = [
        json!(null),
        json!({}),
        json!([]),
        json!(-1),
        json!("\u{0}"),
        json!("urn:uuid:00000000-0000-0000-0000-000000000000"),
        json!("Patient?identifier=a|b"),
        json!("Patient?_id="),
        json!("W/\"x\""),
        json!("PATCH"),
        json!("HEAD"),
        json!("DELETE"),
        json!("Patient/../metadata"),
        json!("$everything"),
        json!("Binary"),
        json!("http://elsewhere/fhir/Patient/1"),
        json!({"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"}),
        json!({"resourceType": "Bundle", "type": "transaction"}),
        json!("x".repeat(300)),
    ];
    let mut bad: Vec<String> = Vec::new();
    for round in 0..300 {
        let mut b = rich_bundle(if round % 2 == 0 {
            "transaction"
        } else {
            "batch"
        });
        for _ in 0..rng.gen_range(1..4) {
            let r = odd[rng.gen_range(0..odd.len())].clone();
            replace_somewhere(&mut rng, &mut b, r, 0.3);
        }
        let mut body = b.to_string().into_bytes();
        if rng.gen_ratio(1, 6) && !body.is_empty() {
            let i = rng.gen_range(0..body.len());
            body[i] = rng.gen();
        }
        let resp = post(&base())
            .content_type(FHIR_JSON)
            .bytes(body.clone())
            .send();
        if resp.status >= 500 {
            bad.push(format!(
                "{} for {}\n=> {}",
                resp.status,
                String::from_utf8_lossy(&body),
                resp.text()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "seed {seed:#x}: {} bad answers, e.g.\n{}",
        bad.len(),
        bad.first().cloned().unwrap_or_default()
    );
    assert!(server().is_running());
}
