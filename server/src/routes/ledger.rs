//! `GET /fhir/$ledger-status`: how far the Merkle log is anchored on chain
//! (see `fhirledger_service::anchoring::ledger_status`).

use actix_web::HttpResponse;
use fhirledger_service::anchoring::ledger_status as status_of;
use fhirledger_service::ServiceError;

use crate::http::fhir_request::FhirRequest;
use crate::http::respond::resource_body;

pub async fn ledger_status(fhir: FhirRequest) -> HttpResponse {
    fhir.answer(ledger_status_inner(&fhir).await)
}

async fn ledger_status_inner(fhir: &FhirRequest) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let guard = fhir.guard.clone();
    let local = fhir.state.anchoring;
    let status = fhir
        .state
        .db
        .run_read(move |store| status_of(store, &guard, local))
        .await?;
    let (ct, body) = resource_body(&status.to_parameters(), format)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type(ct)
        .body(body))
}
