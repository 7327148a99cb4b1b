//! Interactions on one resource: read, vread, update, delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::ids::is_valid_id;
use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use fhirledger_access::Interaction;
use fhirledger_postgres::{StoredVersion, WriteOutcome};
use fhirledger_service::reads::{self, ReadResource};
use fhirledger_service::types::check_type;
use fhirledger_service::{self as service, UpdateTarget};

use crate::http::body::read_body;
use crate::http::error::ErrorResponse;
use crate::http::fhir_request::{FhirRequest, WriteAnswer};
use crate::http::negotiate::{query_param, request_format, ResponseFormat};
use crate::http::respond::{resource_body, stored_body, versioned, write_response};
use crate::routes::binary::{run_write, serve_binary};
use crate::routes::blocking;
use crate::state::AppState;
use fhirledger_service::ServiceError;

pub async fn read(fhir: FhirRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (rt, id) = path.into_inner();
    fhir.answer(read_version(&fhir, rt, id, None).await)
}

pub async fn vread(fhir: FhirRequest, path: web::Path<(String, String, String)>) -> HttpResponse {
    let (rt, id, vid) = path.into_inner();
    let result = match vid.parse::<i64>() {
        Ok(v) if v > 0 => read_version(&fhir, rt, id, Some(v)).await,
        _ => check_type(&rt).and(Err(ServiceError::not_found(format!(
            "'{vid}' is not a version of {rt}/{id}"
        )))),
    };
    fhir.answer(result)
}

async fn read_version(
    fhir: &FhirRequest,
    rt: String,
    id: String,
    version: Option<i64>,
) -> Result<HttpResponse, ServiceError> {
    check_type(&rt)?;
    if !is_valid_id(&id) {
        return Err(ServiceError::not_found(format!(
            "'{id}' is not a valid id, so there is no {rt} with it"
        )));
    }
    if rt == "Binary" {
        return serve_binary(fhir, id, version).await;
    }
    let guard = fhir.guard.clone();
    let (qrt, qid) = (rt.clone(), id.clone());
    let v = fhir
        .state
        .db
        .run_read(move |store| {
            let op = ReadResource {
                resource_type: &qrt,
                id: &qid,
                version,
            };
            reads::read(store, &guard, op).map(|found| found.value)
        })
        .await?;
    if v.is_deleted() {
        return Ok(deleted(&fhir.req, &v));
    }
    render_read(&fhir.req, &v, fhir.format()?)
}

/// 410 for a deleted resource, with the ETag of the delete.
pub(crate) fn deleted(req: &HttpRequest, v: &StoredVersion) -> HttpResponse {
    let mut resp = ServiceError::gone(format!(
        "{}/{} was deleted (version {})",
        v.resource_type, v.id, v.version_id
    ))
    .respond(crate::http::negotiate::error_format(req));
    if let Ok(tag) = crate::http::respond::etag(v.version_id).parse() {
        resp.headers_mut()
            .insert(actix_web::http::header::ETAG, tag);
    }
    resp
}

/// A read answer: the stored bytes, or a `_summary`/`_elements` subset.
pub(crate) fn render_read(
    req: &HttpRequest,
    v: &StoredVersion,
    format: ResponseFormat,
) -> Result<HttpResponse, ServiceError> {
    let content = v.content.as_deref().unwrap_or("{}");
    let summary = match query_param(req, "_summary") {
        Some(s) => s
            .parse::<SummaryMode>()
            .map_err(|e| ServiceError::bad_request(format!("_summary: {e}")))?,
        None => SummaryMode::False,
    };
    let elements = query_param(req, "_elements");
    let (ct, body) = if summary == SummaryMode::False && elements.is_none() {
        stored_body(content, format)?
    } else {
        let value: serde_json::Value = serde_json::from_str(content)
            .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
        let subset = match &elements {
            Some(list) => {
                let names: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                apply_elements(&value, &names)
            }
            None => apply_summary(&value, summary),
        };
        resource_body(&subset, format)?
    };
    Ok(versioned(StatusCode::OK, v)
        .insert_header(("Content-Type", ct))
        .body(body))
}

