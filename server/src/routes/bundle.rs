//! `POST /fhir`: batch and transaction Bundles.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::routes::respond;

pub async fn process(
    req: HttpRequest,
    _state: web::Data<AppState>,
    _body: web::Bytes,
) -> HttpResponse {
    respond(
        &req,
        Err(ApiError::method_not_allowed(
            "Bundles are not available yet",
        )),
    )
}
