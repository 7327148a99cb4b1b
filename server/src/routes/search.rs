//! Search on a resource type: `GET /{type}?…` and `POST /{type}/_search`, answered with
//! `searchset` Bundles paged by opaque cursors.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::routes::respond;

pub async fn search_get(
    req: HttpRequest,
    _state: web::Data<AppState>,
    _path: web::Path<String>,
) -> HttpResponse {
    respond(
        &req,
        Err(ApiError::method_not_allowed("search is not available yet")),
    )
}

pub async fn search_post(
    req: HttpRequest,
    _state: web::Data<AppState>,
    _path: web::Path<String>,
    _body: web::Bytes,
) -> HttpResponse {
    respond(
        &req,
        Err(ApiError::method_not_allowed("search is not available yet")),
    )
}
