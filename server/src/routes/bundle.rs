//! `POST /fhir`: batch and transaction Bundles (see `service::bundle`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::body::read_body;
use crate::http::fhir_request::FhirRequest;
use crate::http::negotiate::{request_format, response_format};
use crate::http::preconditions::prefer_values;
use crate::http::respond::resource_body;
use crate::routes::blocking;
use fhirledger_service::bundle::{self, BundleOptions, EntryReturn};
use fhirledger_service::ServiceError;

/// Bundles up to this size are parsed and planned on the HTTP worker; larger
/// ones on the blocking pool (as for single resources).
const INLINE_BYTES: usize = 64 * 1024;

/// Response Bundles with more entries than this are rendered on the
/// blocking pool.
const INLINE_RESPONSE_ENTRIES: usize = 64;

pub async fn process(fhir: FhirRequest, payload: web::Payload) -> HttpResponse {
    fhir.answer(process_inner(&fhir, payload).await)
}

async fn process_inner(
    fhir: &FhirRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let (req, state) = (&fhir.req, &fhir.state);
    let format = response_format(req)?;
    let body_format = request_format(req)?;
    let options = BundleOptions {
        fhir_base: state.fhir_base.clone(),
        limit: state.max_body_bytes,
        lenient: fhir.lenient(),
        returns: entry_return(req),
        guard: fhir.guard.clone(),
    };
    let body = read_body(req, payload, state.max_body_bytes).await?;
    let started = std::time::Instant::now();
    let large = body.len() > INLINE_BYTES;
    let plan = if large {
        let base = options.fhir_base.clone();
        blocking(move || bundle::plan(&body, body_format, &base)).await?
    } else {
        bundle::plan(&body, body_format, &options.fhir_base)?
    };
    let planned = started.elapsed();
    let (kind, entries) = (plan.kind(), plan.len());
    let many = entries > INLINE_RESPONSE_ENTRIES;
    let response = state
        .db
        .run(move |store| bundle::execute(store, plan, &options))
        .await?;
    let executed = started.elapsed();
    let (ct, body) = if many {
        blocking(move || resource_body(&response, format)).await?
    } else {
        resource_body(&response, format)?
    };
    tracing::debug!(
        ?kind,
        entries,
        plan_ms = planned.as_secs_f64() * 1e3,
        execute_ms = (executed - planned).as_secs_f64() * 1e3,
        render_ms = (started.elapsed() - executed).as_secs_f64() * 1e3,
        "bundle"
    );
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header(("Content-Type", ct))
        .body(body))
}

/// `Prefer: return=` for entry responses; without it they carry no
/// resource (bulk loads should not get their Bundle echoed back).
fn entry_return(req: &HttpRequest) -> EntryReturn {
    prefer_values(req, "return")
        .into_iter()
        .find_map(|v| match v.as_str() {
            "minimal" => Some(EntryReturn::Minimal),
            "representation" => Some(EntryReturn::Representation),
            "OperationOutcome" => Some(EntryReturn::OperationOutcome),
            _ => None,
        })
        .unwrap_or_default()
}
