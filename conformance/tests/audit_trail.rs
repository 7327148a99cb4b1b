//! The trail read back over FHIR, by the people it is for: a patient sees
//! every access to her data (refused attempts among them) and nothing of
//! anyone else's; a hospital's compliance officer sees what concerns its
//! patients or was done by its people; a solution-level officer sees all;
//! doctors see none. Every R4 AuditEvent search parameter finds the events
//! that carry its value, pages run newest first with cursors, and reading
//! the trail is itself in the trail.

use std::sync::OnceLock;

use conformance::balp::{entity_refs, recorded_events};
use conformance::smart_flow::*;
use conformance::*;
use serde_json::Value;

const PATIENT_SCOPES: &str = "openid fhirUser patient/*.rs";
const OFFICER_SCOPES: &str = "openid fhirUser user/AuditEvent.rs";
const DOCTOR_SCOPES: &str = "openid fhirUser user/*.rs";

struct World {
    org_a: String,
    alice: TestUser,
    alice_doc: String,
    bob: String,
    doctor_a: TestUser,
    doctor_b: TestUser,
    alice_token: String,
    officer_a_token: String,
    officer_all_token: String,
    doctor_a_token: String,
    /// The requests that made the events, by what they were.
    system_read_alice: String,
    doctor_b_tried_alice: String,
    system_read_bob: String,
    system_read_carol: String,
    doctor_a_tried_carol: String,
}

fn read_as(path: &str, token: Option<&str>, expected: u16) -> String {
    let request_id = format!("trail-{}", uid());
    let mut request = get(path).header("X-Request-Id", &request_id);
    if let Some(t) = token {
        request = request.bearer(t);
    }
    request.send().assert_status(expected);
    request_id
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let s = server();
        let (org_a, org_b) = (new_hospital(), new_hospital());
        let alice = new_patient_user(s, &org_a);
        let bob = new_patient_in(&org_a, "Bob");
        let carol = new_patient_in(&org_b, "Carol");
        let doc = |p: &str| id_of(&create(&document_reference(p, &uid())));
        let (alice_doc, bob_doc, carol_doc) = (doc(alice.fhir_id()), doc(&bob), doc(&carol));
        let client = AppClient::register(s, "public", None);
        let doctor_a = new_doctor(s, &org_a);
        let doctor_b = new_doctor(s, &org_b);
        let token =
            |user: &TestUser, scopes: &str| tokens_for(s, &client, user, scopes).access_token();
        let doctor_a_token = token(&doctor_a, DOCTOR_SCOPES);
        let doctor_b_token = token(&doctor_b, DOCTOR_SCOPES);
        let officer_a = TestUser::create(s, "compliance-officer", Some(&org_a), None);
        let officer_all = TestUser::create(s, "compliance-officer", None, None);
        let path = |id: &str| format!("DocumentReference/{id}");
        World {
            system_read_alice: read_as(&path(&alice_doc), None, 200),
            // Hidden from doctors of other hospitals without Consent: 404.
            doctor_b_tried_alice: read_as(&path(&alice_doc), Some(&doctor_b_token), 404),
            system_read_bob: read_as(&path(&bob_doc), None, 200),
            system_read_carol: read_as(&path(&carol_doc), None, 200),
            doctor_a_tried_carol: read_as(&path(&carol_doc), Some(&doctor_a_token), 404),
            alice_token: token(&alice, PATIENT_SCOPES),
            officer_a_token: token(&officer_a, OFFICER_SCOPES),
            officer_all_token: token(&officer_all, OFFICER_SCOPES),
            org_a,
            alice,
            alice_doc,
            bob,
            doctor_a,
            doctor_b,
            doctor_a_token,
        }
    })
}

/// The entries' resources of every page of a search as `token`, following
/// the `next` links; every event valid R4 and BALP.
fn trail(query: &str, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut next = Some(server().url(&format!("AuditEvent{query}")));
    while let Some(url) = next {
        let resp = get(&url).bearer(token).send();
        resp.assert_status(200);
        let bundle = resp.resource("Bundle");
        for entry in entries(&bundle) {
            let event = entry["resource"].clone();
            conformance::balp::assert_valid_audit_event(&event, &url);
            events.push(event);
        }
        next = link(&bundle, "next");
        assert!(events.len() < 10_000, "the next links loop");
    }
    events
}

