//! The audit of one interaction as it runs: the HTTP layer opens a
//! [`Recorder`] for each request (its id, where it came from) and hands it
//! to the [`Guard`](crate::Guard); the one read path adds what each read
//! touched (`reads::read_in`), one event per patient whose data it returned
//! (BALP's per-patient split), and the HTTP layer commits the events through
//! the [`AuditLog`](crate::AuditLog) before the response leaves.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, SubsecRound, Utc};
use std::collections::HashMap;

use fhirledger_access::{authored_by, reader_of, Caller, Role};
use fhirledger_audit::{
    index, recorded_event, Access, Client, Coding, Interaction, Kind, Observer, Outcome, Person,
    Query, SecurityEvent,
};
use fhirledger_postgres::{AuditRow, DocumentGround, Found, StoreError, StoredVersion, Tx};
use serde_json::Value;

/// A resource a read returned, with the patient whose data it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// `Type/id/_history/version`.
    pub reference: String,
    pub patient: Option<String>,
    /// The rule that let the caller see it ([`grounds`]); `None` until
    /// asked, and for the server's own reads.
    pub rule: Option<String>,
}

impl Touched {
    /// A returned version; its patient read from its stored JSON.
    pub fn of(resource_type: &str, id: &str, version: i64, content: Option<&str>) -> Touched {
        Touched {
            reference: versioned(resource_type, id, version),
            patient: content.and_then(|c| patient_of(resource_type, id, c)),
            rule: None,
        }
    }

    /// A search's match; its patient as the store knew it, else read from
    /// its JSON.
    pub fn found(f: &Found) -> Touched {
        match &f.patient {
            Some(patient) => Touched {
                reference: versioned(&f.resource_type, &f.id, f.version_id),
                patient: patient.clone(),
                rule: None,
            },
            None => Touched::of(&f.resource_type, &f.id, f.version_id, Some(&f.content)),
        }
    }

    /// A version just written; its patient read from the JSON written (for a
    /// delete, the last version's), without parsing it again.
    pub fn written(v: &StoredVersion, json: Option<&Value>) -> Touched {
        Touched {
            reference: versioned(&v.resource_type, &v.id, v.version_id),
            patient: json.and_then(|j| patient_in(&v.resource_type, &v.id, j)),
            rule: None,
        }
    }
}

/// Fills in the rule that let `caller` see each resource a read returned,
/// as the patient's log names it (`agent.policy`): for a doctor's
/// documents, the document's own ground in one statement (authorship,
/// emergency access, the Consent that permits it, or the base policy, in
/// the precedence `$access` explains); otherwise what the caller's kind of
/// access rests on.
pub(crate) fn grounds(
    tx: &mut Tx<'_>,
    caller: Option<&Caller>,
    touched: &mut [Touched],
) -> Result<(), StoreError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    let mut documents = HashMap::new();
    if caller.role == Some(Role::Doctor) {
        if let Some(reader) = reader_of(caller) {
            let ids: Vec<String> = touched
                .iter()
                .filter_map(|t| document_id(&t.reference))
                .map(str::to_string)
                .collect();
            let authored = authored_by(&reader.practitioner);
            documents = tx.document_grounds(&ids, &reader, &authored)?;
        }
    }
    for t in touched.iter_mut() {
        let ground = document_id(&t.reference).and_then(|id| documents.get(id));
        t.rule = Some(match ground {
            Some(DocumentGround::Author) => "author".to_string(),
            Some(DocumentGround::EmergencyAccess) => "emergency access".to_string(),
            Some(DocumentGround::Consent(id)) => format!("Consent/{id}"),
            Some(DocumentGround::BasePolicy) => "base policy".to_string(),
            None => context_rule(caller, &t.reference).to_string(),
        });
    }
    Ok(())
}

/// The id of a `DocumentReference/{id}/_history/{v}` reference.
fn document_id(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("DocumentReference/")?
        .split('/')
        .next()
}

