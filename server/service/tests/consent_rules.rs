//! The Consent decision in SQL against the plain evaluator: random Consent
//! trees and documents are written through the service (which keeps the
//! rules in the write's transaction), then for every doctor the search
//! statement's `Consented` probes must say exactly what
//! `fhirledger_access::consent::consents_say` says of the same Consents,
//! documents and reader at the database's clock.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use fhir_profiles::format::FhirFormat;
use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{
    ConsentEffect, Criterion, Reader, ReferenceMatch, SearchRequest, Visibility,
};
use fhirledger_access::consent::arbitrary::{self, DOCUMENTS};
use fhirledger_access::consent::{consents_say, Consent, Document};
use fhirledger_postgres::cluster::disposable_store;
use fhirledger_postgres::PgStore;
use fhirledger_service::{self as service, Guard, ServiceError, UpdateTarget};
use proptest::prelude::*;
use serde_json::{json, Value};

const BASE: &str = "https://fhir.example/fhir";
const PATIENT: &str = "p";
/// The patient of the upgrade test (apart from the random cases).
const UPGRADED: &str = "q";

fn guard() -> Guard {
    Guard::for_server(BASE, "tests: the Consent property test")
}

fn put(store: &PgStore, resource: &Value) -> Result<(), ServiceError> {
    let rt = resource["resourceType"].as_str().unwrap_or_default();
    let id = resource["id"].as_str().unwrap_or_default().to_string();
    let prepared = service::prepare(rt, resource.to_string().as_bytes(), FhirFormat::Json, BASE)?;
    service::update(
        store,
        &guard(),
        &prepared,
        &UpdateTarget::Id(id),
        None,
        None,
        1 << 20,
    )?;
    Ok(())
}

/// The store, with the patient, the doctors d1 and d2, the hospitals o1 and
/// o2, and the roles r1 (d1 at o1) and r2 (d2 at o2) the random trees name.
fn store() -> &'static PgStore {
    static STORE: OnceLock<PgStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let (_, store) = disposable_store("consent-test").expect("a store on a private cluster");
        let fixtures = [
            json!({"resourceType": "Organization", "id": "o1", "name": "One"}),
            json!({"resourceType": "Organization", "id": "o2", "name": "Two"}),
            json!({"resourceType": "Practitioner", "id": "d1"}),
            json!({"resourceType": "Practitioner", "id": "d2"}),
            json!({"resourceType": "PractitionerRole", "id": "r1",
                   "practitioner": {"reference": "Practitioner/d1"},
                   "organization": {"reference": "Organization/o1"}}),
            json!({"resourceType": "PractitionerRole", "id": "r2",
                   "practitioner": {"reference": "Practitioner/d2"},
                   "organization": {"reference": "Organization/o2"}}),
            json!({"resourceType": "Patient", "id": PATIENT}),
            json!({"resourceType": "Patient", "id": UPGRADED}),
        ];
        for f in &fixtures {
            put(&store, f).expect("fixture");
        }
        store
    })
}

/// Every doctor the fixtures make: a Practitioner, with or without an
/// account Organization; and the references the evaluator knows them by.
fn readers() -> Vec<(Reader, Vec<String>)> {
    let mut out = Vec::new();
    for (d, role, role_org) in [("d1", "r1", "o1"), ("d2", "r2", "o2")] {
        for account in [None, Some("o1"), Some("o2")] {
            let mut refs = vec![
                format!("Practitioner/{d}"),
                format!("PractitionerRole/{role}"),
                format!("Organization/{role_org}"),
            ];
            if let Some(o) = account {
                refs.push(format!("Organization/{o}"));
            }
            refs.sort();
            refs.dedup();
            out.push((
                Reader {
                    practitioner: d.to_string(),
                    organization: account.map(str::to_string),
                },
                refs,
            ));
        }
    }
    out
}

/// The patient's documents the store finds under one Consent criterion.
fn found(store: &PgStore, effect: ConsentEffect, reader: &Reader) -> BTreeSet<String> {
    found_of(store, PATIENT, effect, reader)
}

