use chrono::{DateTime, Utc};
use fhir_profiles::search::query::ConsentEffect::{self, Deny, Permit};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::arbitrary::{self, DOCUMENTS, NOW};
use super::*;

const BASE: &str = "https://fhir.example/fhir";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn consent(id: &str, provision: Value) -> Consent {
    let json = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": model::CONSENT_SCOPE_SYSTEM, "code": model::PATIENT_PRIVACY}]},
        "patient": {"reference": "Patient/p"},
        "policyRule": {"text": "opt-in"},
        "provision": provision,
    });
    Consent::in_force(id, &json, BASE).unwrap_or_else(|e| panic!("{e}"))
}

fn document(id: &str, ty: &str, date: &str) -> Document {
    Document::from_json(
        id,
        &json!({"type": {"coding": [{"system": "http://loinc.org", "code": ty}]}, "date": date}),
    )
}

fn reader(refs: &[&str]) -> Vec<String> {
    refs.iter().map(|r| r.to_string()).collect()
}

fn both_say(c: &Consent, d: &Document, r: &[String], t: DateTime<Utc>) -> Option<ConsentEffect> {
    let by_tree = consent_says(c, d, r, t);
    let by_rules = rules_say(&document_rules(c, d), r, t);
    assert_eq!(
        by_tree, by_rules,
        "tree and rules disagree for {r:?} on {}",
        d.id
    );
    by_tree
}

/// The worked example of ARCHITECTURE.md: a patient shares their discharge
/// summaries with every doctor of hospital B, except Dr Jones, who may see
/// only the one of 2024.
#[test]
fn the_worked_example() {
    let c = consent(
        "share-with-b",
        json!({
            "type": "permit",
            "actor": [{"role": {"text": "reader"}, "reference": {"reference": "Organization/b"}}],
            "code": [{"coding": [{"system": "http://loinc.org", "code": "18842-5"}]}],
            "provision": [{
                "type": "deny",
                "actor": [{"role": {"text": "reader"}, "reference": {"reference": "Practitioner/jones"}}],
                "provision": [{
                    "type": "permit",
                    "dataPeriod": {"start": "2024-01-01", "end": "2024-12-31"}
                }]
            }]
        }),
    );
    let now = at("2025-01-10T00:00:00Z");
    let summary_2023 = document("s23", "18842-5", "2023-05-01T10:00:00Z");
    let summary_2024 = document("s24", "18842-5", "2024-05-01T10:00:00Z");
    let lab = document("lab", "11502-2", "2024-05-01T10:00:00Z");
    let smith = reader(&[
        "Practitioner/smith",
        "PractitionerRole/smith-b",
        "Organization/b",
    ]);
    let jones = reader(&[
        "Practitioner/jones",
        "PractitionerRole/jones-b",
        "Organization/b",
    ]);
    let stranger = reader(&["Practitioner/x", "Organization/a"]);
    assert_eq!(both_say(&c, &summary_2023, &smith, now), Some(Permit));
    assert_eq!(both_say(&c, &summary_2024, &smith, now), Some(Permit));
    assert_eq!(both_say(&c, &lab, &smith, now), None, "not a summary");
    assert_eq!(both_say(&c, &summary_2023, &jones, now), Some(Deny));
    assert_eq!(both_say(&c, &summary_2024, &jones, now), Some(Permit));
    assert_eq!(both_say(&c, &summary_2023, &stranger, now), None);
    // Smith's rule excludes Jones; Jones's permit for 2024 needs both references.
    assert_eq!(
        document_rules(&c, &summary_2023)
            .iter()
            .map(|r| (r.effect, r.required.clone(), r.excluded.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                Permit,
                reader(&["Organization/b"]),
                reader(&["Practitioner/jones"])
            ),
            (
                Deny,
                reader(&["Organization/b", "Practitioner/jones"]),
                vec![]
            ),
        ]
    );
}

#[test]
fn periods_bound_the_rules() {
    let c = consent(
        "c",
        json!({"type": "permit", "period": {"start": "2025-01-01", "end": "2025-12-31"}}),
    );
    let d = document("d", "x", "2020-01-01");
    let r = reader(&["Practitioner/a"]);
    assert_eq!(
        both_say(&c, &d, &r, at("2024-12-31T23:59:59Z")),
        None,
        "future"
    );
    assert_eq!(
        both_say(&c, &d, &r, at("2025-01-01T00:00:00Z")),
        Some(Permit)
    );
    assert_eq!(
        both_say(&c, &d, &r, at("2025-12-31T23:59:59Z")),
        Some(Permit)
    );
    assert_eq!(
        both_say(&c, &d, &r, at("2026-01-01T00:00:00Z")),
        None,
        "expired"
    );
    let rules = document_rules(&c, &d);
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].valid_from, at("2025-01-01T00:00:00Z"));
    assert_eq!(rules[0].valid_until, at("2026-01-01T00:00:00Z"));
}

