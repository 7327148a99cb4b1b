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
use serde_json::Value;

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

/// The JSON of an AuditEvent as this server writes it: R4's elements in
/// R4's order, serialized straight from these structs (no intermediate
/// tree), borrowing from the [`Access`] where it can.
mod json {
    use std::borrow::Cow;

    use serde::Serialize;

    pub type Text<'a> = Cow<'a, str>;

    #[derive(Serialize, Clone)]
    pub struct Coding<'a> {
        pub system: Text<'a>,
        pub code: Text<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub display: Option<Text<'a>>,
    }

    #[derive(Serialize, Default)]
    pub struct Concept<'a> {
        pub coding: Vec<Coding<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub text: Option<Text<'a>>,
    }

    #[derive(Serialize)]
    pub struct Identifier<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub system: Option<Text<'a>>,
        pub value: Text<'a>,
    }

    #[derive(Serialize, Default)]
    pub struct Reference<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reference: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub identifier: Option<Identifier<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub display: Option<Text<'a>>,
    }

    #[derive(Serialize)]
    pub struct Network<'a> {
        pub address: Text<'a>,
        #[serde(rename = "type")]
        pub kind: &'static str,
    }

    #[derive(Serialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct Agent<'a> {
        #[serde(rename = "type")]
        pub agent_type: Concept<'a>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub role: Vec<Concept<'a>>,
        pub who: Reference<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub alt_id: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<Text<'a>>,
        pub requestor: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub policy: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub network: Option<Network<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub purpose_of_use: Vec<Concept<'a>>,
    }

    #[derive(Serialize)]
    pub struct Source<'a> {
        pub observer: Reference<'a>,
        #[serde(rename = "type")]
        pub kind: Vec<Coding<'a>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Detail<'a> {
        #[serde(rename = "type")]
        pub kind: Text<'a>,
        pub value_string: Text<'a>,
    }

    #[derive(Serialize, Default)]
    pub struct Entity<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub what: Option<Reference<'a>>,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<Coding<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub role: Option<Coding<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub query: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub detail: Vec<Detail<'a>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta<'a> {
        pub version_id: &'static str,
        pub last_updated: Text<'a>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub profile: Vec<String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AuditEvent<'a> {
        pub resource_type: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<Text<'a>>,
        pub meta: Meta<'a>,
        #[serde(rename = "type")]
        pub event_type: Coding<'a>,
        pub subtype: Vec<Coding<'a>>,
        pub action: &'static str,
        pub recorded: Text<'a>,
        pub outcome: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub outcome_desc: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub purpose_of_event: Vec<Concept<'a>>,
        pub agent: Vec<Agent<'a>>,
        pub source: Source<'a>,
        pub entity: Vec<Entity<'a>>,
    }
}

use json::Text;

fn coding<'a>(system: &'a str, code: &'a str, display: &'a str) -> json::Coding<'a> {
    json::Coding {
        system: Text::Borrowed(system),
        code: Text::Borrowed(code),
        display: Some(Text::Borrowed(display)),
    }
}

fn bare<'a>(system: &'a str, code: &'a str) -> json::Coding<'a> {
    json::Coding {
        system: Text::Borrowed(system),
        code: Text::Borrowed(code),
        display: None,
    }
}

fn coding_of(c: &Coding) -> json::Coding<'_> {
    json::Coding {
        system: Text::Borrowed(&c.system),
        code: Text::Borrowed(&c.code),
        display: c.display.as_deref().map(Text::Borrowed),
    }
}

fn concept(c: json::Coding<'_>) -> json::Concept<'_> {
    json::Concept {
        coding: vec![c],
        text: None,
    }
}

/// The agent types of the client, the server and the person in each kind
/// of event, as the BALP patterns fix them.
fn agent_types(
    access: &Access,
) -> (
    json::Coding<'static>,
    json::Coding<'static>,
    json::Coding<'static>,
) {
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
        None => (application, destination, recipient),
    }
}