/// The request id an event records (its BALP transaction entity).
fn request_of(event: &Value) -> String {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"]["code"] == "XrequestId")
        .and_then(|e| e["what"]["identifier"]["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn requests(events: &[Value]) -> Vec<String> {
    events.iter().map(request_of).collect()
}

fn recorded(event: &Value) -> String {
    event["recorded"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_patient_sees_every_access_to_her_data_and_nothing_else() {
    let w = world();
    let events = trail("", &w.alice_token);
    let seen = requests(&events);
    assert!(seen.contains(&w.system_read_alice), "{seen:?}");
    assert!(seen.contains(&w.doctor_b_tried_alice), "{seen:?}");
    for other in [
        &w.system_read_bob,
        &w.system_read_carol,
        &w.doctor_a_tried_carol,
    ] {
        assert!(!seen.contains(other), "another patient's event: {other}");
    }
    // Each is about her: her data, or (when no one's data was touched, as
    // in her own refused attempts) her as the one who acted.
    let her = format!("Patient/{}", w.alice.fhir_id());
    for event in &events {
        let data = entity_refs(event, "1");
        if data.is_empty() {
            assert!(event["agent"].to_string().contains(&her), "{event:#}");
        } else {
            assert_eq!(data, std::slice::from_ref(&her), "{event:#}");
        }
    }
    // Newest first.
    let times: Vec<String> = events.iter().map(recorded).collect();
    assert!(times.windows(2).all(|t| t[0] >= t[1]), "{times:#?}");

    // The refused attempt: who, from which hospital, what, and that it failed.
    let attempt = events
        .iter()
        .find(|e| request_of(e) == w.doctor_b_tried_alice)
        .expect("the attempt");
    assert_eq!(attempt["outcome"], "4");
    assert!(attempt["outcomeDesc"]
        .as_str()
        .is_some_and(|d| d.starts_with("HTTP 404")));
    let agents = attempt["agent"].to_string();
    assert!(
        agents.contains(&format!("Practitioner/{}", w.doctor_b.fhir_id())),
        "{agents}"
    );
    assert!(
        agents.contains(w.doctor_b.org.as_deref().unwrap_or("?")),
        "{agents}"
    );
    assert_eq!(
        entity_refs(attempt, "4"),
        [format!("DocumentReference/{}", w.alice_doc)]
    );

    // Asking for someone else's trail finds nothing; their events do not exist for her.
    let bobs = get(&format!(
        "AuditEvent?patient=Patient/{}&_total=accurate",
        w.bob
    ))
    .bearer(&w.alice_token)
    .send();
    bobs.assert_status(200);
    assert_eq!(bobs.json()["total"], 0);
    let bob_event = recorded_events(&w.system_read_bob)[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    get(&format!("AuditEvent/{bob_event}"))
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(404);
    let hers = attempt["id"].as_str().expect("an id");
    let read = get(&format!("AuditEvent/{hers}"))
        .bearer(&w.alice_token)
        .send();
    read.assert_status(200);
    assert_eq!(read.json(), *attempt, "a read returns what the search did");
}

#[test]
fn reading_the_trail_is_in_the_trail() {
    let w = world();
    let request_id = read_as("AuditEvent?_count=5", Some(&w.alice_token), 200);
    let events = recorded_events(&request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["subtype"][0]["code"], "search-type");
    assert_eq!(event["action"], "E");
    assert_eq!(
        entity_refs(event, "1"),
        [format!("Patient/{}", w.alice.fhir_id())]
    );
    assert!(entity_refs(event, "4")
        .iter()
        .all(|r| r.starts_with("AuditEvent/")));
}

#[test]
fn pages_run_newest_first_and_cursors_continue_where_they_stopped() {
    let w = world();
    let whole = trail("?_count=1000", &w.alice_token);
    assert!(whole.len() >= 2);
    let paged = trail("?_count=1", &w.alice_token);
    // Reading pages adds events of its own, newer than what it pages through.
    let ids =
        |events: &[Value]| -> Vec<String> { events.iter().map(|e| e["id"].to_string()).collect() };
    let older: Vec<String> = ids(&paged)
        .into_iter()
        .filter(|id| ids(&whole).contains(id))
        .collect();
    assert_eq!(older, ids(&whole));
    let oldest_first = trail("?_sort=date&_count=2", &w.alice_token);
    let times: Vec<String> = oldest_first.iter().map(recorded).collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]), "{times:#?}");
    // A `previous` link leads back to the page before.
    let first = get("AuditEvent?_count=1")
        .bearer(&w.alice_token)
        .send()
        .json();
    let second = get(&link(&first, "next").expect("a next page"))
        .bearer(&w.alice_token)
        .send()
        .json();
    let back = get(&link(&second, "previous").expect("a previous page"))
        .bearer(&w.alice_token)
        .send()
        .json();
    assert_eq!(
        entries(&back)[0]["resource"],
        entries(&first)[0]["resource"]
    );
    // A made-up cursor is refused.
    get("AuditEvent?_cursor=bm90LWEtY3Vyc29y")
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(400);
}

/// Which of `requests` an officer's token finds events of.
fn found_by(token: &str, requests: &[&String]) -> Vec<bool> {
    requests
        .iter()
        .map(|r| {
            let events = trail(&format!("?entity:identifier=%7C{r}"), token);
            !events.is_empty()
        })
        .collect()
}

#[test]
fn a_compliance_officer_sees_her_hospitals_trail_and_a_solution_officer_all() {
    let w = world();
    let all = [
        &w.system_read_alice,
        &w.doctor_b_tried_alice,
        &w.system_read_bob,
        &w.system_read_carol,
        &w.doctor_a_tried_carol,
    ];
    // Hospital A: about its patients (Alice, Bob) or done by its people (the
    // doctor of A trying Carol's document); not a backend's read of Carol's.
    assert_eq!(
        found_by(&w.officer_a_token, &all),
        [true, true, true, false, true]
    );
    assert_eq!(found_by(&w.officer_all_token, &all), [true; 5]);
    // Everything the hospital's officer sees is the hospital's.
    for event in trail("?_count=1000", &w.officer_a_token) {
        let by_its_people = event["agent"]
            .to_string()
            .contains(&format!("Organization/{}", w.org_a));
        let about_its_patients = entity_refs(&event, "1").iter().any(|p| {
            *p == format!("Patient/{}", w.alice.fhir_id()) || *p == format!("Patient/{}", w.bob)
        });
        assert!(by_its_people || about_its_patients, "{event:#}");
    }
    // Doctors have no AuditEvent scope at all.
    get("AuditEvent")
        .bearer(&w.doctor_a_token)
        .send()
        .assert_outcome(403);
    assert_eq!(w.doctor_a.org.as_deref(), Some(w.org_a.as_str()));
}

#[test]
fn every_search_parameter_finds_the_events_carrying_its_value() {
    let w = world();
    let attempt = recorded_events(&w.doctor_b_tried_alice).remove(0);
    let alice = format!("Patient/{}", w.alice.fhir_id());
    let day = &recorded(&attempt)[..10];
    let doctor = format!("Practitioner/{}", w.doctor_b.fhir_id());
    let org_b = format!("Organization/{}", w.doctor_b.org.as_deref().unwrap_or("?"));
    let source = attempt["source"]["observer"]["identifier"]["value"]
        .as_str()
        .expect("the observer")
        .to_string();
    let document = format!("DocumentReference/{}", w.alice_doc);
    let matching = [
        ("date", day.to_string()),
        ("date", format!("ge{day}")),
        ("_lastUpdated", format!("ge{day}")),
        ("agent", doctor.clone()),
        ("agent", org_b),
        ("agent-role", "doctor".into()),
        ("agent-role", "urn:fhirledger:role|doctor".into()),
        ("action", "R".into()),
        ("outcome", "4".into()),
        ("outcome:not", "0".into()),
        ("type", "rest".into()),
        (
            "type",
            "http://terminology.hl7.org/CodeSystem/audit-event-type|rest".into(),
        ),
        ("subtype", "read".into()),
        ("subtype", "http://hl7.org/fhir/restful-interaction|".into()),
        ("entity", document.clone()),
        ("entity", w.alice_doc.clone()),
        ("entity-role", "4".into()),
        ("entity-type", "2".into()),
        ("source:identifier", format!("urn:ietf:rfc:3986|{source}")),
        ("address", "127.0.0".into()),
        ("address:exact", "127.0.0.1".into()),
        ("patient", alice.clone()),
        (
            "_id",
            attempt["id"].as_str().unwrap_or_default().to_string(),
        ),
    ];
    let token = &w.officer_all_token;
    let id = attempt["id"].clone();
    let finds = |param: &str, value: &str| -> bool {
        let query = format!(
            "?patient={}&{param}={}&_count=1000",
            url_encode(&alice),
            url_encode(value)
        );
        trail(&query, token).iter().any(|e| e["id"] == id)
    };
    for (param, value) in &matching {
        assert!(finds(param, value), "{param}={value} does not find it");
    }
    let not_matching = [
        ("date", "2001-01-01".to_string()),
        ("agent", format!("Practitioner/{}", w.doctor_a.fhir_id())),
        ("action", "C".into()),
        ("outcome", "0".into()),
        ("outcome:not", "4".into()),
        ("subtype", "search-type".into()),
        ("entity", format!("DocumentReference/{}", uid())),
        ("address", "10.".into()),
        ("agent-role", "patient".into()),
        ("entity-role", "24".into()),
        ("policy", "urn:fhirledger:access:nothing".into()),
    ];
    for (param, value) in &not_matching {
        assert!(!finds(param, value), "{param}={value} finds it");
    }
    // What the trail cannot be searched by is refused, not ignored.
    for query in [
        "_include=AuditEvent:agent",
        "_sort=action",
        "_has:Patient:link:name=x",
    ] {
        get(&format!("AuditEvent?{query}"))
            .bearer(token)
            .send()
            .assert_outcome(400);
    }
    // `_summary=count`.
    let count = get(&format!("AuditEvent?patient={alice}&_summary=count"))
        .bearer(token)
        .send()
        .json();
    assert!(count["total"].as_u64().is_some_and(|n| n >= 2), "{count:#}");
}

#[test]
fn the_trail_cannot_be_rewritten_over_fhir() {
    let w = world();
    let event = recorded_events(&w.system_read_alice).remove(0);
    let id = event["id"].as_str().expect("an id");
    put(&format!("AuditEvent/{id}"))
        .json(&event)
        .send()
        .assert_outcome(405);
    delete(&format!("AuditEvent/{id}"))
        .send()
        .assert_outcome(405);
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "request": { "method": "DELETE", "url": format!("AuditEvent/{id}") } },
            { "resource": event, "request": { "method": "PUT", "url": format!("AuditEvent/{id}") } }
        ]
    });
    let answer = post(&base()).json(&bundle).send();
    answer.assert_status(200);
    for entry in entries(&answer.json()) {
        assert!(
            entry["response"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("405")),
            "{entry:#}"
        );
    }
    // Still there, unchanged.
    assert_eq!(get(&format!("AuditEvent/{id}")).send().json(), event);
}

