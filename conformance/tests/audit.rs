//! Reads are audited before their responses leave: every read, vread,
//! search and history over HTTP leaves AuditEvents in the trail by the time
//! the client has the answer, tied to it by `X-Request-Id`, one per patient
//! whose data it returned, each valid R4 and following the BALP profile it
//! claims.

use conformance::balp::{entity_refs, recorded_events, recorded_query};
use conformance::*;
use serde_json::Value;

/// The events of request `id`, oldest first, each checked against the R4
/// schema and the BALP profile it claims.
fn events_of(request_id: &str) -> Vec<Value> {
    recorded_events(request_id)
}

#[test]
fn a_read_is_in_the_trail_when_its_answer_arrives() {
    let patient = new_patient();
    let document = id_of(&create(&document_reference(&patient, &uid())));
    let request_id = format!("test-{}", uid());
    let resp = get(&format!("DocumentReference/{document}"))
        .header("X-Request-Id", &request_id)
        .send();
    resp.assert_status(200);
    assert_eq!(
        resp.header("x-request-id").as_deref(),
        Some(request_id.as_str())
    );
    let events = events_of(&request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(
        event["meta"]["profile"][0],
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    );
    assert_eq!(event["subtype"][0]["code"], "read");
    assert_eq!(event["action"], "R");
    assert_eq!(event["outcome"], "0");
    assert_eq!(entity_refs(event, "1"), [format!("Patient/{patient}")]);
    assert_eq!(
        entity_refs(event, "4"),
        [format!("DocumentReference/{document}/_history/1")]
    );
    // A backend client's token: the client is the requestor, from loopback.
    let client = event["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["who"]["identifier"]["value"].is_string() && a["network"]["type"] == "2")
        .expect("the client agent");
    assert_eq!(client["requestor"], true);
    assert_eq!(client["network"]["address"], "127.0.0.1");
    // Never content.
    assert!(!event.to_string().contains("attachment"), "{event:#}");
}

#[test]
fn a_request_without_an_id_gets_one() {
    let patient = new_patient();
    let resp = get(&format!("Patient/{patient}")).send();
    resp.assert_status(200);
    let request_id = resp.required_header("x-request-id");
    let events = events_of(&request_id);
    assert_eq!(events.len(), 1);
    assert_eq!(entity_refs(&events[0], "1"), [format!("Patient/{patient}")]);
    // A malformed id is replaced, not echoed.
    let resp = get(&format!("Patient/{patient}"))
        .header("X-Request-Id", "not an id; with spaces")
        .send();
    assert_ne!(
        resp.required_header("x-request-id"),
        "not an id; with spaces"
    );
}

/// Each event's patients and resources (entities of roles 1 and 4), sorted.
fn patients_and_resources(events: &[Value]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut seen: Vec<(Vec<String>, Vec<String>)> = events
        .iter()
        .map(|e| (entity_refs(e, "1"), entity_refs(e, "4")))
        .collect();
    seen.sort();
    seen
}

#[test]
fn a_search_over_two_patients_leaves_one_event_for_each() {
    let (a, b) = (new_patient(), new_patient());
    let doc_a = id_of(&create(&document_reference(&a, &uid())));
    let doc_b = id_of(&create(&document_reference(&b, &uid())));
    let request_id = format!("test-{}", uid());
    get(&format!("DocumentReference?_id={doc_a},{doc_b}"))
        .header("X-Request-Id", &request_id)
        .send()
        .assert_status(200);
    let events = events_of(&request_id);
    assert_eq!(events.len(), 2, "{events:#?}");
    let mut expected = vec![
        (
            vec![format!("Patient/{a}")],
            vec![format!("DocumentReference/{doc_a}/_history/1")],
        ),
        (
            vec![format!("Patient/{b}")],
            vec![format!("DocumentReference/{doc_b}/_history/1")],
        ),
    ];
    expected.sort();
    assert_eq!(patients_and_resources(&events), expected);
    for event in &events {
        assert_eq!(
            event["meta"]["profile"][0],
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery"
        );
        assert_eq!(event["subtype"][0]["code"], "search-type");
        let raw = recorded_query(event).expect("the query entity");
        assert!(raw.starts_with("GET /fhir/DocumentReference?_id="), "{raw}");
    }
}

#[test]
fn what_a_search_includes_from_the_directory_is_in_its_patients_event() {
    let (a, b) = (new_patient(), new_patient());
    let author = id_of(&create(&practitioner(&uid())));
    let authored = |patient: &str| {
        let mut document = document_reference(patient, &uid());
        document["author"] = serde_json::json!([{ "reference": format!("Practitioner/{author}") }]);
        id_of(&create(&document))
    };
    let (doc_a, doc_b) = (authored(&a), authored(&b));
    let search = |ids: &str| {
        let request_id = format!("test-{}", uid());
        get(&format!(
            "DocumentReference?_id={ids}&_include=DocumentReference:author"
        ))
        .header("X-Request-Id", &request_id)
        .send()
        .assert_status(200);
        events_of(&request_id)
    };
    // One patient: one access, one entry in their log, naming the author too.
    let events = search(&doc_a);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(entity_refs(&events[0], "1"), [format!("Patient/{a}")]);
    assert_eq!(
        entity_refs(&events[0], "4"),
        [
            format!("DocumentReference/{doc_a}/_history/1"),
            format!("Practitioner/{author}/_history/1")
        ]
    );
    // Two patients: each event holds only its patient's data, and the
    // directory has one of its own.
    let events = search(&format!("{doc_a},{doc_b}"));
    assert_eq!(events.len(), 3, "{events:#?}");
    let mut expected = vec![
        (vec![], vec![format!("Practitioner/{author}/_history/1")]),
        (
            vec![format!("Patient/{a}")],
            vec![format!("DocumentReference/{doc_a}/_history/1")],
        ),
        (
            vec![format!("Patient/{b}")],
            vec![format!("DocumentReference/{doc_b}/_history/1")],
        ),
    ];
    expected.sort();
    assert_eq!(patients_and_resources(&events), expected);
}

#[test]
fn history_and_vread_are_audited_too() {
    let patient = new_patient();
    for (path, subtype) in [
        (format!("Patient/{patient}/_history/1"), "vread"),
        (format!("Patient/{patient}/_history"), "history-instance"),
    ] {
        let request_id = format!("test-{}", uid());
        get(&path)
            .header("X-Request-Id", &request_id)
            .send()
            .assert_status(200);
        let events = events_of(&request_id);
        assert_eq!(events.len(), 1, "{path}: {events:#?}");
        assert_eq!(events[0]["subtype"][0]["code"], subtype, "{path}");
        assert_eq!(entity_refs(&events[0], "1"), [format!("Patient/{patient}")]);
    }
}

const BALP: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.";

/// The one event of request `id`, asserted to follow BALP `pattern` with `action`.
#[track_caller]
fn only_event(request_id: &str, pattern: &str, action: &str) -> Value {
    let events = events_of(request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = events.into_iter().next().unwrap_or_default();
    assert_eq!(event["meta"]["profile"][0], format!("{BALP}{pattern}"));
    assert_eq!(event["action"], action);
    event
}

#[test]
fn a_write_and_its_event_commit_together() {
    let patient = new_patient();
    let request_id = format!("test-{}", uid());
    let created = post("DocumentReference")
        .header("X-Request-Id", &request_id)
        .json(&document_reference(&patient, &uid()))
        .send();
    created.assert_status(201);
    let document = created.resource("DocumentReference");
    let id = id_of(&document);
    let event = only_event(&request_id, "PatientCreate", "C");
    assert_eq!(event["subtype"][0]["code"], "create");
    assert_eq!(entity_refs(&event, "1"), [format!("Patient/{patient}")]);
    assert_eq!(
        entity_refs(&event, "4"),
        [format!("DocumentReference/{id}/_history/1")]
    );

    let mut changed = document.clone();
    changed["description"] = "corrected".into();
    let request_id = format!("test-{}", uid());
    put(&format!("DocumentReference/{id}"))
        .header("X-Request-Id", &request_id)
        .json(&changed)
        .send()
        .assert_status(200);
    let event = only_event(&request_id, "PatientUpdate", "U");
    assert_eq!(
        entity_refs(&event, "4"),
        [format!("DocumentReference/{id}/_history/2")]
    );

    let request_id = format!("test-{}", uid());
    delete(&format!("DocumentReference/{id}"))
        .header("X-Request-Id", &request_id)
        .send();
    let event = only_event(&request_id, "PatientDelete", "D");
    assert_eq!(entity_refs(&event, "1"), [format!("Patient/{patient}")]);
}

#[test]
fn a_write_that_fails_leaves_only_its_refusal() {
    let request_id = format!("test-{}", uid());
    // Its subject does not exist: 422, nothing written; the attempt is recorded,
    // no version is.
    post("DocumentReference")
        .header("X-Request-Id", &request_id)
        .json(&document_reference(&format!("missing-{}", uid()), &uid()))
        .send()
        .assert_status(422);
    let event = refusal(&request_id, 422);
    assert_eq!(event["action"], "C");
    assert!(entity_refs(&event, "4").is_empty(), "{event:#}");
    assert!(
        event["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("DocumentReference.subject")),
        "{event:#}"
    );
}

#[test]
fn each_entry_of_a_transaction_has_its_event() {
    let patient = new_patient();
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": document_reference(&patient, &uid()),
              "request": { "method": "POST", "url": "DocumentReference" } },
            { "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": document_reference(&patient, &uid()),
              "request": { "method": "POST", "url": "DocumentReference" } }
        ]
    });
    let request_id = format!("test-{}", uid());
    post(&base())
        .header("X-Request-Id", &request_id)
        .json(&bundle)
        .send()
        .assert_status(200);
    let events = events_of(&request_id);
    assert_eq!(events.len(), 3, "{events:#?}");
    // One per entry, in the transaction, and one for the Bundle itself.
    for event in &events[..2] {
        assert_eq!(event["meta"]["profile"][0], format!("{BALP}PatientCreate"));
        assert_eq!(entity_refs(event, "1"), [format!("Patient/{patient}")]);
    }
    assert_eq!(events[2]["subtype"][0]["code"], "transaction");
    assert_eq!(events[2]["outcome"], "0");
}

