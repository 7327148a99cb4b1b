//! proptest strategies for Consent trees, documents and readers over a small
//! universe of actors, codes and instants, so that random draws overlap
//! often. Shared with the store's property test (feature `strategies`),
//! which compares the SQL decision with [`super::evaluate`].

use proptest::prelude::*;
use serde_json::{json, Value};

use super::model::{
    ACT_REASON_SYSTEM, BTG, CONSENT_ACTION_SYSTEM, CONSENT_SCOPE_SYSTEM, PATIENT_PRIVACY,
    RESOURCE_TYPES_SYSTEM,
};

/// Actors a provision may name; readers are drawn from the same references.
pub const ACTORS: [&str; 6] = [
    "Practitioner/d1",
    "Practitioner/d2",
    "PractitionerRole/r1",
    "PractitionerRole/r2",
    "Organization/o1",
    "Organization/o2",
];
pub const TYPE_SYSTEM: &str = "http://loinc.org";
pub const TYPES: [&str; 3] = ["11488-4", "18842-5", "34133-9"];
pub const LABEL_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const LABELS: [&str; 3] = ["N", "R", "V"];
/// Document ids.
pub const DOCUMENTS: [&str; 4] = ["doc0", "doc1", "doc2", "doc3"];
/// Years periods start or end in; the instant of evaluation is mid-2025.
const YEARS: [i32; 6] = [2019, 2021, 2023, 2025, 2027, 2029];
pub const NOW: &str = "2025-06-01T12:00:00Z";

fn subset(items: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(items.to_vec(), 0..=max.min(items.len()))
}

fn period() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => (prop::sample::select(YEARS.to_vec()), 0i32..8, any::<bool>()).prop_map(|(start, len, open)| {
            let mut p = json!({"start": format!("{start}-01-01")});
            if !open {
                p["end"] = json!(format!("{}-12-31", start + len));
            }
            Some(p)
        }),
    ]
}

fn codings(system: &'static str, codes: Vec<&'static str>) -> Vec<Value> {
    codes
        .into_iter()
        .map(|c| json!({"system": system, "code": c}))
        .collect()
}

/// One provision (without its nested provisions).
fn provision_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![1 => Just(None), 4 => Just(Some("permit")), 4 => Just(Some("deny"))],
        subset(&ACTORS, 2),
        prop_oneof![4 => Just(None), 1 => Just(Some("access")), 1 => Just(Some("correct"))],
        prop_oneof![6 => Just(false), 1 => Just(true)],
        prop_oneof![4 => Just(None), 1 => Just(Some("DocumentReference")), 1 => Just(Some("Patient"))],
        subset(&TYPES, 2),
        subset(&LABELS, 1),
        period(),
        period(),
        subset(&DOCUMENTS, 2),
    )
        .prop_map(
            |(effect, actors, action, btg, class, codes, labels, period, data_period, data)| {
                let mut p = json!({});
                if let Some(e) = effect {
                    p["type"] = json!(e);
                }
                if !actors.is_empty() {
                    p["actor"] = Value::Array(
                        actors
                            .iter()
                            .map(|a| json!({"role": {"text": "any"}, "reference": {"reference": a}}))
                            .collect(),
                    );
                }
                if let Some(a) = action {
                    p["action"] = json!([{"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": a}]}]);
                }
                if btg {
                    p["purpose"] = json!([{"system": ACT_REASON_SYSTEM, "code": BTG}]);
                }
                if let Some(c) = class {
                    p["class"] = json!([{"system": RESOURCE_TYPES_SYSTEM, "code": c}]);
                }
                if !codes.is_empty() {
                    p["code"] = Value::Array(
                        codes
                            .into_iter()
                            .map(|c| json!({"coding": [{"system": TYPE_SYSTEM, "code": c}]}))
                            .collect(),
                    );
                }
                if !labels.is_empty() {
                    p["securityLabel"] = Value::Array(codings(LABEL_SYSTEM, labels));
                }
                if let Some(x) = period {
                    p["period"] = x;
                }
                if let Some(x) = data_period {
                    p["dataPeriod"] = x;
                }
                if !data.is_empty() {
                    p["data"] = Value::Array(
                        data.iter()
                            .map(|d| json!({"meaning": "instance", "reference": {"reference": format!("DocumentReference/{d}")}}))
                            .collect(),
                    );
                }
                p
            },
        )
}

/// A provision tree up to three levels deep.
pub fn provision() -> impl Strategy<Value = Value> {
    provision_body().prop_recursive(3, 12, 3, |inner| {
        (provision_body(), prop::collection::vec(inner, 0..3)).prop_map(|(mut p, children)| {
            if !children.is_empty() {
                p["provision"] = Value::Array(children);
            }
            p
        })
    })
}

/// A Consent in force (as JSON) of `Patient/{patient}` with a random tree.
pub fn consent(patient: &'static str) -> impl Strategy<Value = Value> {
    provision().prop_map(move |provision| {
        json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": PATIENT_PRIVACY}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{patient}")},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": provision,
        })
    })
}

/// The parts of a DocumentReference that provisions match (as JSON).
pub fn document(patient: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(TYPES.to_vec()),
        subset(&TYPES, 1),
        subset(&LABELS, 2),
        prop::option::of(prop::sample::select(YEARS.to_vec())),
    )
        .prop_map(move |(ty, category, labels, year)| {
            let mut d = json!({
                "resourceType": "DocumentReference",
                "status": "current",
                "subject": {"reference": format!("Patient/{patient}")},
                "type": {"coding": [{"system": TYPE_SYSTEM, "code": ty}]},
                "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
            });
            if !category.is_empty() {
                d["category"] = json!([{"coding": codings(TYPE_SYSTEM, category)}]);
            }
            if !labels.is_empty() {
                d["meta"] = json!({"security": codings(LABEL_SYSTEM, labels)});
            }
            if let Some(y) = year {
                d["date"] = json!(format!("{y}-03-04T05:06:07Z"));
            }
            d
        })
}

/// A doctor as Consent rules see them: one Practitioner, some of the roles
/// and organisations.
pub fn reader() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(vec!["Practitioner/d1", "Practitioner/d2"]),
        subset(&ACTORS[2..4], 2),
        subset(&ACTORS[4..6], 2),
    )
        .prop_map(|(p, roles, orgs)| {
            std::iter::once(p)
                .chain(roles)
                .chain(orgs)
                .map(str::to_string)
                .collect()
        })
}
