//! The AuditEvents fhirledger records, built from every kind of access and
//! checked without a server: each validates against the official R4 JSON
//! schema, and each one that claims a BALP profile follows it as the
//! profile's FHIR Shorthand says (`conformance::balp`). The checker itself is
//! shown to catch what each profile forbids.

use chrono::{TimeZone, Utc};
use conformance::balp::{assert_valid_audit_event, balp, entities, recorded_query, schema_errors};
use fhirledger_audit::{
    audit_event, pattern_of, Access, Client, Coding, Interaction, Kind, Observer, Outcome, Pattern,
    Person, Query, SecurityEvent,
};
use serde_json::Value;

fn observer() -> Observer {
    Observer {
        fhir_base: "https://fhir.hospital.example/fhir".into(),
        host: "fhir.hospital.example".into(),
    }
}

fn doctor() -> Person {
    Person {
        fhir_user: Some("Practitioner/dr-jones".into()),
        account: "5f0c-account".into(),
        name: Some("Dr Ann Jones".into()),
        role: Some("doctor".into()),
        organization: Some("hospital-b".into()),
        organization_name: Some("Hospital B".into()),
    }
}

fn access(interaction: Interaction) -> Access {
    let query = interaction.is_query().then(|| Query {
        raw: "GET /fhir/DocumentReference?patient=p1&type=http://loinc.org|11506-3".into(),
        description: Some("DocumentReference?patient=p1&type=http://loinc.org|11506-3".into()),
    });
    Access {
        recorded: Utc.with_ymd_and_hms(2026, 12, 6, 9, 30, 0).unwrap(),
        kind: Kind::Rest {
            interaction,
            operation: None,
        },
        outcome: Outcome::Success,
        outcome_desc: None,
        person: Some(doctor()),
        client: Client {
            client_id: Some("ehr-viewer".into()),
            address: Some("10.1.2.3".into()),
        },
        purpose: vec![Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "TREAT",
            Some("treatment"),
        )],
        purpose_text: None,
        patient: Some("p1".into()),
        resources: vec!["DocumentReference/d1/_history/2".into()],
        decided_by: vec!["Consent/c7".into()],
        query,
        request_id: "req-0001".into(),
    }
}

const INTERACTIONS: [Interaction; 15] = [
    Interaction::Read,
    Interaction::Vread,
    Interaction::SearchType,
    Interaction::SearchSystem,
    Interaction::HistoryInstance,
    Interaction::HistoryType,
    Interaction::HistorySystem,
    Interaction::Create,
    Interaction::Update,
    Interaction::Patch,
    Interaction::Delete,
    Interaction::Batch,
    Interaction::Transaction,
    Interaction::Operation,
    Interaction::Capabilities,
];

fn assert_valid(event: &Value, what: &str) {
    assert_valid_audit_event(event, what);
}

#[test]
fn every_kind_of_access_is_valid_r4_and_follows_the_profile_it_claims() {
    let mut claimed = Vec::new();
    for interaction in INTERACTIONS {
        for with_patient in [true, false] {
            for with_person in [true, false] {
                for outcome in [
                    Outcome::Success,
                    Outcome::MinorFailure,
                    Outcome::SeriousFailure,
                ] {
                    let mut a = access(interaction);
                    if !with_patient {
                        a.patient = None;
                    }
                    if !with_person {
                        a.person = None;
                        a.purpose.clear();
                    }
                    a.outcome = outcome;
                    if outcome != Outcome::Success {
                        a.outcome_desc = Some("refused: no Consent permits it".into());
                    }
                    let event = audit_event(&a, &observer());
                    assert_valid(
                        &event,
                        &format!("{interaction:?} patient={with_patient} person={with_person} {outcome:?}"),
                    );
                    if let Some(p) = pattern_of(&a) {
                        claimed.push(p);
                    }
                }
            }
        }
    }
    // Every REST pattern of BALP is claimed by some access, with and without a patient.
    for p in [
        Pattern::Read,
        Pattern::PatientRead,
        Pattern::Query,
        Pattern::PatientQuery,
        Pattern::Create,
        Pattern::PatientCreate,
        Pattern::Update,
        Pattern::PatientUpdate,
        Pattern::Delete,
        Pattern::PatientDelete,
    ] {
        assert!(claimed.contains(&p), "no access claims {p:?}");
    }
}

