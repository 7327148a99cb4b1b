//! History of an instance, a type or the whole system, as `history` Bundles
//! (see `fhirledger_service::history`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhir_profiles::ids::is_valid_id;
use fhirledger_service::history::{history, parse_params};
use fhirledger_service::types::check_type;

use crate::http::fhir_request::FhirRequest;
use crate::http::respond::resource_body;
use fhirledger_service::ServiceError;

pub async fn system_history(fhir: FhirRequest) -> HttpResponse {
    fhir.answer(run(&fhir, None, None).await)
}

pub async fn type_history(fhir: FhirRequest, path: web::Path<String>) -> HttpResponse {
    let rt = path.into_inner();
    fhir.answer(run(&fhir, Some(rt), None).await)
}

pub async fn instance_history(
    fhir: FhirRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    fhir.answer(run(&fhir, Some(rt), Some(id)).await)
}

async fn run(
    fhir: &FhirRequest,
    rt: Option<String>,
    id: Option<String>,
) -> Result<HttpResponse, ServiceError> {
    if let Some(t) = &rt {
        check_type(t)?;
    }
    if let (Some(t), Some(i)) = (&rt, &id) {
        if !is_valid_id(i) {
            return Err(ServiceError::not_found(format!(
                "'{i}' is not a valid id, so there is no {t} with it"
            )));
        }
    }
    let format = fhir.format()?;
    let params = parse_params(fhir.req.query_string(), fhir.lenient())?;
    let guard = fhir.guard.clone();
    let bundle = fhir
        .state
        .db
        .run_read(move |store| history(store, &guard, rt.as_deref(), id.as_deref(), &params))
        .await?;
    let (ct, body) = resource_body(&bundle, format)?;
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header(("Content-Type", ct))
        .body(body))
}
