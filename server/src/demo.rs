//! `fhirledger dev`'s demo data: a hospital with one patient and one
//! doctor, a second hospital with a doctor, documents of the demo patient
//! of three types, and a Consent of the patient sharing their progress notes
//! with the second hospital's doctor; one local account per role, all with
//! the same password, so a SMART app can be tried at once (the README walks
//! through what each account sees). Idempotent: existing data is kept.

use fhir_profiles::format::FhirFormat;
use fhirledger_postgres::PgStore;
use serde_json::{json, Value};

use fhirledger_auth::accounts::{create_user, AccountError, NewUser};
use fhirledger_service::reads::{self, ReadResource};
use fhirledger_service::Guard;
use fhirledger_service::{self as service, Status, UpdateTarget};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "fhirledger-demo";

/// The demo accounts: (role, email, organization, fhirUser).
pub const DEMO_USERS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("solution-admin", "admin@solution.example", None, None),
    (
        "hospital-admin",
        "admin@hospital.example",
        Some("demo-hospital"),
        None,
    ),
    (
        "doctor",
        "doctor@hospital.example",
        Some("demo-hospital"),
        Some("Practitioner/demo-doctor"),
    ),
    (
        "doctor",
        "doctor@second-hospital.example",
        Some("demo-second-hospital"),
        Some("Practitioner/demo-second-doctor"),
    ),
    (
        "patient",
        "patient@hospital.example",
        Some("demo-hospital"),
        Some("Patient/demo-patient"),
    ),
    (
        "compliance-officer",
        "compliance@hospital.example",
        Some("demo-hospital"),
        None,
    ),
];

fn demo_resources() -> Vec<Value> {
    vec![
        json!({"resourceType": "Organization", "id": "demo-hospital", "active": true, "name": "Demo Hospital"}),
        json!({"resourceType": "Patient", "id": "demo-patient", "active": true,
               "name": [{"family": "Example", "given": ["Pat"]}], "gender": "female", "birthDate": "1980-04-02",
               "managingOrganization": {"reference": "Organization/demo-hospital"}}),
        json!({"resourceType": "Practitioner", "id": "demo-doctor", "active": true,
               "name": [{"family": "Example", "given": ["Doc"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "demo-doctor-role", "active": true,
               "practitioner": {"reference": "Practitioner/demo-doctor"},
               "organization": {"reference": "Organization/demo-hospital"}}),
        json!({"resourceType": "Organization", "id": "demo-second-hospital", "active": true,
               "name": "Second Demo Hospital"}),
        json!({"resourceType": "Practitioner", "id": "demo-second-doctor", "active": true,
               "name": [{"family": "Second", "given": ["Sam"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "demo-second-doctor-role", "active": true,
               "practitioner": {"reference": "Practitioner/demo-second-doctor"},
               "organization": {"reference": "Organization/demo-second-hospital"}}),
        demo_document(
            "demo-note",
            "11506-3",
            "Progress note",
            "2026-03-02T09:30:00Z",
            "Follow-up visit: blood pressure well controlled.",
        ),
        demo_document(
            "demo-lab",
            "11502-2",
            "Laboratory report",
            "2026-02-20T14:00:00Z",
            "HbA1c 6.1 %.",
        ),
        demo_document(
            "demo-discharge",
            "18842-5",
            "Discharge summary",
            "2025-11-12T16:45:00Z",
            "Discharged after an uneventful appendectomy.",
        ),
        json!({"resourceType": "Consent", "id": "demo-consent", "status": "active",
               "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                     "code": "patient-privacy"}]},
               "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
               "patient": {"reference": "Patient/demo-patient"},
               "dateTime": "2026-03-03T10:00:00Z",
               "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                          "code": "OPTIN"}]},
               "provision": {"type": "permit",
                   "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                  "code": "IRCP"}]},
                              "reference": {"reference": "Practitioner/demo-second-doctor"}}],
                   "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                           "code": "access"}]}],
                   "code": [{"coding": [{"system": "http://loinc.org", "code": "11506-3"}]}]}}),
    ]
}

/// A document of the demo patient, written by the first hospital's doctor.
fn demo_document(id: &str, loinc: &str, title: &str, date: &str, text: &str) -> Value {
    use base64::Engine;
    json!({"resourceType": "DocumentReference", "id": id, "status": "current",
           "type": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": title}]},
           "subject": {"reference": "Patient/demo-patient"},
           "author": [{"reference": "Practitioner/demo-doctor"}],
           "date": date, "description": title,
           "content": [{"attachment": {"contentType": "text/plain", "title": title,
               "data": base64::engine::general_purpose::STANDARD.encode(text)}}]})
}

/// Creates what is missing of the demo data.
pub fn seed(store: &PgStore, fhir_base: &str, issuer: &str) -> anyhow::Result<()> {
    let guard = Guard::for_server(fhir_base, "dev: demo data");
    for resource in demo_resources() {
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let id = resource["id"].as_str().unwrap_or_default().to_string();
        let existing = ReadResource {
            resource_type: &rt,
            id: &id,
            version: None,
        };
        match reads::read(store, &guard, existing) {
            Ok(_) => continue,
            Err(e) if e.status == Status::NOT_FOUND => {}
            Err(e) => anyhow::bail!("demo {rt}: {e}"),
        }
        let prepared = service::prepare(
            &rt,
            resource.to_string().as_bytes(),
            FhirFormat::Json,
            fhir_base,
        )
        .map_err(|e| anyhow::anyhow!("demo {rt}: {:?}", e.issues))?;
        service::update(
            &store.clone(),
            &guard,
            &prepared,
            &UpdateTarget::Id(id),
            None,
            None,
            1 << 20,
        )
        .map_err(|e| anyhow::anyhow!("demo {rt}: {:?}", e.issues))?;
    }
    for (role, email, org, fhir_user) in DEMO_USERS {
        if store.user_by_email(email)?.is_some() {
            continue;
        }
        let new = NewUser {
            role: role.to_string(),
            email: email.to_string(),
            organization: org.map(str::to_string),
            fhir_user: fhir_user.map(str::to_string),
            password: Some(DEMO_PASSWORD.to_string()),
        };
        match create_user(store, issuer, &new) {
            Ok(_) | Err(AccountError::Conflict(_)) => {}
            Err(e) => anyhow::bail!("demo account {email}: {e}"),
        }
    }
    Ok(())
}

/// What `fhirledger dev` prints about signing in.
pub fn banner(issuer: &str, portal: &str) -> String {
    let mut out = format!(
        "Portal: {portal}\nSign in there (or through any app at the authorization server, {issuer}) with one of these demo accounts, password '{DEMO_PASSWORD}':\n"
    );
    for (role, email, _, _) in DEMO_USERS {
        out.push_str(&format!("  {role:<19} {email}\n"));
    }
    out.push_str(
        "Register your app first:  fhirledger client add --name 'My app' --kind public --redirect-uri http://localhost:3000/callback",
    );
    out
}
