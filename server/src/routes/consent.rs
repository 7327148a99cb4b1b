//! The Consent operations: `POST Patient/{id}/$emergency-access` and
//! `GET DocumentReference/{id}/$access?actor=Practitioner/{id}` (see
//! `fhirledger_service::consent_operations`).

use actix_web::{web, HttpResponse};
use chrono::SecondsFormat;
use fhirledger_service::consent_operations::{emergency_access, explain_access, reason_of};
use fhirledger_service::ServiceError;
use serde_json::json;

use crate::http::body::read_body;
use crate::http::fhir_request::FhirRequest;
use crate::http::negotiate::{query_param, request_format};
use crate::http::respond::resource_body;

pub async fn break_the_glass(
    fhir: FhirRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let patient = path.into_inner();
    fhir.answer(break_the_glass_inner(&fhir, patient, payload).await)
}

async fn break_the_glass_inner(
    fhir: &FhirRequest,
    patient: String,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let body = read_body(&fhir.req, payload, fhir.state.max_body_bytes).await?;
    let reason = if body.is_empty() {
        reason_of(&body, fhir_profiles::format::FhirFormat::Json)?
    } else {
        reason_of(&body, request_format(&fhir.req)?)?
    };
    let guard = fhir.guard.clone();
    let granted = fhir
        .state
        .db
        .run(move |store| emergency_access(store, &guard, &patient, &reason))
        .await?;
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            { "name": "expires",
              "valueInstant": granted.expires.to_rfc3339_opts(SecondsFormat::Millis, true) },
            { "name": "patient",
              "valueReference": { "reference": format!("Patient/{}", granted.patient) } }
        ]
    });
    let (ct, body) = resource_body(&parameters, format)?;
    Ok(HttpResponse::Ok().content_type(ct).body(body))
}

pub async fn explain(fhir: FhirRequest, path: web::Path<String>) -> HttpResponse {
    let document = path.into_inner();
    fhir.answer(explain_inner(&fhir, document).await)
}

async fn explain_inner(fhir: &FhirRequest, document: String) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let actor = query_param(&fhir.req, "actor").ok_or_else(|| {
        ServiceError::bad_request("$access needs ?actor=Practitioner/{id}: whose access to explain")
    })?;
    let guard = fhir.guard.clone();
    let explained = fhir
        .state
        .db
        .run_read(move |store| explain_access(store, &guard, &document, &actor))
        .await?;
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            { "name": "allowed", "valueBoolean": explained.allowed },
            { "name": "reason", "valueString": explained.reason }
        ]
    });
    let (ct, body) = resource_body(&parameters, format)?;
    Ok(HttpResponse::Ok().content_type(ct).body(body))
}
