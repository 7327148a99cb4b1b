//! What an AuditEvent is searched by, read from its JSON (the server's own
//! events and those a backend client sends alike): the recorded instant,
//! the patients it names, and one `param=value` term per value of every
//! other R4 AuditEvent search parameter but `patient` (the store's
//! `patient_id`, [`subject`]), which the store keeps in two arrays: the
//! GIN-indexed `terms` for what names someone or something, the unindexed
//! `codes` for coded facts (`fhirledger_postgres::audit`).
//!
//! Terms per parameter type:
//! - token on a Coding or CodeableConcept: `p=code` (any system) and
//!   `p=system|code` (`p=|code` for a coding without system); on a plain
//!   code or string: `p=value`;
//! - reference: `p=Type/id` (a version suffix dropped, so a search for the
//!   resource finds events about any of its versions), and for an
//!   identifier `p:identifier=system|value`;
//! - string (`agent-name`, `entity-name`, `address`): `p=value` normalized
//!   as string searches compare (case and accents folded).

use chrono::{DateTime, Utc};
use fhir_profiles::search::normalize::normalize_string;
use serde_json::Value;

/// The search values of one AuditEvent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Indexed {
    /// `recorded`, when it is a valid instant.
    pub recorded: Option<DateTime<Utc>>,
    /// The ids of the Patients it names (agents or entities).
    pub patients: Vec<String>,
    /// The one patient the event is about ([`subject`]).
    pub subject: Option<String>,
    /// Sorted, without duplicates.
    pub terms: Vec<String>,
}

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

struct Terms(Vec<String>);

impl Terms {
    fn add(&mut self, param: &str, value: &str) {
        if !value.is_empty() {
            self.0.push(format!("{param}={value}"));
        }
    }

    fn coding(&mut self, param: &str, c: &Value) {
        let Some(code) = c["code"].as_str() else {
            return;
        };
        self.add(param, code);
        let system = c["system"].as_str().unwrap_or_default();
        self.0.push(format!("{param}={system}|{code}"));
    }

    /// A Coding, a CodeableConcept, a list of either, or a plain code.
    fn token(&mut self, param: &str, v: &Value) {
        match v {
            Value::String(s) => self.add(param, s),
            Value::Array(items) => items.iter().for_each(|i| self.token(param, i)),
            Value::Object(o) if o.contains_key("coding") => {
                array(&v["coding"]).for_each(|c| self.coding(param, c))
            }
            Value::Object(_) => self.coding(param, v),
            _ => {}
        }
    }

    fn reference(&mut self, param: &str, v: &Value) {
        if let Some(r) = v["reference"].as_str() {
            let unversioned = r.split("/_history/").next().unwrap_or(r);
            self.add(param, unversioned);
        }
        let identifier = &v["identifier"];
        if let Some(value) = identifier["value"].as_str() {
            let system = identifier["system"].as_str().unwrap_or_default();
            self.0.push(format!("{param}:identifier={system}|{value}"));
        }
    }

    fn string(&mut self, param: &str, v: &Value) {
        if let Some(s) = v.as_str() {
            self.add(param, &normalize_string(s));
        }
    }
}

