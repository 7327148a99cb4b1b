//! The FHIR REST routes under `/fhir`. Specific paths are registered before
//! the generic `{type}/{id}` ones, because actix matches in order.

mod binary;
mod bundle;
mod consent;
mod history;
mod instance;
mod ledger;
mod metadata;
mod search;
mod type_level;

use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::resource_types::is_hosted;
use fhirledger_service::types::unknown_type;

use crate::http::error::ErrorResponse;
use crate::http::negotiate::error_format;
use fhirledger_service::ServiceError;

pub use metadata::build_capabilities;

/// Registers every route. actix tries dynamic paths in order, each with a
/// regex: the type-level `_history` and `_search` must come before
/// `{type}/{id}` (which would take them as ids), and then the most frequent
/// interactions, read and search/create, come first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/fhir")
            .route(web::post().to(bundle::process))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/metadata")
            .route(web::get().to(metadata::metadata))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/$ledger-status")
            .route(web::get().to(ledger::ledger_status))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/_history")
            .route(web::get().to(history::system_history))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/$consistency")
            .route(web::get().to(ledger::consistency))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/AuditEvent/{id}/$proof")
            .route(web::get().to(ledger::audit_event_proof))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/Consent/{id}/_history/{vid}/$proof")
            .route(web::get().to(ledger::consent_version_proof))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}/_history")
            .route(web::get().to(history::type_history))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/Patient/{id}/$emergency-access")
            .route(web::post().to(consent::break_the_glass))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/DocumentReference/{id}/$access")
            .route(web::get().to(consent::explain))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}/_search")
            .route(web::post().to(search::search_post))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}/{id}")
            .route(web::get().to(instance::read))
            .route(web::head().to(instance::read))
            .route(web::put().to(instance::update))
            .route(web::delete().to(instance::delete))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}")
            .route(web::get().to(search::search_get))
            .route(web::post().to(type_level::create))
            .route(web::put().to(type_level::conditional_update))
            .route(web::delete().to(type_level::conditional_delete))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}/{id}/_history/{vid}")
            .route(web::get().to(instance::vread))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/fhir/{type}/{id}/_history")
            .route(web::get().to(history::instance_history))
            .default_service(web::to(not_allowed)),
    )
    .default_service(web::to(not_found));
}

async fn not_allowed(req: HttpRequest) -> HttpResponse {
    let err = match req.match_info().get("type") {
        Some(t) if !is_hosted(t) => unknown_type(t),
        _ => ServiceError::method_not_allowed(format!(
            "{} is not supported on {}",
            req.method(),
            req.path()
        )),
    };
    err.respond(error_format(&req))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ServiceError::not_found(format!("nothing is served at {}", req.path()))
        .respond(error_format(&req))
}

/// Runs CPU-heavy work (parsing or rendering large bodies) off the async
/// workers. Database work goes through `fhirledger_service::Database`.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ServiceError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    web::block(work)
        .await
        .map_err(|_| ServiceError::internal("the worker pool is shutting down"))?
}