/// What a caller's access to a resource rests on, when it is not a
/// document's own ground.
pub(crate) fn context_rule(caller: &Caller, reference: &str) -> &'static str {
    let resource_type = reference.split('/').next().unwrap_or_default();
    match (caller.role, resource_type) {
        (None, _) => "system scope",
        (Some(Role::Patient), _) => "own record",
        (Some(Role::Doctor), "Binary") => "document access",
        (Some(Role::Doctor), "Patient") => "care relationship",
        (Some(Role::ComplianceOfficer), _) => "compliance oversight",
        (Some(_), _) if caller.organization.is_none() => "solution administration",
        (Some(_), _) => "hospital",
    }
}

fn versioned(resource_type: &str, id: &str, version: i64) -> String {
    format!("{resource_type}/{id}/_history/{version}")
}

/// The patient a resource's data belongs to: a Patient itself, else the
/// patient its `subject` or `patient` names (local references only).
///
/// Every audited read asks this of what it returned, so the stored JSON is
/// scanned for the two elements only (borrowed, nothing else built); an
/// AuditEvent's patient is read the way the trail files it
/// ([`fhirledger_audit::subject_in`]).
pub fn patient_of(resource_type: &str, id: &str, content: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        reference: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Subject<'a> {
        #[serde(borrow)]
        subject: Option<Named<'a>>,
        #[serde(borrow)]
        patient: Option<Named<'a>>,
    }
    match resource_type {
        "Patient" => Some(id.to_string()),
        "AuditEvent" => fhirledger_audit::subject_in(content),
        _ => {
            let named: Subject<'_> = serde_json::from_str(content).ok()?;
            [named.subject, named.patient]
                .into_iter()
                .flatten()
                .find_map(|n| n.reference.and_then(|r| patient_id_of(&r)))
        }
    }
}

/// The id of the Patient a reference names (`Patient/{id}`, relative or
/// absolute, with or without a version).
fn patient_id_of(reference: &str) -> Option<String> {
    let rest = reference.rsplit_once("Patient/").map(|(_, r)| r)?;
    let patient = rest.split('/').next()?;
    (!patient.is_empty()).then(|| patient.to_string())
}

/// [`patient_of`] a resource already parsed. An AuditEvent is about the
/// patient the trail files it under ([`fhirledger_audit::subject`]), so
/// reading a patient's trail is itself in that patient's trail.
pub fn patient_in(resource_type: &str, id: &str, json: &Value) -> Option<String> {
    match resource_type {
        "Patient" => return Some(id.to_string()),
        "AuditEvent" => return fhirledger_audit::subject(json),
        _ => {}
    }
    ["subject", "patient"]
        .iter()
        .find_map(|element| patient_id_of(json[*element]["reference"].as_str()?))
}

/// Who a security event is about: the person (when known) and the client
/// application. A patient's own sign-ins name them as the person, so they
/// are in the patient's log (`fhirledger_audit::subject`).
#[derive(Debug, Clone, Default)]
pub struct SecurityActor {
    pub person: Option<Person>,
    pub client_id: Option<String>,
}

/// What the HTTP layer knows of the request.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// `X-Request-Id` (the client's, or one the server made).
    pub request_id: String,
    pub client_address: Option<String>,
    /// Method, path and query, as sent (for a command, its command line).
    pub raw: String,
    /// The server's own tool that acts, when no token names a client (a
    /// command such as `fhirledger audit export`).
    pub tool: Option<String>,
}

/// The events of one interaction, collected while it runs.
#[derive(Debug)]
pub struct Recorder {
    facts: RequestFacts,
    observer: Observer,
    rows: Mutex<Vec<AuditRow>>,
}

impl Recorder {
    /// The client's network address as the audit records it (behind a
    /// trusted balancer, the one it names): also what per-address limits key on.
    pub fn client_address(&self) -> Option<&str> {
        self.facts.client_address.as_deref()
    }

    pub fn new(facts: RequestFacts, observer: Observer) -> Recorder {
        Recorder {
            facts,
            observer,
            rows: Mutex::new(Vec::new()),
        }
    }