#[test]
fn a_batch_records_each_entry_its_failures_and_itself() {
    let patient = new_patient();
    let mut bad = document_reference(&patient, &uid());
    bad["status"] = serde_json::json!("nope");
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "resource": document_reference(&patient, &uid()),
              "request": { "method": "POST", "url": "DocumentReference" } },
            { "resource": bad, "request": { "method": "POST", "url": "DocumentReference" } },
            { "request": { "method": "GET", "url": format!("Patient/{patient}") } }
        ]
    });
    let request_id = format!("test-{}", uid());
    post(&base())
        .header("X-Request-Id", &request_id)
        .json(&bundle)
        .send()
        .assert_status(200);
    let events = events_of(&request_id);
    let said: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["subtype"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut said_sorted = said.clone();
    said_sorted.sort();
    let mut expected: Vec<(String, String)> = [
        ("create", "0"),
        ("create", "4"),
        ("read", "0"),
        ("batch", "0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    expected.sort();
    assert_eq!(said_sorted, expected, "{events:#?}");
    let failed = events
        .iter()
        .find(|e| e["outcome"] == "4")
        .expect("the failed entry");
    assert!(failed["outcomeDesc"]
        .as_str()
        .is_some_and(|d| d.contains("entry 1")));
}

/// The one event of a refused request: outcome 4, what the client was told,
/// no profile claimed.
#[track_caller]
fn refusal(request_id: &str, status: u16) -> Value {
    let events = events_of(request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = events.into_iter().next().unwrap_or_default();
    assert_eq!(event["outcome"], "4");
    assert!(event["meta"]["profile"].is_null(), "{event:#}");
    let desc = event["outcomeDesc"].as_str().unwrap_or_default();
    assert!(desc.starts_with(&format!("HTTP {status}")), "{desc}");
    event
}

#[test]
fn refused_requests_are_in_the_trail_too() {
    // 401: no token, so no person and no client, only where it came from.
    let patient = new_patient();
    let request_id = format!("test-{}", uid());
    get(&format!("Patient/{patient}"))
        .no_auth()
        .header("X-Request-Id", &request_id)
        .send()
        .assert_status(401);
    let event = refusal(&request_id, 401);
    assert_eq!(event["subtype"][0]["code"], "read");
    assert_eq!(entity_refs(&event, "4"), [format!("Patient/{patient}")]);
    let client = &event["agent"][0];
    assert_eq!(client["network"]["address"], "127.0.0.1");
    assert!(client["who"]["identifier"].is_null(), "{event:#}");

    // 404: nothing there (or nothing the caller may see).
    let request_id = format!("test-{}", uid());
    let missing = format!("missing-{}", uid());
    get(&format!("DocumentReference/{missing}"))
        .header("X-Request-Id", &request_id)
        .send()
        .assert_status(404);
    let event = refusal(&request_id, 404);
    assert_eq!(
        entity_refs(&event, "4"),
        [format!("DocumentReference/{missing}")]
    );

    // 403: a token whose scopes do not allow the interaction.
    let reader = conformance::smart::BackendClient::register(
        server(),
        "system/Patient.r",
        conformance::smart::SigningKey::rs384(),
    );
    let request_id = format!("test-{}", uid());
    post("Patient")
        .bearer(&reader.token("system/Patient.r"))
        .header("X-Request-Id", &request_id)
        .json(&patient_resource())
        .send()
        .assert_status(403);
    let event = refusal(&request_id, 403);
    assert_eq!(event["subtype"][0]["code"], "create");
    assert_eq!(event["action"], "C");
}

fn patient_resource() -> Value {
    conformance::patient(&uid())
}