/// The policies (deciding rules) of an event's requesting agent.
fn policies(event: &Value) -> Vec<String> {
    event["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["requestor"] == true)
        .flat_map(|a| a["policy"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_trail_names_who_read_with_their_hospital_and_the_rule_that_let_them() {
    let w = world();
    let s = server();
    let patient = new_patient_in(&w.org_a, "Erin");
    // One document the doctor of B wrote, one Erin shares with him by Consent.
    let mut authored = document_reference(&patient, &uid());
    authored["author"] =
        serde_json::json!([{ "reference": format!("Practitioner/{}", w.doctor_b.fhir_id()) }]);
    let authored = id_of(&create(&authored));
    let shared = id_of(&create(&document_reference(&patient, &uid())));
    let mut consent = conformance::consent(&patient, &uid());
    consent["provision"] = serde_json::json!({
        "type": "permit",
        "actor": [{
            "role": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "IRCP" }] },
            "reference": { "reference": format!("Practitioner/{}", w.doctor_b.fhir_id()) }
        }]
    });
    let consent = id_of(&create(&consent));
    let client = AppClient::register(s, "public", None);
    let token = tokens_for(s, &client, &w.doctor_b, DOCTOR_SCOPES).access_token();
    let search = read_as(
        &format!("DocumentReference?patient=Patient/{patient}&_sort=_id"),
        Some(&token),
        200,
    );
    let events = recorded_events(&search);
    assert_eq!(events.len(), 1, "one patient, one event: {events:#?}");
    let event = &events[0];
    let mut rules = policies(event);
    rules.sort();
    let base = &server().fhir_base;
    let mut expected = vec![
        format!("{base}/Consent/{consent}"),
        "urn:fhirledger:access:author".to_string(),
    ];
    expected.sort();
    assert_eq!(rules, expected, "{event:#}");
    let mut read = entity_refs(event, "4");
    read.sort();
    let mut documents = vec![
        format!("DocumentReference/{authored}/_history/1"),
        format!("DocumentReference/{shared}/_history/1"),
    ];
    documents.sort();
    assert_eq!(read, documents);
    // By name, with the hospital's name, as the patient's app shows them.
    let person = event["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["requestor"] == true)
        .expect("the person");
    assert_eq!(person["name"], "Dr. Conformance Doctor", "{person:#}");
    assert_eq!(person["who"]["display"], "Dr. Conformance Doctor");
    let hospital = event["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"]["coding"][0]["code"] == "RESP")
        .expect("the hospital");
    let org_b = w.doctor_b.org.as_deref().expect("an org");
    assert_eq!(
        hospital["who"]["reference"],
        format!("Organization/{org_b}")
    );
    assert!(hospital["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Conformance Hospital")));
    // The rule is searchable.
    let by_policy = trail(
        &format!(
            "?patient=Patient/{patient}&policy={}",
            url_encode(&format!("{base}/Consent/{consent}"))
        ),
        &w.officer_all_token,
    );
    assert!(by_policy.iter().any(|e| e["id"] == event["id"]));
    for name in [
        "agent-name=dr.%20conf",
        "agent-name:contains=conformance%20doc",
    ] {
        let by_name = trail(
            &format!("?patient=Patient/{patient}&{name}"),
            &w.officer_all_token,
        );
        assert!(by_name.iter().any(|e| e["id"] == event["id"]), "{name}");
    }
    // A backend client's read rests on its system scope.
    let backend = read_as(&format!("DocumentReference/{shared}"), None, 200);
    assert_eq!(
        policies(&recorded_events(&backend)[0]),
        ["urn:fhirledger:access:system-scope"]
    );
}

