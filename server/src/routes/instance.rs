//! Interactions on one resource: read, vread, update, delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::ids::is_valid_id;
use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use fhirledger_postgres::{StoredVersion, WriteOutcome};

use crate::access::allow::Interaction;
use crate::app::AppState;
use crate::http::authenticate::guard;
use crate::http::body::read_body;
use crate::http::error::ApiError;
use crate::http::negotiate::{query_param, request_format, response_format, ResponseFormat};
use crate::http::preconditions::{if_match, return_preference};
use crate::http::respond::{resource_body, stored_body, versioned, write_response};
use crate::routes::binary::{run_write, serve_binary};
use crate::routes::{blocking, check_type, check_writable, respond};
use crate::service::read::read_checked;
use crate::service::{self, UpdateTarget};

pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    respond(&req, read_version(&req, &state, rt, id, None).await)
}

pub async fn vread(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (rt, id, vid) = path.into_inner();
    let result = match vid.parse::<i64>() {
        Ok(v) if v > 0 => read_version(&req, &state, rt, id, Some(v)).await,
        _ => check_type(&rt).and(Err(ApiError::not_found(format!(
            "'{vid}' is not a version of {rt}/{id}"
        )))),
    };
    respond(&req, result)
}

async fn read_version(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    id: String,
    version: Option<i64>,
) -> Result<HttpResponse, ApiError> {
    check_type(&rt)?;
    if !is_valid_id(&id) {
        return Err(ApiError::not_found(format!(
            "'{id}' is not a valid id, so there is no {rt} with it"
        )));
    }
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Read)?;
    let store = state.store.clone();
    let (qrt, qid) = (rt.clone(), id.clone());
    let found = state
        .db_read(move || read_checked(&store, &guard, &qrt, &qid, version))
        .await?;
    let v = match found {
        v if v.is_deleted() => {
            let mut resp =
                ApiError::gone(format!("{rt}/{id} was deleted (version {})", v.version_id))
                    .respond(crate::http::negotiate::error_format(req));
            if let Ok(tag) = crate::http::respond::etag(v.version_id).parse() {
                resp.headers_mut()
                    .insert(actix_web::http::header::ETAG, tag);
            }
            return Ok(resp);
        }
        v => v,
    };
    if rt == "Binary" {
        return serve_binary(req, state, v).await;
    }
    let format = response_format(req)?;
    render_read(req, &v, format)
}

/// A read answer: the stored bytes, or a `_summary`/`_elements` subset.
pub(crate) fn render_read(
    req: &HttpRequest,
    v: &StoredVersion,
    format: ResponseFormat,
) -> Result<HttpResponse, ApiError> {
    let content = v.content.as_deref().unwrap_or("{}");
    let summary = match query_param(req, "_summary") {
        Some(s) => s
            .parse::<SummaryMode>()
            .map_err(|e| ApiError::bad_request(format!("_summary: {e}")))?,
        None => SummaryMode::False,
    };
    let elements = query_param(req, "_elements");
    let (ct, body) = if summary == SummaryMode::False && elements.is_none() {
        stored_body(content, format)?
    } else {
        let value: serde_json::Value = serde_json::from_str(content)
            .map_err(|e| ApiError::internal(format!("stored JSON is corrupt: {e}")))?;
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
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    respond(&req, update_inner(&req, &state, rt, id, payload).await)
}

async fn update_inner(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    id: String,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_writable(&rt)?;
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Update)?;
    let format = response_format(req)?;
    let preference = return_preference(req);
    let expected = if_match(req)?;
    let limit = state.max_body_bytes;
    let target = UpdateTarget::Id(id);
    let outcome = run_write(req, state, &rt, payload, move |store, prepared, upload| {
        service::update(&store, &guard, &prepared, &target, expected, upload, limit)
    })
    .await?;
    write_outcome_response(state, &outcome, format, preference)
}

pub(crate) fn write_outcome_response(
    state: &AppState,
    outcome: &WriteOutcome,
    format: ResponseFormat,
    preference: crate::http::preconditions::ReturnPreference,
) -> Result<HttpResponse, ApiError> {
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

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    respond(&req, delete_inner(&req, &state, rt, id).await)
}

async fn delete_inner(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    id: String,
) -> Result<HttpResponse, ApiError> {
    check_writable(&rt)?;
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Delete)?;
    let format = response_format(req)?;
    let preference = return_preference(req);
    let expected = if_match(req)?;
    if !is_valid_id(&id) {
        return Err(ApiError::not_found(format!(
            "'{id}' is not a valid id, so there is no {rt} with it"
        )));
    }
    let store = state.store.clone();
    let deleted = state
        .db(move || service::delete(&store, &guard, &rt, &id, expected))
        .await?;
    Ok(delete_response(deleted.as_ref(), format, preference))
}

/// 204, or 200 with an OperationOutcome when the client prefers one.
pub(crate) fn delete_response(
    deleted: Option<&StoredVersion>,
    format: ResponseFormat,
    preference: crate::http::preconditions::ReturnPreference,
) -> HttpResponse {
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
) -> Result<service::Prepared, ApiError> {
    let body_format = request_format(req)?;
    let body = read_body(req, payload, limit).await?;
    if body.len() <= INLINE_PARSE_BYTES {
        return service::prepare(rt, &body, body_format, fhir_base);
    }
    let rt = rt.to_string();
    let fhir_base = fhir_base.to_string();
    blocking(move || service::prepare(&rt, &body, body_format, &fhir_base)).await
}
