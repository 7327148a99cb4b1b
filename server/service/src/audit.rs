//! The audit of one interaction as it runs: the HTTP layer opens a
//! [`Recorder`] for each request (its id, where it came from) and hands it
//! to the [`Guard`](crate::Guard); the one read path adds what each read
//! touched (`reads::read_in`), one event per patient whose data it returned
//! (BALP's per-patient split), and the HTTP layer commits the events through
//! the [`AuditLog`](crate::AuditLog) before the response leaves.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use fhirledger_access::{Caller, Role};
use fhirledger_audit::{
    audit_event, index, Access, Client, Coding, Interaction, Kind, Observer, Outcome, Person, Query,
};
use fhirledger_postgres::{AuditRow, StoredVersion};
use serde_json::Value;

/// A resource a read returned, with the patient whose data it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// `Type/id/_history/version`.
    pub reference: String,
    pub patient: Option<String>,
}

impl Touched {
    /// A returned version; its patient read from its stored JSON.
    pub fn of(resource_type: &str, id: &str, version: i64, content: Option<&str>) -> Touched {
        Touched {
            reference: versioned(resource_type, id, version),
            patient: content.and_then(|c| patient_of(resource_type, id, c)),
        }
    }

    /// A version just written; its patient read from the JSON written (for a
    /// delete, the last version's), without parsing it again.
    pub fn written(v: &StoredVersion, json: Option<&Value>) -> Touched {
        Touched {
            reference: versioned(&v.resource_type, &v.id, v.version_id),
            patient: json.and_then(|j| patient_in(&v.resource_type, &v.id, j)),
        }
    }
}

fn versioned(resource_type: &str, id: &str, version: i64) -> String {
    format!("{resource_type}/{id}/_history/{version}")
}

/// The patient a resource's data belongs to: a Patient itself, else the
/// patient its `subject` or `patient` names (local references only).
pub fn patient_of(resource_type: &str, id: &str, content: &str) -> Option<String> {
    if resource_type == "Patient" {
        return Some(id.to_string());
    }
    patient_in(resource_type, id, &serde_json::from_str(content).ok()?)
}

/// [`patient_of`] a resource already parsed.
pub fn patient_in(resource_type: &str, id: &str, json: &Value) -> Option<String> {
    if resource_type == "Patient" {
        return Some(id.to_string());
    }
    ["subject", "patient"].iter().find_map(|element| {
        let reference = json[*element]["reference"].as_str()?;
        let rest = reference.rsplit_once("Patient/").map(|(_, r)| r)?;
        let patient = rest.split('/').next()?;
        (!patient.is_empty()).then(|| patient.to_string())
    })
}

/// What the HTTP layer knows of the request.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// `X-Request-Id` (the client's, or one the server made).
    pub request_id: String,
    pub client_address: Option<String>,
    /// Method, path and query, as sent.
    pub raw: String,
}

/// The events of one interaction, collected while it runs.
#[derive(Debug)]
pub struct Recorder {
    facts: RequestFacts,
    observer: Observer,
    rows: Mutex<Vec<AuditRow>>,
}

impl Recorder {
    pub fn new(facts: RequestFacts, observer: Observer) -> Recorder {
        Recorder {
            facts,
            observer,
            rows: Mutex::new(Vec::new()),
        }
    }

    pub fn request_id(&self) -> &str {
        &self.facts.request_id
    }

    /// The events collected so far, taken (to be committed).
    pub fn take(&self) -> Vec<AuditRow> {
        self.rows
            .lock()
            .map(|mut rows| std::mem::take(&mut *rows))
            .unwrap_or_default()
    }

    /// Whether any event was collected.
    pub fn is_empty(&self) -> bool {
        self.rows.lock().map(|r| r.is_empty()).unwrap_or(true)
    }

    /// A successful read by `caller`: one event per patient whose data it
    /// returned (and one for what belongs to no patient), each naming the
    /// resources of that patient and the rules that decided.
    pub fn read(
        &self,
        caller: Option<&Caller>,
        interaction: Interaction,
        touched: &[Touched],
        decided_by: &[String],
    ) {
        let mut by_patient: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for t in touched {
            by_patient
                .entry(t.patient.clone())
                .or_default()
                .push(t.reference.clone());
        }
        if by_patient.is_empty() {
            // A search that found nothing is an access too.
            by_patient.insert(None, Vec::new());
        }
        let now = Utc::now();
        for (patient, resources) in by_patient {
            let access = self.access(caller, interaction, now, patient, resources, decided_by);
            self.push(&access);
        }
    }

