//! Interactions on a resource type: create (optionally conditional),
//! conditional update and conditional delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::access::allow::Interaction;
use crate::app::AppState;
use crate::http::authenticate::guard;
use crate::http::error::ApiError;
use crate::http::negotiate::response_format;
use crate::http::preconditions::{if_match, if_none_exist, parse_criteria, return_preference};
use crate::http::respond::write_response;
use crate::routes::binary::run_write;
use crate::routes::instance::{delete_response, write_outcome_response};
use crate::routes::{check_writable, respond};
use crate::service::{self, CreateOutcome, UpdateTarget};

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let rt = path.into_inner();
    respond(&req, create_inner(&req, &state, rt, payload).await)
}

async fn create_inner(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_writable(&rt)?;
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Create)?;
    let format = response_format(req)?;
    let preference = return_preference(req);
    let criteria = if_none_exist(req)?;
    let limit = state.max_body_bytes;
    let outcome = run_write(req, state, &rt, payload, move |store, prepared, upload| {
        service::create(
            &store,
            &guard,
            &prepared,
            criteria.as_deref(),
            upload,
            limit,
        )
    })
    .await?;
    match outcome {
        CreateOutcome::Created(v) => write_response(
            StatusCode::CREATED,
            &v,
            &state.fhir_base,
            format,
            preference,
            "created",
        ),
        CreateOutcome::Exists(v) => write_response(
            StatusCode::OK,
            &v,
            &state.fhir_base,
            format,
            preference,
            "a matching resource already exists; nothing was created",
        ),
    }
}

pub async fn conditional_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let rt = path.into_inner();
    respond(
        &req,
        conditional_update_inner(&req, &state, rt, payload).await,
    )
}

async fn conditional_update_inner(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_writable(&rt)?;
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Update)?;
    let format = response_format(req)?;
    let preference = return_preference(req);
    let expected = if_match(req)?;
    let target = UpdateTarget::Criteria(parse_criteria(req.query_string())?);
    let limit = state.max_body_bytes;
    let outcome = run_write(req, state, &rt, payload, move |store, prepared, upload| {
        service::update(&store, &guard, &prepared, &target, expected, upload, limit)
    })
    .await?;
    write_outcome_response(state, &outcome, format, preference)
}

pub async fn conditional_delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let rt = path.into_inner();
    respond(&req, conditional_delete_inner(&req, &state, rt).await)
}

async fn conditional_delete_inner(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
) -> Result<HttpResponse, ApiError> {
    check_writable(&rt)?;
    let guard = guard(req, state)?;
    guard.permit(&rt, Interaction::Delete)?;
    let format = response_format(req)?;
    let preference = return_preference(req);
    let criteria = parse_criteria(req.query_string())?;
    let store = state.store.clone();
    let deleted = state
        .db(move || service::conditional_delete(&store, &guard, &rt, &criteria))
        .await?;
    Ok(delete_response(deleted.as_ref(), format, preference))
}