#[test]
fn security_events_and_unidentified_clients_are_valid_r4() {
    let events = [
        Kind::Security(SecurityEvent::SignIn),
        Kind::Security(SecurityEvent::TokenRequest {
            grant_type: "authorization_code".into(),
            scopes: vec!["openid".into(), "user/DocumentReference.rs".into()],
        }),
        Kind::Security(SecurityEvent::Revocation),
        Kind::Security(SecurityEvent::RefreshTokenReuse),
        Kind::Security(SecurityEvent::Administration {
            what: "Organization/hospital-b deactivated".into(),
        }),
    ];
    for kind in events {
        let mut a = access(Interaction::Read);
        a.kind = kind.clone();
        a.patient = None;
        a.resources.clear();
        assert_valid(&audit_event(&a, &observer()), &format!("{kind:?}"));
    }
    // A 401: no token, so no person and no client id, only where it came from.
    let mut a = access(Interaction::Read);
    a.person = None;
    a.client.client_id = None;
    a.purpose.clear();
    a.outcome = Outcome::MinorFailure;
    a.outcome_desc = Some("no access token".into());
    let event = audit_event(&a, &observer());
    assert_valid(&event, "401");
    assert_eq!(event["agent"][0]["network"]["address"], "10.1.2.3");
}

fn agent_of<'a>(event: &'a Value, system: &str, code: &str) -> &'a Value {
    event["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a["type"]["coding"][0]["system"] == system && a["type"]["coding"][0]["code"] == code
        })
        .unwrap_or_else(|| panic!("no agent of type {system}|{code} in {event:#}"))
}

#[test]
fn a_doctors_read_under_consent_reads_field_by_field() {
    let event = audit_event(&access(Interaction::Read), &observer());
    assert_eq!(
        event["meta"]["profile"][0],
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    );
    assert_eq!(event["type"]["code"], "rest");
    assert_eq!(
        event["subtype"][0]["system"],
        "http://hl7.org/fhir/restful-interaction"
    );
    assert_eq!(event["subtype"][0]["code"], "read");
    assert_eq!(event["action"], "R");
    assert_eq!(event["outcome"], "0");
    assert_eq!(event["recorded"], "2026-12-06T09:30:00.000Z");
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
    let dcm = "http://dicom.nema.org/resources/ontology/DCM";
    let user = agent_of(
        &event,
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
        "IRCP",
    );
    assert_eq!(user["who"]["reference"], "Practitioner/dr-jones");
    assert_eq!(user["name"], "Dr Ann Jones");
    assert_eq!(user["requestor"], true);
    assert_eq!(user["role"][0]["coding"][0]["code"], "doctor");
    assert_eq!(
        user["policy"][0],
        "https://fhir.hospital.example/fhir/Consent/c7"
    );
    let hospital = agent_of(
        &event,
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
        "RESP",
    );
    assert_eq!(hospital["who"]["reference"], "Organization/hospital-b");
    let client = agent_of(&event, dcm, "110152");
    assert_eq!(client["who"]["identifier"]["value"], "ehr-viewer");
    assert_eq!(
        client["who"]["identifier"]["system"],
        "https://fhir.hospital.example/auth"
    );
    assert_eq!(client["network"]["address"], "10.1.2.3");
    let server = agent_of(&event, dcm, "110153");
    assert_eq!(
        server["who"]["identifier"]["value"],
        "https://fhir.hospital.example/fhir"
    );
    let entities = event["entity"].as_array().expect("entities");
    let role = |code: &str| {
        entities
            .iter()
            .filter(|e| e["role"]["code"] == code)
            .collect::<Vec<_>>()
    };
    assert_eq!(role("1")[0]["what"]["reference"], "Patient/p1");
    assert_eq!(
        role("4")[0]["what"]["reference"],
        "DocumentReference/d1/_history/2"
    );
    let transaction = entities
        .iter()
        .find(|e| e["type"]["code"] == "XrequestId")
        .expect("the request id entity");
    assert_eq!(transaction["what"]["identifier"]["value"], "req-0001");
    // No content of the document, only references.
    assert!(!event.to_string().contains("attachment"));
}

