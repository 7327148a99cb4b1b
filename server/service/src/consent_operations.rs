//! The two Consent operations: `$emergency-access` ("break the glass": a
//! doctor reads one patient's documents for a while, whatever the Consents
//! say, unless the patient switched it off) and `$access` (why a doctor may
//! or may not read a document: the deciding Consent, authorship, emergency
//! access or the base policy).
//!
//! `$access` explains with the same kept rules the search statement reads,
//! in the same order of precedence as the access decision builds its
//! criteria (`fhirledger_access::confine::consented_documents`): author,
//! emergency access, a denying Consent, a permitting Consent, base policy.

use chrono::{DateTime, Duration, Utc};
use fhir_profiles::format::{parse_resource, FhirFormat};
use fhir_profiles::outcome::IssueType;
use fhir_profiles::search::query::{ConsentEffect, Reader};
use fhirledger_access::consent::{local_reference, refuses_emergency_access, Consent};
use fhirledger_access::{ConsentDefault, Interaction, Role};
use fhirledger_postgres::{EmergencyGrant, PgStore, Tx};
use serde_json::Value;

use crate::error::{ServiceError, Status};
use crate::guard::Guard;
use crate::reads::{self, ReadResource};

/// What `$emergency-access` granted.
#[derive(Debug, Clone)]
pub struct EmergencyAccess {
    pub patient: String,
    pub expires: DateTime<Utc>,
}

/// `POST Patient/{id}/$emergency-access`: only doctors; 403 when a Consent
/// of the patient refuses emergency access to this doctor, 404 when there
/// is no such patient. The grant is kept (who, when, why, until when) for
/// the audit trail.
pub fn emergency_access(
    store: &PgStore,
    guard: &Guard,
    patient: &str,
    reason: &str,
) -> Result<EmergencyAccess, ServiceError> {
    let caller = guard
        .caller()
        .filter(|c| c.role == Some(Role::Doctor))
        .ok_or_else(|| ServiceError::forbidden("only doctors may call $emergency-access"))?;
    let practitioner = caller.practitioner.clone().ok_or_else(|| {
        ServiceError::forbidden(
            "$emergency-access needs a doctor whose account names their Practitioner",
        )
    })?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ServiceError::bad_request(
            "$emergency-access needs a 'reason' parameter saying why",
        ));
    }
    let reader = Reader {
        practitioner: practitioner.clone(),
        organization: caller.organization.clone(),
    };
    let minutes = guard.policy().emergency_access_minutes;
    let fhir_base = guard.fhir_base().to_string();
    store.transaction(|tx| {
        if tx.live_key("Patient", patient)?.is_none() {
            return Err(ServiceError::not_found(format!(
                "Patient/{patient} does not exist"
            )));
        }
        tx.share_patient_rules(patient)?;
        let now = tx.database_now()?;
        let references = tx.reader_references(&reader)?;
        for stored in tx.referencing("Consent", "patient", "Patient", patient)? {
            let json = parse(&stored.content)?;
            let Ok(consent) = Consent::in_force(&stored.id, &json, &fhir_base) else {
                continue;
            };
            if consent.patient == patient && refuses_emergency_access(&consent, &references, now) {
                return Err(ServiceError::new(
                    Status::FORBIDDEN,
                    IssueType::Forbidden,
                    format!(
                        "Patient/{patient} has switched emergency access off for you \
                         (Consent/{}): nothing was granted",
                        consent.id
                    ),
                ));
            }
        }
        let expires = now + Duration::minutes(minutes);
        tx.grant_emergency_access(&EmergencyGrant {
            practitioner_id: practitioner.clone(),
            patient_id: patient.to_string(),
            user_id: caller.subject.clone(),
            client_id: caller.client_id.clone(),
            token_id: caller.token_id.clone(),
            reason: reason.to_string(),
            granted_at: now,
            expires_at: expires,
        })?;
        if let Some(recorder) = guard.recorder() {
            let event = recorder.operation(
                guard.caller(),
                "$emergency-access",
                Some(patient.to_string()),
                vec![format!("Patient/{patient}")],
                Some(reason),
            );
            tx.append_audit_events(&[event])?;
        }
        tracing::warn!(
            practitioner = %practitioner,
            patient = %patient,
            user = %caller.subject,
            %expires,
            "emergency access granted"
        );
        Ok(EmergencyAccess {
            patient: patient.to_string(),
            expires,
        })
    })
}

/// The answer of `$access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessExplained {
    pub allowed: bool,
    /// `Consent/{id}`, `author`, `emergency access` or `base policy`.
    pub reason: String,
}