fn found_of(
    store: &PgStore,
    patient: &str,
    effect: ConsentEffect,
    reader: &Reader,
) -> BTreeSet<String> {
    let mut request = SearchRequest::new("DocumentReference");
    request.criteria.push(Criterion::Reference {
        key: param_key("DocumentReference", "patient"),
        values: vec![ReferenceMatch::Local {
            resource_type: Some("Patient".into()),
            id: patient.into(),
        }],
    });
    request.count = 100;
    let visibility = Visibility {
        criteria: vec![Criterion::Consented {
            effect,
            reader: reader.clone(),
        }],
        includes: None,
    };
    store
        .transaction(|tx| tx.search(&request, &visibility))
        .expect("the search runs")
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn case(consents: &[Value], documents: &[Value]) -> Result<(), TestCaseError> {
    let store = store();
    let mut in_force = Vec::new();
    for (i, c) in consents.iter().enumerate() {
        let mut c = c.clone();
        let id = format!("c{i}");
        c["id"] = json!(id);
        put(store, &c).map_err(|e| TestCaseError::fail(format!("{:?}", e.issues)))?;
        if let Ok(parsed) = Consent::in_force(&id, &c, BASE) {
            in_force.push(parsed);
        }
    }
    let mut facts = Vec::new();
    for (d, id) in documents.iter().zip(DOCUMENTS) {
        let mut d = d.clone();
        d["id"] = json!(id);
        put(store, &d).map_err(|e| TestCaseError::fail(format!("{:?}", e.issues)))?;
        facts.push(Document::from_json(id, &d));
    }
    let now = chrono::Utc::now();
    for (reader, refs) in readers() {
        let permitted = found(store, ConsentEffect::Permit, &reader);
        let denied = found(store, ConsentEffect::Deny, &reader);
        for doc in &facts {
            let by_sql = if denied.contains(&doc.id) {
                Some(ConsentEffect::Deny)
            } else if permitted.contains(&doc.id) {
                Some(ConsentEffect::Permit)
            } else {
                None
            };
            let by_tree = consents_say(&in_force, doc, &refs, now);
            prop_assert_eq!(
                by_sql,
                by_tree,
                "reader {:?} on {} under {}",
                refs,
                doc.id,
                serde_json::to_string(consents).unwrap_or_default()
            );
        }
    }
    // Leave nothing for the next case: Consents first, then documents.
    let cleanup = |rt: &str, id: &str| {
        service::delete(store, &guard(), rt, id, None)
            .map(|_| ())
            .map_err(|e| TestCaseError::fail(format!("{:?}", e.issues)))
    };
    for i in 0..consents.len() {
        cleanup("Consent", &format!("c{i}"))?;
    }
    for id in DOCUMENTS.iter().take(documents.len()) {
        cleanup("DocumentReference", id)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_sql_decision_is_the_evaluators(
        consents in prop::collection::vec(arbitrary::consent(PATIENT), 1..=2),
        documents in prop::collection::vec(arbitrary::document(PATIENT), DOCUMENTS.len()),
    ) {
        case(&consents, &documents)?;
    }
}

/// Consents stored before their rules were kept (or kept by another
/// flattening) are rewritten when the server starts.
#[test]
fn rules_of_another_generation_are_rewritten() {
    let store = store();
    put(
        store,
        &json!({"resourceType": "DocumentReference", "id": "upgraded-doc", "status": "current",
                "subject": {"reference": format!("Patient/{UPGRADED}")},
                "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}]}),
    )
    .expect("the document");
    let mut consent = conformance_consent(UPGRADED);
    consent["id"] = json!("upgraded");
    put(store, &consent).expect("the Consent");
    let d1 = Reader {
        practitioner: "d1".into(),
        organization: None,
    };
    let permitted = || found_of(store, UPGRADED, ConsentEffect::Permit, &d1);
    assert_eq!(permitted(), BTreeSet::from(["upgraded-doc".to_string()]));
    // As if written by an older version: no rules, another generation.
    store
        .transaction(|tx| tx.delete_rules_of_consent("upgraded"))
        .expect("rules removed");
    store
        .record_consent_rules_generation("consent-rules-0")
        .expect("generation");
    assert!(permitted().is_empty());
    let rewritten =
        fhirledger_service::ensure_consent_rules_current(store, BASE).expect("rewritten");
    assert!(rewritten >= 1, "{rewritten}");
    assert_eq!(permitted(), BTreeSet::from(["upgraded-doc".to_string()]));
    // Current now: nothing more to do.
    assert_eq!(
        fhirledger_service::ensure_consent_rules_current(store, BASE).expect("checked"),
        0
    );
}

/// A Consent of `patient` permitting Practitioner/d1 everything.
fn conformance_consent(patient: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "actor": [{"role": {"text": "reader"},
            "reference": {"reference": "Practitioner/d1"}}]}
    })
}