    fn access(
        &self,
        caller: Option<&Caller>,
        interaction: Interaction,
        recorded: DateTime<Utc>,
        patient: Option<String>,
        resources: Vec<String>,
        decided_by: &[String],
    ) -> Access {
        Access {
            recorded,
            kind: Kind::Rest {
                interaction,
                operation: None,
            },
            outcome: Outcome::Success,
            outcome_desc: None,
            person: caller.and_then(person_of),
            client: Client {
                client_id: caller.map(|c| c.client_id.clone()),
                address: self.facts.client_address.clone(),
            },
            purpose: purpose_of(caller),
            purpose_text: None,
            patient,
            resources,
            decided_by: decided_by.to_vec(),
            query: interaction.is_query().then(|| Query {
                raw: self.facts.raw.clone(),
                description: None,
            }),
            request_id: self.facts.request_id.clone(),
        }
    }

    /// A refused or failed request (4xx, 5xx): one event with its outcome,
    /// what the client was told, the resource it named and that resource's
    /// patient, when known (a 404 that hid a document names its patient, so
    /// the patient sees that someone tried).
    pub fn refused(
        &self,
        caller: Option<&Caller>,
        interaction: Interaction,
        status: u16,
        why: &str,
        target: Option<String>,
        patient: Option<String>,
    ) {
        let mut access = self.access(
            caller,
            interaction,
            Utc::now(),
            patient,
            target.into_iter().collect(),
            &[],
        );
        access.outcome = Outcome::of_status(status);
        access.outcome_desc = Some(if why.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {why}")
        });
        self.push(&access);
    }

    /// The event of a successful `$operation` by `caller` about `patient`;
    /// `emergency` marks break-the-glass (purpose `BTG` with the reason
    /// given). Returned for the operation's own transaction when it writes.
    pub fn operation(
        &self,
        caller: Option<&Caller>,
        name: &str,
        patient: Option<String>,
        emergency: Option<&str>,
    ) -> AuditRow {
        let mut access = self.access(
            caller,
            Interaction::Operation,
            Utc::now(),
            patient,
            Vec::new(),
            &[],
        );
        access.kind = Kind::Rest {
            interaction: Interaction::Operation,
            operation: Some(name.to_string()),
        };
        if let Some(reason) = emergency {
            access.purpose = vec![Coding::new(
                "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "BTG",
                Some("break the glass"),
            )];
            access.purpose_text = Some(reason.to_string());
            access.decided_by = vec!["emergency access".into()];
        }
        self.row(&access)
    }

    /// The events of resources written by `caller`, one per resource: for
    /// the write's own transaction, so they commit with it or not at all.
    pub fn written(
        &self,
        caller: Option<&Caller>,
        interaction: Interaction,
        touched: &[Touched],
    ) -> Vec<AuditRow> {
        let now = Utc::now();
        touched
            .iter()
            .map(|t| {
                let access = self.access(
                    caller,
                    interaction,
                    now,
                    t.patient.clone(),
                    vec![t.reference.clone()],
                    &[],
                );
                self.row(&access)
            })
            .collect()
    }

    fn push(&self, access: &Access) {
        let row = self.row(access);
        if let Ok(mut rows) = self.rows.lock() {
            rows.push(row);
        }
    }

    fn row(&self, access: &Access) -> AuditRow {
        let event = {
            let mut event = audit_event(access, &self.observer);
            event["id"] = Value::String(uuid::Uuid::new_v4().to_string());
            event
        };
        let indexed = index(&event);
        let organizations = access
            .person
            .as_ref()
            .and_then(|p| p.organization.clone())
            .into_iter()
            .collect();
        AuditRow {
            id: event["id"].as_str().unwrap_or_default().to_string(),
            recorded: access.recorded,
            patient_id: access.patient.clone(),
            organizations,
            terms: indexed.terms,
            client_recorded: false,
            content: event.to_string(),
        }
    }
}

/// The person behind a caller's token; `None` for a backend client.
fn person_of(caller: &Caller) -> Option<Person> {
    let role = caller.role?;
    let fhir_user = match role {
        Role::Doctor => caller
            .practitioner
            .as_ref()
            .map(|p| format!("Practitioner/{p}")),
        Role::Patient => caller.patient.as_ref().map(|p| format!("Patient/{p}")),
        _ => None,
    };
    Some(Person {
        fhir_user,
        account: caller.subject.clone(),
        name: None,
        role: Some(role.to_string()),
        organization: caller.organization.clone(),
    })
}

/// Why the caller acts: treatment for doctors, the patient's own request
/// for patients, operations for everyone else.
fn purpose_of(caller: Option<&Caller>) -> Vec<Coding> {
    const REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
    let (code, display) = match caller.and_then(|c| c.role) {
        Some(Role::Doctor) => ("TREAT", "treatment"),
        Some(Role::Patient) => ("PATRQT", "patient requested"),
        Some(Role::ComplianceOfficer) => ("HOPERAT", "healthcare operations"),
        Some(_) | None => ("HOPERAT", "healthcare operations"),
    };
    vec![Coding::new(REASON, code, Some(display))]
}
