//! Interactions on a resource type: create (optionally conditional),
//! conditional update and conditional delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_access::Interaction;
use fhirledger_service::{self as service, parse_conditions, CreateOutcome, UpdateTarget};

use crate::http::fhir_request::FhirRequest;
use crate::http::preconditions::if_none_exist;
use crate::http::respond::write_response;
use crate::routes::binary::run_write;
use crate::routes::instance::{delete_response, write_outcome_response};
use fhirledger_service::ServiceError;

pub async fn create(
    fhir: FhirRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let rt = path.into_inner();
    fhir.answer(create_inner(&fhir, rt, payload).await)
}

async fn create_inner(
    fhir: &FhirRequest,
    rt: String,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let answer = fhir.begin_write(&rt, Interaction::Create)?;
    let conditions = if_none_exist(&fhir.req, &rt)?;
    let limit = fhir.state.max_body_bytes;
    let guard = fhir.guard.clone();
    let outcome = run_write(fhir, &rt, payload, move |store, prepared, upload| {
        service::create(store, &guard, &prepared, conditions.as_ref(), upload, limit)
    })
    .await?;
    let base = &fhir.state.fhir_base;
    let (format, preference) = (answer.format, answer.preference);
    match outcome {
        CreateOutcome::Created(v) => {
            write_response(StatusCode::CREATED, &v, base, format, preference, "created")
        }
        CreateOutcome::Exists(v) => write_response(
            StatusCode::OK,
            &v,
            base,
            format,
            preference,
            "a matching resource already exists; nothing was created",
        ),
    }
}

pub async fn conditional_update(
    fhir: FhirRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let rt = path.into_inner();
    fhir.answer(conditional_update_inner(&fhir, rt, payload).await)
}

async fn conditional_update_inner(
    fhir: &FhirRequest,
    rt: String,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let answer = fhir.begin_write(&rt, Interaction::Update)?;
    let expected = fhir.if_match()?;
    let target = UpdateTarget::Criteria(parse_conditions(&rt, fhir.req.query_string())?);
    let limit = fhir.state.max_body_bytes;
    let guard = fhir.guard.clone();
    let outcome = run_write(fhir, &rt, payload, move |store, prepared, upload| {
        service::update(store, &guard, &prepared, &target, expected, upload, limit)
    })
    .await?;
    write_outcome_response(&fhir.state, &outcome, answer)
}

pub async fn conditional_delete(fhir: FhirRequest, path: web::Path<String>) -> HttpResponse {
    let rt = path.into_inner();
    fhir.answer(conditional_delete_inner(&fhir, rt).await)
}

async fn conditional_delete_inner(
    fhir: &FhirRequest,
    rt: String,
) -> Result<HttpResponse, ServiceError> {
    let answer = fhir.begin_write(&rt, Interaction::Delete)?;
    let conditions = parse_conditions(&rt, fhir.req.query_string())?;
    let guard = fhir.guard.clone();
    let deleted = fhir
        .state
        .db
        .run(move |store| service::conditional_delete(store, &guard, &rt, &conditions))
        .await?;
    Ok(delete_response(deleted.as_ref(), answer))
}