/// The patient id of a local `Patient/{id}` reference.
fn patient_of(v: &Value) -> Option<String> {
    let r = v["reference"].as_str()?;
    let rest = r.strip_prefix("Patient/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// The patient an event is about, as the trail's `patient` search means it:
/// the patient whose data it touched (its first entity naming a Patient),
/// else the patient who acted (an agent naming one). BALP splits accesses
/// per patient, so events name at most one; the trail narrows R4's
/// `patient` (any agent or entity) to this one so that a patient's attempt
/// on another patient's data is in that other patient's log, not in their
/// own, where it would confirm what they were refused.
pub fn subject(event: &Value) -> Option<String> {
    array(&event["entity"])
        .find_map(|e| patient_of(&e["what"]))
        .or_else(|| array(&event["agent"]).find_map(|a| patient_of(&a["who"])))
}

/// The search values of `event`.
pub fn index(event: &Value) -> Indexed {
    let mut t = Terms(Vec::new());
    let mut patients = Vec::new();
    t.token("type", &event["type"]);
    t.token("subtype", &event["subtype"]);
    t.token("action", &event["action"]);
    t.token("outcome", &event["outcome"]);
    for agent in array(&event["agent"]) {
        t.reference("agent", &agent["who"]);
        t.string("agent-name", &agent["name"]);
        t.token("agent-role", &agent["role"]);
        t.token("agent-role", &agent["type"]);
        t.token("altid", &agent["altId"]);
        t.string("address", &agent["network"]["address"]);
        array(&agent["policy"]).for_each(|p| t.token("policy", p));
        patients.extend(patient_of(&agent["who"]));
    }
    t.token("site", &event["source"]["site"]);
    t.reference("source", &event["source"]["observer"]);
    for entity in array(&event["entity"]) {
        t.reference("entity", &entity["what"]);
        t.string("entity-name", &entity["name"]);
        t.token("entity-role", &entity["role"]);
        t.token("entity-type", &entity["type"]);
        patients.extend(patient_of(&entity["what"]));
    }
    patients.sort();
    patients.dedup();
    let mut terms = t.0;
    terms.sort();
    terms.dedup();
    Indexed {
        subject: subject(event),
        recorded: event["recorded"]
            .as_str()
            .and_then(|r| DateTime::parse_from_rfc3339(r).ok())
            .map(|d| d.with_timezone(&Utc)),
        patients,
        terms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_searchable_by_every_value_it_carries() {
        let event = json!({
            "resourceType": "AuditEvent",
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
            "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": "read" }],
            "action": "R",
            "recorded": "2026-12-06T10:00:00.250+01:00",
            "outcome": "0",
            "agent": [{
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
                "who": { "reference": "Practitioner/dr-jones" },
                "name": "Dr Ánn Jones",
                "role": [{ "coding": [{ "system": "urn:fhirledger:role", "code": "doctor" }] }],
                "policy": ["https://x.example/fhir/Consent/c7"],
                "requestor": true
            }, {
                "type": { "coding": [{ "code": "110152" }] },
                "who": { "identifier": { "system": "https://x.example/auth", "value": "ehr" } },
                "network": { "address": "10.1.2.3", "type": "2" },
                "requestor": false
            }],
            "source": { "site": "ward 3", "observer": { "identifier": { "value": "https://x.example/fhir" } } },
            "entity": [
                { "what": { "reference": "Patient/p1" }, "type": { "code": "1" }, "role": { "code": "1" } },
                { "what": { "reference": "DocumentReference/d1/_history/2" }, "role": { "code": "4" } }
            ]
        });
        let indexed = index(&event);
        assert_eq!(indexed.patients, ["p1"]);
        assert_eq!(indexed.subject.as_deref(), Some("p1"));
        assert_eq!(
            indexed.recorded.map(|r| r.to_rfc3339()),
            Some("2026-12-06T09:00:00.250+00:00".into())
        );
        for term in [
            "type=rest",
            "type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest",
            "subtype=read",
            "action=R",
            "outcome=0",
            "agent=Practitioner/dr-jones",
            "agent:identifier=https://x.example/auth|ehr",
            "agent-name=dr ann jones",
            "agent-role=doctor",
            "agent-role=IRCP",
            "agent-role=|110152",
            "policy=https://x.example/fhir/Consent/c7",
            "address=10.1.2.3",
            "site=ward 3",
            "source:identifier=|https://x.example/fhir",
            "entity=Patient/p1",
            "entity=DocumentReference/d1",
            "entity-role=4",
            "entity-type=1",
        ] {
            assert!(
                indexed.terms.contains(&term.to_string()),
                "no {term} in {:#?}",
                indexed.terms
            );
        }
        let mut sorted = indexed.terms.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, indexed.terms);
    }
}