pub async fn update(
    fhir: FhirRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    fhir.answer(update_inner(&fhir, rt, id, payload).await)
}

async fn update_inner(
    fhir: &FhirRequest,
    rt: String,
    id: String,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let answer = fhir.begin_write(&rt, Interaction::Update)?;
    let expected = fhir.if_match()?;
    let limit = fhir.state.max_body_bytes;
    let target = UpdateTarget::Id(id);
    let guard = fhir.guard.clone();
    let outcome = run_write(fhir, &rt, payload, move |store, prepared, upload| {
        service::update(store, &guard, &prepared, &target, expected, upload, limit)
    })
    .await?;
    write_outcome_response(&fhir.state, &outcome, answer)
}

pub(crate) fn write_outcome_response(
    state: &AppState,
    outcome: &WriteOutcome,
    answer: WriteAnswer,
) -> Result<HttpResponse, ServiceError> {
    let WriteAnswer { format, preference } = answer;
    match outcome {
        WriteOutcome::Created(v) => write_response(
            StatusCode::CREATED,
            v,
            &state.fhir_base,
            format,
            preference,
            "created",
        ),
        WriteOutcome::Updated(v) => write_response(
            StatusCode::OK,
            v,
            &state.fhir_base,
            format,
            preference,
            "updated",
        ),
    }
}

pub async fn delete(fhir: FhirRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (rt, id) = path.into_inner();
    fhir.answer(delete_inner(&fhir, rt, id).await)
}

async fn delete_inner(
    fhir: &FhirRequest,
    rt: String,
    id: String,
) -> Result<HttpResponse, ServiceError> {
    let answer = fhir.begin_write(&rt, Interaction::Delete)?;
    let expected = fhir.if_match()?;
    if !is_valid_id(&id) {
        return Err(ServiceError::not_found(format!(
            "'{id}' is not a valid id, so there is no {rt} with it"
        )));
    }
    let guard = fhir.guard.clone();
    let deleted = fhir
        .state
        .db
        .run(move |store| service::delete(store, &guard, &rt, &id, expected))
        .await?;
    Ok(delete_response(deleted.as_ref(), answer))
}

/// 204, or 200 with an OperationOutcome when the client prefers one.
pub(crate) fn delete_response(
    deleted: Option<&StoredVersion>,
    answer: WriteAnswer,
) -> HttpResponse {
    let WriteAnswer { format, preference } = answer;
    let message = match deleted {
        Some(v) => format!(
            "deleted {}/{} (version {})",
            v.resource_type, v.id, v.version_id
        ),
        None => "nothing to delete".to_string(),
    };
    let mut b = match deleted {
        Some(v) => versioned(StatusCode::NO_CONTENT, v),
        None => HttpResponse::build(StatusCode::NO_CONTENT),
    };
    if preference == crate::http::preconditions::ReturnPreference::OperationOutcome {
        let outcome = fhir_profiles::outcome::operation_outcome(&[
            fhir_profiles::outcome::Issue::information(message),
        ]);
        if let Ok((ct, body)) = resource_body(&outcome, format) {
            b.status(StatusCode::OK);
            return b.insert_header(("Content-Type", ct)).body(body);
        }
    }
    b.finish()
}

/// Bodies up to this size are parsed on the HTTP worker itself (a typical
/// document takes ~150 µs); handing them to a blocking thread cost more in
/// context switches than the parse. Larger bodies go to the blocking pool.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Reads and prepares a FHIR body (JSON or XML) for `rt`.
pub(crate) async fn prepared_body(
    req: &HttpRequest,
    rt: &str,
    payload: web::Payload,
    limit: u64,
    fhir_base: &str,
) -> Result<service::Prepared, ServiceError> {
    let body_format = request_format(req)?;
    let body = read_body(req, payload, limit).await?;
    if body.len() <= INLINE_PARSE_BYTES {
        return service::prepare(rt, &body, body_format, fhir_base);
    }
    let rt = rt.to_string();
    let fhir_base = fhir_base.to_string();
    blocking(move || service::prepare(&rt, &body, body_format, &fhir_base)).await
}
