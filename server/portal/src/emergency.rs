//! Emergency access (break the glass) for doctors: a patient's record they
//! may not see, opened for the deployment's emergency-access time with a
//! reason they must give. It is the `$emergency-access` operation, run as
//! the doctor: a Consent of the patient can refuse it, and the patient sees
//! it, with the reason, highlighted in their access log.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_access::roles::Role;
use fhirledger_service::consent_operations::emergency_access;
use maud::{html, Markup};

use crate::fhir::problem_page;
use crate::layout::{page, problem, respond, see_other};
use crate::session::Visit;
use crate::sharing::forged;

/// The form, for a patient id when known.
pub fn form(visit: &Visit, patient: Option<&str>, error: Option<&str>) -> Markup {
    let minutes = visit.server.settings.policy.emergency_access_minutes;
    html! {
        section aria-labelledby="emergency" class="emergency" {
            h2 id="emergency" { "Emergency access" }
            p {
                "In an emergency you may open a patient's record you cannot see otherwise, for "
                (minutes) " minutes. The patient is told, with your reason, and the access is audited."
            }
            @if let Some(error) = error { p role="alert" class="error" { (error) } }
            form method="post" action="/portal/emergency" {
                input type="hidden" name=(crate::csrf::FIELD) value=(visit.csrf_token());
                @match patient {
                    Some(id) => input type="hidden" name="patient" value=(id);,
                    None => {
                        label for="emergency-patient" { "Patient's record id" }
                        input id="emergency-patient" type="text" name="patient" required autocomplete="off";
                    }
                }
                label for="emergency-reason" { "Why (required)" }
                textarea id="emergency-reason" name="reason" required rows="3" cols="60" {}
                p { button type="submit" { "Open the record in an emergency" } }
            }
        }
    }
}

/// `POST /portal/emergency`: the grant, then the patient's page.
pub async fn open(visit: Visit, body: web::Bytes) -> HttpResponse {
    let Some(fields) = visit.checked_form(&body) else {
        return forged();
    };
    if visit.role() != Some(Role::Doctor) {
        return problem(
            StatusCode::FORBIDDEN,
            "Only doctors have emergency access",
            "Emergency access is for doctors treating a patient.",
        );
    }
    let patient = fields
        .get("patient")
        .map(|p| p.trim().to_string())
        .unwrap_or_default();
    let reason = fields
        .get("reason")
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    let again = |error: &str| {
        let markup = form(&visit, None, Some(error));
        respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Emergency access",
                Some(&visit.person()),
                html! { h1 { "Emergency access" } (markup) },
            ),
        )
    };
    if !fhir_profiles::ids::is_valid_id(&patient) {
        return again("Enter the patient's record id.");
    }
    if reason.is_empty() {
        return again("Say why you need emergency access.");
    }
    let guard = visit.guard.clone();
    let id = patient.clone();
    let granted = visit
        .server
        .db
        .run(move |store| emergency_access(store, &guard, &id, &reason))
        .await;
    match granted {
        Ok(granted) => {
            let until = granted.expires.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            see_other(&format!("/portal/patients/{patient}?emergency-until={until}"))
        }
        Err(e) if e.status.code() == 404 => again("No patient has this record id."),
        Err(e) if e.status.code() == 403 => problem(
            StatusCode::FORBIDDEN,
            "Emergency access refused",
            "This patient's consent refuses emergency access to you. The attempt has been recorded.",
        ),
        Err(e) => problem_page(&e),
    }
}