/// `AuditEvent.type` and `subtype`.
fn type_and_subtypes(kind: &Kind) -> (json::Coding<'_>, Vec<json::Coding<'_>>) {
    match kind {
        Kind::Rest {
            interaction,
            operation,
        } => {
            let mut subtypes = vec![bare(RESTFUL_INTERACTION, interaction.code())];
            if let Some(op) = operation {
                subtypes.push(bare(OPERATION_SYSTEM, op));
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
                SecurityEvent::Revocation => {
                    (alert, vec![bare(SECURITY_EVENT_SYSTEM, "token-revoked")])
                }
                SecurityEvent::RefreshTokenReuse => (
                    alert,
                    vec![bare(SECURITY_EVENT_SYSTEM, "refresh-token-reuse")],
                ),
                SecurityEvent::Administration { what } => (
                    alert,
                    vec![coding(SECURITY_EVENT_SYSTEM, "administration", what)],
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

/// The AuditEvent of `access`, recorded by `observer`, as a JSON tree
/// (without an id): what tests and tools inspect.
pub fn audit_event(access: &Access, observer: &Observer) -> Value {
    let issuer = observer.issuer();
    let recorded = recorded_text(access);
    serde_json::to_value(event_of(access, observer, &issuer, &recorded, None)).unwrap_or_default()
}

/// The compact JSON of the AuditEvent `id` of `access`, exactly as stored
/// and as every read returns it.
pub fn recorded_event(access: &Access, observer: &Observer, id: &str) -> String {
    let issuer = observer.issuer();
    let recorded = recorded_text(access);
    // Serializing these structs cannot fail: every key is a string.
    serde_json::to_string(&event_of(access, observer, &issuer, &recorded, Some(id)))
        .unwrap_or_default()
}

fn recorded_text(access: &Access) -> String {
    access.recorded.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event_of<'a>(
    access: &'a Access,
    observer: &'a Observer,
    issuer: &'a str,
    recorded: &'a str,
    id: Option<&'a str>,
) -> json::AuditEvent<'a> {
    let (client_type, server_type, user_type) = agent_types(access);
    let (event_type, subtypes) = type_and_subtypes(&access.kind);
    let action = match &access.kind {
        Kind::Rest { interaction, .. } => interaction.action(),
        Kind::Security(_) => Action::Execute,
    };
    let policies = || {
        access
            .decided_by
            .iter()
            .map(|r| policy_uri(r, &observer.fhir_base))
            .collect::<Vec<_>>()
    };
    let mut agents = Vec::with_capacity(4);
    if let Some(person) = &access.person {
        let who = match &person.fhir_user {
            Some(reference) => json::Reference {
                reference: Some(Text::Borrowed(reference)),
                ..Default::default()
            },
            None => json::Reference {
                identifier: Some(json::Identifier {
                    system: Some(Text::Borrowed(issuer)),
                    value: Text::Borrowed(&person.account),
                }),
                ..Default::default()
            },
        };
        agents.push(json::Agent {
            agent_type: concept(user_type),
            role: person
                .role
                .iter()
                .map(|role| concept(bare(ROLE_SYSTEM, role)))
                .collect(),
            who: json::Reference {
                display: person.name.as_deref().map(Text::Borrowed),
                ..who
            },
            alt_id: Some(Text::Borrowed(&person.account)),
            name: person.name.as_deref().map(Text::Borrowed),
            requestor: true,
            policy: policies(),
            purpose_of_use: purposes(access),
            ..Default::default()
        });
        if let Some(org) = &person.organization {
            let name = person.organization_name.as_deref().map(Text::Borrowed);
            agents.push(json::Agent {
                agent_type: concept(coding(PARTICIPATION, "RESP", "responsible party")),
                who: json::Reference {
                    reference: Some(Text::Owned(format!("Organization/{org}"))),
                    identifier: None,
                    display: name.clone(),
                },
                name,
                requestor: false,
                ..Default::default()
            });
        }
    }
    let client_who = match &access.client.client_id {
        Some(id) => json::Reference {
            identifier: Some(json::Identifier {
                system: Some(Text::Borrowed(issuer)),
                value: Text::Borrowed(id),
            }),
            ..Default::default()
        },
        None => json::Reference {
            display: Some(Text::Borrowed(
                "unidentified client (no valid access token)",
            )),
            ..Default::default()
        },
    };
    agents.push(json::Agent {
        agent_type: concept(client_type),
        who: client_who,
        requestor: access.person.is_none(),
        // A backend client acting for no one is the requestor: the rule is its.
        policy: if access.person.is_none() {
            policies()
        } else {
            Vec::new()
        },
        network: access
            .client
            .address
            .as_deref()
            .map(|address| json::Network {
                address: Text::Borrowed(address),
                kind: "2",
            }),
        ..Default::default()
    });
    let this_server = || json::Reference {
        identifier: Some(json::Identifier {
            system: Some(Text::Borrowed("urn:ietf:rfc:3986")),
            value: Text::Borrowed(&observer.fhir_base),
        }),
        display: Some(Text::Borrowed("fhirledger")),
        ..Default::default()
    };
    agents.push(json::Agent {
        agent_type: concept(server_type),
        who: this_server(),
        requestor: false,
        network: Some(json::Network {
            address: Text::Borrowed(&observer.host),
            kind: "1",
        }),
        ..Default::default()
    });

    let mut entities = Vec::with_capacity(access.resources.len() + 3);
    entities.push(json::Entity {
        what: Some(json::Reference {
            identifier: Some(json::Identifier {
                system: None,
                value: Text::Borrowed(&access.request_id),
            }),
            ..Default::default()
        }),
        kind: Some(bare(BALP_ENTITY_TYPE, "XrequestId")),
        ..Default::default()
    });
    if let Some(patient) = &access.patient {
        entities.push(json::Entity {
            what: Some(json::Reference {
                reference: Some(Text::Owned(format!("Patient/{patient}"))),
                ..Default::default()
            }),
            kind: Some(coding(ENTITY_TYPE, "1", "Person")),
            role: Some(coding(OBJECT_ROLE, "1", "Patient")),
            ..Default::default()
        });
    }
    let is_query = access.query.is_some();
    for resource in &access.resources {
        let kind = if is_query {
            let resource_type = resource.split('/').next().unwrap_or_default();
            bare(RESOURCE_TYPES, resource_type)
        } else {
            coding(ENTITY_TYPE, "2", "System Object")
        };
        entities.push(json::Entity {
            what: Some(json::Reference {
                reference: Some(Text::Borrowed(resource)),
                ..Default::default()
            }),
            kind: Some(kind),
            role: Some(coding(OBJECT_ROLE, "4", "Domain Resource")),
            ..Default::default()
        });
    }
    if let Some(query) = &access.query {
        entities.push(json::Entity {
            kind: Some(coding(ENTITY_TYPE, "2", "System Object")),
            role: Some(coding(OBJECT_ROLE, "24", "Query")),
            description: query.description.as_deref().map(Text::Borrowed),
            query: Some(STANDARD.encode(query.raw.as_bytes())),
            ..Default::default()
        });
    }
    if let Kind::Security(SecurityEvent::TokenRequest { grant_type, scopes }) = &access.kind {
        let grant = if grant_type.is_empty() {
            "(none)"
        } else {
            grant_type
        };
        entities.push(json::Entity {
            kind: Some(coding(ENTITY_TYPE, "2", "System Object")),
            role: Some(coding(OBJECT_ROLE, "24", "Query")),
            description: Some(Text::Owned(format!("grant_type={grant}"))),
            // A refused request was granted nothing (and R4 strings are never empty).
            detail: if scopes.is_empty() {
                Vec::new()
            } else {
                vec![json::Detail {
                    kind: Text::Borrowed("granted scopes"),
                    value_string: Text::Owned(scopes.join(" ")),
                }]
            },
            ..Default::default()
        });
    }

    // An event has one version, recorded when it happened: its `meta` is
    // final when it is made, so the stored JSON is what every read returns.
    json::AuditEvent {
        resource_type: "AuditEvent",
        id: id.map(Text::Borrowed),
        meta: json::Meta {
            version_id: "1",
            last_updated: Text::Borrowed(recorded),
            profile: pattern_of(access)
                .map(|p| vec![p.profile()])
                .unwrap_or_default(),
        },
        event_type,
        subtype: subtypes,
        action: action.code(),
        recorded: Text::Borrowed(recorded),
        outcome: access.outcome.code(),
        outcome_desc: access.outcome_desc.as_deref().map(Text::Borrowed),
        purpose_of_event: purposes(access),
        agent: agents,
        source: json::Source {
            observer: this_server(),
            kind: vec![coding(SOURCE_TYPE, "4", "Application Server")],
        },
        entity: entities,
    }
}

fn purposes(access: &Access) -> Vec<json::Concept<'_>> {
    access
        .purpose
        .iter()
        .map(|c| json::Concept {
            coding: vec![coding_of(c)],
            text: access.purpose_text.as_deref().map(Text::Borrowed),
        })
        .collect()
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
