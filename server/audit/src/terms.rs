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

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use fhir_profiles::search::normalize::normalize_string;
use serde::Deserialize;
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

/// What of an AuditEvent is searched by, read straight from its JSON
/// (borrowing its strings): R4's types for each element, everything else
/// skipped. The server's own events and those a client sends are read the
/// same way.
#[derive(Deserialize, Default)]
#[serde(default)]
struct View<'a> {
    #[serde(borrow, rename = "type")]
    event_type: Option<Coding<'a>>,
    #[serde(borrow)]
    subtype: Vec<Coding<'a>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recorded: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Option<Cow<'a, str>>,
    #[serde(borrow)]
    agent: Vec<AgentView<'a>>,
    #[serde(borrow)]
    source: Option<SourceView<'a>>,
    #[serde(borrow)]
    entity: Vec<EntityView<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Coding<'a> {
    #[serde(borrow)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Concept<'a> {
    #[serde(borrow)]
    coding: Vec<Coding<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Identifier<'a> {
    #[serde(borrow)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Reference<'a> {
    #[serde(borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    identifier: Option<Identifier<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Network<'a> {
    #[serde(borrow)]
    address: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AgentView<'a> {
    #[serde(borrow, rename = "type")]
    agent_type: Option<Concept<'a>>,
    #[serde(borrow)]
    role: Vec<Concept<'a>>,
    #[serde(borrow)]
    who: Option<Reference<'a>>,
    #[serde(borrow)]
    alt_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    network: Option<Network<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceView<'a> {
    #[serde(borrow)]
    site: Option<Cow<'a, str>>,
    #[serde(borrow)]
    observer: Option<Reference<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EntityView<'a> {
    #[serde(borrow)]
    what: Option<Reference<'a>>,
    #[serde(borrow, rename = "type")]
    entity_type: Option<Coding<'a>>,
    #[serde(borrow)]
    role: Option<Coding<'a>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

struct Terms(Vec<String>);

impl Terms {
    fn add(&mut self, param: &str, value: &str) {
        if !value.is_empty() {
            self.0.push(format!("{param}={value}"));
        }
    }

    fn code(&mut self, param: &str, code: Option<&Cow<'_, str>>) {
        if let Some(code) = code {
            self.add(param, code);
        }
    }

    fn coding(&mut self, param: &str, c: Option<&Coding<'_>>) {
        let Some(Coding {
            system,
            code: Some(code),
        }) = c
        else {
            return;
        };
        self.add(param, code);
        let system = system.as_deref().unwrap_or_default();
        self.0.push(format!("{param}={system}|{code}"));
    }

    fn concept(&mut self, param: &str, c: Option<&Concept<'_>>) {
        for coding in c.map(|c| c.coding.as_slice()).unwrap_or_default() {
            self.coding(param, Some(coding));
        }
    }

    fn reference(&mut self, param: &str, r: Option<&Reference<'_>>) {
        let Some(r) = r else {
            return;
        };
        if let Some(reference) = &r.reference {
            let unversioned = reference.split("/_history/").next().unwrap_or(reference);
            self.add(param, unversioned);
        }
        if let Some(Identifier {
            system,
            value: Some(value),
        }) = &r.identifier
        {
            let system = system.as_deref().unwrap_or_default();
            self.0.push(format!("{param}:identifier={system}|{value}"));
        }
    }

    fn string(&mut self, param: &str, s: Option<&Cow<'_, str>>) {
        if let Some(s) = s {
            self.add(param, &normalize_string(s));
        }
    }
}

/// The patient id of a local `Patient/{id}` reference.
fn patient_of(r: Option<&Reference<'_>>) -> Option<String> {
    let reference = r?.reference.as_deref()?;
    let rest = reference.strip_prefix("Patient/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

impl View<'_> {
    /// See [`subject`].
    fn subject(&self) -> Option<String> {
        self.entity
            .iter()
            .find_map(|e| patient_of(e.what.as_ref()))
            .or_else(|| self.agent.iter().find_map(|a| patient_of(a.who.as_ref())))
    }

    fn indexed(&self) -> Indexed {
        let mut t = Terms(Vec::with_capacity(32));
        let mut patients = Vec::new();
        t.coding("type", self.event_type.as_ref());
        for s in &self.subtype {
            t.coding("subtype", Some(s));
        }
        t.code("action", self.action.as_ref());
        t.code("outcome", self.outcome.as_ref());
        for agent in &self.agent {
            t.reference("agent", agent.who.as_ref());
            t.string("agent-name", agent.name.as_ref());
            for role in &agent.role {
                t.concept("agent-role", Some(role));
            }
            t.concept("agent-role", agent.agent_type.as_ref());
            t.code("altid", agent.alt_id.as_ref());
            t.string(
                "address",
                agent.network.as_ref().and_then(|n| n.address.as_ref()),
            );
            for policy in &agent.policy {
                t.add("policy", policy);
            }
            patients.extend(patient_of(agent.who.as_ref()));
        }
        if let Some(source) = &self.source {
            t.code("site", source.site.as_ref());
            t.reference("source", source.observer.as_ref());
        }
        for entity in &self.entity {
            t.reference("entity", entity.what.as_ref());
            t.string("entity-name", entity.name.as_ref());
            t.coding("entity-role", entity.role.as_ref());
            t.coding("entity-type", entity.entity_type.as_ref());
            patients.extend(patient_of(entity.what.as_ref()));
        }
        patients.sort();
        patients.dedup();
        let mut terms = t.0;
        terms.sort();
        terms.dedup();
        Indexed {
            subject: self.subject(),
            recorded: self
                .recorded
                .as_deref()
                .and_then(|r| DateTime::parse_from_rfc3339(r).ok())
                .map(|d| d.with_timezone(&Utc)),
            patients,
            terms,
        }
    }
}

/// The patient an event is about, as the trail's `patient` search means it:
/// the patient whose data it touched (its first entity naming a Patient),
/// else the patient who acted (an agent naming one). BALP splits accesses
/// per patient, so events name at most one; the trail narrows R4's
/// `patient` (any agent or entity) to this one so that a patient's attempt
/// on another patient's data is in that other patient's log, not in their
/// own, where it would confirm what they were refused.
pub fn subject(event: &Value) -> Option<String> {
    View::deserialize(event).ok()?.subject()
}

/// [`subject`] of an event's JSON text.
pub fn subject_in(json: &str) -> Option<String> {
    serde_json::from_str::<View<'_>>(json).ok()?.subject()
}

/// The search values of `event` (its JSON). `None` when an element has
/// another type than R4 gives it.
pub fn index(json: &str) -> Option<Indexed> {
    serde_json::from_str::<View<'_>>(json)
        .ok()
        .map(|v| v.indexed())
}

/// [`index`] of an event already parsed.
pub fn index_value(event: &Value) -> Option<Indexed> {
    View::deserialize(event).ok().map(|v| v.indexed())
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
        let indexed = index(&event.to_string()).expect("an R4 AuditEvent");
        assert_eq!(index_value(&event).as_ref(), Some(&indexed));
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