#[test]
fn a_search_keeps_the_raw_request_and_names_what_it_returned_by_type() {
    let a = access(Interaction::SearchType);
    let event = audit_event(&a, &observer());
    assert_eq!(event["action"], "E");
    let raw = recorded_query(&event).expect("the query entity");
    assert_eq!(raw, a.query.expect("a query").raw);
    let returned = entities(&event, "4");
    assert_eq!(returned[0]["type"]["code"], "DocumentReference");
}

#[test]
fn emergency_access_records_break_the_glass_as_the_purpose() {
    let mut a = access(Interaction::Operation);
    a.kind = Kind::Rest {
        interaction: Interaction::Operation,
        operation: Some("$emergency-access".into()),
    };
    a.purpose = vec![Coding::new(
        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "BTG",
        Some("break the glass"),
    )];
    a.purpose_text = Some("unconscious in the emergency department".into());
    a.decided_by = vec!["emergency access".into()];
    let event = audit_event(&a, &observer());
    assert_valid(&event, "emergency access");
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
    assert_eq!(
        event["purposeOfEvent"][0]["text"],
        "unconscious in the emergency department"
    );
    assert_eq!(event["subtype"][1]["code"], "$emergency-access");
    assert_eq!(
        event["agent"][0]["policy"][0],
        "urn:fhirledger:access:emergency-access"
    );
}

/// The checker is not vacuous: each change below breaks the profile.
#[test]
fn the_profile_checker_catches_what_the_profiles_forbid() {
    let event = audit_event(&access(Interaction::Read), &observer());
    let profile = event["meta"]["profile"][0]
        .as_str()
        .expect("a profile")
        .to_string();
    assert!(balp().violations(&event, &profile).is_empty());
    let broken = |what: &str, change: &dyn Fn(&mut Value)| {
        let mut e = event.clone();
        change(&mut e);
        let v = balp().violations(&e, &profile);
        assert!(!v.is_empty(), "{what} went unnoticed");
    };
    broken("a create's action", &|e| e["action"] = "C".into());
    broken("a failure outcome", &|e| e["outcome"] = "4".into());
    broken("a search subtype", &|e| {
        e["subtype"][0]["code"] = "search-type".into()
    });
    broken("no network address of the client", &|e| {
        for a in e["agent"].as_array_mut().into_iter().flatten() {
            if a["type"]["coding"][0]["code"] == "110152" {
                a.as_object_mut().map(|o| o.remove("network"));
            }
        }
    });
    broken("no document entity", &|e| {
        if let Some(list) = e["entity"].as_array_mut() {
            list.retain(|x| x["role"]["code"] != "4");
        }
    });
    broken("a patient entity naming a Practitioner", &|e| {
        for x in e["entity"].as_array_mut().into_iter().flatten() {
            if x["role"]["code"] == "1" {
                x["what"]["reference"] = "Practitioner/p".into();
            }
        }
    });
    broken("no server agent", &|e| {
        if let Some(list) = e["agent"].as_array_mut() {
            list.retain(|a| a["type"]["coding"][0]["code"] != "110153");
        }
    });
    broken("a user who is not the requestor", &|e| {
        for a in e["agent"].as_array_mut().into_iter().flatten() {
            if a["type"]["coding"][0]["code"] == "IRCP" {
                a["requestor"] = false.into();
            }
        }
    });
    assert!(
        !balp()
            .violations(&event, "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate")
            .is_empty(),
        "a read passes as a create"
    );
}

#[test]
fn the_schema_check_is_not_vacuous() {
    let event = audit_event(&access(Interaction::Read), &observer());
    let mut bad = event.clone();
    bad["action"] = "Z".into();
    assert!(
        !schema_errors(&bad).is_empty(),
        "action Z passed the schema"
    );
    let mut bad = event.clone();
    bad["recorded"] = "yesterday".into();
    assert!(
        !schema_errors(&bad).is_empty(),
        "a non-instant passed the schema"
    );
    let mut bad = event;
    bad["agent"][0]["whom"] = "x".into();
    assert!(
        !schema_errors(&bad).is_empty(),
        "an unknown element passed the schema"
    );
}