/// An event an EHR recorded about `patient`, as it forwards it.
fn ehr_event(patient: &str) -> Value {
    serde_json::json!({
        "resourceType": "AuditEvent",
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
        "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": "read" }],
        "action": "R",
        "recorded": "2026-12-01T08:15:00.000Z",
        "outcome": "0",
        "agent": [{
            "who": { "identifier": { "system": "urn:oid:1.2.3.4", "value": "ehr-user-17" } },
            "name": "Nurse Ratched",
            "requestor": true
        }],
        "source": { "site": "Ward 7", "observer": { "display": "Hospital A EHR" } },
        "entity": [{ "what": { "reference": format!("Patient/{patient}") },
                     "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1" },
                     "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1" } }]
    })
}

#[test]
fn a_backend_client_forwards_its_own_events_and_cannot_change_them_after() {
    let w = world();
    let request_id = format!("trail-{}", uid());
    let created = post("AuditEvent")
        .header("X-Request-Id", &request_id)
        .json(&ehr_event(&w.bob))
        .send();
    created.assert_status(201);
    let event = created.json();
    let id = id_of(&event);
    assert!(created
        .required_header("location")
        .ends_with(&format!("/AuditEvent/{id}/_history/1")));
    assert_eq!(
        event["recorded"], "2026-12-01T08:15:00.000Z",
        "kept as sent"
    );
    assert!(
        event["meta"]["tag"].to_string().contains("client-recorded"),
        "{event:#}"
    );
    assert_eq!(get(&format!("AuditEvent/{id}")).send().json(), event);
    // In Bob's trail, found by what it says.
    let found = trail(
        &format!("?patient=Patient/{}&site=Ward%207&agent-name=nurse", w.bob),
        &w.officer_a_token,
    );
    assert!(found.iter().any(|e| e["id"] == event["id"]), "{found:#?}");
    // Forwarding it is itself an access, recorded as a create.
    let recorded = recorded_events(&request_id);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["action"], "C");
    assert_eq!(
        entity_refs(&recorded[0], "4"),
        [format!("AuditEvent/{id}/_history/1")]
    );
    // Never changed afterwards.
    put(&format!("AuditEvent/{id}"))
        .json(&event)
        .send()
        .assert_outcome(405);

    // One patient per event.
    let mut two = ehr_event(&w.bob);
    two["entity"].as_array_mut().expect("entities").push(
        serde_json::json!({ "what": { "reference": format!("Patient/{}", w.alice.fhir_id()) } }),
    );
    let refused = post("AuditEvent").json(&two).send();
    let outcome = refused.assert_outcome(422);
    assert_issue_at(&refused, &outcome, "AuditEvent.entity");
    // Not an AuditEvent R4 accepts.
    let mut broken = ehr_event(&w.bob);
    broken["action"] = serde_json::json!("X");
    assert!(post("AuditEvent").json(&broken).send().status >= 400);
    // Patients and doctors may not add events.
    post("AuditEvent")
        .bearer(&w.alice_token)
        .json(&ehr_event(w.alice.fhir_id()))
        .send()
        .assert_outcome(403);
    // A batch of forwarded events.
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "resource": ehr_event(&w.bob), "request": { "method": "POST", "url": "AuditEvent" } },
            { "resource": ehr_event(w.alice.fhir_id()), "request": { "method": "POST", "url": "AuditEvent" } }
        ]
    });
    let answer = post(&base()).json(&bundle).send();
    answer.assert_status(200);
    for entry in entries(&answer.json()) {
        assert_eq!(entry["response"]["status"], "201 Created", "{entry:#}");
    }
}

