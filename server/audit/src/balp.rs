//! An [`Access`] as a FHIR R4 AuditEvent following IHE Basic Audit Log
//! Patterns (BALP 1.1): the agents, entities and codes each pattern needs
//! (`../shared/balp/*.fsh`), and `meta.profile` naming the pattern when the
//! event follows it. BALP's patterns describe successful interactions;
//! refusals and failures keep the same shape with their outcome, and claim
//! no profile.
//!
//! Agents: the person (`who` their FHIR identity, or their account at our
//! authorization server), the client application (`who.identifier` its
//! `client_id` under our issuer, `network.address` where the request came
//! from), this server, and the person's hospital (responsible party).
//! Entities: the request id (`X-Request-Id`), the patient (role 1), each
//! resource touched (role 4; by resource type in a query, since BALP's
//! Query pattern reserves "System Object" for the query itself) and the
//! query (role 24, base64 of the raw request). No content of a resource
//! ever goes into an event.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::SecondsFormat;
use serde_json::{json, Map, Value};

use crate::event::{Access, Action, Coding, Interaction, Kind, Observer, Outcome, SecurityEvent};

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const PROVENANCE_PARTICIPANT: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const BALP_PROFILE: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/";
const IHE_EVENT_TYPE: &str = "urn:ihe:event-type-code";
/// fhirledger's own codes: the solution's roles, its operations, its
/// security events and the access rules that decided.
pub const ROLE_SYSTEM: &str = "urn:fhirledger:role";
/// The `meta.tag` system marking an AuditEvent a client application sent
/// (code `client-recorded`) rather than one this server recorded.
pub const CLIENT_RECORDED_SYSTEM: &str = "urn:fhirledger:audit";
pub const OPERATION_SYSTEM: &str = "urn:fhirledger:operation";
pub const SECURITY_EVENT_SYSTEM: &str = "urn:fhirledger:security-event";
pub const ACCESS_RULE_PREFIX: &str = "urn:fhirledger:access:";

/// The BALP pattern an access follows, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Read,
    PatientRead,
    Query,
    PatientQuery,
    Create,
    PatientCreate,
    Update,
    PatientUpdate,
    Delete,
    PatientDelete,
}

impl Pattern {
    /// The canonical URL of the BALP profile.
    pub fn profile(self) -> String {
        let id = match self {
            Pattern::Read => "IHE.BasicAudit.Read",
            Pattern::PatientRead => "IHE.BasicAudit.PatientRead",
            Pattern::Query => "IHE.BasicAudit.Query",
            Pattern::PatientQuery => "IHE.BasicAudit.PatientQuery",
            Pattern::Create => "IHE.BasicAudit.Create",
            Pattern::PatientCreate => "IHE.BasicAudit.PatientCreate",
            Pattern::Update => "IHE.BasicAudit.Update",
            Pattern::PatientUpdate => "IHE.BasicAudit.PatientUpdate",
            Pattern::Delete => "IHE.BasicAudit.Delete",
            Pattern::PatientDelete => "IHE.BasicAudit.PatientDelete",
        };
        format!("{BALP_PROFILE}{id}")
    }
}