#[test]
fn other_actions_and_purposes_grant_no_reading() {
    let correct = consent(
        "c",
        json!({"type": "permit", "action": [{"coding": [{"system": model::CONSENT_ACTION_SYSTEM, "code": "correct"}]}]}),
    );
    let d = document("d", "x", "2020-01-01");
    let r = reader(&["Practitioner/a"]);
    assert_eq!(both_say(&correct, &d, &r, at(NOW)), None);
    let research = consent(
        "c",
        json!({"type": "permit", "purpose": [{"system": model::ACT_REASON_SYSTEM, "code": "HRESCH"}]}),
    );
    assert_eq!(both_say(&research, &d, &r, at(NOW)), None);
}

#[test]
fn a_btg_deny_switches_emergency_access_off_for_whom_it_names() {
    let c = consent(
        "c",
        json!({
            "type": "permit",
            "actor": [{"reference": {"reference": "Organization/a"}}],
            "provision": [{
                "type": "deny",
                "actor": [{"reference": {"reference": "Practitioner/x"}}],
                "purpose": [{"system": model::ACT_REASON_SYSTEM, "code": model::BTG}]
            }]
        }),
    );
    let x = reader(&["Practitioner/x", "Organization/a"]);
    let y = reader(&["Practitioner/y", "Organization/a"]);
    assert!(refuses_emergency_access(&c, &x, at(NOW)));
    assert!(!refuses_emergency_access(&c, &y, at(NOW)));
    let plain_deny = consent("d", json!({"type": "deny"}));
    assert!(!refuses_emergency_access(&plain_deny, &x, at(NOW)));
    // An ordinary read by x is not affected by a provision for emergencies.
    let d = document("d", "t", "2020-01-01");
    assert_eq!(both_say(&c, &d, &x, at(NOW)), Some(Permit));
}

#[test]
fn patient_rules_say_who_was_granted_anything() {
    let c = consent(
        "c",
        json!({
            "type": "deny",
            "provision": [
                {"type": "permit", "actor": [{"reference": {"reference": "Practitioner/a"}}],
                 "code": [{"coding": [{"system": "http://loinc.org", "code": "t"}]}]},
                {"type": "permit", "actor": [{"reference": {"reference": "Organization/h"}}],
                 "provision": [{"type": "deny", "actor": [{"reference": {"reference": "Practitioner/b"}}]}]}
            ]
        }),
    );
    let rules = patient_rules(&c);
    let now = at(NOW);
    assert_eq!(
        rules_say(&rules, &reader(&["Practitioner/a"]), now),
        Some(Permit)
    );
    assert_eq!(
        rules_say(&rules, &reader(&["Practitioner/c", "Organization/h"]), now),
        Some(Permit)
    );
    assert_eq!(
        rules_say(&rules, &reader(&["Practitioner/b", "Organization/h"]), now),
        None
    );
    assert_eq!(rules_say(&rules, &reader(&["Practitioner/z"]), now), None);
}

#[test]
fn needlessly_complex_consents_are_refused() {
    let actors: Vec<Value> = (0..8)
        .map(|i| json!({"reference": {"reference": format!("Practitioner/p{i}")}}))
        .collect();
    let mut p = json!({"type": "permit", "actor": actors.clone()});
    for _ in 0..4 {
        p = json!({"type": "permit", "actor": actors.clone(), "provision": [p]});
    }
    assert!(check_enforceable(&consent("c", p)).is_err());
    assert!(check_enforceable(&consent("c", json!({"type": "permit", "actor": actors}))).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The flattened rules say exactly what the tree says, for any tree,
    /// document, reader and instant.
    #[test]
    fn rules_agree_with_the_tree(
        consents in prop::collection::vec(arbitrary::consent("p"), 1..3),
        documents in prop::collection::vec(arbitrary::document("p"), 1..4),
        readers in prop::collection::vec(arbitrary::reader(), 1..4),
        year in 2018i32..2031,
    ) {
        let consents: Vec<Consent> = consents
            .iter()
            .enumerate()
            .filter_map(|(i, json)| Consent::in_force(&format!("c{i}"), json, BASE).ok())
            .collect();
        let now = at(&format!("{year}-06-01T12:00:00Z"));
        for (i, json) in documents.iter().enumerate() {
            let document = Document::from_json(DOCUMENTS[i], json);
            let rules: Vec<Rule> = consents.iter().flat_map(|c| document_rules(c, &document)).collect();
            for r in &readers {
                prop_assert_eq!(
                    rules_say(&rules, r, now),
                    consents_say(&consents, &document, r, now),
                    "reader {:?}, document {:?}", r, document
                );
            }
        }
    }
}