/// `GET DocumentReference/{id}/$access?actor=Practitioner/{pid}`: for the
/// document's patient, compliance officers and `system/` clients; doctors
/// and admins get 403, a patient asking about someone else's document 404.
pub fn explain_access(
    store: &PgStore,
    guard: &Guard,
    document: &str,
    actor: &str,
) -> Result<AccessExplained, ServiceError> {
    let caller = guard.caller();
    match caller.map(|c| c.role) {
        // A patient explains their own documents: the read path decides.
        Some(Some(Role::Patient)) => {
            let op = ReadResource {
                resource_type: "DocumentReference",
                id: document,
                version: None,
            };
            reads::read(store, guard, op)?;
        }
        Some(Some(Role::ComplianceOfficer)) => {}
        Some(None) => {
            guard.permit("DocumentReference", Interaction::Read)?;
        }
        Some(Some(_)) => {
            return Err(ServiceError::forbidden(
                "$access answers the patient, compliance officers and backend clients",
            ))
        }
        None => {}
    }
    let practitioner = local_reference(actor, guard.fhir_base())
        .and_then(|r| r.strip_prefix("Practitioner/").map(str::to_string))
        .ok_or_else(|| {
            ServiceError::bad_request(format!(
                "'actor' must be Practitioner/{{id}}, not '{actor}'"
            ))
        })?;
    let default = guard.policy().consent_default;
    let fhir_base = guard.fhir_base().to_string();
    let (answer, patient) =
        store.transaction(|tx| explain_in(tx, &fhir_base, default, document, &practitioner))?;
    // Asking why a doctor may read a document is an access to that
    // patient's record too.
    if let Some(recorder) = guard.recorder() {
        recorder.add(recorder.operation(
            caller,
            "$access",
            patient,
            vec![
                format!("DocumentReference/{document}"),
                format!("Practitioner/{practitioner}"),
            ],
            None,
        ));
    }
    Ok(answer)
}

/// The answer, and the patient of the document.
fn explain_in(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    default: ConsentDefault,
    document: &str,
    practitioner: &str,
) -> Result<(AccessExplained, Option<String>), ServiceError> {
    let key = tx.live_key("DocumentReference", document)?.ok_or_else(|| {
        ServiceError::not_found(format!("DocumentReference/{document} does not exist"))
    })?;
    if tx.live_key("Practitioner", practitioner)?.is_none() {
        return Err(ServiceError::not_found(format!(
            "Practitioner/{practitioner} does not exist"
        )));
    }
    let content = tx
        .read("DocumentReference", document)?
        .and_then(|v| v.content)
        .ok_or_else(|| ServiceError::internal("a live document has no content"))?;
    let json = parse(&content)?;
    let organization = tx.doctor_organization(&format!("Practitioner/{practitioner}"))?;
    let reader = Reader {
        practitioner: practitioner.to_string(),
        organization: organization.clone(),
    };
    let answer = |allowed: bool, reason: &str| AccessExplained {
        allowed,
        reason: reason.to_string(),
    };
    let patient = json["subject"]["reference"]
        .as_str()
        .and_then(|r| local_reference(r, fhir_base))
        .and_then(|r| r.strip_prefix("Patient/").map(str::to_string));
    if authored_by(tx, fhir_base, &json, practitioner)? {
        return Ok((answer(true, "author"), patient));
    }
    if let Some(p) = &patient {
        if tx.holds_emergency_access(practitioner, p)? {
            return Ok((answer(true, "emergency access"), patient.clone()));
        }
    }
    let held = tx.rules_holding(key, &reader)?;
    if let Some(deny) = held.iter().find(|h| h.effect == ConsentEffect::Deny) {
        return Ok((
            answer(false, &format!("Consent/{}", deny.consent_id)),
            patient,
        ));
    }
    if let Some(permit) = held.iter().find(|h| h.effect == ConsentEffect::Permit) {
        return Ok((
            answer(true, &format!("Consent/{}", permit.consent_id)),
            patient,
        ));
    }
    let own_hospital = match (&patient, &organization) {
        (Some(p), Some(org)) => tx.patient_organization(p)?.as_deref() == Some(org.as_str()),
        _ => false,
    };
    Ok((
        answer(
            default == ConsentDefault::Permit && own_hospital,
            "base policy",
        ),
        patient,
    ))
}

/// Whether the document names the practitioner, or one of their
/// PractitionerRoles, as an author.
fn authored_by(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    document: &Value,
    practitioner: &str,
) -> Result<bool, ServiceError> {
    for author in document["author"].as_array().into_iter().flatten() {
        let Some(r) = author["reference"]
            .as_str()
            .and_then(|r| local_reference(r, fhir_base))
        else {
            continue;
        };
        if r == format!("Practitioner/{practitioner}") {
            return Ok(true);
        }
        if let Some(role) = r.strip_prefix("PractitionerRole/") {
            let Some(content) = tx.read("PractitionerRole", role)?.and_then(|v| v.content) else {
                continue;
            };
            let role = parse(&content)?;
            let named = role["practitioner"]["reference"]
                .as_str()
                .and_then(|r| local_reference(r, fhir_base));
            if named.as_deref() == Some(&format!("Practitioner/{practitioner}")) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn parse(content: &str) -> Result<Value, ServiceError> {
    serde_json::from_str(content)
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))
}

/// The `reason` of a `$emergency-access` Parameters body (400 when the body
/// is not a Parameters resource or names no reason).
pub fn reason_of(body: &[u8], format: FhirFormat) -> Result<String, ServiceError> {
    let missing = || {
        ServiceError::bad_request(
            "$emergency-access needs a Parameters body with a 'reason' (valueString) saying why",
        )
    };
    if body.is_empty() {
        return Err(missing());
    }
    let parsed = std::panic::catch_unwind(|| parse_resource(body, format))
        .map_err(|_| ServiceError::bad_request("the body could not be parsed"))?
        .map_err(|e| ServiceError::with_issues(Status::BAD_REQUEST, e.issues))?;
    if parsed["resourceType"] != "Parameters" {
        return Err(missing());
    }
    parsed["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "reason")
        .and_then(|p| p["valueString"].as_str())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .ok_or_else(missing)
}
