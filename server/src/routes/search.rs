//! Search on a resource type: `GET /{type}?…` and `POST /{type}/_search` (parameters in a
//! form-encoded body, and in the URL too), answered with `searchset` Bundles paged by
//! opaque cursors.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::format::{json_bytes_to_xml, FhirFormat};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::negotiate::{form_pairs, response_format, ResponseFormat};
use crate::http::preconditions::prefer_values;
use crate::http::respond::{FHIR_JSON, FHIR_XML};
use crate::routes::{check_type, respond};
use crate::service::search;

pub async fn search_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let rt = path.into_inner();
    let params = form_pairs(req.query_string());
    respond(&req, run(&req, &state, rt, params).await)
}

pub async fn search_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let rt = path.into_inner();
    let result = match form_body(&req, &body) {
        Ok(mut params) => {
            let mut all = form_pairs(req.query_string());
            all.append(&mut params);
            run(&req, &state, rt, all).await
        }
        Err(e) => Err(e),
    };
    respond(&req, result)
}

/// The parameters of a `_search` body, which must be form-encoded.
fn form_body(req: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !body.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(ApiError::unsupported_media_type(format!(
            "a _search body must be application/x-www-form-urlencoded, not '{content_type}'"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the _search body is not UTF-8"))?;
    Ok(form_pairs(text))
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    rt: String,
    params: Vec<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    check_type(&rt)?;
    let format = response_format(req)?;
    let lenient = prefer_values(req, "handling")
        .iter()
        .any(|v| v == "lenient");
    let mut request = search::parse(&state.fhir_base, &rt, &params, lenient)?;
    crate::http::authenticate::guard(req, state)?.restrict_search(&mut request)?;
    let store = state.store.clone();
    let base = state.fhir_base.clone();
    let json = state
        .db_read(move || search::execute(&store, &base, &request))
        .await?;
    bundle_response(json, format)
}

/// The Bundle in the negotiated format.
fn bundle_response(json: String, format: ResponseFormat) -> Result<HttpResponse, ApiError> {
    let (content_type, body) = match (format.format, format.pretty) {
        (FhirFormat::Json, false) => (FHIR_JSON, json.into_bytes()),
        (FhirFormat::Json, true) => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| ApiError::internal(format!("search Bundle: {e}")))?;
            (
                FHIR_JSON,
                fhir_profiles::format::to_json_bytes(&value, true),
            )
        }
        (FhirFormat::Xml, pretty) => (
            FHIR_XML,
            json_bytes_to_xml(json.as_bytes(), pretty)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .into_bytes(),
        ),
    };
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header(("Content-Type", content_type))
        .body(body))
}