/// `fhirledger audit export …` on the test server's database: the NDJSON
/// lines, parsed and checked, and stderr.
fn export(args: &[&str]) -> (Vec<Value>, String) {
    let mut all = vec!["audit", "export"];
    all.extend(args);
    let out = conformance::smart::cli_output(server(), &all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{all:?} failed: {stderr}");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    for event in &events {
        conformance::balp::assert_valid_audit_event(event, "export");
    }
    (events, stderr)
}

#[test]
fn the_trail_exports_as_ndjson_by_patient_hospital_and_time() {
    let w = world();
    let alice = w.alice.fhir_id();
    let searched = trail(
        &format!("?patient=Patient/{alice}&_count=1000"),
        &w.officer_all_token,
    );
    let (events, stderr) = export(&["--since", "2020-01-01", "--patient", alice]);
    assert!(
        stderr.contains(&format!("exported {} AuditEvents", events.len())),
        "{stderr}"
    );
    let exported: Vec<String> = events.iter().map(|e| e["id"].to_string()).collect();
    for event in &searched {
        assert!(
            exported.contains(&event["id"].to_string()),
            "missing {event:#}"
        );
    }
    let times: Vec<String> = events.iter().map(recorded).collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]), "oldest first");
    // Exactly as stored: what a read returns.
    let one = &events[0];
    let read = get(&format!("AuditEvent/{}", one["id"].as_str().unwrap_or("?")))
        .bearer(&w.officer_all_token)
        .send()
        .json();
    assert_eq!(read, *one);

    // A hospital's part is what its compliance officer sees.
    let (hospital, _) = export(&["--since", "2020-01-01", "--org", &w.org_a]);
    let requests = requests(&hospital);
    assert!(requests.contains(&w.doctor_a_tried_carol));
    assert!(requests.contains(&w.system_read_bob));
    assert!(!requests.contains(&w.system_read_carol));

    // A window in the past holds nothing; a bad instant is refused.
    let (none, _) = export(&["--since", "2020-01-01", "--until", "2020-02-01T00:00:00Z"]);
    assert!(none.is_empty());
    let bad =
        conformance::smart::cli_output(server(), &["audit", "export", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));

    // Exporting is itself in the trail, done by the command line.
    let exports = trail(
        "?subtype=operation&_sort=-date&_count=50",
        &w.officer_all_token,
    );
    assert!(
        exports
            .iter()
            .any(|e| e.to_string().contains("fhirledger command line")
                && e.to_string().contains("audit-export")),
        "{exports:#?}"
    );
}