/// The pattern `access` follows: a successful read, search, create,
/// update (or patch) or delete, with a patient or not. BALP's Read and
/// write patterns name exactly one resource; history, Bundles, operations
/// and security events have no BALP REST pattern.
pub fn pattern_of(access: &Access) -> Option<Pattern> {
    let Kind::Rest { interaction, .. } = &access.kind else {
        return None;
    };
    if access.outcome != Outcome::Success {
        return None;
    }
    let one = access.resources.len() == 1;
    let patient = access.patient.is_some();
    let pick = |with: Pattern, without: Pattern| Some(if patient { with } else { without });
    match interaction {
        Interaction::Read | Interaction::Vread if one => pick(Pattern::PatientRead, Pattern::Read),
        Interaction::SearchType | Interaction::SearchSystem if access.query.is_some() => {
            pick(Pattern::PatientQuery, Pattern::Query)
        }
        Interaction::Create if one => pick(Pattern::PatientCreate, Pattern::Create),
        Interaction::Update | Interaction::Patch if one => {
            pick(Pattern::PatientUpdate, Pattern::Update)
        }
        Interaction::Delete if one => pick(Pattern::PatientDelete, Pattern::Delete),
        _ => None,
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

fn coding_of(c: &Coding) -> Value {
    let mut v = json!({ "system": c.system, "code": c.code });
    if let Some(d) = &c.display {
        v["display"] = json!(d);
    }
    v
}

/// The agent types of the client, the server and the person in each kind
/// of event, as the BALP patterns fix them.
fn agent_types(access: &Access) -> (Value, Value, Value) {
    let interaction = match &access.kind {
        Kind::Rest { interaction, .. } => Some(*interaction),
        Kind::Security(_) => None,
    };
    let destination = coding(DCM, "110152", "Destination Role ID");
    let source = coding(DCM, "110153", "Source Role ID");
    let application = coding(DCM, "110150", "Application");
    let recipient = coding(PARTICIPATION, "IRCP", "information recipient");
    let author = coding(PARTICIPATION, "AUT", "author (originator)");
    match interaction.map(Interaction::action) {
        Some(Action::Read) => (destination, source, recipient),
        Some(Action::Create | Action::Update) => (source, destination, author),
        Some(Action::Delete) => (
            application,
            coding(PROVENANCE_PARTICIPANT, "custodian", "Custodian"),
            author,
        ),
        Some(Action::Execute) => (source, destination, recipient),
        None => (
            application,
            coding(DCM, "110152", "Destination Role ID"),
            recipient,
        ),
    }
}

/// `AuditEvent.type` and `subtype`.
fn type_and_subtypes(kind: &Kind) -> (Value, Vec<Value>) {
    match kind {
        Kind::Rest {
            interaction,
            operation,
        } => {
            let mut subtypes =
                vec![json!({ "system": RESTFUL_INTERACTION, "code": interaction.code() })];
            if let Some(op) = operation {
                subtypes.push(json!({ "system": OPERATION_SYSTEM, "code": op }));
            }
            (
                coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
                subtypes,
            )
        }
        Kind::Security(event) => {
            let authentication = coding(DCM, "110114", "User Authentication");
            let alert = coding(DCM, "110113", "Security Alert");
            match event {
                SecurityEvent::SignIn => (authentication, vec![coding(DCM, "110122", "Login")]),
                SecurityEvent::TokenRequest { .. } => (
                    authentication,
                    vec![coding(IHE_EVENT_TYPE, "ITI-71", "Get Access Token")],
                ),
                SecurityEvent::Revocation => (
                    alert,
                    vec![json!({ "system": SECURITY_EVENT_SYSTEM, "code": "token-revoked" })],
                ),
                SecurityEvent::RefreshTokenReuse => (
                    alert,
                    vec![json!({ "system": SECURITY_EVENT_SYSTEM, "code": "refresh-token-reuse" })],
                ),
                SecurityEvent::Administration { what } => (
                    alert,
                    vec![
                        json!({ "system": SECURITY_EVENT_SYSTEM, "code": "administration", "display": what }),
                    ],
                ),
            }
        }
    }
}

/// A deciding rule as the URI `agent.policy` holds: a resource as its
/// absolute URL, anything else as `urn:fhirledger:access:{rule}`.
pub fn policy_uri(rule: &str, fhir_base: &str) -> String {
    let is_reference = rule.split_once('/').is_some_and(|(t, id)| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && !id.is_empty()
            && !id.contains(' ')
    });
    if is_reference {
        format!("{fhir_base}/{rule}")
    } else {
        let slug: String = rule
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '/' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{ACCESS_RULE_PREFIX}{slug}")
    }
}

/// The AuditEvent of `access`, recorded by `observer`.
pub fn audit_event(access: &Access, observer: &Observer) -> Value {
    let (client_type, server_type, user_type) = agent_types(access);
    let (event_type, subtypes) = type_and_subtypes(&access.kind);
    let action = match &access.kind {
        Kind::Rest { interaction, .. } => interaction.action(),
        Kind::Security(_) => Action::Execute,
    };
    let issuer = observer.issuer();
    let mut agents = Vec::new();
    if let Some(person) = &access.person {
        let mut who = Map::new();
        match &person.fhir_user {
            Some(reference) => {
                who.insert("reference".into(), json!(reference));
            }
            None => {
                who.insert(
                    "identifier".into(),
                    json!({ "system": issuer, "value": person.account }),
                );
            }
        }
        if let Some(name) = &person.name {
            who.insert("display".into(), json!(name));
        }
        let mut agent = json!({
            "type": { "coding": [user_type] },
            "who": who,
            "altId": person.account,
            "requestor": true,
        });
        if let Some(name) = &person.name {
            agent["name"] = json!(name);
        }
        if let Some(role) = &person.role {
            agent["role"] = json!([{ "coding": [{ "system": ROLE_SYSTEM, "code": role }] }]);
        }
        if !access.decided_by.is_empty() {
            agent["policy"] = json!(access
                .decided_by
                .iter()
                .map(|r| policy_uri(r, &observer.fhir_base))
                .collect::<Vec<_>>());
        }
        if !access.purpose.is_empty() {
            agent["purposeOfUse"] = purposes(access);
        }
        agents.push(agent);
        if let Some(org) = &person.organization {
            let mut who = json!({ "reference": format!("Organization/{org}") });
            if let Some(name) = &person.organization_name {
                who["display"] = json!(name);
            }
            let mut agent = json!({
                "type": { "coding": [coding(PARTICIPATION, "RESP", "responsible party")] },
                "who": who,
                "requestor": false,
            });
            if let Some(name) = &person.organization_name {
                agent["name"] = json!(name);
            }
            agents.push(agent);
        }
    }
    let client_who = match &access.client.client_id {
        Some(id) => json!({ "identifier": { "system": issuer, "value": id } }),
        None => json!({ "display": "unidentified client (no valid access token)" }),
    };
    let mut client = json!({
        "type": { "coding": [client_type] },
        "who": client_who,
        "requestor": access.person.is_none(),
    });
    if let Some(address) = &access.client.address {
        client["network"] = json!({ "address": address, "type": "2" });
    }
    // A backend client acting for no one is the requestor: the rule is its.
    if access.person.is_none() && !access.decided_by.is_empty() {
        client["policy"] = json!(access
            .decided_by
            .iter()
            .map(|r| policy_uri(r, &observer.fhir_base))
            .collect::<Vec<_>>());
    }
    agents.push(client);
    agents.push(json!({
        "type": { "coding": [server_type] },
        "who": {
            "identifier": { "system": "urn:ietf:rfc:3986", "value": observer.fhir_base },
            "display": "fhirledger",
        },
        "requestor": false,
        "network": { "address": observer.host, "type": "1" },
    }));

    let mut entities = vec![json!({
        "what": { "identifier": { "value": access.request_id } },
        "type": { "system": BALP_ENTITY_TYPE, "code": "XrequestId" },
    })];
    if let Some(patient) = &access.patient {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    let is_query = access.query.is_some();
    for resource in &access.resources {
        let entity_type = if is_query {
            let resource_type = resource.split('/').next().unwrap_or_default();
            json!({ "system": RESOURCE_TYPES, "code": resource_type })
        } else {
            coding(ENTITY_TYPE, "2", "System Object")
        };
        entities.push(json!({
            "what": { "reference": resource },
            "type": entity_type,
            "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
        }));
    }
    if let Some(query) = &access.query {
        let mut entity = json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": STANDARD.encode(query.raw.as_bytes()),
        });
        if let Some(d) = &query.description {
            entity["description"] = json!(d);
        }
        entities.push(entity);
    }
    if let Kind::Security(SecurityEvent::TokenRequest { grant_type, scopes }) = &access.kind {
        let mut entity = json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "description": format!("grant_type={}", if grant_type.is_empty() { "(none)" } else { grant_type }),
        });
        // A refused request was granted nothing (and R4 strings are never empty).
        if !scopes.is_empty() {
            entity["detail"] =
                json!([{ "type": "granted scopes", "valueString": scopes.join(" ") }]);
        }
        entities.push(entity);
    }

    // An event has one version, recorded when it happened: its `meta` is
    // final when it is made, so the stored JSON is what every read returns.
    let recorded = access.recorded.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut meta = json!({ "versionId": "1", "lastUpdated": recorded });
    if let Some(pattern) = pattern_of(access) {
        meta["profile"] = json!([pattern.profile()]);
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "meta": meta,
        "type": event_type,
        "subtype": subtypes,
        "action": action.code(),
        "recorded": recorded,
        "outcome": access.outcome.code(),
    });
    if let Some(desc) = &access.outcome_desc {
        event["outcomeDesc"] = json!(desc);
    }
    if !access.purpose.is_empty() {
        event["purposeOfEvent"] = purposes(access);
    }
    event["agent"] = json!(agents);
    event["source"] = json!({
        "observer": {
            "identifier": { "system": "urn:ietf:rfc:3986", "value": observer.fhir_base },
            "display": "fhirledger",
        },
        "type": [coding(SOURCE_TYPE, "4", "Application Server")],
    });
    event["entity"] = json!(entities);
    event
}

fn purposes(access: &Access) -> Value {
    json!(access
        .purpose
        .iter()
        .map(|c| {
            let mut concept = json!({ "coding": [coding_of(c)] });
            if let Some(text) = &access.purpose_text {
                concept["text"] = json!(text);
            }
            concept
        })
        .collect::<Vec<_>>())
}

impl Observer {
    /// The authorization server's issuer, under which client ids and
    /// account ids are assigned: `{public base}/auth`.
    pub fn issuer(&self) -> String {
        let public = self
            .fhir_base
            .strip_suffix("/fhir")
            .unwrap_or(&self.fhir_base);
        format!("{public}/auth")
    }
}