    /// The recorder of one of the server's own commands (`fhirledger …`):
    /// a fresh request id, the command line as what was asked, and the
    /// command line as the client.
    pub fn for_command(command_line: &str, observer: &Observer) -> Recorder {
        Recorder::new(
            RequestFacts {
                request_id: uuid::Uuid::new_v4().to_string(),
                client_address: None,
                raw: command_line.to_string(),
                tool: Some("fhirledger command line".into()),
            },
            observer.clone(),
        )
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
    /// returned, each naming the resources of that patient and the rules
    /// that decided. What belongs to no patient (the directory: the
    /// Practitioner and Organization a search included as a document's
    /// author and hospital) goes into the one patient's event when there is
    /// one patient, and into an event of its own otherwise (none, or
    /// several, whose logs must each show only their own data).
    /// `performed` describes the FHIR query run for a request that is not
    /// one itself ([`crate::Guard::performing`]).
    pub fn read(
        &self,
        caller: Option<&Caller>,
        interaction: Interaction,
        touched: &[Touched],
        performed: Option<&str>,
    ) {
        // One patient's data and some of the directory is one access, as
        // the person made it: one entry of that patient's log.
        let first = touched.iter().find_map(|t| t.patient.as_ref());
        let only_patient = first.filter(|first| {
            touched
                .iter()
                .all(|t| t.patient.as_ref().is_none_or(|p| p == *first))
        });
        let mut by_patient: BTreeMap<Option<String>, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for t in touched {
            let patient = t.patient.clone().or_else(|| only_patient.cloned());
            let (resources, rules) = by_patient.entry(patient).or_default();
            resources.push(t.reference.clone());
            if let Some(rule) = t.rule.as_ref().filter(|r| !rules.contains(r)) {
                rules.push(rule.clone());
            }
        }
        if by_patient.is_empty() {
            // A search that found nothing is an access too.
            by_patient.insert(None, (Vec::new(), Vec::new()));
        }
        let now = recorded_now();
        for (patient, (resources, rules)) in by_patient {
            let mut access = self.access(caller, interaction, now, patient, resources, &rules);
            if let (Some(query), Some(performed)) = (access.query.as_mut(), performed) {
                query.description = Some(performed.to_string());
            }
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
                client_id: caller
                    .map(|c| c.client_id.clone())
                    .or_else(|| self.facts.tool.clone()),
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
            recorded_now(),
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
        resources: Vec<String>,
        emergency: Option<&str>,
    ) -> AuditRow {
        self.row(&self.operation_access(caller, name, patient, resources, emergency))
    }

    /// The event of a successful `$operation` that answered about one
    /// resource the caller read for it, with that resource's patient and
    /// the rule that let the caller see it: the operation's event is the
    /// access's only record (`$proof`), not a read's event beside it.
    pub fn operation_on(&self, caller: Option<&Caller>, name: &str, touched: &Touched) -> AuditRow {
        let mut access = self.operation_access(
            caller,
            name,
            touched.patient.clone(),
            vec![touched.reference.clone()],
            None,
        );
        access.decided_by = touched.rule.iter().cloned().collect();
        self.row(&access)
    }

    fn operation_access(
        &self,
        caller: Option<&Caller>,
        name: &str,
        patient: Option<String>,
        resources: Vec<String>,
        emergency: Option<&str>,
    ) -> Access {
        let mut access = self.access(
            caller,
            Interaction::Operation,
            recorded_now(),
            patient,
            resources,
            &[],
        );
        access.kind = Kind::Rest {
            interaction: Interaction::Operation,
            operation: Some(name.to_string()),
        };
        access.query = Some(Query {
            raw: self.facts.raw.clone(),
            description: None,
        });
        if let Some(reason) = emergency {
            access.purpose = vec![Coding::new(
                "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "BTG",
                Some("break the glass"),
            )];
            access.purpose_text = Some(reason.to_string());
            access.decided_by = vec!["emergency access".into()];
        }
        access
    }

    /// A security event of the authorization server (sign-in, token issued
    /// or refused, revocation, refresh-token reuse, account and client
    /// administration) by `actor`; `failure` is the status and what the
    /// client was told when it was refused.
    pub fn security(
        &self,
        event: SecurityEvent,
        actor: SecurityActor,
        failure: Option<(u16, &str)>,
    ) {
        self.add(self.security_row(event, actor, failure));
    }

    /// [`Recorder::security`]'s event, returned for a write's own
    /// transaction (an Organization deactivated commits with its alert).
    pub fn security_row(
        &self,
        event: SecurityEvent,
        actor: SecurityActor,
        failure: Option<(u16, &str)>,
    ) -> AuditRow {
        let mut access = self.access(
            None,
            Interaction::Operation,
            recorded_now(),
            None,
            Vec::new(),
            &[],
        );
        access.kind = Kind::Security(event);
        access.query = None;
        access.purpose = Vec::new();
        access.person = actor.person;
        access.client.client_id = actor.client_id.or(access.client.client_id);
        if let Some((status, why)) = failure {
            access.outcome = Outcome::of_status(status);
            access.outcome_desc = Some(format!("HTTP {status}: {why}"));
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
        let now = recorded_now();
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
        self.add(self.row(access));
    }

    /// Adds an event made by [`Recorder::operation`] or
    /// [`Recorder::security_row`] to those committed with the response.
    pub fn add(&self, row: AuditRow) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.push(row);
        }
    }

    fn row(&self, access: &Access) -> AuditRow {
        // Time-ordered (UUIDv7): new events' ids land at the end of the
        // trail's id index instead of anywhere in it, which at millions of
        // events is the difference between a cached page and a disk read.
        let id = uuid::Uuid::now_v7().to_string();
        let content = recorded_event(access, &self.observer, &id);
        // What this server writes is an R4 AuditEvent by construction.
        let indexed = index(&content).unwrap_or_default();
        AuditRow {
            id,
            recorded: access.recorded,
            patient_id: access.patient.clone().or(indexed.subject),
            terms: indexed.terms,
            client_recorded: false,
            content,
        }
    }
}

/// Records a security event of one of the server's own commands (`user
/// add`, `client add`), durably, before the command reports success.
pub fn record_command(
    store: &fhirledger_postgres::PgStore,
    observer: &Observer,
    command_line: &str,
    event: SecurityEvent,
) -> Result<(), StoreError> {
    let recorder = Recorder::for_command(command_line, observer);
    recorder.security(event, SecurityActor::default(), None);
    store.append_audit_events(&recorder.take())
}

/// Now, to the millisecond an AuditEvent's `recorded` says, so the stored
/// instant and the JSON agree exactly.
fn recorded_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The person behind a caller's token; `None` for a backend client.
pub fn person_of(caller: &Caller) -> Option<Person> {
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
        name: caller.name.clone(),
        role: Some(role.to_string()),
        organization: caller.organization.clone(),
        organization_name: caller.organization_name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_of_what_a_read_returned() {
        let doc = |reference: &str| {
            format!(
                r#"{{"resourceType":"DocumentReference","status":"current","subject":{{"reference":"{reference}"}},"content":[]}}"#
            )
        };
        for reference in [
            "Patient/p1",
            "https://x.example/fhir/Patient/p1",
            "Patient/p1/_history/3",
        ] {
            assert_eq!(
                patient_of("DocumentReference", "d", &doc(reference)).as_deref(),
                Some("p1"),
                "{reference}"
            );
        }
        assert_eq!(patient_of("DocumentReference", "d", &doc("Group/g1")), None);
        assert_eq!(
            patient_of(
                "Consent",
                "c",
                r#"{"resourceType":"Consent","patient":{"reference":"Patient/p2"}}"#
            )
            .as_deref(),
            Some("p2")
        );
        assert_eq!(patient_of("Patient", "p3", "{}").as_deref(), Some("p3"));
        assert_eq!(patient_of("Organization", "o", r#"{"name":"x"}"#), None);
        let event = r#"{"resourceType":"AuditEvent","agent":[{"who":{"reference":"Patient/p4"}}]}"#;
        assert_eq!(patient_of("AuditEvent", "e", event).as_deref(), Some("p4"));
        // An escaped reference still reads (the borrowed form falls back to owned).
        assert_eq!(
            patient_of("DocumentReference", "d", &doc(r"Patient\/p5")).as_deref(),
            Some("p5")
        );
    }
}
